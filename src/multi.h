/* Many requests at once from one Lua thread, through libcurl's multi interface. */
#ifndef CSVUP_MULTI_H
#define CSVUP_MULTI_H

#include "compat.h"

int multi_run(lua_State *L);

#endif
