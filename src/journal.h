/* The upload journal: a SQLite file that records each upload before it is sent
 * and its uploading after, so that a rerun never sends the same bytes twice. */
#ifndef CSVUP_JOURNAL_H
#define CSVUP_JOURNAL_H

#include "compat.h"

/* core.journal_open(path) -> journal | nil, err */
int journal_open(lua_State *L);
/* core.journal_check(path) -> { finding, ... } | nil, err */
int journal_check_file(lua_State *L);
void journal_init(lua_State *L);

#endif
