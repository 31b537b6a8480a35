/* Error values: tables { code, message, status? } with a readable __tostring. */
#ifndef CSVUP_ERROR_H
#define CSVUP_ERROR_H

#include "compat.h"

/* Pushes nil and a new error; returns 2, the count for a Lua function. */
int csvup_fail(lua_State *L, const char *code, const char *fmt, ...);
/* Pushes a new error table with only code and message. */
void csvup_push_error(lua_State *L, const char *code, const char *message);
/* core.error(t): gives t the error metatable and returns it. */
int csvup_error_new(lua_State *L);
/* Creates the shared metatable once per Lua state. */
void csvup_error_init(lua_State *L);

#endif
