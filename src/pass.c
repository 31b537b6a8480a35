/* The quick pass of plan_pass (plan.h): the plain records of a file, checked
 * 64 bytes at a time. Each block becomes bit masks (field ends, line ends,
 * non-digits, and the bytes this pass leaves to the reader); a record passes
 * when every field of it passes its column's check. The first record that
 * does not pass at once ends the pass: the reader then reads that one as
 * usual and reports whatever is wrong with it, so the pass never decides
 * that anything is wrong, only that a record is right. */
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "plan.h"

#define BLOCK 64
#define QUOTED_MAX 256 /* the longest quoted value the pass reads itself, in bytes */

struct masks {
    uint64_t ends;     /* the delimiter, LF, or the CR of CRLF */
    uint64_t eol;      /* LF, or the CR of CRLF */
    uint64_t cr;       /* the CR of CRLF */
    uint64_t stop;     /* a quote, NUL, another CR or a byte beyond ASCII */
    uint64_t nondigit;
};

/* The masks of a block from the bytes equal to the delimiter, LF, CR, a
 * quote or NUL, those beyond ASCII and the digits. */
static inline void masks_of(struct masks *m, uint64_t delim, uint64_t lf, uint64_t cr, uint64_t other_stops,
                            uint64_t digits)
{
    uint64_t crlf = cr & (lf >> 1); /* a CR whose LF is in the next block ends no record here */
    m->cr = crlf;
    m->eol = crlf | (lf & ~(crlf << 1));
    m->ends = delim | m->eol;
    m->stop = other_stops | (cr & ~crlf);
    m->nondigit = ~digits;
}

#ifdef __SSE2__
static inline void block_masks(const unsigned char *s, char delimiter, struct masks *m)
{
    const __m128i delim = _mm_set1_epi8(delimiter), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                  quote = _mm_set1_epi8('"'), zero = _mm_setzero_si128(),
                  shift = _mm_set1_epi8((char)(0x80 - '0')), below = _mm_set1_epi8(-118);
    uint64_t d = 0, l = 0, c = 0, stops = 0, digits = 0;
    int i;
    for (i = 0; i < 4; i++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(s + 16 * i));
        d |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, delim)) << 16 * i;
        l |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, lf)) << 16 * i;
        c |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, cr)) << 16 * i;
        /* bytes beyond ASCII show in the movemask of x itself */
        stops |= (uint64_t)(unsigned)_mm_movemask_epi8(
            _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, zero)), x)) << 16 * i;
        /* '0'..'9' shifted to -128..-119: the only bytes below -118 */
        digits |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(x, shift), below)) << 16 * i;
    }
    masks_of(m, d, l, c, stops, digits);
}
#else
static inline void block_masks(const unsigned char *s, char delimiter, struct masks *m)
{
    uint64_t delim = 0, lf = 0, cr = 0, stops = 0, digits = 0;
    int i;
    for (i = 0; i < BLOCK; i++) {
        uint64_t bit = (uint64_t)1 << i;
        unsigned char c = s[i];
        delim |= c == (unsigned char)delimiter ? bit : 0;
        lf |= c == '\n' ? bit : 0;
        cr |= c == '\r' ? bit : 0;
        stops |= c == '"' || c == 0 || c >= 0x80 ? bit : 0;
        digits |= c >= '0' && c <= '9' ? bit : 0;
    }
    masks_of(m, delim, lf, cr, stops, digits);
}
#endif

/* The end of the quoted field opened at s[0] when it is one the pass reads
 * itself: plain ASCII text on one line, not empty, in a text column, ended
 * by the delimiter or a line end. 0 when it is not. */
static size_t quoted_end(const struct plan_column *c, const unsigned char *s, size_t n, char delimiter)
{
    size_t i, limit = n < QUOTED_MAX ? n : QUOTED_MAX;
    if (c->type != CHECK_NONE && c->type != CHECK_TEXT && c->type != CHECK_PROPERTY)
        return 0;
    for (i = 1; i < limit; i++) {
        if (s[i] == '"') {
            if (i + 1 < limit && s[i + 1] == '"') {
                i++;
                continue;
            }
            if (i == 1 || i + 2 >= n
                || (s[i + 1] != (unsigned char)delimiter && s[i + 1] != '\n' && (s[i + 1] != '\r' || s[i + 2] != '\n')))
                return 0;
            return i + 1;
        }
        if (s[i] < 0x20 || s[i] >= 0x80)
            return 0;
    }
    return 0;
}

/* Whether the n digits at s make a number no greater than the `len` digits of limit. */
static int not_above(const unsigned char *s, size_t n, const char *limit, size_t len)
{
    size_t i;
    if (n != len)
        return n < len;
    for (i = 0; i < n; i++)
        if (s[i] != (unsigned char)limit[i])
            return s[i] < (unsigned char)limit[i];
    return 1;
}

/* Whether the unquoted value s[0, n) passes column c at once. digits: it has
 * digits only. */
static int passes(const struct plan *p, const struct plan_column *c, const unsigned char *s, size_t n, int digits)
{
    char reason[CHECK_REASON_SIZE];
    switch (c->type) {
    case CHECK_NONE:
        return 1;
    case CHECK_TEXT:
    case CHECK_PROPERTY:
        return n <= CHECK_TEXT_MAX; /* ASCII: a byte is a character */
    case CHECK_ID:
    case CHECK_COUNT:
        return digits;
    case CHECK_UNIX_SECONDS:
        return digits && not_above(s, n, p->latest, p->latest_len);
    case CHECK_FLAG:
        return n == 1 && (s[0] == '0' || s[0] == '1');
    default:
        return check_value(&p->sets, c->type, (const char *)s, n, reason) == NULL;
    }
}

size_t plan_pass(const struct plan *p, char delimiter, size_t limit, const unsigned char *buf, size_t len,
                 long long *records)
{
    unsigned char tail[BLOCK];
    size_t cursor = 0, record = 0, field = 0, column = 0;
    int filled = 0, quoted = 0;
    uint64_t nondigit_before = 0; /* the field had a non-digit in an earlier block */
    *records = 0;
    while (cursor < len) {
        struct masks m;
        const unsigned char *s = buf + cursor;
        uint64_t valid = ~(uint64_t)0, ends;
        size_t from;
        if (len - cursor < BLOCK) {
            memset(tail, 0, sizeof tail);
            memcpy(tail, s, len - cursor);
            s = tail;
            valid = ((uint64_t)1 << (len - cursor)) - 1;
        }
        block_masks(s, delimiter, &m);
        m.stop &= valid;
        ends = m.ends & valid & (m.stop ? (m.stop & (0 - m.stop)) - 1 : ~(uint64_t)0);
        while (ends) {
            unsigned k = (unsigned)__builtin_ctzll(ends);
            size_t at = cursor + k, n = at - field;
            const struct plan_column *c = &p->columns[column];
            if (quoted) {
                filled |= c->one_of;
            } else if (n == 0) {
                if (c->required)
                    return record;
            } else {
                unsigned first = field > cursor ? (unsigned)(field - cursor) : 0;
                uint64_t inside = (((uint64_t)1 << k) - 1) >> first << first;
                filled |= c->one_of;
                if (!passes(p, c, buf + field, n, !(m.nondigit & inside) && !nondigit_before))
                    return record;
            }
            field = at + 1 + (m.cr >> k & 1);
            if (m.eol >> k & 1) {
                if (column + 1 != p->ncolumns || (p->one_of && !filled) || field - record > limit)
                    return record;
                ++*records;
                record = field;
                column = 0;
                filled = 0;
            } else if (++column == p->ncolumns) {
                return record;
            }
            quoted = 0;
            nondigit_before = 0;
            ends &= ends - 1;
        }
        if (m.stop) {
            size_t at = cursor + (unsigned)__builtin_ctzll(m.stop), end;
            if (at != field || buf[at] != '"' || !(end = quoted_end(&p->columns[column], buf + at, len - at, delimiter)))
                return record;
            cursor = at + end; /* the delimiter or line end after the closing quote */
            quoted = 1;
            continue;
        }
        from = field > cursor ? field - cursor : 0;
        if (from < BLOCK)
            nondigit_before |= m.nondigit >> from;
        cursor += BLOCK;
    }
    return record;
}

