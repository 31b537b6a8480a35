/* json_mark_integers: never reads past its input, and only ever rewrites
 * an integer literal into a marked string (so the output is the input when
 * it reports no integer, and longer by 8 bytes per integer otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "compat.h"
#include "json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    size_t n;
    const char *out;
    lua_Integer count;
    lua_pushcfunction(L, json_mark_integers);
    lua_pushlstring(L, (const char *)data, size);
    lua_pushinteger(L, size ? 1 + data[0] % 20 : 16);
    lua_call(L, 2, 2);
    out = lua_tolstring(L, -2, &n);
    count = lua_tointeger(L, -1);
    if (n != size + (size_t)count * 8 || (count == 0 && memcmp(out, data, size) != 0))
        abort();
    lua_close(L);
    return 0;
}
