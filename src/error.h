/* Error values: tables { code, message, kind, status? } with a readable __tostring. */
#ifndef CSVUP_ERROR_H
#define CSVUP_ERROR_H

#include <stddef.h>

#include "compat.h"

/* Which family an error belongs to: callers decide on it (retry, exit code),
 * never on the spelling of a code. */
enum error_kind {
    KIND_NETWORK,  /* the transfer failed: libcurl errors, timeouts */
    KIND_API,      /* the service answered, but badly */
    KIND_INPUT,    /* arguments, files, the state of the connection */
    KIND_INTERNAL  /* callbacks that raised, interruptions, bugs caught */
};

/* Pushes nil and a new error; returns 2, the count for a Lua function. */
int csvup_fail(lua_State *L, enum error_kind kind, const char *code, const char *fmt, ...);
/* Pushes a new error table with code, message and kind. */
void csvup_push_error(lua_State *L, enum error_kind kind, const char *code, const char *message);
/* strerror for any thread (calls run in OpenResty worker threads): the text
 * of errnum, written into buf. */
const char *csvup_strerror(int errnum, char *buf, size_t size);
/* core.error(t): gives t the error metatable and returns it. */
int csvup_error_new(lua_State *L);
/* Creates the shared metatable once per Lua state. */
void csvup_error_init(lua_State *L);

#endif
