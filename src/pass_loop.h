/* The loop of plan_pass, included by pass.c once for each way of reading a
 * block: PASS_FUNCTION is its name, PASS_TARGET the instructions it may use,
 * PASS_MASKS the function that makes a block's masks, and PASS_RUN, when
 * defined, the name of a loop over whole blocks (block_passes) tried first. */
#ifdef PASS_RUN
/* From cursor on, the blocks that pass whole, with *st moved past them: the
 * cursor of the first that does not (its masks in *m), or of the last
 * bytes, too few for a block. */
PASS_TARGET __attribute__((noinline)) static size_t PASS_RUN(const struct plan *p, const unsigned char *lanes,
                                                             struct block_patterns *bp, char delimiter, size_t limit,
                                                             const unsigned char *buf, size_t cursor, size_t len,
                                                             struct pass_state *st, struct masks *m)
{
    struct pass_state at = *st;
    while (len - cursor >= BLOCK) {
        PASS_MASKS(buf + cursor, delimiter, m);
        /* m->cr as a constant 0 in the blocks with no CRLF, nearly all: no arithmetic for CRs */
        if (m->stop || !(m->cr ? block_passes(p, lanes, bp, limit, m, m->cr, buf, cursor, &at)
                               : block_passes(p, lanes, bp, limit, m, 0, buf, cursor, &at)))
            break;
        cursor += BLOCK;
    }
    *st = at;
    return cursor;
}
#endif

PASS_TARGET static size_t PASS_FUNCTION(const struct plan *p, char delimiter, size_t limit, const unsigned char *buf,
                                        size_t len, long long *records)
{
    unsigned char tail[BLOCK], lanes[LANES];
    const size_t ncolumns = p->ncolumns;
    struct pass_state st = { 0, 0, 0, 0, 0, 0 };
    size_t cursor = 0;
    unsigned read_whole = 0; /* the field the next end closes was read and checked whole */
    int group; /* each record is checked for its one_of group */
#ifdef PASS_RUN
    struct block_patterns patterns;
    const int by_blocks = ncolumns <= BLOCK && limit >= 2 * BLOCK;
#endif
    *records = 0;
    if (ncolumns == 0 || ncolumns > LANES || (unsigned char)delimiter >= 0x80) /* such a delimiter is also a stop */
        return 0;
    group = lanes_of(p, lanes);
#ifdef PASS_RUN
    patterns_init(&patterns, p, group);
#endif
    while (cursor < len) {
        struct masks m;
        const unsigned char *s = buf + cursor;
        uint64_t valid = ~(uint64_t)0, live; /* live: the non-digits since the last field end */
        size_t next;
        int have_masks = 0;
#ifdef PASS_RUN
        if (by_blocks && !read_whole) {
            cursor = PASS_RUN(p, lanes, &patterns, delimiter, limit, buf, cursor, len, &st, &m);
            if (cursor == len)
                break;
            s = buf + cursor;
            have_masks = len - cursor >= BLOCK;
        }
#endif
        if (len - cursor < BLOCK) {
            memset(tail, 0, sizeof tail);
            memcpy(tail, s, len - cursor);
            s = tail;
            valid = ((uint64_t)1 << (len - cursor)) - 1;
        }
        if (!have_masks)
            PASS_MASKS(s, delimiter, &m);
        m.stop &= valid;
        m.ends &= valid;
        if (st.field > cursor) /* the LF of a CRLF whose CR ended the last block */
            m.ends &= ~(uint64_t)0 << (st.field - cursor);
        if ((m.stop >> (BLOCK - 1)) && s[BLOCK - 1] == '\r' && len - cursor > BLOCK && buf[cursor + BLOCK] == '\n') {
            const uint64_t last = (uint64_t)1 << (BLOCK - 1); /* a CR whose LF begins the next block */
            m.stop &= ~last;
            m.cr |= last;
            m.eol |= last;
            m.ends |= last;
        }
        live = st.field > cursor
                   ? (st.field - cursor < BLOCK ? m.nondigit >> (st.field - cursor) << (st.field - cursor) : 0)
                   : m.nondigit;
        next = cursor + BLOCK;
        for (;;) { /* the ends before the first stop; then the field at the stop, read whole */
            uint64_t ends = m.ends & (m.stop ? (m.stop & (0 - m.stop)) - 1 : ~(uint64_t)0);
            size_t at, end;
            while (ends) {
                uint64_t low = ends & (0 - ends);
                unsigned k = (unsigned)__builtin_ctzll(ends), lane = lanes[st.column];
                size_t n;
                at = cursor + k;
                n = at - st.field;
                ends ^= low;
                if (n == 0) {
                    if (lane & LANE_REQUIRED)
                        goto out;
                } else if (!read_whole) {
                    if ((lane & LANE_DIGITS) && ((live & (low - 1)) | st.carry))
                        goto out;
                    if ((lane & LANE_TEXT) && n > CHECK_TEXT_MAX) /* ASCII: a byte is a character */
                        goto out;
                    if ((lane & LANE_SECONDS) && !not_above(buf + st.field, n, p->latest, p->latest_len))
                        goto out;
                    if ((lane & LANE_OTHER) && !passes(p, p->columns[st.column].type, buf + st.field, n))
                        goto out;
                }
                st.filled |= n ? lane : 0;
                if (m.cr & low) {
                    live &= ~((low << 2) - 1); /* through the LF of the CRLF */
                    st.field = at + 2;
                } else {
                    live &= ~(low | (low - 1));
                    st.field = at + 1;
                }
                read_whole = 0;
                st.carry = 0;
                if (m.eol & low) {
                    if (st.column + 1 != ncolumns || (group && !(st.filled & LANE_ONE_OF))
                        || st.field - st.record > limit)
                        goto out;
                    st.count++;
                    st.record = st.field;
                    st.column = 0;
                    st.filled = 0;
                } else if (++st.column == ncolumns) {
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
                    n = cursor + (unsigned)__builtin_ctzll(first) - st.field;
                else
                    n = wide_end(buf + st.field, len - st.field, delimiter);
                if (n && wide_passes(p, st.column, lanes[st.column], buf + st.field, n))
                    end = st.field + n;
            } else if (at == st.field && buf[at] == '"') {
                size_t n = quoted_end(lanes[st.column], buf + at, len - at, delimiter);
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
        st.carry |= live;
        cursor = next;
    }
out:
    *records = st.count;
    return st.record;
}
