/* One source for Lua 5.4 and LuaJIT 2.1 (the Lua 5.1 ABI). */
#ifndef CSVUP_COMPAT_H
#define CSVUP_COMPAT_H

#include <stdint.h>

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM < 502
#define lua_rawlen lua_objlen
#endif

/* The one user value of a userdata (a table): set pops it, get pushes it. */
#if LUA_VERSION_NUM >= 504
#define csvup_setuservalue(L, idx) lua_setiuservalue(L, idx, 1)
#define csvup_getuservalue(L, idx) lua_getiuservalue(L, idx, 1)
#elif LUA_VERSION_NUM >= 502
#define csvup_setuservalue(L, idx) lua_setuservalue(L, idx)
#define csvup_getuservalue(L, idx) lua_getuservalue(L, idx)
#else
#define csvup_setuservalue(L, idx) lua_setfenv(L, idx)
#define csvup_getuservalue(L, idx) lua_getfenv(L, idx)
#endif

/* Creates, once per Lua state, the metatable `name` of a userdata: methods as
 * its __index, gc as __gc, close (if any) as __close on Lua 5.4, tostring (if
 * any) as __tostring. luaopen runs once per spec file under busted. */
static inline void csvup_class(lua_State *L, const char *name, const luaL_Reg *methods, lua_CFunction gc,
                               lua_CFunction close, lua_CFunction tostring)
{
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        if (close) {
            lua_pushcfunction(L, close);
            lua_setfield(L, -2, "__close");
        }
#else
        (void)close;
#endif
        if (tostring) {
            lua_pushcfunction(L, tostring);
            lua_setfield(L, -2, "__tostring");
        }
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

/* Doubles hold every integer up to 2^53 exactly. */
#define CSVUP_EXACT_DOUBLE_MAX 9007199254740992.0

/* An integer argument: a Lua integer on 5.3+, an integral number within 2^53
 * on LuaJIT. Floats never count: 5.0 is rejected on 5.4. */
static inline int csvup_tointeger(lua_State *L, int idx, int64_t *out)
{
#if LUA_VERSION_NUM >= 503
    if (!lua_isinteger(L, idx))
        return 0;
    *out = (int64_t)lua_tointeger(L, idx);
    return 1;
#else
    lua_Number n;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    n = lua_tonumber(L, idx);
    if (n > CSVUP_EXACT_DOUBLE_MAX || n < -CSVUP_EXACT_DOUBLE_MAX || n != (lua_Number)(int64_t)n)
        return 0;
    *out = (int64_t)n;
    return 1;
#endif
}

#endif
