#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lualib.h>

#include "buffer.h"
#include "csv.h"
#include "error.h"
#include "utf8.h"

#define ENCODER_MT "csvup.csv_encoder"
#define TEXT_MAX 64
#define STREAM_CHUNK (64 * 1024)
#define EXACT_INT 9007199254740992.0 /* 2^53 */

/* Options fixed at creation; the columns table is the userdata's user value. */
struct encoder {
    char delimiter;
    unsigned char special[128]; /* the ASCII bytes that make a field quoted */
    int has_columns;
    int strict;           /* a record key outside the columns is an error, never dropped */
    size_t ncolumns;
    char eol[3], null_text[TEXT_MAX], true_text[TEXT_MAX], false_text[TEXT_MAX];
    struct buffer out;    /* reused across calls; freed by __gc */
    lua_Integer next_row; /* the number of the next row a stream writes */
    size_t stream_bytes, stream_rows; /* written by the stream since the last drain */
};

/* Why a value cannot be written, for the error that names its row and column. */
struct problem {
    char text[128];
};

/* One pass over a field: whether it needs quotes, and where its UTF-8 breaks
 * or a NUL byte is (*bad, or n when it is valid). */
static int scan_field(const struct encoder *e, const unsigned char *s, size_t n, size_t *bad)
{
    size_t i = 0, len;
    int quote = 0;
    while (i < n) {
        if (s[i] == 0)
            break;
        if (s[i] < 0x80)
            quote |= e->special[s[i++]];
        else if ((len = utf8_sequence(s + i, n - i)))
            i += len;
        else
            break;
    }
    *bad = i;
    return quote;
}

/* An empty field appends nothing: never memcpy from or to a NULL buffer. */
static int append_bytes(struct encoder *e, const char *s, size_t n)
{
    return n ? buffer_append(&e->out, s, n) : 0;
}

static int append_quoted(struct encoder *e, const char *s, size_t n)
{
    const char *quote;
    if (buffer_append(&e->out, "\"", 1))
        return -1;
    while ((quote = memchr(s, '"', n))) { /* a quote is written twice */
        size_t part = (size_t)(quote - s) + 1;
        if (buffer_append(&e->out, s, part) || buffer_append(&e->out, "\"", 1))
            return -1;
        s += part;
        n -= part;
    }
    return buffer_append(&e->out, s, n) || buffer_append(&e->out, "\"", 1);
}

/* Appends text the caller chose (null, true, false texts), quoted if it must be. */
static int append_text(struct encoder *e, const char *s, size_t n)
{
    size_t bad;
    return scan_field(e, (const unsigned char *)s, n, &bad) ? append_quoted(e, s, n) : append_bytes(e, s, n);
}

static size_t format_int(int64_t v, char *out)
{
    char digits[24];
    size_t n = 0, i = 0;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        digits[n++] = (char)('0' + u % 10);
        u /= 10;
    } while (u);
    if (v < 0)
        out[i++] = '-';
    while (n)
        out[i++] = digits[--n];
    return i;
}

/* "d.ddde[+-]xx" or "ddd.ddd" from printf's %g into a plain decimal. Any byte
 * that is not a digit, sign or 'e' is the decimal point (whatever the locale). */
static size_t plain_decimal(const char *g, char *out)
{
    char digits[32];
    size_t n = 0, i = 0, k;
    long point = -1, exponent = 0;
    const char *p = g, *e = strchr(g, 'e');
    if (*p == '-')
        out[i++] = *p++;
    for (; *p && p != e; p++) {
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
        else
            point = (long)n;
    }
    if (point < 0)
        point = (long)n;
    if (e)
        exponent = strtol(e + 1, NULL, 10);
    point += exponent;
    if (point <= 0) {
        out[i++] = '0';
        out[i++] = '.';
        for (k = 0; k < (size_t)-point; k++)
            out[i++] = '0';
        memcpy(out + i, digits, n);
        return i + n;
    }
    for (k = 0; k < (size_t)point; k++)
        out[i++] = k < n ? digits[k] : '0';
    if ((size_t)point < n) {
        out[i++] = '.';
        memcpy(out + i, digits + point, n - (size_t)point);
        i += n - (size_t)point;
    }
    return i;
}

/* The shortest decimal that reads back as v, without an exponent. */
static size_t format_double(double v, char *out)
{
    static const double tens[] = { 1, 10, 100, 1e3, 1e4, 1e5, 1e6 };
    char g[32];
    size_t k;
    int precision;
    /* Fast path: v is m / 10^k for an integer m below 2^53 (prices, rates). */
    for (k = 0; k < sizeof tens / sizeof tens[0]; k++) {
        double m = rint(v * tens[k]);
        if (fabs(m) < EXACT_INT && m / tens[k] == v && (m != 0 || !signbit(v))) {
            char digits[24];
            size_t n = format_int((int64_t)m, digits), neg = m < 0, i = 0;
            if (k == 0) {
                memcpy(out, digits, n);
                return n;
            }
            if (neg)
                out[i++] = '-';
            if (n - neg <= k) { /* 0.0ddd */
                out[i++] = '0';
                out[i++] = '.';
                memset(out + i, '0', k - (n - neg));
                i += k - (n - neg);
                memcpy(out + i, digits + neg, n - neg);
                return i + n - neg;
            }
            memcpy(out + i, digits + neg, n - neg - k);
            i += n - neg - k;
            out[i++] = '.';
            memcpy(out + i, digits + n - k, k);
            return i + k;
        }
    }
    /* 15 significant digits give every value that has a shorter form. */
    for (precision = 15; precision < 17; precision++) {
        snprintf(g, sizeof g, "%.*g", precision, v);
        if (strtod(g, NULL) == v)
            return plain_decimal(g, out);
    }
    snprintf(g, sizeof g, "%.17g", v);
    return plain_decimal(g, out);
}

/* Appends the value at idx as one field; -1 with p filled when it cannot be written. */
static int append_value(struct encoder *e, lua_State *L, int idx, struct problem *p)
{
    char text[400]; /* 1e308 written out has 309 digits */
    size_t n, bad;
    const char *s;
    int quote;
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        s = lua_tolstring(L, idx, &n);
        quote = scan_field(e, (const unsigned char *)s, n, &bad);
        if (bad < n) {
            snprintf(p->text, sizeof p->text, s[bad] ? "is not valid UTF-8 (at byte %lu)"
                     : "holds a NUL byte (at byte %lu), which the APIs do not take", (unsigned long)bad + 1);
            return -1;
        }
        return quote ? append_quoted(e, s, n) : append_bytes(e, s, n);
    case LUA_TNUMBER: {
        int64_t i;
        lua_Number v;
        if (csvup_tointeger(L, idx, &i))
            return buffer_append(&e->out, text, format_int(i, text));
        v = lua_tonumber(L, idx);
        if (!isfinite(v)) {
            snprintf(p->text, sizeof p->text, "is not a finite number");
            return -1;
        }
        return buffer_append(&e->out, text, format_double(v, text));
    }
    case LUA_TBOOLEAN:
        s = lua_toboolean(L, idx) ? e->true_text : e->false_text;
        return append_text(e, s, strlen(s));
    case LUA_TNIL:
        return append_text(e, e->null_text, strlen(e->null_text));
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) /* cjson.null */
            return append_text(e, e->null_text, strlen(e->null_text));
        /* fall through */
    default:
        snprintf(p->text, sizeof p->text, "is a %s, not a string, number or boolean", luaL_typename(L, idx));
        return -1;
    }
}

static const char *key_text(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(L, idx) : luaL_typename(L, idx);
}

/* Pushes nil and an invalid_value error naming the row, and the column at column_idx if not 0. */
static int row_error(lua_State *L, lua_Integer row, int column_idx, const char *what)
{
    lua_pushnil(L);
    csvup_push_error(L, KIND_INPUT, "invalid_value", "");
    lua_pushinteger(L, row);
    lua_setfield(L, -2, "row");
    if (column_idx) {
        lua_pushvalue(L, column_idx);
        lua_setfield(L, -2, "column");
        lua_pushfstring(L, "row %d, column %s: the value %s", (int)row, key_text(L, column_idx), what);
    } else {
        lua_pushfstring(L, "row %d: %s", (int)row, what);
    }
    lua_setfield(L, -2, "message");
    return 2;
}

/* With strict on, finds a key of the record at row_idx that is not a column. */
static int stray_key(lua_State *L, int row_idx, int columns_idx, size_t ncolumns)
{
    size_t c;
    lua_pushnil(L);
    while (lua_next(L, row_idx)) {
        int known = 0;
        lua_pop(L, 1);
        for (c = 1; c <= ncolumns && !known; c++) {
            lua_rawgeti(L, columns_idx, (int)c);
            known = lua_rawequal(L, -1, -2);
            lua_pop(L, 1);
        }
        if (!known)
            return 1; /* the key is left on the stack */
    }
    return 0;
}

/* Finds a key of the row at row_idx, written by position, that is not one of
 * its positions 1..n (left on the stack). */
static int stray_index(lua_State *L, int row_idx, size_t n)
{
    int64_t k;
    lua_pushnil(L);
    while (lua_next(L, row_idx)) {
        lua_pop(L, 1);
        if (!csvup_tointeger(L, -1, &k) || k < 1 || (uint64_t)k > n)
            return 1;
    }
    return 0;
}

/* Appends the row at index row (its number in errors: number) and its line
 * end to e->out: 0, or 2 with nil and an error pushed. */
static int append_row(struct encoder *e, lua_State *L, int row, int columns, lua_Integer number)
{
    struct problem p;
    size_t c, ncols;
    int positional, top = lua_gettop(L), value = top + 1;
    if (!lua_istable(L, row)) {
        snprintf(p.text, sizeof p.text, "is a %s, not a table", luaL_typename(L, row));
        return row_error(L, number, 0, p.text);
    }
    lua_rawgeti(L, row, 1);
    positional = !lua_isnil(L, -1);
    lua_pop(L, 1);
    ncols = e->has_columns ? e->ncolumns : lua_rawlen(L, row);
    for (c = 1; c <= ncols; c++) {
        if (c > 1 && buffer_append(&e->out, &e->delimiter, 1))
            return luaL_error(L, "csv: out of memory");
        if (positional || !e->has_columns) {
            lua_rawgeti(L, row, (int)c);
        } else {
            lua_rawgeti(L, columns, (int)c);
            lua_rawget(L, row);
        }
        if (append_value(e, L, value, &p)) {
            if (positional || !e->has_columns)
                lua_pushinteger(L, (lua_Integer)c);
            else
                lua_rawgeti(L, columns, (int)c);
            return row_error(L, number, lua_gettop(L), p.text);
        }
        lua_pop(L, 1);
    }
    if (!e->has_columns && stray_index(L, row, ncols))
        return row_error(L, number, 0, lua_pushfstring(L,
            "has the key '%s' beside its fields by position (rows of named fields keep every key)", key_text(L, -1)));
    if (e->strict && e->has_columns) {
        if (positional && lua_rawlen(L, row) > ncols)
            return row_error(L, number, 0, "has more fields than the header");
        if (!positional && stray_key(L, row, columns, ncols))
            return row_error(L, number, 0, lua_pushfstring(L,
                "has the column '%s', which is not in the header (taken from the first rows written:"
                " name every column with columns = {...})", key_text(L, -1)));
    }
    if (buffer_puts(&e->out, e->eol))
        return luaL_error(L, "csv: out of memory");
    lua_settop(L, top);
    return 0;
}

/* encoder:rows(rows, i, j, first_number) -> text | nil, err
 * Encodes rows[i..j]; first_number is the row number of rows[i] in errors. */
static int encoder_rows(lua_State *L)
{
    struct encoder *e = luaL_checkudata(L, 1, ENCODER_MT);
    lua_Integer i = luaL_checkinteger(L, 3), j = luaL_checkinteger(L, 4), r;
    lua_Integer number = luaL_optinteger(L, 5, i) - i;
    const int rows = 2, columns = 6, row = 7;
    luaL_checktype(L, rows, LUA_TTABLE);
    lua_settop(L, 5);
    csvup_getuservalue(L, 1); /* columns, or nil */
    buffer_clear(&e->out);
    for (r = i; r <= j; r++) {
        lua_settop(L, columns);
        lua_rawgeti(L, rows, (int)r);
        if (append_row(e, L, row, columns, r + number)) {
            e->out.len = 0;
            return 2;
        }
    }
    lua_pushlstring(L, e->out.data ? e->out.data : "", e->out.len);
    e->out.len = 0; /* what a stream writes next starts empty */
    if (e->out.cap > (1u << 20)) /* do not keep a huge batch's buffer */
        buffer_free(&e->out);
    return 1;
}

/* The FILE* of the open Lua file handle at idx; raises when it is closed. */
static FILE *stream_file(lua_State *L, int idx)
{
#if LUA_VERSION_NUM >= 502
    luaL_Stream *s = luaL_checkudata(L, idx, LUA_FILEHANDLE);
    if (!s->closef)
        luaL_error(L, "csv: the writer's file is closed");
    return s->f;
#else
    FILE **f = luaL_checkudata(L, idx, LUA_FILEHANDLE);
    if (!*f)
        luaL_error(L, "csv: the writer's file is closed");
    return *f;
#endif
}

/* Writes what the stream encoded to its file: 0, or 2 with nil, err pushed. */
static int drain(lua_State *L, struct encoder *e, FILE *f)
{
    char why[128];
    if (e->out.len && fwrite(e->out.data, 1, e->out.len, f) != e->out.len) {
        lua_pushnil(L);
        csvup_push_error(L, KIND_INPUT, "write_error", csvup_strerror(errno, why, sizeof why));
        return 2;
    }
    e->stream_bytes += e->out.len;
    e->out.len = 0;
    return 0;
}

/* The write of encoder:stream: (self, row) -> true | nil, err.
 * Upvalues: the encoder, the file handle, the columns. */
static int encoder_write(lua_State *L)
{
    struct encoder *e = lua_touserdata(L, lua_upvalueindex(1));
    FILE *f = stream_file(L, lua_upvalueindex(2));
    lua_settop(L, 2);
    if (append_row(e, L, 2, lua_upvalueindex(3), e->next_row))
        return 2;
    e->next_row++;
    e->stream_rows++;
    if (e->out.len >= STREAM_CHUNK && drain(L, e, f))
        return 2;
    lua_pushboolean(L, 1);
    return 1;
}

/* encoder:stream(file, first_number) -> write(self, row): one row at a time
 * into the encoder's buffer, written to the file every 64 KB and at drain. */
static int encoder_stream(lua_State *L)
{
    struct encoder *e = luaL_checkudata(L, 1, ENCODER_MT);
    stream_file(L, 2);
    e->next_row = luaL_checkinteger(L, 3);
    e->out.len = 0;
    e->stream_bytes = e->stream_rows = 0;
    lua_settop(L, 2);
    csvup_getuservalue(L, 1);
    lua_pushcclosure(L, encoder_write, 3);
    return 1;
}

/* encoder:drain(file) -> bytes, rows written since the last drain | nil, err */
static int encoder_drain(lua_State *L)
{
    struct encoder *e = luaL_checkudata(L, 1, ENCODER_MT);
    if (drain(L, e, stream_file(L, 2)))
        return 2;
    lua_pushinteger(L, (lua_Integer)e->stream_bytes);
    lua_pushinteger(L, (lua_Integer)e->stream_rows);
    e->stream_bytes = e->stream_rows = 0;
    return 2;
}

/* Whether the key at a sorts before the key at b, by their text. */
static int key_before(lua_State *L, int a, int b)
{
    const char *x, *y;
    a = a < 0 ? lua_gettop(L) + a + 1 : a;
    b = b < 0 ? lua_gettop(L) + b + 1 : b;
    lua_pushvalue(L, a);
    lua_pushvalue(L, b);
    x = lua_isstring(L, -2) ? lua_tostring(L, -2) : luaL_typename(L, -2);
    y = lua_isstring(L, -1) ? lua_tostring(L, -1) : luaL_typename(L, -1);
    a = strcmp(x, y) < 0;
    lua_pop(L, 2);
    return a;
}

/* core.csv_columns(rows, i, j) -> the union of the records' keys in
 * rows[i..j], in first-seen order; the keys one row adds are sorted, since
 * a table's own order is not its insertion order. Arrays are skipped. */
int csv_columns(lua_State *L)
{
    lua_Integer i = luaL_checkinteger(L, 2), j = luaL_checkinteger(L, 3), r;
    const int rows = 1, seen = 4, columns = 5, row = 6;
    int n = 0;
    luaL_checktype(L, rows, LUA_TTABLE);
    lua_settop(L, 3);
    lua_newtable(L);
    lua_newtable(L);
    for (r = i; r <= j; r++) {
        int first = n, k;
        lua_settop(L, columns);
        lua_rawgeti(L, rows, (int)r);
        if (!lua_istable(L, row))
            continue;
        lua_rawgeti(L, row, 1);
        if (!lua_isnil(L, -1))
            continue; /* an array */
        lua_pop(L, 1);
        lua_pushnil(L);
        while (lua_next(L, row)) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_rawget(L, seen);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushvalue(L, -1);
                lua_pushboolean(L, 1);
                lua_rawset(L, seen);
                lua_pushvalue(L, -1);
                lua_rawseti(L, columns, ++n);
            } else {
                lua_pop(L, 1);
            }
        }
        for (k = first + 2; k <= n; k++) { /* insertion sort of the keys this row added */
            int m = k;
            lua_rawgeti(L, columns, k);
            while (m > first + 1) {
                lua_rawgeti(L, columns, m - 1);
                if (!key_before(L, -2, -1)) {
                    lua_pop(L, 1);
                    break;
                }
                lua_rawseti(L, columns, m--);
            }
            lua_rawseti(L, columns, m);
        }
    }
    lua_settop(L, columns);
    return 1;
}

static int encoder_gc(lua_State *L)
{
    struct encoder *e = luaL_checkudata(L, 1, ENCODER_MT);
    buffer_free(&e->out);
    return 0;
}

static void copy_option(lua_State *L, const char *name, char *out, const char *fallback)
{
    size_t n = strlen(fallback);
    const char *s = fallback;
    lua_getfield(L, 1, name);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "csv: option '%s' must be a string", name);
        s = lua_tolstring(L, -1, &n);
    }
    if (n >= TEXT_MAX || strlen(s) != n)
        luaL_error(L, "csv: option '%s' must be shorter than %d bytes, without NUL", name, TEXT_MAX);
    memcpy(out, s, n + 1);
    lua_pop(L, 1);
}

/* core.csv_encoder{ delimiter, eol, null, true_text, false_text, columns?, strict? } */
int csv_encoder_new(lua_State *L)
{
    struct encoder *e;
    char delimiter[TEXT_MAX];
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    e = lua_newuserdata(L, sizeof *e);
    memset(e, 0, sizeof *e);
    luaL_getmetatable(L, ENCODER_MT);
    lua_setmetatable(L, -2);
    e->out.limit = (size_t)-1;
    copy_option(L, "delimiter", delimiter, ",");
    copy_option(L, "eol", e->eol, "\n");
    copy_option(L, "null", e->null_text, "");
    copy_option(L, "true_text", e->true_text, "true");
    copy_option(L, "false_text", e->false_text, "false");
    if (strlen(delimiter) != 1 || (unsigned char)delimiter[0] >= 0x80 || strchr("\"\r\n", delimiter[0]))
        return luaL_error(L, "csv: delimiter must be one ASCII byte other than a quote or a line break");
    if (strcmp(e->eol, "\n") != 0 && strcmp(e->eol, "\r\n") != 0)
        return luaL_error(L, "csv: eol must be \"\\n\" or \"\\r\\n\"");
    e->delimiter = delimiter[0];
    e->special[(unsigned char)e->delimiter] = e->special['"'] = e->special['\r'] = e->special['\n'] = 1;
    lua_getfield(L, 1, "strict");
    e->strict = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "columns");
    if (lua_istable(L, -1)) {
        e->has_columns = 1;
        e->ncolumns = lua_rawlen(L, -1);
        csvup_setuservalue(L, 2);
    } else {
        luaL_argcheck(L, lua_isnil(L, -1), 1, "columns must be an array");
        lua_pop(L, 1);
    }
    return 1;
}

void csv_init(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "rows", encoder_rows },
        { "stream", encoder_stream },
        { "drain", encoder_drain },
        { NULL, NULL }
    };
    csvup_class(L, ENCODER_MT, methods, encoder_gc, NULL, NULL);
}
