/* The checks of one value against a column type of csvup.schema: what
 * csvup.validate runs in C over every field of a file or rows. */
#ifndef CSVUP_CHECK_H
#define CSVUP_CHECK_H

#include <stddef.h>

enum check_type {
    CHECK_NONE, CHECK_TEXT, CHECK_ID, CHECK_UNIX_SECONDS, CHECK_DECIMAL, CHECK_CURRENCY, CHECK_FLAG,
    CHECK_COUNT, CHECK_DATE_OR_RANGE, CHECK_DATETIME, CHECK_TRAFFIC_SOURCE, CHECK_PROPERTY, CHECK_KEY,
    CHECK_PROPERTY_DATE, CHECK_NAME, CHECK_DURATION, CHECK_EMAIL
};

#define CHECK_FUTURE_SLACK 300 /* seconds of clock skew a DateTime may be ahead */
#define CHECK_TEXT_MAX 255    /* characters in a Carrot quest property value */
#define CHECK_QUOTE_MAX 80    /* characters of a value quoted in a message */
#define CHECK_QUOTED_SIZE 400 /* room for a quoted value */
#define CHECK_REASON_SIZE 96  /* room for a reason check_value writes */

/* What the checks compare against: the sets come from csvup.schema. */
struct check_sets {
    unsigned char currencies[26 * 26 * 26 / 8 + 1]; /* ISO 4217 codes, one bit each */
    char traffic_sources[512]; /* " a b c " */
    long long now;             /* Unix seconds: later DateTimes are in the future */
};

/* The type named by a schema ("id", "unix_seconds", ...), or -1. */
int check_type_of(const char *name);
/* Fills sets from space-separated codes and sources; -1 if one does not fit. */
int check_sets_init(struct check_sets *sets, const char *currencies, const char *traffic_sources, long long now);
/* NULL when s[0, n) is a valid value of the type, else why not (a static
 * text, or one written into reason, CHECK_REASON_SIZE bytes). Metrica's
 * types are checked after the spaces and tabs around the value, which the
 * service trims; Carrot quest's are not. */
const char *check_value(const struct check_sets *sets, int type, const char *s, size_t n, char *reason);
/* s as a double-quoted, escaped string of at most CHECK_QUOTE_MAX characters
 * ("…" marks a cut), into out (CHECK_QUOTED_SIZE bytes); its length. */
size_t check_quote(const char *s, size_t n, char *out);

#endif
