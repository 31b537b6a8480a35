/* The value checks of csvup.validate on any bytes, for every column type:
 * no crash, and what passes has the documented shape (ids and times are
 * digits, decimals read whole as numbers, dates have their length); a
 * quoted value is at most 80 characters of valid UTF-8 and fits its buffer. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "utf8.h"

static int digits(const char *s, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return n > 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct check_sets sets;
    const char *s = (const char *)data;
    char reason[CHECK_REASON_SIZE], quoted[CHECK_QUOTED_SIZE], copy[64];
    size_t n, chars = 0, i;
    int type;
    if (check_sets_init(&sets, "EUR RUB USD", "ad direct organic", 1700000000) != 0)
        abort();
    for (type = CHECK_TEXT; type <= CHECK_NAME; type++) {
        const char *why = check_value(&sets, type, s, size, reason);
        if (why)
            continue;
        if ((type == CHECK_ID || type == CHECK_COUNT) && !digits(s, size))
            abort();
        if (type == CHECK_UNIX_SECONDS && (!digits(s, size) || size > 12))
            abort();
        if (type == CHECK_FLAG && !(size == 1 && (s[0] == '0' || s[0] == '1')))
            abort();
        if (type == CHECK_DECIMAL && size < sizeof copy) {
            char *end;
            memcpy(copy, s, size);
            copy[size] = 0;
            strtod(copy, &end);
            if (*end)
                abort();
        }
        if (type == CHECK_CURRENCY && size != 3)
            abort();
        if (type == CHECK_DATE_OR_RANGE && size != 10 && size != 21)
            abort();
        if (type == CHECK_PROPERTY_DATE && size != 10 && size != 19)
            abort();
    }
    n = check_quote(s, size, quoted);
    if (n >= CHECK_QUOTED_SIZE || strlen(quoted) != n || utf8_valid_prefix((unsigned char *)quoted, n) != n)
        abort();
    for (i = 0; i < n; i++)
        chars += ((unsigned char)quoted[i] & 0xC0) != 0x80;
    if (chars > 2 + 4 * CHECK_QUOTE_MAX + 1)
        abort();
    return 0;
}
