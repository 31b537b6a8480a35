/* core.csv_reader: the records of a CSV file for csv.rows and the checks of
 * csvup.validate, on the C tokenizer. */
#ifndef CSVUP_RECORDS_H
#define CSVUP_RECORDS_H

#include "compat.h"

struct records;

int records_open(lua_State *L);
/* The reader at idx, after reader:check_as_sent(plan); raises if it is not one. */
struct records *records_sent_check(lua_State *L, int idx);
/* Checks the records of the file up to byte `upto` (the one it ends inside
 * included): the bytes checked so far, upto or more unless the file ended;
 * -1 once a record failed (records_failure says where and why). */
long long records_check_until(struct records *rs, long long upto);
const char *records_failure(const struct records *rs);
/* Closes the file and frees what the reader holds; safe to call again. */
void records_release(struct records *rs);
void records_init(lua_State *L);

#endif
