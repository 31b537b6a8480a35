/* push_headers: any header block becomes a table of lower-case names
 * without a crash or a read past the buffer. */
#include <stdint.h>
#include <stdlib.h>

#include <lualib.h>

#include "../../src/request.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    struct buffer head = { NULL, 0, 0, HEADERS_LIMIT };
    if (size && buffer_append(&head, data, size) != 0) {
        lua_close(L);
        return 0;
    }
    push_headers(L, &head);
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        const char *name = lua_tostring(L, -2);
        for (; *name; name++)
            if (*name >= 'A' && *name <= 'Z')
                abort();
        lua_pop(L, 1);
    }
    buffer_free(&head);
    lua_close(L);
    return 0;
}
