/* utf8_valid_prefix: the valid prefix is valid on its own, and a decoder
 * written the slow way agrees on where the first invalid sequence starts. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "utf8.h"

/* Code point rules spelled out: the reference the fast path must match. */
static size_t reference_prefix(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        size_t len, k;
        if (s[i] < 0x80) {
            i++;
            continue;
        }
        len = (s[i] & 0xE0) == 0xC0 ? 2 : (s[i] & 0xF0) == 0xE0 ? 3 : (s[i] & 0xF8) == 0xF0 ? 4 : 0;
        if (!len || i + len > n)
            return i;
        cp = s[i] & (0x7F >> len);
        for (k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return i;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000)
            || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
            return i;
        i += len;
    }
    return n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t valid = utf8_valid_prefix(data, size);
    if (valid > size || utf8_valid_prefix(data, valid) != valid || valid != reference_prefix(data, size))
        abort();
    return 0;
}
