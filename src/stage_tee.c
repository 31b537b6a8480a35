/* Stages that pass the bytes on as they are, watching them: a SHA-256 of
 * the body, and a count of its bytes for progress. */
#include <stdlib.h>

#include "digest.h"
#include "stage.h"

struct sha256_stage {
    struct stage s;
    struct digest d;
    struct digest_thread t; /* hashes while the bytes go on */
    char *hex;               /* written once the body ended */
    long long *size;         /* the bytes hashed, or NULL */
};

/* A hash from the first byte, in a thread of its own: 0, or -1 (out of memory). */
static int start_hash(struct sha256_stage *h)
{
    digest_thread_stop(&h->t);
    digest_free(&h->d);
    h->hex[0] = 0;
    if (digest_init(&h->d) != 0)
        return -1;
    digest_thread_start(&h->t, &h->d);
    return 0;
}

/* The hash of every byte given, written out once. */
static void end_hash(struct sha256_stage *h)
{
    if (!h->d.ctx)
        return;
    digest_thread_stop(&h->t);
    if (h->size)
        *h->size = h->d.length;
    digest_final(&h->d, h->hex);
}

static long sha256_read(struct stage *s, char *buf, size_t n)
{
    struct sha256_stage *h = (struct sha256_stage *)s;
    long got = s->up->ops->read(s->up, buf, n);
    if (got > 0 && h->d.ctx)
        digest_give(&h->t, buf, (size_t)got);
    if (got == 0 && n > 0)
        end_hash(h);
    return got;
}

static int sha256_rewind(struct stage *s)
{
    if (start_hash((struct sha256_stage *)s) != 0)
        return stage_fail(s, "file_unreadable", "out of memory");
    return s->up->ops->rewind(s->up);
}

/* The body's end (before its last bytes go on): the hash is complete. */
static int sha256_finish(struct stage *s)
{
    struct sha256_stage *h = (struct sha256_stage *)s;
    if (stage_finish_up(s) < 0)
        return -1;
    if (!h->d.ctx && !h->hex[0])
        return stage_fail(s, "file_unreadable", "out of memory");
    end_hash(h);
    return 0;
}

static void sha256_free(struct stage *s)
{
    struct sha256_stage *h = (struct sha256_stage *)s;
    digest_thread_stop(&h->t);
    digest_free(&h->d);
    free(s);
}

static const struct stage_ops SHA256_OPS = { sha256_read, sha256_rewind, sha256_finish, sha256_free };

int stage_add_sha256(struct chain *c, char *hex, long long *size)
{
    struct sha256_stage *h = calloc(1, sizeof *h);
    if (h) {
        h->s.ops = &SHA256_OPS;
        h->hex = hex;
        h->size = size;
        if (start_hash(h) != 0) {
            free(h);
            h = NULL;
        }
    }
    return chain_add(c, h ? &h->s : NULL);
}

struct counter_stage {
    struct stage s;
    long long *count;
};

static long counter_read(struct stage *s, char *buf, size_t n)
{
    long got = s->up->ops->read(s->up, buf, n);
    if (got > 0)
        *((struct counter_stage *)s)->count += got;
    return got;
}

static int counter_rewind(struct stage *s)
{
    *((struct counter_stage *)s)->count = 0;
    return s->up->ops->rewind(s->up);
}

static void counter_free(struct stage *s)
{
    free(s);
}

static const struct stage_ops COUNTER_OPS = { counter_read, counter_rewind, stage_finish_up, counter_free };

int stage_add_counter(struct chain *c, long long *count)
{
    struct counter_stage *k = calloc(1, sizeof *k);
    if (k) {
        k->s.ops = &COUNTER_OPS;
        k->count = count;
        *count = 0;
    }
    return chain_add(c, k ? &k->s : NULL);
}
