#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "stage.h"

int stage_fail(struct stage *s, const char *code, const char *fmt, ...)
{
    va_list ap;
    if (s->failure->code)
        return -1;
    s->failure->code = code;
    va_start(ap, fmt);
    vsnprintf(s->failure->message, sizeof s->failure->message, fmt, ap);
    va_end(ap);
    return -1;
}

int stage_finish_up(struct stage *s)
{
    return s->up->ops->finish(s->up);
}

long stage_reader_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    struct stage *s = ctx;
    long got = s->ops->read(s, (char *)buf, n);
    if (got < 0)
        snprintf(message, size, "%s", s->failure->message);
    return got;
}

int chain_add(struct chain *c, struct stage *s)
{
    if (!s) {
        c->failure.code = c->failure.code ? c->failure.code : "file_unreadable";
        snprintf(c->failure.message, sizeof c->failure.message, "out of memory");
        return -1;
    }
    s->up = c->end;
    s->failure = &c->failure;
    c->end = s;
    if (!c->source)
        c->source = s;
    return 0;
}

long chain_read(struct chain *c, char *buf, size_t n)
{
    return c->end->ops->read(c->end, buf, n);
}

int chain_rewind(struct chain *c)
{
    return c->end->ops->rewind(c->end);
}

int chain_finish(struct chain *c)
{
    return c->end->ops->finish(c->end);
}

int chain_source_changed(struct chain *c)
{
    struct stage_failure was = c->failure;
    int changed;
    c->failure.code = NULL;
    changed = c->source->ops->finish(c->source) != 0;
    if (!changed)
        c->failure = was;
    return changed;
}

void chain_free(struct chain *c)
{
    while (c->end) {
        struct stage *up = c->end->up;
        c->end->ops->free(c->end);
        c->end = up;
    }
    c->source = NULL;
}
