#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__x86_64__) && defined(__GNUC__)
#define RECODE_X86 /* 64-byte steps with AVX-512BW, chosen at run time */
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "error.h"
#include "file.h"
#include "recode.h"

#define RECODE_MT "csvup.recoder"

#ifdef __SSE2__
#define BLOCK 64

/* The bits set in x (without the popcnt instruction, which x86-64 may lack). */
static unsigned bits(uint64_t x)
{
    x -= (x >> 1) & 0x5555555555555555ULL;
    x = (x & 0x3333333333333333ULL) + ((x >> 2) & 0x3333333333333333ULL);
    x = (x + (x >> 4)) & 0x0F0F0F0F0F0F0F0FULL;
    return (unsigned)((x * 0x0101010101010101ULL) >> 56);
}

/* Of the 64 bytes at s: whether one is a quote, CR, NUL or `also` (nonzero
 * then), and the line ends in *lf (bit i: s[i]). With copy, the bytes are
 * copied there too, each `in` replaced by `out`, whatever they hold. */
__attribute__((always_inline)) static inline uint64_t block_masks(const unsigned char *s, unsigned char also,
                                                                  uint64_t *lf, char *copy, char in, char out)
{
    const __m128i quote = _mm_set1_epi8('"'), cr = _mm_set1_epi8('\r'), nl = _mm_set1_epi8('\n'),
                  other = _mm_set1_epi8((char)also), zero = _mm_setzero_si128(), from = _mm_set1_epi8(in),
                  swap = _mm_set1_epi8((char)(in ^ out));
    __m128i stops = zero;
    uint64_t ends = 0;
    int k;
    for (k = 0; k < 4; k++) {
        const __m128i v = _mm_loadu_si128((const __m128i *)(s + 16 * k));
        stops = _mm_or_si128(stops, _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, quote), _mm_cmpeq_epi8(v, cr)),
                                                 _mm_or_si128(_mm_cmpeq_epi8(v, other), _mm_cmpeq_epi8(v, zero))));
        ends |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, nl)) << 16 * k;
        if (copy)
            _mm_storeu_si128((__m128i *)(copy + 16 * k), _mm_xor_si128(v, _mm_and_si128(_mm_cmpeq_epi8(v, from), swap)));
    }
    *lf = ends;
    return (uint64_t)_mm_movemask_epi8(stops);
}
#endif

#ifdef RECODE_X86
/* block_masks in one register, on processors with AVX-512BW. */
__attribute__((target("avx512bw"), noinline)) static uint64_t block_masks_avx512(const unsigned char *s,
                                                                                unsigned char also, uint64_t *lf,
                                                                                char *copy, char in, char out)
{
    const __m512i x = _mm512_loadu_si512((const void *)s);
    *lf = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\n'));
    if (copy)
        _mm512_storeu_si512((void *)copy,
                            _mm512_mask_blend_epi8(_mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(in)), x, _mm512_set1_epi8(out)));
    return _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('"')) | _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\r'))
        | _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8((char)also)) | _mm512_cmpeq_epi8_mask(x, _mm512_setzero_si512());
}

static int avx512(void)
{
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bw");
}
#define BLOCK_MASKS(wide, s, also, lf, copy, in, out) \
    ((wide) ? block_masks_avx512(s, also, lf, copy, in, out) : block_masks(s, also, lf, copy, in, out))
#else
#define avx512() 0
#define BLOCK_MASKS(wide, s, also, lf, copy, in, out) block_masks(s, also, lf, copy, in, out)
#endif

static void close_input(struct recode *rc)
{
    reader_free(&rc->r);
    memset(&rc->r, 0, sizeof rc->r);
}

/* From the first byte again, on the stream opened once (never by path again). */
static int open_input(struct recode *rc)
{
    reader_source source = reader_file_source;
    void *ctx;
    close_input(rc);
    if (rc->up) {
        if (rc->up->ops->rewind(rc->up) != 0) {
            rc->r.error.code = rc->up->failure->code;
            snprintf(rc->r.error.message, sizeof rc->r.error.message, "%.159s", rc->up->failure->message);
            return -1;
        }
        source = stage_reader_source;
    } else if (fseeko(rc->f, 0, SEEK_SET) != 0) {
        rc->r.error.code = "file_unreadable";
        csvup_strerror(errno, rc->r.error.message, sizeof rc->r.error.message);
        return -1;
    }
    ctx = rc->up ? (void *)rc->up : (void *)rc->f;
    if (rc->cp1251) {
        rc->decoder.read = source;
        rc->decoder.ctx = ctx;
        rc->decoder.pos = rc->decoder.len = 0;
        source = cp1251_source;
        ctx = &rc->decoder;
    }
    rc->out.len = rc->pos = 0;
    rc->done = 0;
    rc->produced = 0;
    rc->encoded = 0;
    return reader_open(&rc->r, source, ctx, rc->in_delimiter, 0, READER_RECORD_LIMIT);
}

/* Whether field i of a record is written quoted: it holds the delimiter, a
 * quote or a line break, or it would start the output with a byte order
 * mark, which a reader would skip. */
static int quoted_field(const struct field *f, size_t i, char out, int first)
{
    size_t j;
    int quote = first && i == 0 && f->len >= 3 && memcmp(f->data, "\xEF\xBB\xBF", 3) == 0;
    for (j = 0; j < f->len && !quote; j++)
        quote = f->data[j] == out || f->data[j] == '"' || f->data[j] == '\r' || f->data[j] == '\n';
    return quote;
}

/* One record, its fields quoted where they hold the delimiter, a quote or a line break. */
static int encode_record(struct recode *rc)
{
    size_t i, j;
    struct buffer *b = &rc->out;
    int failed = 0;
    for (i = 0; i < rc->r.nfields; i++) {
        const struct field *f = &rc->r.fields[i];
        if (i > 0)
            failed |= buffer_append(b, &rc->out_delimiter, 1);
        if (!quoted_field(f, i, rc->out_delimiter, !rc->encoded)) {
            failed |= buffer_append(b, f->data, f->len);
            continue;
        }
        failed |= buffer_append(b, "\"", 1);
        for (j = 0; j < f->len; j++)
            failed |= buffer_append(b, f->data + j, 1) | (f->data[j] == '"' ? buffer_append(b, "\"", 1) : 0);
        failed |= buffer_append(b, "\"", 1);
    }
    rc->encoded = 1;
    return failed | buffer_append(b, "\n", 1);
}

long long recode_measure_record(const struct reader *r, char out, int first)
{
    long long n = (long long)r->nfields; /* the delimiters and the line end */
    size_t i, j;
    if (r->blank)
        return 0;
    for (i = 0; i < r->nfields; i++) {
        const struct field *f = &r->fields[i];
        n += (long long)f->len;
        if (quoted_field(f, i, out, first))
            for (n += 2, j = 0; j < f->len; j++)
                n += f->data[j] == '"';
    }
    return n;
}

/* recode_measure over records with a quote, a CR or the output delimiter:
 * field by field, as the reader splits them and encode_record writes them. */
static long long measure_fields(const unsigned char *s, size_t n, char in, char out)
{
    long long total = 0;
    size_t i = 0;
    while (i < n) {
        size_t start = i, fields = 0;
        long long record = 0;
        for (;;) {
            long long len = 0, quotes = 0;
            int quote = 0;
            if (i < n && s[i] == '"') {
                for (i++; i < n; i++) {
                    if (s[i] == '"' && !(i + 1 < n && s[i + 1] == '"')) {
                        i++;
                        break;
                    }
                    quote |= s[i] == (unsigned char)out || s[i] == '"' || s[i] == '\r' || s[i] == '\n';
                    quotes += s[i] == '"';
                    i += s[i] == '"'; /* "" is one quote */
                    len++;
                }
            } else {
                for (; i < n && s[i] != (unsigned char)in && s[i] != '\n' && s[i] != '\r'; i++, len++)
                    quote |= s[i] == (unsigned char)out;
            }
            record += len + (fields++ ? 1 : 0) + (quote ? quotes + 2 : 0);
            if (i < n && s[i] == (unsigned char)in) {
                i++;
                continue;
            }
            i += i < n && s[i] == '\r';
            i += i < n && s[i] == '\n';
            break;
        }
        if (!(fields == 1 && record == 0 && s[start] != '"'))
            total += record + 1;
    }
    return total;
}

long long recode_measure(const unsigned char *s, size_t n, char in, char out)
{
    long long blank = 0;
    size_t i = 0;
    unsigned after_end = 1; /* the byte before s[i] ended a line (s starts a line) */
    /* every line as it is, but blank ones, which are dropped: unless a quote,
     * a CR or the output delimiter asks for more */
#ifdef __SSE2__
    const int wide = avx512();
    for (; i + BLOCK <= n; i += BLOCK) {
        uint64_t ends, blanks;
        if (BLOCK_MASKS(wide, s + i, (unsigned char)(out != in ? out : '"'), &ends, NULL, in, out))
            return measure_fields(s, n, in, out);
        blanks = ends & ((ends << 1) | after_end);
        blank += blanks ? bits(blanks) : 0;
        after_end = (unsigned)(ends >> (BLOCK - 1));
    }
#endif
    for (; i < n; i++) {
        if (s[i] == '"' || s[i] == '\r' || (s[i] == (unsigned char)out && out != in))
            return measure_fields(s, n, in, out);
        blank += s[i] == '\n' && after_end;
        after_end = s[i] == '\n';
    }
    return (long long)n - blank + (n && s[n - 1] != '\n');
}

#define ONES 0x0101010101010101ULL

/* 0x80 in each byte of v that is 0, else 0 (exact, byte by byte). */
static uint64_t zeros(uint64_t v)
{
    const uint64_t low = 0x7F7F7F7F7F7F7F7FULL;
    return ~(((v & low) + low) | v) & ~low;
}

/* The whole lines at the start of the reader's buffer that need no quoting
 * (no quote, CR, NUL or output delimiter in them, not blank, within the record
 * limit), copied into buf (at most n bytes) with their delimiters replaced:
 * what encode_record would make of them, without reading them field by
 * field. Their bytes; 0 when the next line is not one (the reader takes it). */
static size_t plain_lines(struct recode *rc, char *buf, size_t n)
{
    struct reader *r = &rc->r;
    const unsigned char *p = r->buf + r->start;
    const unsigned char in = (unsigned char)r->delimiter, out = (unsigned char)rc->out_delimiter;
    size_t avail = r->end - r->start, i, line = 0, done = 0;
    long long lines = 0;
    unsigned char stop[256] = { 0 };
#ifdef __SSE2__
    const int wide = avx512();
#endif
    stop['"'] = stop['\r'] = stop[0] = 1;
    if (out != in)
        stop[out] = 1;
    if (avail > n)
        avail = n;
    for (i = 0; i < avail && i - line <= r->limit;) {
        unsigned char c;
        uint64_t w;
#ifdef __SSE2__
        /* 64 bytes at a time, as the 16 below (copied first: buf past i is free), when the line
         * open cannot pass the record limit in them */
        if (i + BLOCK <= avail && i + BLOCK - line <= r->limit) {
            uint64_t ends;
            if (!BLOCK_MASKS(wide, p + i, out != in ? out : '"', &ends, buf + i, (char)in, (char)out)
                && !(ends & ((ends << 1) | (i == line)))) {
                if (ends) {
                    lines += bits(ends);
                    line = done = i + BLOCK - (size_t)__builtin_clzll(ends);
                }
                i += BLOCK;
                continue;
            }
        }
        if (i + 16 <= avail) { /* 16 bytes at a time, their line ends included */
            const __m128i v = _mm_loadu_si128((const __m128i *)(p + i));
            __m128i stops = _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                      _mm_cmpeq_epi8(v, _mm_set1_epi8('\r'))),
                                         _mm_cmpeq_epi8(v, _mm_setzero_si128()));
            const unsigned ends = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
            if (out != in)
                stops = _mm_or_si128(stops, _mm_cmpeq_epi8(v, _mm_set1_epi8((char)out)));
            /* no blank line: no line end right after another, nor at a line's start */
            if (!_mm_movemask_epi8(stops) && !(ends & ((ends << 1) | (i == line)))) {
                const __m128i swap = _mm_and_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8((char)in)),
                                                   _mm_set1_epi8((char)(in ^ out)));
                _mm_storeu_si128((__m128i *)(buf + i), _mm_xor_si128(v, swap));
                if (ends) {
                    lines += bits(ends);
                    line = done = i + (size_t)(32 - __builtin_clz(ends));
                }
                i += 16;
                continue;
            }
        }
#endif
        if (i + 8 <= avail) { /* 8 bytes at a time while they hold no line end and nothing to stop at */
            memcpy(&w, p + i, 8);
            if (!(zeros(w ^ (ONES * '\n')) | zeros(w ^ (ONES * '"')) | zeros(w ^ (ONES * '\r')) | zeros(w)
                  | (out != in ? zeros(w ^ (ONES * out)) : 0))) {
                w ^= (zeros(w ^ (ONES * in)) >> 7) * (uint64_t)(in ^ out);
                memcpy(buf + i, &w, 8);
                i += 8;
                continue;
            }
        }
        c = p[i];
        if (stop[c] || (c == '\n' && i == line))
            break;
        buf[i] = (char)(c == in ? out : c);
        if (c == '\n') {
            line = i + 1;
            done = line;
            lines++;
        }
        i++;
    }
    reader_skip(r, done, lines);
    return done;
}

/* Fills buf whole, but at the end: libcurl sends what it is given, so a
 * buffer of one record each would be a send() each. */
long recode_read(struct recode *rc, char *buf, size_t n)
{
    size_t given = 0, k;
    while (given < n) {
        if (rc->pos == rc->out.len && rc->encoded && !rc->done
            && (k = plain_lines(rc, buf + given, n - given)) > 0) {
            given += k;
            continue;
        }
        if (rc->pos == rc->out.len) {
            int got;
            if (rc->done)
                break;
            rc->out.len = rc->pos = 0;
            got = reader_next(&rc->r);
            if (got < 0)
                return -1;
            if (got == 0)
                rc->done = 1;
            else if (!rc->r.blank && encode_record(rc) < 0) {
                rc->r.error.code = "file_unreadable";
                snprintf(rc->r.error.message, sizeof rc->r.error.message, "out of memory recoding a record");
                return -1;
            }
            continue;
        }
        k = rc->out.len - rc->pos < n - given ? rc->out.len - rc->pos : n - given;
        memcpy(buf + given, rc->out.data + rc->pos, k);
        rc->pos += k;
        given += k;
    }
    rc->produced += (long long)given;
    return (long)given;
}

int recode_rewind(struct recode *rc)
{
    return open_input(rc);
}

struct recode *recode_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, RECODE_MT);
}

static int push_error(lua_State *L, struct recode *rc)
{
    return csvup_fail(L, KIND_INPUT, rc->r.error.code ? rc->r.error.code : "file_unreadable", "%s: line %d: %s", rc->path,
                      (int)rc->r.error.line, rc->r.error.message);
}

/* The recoder at idx, not closed. */
static struct recode *recode_open_check(lua_State *L, int idx)
{
    struct recode *rc = recode_check(L, idx);
    if (!rc->path)
        luaL_error(L, "recoder: it is closed");
    return rc;
}

static int recoder_gc(lua_State *L)
{
    struct recode *rc = recode_check(L, 1);
    close_input(rc);
    if (rc->f)
        fclose(rc->f);
    rc->f = NULL;
    buffer_free(&rc->out);
    free(rc->path);
    rc->path = NULL;
    return 0;
}

long long recode_total(struct recode *rc)
{
    char chunk[1 << 16];
    long got;
    long long total = 0;
    if (open_input(rc) < 0)
        return -1;
    if (rc->size >= 0) /* measured by the check, on this descriptor: an attempt whose file changed since is file_changed */
        return rc->size;
    while ((got = recode_read(rc, chunk, sizeof chunk)) > 0)
        total += got;
    return got < 0 || recode_rewind(rc) < 0 ? -1 : total;
}

/* recoder:size() -> the bytes the recoded file has | nil, err: read through once, unless given. */
static int recoder_size(lua_State *L)
{
    struct recode *rc = recode_open_check(L, 1);
    long long total = recode_total(rc);
    if (total < 0)
        return push_error(L, rc);
    lua_pushinteger(L, (lua_Integer)total);
    return 1;
}

/* recoder:read(n) -> up to n (at most 64 KB) next bytes, or nil at the end (nil, err on an error). */
static int recoder_read(lua_State *L)
{
    struct recode *rc = recode_open_check(L, 1);
    lua_Integer n = luaL_checkinteger(L, 2);
    char chunk[1 << 16];
    long got;
    luaL_argcheck(L, n > 0, 2, "read at least one byte");
    got = recode_read(rc, chunk, n < (lua_Integer)sizeof chunk ? (size_t)n : sizeof chunk);
    if (got < 0)
        return push_error(L, rc);
    if (got == 0)
        return 0;
    lua_pushlstring(L, chunk, (size_t)got);
    return 1;
}

char recode_delimiter(lua_State *L, int idx, const char *name, const char *fallback)
{
    size_t len;
    const char *d;
    lua_getfield(L, idx, name);
    d = luaL_optlstring(L, -1, fallback, &len);
    lua_pop(L, 1);
    if (strcmp(d, "auto") == 0)
        return 0;
    if (len != 1 || strchr("\"\r\n", d[0]))
        luaL_error(L, "recoder: %s must be one byte other than a quote or a line break", name);
    return d[0];
}

int recode_new(lua_State *L)
{
    const char *path, *encoding;
    struct recode *rc;
    luaL_checktype(L, 2, LUA_TTABLE);
    luaL_argcheck(L, lua_type(L, 1) == LUA_TSTRING || file_test(L, 1), 1, "a path or a csvup.file");
    lua_getfield(L, 2, "encoding");
    encoding = luaL_optstring(L, -1, "utf-8");
    luaL_argcheck(L, !strcmp(encoding, "utf-8") || !strcmp(encoding, "cp1251"), 2,
                  "encoding must be \"utf-8\" or \"cp1251\"");
    rc = lua_newuserdata(L, sizeof *rc);
    memset(rc, 0, sizeof *rc);
    luaL_getmetatable(L, RECODE_MT);
    lua_setmetatable(L, -2);
    rc->cp1251 = strcmp(encoding, "cp1251") == 0;
    rc->in_delimiter = recode_delimiter(L, 2, "delimiter", ",");
    rc->out_delimiter = recode_delimiter(L, 2, "to", ",");
    luaL_argcheck(L, rc->out_delimiter != 0, 2, "to must be a delimiter, not \"auto\"");
    lua_getfield(L, 2, "size");
    rc->size = luaL_optinteger(L, -1, -1);
    lua_pop(L, 1);
    rc->out.limit = 2 * READER_RECORD_LIMIT + 16;
    if (!(rc->f = file_stream(L, 1, &path)))
        return 2;
    if (!(rc->path = strdup(path)))
        return luaL_error(L, "out of memory");
    if (open_input(rc) < 0)
        return push_error(L, rc);
    return 1;
}

void recode_init(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "size", recoder_size },
        { "read", recoder_read },
        { "close", recoder_gc },
        { NULL, NULL }
    };
    csvup_class(L, RECODE_MT, methods, recoder_gc, recoder_gc, NULL);
}
