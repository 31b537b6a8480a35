/* The CSV tokenizer. On any input, read in small pieces: no crash, line
 * numbers that never go back, and at a clean end every line break counted
 * once. And the other way round: fields made from the input (split at 0x00,
 * rows at 0x01, a delimiter from the first byte), written by the csvup
 * encoder, read back the same. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "compat.h"
#include "reader.h"

int luaopen_csvup_core(lua_State *L);

struct memory {
    const unsigned char *data;
    size_t size, pos, piece;
};

/* Gives at most `piece` bytes a call, so that records cross refills. */
static long memory_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    struct memory *m = ctx;
    (void)message;
    (void)size;
    if (n > m->piece)
        n = m->piece;
    if (n > m->size - m->pos)
        n = m->size - m->pos;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (long)n;
}

static void read_raw(const uint8_t *data, size_t size)
{
    struct reader r;
    struct memory m = { data, size, 0, 1 + (size % 7) * 97 };
    long long lines = 1, last = 0;
    size_t i;
    int rc;
    for (i = 0; i < size; i++)
        lines += data[i] == '\n';
    if (reader_open(&r, memory_source, &m, (char)(size ? ",;\t|"[data[0] % 4] : ','), 1, 4096) == 0) {
        while ((rc = reader_next(&r)) > 0) {
            if (r.record_line < last || r.record_line > lines || r.nfields == 0)
                abort();
            last = r.record_line;
        }
        if (rc == 0 && r.line != lines)
            abort(); /* a line break counted twice or missed */
    }
    reader_free(&r);
}

/* The rows of the input as a Lua table; the delimiter byte. */
static char push_rows(lua_State *L, const uint8_t *data, size_t size)
{
    static const char delimiters[] = ",;\t| ";
    size_t i, start = 1;
    int row = 1, field = 1;
    lua_newtable(L);
    lua_newtable(L);
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
    return delimiters[data[0] % 5];
}

static void round_trip(const uint8_t *data, size_t size)
{
    lua_State *L = luaL_newstate();
    char delimiter[2] = { 0, 0 };
    int rows;
    luaL_openlibs(L);
    luaL_requiref(L, "csvup.core", luaopen_csvup_core, 0);
    delimiter[0] = push_rows(L, data, size);
    rows = lua_gettop(L);
    lua_getfield(L, 1, "csv_encoder");
    lua_newtable(L);
    lua_pushstring(L, delimiter);
    lua_setfield(L, -2, "delimiter");
    if (data[0] & 0x80) {
        lua_pushliteral(L, "\r\n");
        lua_setfield(L, -2, "eol");
    }
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "rows");
    lua_insert(L, -2);
    lua_pushvalue(L, rows);
    lua_pushinteger(L, 1);
    lua_pushinteger(L, (lua_Integer)lua_rawlen(L, rows));
    lua_call(L, 4, 2);
    /* not refused (invalid UTF-8, a NUL byte), and not starting with what reads as a BOM */
    if (lua_type(L, -2) == LUA_TSTRING
        && (lua_rawlen(L, -2) < 3 || memcmp(lua_tostring(L, -2), "\xEF\xBB\xBF", 3) != 0)) {
        struct reader r;
        struct memory m;
        size_t n, f;
        lua_Integer row = 0;
        int rc;
        m.data = (const unsigned char *)lua_tolstring(L, -2, &n);
        m.size = n;
        m.pos = 0;
        m.piece = 1 + size % 50;
        if (reader_open(&r, memory_source, &m, delimiter[0], 1, READER_RECORD_LIMIT) != 0)
            abort();
        while ((rc = reader_next(&r)) > 0) {
            lua_rawgeti(L, rows, ++row);
            if (r.nfields != lua_rawlen(L, -1))
                abort();
            for (f = 0; f < r.nfields; f++) {
                size_t len;
                const char *want;
                lua_rawgeti(L, -1, (int)f + 1);
                want = lua_tolstring(L, -1, &len);
                if (len != r.fields[f].len || memcmp(want, r.fields[f].data, len) != 0)
                    abort();
                lua_pop(L, 1);
            }
            lua_pop(L, 1);
        }
        if (rc != 0 || row != (lua_Integer)lua_rawlen(L, rows))
            abort();
        reader_free(&r);
    }
    lua_close(L);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    read_raw(data, size);
    if (size > 0)
        round_trip(data, size);
    return 0;
}
