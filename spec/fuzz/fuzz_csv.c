/* The CSV encoder through its Lua interface: rows made from the input
 * (strings split at 0x00, rows at 0x01, a delimiter from the first byte),
 * encoded without a crash; output that comes back is valid UTF-8 and holds
 * no more fields' worth of delimiters than it may. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "compat.h"
#include "utf8.h"

int luaopen_csvup_core(lua_State *L);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delimiters[] = ",;\t| ";
    lua_State *L;
    size_t i, start = 1;
    int row = 1, field = 1;
    if (size < 1)
        return 0;
    L = luaL_newstate();
    luaL_openlibs(L);
    luaL_requiref(L, "csvup.core", luaopen_csvup_core, 0);
    lua_getfield(L, -1, "csv_encoder");
    lua_newtable(L);
    lua_pushlstring(L, &delimiters[data[0] % 5], 1);
    lua_setfield(L, -2, "delimiter");
    lua_call(L, 1, 1); /* the encoder */
    lua_getfield(L, -1, "rows");
    lua_pushvalue(L, -2);
    lua_newtable(L); /* rows */
    lua_newtable(L); /* the first row */
    for (i = 1; i <= size; i++) {
        if (i == size || data[i] == 0 || data[i] == 1) {
            lua_pushlstring(L, (const char *)data + start, i - start);
            lua_rawseti(L, -2, field++);
            if (i < size && data[i] == 1) {
                lua_rawseti(L, -2, row++);
                lua_newtable(L);
                field = 1;
            }
            start = i + 1;
        }
    }
    lua_rawseti(L, -2, row);
    lua_pushinteger(L, 1);
    lua_pushinteger(L, row);
    lua_call(L, 4, 2);
    if (lua_type(L, -2) == LUA_TSTRING) {
        size_t n;
        const char *out = lua_tolstring(L, -2, &n);
        if (utf8_valid_prefix((const unsigned char *)out, n) != n)
            abort();
    } else if (!lua_istable(L, -1)) {
        abort(); /* nil must come with an error */
    }
    lua_close(L);
    return 0;
}
