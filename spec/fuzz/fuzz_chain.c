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

enum { RECODE, UTF8, SHA256, COUNTER, KINDS };

/* The bytes in[0, n) through one stage's reference into out (OUT_MAX bytes):
 * its length, or -1 where the stage fails. */
static long reference(int kind, const struct recode *params, const char *in, size_t n, char *out, char *hex)
{
    struct recode rc;
    struct out o;
    struct digest d;
    FILE *f;
    if (kind == UTF8 && utf8_text_prefix((const unsigned char *)in, n) != n)
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

/* data[0..1]: delimiters, data[2]: cp1251, data[3]: the stages (2 bits
 * each, after a count), the rest the input. */
static void chain_of_stages(const uint8_t *data, size_t size)
{
    struct recode params;
    struct chain c;
    char *expected = malloc(OUT_MAX), *scratch = malloc(OUT_MAX), *got = malloc(OUT_MAX);
    char hex[3][DIGEST_HEX], want_hex[3][DIGEST_HEX];
    int kind, nkinds = 1 + data[3] % 3, i, failed, built;
    long n = (long)(size - 4), k = 0;
    long long count[3] = { 0 }, want_count[3] = { 0 };
    memset(&params, 0, sizeof params);
    params.in_delimiter = DELIMITERS[data[0] % 4];
    params.out_delimiter = DELIMITERS[data[1] % 4];
    params.cp1251 = data[2] & 1;
    params.out.limit = 2 * READER_RECORD_LIMIT + 16;
    memset(&c, 0, sizeof c);
    memcpy(expected, data + 4, (size_t)n);
    built = chain_add(&c, stage_string((const char *)data + 4, (size_t)n)) == 0;
    c.size = n;
    for (i = 0; i < nkinds; i++) {
        kind = (data[3] >> (2 + 2 * i)) % KINDS;
        strcpy(hex[i], "");
        strcpy(want_hex[i], "");
        want_count[i] = kind == COUNTER ? n : 0;
        if (n >= 0) {
            n = reference(kind, &params, expected, (size_t)n, scratch, want_hex[i]);
            if (n >= 0)
                memcpy(expected, scratch, (size_t)n);
        }
        if (built && kind == RECODE)
            built = stage_add_recode(&c, params.cp1251, params.in_delimiter, params.out_delimiter, -1) == 0;
        else if (built)
            built = (kind == UTF8 ? stage_add_utf8(&c) : kind == SHA256 ? stage_add_sha256(&c, hex[i])
                                                                         : stage_add_counter(&c, &count[i])) == 0;
    }
    failed = n < 0;
    if (!built && !failed)
        abort(); /* only a recoder that fails refuses to be built */
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
    if (size < 4 || size - 4 > OUT_MAX / 16)
        return 0;
    recoder_alone(data, size);
    chain_of_stages(data, size);
    return 0;
}
