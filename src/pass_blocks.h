/* A block of 64 bytes with no stop, passed whole (included by pass.c, for
 * x86-64 processors with AVX-512BW and BMI2). The block's field ends are
 * numbered in order; the i-th end closes column (c0 + i) mod ncolumns, c0 being the
 * column open at the block's start, so what each end must be (a line end or
 * not, the end of a field that must not be empty, of digits only, of a
 * value to check) is a pattern of bits that depends on c0 alone. pext
 * gathers what the ends are into that order, pdep spreads a pattern back
 * over the ends' bytes. The block passes when its line ends fall where the
 * pattern puts them, no required field is empty, no digit column holds a
 * non-digit, and the fields checked by value pass. Otherwise the loop reads
 * it end by end and stops where it must: a block is passed here only when
 * the loop would pass it too, and leaves the loop's state as the loop would. */
#define BLOCKS_TARGET __attribute__((target("bmi,bmi2,popcnt")))

/* The patterns of the ends of a block that starts in column c0 (bit i: the
 * i-th end), made when first needed. */
struct block_patterns {
    uint64_t made;   /* bit c0: patterns[c0] is made */
    int group;       /* each row is checked for its one_of group (see lanes_of) */
    uint64_t latest8; /* the first 8 digits of the latest second, as a big-endian number */
    int latest_fits;  /* the latest second has 8 to 15 digits, as seconds_pass takes */
    struct {
        uint64_t eol;      /* the end closes a record */
        uint64_t required; /* the field it closes must not be empty */
        uint64_t seconds;  /* the field is Unix seconds, compared with the latest */
        uint64_t other;    /* the field is checked by check_value */
        uint64_t one_of;   /* the field fills the row's one_of group */
        uint64_t digits;   /* the field must hold digits only */
    } at[BLOCK];
};

static void patterns_init(struct block_patterns *bp, const struct plan *p, int group)
{
    bp->latest8 = 0;
    memcpy(&bp->latest8, p->latest, p->latest_len < 8 ? p->latest_len : 8);
    bp->latest8 = __builtin_bswap64(bp->latest8);
    bp->latest_fits = p->latest_len >= 8 && p->latest_len <= 15;
    bp->made = 0;
    bp->group = group;
}

static void make_patterns(struct block_patterns *bp, const unsigned char *lanes, size_t ncolumns, size_t c0)
{
    size_t i, column = c0;
    memset(&bp->at[c0], 0, sizeof bp->at[c0]);
    for (i = 0; i < BLOCK; i++) {
        uint64_t bit = (uint64_t)1 << i;
        size_t following = column + 1 == ncolumns ? 0 : column + 1;
        unsigned lane = lanes[column];
        bp->at[c0].eol |= column + 1 == ncolumns ? bit : 0;
        bp->at[c0].required |= lane & LANE_REQUIRED ? bit : 0;
        bp->at[c0].seconds |= lane & LANE_SECONDS ? bit : 0;
        bp->at[c0].other |= lane & LANE_OTHER ? bit : 0;
        bp->at[c0].one_of |= lane & LANE_ONE_OF ? bit : 0;
        bp->at[c0].digits |= lane & LANE_DIGITS ? bit : 0;
        column = following;
    }
    bp->made |= (uint64_t)1 << c0;
}

/* The first byte after the end at bit k of the block at cursor: after the LF of a CRLF. */
static inline size_t after_end(size_t cursor, uint64_t cr, unsigned k)
{
    return cursor + k + 1 + ((cr >> k) & 1);
}

/* Where the field closed by the end at bit k of the block starts: after the
 * end before it, or `field` when it is the first. */
BLOCKS_TARGET static inline size_t field_start(const struct masks *m, size_t cursor, size_t field, unsigned k)
{
    uint64_t before = m->ends & (((uint64_t)1 << k) - 1);
    return before ? after_end(cursor, m->cr, 63 - (unsigned)__builtin_clzll(before)) : field;
}

/* Whether every field closed by an end in `ends` (bits of the block) passes
 * check_value for its column; c0 is the column open at the block's start. */
BLOCKS_TARGET static inline int values_pass(const struct plan *p, const struct masks *m, uint64_t ends, size_t c0,
                                            const unsigned char *buf, size_t cursor, size_t field)
{
    while (ends) {
        unsigned k = (unsigned)__builtin_ctzll(ends);
        size_t start = field_start(m, cursor, field, k), n = cursor + k - start,
               column = c0 + (size_t)__builtin_popcountll(m->ends & (((uint64_t)1 << k) - 1));
        ends &= ends - 1;
        while (column >= p->ncolumns)
            column -= p->ncolumns;
        if (n && !passes(p, p->columns[column].type, buf + start, n))
            return 0;
    }
    return 1;
}

/* Whether the Unix seconds s[0, n), all digits, are no later than the
 * latest second: one as long is compared by its first 8 digits as a
 * big-endian number, and by the rest only when those are the latest's. */
static inline int second_fits(const struct plan *p, const struct block_patterns *bp, const unsigned char *s, size_t n)
{
    uint64_t first8;
    if (n != p->latest_len)
        return n < p->latest_len;
    memcpy(&first8, s, 8);
    first8 = __builtin_bswap64(first8);
    return first8 < bp->latest8 || (first8 == bp->latest8 && not_above(s + 8, n - 8, p->latest + 8, n - 8));
}

/* Whether the fields of Unix seconds that start in the block (bits of
 * `starts`) and end in it (`closes`) are no later than the latest second.
 * The latest has 8 to 15 digits. */
BLOCKS_TARGET static inline int seconds_pass(const struct plan *p, const struct block_patterns *bp, uint64_t closes,
                                             uint64_t starts, const unsigned char *s)
{
    const size_t len = p->latest_len;
    uint64_t reach = starts | starts << 1, as_long; /* the bytes up to len after a start */
    reach |= reach << 2;
    reach |= reach << 4;
    reach |= reach << (len - 7);
    if (closes & ~reach)
        return 0;
    for (as_long = starts & (closes >> len); as_long; as_long &= as_long - 1)
        if (!second_fits(p, bp, s + __builtin_ctzll(as_long), len))
            return 0;
    return 1;
}

/* Whether each row that ends in the block fills its one_of group: `fills`
 * has bit i when the i-th end closes a filled one_of field, eols when it
 * closes a row; `earlier` whether the row open at the block's start filled it. */
static inline int rows_fill_one_of(uint64_t fills, uint64_t eols, int earlier)
{
    uint64_t from = ~(uint64_t)0; /* the ends of the row open */
    while (eols) {
        uint64_t through = ((eols & (0 - eols)) << 1) - 1; /* all ones when the end is bit 63 */
        if (!earlier && !(fills & from & through))
            return 0;
        earlier = 0;
        from = ~through;
        eols &= eols - 1;
    }
    return 1;
}

/* Whether the block at buf + cursor, with masks m and no stop, passes
 * whole; then st moves past it, as the loop would have moved it (of
 * st->filled only what the loop reads: whether the open row filled its
 * one_of group, when it is checked). Its
 * checks are gathered into one test, with few branches that depend on the
 * data: blocks of ordinary files vary from one to the next. */
BLOCKS_TARGET __attribute__((always_inline)) static inline int block_passes(
    const struct plan *p, const unsigned char *lanes, struct block_patterns *bp, size_t limit,
    const struct masks *m, uint64_t cr, const unsigned char *buf, size_t cursor, struct pass_state *st)
{
    const size_t c0 = st->column;
    const unsigned lane = lanes[c0]; /* of the field open at the block's start */
    const uint64_t ends = m->ends, eol = m->eol;
    const uint64_t counted = _bzhi_u64(~(uint64_t)0, (unsigned)__builtin_popcountll(ends)); /* bit i: an i-th end */
    const unsigned first_eol = (unsigned)_tzcnt_u64(eol) & 63, last_eol = 63 - (unsigned)__builtin_clzll(eol | 1),
                   last_end = 63 - (unsigned)__builtin_clzll(ends | 1); /* each 0 with no such end */
    const uint64_t starts = ((ends & ~cr) << 1) | (cr << 2) | (uint64_t)(st->field == cursor);
    uint64_t empty, nondigits;
    int bad;
    if (!(bp->made >> c0 & 1))
        make_patterns(bp, lanes, p->ncolumns, c0);
    empty = _pext_u64(ends & starts, ends);
    /* a non-digit carried up through the bytes that are no end marks the end of its field */
    nondigits = _pext_u64((~ends + (m->nondigit & ~ends & ~(cr << 1))) & ends, ends);
    /* field beyond cursor: the block begins with the LF of a CRLF, which the loop skips */
    bad = (st->field > cursor) | ((lane & LANE_DIGITS) && st->carry)
        | ((lane & LANE_TEXT) && cursor + BLOCK - st->field > CHECK_TEXT_MAX)
        | (_pext_u64(eol, ends) != (bp->at[c0].eol & counted)) | ((empty & bp->at[c0].required) != 0)
        | ((nondigits & bp->at[c0].digits) != 0)
        | (eol && after_end(cursor, cr, first_eol) - st->record > limit);
    if (bad)
        return 0;
    if (bp->at[c0].seconds & counted) {
        /* the ends of the seconds fields and those before them; the field
         * open at the block's start, when one, is compared apart if it began before */
        const uint64_t closes = _pdep_u64(bp->at[c0].seconds, ends), before = _pdep_u64(bp->at[c0].seconds >> 1, ends);
        const int open = (lane & LANE_SECONDS) != 0, earlier = open && st->field < cursor;
        if (!bp->latest_fits
            || (earlier && !second_fits(p, bp, buf + st->field, cursor + (size_t)_tzcnt_u64(ends) - st->field))
            || !seconds_pass(p, bp, earlier ? closes & (closes - 1) : closes,
                             ((before & ~cr) << 1) | ((before & cr) << 2) | (uint64_t)(open && !earlier), buf + cursor))
            return 0;
    }
    if ((bp->at[c0].other & counted)
        && !values_pass(p, m, _pdep_u64(bp->at[c0].other, ends), c0, buf, cursor, st->field))
        return 0;
    if (bp->group) {
        const uint64_t fills = ~empty & bp->at[c0].one_of & counted, eols = bp->at[c0].eol & counted;
        const int earlier = (st->filled & LANE_ONE_OF) != 0;
        if (!rows_fill_one_of(fills, eols, earlier))
            return 0;
        /* the row open at the block's end: the fields after its last line end */
        st->filled = (eols ? (fills >> (63 - __builtin_clzll(eols)) >> 1) != 0 : earlier || fills) ? LANE_ONE_OF : 0;
    }
    /* all passed: the state after the block's last end */
    st->count += __builtin_popcountll(eol);
    st->record = eol ? after_end(cursor, cr, last_eol) : st->record;
    st->column = eol ? (size_t)__builtin_popcountll(ends >> last_eol) - 1 : c0 + (size_t)__builtin_popcountll(ends);
    st->field = ends ? after_end(cursor, cr, last_end) : st->field;
    st->carry = ends ? (st->field - cursor < BLOCK ? m->nondigit & ~(uint64_t)0 << (st->field - cursor) : 0)
                     : st->carry | m->nondigit;
    return 1;
}
