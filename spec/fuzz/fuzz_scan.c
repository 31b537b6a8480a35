/* core.utf8_check_file: on any file it agrees with utf8_text_prefix over
 * the whole content, and names the line of the first invalid byte, however
 * the 64 KB reads cut the content (the input is repeated to cross them). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lualib.h>

#include "compat.h"
#include "scan.h"
#include "utf8.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[] = "/tmp/csvup-fuzz-XXXXXX";
    size_t total = 0, valid, copies = size ? 1 + (70000 / (size + 1)) % 64 : 1, i;
    unsigned char *content = malloc(size * copies + 1);
    lua_Integer line = 1;
    lua_State *L;
    int fd = mkstemp(path), ok;
    FILE *f = fdopen(fd, "wb");
    for (i = 0; i < copies; i++) {
        memcpy(content + total, data, size);
        total += size;
    }
    fwrite(content, 1, total, f);
    fclose(f);
    valid = utf8_text_prefix(content, total);
    for (i = 0; i < valid; i++)
        line += content[i] == '\n';
    L = luaL_newstate();
    lua_pushcfunction(L, scan_utf8_file);
    lua_pushstring(L, path);
    lua_call(L, 1, 2);
    ok = lua_toboolean(L, -2);
    if (ok != (valid == total))
        abort();
    if (!ok) {
        lua_getfield(L, -1, "line");
        if (lua_tointeger(L, -1) != line)
            abort();
    }
    lua_close(L);
    unlink(path);
    free(content);
    return 0;
}
