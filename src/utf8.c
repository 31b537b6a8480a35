#include <stdint.h>
#include <string.h>

#include "utf8.h"

size_t utf8_sequence(const unsigned char *s, size_t left)
{
    unsigned char c = s[0];
    size_t len, i;
    if (c < 0xC2)
        return 0; /* continuation byte, or an overlong two-byte form */
    len = c < 0xE0 ? 2 : c < 0xF0 ? 3 : c < 0xF5 ? 4 : 0;
    if (len == 0 || left < len)
        return 0;
    for (i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80)
            return 0;
    if ((c == 0xE0 && s[1] < 0xA0)    /* overlong three-byte form */
        || (c == 0xED && s[1] >= 0xA0) /* UTF-16 surrogate */
        || (c == 0xF0 && s[1] < 0x90)  /* overlong four-byte form */
        || (c == 0xF4 && s[1] >= 0x90)) /* above U+10FFFF */
        return 0;
    return len;
}

size_t utf8_valid_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t len;
        uint64_t word;
        if (i + 8 <= n && (memcpy(&word, s + i, 8), (word & UINT64_C(0x8080808080808080)) == 0)) {
            i += 8; /* eight ASCII bytes at once: most of a CSV */
            continue;
        }
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        if (s[i] >= 0xC2 && s[i] < 0xE0 && i + 1 < n && (s[i + 1] & 0xC0) == 0x80) {
            i += 2; /* a two-byte sequence, inline: Cyrillic text is made of them */
            continue;
        }
        if (!(len = utf8_sequence(s + i, n - i)))
            return i;
        i += len;
    }
    return n;
}

size_t utf8_text_prefix(const unsigned char *s, size_t n)
{
    size_t valid = utf8_valid_prefix(s, n);
    const unsigned char *nul = memchr(s, 0, valid);
    return nul ? (size_t)(nul - s) : valid;
}
