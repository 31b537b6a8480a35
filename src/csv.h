/* The CSV encoder: the per-row hot loops of csvup.csv. */
#ifndef CSVUP_CSV_H
#define CSVUP_CSV_H

#include "compat.h"

int csv_encoder_new(lua_State *L);
int csv_columns(lua_State *L);
void csv_init(lua_State *L);

#endif
