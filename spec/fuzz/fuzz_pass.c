/* The quick pass of the checks (plan_pass) against the reader and the value
 * checks it stands for: every record it passes must be one the reader reads
 * without an error, with the header's number of fields, on one line each,
 * and with no problem found by plan_check_fields; and every way of reading
 * blocks this processor has must pass the same records as the plain one.
 * The first bytes choose the delimiter and the columns' types; the rest is
 * the CSV after a header. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "reader.h"

struct memory {
    const uint8_t *data;
    size_t size, pos;
};

static long memory_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    struct memory *m = ctx;
    (void)message;
    (void)size;
    if (n > m->size - m->pos)
        n = m->size - m->pos;
    memcpy(buf, m->data + m->pos, n);
    m->pos += n;
    return (long)n;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char delimiters[] = ",;\t|";
    struct plan_column columns[4];
    struct plan p;
    struct reader r;
    struct memory m;
    size_t passed, i, limit;
    long long records, read = 0, now;
    char delimiter;
    int rc, way;
    if (size < 6)
        return 0;
    memset(&p, 0, sizeof p);
    /* one of the usual delimiters, or with bit 6 any byte the reader takes (0 would make it guess) */
    delimiter = data[0] & 0x40 ? (char)data[5] : delimiters[data[0] & 3];
    if (delimiter == 0 || delimiter == '"' || delimiter == '\r' || delimiter == '\n')
        return 0;
    p.ncolumns = 1 + (data[0] >> 2 & 3);
    p.one_of = data[0] >> 4 & 1;
    /* a small record limit: 40 bytes, or with bit 7 of data[1] 130, near where blocks stop being passed whole */
    limit = data[0] & 0x20 ? (data[1] & 0x80 ? 130 : 40) : READER_RECORD_LIMIT;
    now = data[2] & 0x80 ? 999999000 : 1700000000; /* the latest second has 9 digits, or 10 */
    for (i = 0; i < p.ncolumns; i++) {
        columns[i].type = data[1 + i] % (CHECK_EMAIL + 1);
        columns[i].required = data[1 + i] >> 5 & 1;
        columns[i].one_of = data[1 + i] >> 6 & 1;
    }
    p.columns = columns;
    p.one_of_name = "";
    if (check_sets_init(&p.sets, "EUR RUB USD", "ad direct organic", now) != 0)
        abort();
    p.latest_len = (size_t)snprintf(p.latest, sizeof p.latest, "%lld", now + CHECK_FUTURE_SLACK);
    data += 6;
    size -= 6;

    passed = plan_pass_by(PASS_PLAIN, &p, delimiter, limit, data, size, &records);
    if (passed > size || (passed == 0) != (records == 0))
        abort();
    for (way = PASS_PLAIN + 1; way <= plan_pass_fastest(); way++) {
        long long by_way;
        if (plan_pass_by(way, &p, delimiter, limit, data, size, &by_way) != passed || by_way != records)
            abort();
    }
    m.data = data;
    m.size = passed;
    m.pos = 0;
    if (reader_open(&r, memory_source, &m, delimiter, 1, limit) != 0)
        abort();
    r.started = 1; /* the records after a header, */
    r.start = 0;   /* where a byte order mark is data */
    r.limit = limit;
    while ((rc = reader_next(&r)) > 0) {
        lua_Integer total = p.total;
        read++;
        if (r.nfields != p.ncolumns || r.record_line != read || r.line != read + 1)
            abort();
        plan_check_fields(NULL, &p, r.fields, r.record_line);
        if (p.total != total)
            abort();
    }
    if (rc < 0 || read != records)
        abort();
    reader_free(&r);
    return 0;
}
