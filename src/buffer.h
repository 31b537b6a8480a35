/* A growable byte buffer with a size limit, owned by C (never by the Lua stack,
 * so libcurl callbacks can fill it without calling into Lua). */
#ifndef CSVUP_BUFFER_H
#define CSVUP_BUFFER_H

#include <stdlib.h>
#include <string.h>

struct buffer {
    char *data;
    size_t len, cap, limit;
    int overflow; /* sticky: an append failed, so the content is incomplete */
};

/* 0 on success; -1 when the limit would be passed, memory runs out, or an
 * earlier append failed. */
static inline int buffer_append(struct buffer *b, const void *p, size_t n)
{
    if (b->overflow)
        return -1;
    if (n == 0)
        return 0; /* p may be NULL then, and memcpy must not see it */
    if (n > b->limit - b->len) {
        b->overflow = 1;
        return -1;
    }
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        char *data;
        while (cap < b->len + n)
            cap *= 2;
        if (cap > b->limit)
            cap = b->limit;
        data = realloc(b->data, cap);
        if (!data) {
            b->overflow = 1;
            return -1;
        }
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

/* Empties the buffer, keeping its memory; the overflow flag is cleared. */
static inline void buffer_clear(struct buffer *b)
{
    b->len = 0;
    b->overflow = 0;
}

static inline void buffer_free(struct buffer *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->overflow = 0;
}

#endif
