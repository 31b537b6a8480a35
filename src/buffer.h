/* A growable byte buffer with a size limit, owned by C (never by the Lua stack,
 * so libcurl callbacks can fill it without calling into Lua). */
#ifndef CSVUP_BUFFER_H
#define CSVUP_BUFFER_H

#include <stdlib.h>
#include <string.h>

struct buffer {
    char *data;
    size_t len, cap, limit;
};

/* 0 on success; -1 when the limit would be passed or memory runs out. */
static inline int buffer_append(struct buffer *b, const void *p, size_t n)
{
    if (n > b->limit - b->len)
        return -1;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *data;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->limit)
            cap = b->limit;
        data = realloc(b->data, cap);
        if (!data)
            return -1;
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int buffer_puts(struct buffer *b, const char *s)
{
    return buffer_append(b, s, strlen(s));
}

static inline void buffer_free(struct buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
