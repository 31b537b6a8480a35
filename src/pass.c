/* The quick pass of plan_pass (plan.h): the plain records of a file, checked
 * 64 bytes at a time. Each block becomes bit masks (field ends, line ends,
 * non-digits, and the stops: quotes and bytes beyond ASCII, whose fields it
 * reads whole, and the bytes it leaves to the reader); a record passes when
 * every field of it passes its column's check. The first record that
 * does not pass at once ends the pass: the reader then reads that one as
 * usual and reports whatever is wrong with it, so the pass never decides
 * that anything is wrong, only that a record is right.
 * The loop (pass_loop.h) reads a block end by end. On x86-64 processors
 * with AVX-512BW and BMI2 it first tries each block whole (pass_blocks.h);
 * the fuzzer holds that way to the plain one's result. */
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#define PASS_X86 /* a way with AVX-512BW and BMI2, chosen at run time */
#include <immintrin.h>
#elif defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "plan.h"
#include "utf8.h"

#define BLOCK 64
#define QUOTED_MAX 256 /* the longest quoted value the pass reads itself, in bytes */
#define WIDE_MAX 1024  /* the farthest it looks byte by byte for the end of a value beyond ASCII */
#define LANES 256      /* the most columns it takes: a wider file goes to the reader */

#include "pass_masks.h"

/* What the pass checks of a column, read off its type once per call. */
enum { LANE_REQUIRED = 1, LANE_ONE_OF = 2, LANE_DIGITS = 4, LANE_TEXT = 8, LANE_SECONDS = 16, LANE_OTHER = 32 };

static unsigned char lane_of(const struct plan_column *c)
{
    unsigned char lane = (unsigned char)((c->required ? LANE_REQUIRED : 0) | (c->one_of ? LANE_ONE_OF : 0));
    switch (c->type) {
    case CHECK_NONE:
    case CHECK_TEXT:
        return lane;
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

/* The lanes of the plan's columns; whether each record must be checked for
 * its one_of group. A group of one column is that column required instead:
 * the pass stops at the same record either way, with less to carry from
 * one block to the next. */
static int lanes_of(const struct plan *p, unsigned char *lanes)
{
    size_t i, group = 0, last = 0;
    for (i = 0; i < p->ncolumns; i++) {
        lanes[i] = lane_of(&p->columns[i]);
        if (lanes[i] & LANE_ONE_OF) {
            group++;
            last = i;
        }
    }
    if (p->one_of && group == 1)
        lanes[last] |= LANE_REQUIRED;
    return p->one_of && group != 1;
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

/* Where the loop is between blocks. */
struct pass_state {
    size_t record, field, column; /* the open record's and field's first bytes, the field's column */
    unsigned filled;              /* the lanes of the open record's filled fields */
    uint64_t carry;               /* the open field had a non-digit in an earlier block */
    long long count;              /* the records passed */
};

#define PASS_FUNCTION pass_plain
#define PASS_TARGET
#define PASS_MASKS block_masks
#include "pass_loop.h"
#undef PASS_FUNCTION
#undef PASS_TARGET
#undef PASS_MASKS

#ifdef PASS_X86
#include "pass_blocks.h"

#define PASS_FUNCTION pass_blocks
#define PASS_TARGET __attribute__((target("avx512bw,bmi,bmi2,popcnt")))
#define PASS_MASKS block_masks_avx512
#define PASS_RUN blocks_passing
#include "pass_loop.h"
#endif

int plan_pass_fastest(void)
{
#ifdef PASS_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2")
        && __builtin_cpu_supports("popcnt"))
        return PASS_BLOCKS;
#endif
    return PASS_PLAIN;
}

size_t plan_pass_by(int way, const struct plan *p, char delimiter, size_t limit, const unsigned char *buf,
                    size_t len, long long *records)
{
#ifdef PASS_X86
    if (way == PASS_BLOCKS)
        return pass_blocks(p, delimiter, limit, buf, len, records);
#endif
    (void)way;
    return pass_plain(p, delimiter, limit, buf, len, records);
}

size_t plan_pass(const struct plan *p, char delimiter, size_t limit, const unsigned char *buf, size_t len,
                 long long *records)
{
    return plan_pass_by(plan_pass_fastest(), p, delimiter, limit, buf, len, records);
}
