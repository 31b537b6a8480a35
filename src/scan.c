#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "error.h"
#include "file.h"
#include "scan.h"
#include "utf8.h"

#define CHUNK (64 * 1024)

/* Whether s[0..n) could be the start of a valid sequence cut by the chunk's end. */
static int cut_sequence(const unsigned char *s, size_t n)
{
    size_t need = s[0] >= 0xF0 ? 4 : s[0] >= 0xE0 ? 3 : 2, i;
    if (s[0] < 0xC2 || s[0] > 0xF4 || n >= need)
        return 0;
    for (i = 1; i < n; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    return 1;
}

/* core.utf8_check_file(path | csvup.file, bom) -> true | nil, err naming line and column
 * (in bytes) of the first byte that is not valid UTF-8; with bom, "bom" for a
 * file that starts with a UTF-8 byte order mark, read no further. Memory
 * stays at one chunk. */
int scan_utf8_file(lua_State *L)
{
    const char *path;
    const int stop_at_bom = lua_toboolean(L, 2);
    unsigned char buf[CHUNK + 4];
    size_t carry = 0;
    long long line = 1, offset = 0, line_start = 0; /* offsets in the file */
    FILE *f = file_stream(L, 1, &path); /* a regular file: a FIFO would block, /dev/zero never end */
    if (!f)
        return 2;
    for (;;) {
        size_t n = carry + fread(buf + carry, 1, CHUNK, f), valid, i;
        int done = n == carry;
        if (ferror(f)) {
            fclose(f);
            return csvup_fail(L, KIND_INPUT, "file_unreadable", "%s: read error", path);
        }
        if (stop_at_bom && offset == 0 && n >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0) {
            fclose(f);
            lua_pushliteral(L, "bom");
            return 1;
        }
        valid = utf8_text_prefix(buf, n);
        for (i = 0; i < valid; i++) {
            const unsigned char *nl = memchr(buf + i, '\n', valid - i);
            if (!nl)
                break;
            i = (size_t)(nl - buf);
            line++;
            line_start = offset + (long long)i + 1;
        }
        if (valid < n && (done || !cut_sequence(buf + valid, n - valid))) {
            char at[64];
            fclose(f);
            snprintf(at, sizeof at, "%lld", offset + (long long)valid - line_start + 1);
            if (buf[valid] == 0)
                csvup_fail(L, KIND_INPUT, "malformed_csv",
                           "byte %s of line %d is a NUL byte: the file is binary or UTF-16, not UTF-8 text", at, (int)line);
            else
                csvup_fail(L, KIND_INPUT, "invalid_utf8",
                           "byte %s of line %d is not valid UTF-8 (the APIs take UTF-8 only)", at, (int)line);
            lua_pushstring(L, path);
            lua_setfield(L, -2, "file");
            lua_pushinteger(L, (lua_Integer)line);
            lua_setfield(L, -2, "line");
            lua_pushinteger(L, (lua_Integer)(offset + (long long)valid - line_start + 1));
            lua_setfield(L, -2, "column");
            return 2;
        }
        if (done)
            break;
        carry = n - valid;
        memmove(buf, buf + valid, carry);
        offset += (long long)valid;
    }
    fclose(f);
    lua_pushboolean(L, 1);
    return 1;
}
