#include <stdint.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "cp1251.h"

/* The UTF-8 of each byte: its bytes, then its length as the fourth byte.
 * ASCII is itself; the bytes 0x80 to 0xFF are given by their Unicode (all
 * of it 0x80 or above; 0x98, unassigned, reads as U+FFFD). */
#define A1(b) { (b), 0, 0, 1 }
#define A2(b) A1(b), A1((b) + 1)
#define A4(b) A2(b), A2((b) + 2)
#define A8(b) A4(b), A4((b) + 4)
#define A16(b) A8(b), A8((b) + 8)
#define A32(b) A16(b), A16((b) + 16)
#define A64(b) A32(b), A32((b) + 32)
#define U(c) { U_FIRST(c), U_SECOND(c), U_THIRD(c), (c) < 0x800 ? 2 : 3 }
#define U_FIRST(c) ((c) < 0x800 ? 0xC0 | (c) >> 6 : 0xE0 | (c) >> 12)
#define U_SECOND(c) (0x80 | (((c) < 0x800 ? (c) : (c) >> 6) & 0x3F))
#define U_THIRD(c) ((c) < 0x800 ? 0 : 0x80 | ((c) & 0x3F))
static const unsigned char UTF8[256][4] = {
    A64(0), A64(64),
    U(0x0402), U(0x0403), U(0x201A), U(0x0453), U(0x201E), U(0x2026), U(0x2020), U(0x2021),
    U(0x20AC), U(0x2030), U(0x0409), U(0x2039), U(0x040A), U(0x040C), U(0x040B), U(0x040F),
    U(0x0452), U(0x2018), U(0x2019), U(0x201C), U(0x201D), U(0x2022), U(0x2013), U(0x2014),
    U(0xFFFD), U(0x2122), U(0x0459), U(0x203A), U(0x045A), U(0x045C), U(0x045B), U(0x045F),
    U(0x00A0), U(0x040E), U(0x045E), U(0x0408), U(0x00A4), U(0x0490), U(0x00A6), U(0x00A7),
    U(0x0401), U(0x00A9), U(0x0404), U(0x00AB), U(0x00AC), U(0x00AD), U(0x00AE), U(0x0407),
    U(0x00B0), U(0x00B1), U(0x0406), U(0x0456), U(0x0491), U(0x00B5), U(0x00B6), U(0x00B7),
    U(0x0451), U(0x2116), U(0x0454), U(0x00BB), U(0x0458), U(0x0405), U(0x0455), U(0x0457),
    U(0x0410), U(0x0411), U(0x0412), U(0x0413), U(0x0414), U(0x0415), U(0x0416), U(0x0417),
    U(0x0418), U(0x0419), U(0x041A), U(0x041B), U(0x041C), U(0x041D), U(0x041E), U(0x041F),
    U(0x0420), U(0x0421), U(0x0422), U(0x0423), U(0x0424), U(0x0425), U(0x0426), U(0x0427),
    U(0x0428), U(0x0429), U(0x042A), U(0x042B), U(0x042C), U(0x042D), U(0x042E), U(0x042F),
    U(0x0430), U(0x0431), U(0x0432), U(0x0433), U(0x0434), U(0x0435), U(0x0436), U(0x0437),
    U(0x0438), U(0x0439), U(0x043A), U(0x043B), U(0x043C), U(0x043D), U(0x043E), U(0x043F),
    U(0x0440), U(0x0441), U(0x0442), U(0x0443), U(0x0444), U(0x0445), U(0x0446), U(0x0447),
    U(0x0448), U(0x0449), U(0x044A), U(0x044B), U(0x044C), U(0x044D), U(0x044E), U(0x044F),
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

size_t cp1251_decode(const unsigned char *in, size_t n, unsigned char *out)
{
    size_t i = 0, o = 0;
    while (i < n) {
        size_t run = ascii_run(in + i, n - i), end; /* an export is mostly ASCII: copied as it is */
        memcpy(out + o, in + i, run);
        o += run;
        i += run;
        /* then byte by byte, with no branch on what each is (Cyrillic text mixes ASCII in), for 64 bytes:
         * four bytes written whatever the length (the next overwrites the rest), but for the last byte
         * of in, three (out has room for 3 * n) */
        for (end = n - i <= 64 ? n - 1 : i + 64; i < end; i++) {
            memcpy(out + o, UTF8[in[i]], 4);
            o += UTF8[in[i]][3];
        }
        if (i == n - 1) {
            memcpy(out + o, UTF8[in[i]], 3);
            o += UTF8[in[i++]][3];
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
