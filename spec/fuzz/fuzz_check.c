/* The value checks of csvup.validate on any bytes, for every column type:
 * no crash, and what passes has the documented shape once trimmed of the
 * spaces and tabs around it, as Metrica reads it (ids are digits, times
 * digits with an optional fraction, decimals read whole as numbers, dates
 * have their length); a quoted value is at most 80 characters of valid UTF-8
 * and fits its buffer. */
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
    for (type = CHECK_TEXT; type <= CHECK_EMAIL; type++) {
        const int carrot = type == CHECK_PROPERTY || type == CHECK_KEY || type == CHECK_PROPERTY_DATE
            || type == CHECK_NAME;
        const char *t = s, *point;
        size_t tn = size; /* the value as the service reads it: Metrica's trimmed of spaces and tabs */
        if (check_value(&sets, type, s, size, reason))
            continue;
        while (!carrot && tn && (t[0] == ' ' || t[0] == '\t'))
            t++, tn--;
        while (!carrot && tn && (t[tn - 1] == ' ' || t[tn - 1] == '\t'))
            tn--;
        if ((type == CHECK_ID || type == CHECK_COUNT || type == CHECK_DURATION) && !digits(t, tn))
            abort();
        if (type == CHECK_DURATION && tn > 10 && t[0] != '0')
            abort();
        point = type == CHECK_UNIX_SECONDS ? memchr(t, '.', tn) : NULL;
        if (type == CHECK_UNIX_SECONDS && !digits(t, point ? (size_t)(point - t) : tn))
            abort();
        if (type == CHECK_UNIX_SECONDS && (point ? (size_t)(point - t) : tn) > 12)
            abort();
        if (point && point + 1 < t + tn && !digits(point + 1, tn - (size_t)(point - t) - 1))
            abort();
        if (type == CHECK_FLAG && !(tn == 1 && (t[0] == '0' || t[0] == '1')))
            abort();
        if (type == CHECK_DECIMAL && tn < sizeof copy) {
            char *end;
            memcpy(copy, t, tn);
            copy[tn] = 0;
            strtod(copy, &end);
            if (*end)
                abort();
        }
        if (type == CHECK_CURRENCY && tn != 3)
            abort();
        if (type == CHECK_DATE_OR_RANGE && tn != 10 && tn != 21)
            abort();
        if (type == CHECK_PROPERTY_DATE && tn != 10 && tn != 19)
            abort();
        if (type == CHECK_EMAIL && memchr(t, 'A', tn))
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
