#ifndef CSVUP_JSON_H
#define CSVUP_JSON_H

#include "compat.h"

int json_mark_integers(lua_State *L);

#endif
