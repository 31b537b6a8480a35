/* The schema check of a body as it passes (a compiled plan, see plan.h):
 * the bytes go on only once the records they hold passed, so a record that
 * fails stops the body before its end. Records the quick pass (plan_pass)
 * passes are checked in the buffer they are read into; the others are read
 * and checked one by one by the CSV reader, and handed on from its buffer. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "plan.h"
#include "reader.h"
#include "stage.h"

/* After a read into the caller's buffer that the quick pass stopped early
 * in, the reader reads this far on its own before the next such read: a
 * body of records the pass leaves to the reader is not copied twice over. */
#define DIRECT_RETRY (16LL * 1024 * 1024)

struct check_stage {
    struct stage s;
    struct reader r;       /* reads the stage before, through left first */
    struct plan plan;      /* its columns in C memory, after this struct */
    size_t ncolumns;       /* fields of the header */
    long long given;       /* bytes handed on since the start */
    unsigned char bom[3];  /* the byte order mark the reader skipped (it may drop it from its buffer) */
    size_t bom_len;
    long long direct_from; /* where a read into the caller's buffer is tried again */
    unsigned char *left;   /* bytes read into the caller's buffer that the pass left: left[left_pos, left_len) */
    size_t left_len, left_pos, left_cap;
};

/* The reader's source: what the quick pass left, then the stage before. */
static long check_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size)
{
    struct check_stage *cs = ctx;
    if (cs->left_pos < cs->left_len) {
        if (n > cs->left_len - cs->left_pos)
            n = cs->left_len - cs->left_pos;
        memcpy(buf, cs->left + cs->left_pos, n);
        cs->left_pos += n;
        if (cs->left_pos == cs->left_len)
            cs->left_len = cs->left_pos = 0;
        return (long)n;
    }
    return stage_reader_source(cs->s.up, buf, n, message, size);
}

static int failed_at(struct check_stage *cs, long long line, const char *why)
{
    return stage_fail(&cs->s, "validation_failed", "line %lld: %s", line, why);
}

/* From the first byte: the header read again. 0, or -1 with the failure set. */
static int start(struct check_stage *cs)
{
    int rc;
    reader_free(&cs->r);
    cs->given = cs->direct_from = 0;
    cs->left_len = cs->left_pos = 0;
    if (reader_open(&cs->r, check_source, cs, cs->r.delimiter, 1, READER_RECORD_LIMIT) < 0)
        return stage_fail(&cs->s, cs->r.error.code, "line %lld: %s", cs->r.error.line, cs->r.error.message);
    cs->bom_len = cs->r.start;
    memcpy(cs->bom, cs->r.buf, cs->bom_len);
    if ((rc = reader_next(&cs->r)) < 0)
        return stage_fail(&cs->s, cs->r.error.code, "line %lld: %s", cs->r.error.line, cs->r.error.message);
    return rc == 0 ? 0 : (int)cs->r.nfields;
}

/* Checks one more record by the reader (which may read more first), past
 * the bytes handed on. 0, or -1 with the failure set. */
static int check_record(struct check_stage *cs)
{
    struct reader *r = &cs->r;
    struct plan *p = &cs->plan;
    lua_Integer total = p->total;
    int rc;
    if ((rc = reader_next(r)) < 0)
        return failed_at(cs, r->error.line, r->error.message);
    if (rc == 0 || (r->blank && cs->ncolumns > 1)) /* the end; a blank line is skipped */
        return 0;
    if (r->nfields != cs->ncolumns)
        return failed_at(cs, r->record_line, "the record has another number of fields than the header");
    plan_check_fields(NULL, p, r->fields, (lua_Integer)r->record_line);
    return p->total > total ? failed_at(cs, r->record_line, "a value does not pass its check") : 0;
}

/* Reads the stage before straight into buf, after the bytes the reader
 * holds unread and those the pass left last time (the start of a record cut
 * by the end of a buffer, most often; fewer than n): the records the quick
 * pass passes there are handed on in place, the rest is left for the next
 * call or the reader. Their bytes (0: the reader reads on, or the end), or -1. */
static long check_into(struct check_stage *cs, char *buf, size_t n)
{
    struct reader *r = &cs->r;
    size_t unread = r->end - r->start, total, passed;
    long long lines;
    long got;
    if (unread)
        memcpy(buf, r->buf + r->start, unread);
    if (cs->left_len)
        memcpy(buf + unread, cs->left, cs->left_len);
    total = unread + cs->left_len;
    cs->left_len = 0;
    if ((got = cs->s.up->ops->read(cs->s.up, buf + total, n - total)) < 0)
        return -1;
    total += (size_t)got;
    passed = plan_pass(&cs->plan, r->delimiter, r->limit, (const unsigned char *)buf, total, &lines);
    if (passed < total / 2 && memchr(buf + passed, '\n', total - passed))
        cs->direct_from = cs->given + (long long)passed + DIRECT_RETRY;
    if (passed < total) {
        if (total - passed > cs->left_cap) {
            unsigned char *left = realloc(cs->left, total - passed);
            if (!left)
                return stage_fail(&cs->s, "file_unreadable", "out of memory");
            cs->left = left;
            cs->left_cap = total - passed;
        }
        memcpy(cs->left, buf + passed, total - passed);
        cs->left_len = total - passed;
        cs->left_pos = 0;
    }
    reader_jump(r, passed, lines); /* the reader goes on after these bytes, with what was left */
    cs->given += (long long)passed;
    if (got == 0)
        cs->direct_from = LLONG_MAX; /* the end: the reader takes what is left */
    return (long)passed;
}

static long check_read(struct stage *s, char *buf, size_t n)
{
    struct check_stage *cs = (struct check_stage *)s;
    struct reader *r = &cs->r;
    size_t given = 0;
    while (given < n) {
        long long checked = reader_offset(r), lines;
        size_t k;
        if (checked == cs->given) { /* every byte checked was handed on: check more */
            size_t passed = plan_pass(&cs->plan, r->delimiter, r->limit, r->buf + r->start, r->end - r->start,
                                      &lines);
            if (passed > 0) {
                reader_skip(r, passed, lines);
            } else if (!r->eof && cs->left_pos == 0 && cs->given >= cs->direct_from
                       && r->end - r->start + cs->left_len < n - given) {
                long into = check_into(cs, buf + given, n - given);
                if (into < 0)
                    return -1;
                if (into > 0) { /* libcurl takes fewer bytes than it asked for */
                    given += (size_t)into;
                    break;
                }
                if (cs->left_len == 0)
                    break; /* the end */
                continue;
            } else if (check_record(cs) < 0) {
                return -1;
            }
            if ((checked = reader_offset(r)) == cs->given)
                break; /* the end */
        }
        k = n - given < (size_t)(checked - cs->given) ? n - given : (size_t)(checked - cs->given);
        if (cs->given < (long long)cs->bom_len) {
            k = k < cs->bom_len - (size_t)cs->given ? k : cs->bom_len - (size_t)cs->given;
            memcpy(buf + given, cs->bom + cs->given, k);
        } else {
            memcpy(buf + given, r->buf + (cs->given - r->offset), k);
        }
        cs->given += (long long)k;
        given += k;
    }
    return (long)given;
}

static int check_rewind(struct stage *s)
{
    struct check_stage *cs = (struct check_stage *)s;
    int nfields;
    if (s->up->ops->rewind(s->up) < 0 || (nfields = start(cs)) < 0)
        return -1;
    return (size_t)nfields == cs->ncolumns ? 0
        : stage_fail(s, "file_changed", "the file's header changed while it was uploaded");
}

static void check_free(struct stage *s)
{
    struct check_stage *cs = (struct check_stage *)s;
    reader_free(&cs->r);
    free(cs->left);
    free(cs);
}

static const struct stage_ops CHECK_OPS = { check_read, check_rewind, stage_finish_up, check_free };

int stage_add_check(lua_State *L, struct chain *c, int idx)
{
    struct check_stage *cs;
    struct plan p;
    const char *delimiter;
    int top = lua_gettop(L), nfields;
    size_t i, columns;
    lua_getfield(L, idx, "columns");
    luaL_argcheck(L, lua_istable(L, -1), idx, "a check plan has columns");
    columns = lua_rawlen(L, -1);
    lua_getfield(L, idx, "delimiter");
    delimiter = lua_tostring(L, -1);
    luaL_argcheck(L, delimiter && strlen(delimiter) == 1, idx, "a check plan has a delimiter of one byte");
    cs = calloc(1, sizeof *cs + (columns ? columns : 1) * sizeof *p.columns);
    if (chain_add(c, cs ? &cs->s : NULL) < 0)
        return -1;
    cs->s.ops = &CHECK_OPS;
    cs->r.delimiter = delimiter[0];
    if ((nfields = start(cs)) < 0)
        return -1;
    cs->ncolumns = (size_t)nfields;
    lua_createtable(L, nfields, 0); /* the header's names, for the plan */
    for (i = 0; i < cs->ncolumns; i++) {
        lua_pushlstring(L, cs->r.fields[i].data, cs->r.fields[i].len);
        lua_rawseti(L, -2, (int)i + 1);
    }
    plan_compile(L, idx, lua_gettop(L), &p);
    if (p.ncolumns != cs->ncolumns || p.ncolumns != columns)
        return luaL_error(L, "csvup: the check plan and the header differ");
    cs->plan = p;
    cs->plan.columns = (struct plan_column *)(cs + 1);
    memcpy(cs->plan.columns, p.columns, p.ncolumns * sizeof *p.columns);
    cs->plan.one_of_name = ""; /* problems are only counted: no Lua value is used */
    lua_settop(L, top);
    return 0;
}
