/* The quick pass of plan_pass (plan.h): the plain records of a file, checked
 * 64 bytes at a time. Each block becomes bit masks (field ends, line ends,
 * non-digits, and the stops: quotes and bytes beyond ASCII, whose fields it
 * reads whole, and the bytes it leaves to the reader); a record passes when
 * every field of it passes its column's check. The first record that
 * does not pass at once ends the pass: the reader then reads that one as
 * usual and reports whatever is wrong with it, so the pass never decides
 * that anything is wrong, only that a record is right. */
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "plan.h"
#include "utf8.h"

#define BLOCK 64
#define QUOTED_MAX 256 /* the longest quoted value the pass reads itself, in bytes */
#define WIDE_MAX 1024  /* the farthest it looks byte by byte for the end of a value beyond ASCII */
#define LANES 256      /* the most columns it takes: a wider file goes to the reader */

struct masks {
    uint64_t ends;     /* the delimiter, LF, or the CR of CRLF */
    uint64_t eol;      /* LF, or the CR of CRLF */
    uint64_t cr;       /* the CR of CRLF */
    uint64_t stop;     /* a quote, NUL, another CR or a byte beyond ASCII */
    uint64_t wide;     /* a byte beyond ASCII */
    uint64_t nondigit;
};

/* The masks of a block from those of the bytes equal to the delimiter or LF,
 * to LF, to CR, of the other stops (a quote, NUL), of the bytes beyond ASCII
 * and of the digits. */
static inline void masks_of(struct masks *m, uint64_t ends, uint64_t lf, uint64_t cr, uint64_t other_stops,
                            uint64_t wide, uint64_t digits)
{
    uint64_t crlf = cr & (lf >> 1); /* a CR whose LF is in the next block ends no record here */
    m->cr = crlf;
    m->eol = crlf | (lf & ~(crlf << 1));
    m->ends = (ends & ~(crlf << 1)) | crlf;
    m->stop = other_stops | wide | (cr & ~crlf);
    m->wide = wide;
    m->nondigit = ~digits;
}

#ifdef __SSE2__
static inline void block_masks(const unsigned char *s, char delimiter, struct masks *m)
{
    const __m128i delim = _mm_set1_epi8(delimiter), lf = _mm_set1_epi8('\n'), cr = _mm_set1_epi8('\r'),
                  quote = _mm_set1_epi8('"'), zero = _mm_setzero_si128(),
                  shift = _mm_set1_epi8((char)(0x80 - '0')), below = _mm_set1_epi8(-118);
    __m128i rare = zero;
    uint64_t lfs = 0, ends = 0, digits = 0, crs = 0, stops = 0, wide = 0;
    int i;
    for (i = 0; i < 4; i++) {
        __m128i x = _mm_loadu_si128((const __m128i *)(s + 16 * i)), l = _mm_cmpeq_epi8(x, lf);
        lfs |= (uint64_t)(unsigned)_mm_movemask_epi8(l) << 16 * i;
        ends |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, delim), l)) << 16 * i;
        /* '0'..'9' shifted to -128..-119: the only bytes below -118 */
        digits |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmplt_epi8(_mm_add_epi8(x, shift), below)) << 16 * i;
        /* a byte beyond ASCII shows in the sign bit of x itself */
        rare = _mm_or_si128(rare, _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, cr), _mm_cmpeq_epi8(x, quote)),
                                               _mm_or_si128(_mm_cmpeq_epi8(x, zero), x)));
    }
    if (_mm_movemask_epi8(rare)) /* a CR, quote, NUL or byte beyond ASCII: the block again, for where */
        for (i = 0; i < 4; i++) {
            __m128i x = _mm_loadu_si128((const __m128i *)(s + 16 * i));
            crs |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(x, cr)) << 16 * i;
            stops |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, zero)))
                << 16 * i;
            wide |= (uint64_t)(unsigned)_mm_movemask_epi8(x) << 16 * i;
        }
    masks_of(m, ends, lfs, crs, stops, wide, digits);
}
#else
static inline void block_masks(const unsigned char *s, char delimiter, struct masks *m)
{
    uint64_t ends = 0, lf = 0, cr = 0, stops = 0, wide = 0, digits = 0;
    int i;
    for (i = 0; i < BLOCK; i++) {
        uint64_t bit = (uint64_t)1 << i;
        unsigned char c = s[i];
        ends |= c == (unsigned char)delimiter || c == '\n' ? bit : 0;
        lf |= c == '\n' ? bit : 0;
        cr |= c == '\r' ? bit : 0;
        stops |= c == '"' || c == 0 ? bit : 0;
        wide |= c >= 0x80 ? bit : 0;
        digits |= c >= '0' && c <= '9' ? bit : 0;
    }
    masks_of(m, ends, lf, cr, stops, wide, digits);
}
#endif

/* What the pass checks of a column, read off its type once per call. */
enum { LANE_REQUIRED = 1, LANE_ONE_OF = 2, LANE_DIGITS = 4, LANE_TEXT = 8, LANE_SECONDS = 16, LANE_OTHER = 32 };

static unsigned char lane_of(const struct plan_column *c)
{
    unsigned char lane = (unsigned char)((c->required ? LANE_REQUIRED : 0) | (c->one_of ? LANE_ONE_OF : 0));
    switch (c->type) {
    case CHECK_NONE:
        return lane;
    case CHECK_TEXT:
    case CHECK_PROPERTY:
        return lane | LANE_TEXT;
    case CHECK_ID:
    case CHECK_COUNT:
        return lane | LANE_DIGITS;
    case CHECK_UNIX_SECONDS:
        return lane | LANE_DIGITS | LANE_SECONDS;
    default:
        return lane | LANE_OTHER;
    }
}

/* Whether s[i] (of n bytes) ends a field: the delimiter, LF, or the CR of a CRLF. */
static int ends_field(const unsigned char *s, size_t i, size_t n, char delimiter)
{
    return s[i] == (unsigned char)delimiter || s[i] == '\n' || (s[i] == '\r' && i + 1 < n && s[i + 1] == '\n');
}

/* The end of the quoted field opened at s[0] when it is one the pass reads
 * itself: UTF-8 text on one line, not empty, in a text column, ended by the
 * delimiter or a line end. 0 when it is not. */
static size_t quoted_end(unsigned lane, const unsigned char *s, size_t n, char delimiter)
{
    size_t i, limit = n < QUOTED_MAX ? n : QUOTED_MAX;
    unsigned char high = 0; /* the bytes OR-ed: bit 7 when one is beyond ASCII */
    if (lane & (LANE_DIGITS | LANE_OTHER))
        return 0;
    for (i = 1; i < limit; i++) {
        if (s[i] == '"') {
            if (i + 1 < limit && s[i + 1] == '"') {
                i++;
                continue;
            }
            if (i == 1 || i + 2 >= n || !ends_field(s, i + 1, n, delimiter)
                || ((high & 0x80) && utf8_valid_prefix(s + 1, i - 1) != i - 1))
                return 0;
            return i + 1;
        }
        if (s[i] < 0x20)
            return 0;
        high |= s[i];
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

/* Whether the value s[0, n) passes the check of its type at once. */
static int passes(const struct plan *p, int type, const unsigned char *s, size_t n)
{
    char reason[CHECK_REASON_SIZE];
    return check_value(&p->sets, type, (const char *)s, n, reason) == NULL;
}

/* Whether the unquoted field s[0, n), which holds a byte beyond ASCII,
 * passes at once: UTF-8 that passes its column's check. */
static int wide_passes(const struct plan *p, size_t column, unsigned lane, const unsigned char *s, size_t n)
{
    return !(lane & LANE_DIGITS) && utf8_valid_prefix(s, n) == n
        && (!(lane & (LANE_TEXT | LANE_OTHER)) || passes(p, p->columns[column].type, s, n));
}

/* The length of the unquoted field at s[0] when it ends on its line, by the
 * delimiter or a line end, within WIDE_MAX bytes and with no quote, NUL or
 * lone CR; 0 when it does not. */
static size_t wide_end(const unsigned char *s, size_t n, char delimiter)
{
    size_t i, limit = n < WIDE_MAX ? n : WIDE_MAX;
    for (i = 0; i < limit; i++) {
        if (ends_field(s, i, n, delimiter))
            return i;
        if (s[i] == '"' || s[i] == 0 || s[i] == '\r')
            return 0;
    }
    return 0;
}

size_t plan_pass(const struct plan *p, char delimiter, size_t limit, const unsigned char *buf, size_t len,
                 long long *records)
{
    unsigned char tail[BLOCK], lanes[LANES];
    const size_t ncolumns = p->ncolumns;
    size_t cursor = 0, record = 0, field = 0, column = 0, i;
    unsigned filled = 0, read_whole = 0; /* the field the next end closes was read and checked whole */
    uint64_t carry = 0; /* the field had a non-digit in an earlier block */
    long long count = 0;
    *records = 0;
    if (ncolumns == 0 || ncolumns > LANES || (unsigned char)delimiter >= 0x80) /* such a delimiter is also a stop */
        return 0;
    for (i = 0; i < ncolumns; i++)
        lanes[i] = lane_of(&p->columns[i]);
    while (cursor < len) {
        struct masks m;
        const unsigned char *s = buf + cursor;
        uint64_t valid = ~(uint64_t)0, live; /* live: the non-digits since the last field end */
        size_t next;
        if (len - cursor < BLOCK) {
            memset(tail, 0, sizeof tail);
            memcpy(tail, s, len - cursor);
            s = tail;
            valid = ((uint64_t)1 << (len - cursor)) - 1;
        }
        block_masks(s, delimiter, &m);
        m.stop &= valid;
        m.ends &= valid;
        live = field > cursor ? (field - cursor < BLOCK ? m.nondigit >> (field - cursor) << (field - cursor) : 0)
                              : m.nondigit;
        next = cursor + BLOCK;
        for (;;) { /* the ends before the first stop; then the field at the stop, read whole */
            uint64_t ends = m.ends & (m.stop ? (m.stop & (0 - m.stop)) - 1 : ~(uint64_t)0);
            size_t at, end;
            while (ends) {
                uint64_t low = ends & (0 - ends);
                unsigned k = (unsigned)__builtin_ctzll(ends), lane = lanes[column];
                size_t n;
                at = cursor + k;
                n = at - field;
                ends ^= low;
                if (n == 0) {
                    if (lane & LANE_REQUIRED)
                        goto out;
                } else if (!read_whole) {
                    if ((lane & LANE_DIGITS) && ((live & (low - 1)) | carry))
                        goto out;
                    if ((lane & LANE_TEXT) && n > CHECK_TEXT_MAX) /* ASCII: a byte is a character */
                        goto out;
                    if ((lane & LANE_SECONDS) && !not_above(buf + field, n, p->latest, p->latest_len))
                        goto out;
                    if ((lane & LANE_OTHER) && !passes(p, p->columns[column].type, buf + field, n))
                        goto out;
                }
                filled |= n ? lane : 0;
                if (m.cr & low) {
                    live &= ~((low << 2) - 1); /* through the LF of the CRLF */
                    field = at + 2;
                } else {
                    live &= ~(low | (low - 1));
                    field = at + 1;
                }
                read_whole = 0;
                carry = 0;
                if (m.eol & low) {
                    if (column + 1 != ncolumns || (p->one_of && !(filled & LANE_ONE_OF)) || field - record > limit)
                        goto out;
                    count++;
                    record = field;
                    column = 0;
                    filled = 0;
                } else if (++column == ncolumns) {
                    goto out;
                }
            }
            if (!m.stop)
                break;
            at = cursor + (unsigned)__builtin_ctzll(m.stop);
            end = 0;
            if (buf[at] >= 0x80) {
                /* the field's end: the next end in this block when no other stop comes first */
                uint64_t after = m.ends & ~(uint64_t)0 << (at - cursor), first = after & (0 - after);
                size_t n;
                if (first && !(m.stop & ~m.wide & (first - 1)))
                    n = cursor + (unsigned)__builtin_ctzll(first) - field;
                else
                    n = wide_end(buf + field, len - field, delimiter);
                if (n && wide_passes(p, column, lanes[column], buf + field, n))
                    end = field + n;
            } else if (at == field && buf[at] == '"') {
                size_t n = quoted_end(lanes[column], buf + at, len - at, delimiter);
                end = n ? at + n : 0;
            }
            if (!end) /* the reader reads this record */
                goto out;
            read_whole = 1;
            if (end - cursor >= BLOCK) {
                next = end;
                break;
            }
            m.ends &= ~(uint64_t)0 << (end - cursor);
            m.stop &= ~(uint64_t)0 << (end - cursor);
        }
        carry |= live;
        cursor = next;
    }
out:
    *records = count;
    return record;
}
