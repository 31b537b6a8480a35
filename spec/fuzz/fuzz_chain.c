/* The chain an upload converts a file through: a stream of the file, the
 * Windows-1251 decoding (or none), the CSV reader and the recoding to
 * another delimiter. On any input: the same output whatever sizes it is
 * read in, every read filled whole but at the end, and that output read
 * back gives the records the reader gives on the input, field for field
 * (blank lines dropped), up to the same error; and its size is what the
 * check's measure gives, record by record and over the raw records. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recode.h"

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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct recode rc;
    struct reader in, back;
    struct cp1251_source decoder;
    struct out pieces, whole;
    FILE *f, *g, *h;
    int a, b;
    if (size < 3)
        return 0;
    memset(&rc, 0, sizeof rc);
    rc.in_delimiter = DELIMITERS[data[0] % 4];
    rc.out_delimiter = DELIMITERS[data[1] % 4];
    rc.cp1251 = data[2] & 1;
    rc.out.limit = 2 * READER_RECORD_LIMIT + 16;
    data += 3;
    size -= 3;
    if (!(f = fmemopen(size ? (void *)data : "", size ? size : 1, "rb")))
        return 0;
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
    return 0;
}
