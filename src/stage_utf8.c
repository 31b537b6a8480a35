/* The UTF-8 check of a body as it passes: a byte that is no UTF-8 (or a NUL)
 * stops it. A character cut by the end of a buffer is held back and checked
 * whole with the bytes that follow it. */
#include <stdlib.h>
#include <string.h>

#include "stage.h"
#include "utf8.h"

struct utf8_stage {
    struct stage s;
    unsigned char held[4]; /* read, not handed on yet: held[0, checked) passed */
    size_t len, checked;
    long long pos;         /* bytes handed on since the start */
};

static long bad_byte(struct utf8_stage *u, size_t at)
{
    return stage_fail(&u->s, "validation_failed", "byte %lld of the file is not valid UTF-8",
                      u->pos + (long long)at + 1);
}

/* The held bytes, the start of a character cut, read on to its end and
 * checked whole (at: their place past pos). 0, or -1. */
static int complete_held(struct utf8_stage *u, size_t at)
{
    struct stage *up = u->s.up;
    long got;
    while (u->len < sizeof u->held) {
        if ((got = up->ops->read(up, (char *)u->held + u->len, sizeof u->held - u->len)) < 0)
            return -1;
        if (got == 0)
            break;
        u->len += (size_t)got;
    }
    if ((u->checked = utf8_text_prefix(u->held, u->len)) == 0)
        return (int)bad_byte(u, at);
    return 0;
}

static long utf8_read(struct stage *s, char *buf, size_t n)
{
    struct utf8_stage *u = (struct utf8_stage *)s;
    long got;
    size_t valid;
    if (n == 0)
        return 0;
    for (;;) {
        if (u->checked > 0) { /* the held bytes that passed */
            size_t k = u->checked < n ? u->checked : n;
            memcpy(buf, u->held, k);
            memmove(u->held, u->held + k, u->len - k);
            u->len -= k;
            u->checked -= k;
            u->pos += (long long)k;
            return (long)k;
        }
        if (u->len > 0) { /* held after a character that passed */
            if (complete_held(u, 0) < 0)
                return -1;
            continue;
        }
        if ((got = s->up->ops->read(s->up, buf, n)) <= 0)
            return got;
        valid = utf8_text_prefix((const unsigned char *)buf, (size_t)got);
        if (valid == (size_t)got) {
            u->pos += got;
            return got;
        }
        if ((size_t)got - valid >= sizeof u->held)
            return bad_byte(u, valid);
        /* a character cut by the end of buf: checked whole before any of buf goes on */
        u->len = (size_t)got - valid;
        memcpy(u->held, buf + valid, u->len);
        if (complete_held(u, valid) < 0)
            return -1;
        if (valid > 0) {
            u->pos += (long long)valid;
            return (long)valid;
        }
    }
}

static int utf8_rewind(struct stage *s)
{
    struct utf8_stage *u = (struct utf8_stage *)s;
    u->len = u->checked = 0;
    u->pos = 0;
    return s->up->ops->rewind(s->up);
}

static void utf8_free(struct stage *s)
{
    free(s);
}

static const struct stage_ops UTF8_OPS = { utf8_read, utf8_rewind, stage_finish_up, utf8_free };

int stage_add_utf8(struct chain *c)
{
    struct utf8_stage *u = calloc(1, sizeof *u);
    if (u)
        u->s.ops = &UTF8_OPS;
    return chain_add(c, u ? &u->s : NULL);
}
