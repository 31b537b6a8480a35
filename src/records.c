#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lualib.h>

#include "error.h"
#include "plan.h"
#include "reader.h"
#include "cp1251.h"
#include "records.h"
#include "digest.h"
#include "file.h"
#include "recode.h"

#define READER_MT "csvup.csv_reader"
struct records {
    struct reader r;
    FILE *f;          /* a file, or NULL for an object with a read method */
    int owned;        /* the file is ours to close */
    int open;         /* records are left to read */
    int busy;         /* a read method runs: the reader must not be re-entered */
    lua_State *L;     /* the state of the call reading, for the read method */
    int source, pending; /* registry references: the object, the string it gave last */
    const char *rest; /* what is left of that string */
    size_t rest_len;
    size_t ncolumns;  /* fields of the header */
    char name[256];   /* the file, for errors */
    int hashing;      /* every byte read from the file goes through sha */
    struct digest sha;
    struct digest_thread hasher; /* hashes into sha what the reader read while the reader checks it */
    struct cp1251_source decoder; /* with encoding = "cp1251": between the bytes and the reader */
    char measure_to;      /* with measure = d: the bytes of the file recoded to delimiter d are counted */
    int measured_one;     /* a record that is not blank was counted */
    long long measured;
};

/* With measure: counts the record the reader holds as the recoder writes it. */
static void measure_record(struct records *rs)
{
    if (!rs->measure_to)
        return;
    rs->measured += recode_measure_record(&rs->r, rs->measure_to, !rs->measured_one);
    rs->measured_one |= !rs->r.blank;
}

/* The file for the reader, through reader_file_source, and into sha as
 * well when hashing (the file's digest comes from the pass that checks it,
 * with no second read). */
static long file_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    struct records *rs = ctx;
    long got = reader_file_source(rs->f, buf, n, message, size);
    if (got > 0 && rs->hashing)
        digest_give(&rs->hasher, buf, (size_t)got);
    return got;
}

/* A reader_source over an object's read method: source:read(n) gives a
 * string (of any length) or nil at the end; it runs under lua_pcall. */
static long method_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    struct records *rs = ctx;
    lua_State *L = rs->L;
    while (rs->rest_len == 0) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, rs->source);
        lua_getfield(L, -1, "read");
        lua_insert(L, -2);
        lua_pushinteger(L, (lua_Integer)n);
        if (lua_pcall(L, 2, 1, 0) != 0 || (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TSTRING)) {
            snprintf(message, size, "the source's read method %s: %s",
                     lua_type(L, -1) == LUA_TSTRING ? "failed" : "returned neither a string nor nil",
                     lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : luaL_typename(L, -1));
            lua_pop(L, 1);
            return -1;
        }
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            return 0;
        }
        rs->rest = lua_tolstring(L, -1, &rs->rest_len);
        lua_rawseti(L, LUA_REGISTRYINDEX, rs->pending); /* keeps rest alive */
    }
    if (n > rs->rest_len)
        n = rs->rest_len;
    memcpy(buf, rs->rest, n);
    rs->rest += n;
    rs->rest_len -= n;
    return (long)n;
}

/* reader_next, with the state a read method needs, never re-entered. */
static int read_record(lua_State *L, struct records *rs)
{
    int rc;
    if (rs->busy)
        luaL_error(L, "csv: the reader was called from its own source's read method");
    rs->busy = 1;
    rs->L = L;
    rc = reader_next(&rs->r);
    rs->busy = 0;
    return rc;
}

static int flag_of(lua_State *L, int t, const char *name)
{
    int on;
    lua_getfield(L, t, name);
    on = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return on;
}

/* Sets the place of an error of the file (the table on top). */
static void place(lua_State *L, const char *name, long long line, long long column)
{
    lua_pushstring(L, name);
    lua_setfield(L, -2, "file");
    if (line > 0) {
        lua_pushinteger(L, (lua_Integer)line);
        lua_setfield(L, -2, "line");
    }
    if (column > 0) {
        lua_pushinteger(L, (lua_Integer)column);
        lua_setfield(L, -2, "column");
    }
}

static void push_read_error(lua_State *L, struct records *rs)
{
    csvup_push_error(L, KIND_INPUT, rs->r.error.code, rs->r.error.message);
    place(L, rs->name, rs->r.error.line, rs->r.error.column);
}

static void close_file(struct records *rs)
{
    if (rs->f && rs->owned)
        fclose(rs->f);
    rs->f = NULL;
    rs->open = 0;
}

#define OTHER_WIDTH (-2)
#define BLANK 2

/* The next line: 1 for a record, BLANK for an empty line where the header
 * has more than one field (it is skipped), 0 at the end (the file closed),
 * -1 with r.error set, or OTHER_WIDTH for a record with another number of
 * fields than the header. */
static int next_line(lua_State *L, struct records *rs)
{
    int rc;
    if (!rs->open)
        return 0;
    rc = read_record(L, rs);
    if (rc == 0)
        close_file(rs);
    if (rc > 0)
        measure_record(rs);
    if (rc > 0 && rs->r.blank && rs->ncolumns > 1)
        return BLANK;
    return rc > 0 && rs->r.nfields != rs->ncolumns ? OTHER_WIDTH : rc;
}

/* The next record, blank lines skipped: as next_line, never BLANK. */
static int next_row(lua_State *L, struct records *rs)
{
    int rc;
    do
        rc = next_line(L, rs);
    while (rc == BLANK);
    return rc;
}

/* The next record with as many fields as the header: 1, 0 at the end, or -1
 * with the error pushed. */
static int next_record(lua_State *L, struct records *rs)
{
    int rc = next_row(L, rs);
    if (rc == -1) {
        push_read_error(L, rs);
        return -1;
    }
    if (rc == OTHER_WIDTH) {
        lua_pushfstring(L, "%d fields where the header has %d", (int)rs->r.nfields, (int)rs->ncolumns);
        csvup_push_error(L, KIND_INPUT, "malformed_csv", lua_tostring(L, -1));
        lua_remove(L, -2);
        place(L, rs->name, rs->r.record_line, 0);
        return -1;
    }
    return rc;
}

/* The most header names the iterator keeps as upvalues, one each (a push
 * of an upvalue costs less than a read of the header table, ~3% of
 * csv.rows); a wider file's iterator reads the header. */
#define NAMES_AS_UPVALUES 250

/* The iterator of reader:records(): each record keyed by the header, and its
 * line; raises the error of a malformed record. Upvalues: reader, "", then
 * the header's names or the header itself. */
static int records_iterate(lua_State *L)
{
    struct records *rs = lua_touserdata(L, lua_upvalueindex(1));
    const int empty = lua_upvalueindex(2), names = rs->ncolumns <= NAMES_AS_UPVALUES;
    size_t i;
    int rc = next_record(L, rs);
    if (rc < 0)
        return lua_error(L);
    if (rc == 0)
        return 0;
    lua_createtable(L, 0, (int)rs->ncolumns);
    for (i = 0; i < rs->ncolumns; i++) {
        if (names)
            lua_pushvalue(L, lua_upvalueindex((int)i + 3));
        else
            lua_rawgeti(L, lua_upvalueindex(3), (int)i + 1);
        if (rs->r.fields[i].len)
            lua_pushlstring(L, rs->r.fields[i].data, rs->r.fields[i].len);
        else /* Lua 5.4 makes "" through its cache of C strings, with a strcmp */
            lua_pushvalue(L, empty);
        lua_rawset(L, -3);
    }
    lua_pushinteger(L, (lua_Integer)rs->r.record_line);
    return 2;
}

/* reader:records() -> iterator */
static int records_records(lua_State *L)
{
    struct records *rs = luaL_checkudata(L, 1, READER_MT);
    size_t i;
    lua_settop(L, 1);
    lua_pushliteral(L, "");
    csvup_getuservalue(L, 1); /* the header */
    if (rs->ncolumns <= NAMES_AS_UPVALUES) {
        luaL_checkstack(L, (int)rs->ncolumns, "csv: too many columns");
        for (i = 0; i < rs->ncolumns; i++)
            lua_rawgeti(L, 3, (int)i + 1);
        lua_remove(L, 3);
    }
    lua_pushcclosure(L, records_iterate, lua_gettop(L));
    return 1;
}

/* Takes the records at the start of the buffer that plan_pass passes as
 * read: their bytes, 0 when it passes none. */
static size_t pass_quickly(struct records *rs, const struct plan *p)
{
    long long lines;
    size_t passed = plan_pass(p, rs->r.delimiter, rs->r.limit, rs->r.buf + rs->r.start, rs->r.end - rs->r.start,
                              &lines);
    if (rs->measure_to && passed)
        rs->measured += recode_measure(rs->r.buf + rs->r.start, passed, rs->r.delimiter, rs->measure_to);
    reader_skip(&rs->r, passed, lines);
    return passed;
}

/* reader:check(plan) -> problem count | nil, err: every remaining record
 * through the plan's checks (see plan.h); problems go to plan.problems. */
static int records_check(lua_State *L)
{
    struct records *rs = luaL_checkudata(L, 1, READER_MT);
    struct plan p;
    int rc;
    lua_settop(L, 2);
    csvup_getuservalue(L, 1);
    plan_compile(L, 2, 3, &p);
    if (p.ncolumns != rs->ncolumns)
        return luaL_error(L, "csvup: the check plan and the header differ");
    for (;;) {
        pass_quickly(rs, &p);
        if ((rc = next_record(L, rs)) <= 0)
            break;
        plan_check_fields(L, &p, rs->r.fields, (lua_Integer)rs->r.record_line);
    }
    if (rc < 0) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushinteger(L, p.total);
    return 1;
}

/* Closes the file and frees what the reader holds; safe to call again. */
static void records_release(struct records *rs)
{
    close_file(rs);
    digest_thread_stop(&rs->hasher);
    digest_free(&rs->sha);
    rs->hashing = 0;
    reader_free(&rs->r);
}

/* reader:sha256() -> hex, size | nil, err: the digest of the whole file (with
 * sha256 = true); what the checks did not read yet is read for it now. */
static int records_sha256(lua_State *L)
{
    struct records *rs = luaL_checkudata(L, 1, READER_MT);
    unsigned char chunk[1 << 16];
    char hex[DIGEST_HEX], message[160];
    long got = 0;
    luaL_argcheck(L, rs->hashing, 1, "the reader was opened on a file without sha256 = true");
    while (rs->f && (got = file_source(rs, chunk, sizeof chunk, message, sizeof message)) > 0)
        ;
    digest_thread_stop(&rs->hasher); /* everything given is hashed */
    if (got < 0)
        return csvup_fail(L, KIND_INPUT, "file_unreadable", "%s: %s", rs->name, message);
    lua_pushinteger(L, (lua_Integer)rs->sha.length);
    digest_final(&rs->sha, hex);
    rs->hashing = 0;
    lua_pushstring(L, hex);
    lua_insert(L, -2);
    return 2;
}

/* reader:measured() -> the bytes of the file recoded (with measure = d) |
 * nil when the reader did not read every record. */
static int records_measured(lua_State *L)
{
    struct records *rs = luaL_checkudata(L, 1, READER_MT);
    if (!rs->measure_to || rs->open || rs->r.error.code)
        return 0;
    lua_pushinteger(L, (lua_Integer)rs->measured);
    return 1;
}

static int records_close(lua_State *L)
{
    struct records *rs = luaL_checkudata(L, 1, READER_MT);
    if (rs->busy)
        return luaL_error(L, "csv: the reader was closed from its own source's read method");
    records_release(rs);
    luaL_unref(L, LUA_REGISTRYINDEX, rs->source);
    luaL_unref(L, LUA_REGISTRYINDEX, rs->pending);
    rs->source = rs->pending = LUA_NOREF;
    return 0;
}

/* A path to read records from, whatever it is (a FIFO included). NULL with nil, err pushed. */
static FILE *open_path(lua_State *L, const char *path)
{
    char why[128];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    FILE *f = fd < 0 ? NULL : fdopen(fd, "rb");
    if (!f) {
        if (fd >= 0)
            close(fd);
        csvup_fail(L, KIND_INPUT, errno == ENOENT ? "file_not_found" : "file_unreadable", "%s",
                   csvup_strerror(errno, why, sizeof why));
        place(L, path, 0, 0);
    }
    return f;
}

/* The FILE* of an open Lua file handle at idx, or NULL. */
static FILE *file_handle(lua_State *L, int idx)
{
#if LUA_VERSION_NUM >= 502
    luaL_Stream *s = luaL_testudata(L, idx, LUA_FILEHANDLE);
    return s && s->closef ? s->f : NULL;
#else
    FILE **f = luaL_testudata(L, idx, LUA_FILEHANDLE);
    return f ? *f : NULL;
#endif
}

/* core.csv_reader(source, { delimiter?, utf8?, regular?, record_limit?, name? })
 *   -> reader, header | nil, err
 * source: a path or a csvup.file (read from its descriptor, never opened
 * again), an open file handle, or an object with a read method.
 * delimiter: one byte, or "auto" for the most frequent of , ; tab | in the
 * first line; utf8: invalid UTF-8 is an error (a path must name a regular
 * file); sha256: hash the file's bytes as they are read (reader:sha256());
 * encoding: "utf-8" (the default) or "cp1251", read as UTF-8; measure: a
 * delimiter, the file's records are counted as core.recoder writes them with
 * it (reader:measured()).
 * The header is read at once (at most 64 KB). */
int records_open(lua_State *L)
{
    struct records *rs;
    const char *delimiter, *name, *encoding;
    size_t delimiter_len, i;
    lua_Integer limit;
    int rc, cp1251, opened;
    reader_source source;
    void *source_ctx;
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    lua_getfield(L, 2, "delimiter");
    delimiter = luaL_optlstring(L, -1, ",", &delimiter_len);
    if (strcmp(delimiter, "auto") == 0)
        delimiter_len = 0;
    else if (delimiter_len != 1 || strchr("\"\r\n", delimiter[0]))
        return luaL_error(L, "csv: delimiter must be one byte other than a quote or a line break, or \"auto\"");
    lua_getfield(L, 2, "record_limit");
    limit = luaL_optinteger(L, -1, READER_RECORD_LIMIT);
    luaL_argcheck(L, limit > 0, 2, "record_limit must be positive");
    lua_getfield(L, 2, "name");
    name = lua_type(L, 1) == LUA_TSTRING ? lua_tostring(L, 1) : luaL_optstring(L, -1, "input");
    /* a path to check is a regular file (a FIFO would be read once, /dev/zero forever) */
    opened = (lua_type(L, 1) == LUA_TSTRING && flag_of(L, 2, "regular")) || file_test(L, 1);
    lua_getfield(L, 2, "encoding");
    encoding = luaL_optstring(L, -1, "utf-8");
    cp1251 = strcmp(encoding, "cp1251") == 0;
    if (!cp1251 && strcmp(encoding, "utf-8") != 0)
        return luaL_error(L, "csv: encoding must be \"utf-8\" or \"cp1251\"");
    rs = lua_newuserdata(L, sizeof *rs);
    memset(rs, 0, sizeof *rs);
    luaL_getmetatable(L, READER_MT);
    lua_setmetatable(L, -2);
    rs->source = rs->pending = LUA_NOREF;
    snprintf(rs->name, sizeof rs->name, "%s", name);
    lua_getfield(L, 2, "measure");
    if (!lua_isnil(L, -1)) {
        size_t to_len;
        const char *to = luaL_checklstring(L, -1, &to_len);
        luaL_argcheck(L, to_len == 1 && !strchr("\"\r\n", to[0]), 2, "measure must be one delimiter byte");
        rs->measure_to = to[0];
    }
    lua_pop(L, 1);
    if (opened) {
        if (!(rs->f = file_stream(L, 1, &name))) {
            place(L, name, 0, 0);
            return 2;
        }
        snprintf(rs->name, sizeof rs->name, "%s", name);
        rs->owned = 1;
    } else if (lua_type(L, 1) == LUA_TSTRING) {
        if (!(rs->f = open_path(L, name)))
            return 2;
        rs->owned = 1;
    } else if (!(rs->f = file_handle(L, 1))) {
        lua_pushvalue(L, 1);
        rs->source = luaL_ref(L, LUA_REGISTRYINDEX);
        lua_pushboolean(L, 0);
        rs->pending = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    rs->open = 1;
    rs->L = L;
    rs->hashing = rs->f && flag_of(L, 2, "sha256");
    if (rs->hashing && digest_init(&rs->sha) != 0)
        return luaL_error(L, "out of memory");
    rs->hasher.d = &rs->sha; /* hashing at once until the thread starts */
    source = rs->f ? file_source : method_source;
    source_ctx = rs;
    if (cp1251) {
        rs->decoder.read = source;
        rs->decoder.ctx = source_ctx;
        source = cp1251_source;
        source_ctx = &rs->decoder;
    }
    if (reader_open(&rs->r, source, source_ctx,
                    delimiter_len ? delimiter[0] : 0, flag_of(L, 2, "utf8"), (size_t)limit) < 0
        || (rc = read_record(L, rs)) < 0) {
        lua_pushnil(L);
        push_read_error(L, rs);
        close_file(rs);
        return 2;
    }
    if (rc > 0)
        measure_record(rs);
    rs->ncolumns = rc ? rs->r.nfields : 0;
    if (rs->hashing)
        digest_thread_start(&rs->hasher, &rs->sha);
    lua_createtable(L, (int)rs->ncolumns, 0); /* the reader's own, which the caller cannot change */
    lua_createtable(L, (int)rs->ncolumns, 0);
    for (i = 0; i < rs->ncolumns; i++) {
        lua_pushlstring(L, rs->r.fields[i].data, rs->r.fields[i].len);
        lua_pushvalue(L, -1);
        lua_rawseti(L, -4, (int)i + 1);
        lua_rawseti(L, -2, (int)i + 1);
    }
    lua_insert(L, -2);
    csvup_setuservalue(L, -3);
    return 2;
}

void records_init(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "records", records_records },
        { "check", records_check },
        { "sha256", records_sha256 },
        { "measured", records_measured },
        { "close", records_close },
        { NULL, NULL }
    };
    csvup_class(L, READER_MT, methods, records_close, records_close, NULL);
}
