/* A schema compiled for one header: the check of each column, and the
 * problems found, as csvup.validate lists them. */
#ifndef CSVUP_PLAN_H
#define CSVUP_PLAN_H

#include "check.h"
#include "compat.h"
#include "reader.h"

struct plan_column {
    int type;     /* enum check_type */
    int required; /* an empty value is a problem */
    int one_of;   /* one of these columns must be filled in each row */
};

struct plan {
    struct check_sets sets;
    struct plan_column *columns;
    size_t ncolumns;
    int one_of;           /* whether each row must fill a one_of column */
    int names, problems;  /* stack indexes: the column names, the problem list */
    lua_Integer total, max;
    const char *one_of_name;
    char latest[24];      /* the last Unix second that is not in the future, in digits */
    size_t latest_len;
};

/* Reads the plan table at idx (see validate.lua) for `names` (a stack index);
 * leaves what it allocates on the stack. Raises on a malformed plan. */
void plan_compile(lua_State *L, int idx, int names, struct plan *p);
/* Counts a problem, and lists it while fewer than max are (with L NULL, only counts it): at line (and row
 * when not 0), column (0-based; -1 for the one_of group), the value shown
 * (if any) before the reason. */
void plan_problem(lua_State *L, struct plan *p, lua_Integer line, lua_Integer row, long column,
                  const char *shown, const char *reason);
/* Checks the fields of one record; line for the problems. */
void plan_check_fields(lua_State *L, struct plan *p, const struct field *fields, lua_Integer line);
/* The records at the start of buf[0, len) that pass every check at once:
 * UTF-8, one line each, ended by LF or CRLF (quoted text fields included),
 * none longer than limit bytes. Their bytes; *records their count. It stops
 * before the first record it cannot pass: the reader reads that one and
 * reports what is wrong with it (see pass.c). */
size_t plan_pass(const struct plan *p, char delimiter, size_t limit, const unsigned char *buf, size_t len,
                 long long *records);
/* The ways plan_pass reads a block: end by end, or first whole (on x86-64
 * with AVX-512BW and BMI2); plan_pass takes the fastest this processor
 * has. Both pass the same records. */
enum { PASS_PLAIN, PASS_BLOCKS };
int plan_pass_fastest(void);
size_t plan_pass_by(int way, const struct plan *p, char delimiter, size_t limit, const unsigned char *buf,
                    size_t len, long long *records);
/* core.check_rows(plan, rows, columns, before?) -> problem count (rows numbered from before + 1); problems appended to plan.problems */
int plan_check_rows(lua_State *L);
/* core.check_value(type, s) -> nil | why s is not a value of the type */
int plan_check_value(lua_State *L);

#endif
