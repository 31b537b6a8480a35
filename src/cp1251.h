/* Windows-1251 (the Cyrillic code page of Russian-locale Excel exports) read
 * as UTF-8: a reader_source that decodes another as it reads. */
#ifndef CSVUP_CP1251_H
#define CSVUP_CP1251_H

#include <stddef.h>

#include "reader.h"

struct cp1251_source {
    reader_source read; /* the bytes in Windows-1251 */
    void *ctx;
    unsigned char raw[65536];
    unsigned char out[3 * 65536]; /* decoded, not yet handed out: out[pos, len) */
    size_t pos, len;
};

/* Decodes n bytes of Windows-1251 to UTF-8 in out (room for 3 * n); the length written. */
size_t cp1251_decode(const unsigned char *in, size_t n, unsigned char *out);
/* A reader_source over a struct cp1251_source (ctx), whose read and ctx are set. */
long cp1251_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size);

#endif
