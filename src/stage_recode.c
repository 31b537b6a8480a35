/* The recoder (recode.c) as a stage: it reads the stage before it, where
 * core.recoder reads a stream of its own. */
#include <stdlib.h>
#include <string.h>

#include "recode.h"
#include "stage.h"

struct recode_stage {
    struct stage s;
    struct recode rc;
};

/* The recoder's error, as the chain's failure (unless the stage before it failed first). */
static int recode_failed(struct recode_stage *st)
{
    const struct reader_error *e = &st->rc.r.error;
    return stage_fail(&st->s, e->code ? e->code : "file_unreadable", "line %lld: %s", e->line, e->message);
}

static long recode_stage_read(struct stage *s, char *buf, size_t n)
{
    struct recode_stage *st = (struct recode_stage *)s;
    long got = recode_read(&st->rc, buf, n);
    if (got < 0) /* checked before: it no longer reads as it did */
        return stage_fail(s, "file_changed", "the file no longer converts as it did: line %lld: %s",
                          st->rc.r.error.line, st->rc.r.error.message);
    return got;
}

static int recode_stage_rewind(struct stage *s)
{
    struct recode_stage *st = (struct recode_stage *)s;
    return recode_rewind(&st->rc) < 0 ? recode_failed(st) : 0;
}

static void recode_stage_free(struct stage *s)
{
    struct recode_stage *st = (struct recode_stage *)s;
    reader_free(&st->rc.r);
    buffer_free(&st->rc.out);
    free(st);
}

static const struct stage_ops RECODE_OPS = { recode_stage_read, recode_stage_rewind, stage_finish_up,
                                             recode_stage_free };

int stage_add_recode(struct chain *c, int cp1251, char in, char out, long long size)
{
    struct recode_stage *st = calloc(1, sizeof *st);
    if (chain_add(c, st ? &st->s : NULL) < 0)
        return -1;
    st->s.ops = &RECODE_OPS;
    st->rc.cp1251 = cp1251;
    st->rc.in_delimiter = in;
    st->rc.out_delimiter = out;
    st->rc.size = size;
    st->rc.out.limit = 2 * READER_RECORD_LIMIT + 16;
    st->rc.up = st->s.up;
    if ((c->size = recode_total(&st->rc)) < 0)
        return recode_failed(st);
    return 0;
}
