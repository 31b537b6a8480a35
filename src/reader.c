#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "reader.h"
#include "utf8.h"

#define CHUNK (256 * 1024)

enum { PARSED = 1, END = 0, FAILED = -1, MORE = -2 };



static int fail(struct reader *r, const char *code, long long line, long long column, const char *fmt, ...)
{
    va_list ap;
    r->error.code = code;
    r->error.line = line;
    r->error.column = column;
    va_start(ap, fmt);
    vsnprintf(r->error.message, sizeof r->error.message, fmt, ap);
    va_end(ap);
    return FAILED;
}

static void size_text(size_t n, char *out, size_t size)
{
    if (n % (1024 * 1024) == 0)
        snprintf(out, size, "%lu MB", (unsigned long)(n / (1024 * 1024)));
    else if (n % 1024 == 0)
        snprintf(out, size, "%lu KB", (unsigned long)(n / 1024));
    else
        snprintf(out, size, "%lu bytes", (unsigned long)n);
}

static int too_long(struct reader *r)
{
    char size[32];
    size_text(r->limit, size, sizeof size);
    if (!r->started)
        return fail(r, "malformed_csv", r->line, 0, "the header line is longer than %s", size);
    return fail(r, "malformed_csv", r->line, 0, "the record is longer than %s", size);
}

/* Reads more of the file after the unread bytes; bounded by the record limit. */
static int fill(struct reader *r)
{
    long n;
    if (r->start > 0) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->offset += (long long)r->start;
        r->end -= r->start;
        r->start = 0;
    }
    if (r->end == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : CHUNK;
        unsigned char *buf = realloc(r->buf, cap);
        if (!buf)
            return fail(r, "malformed_csv", r->line, 0, "out of memory reading a record");
        r->buf = buf;
        r->cap = cap;
    }
    n = r->read(r->ctx, r->buf + r->end, r->cap - r->end, r->error.message, sizeof r->error.message);
    if (n < 0) {
        r->error.code = "file_unreadable";
        r->error.line = r->line;
        r->error.column = 0;
        return FAILED;
    }
    r->eof = n == 0;
    r->end += (size_t)n;
    return 0;
}

long reader_file_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    size_t got = fread(buf, 1, n, ctx);
    if (got == 0 && ferror((FILE *)ctx)) {
        snprintf(message, size, "read error");
        return -1;
    }
    return (long)got;
}

/* Room for one more field; the index of the new field, or -1. */
static long add_field(struct reader *r)
{
    if (r->nfields == r->fields_cap) {
        size_t cap = r->fields_cap ? r->fields_cap * 2 : 16;
        struct field *fields = realloc(r->fields, cap * sizeof *fields);
        size_t *offsets;
        unsigned char *in_scratch;
        if (!fields)
            return -1;
        r->fields = fields;
        if (!(offsets = realloc(r->offsets, cap * sizeof *offsets)))
            return -1;
        r->offsets = offsets;
        if (!(in_scratch = realloc(r->in_scratch, cap)))
            return -1;
        r->in_scratch = in_scratch;
        r->fields_cap = cap;
    }
    return (long)r->nfields++;
}

/* The line breaks in buf[from, to); *line_start follows the last one. */
static long long count_lines(const unsigned char *buf, size_t from, size_t to, size_t *line_start)
{
    long long n = 0;
    const unsigned char *nl;
    while (from < to && (nl = memchr(buf + from, '\n', to - from))) {
        n++;
        from = (size_t)(nl - buf) + 1;
        *line_start = from;
    }
    return n;
}

/* A record read whole, buf[r->start, end) with `lines` line breaks: the
 * checks that need all of it, then the fields' addresses. high: whether
 * any byte may be beyond ASCII (when none is, the UTF-8 check is skipped). */
static int finish(struct reader *r, size_t end, long long lines, unsigned high)
{
    size_t from = r->start, i;
    if (end - from > r->limit)
        return too_long(r);
    if (r->check_utf8 && (high & 0x80)) {
        size_t valid = utf8_valid_prefix(r->buf + from, end - from), line_start = from;
        if (valid < end - from) {
            long long line = r->line + count_lines(r->buf, from, from + valid, &line_start);
            return fail(r, "invalid_utf8", line, (long long)(from + valid - line_start) + 1,
                        "byte %lld of line %lld is not valid UTF-8 (the APIs take UTF-8 only)",
                        (long long)(from + valid - line_start) + 1, line);
        }
    }
    for (i = 0; i < r->nfields; i++)
        r->fields[i].data = (const char *)(r->in_scratch[i] ? (unsigned char *)r->scratch.data : r->buf) + r->offsets[i];
    r->blank = r->nfields == 1 && r->fields[0].len == 0 && r->buf[from] != '"';
    r->record_line = r->line;
    r->line += lines;
    r->start = end;
    return PARSED;
}

/* The closing quote of the field opened at buf[open]; its content goes to
 * field i (copied to scratch when it has "" escapes). *at: after the quote. */
static int quoted(struct reader *r, long i, size_t open, size_t *at)
{
    const unsigned char *b = r->buf;
    size_t q = open + 1, from = q, first = r->scratch.len;
    int escaped = 0;
    for (;;) {
        const unsigned char *quote = memchr(b + q, '"', r->end - q);
        size_t pos;
        if (!quote)
            return r->eof ? 0 : MORE;
        pos = (size_t)(quote - b);
        if (pos + 1 == r->end && !r->eof)
            return MORE;
        if (pos + 1 < r->end && b[pos + 1] == '"') {
            if (buffer_append(&r->scratch, b + from, pos + 1 - from))
                return FAILED;
            from = q = pos + 2;
            escaped = 1;
            continue;
        }
        if (escaped) {
            if (buffer_append(&r->scratch, b + from, pos - from))
                return FAILED;
            r->offsets[i] = first;
            r->fields[i].len = r->scratch.len - first;
        } else {
            r->offsets[i] = open + 1;
            r->fields[i].len = pos - open - 1;
        }
        r->in_scratch[i] = (unsigned char)escaped;
        *at = pos + 1;
        return PARSED;
    }
}

/* Parses the record at buf[start]: PARSED, END, FAILED, or MORE when the
 * bytes read so far end before the record does. */
static int parse(struct reader *r)
{
    const unsigned char *b = r->buf;
    size_t p = r->start, end = r->end, line_start = r->start;
    long long lines = 0;
    unsigned high = 0; /* the bytes of unquoted fields, or'ed: is any beyond ASCII? */
    r->nfields = 0;
    r->scratch.len = 0;
    if (p == end)
        return r->eof ? END : MORE;
    for (;;) {
        long i = add_field(r);
        unsigned char c;
        if (i < 0)
            return fail(r, "malformed_csv", r->line, 0, "out of memory reading a record");
        if (p < end && b[p] == '"') {
            size_t open = p;
            int rc = quoted(r, i, open, &p);
            high = 0x80; /* quoted text is checked whole */
            if (rc == MORE)
                return MORE;
            if (rc == FAILED)
                return fail(r, "malformed_csv", r->line + lines, 0, "out of memory reading a record");
            if (rc == 0)
                return fail(r, "malformed_csv", r->line + lines, (long long)(open - line_start) + 1,
                            "a quoted field is not closed");
            if (memchr(b + open + 1, 0, p - 1 - (open + 1)))
                return fail(r, "malformed_csv", r->line + lines, (long long)(open - line_start) + 1,
                            "a NUL byte in a quoted field: the file is binary or UTF-16, not UTF-8 text");
            lines += count_lines(b, open + 1, p - 1, &line_start);
            if (p == end) {
                if (!r->eof)
                    return MORE;
                return finish(r, p, lines, high);
            }
            c = b[p];
            if (c != (unsigned char)r->delimiter && c != '\n' && c != '\r')
                return fail(r, "malformed_csv", r->line + lines, (long long)(p - line_start) + 1,
                            "unexpected text after a closing quote");
        } else {
            size_t s = p;
            while (p < end && !r->special[b[p]])
                high |= b[p++];
            r->offsets[i] = s;
            r->fields[i].len = p - s;
            r->in_scratch[i] = 0;
            if (p == end) {
                if (!r->eof)
                    return MORE;
                return finish(r, p, lines, high);
            }
            c = b[p];
            if (c == '"')
                return fail(r, "malformed_csv", r->line + lines, (long long)(p - line_start) + 1,
                            "a quote inside an unquoted field (quote the whole field and double its quotes)");
            if (c == 0)
                return fail(r, "malformed_csv", r->line + lines, (long long)(p - line_start) + 1,
                            "a NUL byte: the file is binary or UTF-16, not UTF-8 text");
        }
        if (c == (unsigned char)r->delimiter) {
            p++;
            continue;
        }
        if (c == '\n')
            return finish(r, p + 1, lines + 1, high);
        /* c == '\r' */
        if (p + 1 == end && !r->eof)
            return MORE;
        if (p + 1 < end && b[p + 1] == '\n')
            return finish(r, p + 2, lines + 1, high);
        return fail(r, "malformed_csv", r->line + lines, (long long)(p - line_start) + 1,
                    "a lone CR outside quotes: if the lines end with a lone CR (old Mac files), "
                    "save the file with LF or CRLF line endings");
    }
}

/* The candidate seen most often outside quotes in the first line. */
static char sniff(const unsigned char *s, size_t n)
{
    static const char candidates[] = ",;\t|";
    size_t counts[4] = { 0, 0, 0, 0 }, i, k, best = 0;
    int inside = 0;
    for (i = 0; i < n && (inside || s[i] != '\n'); i++) {
        if (s[i] == '"')
            inside = !inside;
        else if (!inside)
            for (k = 0; k < 4; k++)
                counts[k] += s[i] == (unsigned char)candidates[k];
    }
    for (k = 1; k < 4; k++)
        if (counts[k] > counts[best])
            best = k;
    return candidates[best];
}

int reader_open(struct reader *r, reader_source read, void *ctx, char delimiter, int check_utf8, size_t record_limit)
{
    memset(r, 0, sizeof *r);
    r->read = read;
    r->ctx = ctx;
    r->check_utf8 = check_utf8;
    r->limit = record_limit < READER_HEADER_LIMIT ? record_limit : READER_HEADER_LIMIT;
    r->record_limit = record_limit;
    r->line = 1;
    r->scratch.limit = (size_t)-1;
    if (fill(r) < 0)
        return -1;
    if (r->end >= 3 && memcmp(r->buf, "\xEF\xBB\xBF", 3) == 0)
        r->start = 3;
    if (!delimiter)
        delimiter = sniff(r->buf + r->start, r->end - r->start);
    r->delimiter = delimiter;
    r->special[(unsigned char)delimiter] = r->special['"'] = r->special['\n'] = r->special['\r'] = r->special[0] = 1;
    return 0;
}

int reader_next(struct reader *r)
{
    int rc;
    if (r->error.code)
        return FAILED;
    while ((rc = parse(r)) == MORE) {
        if (r->end - r->start > r->limit)
            return too_long(r);
        if (fill(r) < 0)
            return FAILED;
    }
    if (rc == PARSED && !r->started) {
        r->started = 1;
        r->limit = r->record_limit;
    }
    return rc;
}

void reader_skip(struct reader *r, size_t bytes, long long lines)
{
    r->start += bytes;
    r->line += lines;
}

void reader_jump(struct reader *r, size_t bytes, long long lines)
{
    r->offset = reader_offset(r) + (long long)bytes;
    r->start = r->end = 0;
    r->eof = 0;
    r->line += lines;
}

long long reader_offset(const struct reader *r)
{
    return r->offset + (long long)r->start;
}

void reader_free(struct reader *r)
{
    free(r->buf);
    free(r->fields);
    free(r->offsets);
    free(r->in_scratch);
    buffer_free(&r->scratch);
    r->cap = r->start = r->end = 0; /* nothing left to read: a freed reader reads as empty */
    r->buf = NULL;
    r->fields = NULL;
    r->offsets = NULL;
    r->in_scratch = NULL;
}
