#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "error.h"

#define ERROR_MT "csvup.error"

static const char *const kind_names[] = {
    [KIND_NETWORK] = "network", [KIND_API] = "api", [KIND_INPUT] = "input", [KIND_INTERNAL] = "internal",
};

void csvup_push_error(lua_State *L, enum error_kind kind, const char *code, const char *message)
{
    lua_createtable(L, 0, 4);
    lua_pushstring(L, code);
    lua_setfield(L, -2, "code");
    lua_pushstring(L, message);
    lua_setfield(L, -2, "message");
    lua_pushstring(L, kind_names[kind]);
    lua_setfield(L, -2, "kind");
    luaL_getmetatable(L, ERROR_MT);
    lua_setmetatable(L, -2);
}

int csvup_fail(lua_State *L, enum error_kind kind, const char *code, const char *fmt, ...)
{
    va_list ap;
    lua_pushnil(L);
    va_start(ap, fmt);
    lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    csvup_push_error(L, kind, code, lua_tostring(L, -1));
    lua_remove(L, -2);
    return 2;
}

const char *csvup_strerror(int errnum, char *buf, size_t size)
{
    if (strerror_r(errnum, buf, size) != 0)
        snprintf(buf, size, "error %d", errnum);
    return buf;
}

int csvup_error_new(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_getmetatable(L, ERROR_MT);
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

/* "file:line:column: HTTP 400 code: message", each part only where known. */
static int error_tostring(lua_State *L)
{
    static const char *const place[] = { "file", "line", "column" };
    luaL_Buffer b;
    int i, placed = 0;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_buffinit(L, &b);
    for (i = 0; i < 3; i++) {
        lua_getfield(L, 1, place[i]);
        if (lua_isstring(L, -1)) {
            if (placed++)
                luaL_addchar(&b, ':');
            luaL_addvalue(&b);
        } else {
            lua_pop(L, 1);
        }
    }
    if (placed)
        luaL_addstring(&b, ": ");
    lua_getfield(L, 1, "status");
    if (lua_isnumber(L, -1)) {
        luaL_addstring(&b, "HTTP ");
        luaL_addvalue(&b);
        luaL_addchar(&b, ' ');
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, 1, "code");
    if (lua_isstring(L, -1))
        luaL_addvalue(&b);
    else {
        lua_pop(L, 1);
        luaL_addstring(&b, "error");
    }
    lua_getfield(L, 1, "message");
    if (lua_isstring(L, -1)) {
        luaL_addstring(&b, ": ");
        luaL_addvalue(&b);
    } else {
        lua_pop(L, 1);
    }
    luaL_pushresult(&b);
    return 1;
}

void csvup_error_init(lua_State *L)
{
    if (luaL_newmetatable(L, ERROR_MT)) {
        lua_pushcfunction(L, error_tostring);
        lua_setfield(L, -2, "__tostring");
    }
    lua_pop(L, 1);
}
