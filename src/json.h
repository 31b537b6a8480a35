#ifndef CSVUP_JSON_H
#define CSVUP_JSON_H

#include "compat.h"

int json_protect_bigints(lua_State *L);

#endif
