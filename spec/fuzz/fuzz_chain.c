/* The chain an upload converts a file through: a stream of the file, the
 * Windows-1251 decoding (or none), the CSV reader and the recoding to
 * another delimiter. On any input: the same output whatever sizes it is
 * read in, every read filled whole but at the end, and that output read
 * back gives the records the reader gives on the input, field for field
 * (blank lines dropped), up to the same error. */
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
