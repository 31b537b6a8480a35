#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "cp1251.h"

/* Unicode of the bytes 0x80 to 0xFF; 0x98, unassigned, reads as U+FFFD. */
static const unsigned short HIGH[128] = {
    0x0402, 0x0403, 0x201A, 0x0453, 0x201E, 0x2026, 0x2020, 0x2021,
    0x20AC, 0x2030, 0x0409, 0x2039, 0x040A, 0x040C, 0x040B, 0x040F,
    0x0452, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014,
    0xFFFD, 0x2122, 0x0459, 0x203A, 0x045A, 0x045C, 0x045B, 0x045F,
    0x00A0, 0x040E, 0x045E, 0x0408, 0x00A4, 0x0490, 0x00A6, 0x00A7,
    0x0401, 0x00A9, 0x0404, 0x00AB, 0x00AC, 0x00AD, 0x00AE, 0x0407,
    0x00B0, 0x00B1, 0x0406, 0x0456, 0x0491, 0x00B5, 0x00B6, 0x00B7,
    0x0451, 0x2116, 0x0454, 0x00BB, 0x0458, 0x0405, 0x0455, 0x0457,
    0x0410, 0x0411, 0x0412, 0x0413, 0x0414, 0x0415, 0x0416, 0x0417,
    0x0418, 0x0419, 0x041A, 0x041B, 0x041C, 0x041D, 0x041E, 0x041F,
    0x0420, 0x0421, 0x0422, 0x0423, 0x0424, 0x0425, 0x0426, 0x0427,
    0x0428, 0x0429, 0x042A, 0x042B, 0x042C, 0x042D, 0x042E, 0x042F,
    0x0430, 0x0431, 0x0432, 0x0433, 0x0434, 0x0435, 0x0436, 0x0437,
    0x0438, 0x0439, 0x043A, 0x043B, 0x043C, 0x043D, 0x043E, 0x043F,
    0x0440, 0x0441, 0x0442, 0x0443, 0x0444, 0x0445, 0x0446, 0x0447,
    0x0448, 0x0449, 0x044A, 0x044B, 0x044C, 0x044D, 0x044E, 0x044F,
};

/* How many bytes at the start of in[0, n) are ASCII, 64 then 8 at a time. */
static size_t ascii_run(const unsigned char *in, size_t n)
{
    size_t i = 0;
    uint64_t w;
#ifdef __SSE2__
    for (; i + 64 <= n; i += 64) {
        const __m128i *v = (const __m128i *)(in + i);
        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(_mm_loadu_si128(v), _mm_loadu_si128(v + 1)),
                                           _mm_or_si128(_mm_loadu_si128(v + 2), _mm_loadu_si128(v + 3)))))
            break;
    }
#endif
    for (; i + 8 <= n; i += 8) {
        memcpy(&w, in + i, 8);
        if (w & 0x8080808080808080ULL)
            break;
    }
    while (i < n && in[i] < 0x80)
        i++;
    return i;
}

/* The UTF-8 of each byte: its bytes, then its length as the fourth byte. */
static void encodings(unsigned char enc[256][4])
{
    unsigned b;
    memset(enc, 0, 256 * sizeof *enc);
    for (b = 0; b < 0x80; b++) {
        enc[b][0] = (unsigned char)b;
        enc[b][3] = 1;
    }
    for (b = 0x80; b < 0x100; b++) {
        const unsigned c = HIGH[b - 0x80]; /* all of them 0x80 or above */
        unsigned char *e = enc[b];
        if (c < 0x800) {
            e[0] = (unsigned char)(0xC0 | c >> 6);
            e[1] = (unsigned char)(0x80 | (c & 0x3F));
            e[3] = 2;
        } else {
            e[0] = (unsigned char)(0xE0 | c >> 12);
            e[1] = (unsigned char)(0x80 | (c >> 6 & 0x3F));
            e[2] = (unsigned char)(0x80 | (c & 0x3F));
            e[3] = 3;
        }
    }
}

size_t cp1251_decode(const unsigned char *in, size_t n, unsigned char *out)
{
    unsigned char enc[256][4];
    size_t i = 0, o = 0;
    encodings(enc);
    while (i < n) {
        size_t run = ascii_run(in + i, n - i), end; /* an export is mostly ASCII: copied as it is */
        memcpy(out + o, in + i, run);
        o += run;
        i += run;
        /* then byte by byte, with no branch on what each is (Cyrillic text mixes ASCII in), for 64 bytes:
         * four bytes written whatever the length (the next overwrites the rest), but for the last byte
         * of in, three (out has room for 3 * n) */
        for (end = n - i <= 64 ? n - 1 : i + 64; i < end; i++) {
            memcpy(out + o, enc[in[i]], 4);
            o += enc[in[i]][3];
        }
        if (i == n - 1) {
            memcpy(out + o, enc[in[i]], 3);
            o += enc[in[i++]][3];
        }
    }
    return o;
}

long cp1251_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    struct cp1251_source *s = ctx;
    if (s->pos == s->len) {
        /* read into buf itself: its ASCII start is there as it is, and only the rest is decoded */
        long got = s->read(s->ctx, buf, n < sizeof s->raw ? n : sizeof s->raw, message, size);
        size_t ascii;
        if (got <= 0)
            return got;
        ascii = ascii_run(buf, (size_t)got);
        if (ascii == (size_t)got)
            return got;
        memcpy(s->raw, buf + ascii, (size_t)got - ascii);
        s->len = cp1251_decode(s->raw, (size_t)got - ascii, s->out);
        s->pos = 0;
        if (ascii)
            return (long)ascii;
    }
    if (n > s->len - s->pos)
        n = s->len - s->pos;
    memcpy(buf, s->out + s->pos, n);
    s->pos += n;
    return (long)n;
}
