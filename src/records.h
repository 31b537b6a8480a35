/* core.csv_reader: the records of a CSV file for csv.rows and the checks of
 * csvup.validate, on the C tokenizer. */
#ifndef CSVUP_RECORDS_H
#define CSVUP_RECORDS_H

#include "compat.h"

struct records;

int records_open(lua_State *L);
void records_init(lua_State *L);

#endif
