/* format_double and format_int: any finite double is written as a plain
 * decimal (no exponent) that reads back as the same double. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/csv.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[400], *end;
    double v;
    int64_t i;
    size_t n;
    if (size < 8)
        return 0;
    memcpy(&v, data, 8);
    memcpy(&i, data, 8);
    n = format_int(i, out);
    out[n] = '\0';
    if (strtoll(out, &end, 10) != i || *end)
        abort();
    if (!isfinite(v))
        return 0;
    n = format_double(v, out);
    out[n] = '\0';
    if (n >= sizeof out || strpbrk(out, "eEnN") || strtod(out, &end) != v || *end)
        abort();
    return 0;
}
