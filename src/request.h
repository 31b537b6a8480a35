/* One call of an endpoint: arguments checked, the request built and sent. */
#ifndef CSVUP_REQUEST_H
#define CSVUP_REQUEST_H

#include "compat.h"

/* The Lua function behind every endpoint; upvalue 1 is its row in csvup_endpoints. */
int request_call(lua_State *L);
int request_check_file(lua_State *L);
void request_init(lua_State *L);

#endif
