#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "utf8.h"

static const char *const type_names[] = {
    "", "text", "id", "unix_seconds", "decimal", "currency", "flag", "count", "date_or_range", "datetime",
    "traffic_source", "property", "key", "property_date", "name", "duration", "email"
};

int check_type_of(const char *name)
{
    size_t i;
    for (i = 1; i < sizeof type_names / sizeof type_names[0]; i++)
        if (strcmp(name, type_names[i]) == 0)
            return (int)i;
    return -1;
}

static int upper3(const char *s, size_t n, unsigned *code)
{
    size_t i;
    *code = 0;
    if (n != 3)
        return 0;
    for (i = 0; i < 3; i++) {
        if (s[i] < 'A' || s[i] > 'Z')
            return 0;
        *code = *code * 26 + (unsigned)(s[i] - 'A');
    }
    return 1;
}

int check_sets_init(struct check_sets *sets, const char *currencies, const char *traffic_sources, long long now)
{
    const char *s = currencies;
    size_t n = strlen(traffic_sources);
    memset(sets, 0, sizeof *sets);
    while (*s) {
        size_t len = strcspn(s, " ");
        unsigned code;
        if (len && !upper3(s, len, &code))
            return -1;
        if (len)
            sets->currencies[code / 8] |= (unsigned char)(1u << (code % 8));
        s += len + (s[len] == ' ');
    }
    if (n + 3 > sizeof sets->traffic_sources)
        return -1;
    sets->traffic_sources[0] = ' ';
    memcpy(sets->traffic_sources + 1, traffic_sources, n);
    sets->traffic_sources[n + 1] = ' ';
    sets->now = now;
    return 0;
}

static int all_digits(const char *s, size_t n)
{
    const uint64_t zeros = UINT64_C(0x3030303030303030), high = UINT64_C(0xF0F0F0F0F0F0F0F0),
                   sixes = UINT64_C(0x0606060606060606);
    size_t i = 0;
    if (n == 0)
        return 0;
    for (; i + 8 <= n; i += 8) { /* each byte 0x30..0x39: high nibble 3, and still 3 after adding 6 */
        uint64_t w;
        memcpy(&w, s + i, 8);
        if ((w & high) != zeros || ((w + sixes) & high) != zeros)
            return 0;
    }
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

/* The number s[0, n) of digits only, or -1. */
static long number(const char *s, size_t n)
{
    long v = 0;
    size_t i;
    if (!all_digits(s, n) || n > 9)
        return -1;
    for (i = 0; i < n; i++)
        v = v * 10 + (s[i] - '0');
    return v;
}

/* Characters, not bytes: UTF-8 continuation bytes are not counted. */
static size_t chars(const char *s, size_t n)
{
    size_t count = 0, i;
    for (i = 0; i < n; i++)
        count += ((unsigned char)s[i] & 0xC0) != 0x80;
    return count;
}

static int valid_date(long y, long m, long d)
{
    static const int days[] = { 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
    if (y < 0 || m < 1 || m > 12 || d < 1)
        return 0;
    if (m == 2 && y % 4 == 0 && (y % 100 != 0 || y % 400 == 0))
        return d <= 29;
    return d <= days[m - 1];
}

/* YYYY-MM-DD */
static int iso_date(const char *s, size_t n)
{
    return n == 10 && s[4] == '-' && s[7] == '-'
        && valid_date(number(s, 4), number(s + 5, 2), number(s + 8, 2));
}

/* HH:MM, or HH:MM:SS when seconds */
static int clock_time(const char *s, size_t n, int seconds)
{
    long h, m, sec = 0;
    if (n != (seconds ? 8u : 5u) || s[2] != ':' || (seconds && s[5] != ':'))
        return 0;
    h = number(s, 2);
    m = number(s + 3, 2);
    if (seconds)
        sec = number(s + 6, 2);
    return h >= 0 && h < 24 && m >= 0 && m < 60 && sec >= 0 && sec < 60;
}

/* The CRM order dates: dd.MM.yyyy, dd.MM.yy or yyyy-MM-dd, each optionally
 * followed by " HH:mm" or " HH:mm:ss"; *year gets the year. */
static int crm_datetime(const char *s, size_t n, long *year)
{
    size_t date_len = 0, rest;
    if (n >= 10 && iso_date(s, 10)) {
        date_len = 10;
        *year = number(s, 4);
    } else if (n >= 8 && s[2] == '.' && s[5] == '.') {
        size_t digits = n >= 10 && s[8] != ' ' ? 4 : 2;
        long y = number(s + 6, digits);
        *year = digits == 2 ? 2000 + y : y;
        if (y >= 0 && valid_date(*year, number(s + 3, 2), number(s, 2)))
            date_len = 6 + digits;
    }
    if (!date_len)
        return 0;
    rest = n - date_len;
    return rest == 0 || (s[date_len] == ' ' && clock_time(s + date_len + 1, rest - 1, rest - 1 == 8));
}

/* Whether s looks like a number a spreadsheet wrote as a float: 1.3e+17, 123.0 */
static int float_like(const char *s, size_t n)
{
    size_t i, digits = 0;
    int point = 0, exponent = 0;
    for (i = 0; i < n; i++) {
        if (s[i] >= '0' && s[i] <= '9')
            digits++;
        else if (s[i] == '.' && !point && !exponent)
            point = 1;
        else if ((s[i] == 'e' || s[i] == 'E') && digits && !exponent) {
            exponent = 1;
            if (i + 1 < n && (s[i + 1] == '+' || s[i + 1] == '-'))
                i++;
        } else
            return 0;
    }
    return digits && (point || exponent);
}

static int decimal(const char *s, size_t n, char point)
{
    size_t i = s[0] == '-', before = 0, after = 0;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
        before++;
    if (i < n && s[i] == point)
        for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            after++;
    return i == n && (before || after);
}

static int is_space(char c)
{
    return c == ' ' || (c >= '\t' && c <= '\r');
}

/* Why a name or key value would not match what the user meant, or NULL. */
static const char *untidy(const char *s, size_t n)
{
    static const struct {
        const char *bytes, *reason;
    } invisible[] = {
        { "\xC2\xA0", "holds an invisible character (U+00A0 no-break space)" },
        { "\xC2\xAD", "holds an invisible character (U+00AD soft hyphen)" },
        { "\xE2\x80\x8B", "holds an invisible character (U+200B zero-width space)" },
        { "\xE2\x80\x8C", "holds an invisible character (U+200C zero-width non-joiner)" },
        { "\xE2\x80\x8D", "holds an invisible character (U+200D zero-width joiner)" },
        { "\xE2\x81\xA0", "holds an invisible character (U+2060 word joiner)" },
        { "\xEF\xBB\xBF", "holds an invisible character (U+FEFF byte order mark)" },
    };
    size_t i, k;
    if (n && (is_space(s[0]) || is_space(s[n - 1])))
        return "has a leading or trailing space";
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7F)
            return "holds a control character";
        if (c >= 0xC2)
            for (k = 0; k < sizeof invisible / sizeof invisible[0]; k++) {
                size_t len;
                if ((unsigned char)invisible[k].bytes[0] != c)
                    continue;
                len = strlen(invisible[k].bytes);
                if (len <= n - i && memcmp(s + i, invisible[k].bytes, len) == 0)
                    return invisible[k].reason;
            }
    }
    return NULL;
}

static const char *check_text(const char *s, size_t n)
{
    return n > CHECK_TEXT_MAX && chars(s, n) > CHECK_TEXT_MAX ? "is longer than 255 characters" : NULL;
}

/* Whether the type is Metrica's, whose values the service reads trimmed of
 * spaces and tabs (its API tests pass padded values). */
static int trimmed(int type)
{
    return type != CHECK_PROPERTY && type != CHECK_KEY && type != CHECK_PROPERTY_DATE && type != CHECK_NAME;
}

/* The Unix seconds s[0, n) of digits, optionally with a fraction (the
 * service's tests pass 1481718166.12345): why not, or NULL. */
static const char *unix_seconds(const struct check_sets *sets, const char *s, size_t n, char *reason)
{
    const char *point = memchr(s, '.', n);
    size_t whole = point ? (size_t)(point - s) : n, i;
    long long v = 0;
    if (!all_digits(s, whole) || (point && !all_digits(point + 1, n - whole - 1)))
        return "is not Unix time in seconds";
    if (whole >= 13) {
        snprintf(reason, CHECK_REASON_SIZE,
                 "looks like milliseconds (%u digits): the API takes seconds, divide by 1000", (unsigned)whole);
        return reason;
    }
    for (i = 0; i < whole; i++)
        v = v * 10 + (s[i] - '0');
    return v > sets->now + CHECK_FUTURE_SLACK ? "is in the future" : NULL;
}

const char *check_value(const struct check_sets *sets, int type, const char *s, size_t n, char *reason)
{
    unsigned code;
    char key[40];
    long year = 0;
    if (n && ((unsigned char)s[0] <= ' ' || (unsigned char)s[n - 1] <= ' ') && trimmed(type)) {
        while (n && (s[0] == ' ' || s[0] == '\t'))
            s++, n--;
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n == 0 && type != CHECK_TEXT)
            return "holds only spaces";
    }
    switch (type) {
    case CHECK_TEXT: /* Metrica's text columns: their documentation bounds no length */
        return NULL;
    case CHECK_PROPERTY:
        return check_text(s, n);
    case CHECK_NAME:
        return untidy(s, n);
    case CHECK_KEY: {
        const char *reason = untidy(s, n);
        return reason ? reason : check_text(s, n);
    }
    case CHECK_ID:
        if (all_digits(s, n))
            return NULL;
        return float_like(s, n)
            ? "looks like a float: ids above 2^53 lose digits as floats (a spreadsheet's number format?); "
              "write the id as digits only"
            : "is not an id (digits only)";
    case CHECK_UNIX_SECONDS:
        return unix_seconds(sets, s, n, reason);
    case CHECK_DECIMAL:
        if (n && decimal(s, n, '.'))
            return NULL;
        return n && decimal(s, n, ',') ? "uses ',' as the decimal separator: the API takes '.'" : "is not a number";
    case CHECK_CURRENCY:
        if (upper3(s, n, &code) && sets->currencies[code / 8] & (1u << (code % 8)))
            return NULL;
        if (n == 3) {
            char up[3];
            size_t i;
            for (i = 0; i < 3; i++)
                up[i] = (char)(s[i] >= 'a' && s[i] <= 'z' ? s[i] - 32 : s[i]);
            if (upper3(up, 3, &code) && sets->currencies[code / 8] & (1u << (code % 8)))
                return "is not in upper case (ISO 4217)";
        }
        return "is not an ISO 4217 currency code";
    case CHECK_FLAG:
        return n == 1 && (s[0] == '0' || s[0] == '1') ? NULL : "is not 0 or 1";
    case CHECK_COUNT:
        return all_digits(s, n) ? NULL : "is not a whole number";
    case CHECK_DURATION: /* the service refuses one beyond an unsigned 32-bit number */
        if (n && s[0] == '-' && all_digits(s + 1, n - 1))
            return "is negative: a duration is whole seconds from 0 to 4294967295";
        if (!all_digits(s, n))
            return "is not a whole number of seconds";
        while (n > 1 && s[0] == '0')
            s++, n--;
        return n < 10 || (n == 10 && memcmp(s, "4294967295", 10) <= 0) ? NULL
            : "is above 4294967295, the longest duration the service takes";
    case CHECK_EMAIL: { /* the service refuses upper-case letters in emails */
        size_t i;
        for (i = 0; i < n; i++)
            if (s[i] >= 'A' && s[i] <= 'Z')
                return "holds upper-case letters, which the service refuses: lower-case the addresses";
        return NULL;
    }
    case CHECK_DATE_OR_RANGE: {
        const char *slash = memchr(s, '/', n);
        if (!slash)
            return iso_date(s, n) ? NULL : "is not a date YYYY-MM-DD";
        if (slash != s + 10 || !iso_date(s, 10) || !iso_date(s + 11, n - 11))
            return "is not a range YYYY-MM-DD/YYYY-MM-DD";
        return memcmp(s + 11, s, 10) < 0 ? "is a range that ends before it starts" : NULL;
    }
    case CHECK_DATETIME:
        if (!crm_datetime(s, n, &year))
            return "is not a date and time: dd.MM.yyyy, dd.MM.yy or yyyy-MM-dd, optionally with HH:mm or HH:mm:ss";
        return year < 1970 ? "is before 1970, which the service refuses" : NULL;
    case CHECK_TRAFFIC_SOURCE:
        if (n > 0 && n + 3 <= sizeof key && !memchr(s, ' ', n)) {
            key[0] = ' ';
            memcpy(key + 1, s, n);
            key[n + 1] = ' ';
            key[n + 2] = 0;
            if (strstr(sets->traffic_sources, key))
                return NULL;
        }
        return "is not a TrafficSource (internal, direct, referral, organic, ad, saved, undefined, email, social, "
               "messenger, qrcode, recommend)";
    case CHECK_PROPERTY_DATE:
        if (n >= 10 && iso_date(s, 10) && (n == 10 || (s[10] == 'T' && clock_time(s + 11, n - 11, 1))))
            return NULL;
        return "is not a date YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS";
    default:
        return NULL;
    }
}

size_t check_quote(const char *s, size_t n, char *out)
{
    size_t i = 0, o = 0, count = 0;
    out[o++] = '"';
    while (i < n) {
        unsigned char c = (unsigned char)s[i];
        size_t len = c < 0x80 ? 1 : utf8_sequence((const unsigned char *)s + i, n - i);
        if (count == CHECK_QUOTE_MAX) {
            memcpy(out + o, "\xE2\x80\xA6", 3); /* … */
            o += 3;
            break;
        }
        count++;
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c == '\n' || c == '\r' || c == '\t') {
            out[o++] = '\\';
            out[o++] = c == '\n' ? 'n' : c == '\r' ? 'r' : 't';
        } else if (c < 0x20 || c == 0x7F || len == 0) {
            o += (size_t)snprintf(out + o, 5, "\\%03u", c);
            len = 1;
        } else {
            memcpy(out + o, s + i, len);
            o += len;
        }
        i += len;
    }
    out[o++] = '"';
    out[o] = 0;
    return o;
}
