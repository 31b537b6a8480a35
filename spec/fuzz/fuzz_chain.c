/* The body pipeline (stage.h). Any chain of stages over a string equals the
 * stages' reference behaviour composed: the recoder over a stream of its
 * own, UTF-8 checked by utf8_text_prefix, SHA-256 of the bytes, their count;
 * read in pieces of any size, and again after a rewind. And the recoder
 * alone: a stream of the file, the Windows-1251 decoding (or none), the CSV
 * reader and the recoding to another delimiter. On any input: the same
 * output whatever sizes it is read in, every read filled whole but at the
 * end, and that output read back gives the records the reader gives on the
 * input, field for field (blank lines dropped), up to the same error; and
 * its size is what the check's measure gives, record by record and over
 * the raw records. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "recode.h"
#include "stage.h"
#include "utf8.h"

#include <lauxlib.h>

#define OUT_MAX (1 << 20)

static const char DELIMITERS[] = ",;\t|";

struct out {
    char *data;
    size_t len;
    int failed;
};

/* The whole recoded stream, read in pieces of `piece` bytes (0: varying). */
static void recode_all(struct recode *rc, size_t piece, struct out *o)
{
    size_t i = 0;
    o->len = 0;
    o->failed = 0;
    if (recode_rewind(rc) < 0) {
        o->failed = 1;
        return;
    }
    for (;;) {
        size_t want = piece ? piece : 1 + (i++ * 7919) % 4099;
        long n;
        if (want > OUT_MAX - o->len)
            want = OUT_MAX - o->len;
        if (want == 0)
            abort(); /* more output than a small input can give */
        n = recode_read(rc, o->data + o->len, want);
        if (n < 0) {
            o->failed = 1;
            return;
        }
        o->len += (size_t)n;
        if ((size_t)n < want) {
            if (recode_read(rc, o->data + o->len, 1) != 0)
                abort(); /* a short read that was not the end */
            return;
        }
    }
}

/* The recoded size as the check measures it: the first record by its
 * fields, the rest over their bytes as the reader read them (one by one, and
 * all at once when they are the input's), and each by its fields as well;
 * -1 when the reader fails or the measures differ. */
static long long measured(struct recode *rc, const uint8_t *data, size_t size)
{
    struct reader r;
    struct cp1251_source decoder;
    long long by_bytes = 0, by_fields = 0, head = 0, rest = -1;
    int got, first = 1;
    FILE *f = fmemopen(size ? (void *)data : "", size ? size : 1, "rb");
    if (!f)
        return -1;
    if (!size)
        fgetc(f);
    memset(&decoder, 0, sizeof decoder);
    decoder.read = reader_file_source;
    decoder.ctx = f;
    got = reader_open(&r, rc->cp1251 ? cp1251_source : reader_file_source, rc->cp1251 ? (void *)&decoder : (void *)f,
                      rc->in_delimiter, 0, READER_RECORD_LIMIT);
    while (got == 0) {
        long long before = r.offset + (long long)r.start, n;
        if ((got = reader_next(&r)) <= 0)
            break;
        n = recode_measure_record(&r, rc->out_delimiter, first);
        by_fields += n;
        by_bytes += first ? n : recode_measure(r.buf + r.start - (r.offset + (long long)r.start - before),
                                               (size_t)(r.offset + (long long)r.start - before), r.delimiter,
                                               rc->out_delimiter);
        if (first && !r.blank) {
            head = by_fields;
            rest = r.offset + (long long)r.start;
        }
        first &= r.blank;
        got = 0;
    }
    if (got == 0 && !rc->cp1251 && rest >= 0
        && head + recode_measure(data + rest, size - (size_t)rest, r.delimiter, rc->out_delimiter) != by_fields)
        got = -1;
    reader_free(&r);
    fclose(f);
    return got < 0 || by_bytes != by_fields ? -1 : by_fields;
}

/* The next record that is not blank (nor one empty field, which is written as a blank line). */
static int next_record(struct reader *r)
{
    int rc;
    while ((rc = reader_next(r)) > 0 && (r->blank || (r->nfields == 1 && r->fields[0].len == 0)))
        ;
    return rc;
}

/* The recoder over a stream: the same output whatever sizes it is read in, and that output read back
 * gives the input's records; its size is what the check measures. */
static void recoder_alone(const uint8_t *data, size_t size)
{
    struct recode rc;
    struct reader in, back;
    struct cp1251_source decoder;
    struct out pieces, whole;
    FILE *f, *g, *h;
    int a, b;
    memset(&rc, 0, sizeof rc);
    rc.in_delimiter = DELIMITERS[data[0] % 4];
    rc.out_delimiter = DELIMITERS[data[1] % 4];
    rc.cp1251 = data[2] & 1;
    rc.out.limit = 2 * READER_RECORD_LIMIT + 16;
    data += 4;
    size -= 4;
    if (!(f = fmemopen(size ? (void *)data : "", size ? size : 1, "rb")))
        return;
    if (!size)
        fgetc(f); /* an empty stream */
    rc.f = f;
    pieces.data = malloc(OUT_MAX);
    whole.data = malloc(OUT_MAX);
    recode_all(&rc, 0, &pieces);
    recode_all(&rc, OUT_MAX, &whole);
    /* a failed read hands out nothing of its buffer: only whole runs are compared */
    if (pieces.failed != whole.failed
        || (!whole.failed && (pieces.len != whole.len || memcmp(pieces.data, whole.data, whole.len))))
        abort();
    if (!whole.failed && measured(&rc, data, size) != (long long)whole.len)
        abort();

    /* the records: of the input, and of the output read back */
    g = fmemopen(size ? (void *)data : "", size ? size : 1, "rb");
    h = fmemopen(whole.len ? whole.data : "", whole.len ? whole.len : 1, "rb");
    if (!size)
        fgetc(g);
    if (!whole.len)
        fgetc(h);
    memset(&decoder, 0, sizeof decoder);
    decoder.read = reader_file_source;
    decoder.ctx = g;
    a = reader_open(&in, rc.cp1251 ? cp1251_source : reader_file_source, rc.cp1251 ? (void *)&decoder : (void *)g,
                    rc.in_delimiter, 0, READER_RECORD_LIMIT);
    b = reader_open(&back, reader_file_source, h, rc.out_delimiter, 0, READER_RECORD_LIMIT);
    if (a == 0 && b == 0) {
        for (;;) {
            size_t i;
            a = next_record(&in);
            b = next_record(&back);
            if (a <= 0 || b <= 0)
                break;
            if (in.nfields != back.nfields)
                abort();
            for (i = 0; i < in.nfields; i++)
                if (in.fields[i].len != back.fields[i].len
                    || memcmp(in.fields[i].data, back.fields[i].data, in.fields[i].len))
                    abort();
        }
        /* the output ends where the input's records end; a failed one holds a prefix of them */
        if (b != 0 || (!whole.failed && a != 0))
            abort();
    }
    reader_free(&in);
    reader_free(&back);
    reader_free(&rc.r);
    buffer_free(&rc.out);
    fclose(f);
    fclose(g);
    fclose(h);
    free(pieces.data);
    free(whole.data);
}

enum { RECODE, UTF8, SHA256, COUNTER, CHECK, KINDS };

/* The check's reference, with every column text: the reader (UTF-8 on)
 * reads every record, and each that is not blank (where the header has more
 * than one field) has the header's width. 0, or -1; *columns: the header's. */
static int check_reference(const char *in, size_t n, char delimiter, size_t *columns)
{
    struct reader r;
    int rc;
    FILE *f = fmemopen(n ? (void *)in : "", n ? n : 1, "rb");
    if (!f)
        abort();
    if (!n)
        fgetc(f);
    *columns = 0;
    if ((rc = reader_open(&r, reader_file_source, f, delimiter, 1, READER_RECORD_LIMIT)) == 0
        && (rc = reader_next(&r)) > 0) {
        *columns = r.nfields;
        while ((rc = reader_next(&r)) > 0)
            if (!(r.blank && *columns > 1) && r.nfields != *columns) {
                rc = -1;
                break;
            }
    }
    reader_free(&r);
    fclose(f);
    return rc < 0 ? -1 : 0;
}

/* (chain, columns, delimiter) -> stage_add_check's result, with a plan of
 * that many text columns; under lua_pcall, as a plan that does not fit the
 * header raises. */
static int add_check(lua_State *L)
{
    struct chain *c = lua_touserdata(L, 1);
    lua_Integer i, columns = lua_tointeger(L, 2);
    lua_createtable(L, 0, 8);
    lua_pushvalue(L, 3);
    lua_setfield(L, -2, "delimiter");
    lua_createtable(L, (int)columns, 0);
    for (i = 1; i <= columns; i++) {
        lua_createtable(L, 0, 1);
        lua_pushliteral(L, "text");
        lua_setfield(L, -2, "type");
        lua_rawseti(L, -2, i);
    }
    lua_setfield(L, -2, "columns");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "currencies");
    lua_pushliteral(L, "");
    lua_setfield(L, -2, "traffic_sources");
    lua_newtable(L);
    lua_setfield(L, -2, "problems");
    lua_pushinteger(L, stage_add_check(L, c, lua_gettop(L)));
    return 1;
}

static int added_check(struct chain *c, size_t columns, char delimiter)
{
    static lua_State *L;
    int rc;
    if (!L && !(L = luaL_newstate()))
        abort();
    lua_settop(L, 0);
    lua_pushcfunction(L, add_check);
    lua_pushlightuserdata(L, c);
    lua_pushinteger(L, (lua_Integer)columns);
    lua_pushlstring(L, &delimiter, 1);
    if (lua_pcall(L, 3, 1, 0) != 0)
        return stage_fail(c->end, "validation_failed", "%s", lua_tostring(L, -1));
    rc = (int)lua_tointeger(L, -1);
    lua_settop(L, 0);
    return rc;
}

/* The bytes in[0, n) through one stage's reference into out (OUT_MAX bytes):
 * its length, or -1 where the stage fails. */
static long reference(int kind, const struct recode *params, const char *in, size_t n, char *out, char *hex,
                      size_t *columns)
{
    struct recode rc;
    struct out o;
    struct digest d;
    FILE *f;
    if (kind == UTF8 && utf8_text_prefix((const unsigned char *)in, n) != n)
        return -1;
    if (kind == CHECK && check_reference(in, n, params->out_delimiter, columns) < 0)
        return -1;
    if (kind == SHA256) {
        if (digest_init(&d) != 0)
            abort();
        digest_update(&d, in, n);
        digest_final(&d, hex);
    }
    if (kind != RECODE || n == 0) { /* nothing recoded is nothing */
        memcpy(out, in, n);
        return (long)n;
    }
    memset(&rc, 0, sizeof rc);
    rc.in_delimiter = params->in_delimiter;
    rc.out_delimiter = params->out_delimiter;
    rc.cp1251 = params->cp1251;
    rc.out.limit = params->out.limit;
    if (!(f = fmemopen((void *)in, n, "rb")))
        abort();
    rc.f = f;
    o.data = out;
    recode_all(&rc, OUT_MAX, &o);
    reader_free(&rc.r);
    buffer_free(&rc.out);
    fclose(f);
    return o.failed ? -1 : (long)o.len;
}

/* The chain's end read through in pieces (piece 0: varying): its length, or -1 when it failed. */
static long read_chain(struct chain *c, size_t piece, char *out)
{
    size_t len = 0, i = 0;
    for (;;) {
        size_t want = piece ? piece : 1 + (i++ * 7919) % 4099;
        long n;
        if (want > OUT_MAX - len)
            want = OUT_MAX - len;
        if (want == 0)
            abort();
        if ((n = chain_read(c, out + len, want)) < 0) {
            if (!c->failure.code)
                abort(); /* a stage failed without saying why */
            return -1;
        }
        if (n == 0)
            return (long)len;
        len += (size_t)n;
    }
}

/* data[0..1]: delimiters (the recoder's, and out, the check's too),
 * data[2]: cp1251, data[3]: how many stages, data[4..6]: which, the rest
 * the input. */
static void chain_of_stages(const uint8_t *data, size_t size)
{
    struct recode params;
    struct chain c;
    char *expected = malloc(OUT_MAX), *scratch = malloc(OUT_MAX), *got = malloc(OUT_MAX);
    char hex[3][DIGEST_HEX], want_hex[3][DIGEST_HEX];
    int kind, nkinds = 1 + data[3] % 3, i, failed, built;
    long n = (long)(size - 7), k = 0;
    size_t columns = 0;
    long long count[3] = { 0 }, want_count[3] = { 0 };
    memset(&params, 0, sizeof params);
    params.in_delimiter = DELIMITERS[data[0] % 4];
    params.out_delimiter = DELIMITERS[data[1] % 4];
    params.cp1251 = data[2] & 1;
    params.out.limit = 2 * READER_RECORD_LIMIT + 16;
    memset(&c, 0, sizeof c);
    memcpy(expected, data + 7, (size_t)n);
    built = chain_add(&c, stage_string((const char *)data + 7, (size_t)n)) == 0;
    c.size = n;
    for (i = 0; i < nkinds; i++) {
        kind = data[4 + i] % KINDS;
        strcpy(hex[i], "");
        strcpy(want_hex[i], "");
        want_count[i] = kind == COUNTER ? n : 0;
        if (n >= 0) {
            n = reference(kind, &params, expected, (size_t)n, scratch, want_hex[i], &columns);
            if (n >= 0)
                memcpy(expected, scratch, (size_t)n);
        }
        if (built && kind == RECODE)
            built = stage_add_recode(&c, params.cp1251, params.in_delimiter, params.out_delimiter, -1) == 0;
        else if (built && kind == CHECK)
            built = added_check(&c, columns, params.out_delimiter) == 0;
        else if (built)
            built = (kind == UTF8 ? stage_add_utf8(&c) : kind == SHA256 ? stage_add_sha256(&c, hex[i], NULL)
                                                                         : stage_add_counter(&c, &count[i])) == 0;
    }
    failed = n < 0;
    if (!built && !failed)
        abort(); /* only a stage whose reference fails refuses to be built */
    if (built) {
        if (chain_rewind(&c) != 0)
            abort();
        k = read_chain(&c, 0, got);
        if ((k < 0) != failed || (k >= 0 && (k != n || memcmp(got, expected, (size_t)n))))
            abort();
        for (i = 0; i < nkinds && !failed; i++)
            if (c.size != n || count[i] != want_count[i] || strcmp(hex[i], want_hex[i]) != 0)
                abort();
        c.failure.code = NULL;
        if (chain_rewind(&c) != 0)
            abort();
        k = read_chain(&c, OUT_MAX, got);
        if ((k < 0) != failed || (k >= 0 && (k != n || memcmp(got, expected, (size_t)n))))
            abort();
    }
    chain_free(&c);
    free(expected);
    free(scratch);
    free(got);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 7 || size - 7 > OUT_MAX / 16)
        return 0;
    recoder_alone(data, size);
    chain_of_stages(data, size);
    return 0;
}
