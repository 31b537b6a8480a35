/* The masks of a 64-byte block for plan_pass (included by pass.c): bit i
 * of each tells what byte i is. */
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
__attribute__((always_inline)) static inline void masks_of(struct masks *m, uint64_t ends, uint64_t lf, uint64_t cr, uint64_t other_stops,
                            uint64_t wide, uint64_t digits)
{
    uint64_t crlf = cr & (lf >> 1); /* a CR whose LF begins the next block: see pass_loop.h */
    m->cr = crlf;
    m->eol = crlf | (lf & ~(crlf << 1));
    m->ends = (ends & ~(crlf << 1)) | crlf;
    m->stop = other_stops | wide | (cr & ~crlf);
    m->wide = wide;
    m->nondigit = ~digits;
}

#ifdef __SSE2__
__attribute__((always_inline)) static inline void block_masks(const unsigned char *s, char delimiter, struct masks *m)
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
__attribute__((always_inline)) static inline void block_masks(const unsigned char *s, char delimiter, struct masks *m)
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

#ifdef PASS_X86
/* The same masks from one 64-byte register, on processors with AVX-512BW. */
__attribute__((target("avx512bw"), always_inline)) static inline void block_masks_avx512(const unsigned char *s,
                                                                                         char delimiter, struct masks *m)
{
    const __m512i x = _mm512_loadu_si512((const void *)s);
    const uint64_t lf = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\n')),
                   digits = _mm512_cmple_epu8_mask(_mm512_sub_epi8(x, _mm512_set1_epi8('0')), _mm512_set1_epi8(9)),
                   ends = lf | _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8(delimiter)),
                   cr = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('\r')),
                   other_stops = _mm512_cmpeq_epi8_mask(x, _mm512_set1_epi8('"'))
                       | _mm512_cmpeq_epi8_mask(x, _mm512_setzero_si512()),
                   wide = _mm512_movepi8_mask(x);
    if (!(cr | other_stops | wide)) /* nearly every block of a plain file: the CR arithmetic folds away */
        masks_of(m, ends, lf, 0, 0, 0, digits);
    else
        masks_of(m, ends, lf, cr, other_stops, wide, digits);
}
#endif
