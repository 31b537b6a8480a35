#include <math.h>
#include <stdio.h>
#include <string.h>

#include "plan.h"

static int flag(lua_State *L, int t, const char *name)
{
    int on;
    lua_getfield(L, t, name);
    on = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return on;
}

static const char *text_field(lua_State *L, int t, const char *name)
{
    const char *s;
    lua_getfield(L, t, name);
    s = lua_tostring(L, -1);
    lua_pop(L, 1); /* the plan table keeps the string */
    return s ? s : "";
}

/* plan: { columns = { { type?, required?, one_of? }, ... }, one_of = "A|B"?,
 * currencies = "AED ...", traffic_sources = "ad ...", now, problems = {}, total, max } */
void plan_compile(lua_State *L, int idx, int names, struct plan *p)
{
    size_t i;
    int columns;
    long long now;
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(p, 0, sizeof *p);
    lua_getfield(L, idx, "now");
    now = (long long)lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (check_sets_init(&p->sets, text_field(L, idx, "currencies"), text_field(L, idx, "traffic_sources"), now))
        luaL_error(L, "csvup: malformed check plan (sets)");
    if (now + CHECK_FUTURE_SLACK >= 0)
        p->latest_len = (size_t)snprintf(p->latest, sizeof p->latest, "%lld", now + CHECK_FUTURE_SLACK);
    lua_getfield(L, idx, "columns");
    columns = lua_gettop(L);
    luaL_checktype(L, columns, LUA_TTABLE);
    p->ncolumns = lua_rawlen(L, columns);
    p->columns = lua_newuserdata(L, (p->ncolumns ? p->ncolumns : 1) * sizeof *p->columns);
    for (i = 0; i < p->ncolumns; i++) {
        struct plan_column *c = &p->columns[i];
        lua_rawgeti(L, columns, (int)i + 1);
        luaL_checktype(L, -1, LUA_TTABLE);
        lua_getfield(L, -1, "type");
        c->type = lua_isstring(L, -1) ? check_type_of(lua_tostring(L, -1)) : CHECK_NONE;
        if (c->type < 0)
            luaL_error(L, "csvup: no check of type %s", lua_tostring(L, -1));
        lua_pop(L, 1);
        c->required = flag(L, -1, "required");
        c->one_of = flag(L, -1, "one_of");
        lua_pop(L, 1);
    }
    lua_getfield(L, idx, "one_of");
    p->one_of = lua_isstring(L, -1);
    p->one_of_name = p->one_of ? lua_tostring(L, -1) : "";
    lua_pop(L, 1); /* the plan table keeps it */
    lua_getfield(L, idx, "problems");
    luaL_checktype(L, -1, LUA_TTABLE);
    p->problems = lua_gettop(L);
    lua_getfield(L, idx, "total");
    p->total = lua_tointeger(L, -1);
    lua_getfield(L, idx, "max");
    p->max = lua_tointeger(L, -1);
    lua_pop(L, 2);
    p->names = names;
}

void plan_problem(lua_State *L, struct plan *p, lua_Integer line, lua_Integer row, long column,
                  const char *shown, const char *reason)
{
    lua_Integer n;
    p->total++;
    if (!L)
        return;
    n = (lua_Integer)lua_rawlen(L, p->problems);
    if (n >= p->max)
        return;
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, line);
    lua_setfield(L, -2, "line");
    if (row) {
        lua_pushinteger(L, row);
        lua_setfield(L, -2, "row");
    }
    if (column < 0)
        lua_pushstring(L, p->one_of_name);
    else
        lua_rawgeti(L, p->names, (int)column + 1);
    lua_setfield(L, -2, "column");
    if (shown)
        lua_pushfstring(L, "%s %s", shown, reason);
    else
        lua_pushstring(L, reason);
    lua_setfield(L, -2, "reason");
    lua_rawseti(L, p->problems, (int)n + 1);
}

void plan_check_fields(lua_State *L, struct plan *p, const struct field *fields, lua_Integer line)
{
    size_t i;
    int filled = 0;
    for (i = 0; i < p->ncolumns; i++) {
        const struct plan_column *c = &p->columns[i];
        const char *reason;
        char buf[CHECK_REASON_SIZE];
        if (fields[i].len == 0) {
            if (c->required)
                plan_problem(L, p, line, 0, (long)i, NULL, "is empty");
            continue;
        }
        filled |= c->one_of;
        if (c->type && (reason = check_value(&p->sets, c->type, fields[i].data, fields[i].len, buf))) {
            char shown[CHECK_QUOTED_SIZE];
            check_quote(fields[i].data, fields[i].len, shown);
            plan_problem(L, p, line, 0, (long)i, shown, reason);
        }
    }
    if (p->one_of && !filled)
        plan_problem(L, p, line, 0, -1, NULL, "none of these is filled");
}

/* Why the number at idx is not a value of the type; NULL when it is, or
 * when its decimal text (in digits) decides. */
static const char *number_reason(lua_State *L, int idx, int type, int integer, int64_t i, char *digits)
{
    lua_Number v = lua_tonumber(L, idx);
    if ((type == CHECK_PROPERTY || type == CHECK_KEY)
        && (v != v || v >= CSVUP_EXACT_DOUBLE_MAX || v <= -CSVUP_EXACT_DOUBLE_MAX))
        return "is outside ±2^53, the range of Carrot quest numbers";
    if (integer) {
        snprintf(digits, 24, "%lld", (long long)i);
        return NULL;
    }
    switch (type) {
    case CHECK_ID:
        return "is a float, which cannot hold an id above 2^53 exactly: pass it as a string or an integer";
    case CHECK_DECIMAL:
        return isfinite(v) ? "" : "is not a finite number";
    case CHECK_COUNT:
        return "is not a whole number";
    case CHECK_FLAG:
        return v == 0 || v == 1 ? "" : "is not 0 or 1";
    case CHECK_TEXT:
    case CHECK_PROPERTY:
    case CHECK_KEY:
        return "";
    default:
        snprintf(digits, 24, "%.14g", v);
        return NULL;
    }
}

/* Checks the value at idx (a field of a row); line and row for problems. */
static void check_lua_value(lua_State *L, struct plan *p, size_t column, int idx, lua_Integer line, lua_Integer row,
                            int *filled)
{
    const struct plan_column *c = &p->columns[column];
    const char *s, *reason = NULL;
    char buf[CHECK_REASON_SIZE], digits[32];
    size_t n;
    int t = lua_type(L, idx), quoted = 0;
    int64_t i = 0;
    if (t == LUA_TNIL || (t == LUA_TLIGHTUSERDATA && lua_touserdata(L, idx) == NULL)
        || (t == LUA_TSTRING && lua_rawlen(L, idx) == 0)) {
        if (c->required)
            plan_problem(L, p, line, row, (long)column, NULL, "is empty");
        return;
    }
    *filled |= c->one_of;
    if (!c->type)
        return;
    if (t == LUA_TSTRING) {
        s = lua_tolstring(L, idx, &n);
        reason = check_value(&p->sets, c->type, s, n, buf);
        quoted = 1;
    } else if (t == LUA_TNUMBER) {
        int integer = csvup_tointeger(L, idx, &i);
        reason = number_reason(L, idx, c->type, integer, i, digits);
        if (!reason)
            reason = check_value(&p->sets, c->type, digits, strlen(digits), buf);
        else if (!*reason)
            reason = NULL;
    } else if (t == LUA_TBOOLEAN) {
        if (c->type != CHECK_FLAG && c->type != CHECK_TEXT && c->type != CHECK_PROPERTY && c->type != CHECK_KEY) {
            s = lua_toboolean(L, idx) ? "true" : "false";
            reason = check_value(&p->sets, c->type, s, strlen(s), buf);
        }
    }
    /* other types: the encoder refuses them, naming row and column */
    if (reason) {
        char shown[CHECK_QUOTED_SIZE];
        if (quoted) {
            s = lua_tolstring(L, idx, &n);
            check_quote(s, n, shown);
        } else {
            int t = lua_type(L, idx);
            lua_pushvalue(L, idx); /* lua_tostring converts in place */
            snprintf(shown, sizeof shown, "%s", t == LUA_TBOOLEAN ? (lua_toboolean(L, idx) ? "true" : "false")
                     : t == LUA_TNUMBER ? lua_tostring(L, -1) : lua_typename(L, t));
            lua_pop(L, 1);
        }
        plan_problem(L, p, line, row, (long)column, shown, reason);
    }
}

/* core.check_rows(plan, rows, columns, before?) -> total. Rows are records
 * keyed by the columns or arrays by position, numbered from before + 1 (a
 * batch of a longer stream); plan.problems gets the first ones. */
int plan_check_rows(lua_State *L)
{
    struct plan p;
    lua_Integer r, nrows, before = luaL_optinteger(L, 4, 0);
    const int rows = 2, columns = 3;
    luaL_checktype(L, rows, LUA_TTABLE);
    luaL_checktype(L, columns, LUA_TTABLE);
    lua_settop(L, 3);
    plan_compile(L, 1, columns, &p);
    if (p.ncolumns != lua_rawlen(L, columns))
        return luaL_error(L, "csvup: the check plan and the columns differ");
    nrows = (lua_Integer)lua_rawlen(L, rows);
    for (r = 1; r <= nrows; r++) {
        int top = lua_gettop(L), positional, filled = 0, row;
        size_t c;
        lua_rawgeti(L, rows, (int)r);
        row = lua_gettop(L);
        if (!lua_istable(L, row)) {
            lua_settop(L, top);
            continue;
        }
        lua_rawgeti(L, row, 1);
        positional = !lua_isnil(L, -1);
        lua_pop(L, 1);
        for (c = 0; c < p.ncolumns; c++) {
            if (positional) {
                lua_rawgeti(L, row, (int)c + 1);
            } else {
                lua_rawgeti(L, columns, (int)c + 1);
                lua_rawget(L, row);
            }
            check_lua_value(L, &p, c, lua_gettop(L), before + r + 1, before + r, &filled);
            lua_pop(L, 1);
        }
        if (p.one_of && !filled)
            plan_problem(L, &p, before + r + 1, before + r, -1, NULL, "none of these is filled");
        lua_settop(L, top);
    }
    lua_pushinteger(L, p.total);
    return 1;
}

/* core.check_value(type, s) -> nil | why s is not a value of the type */
int plan_check_value(lua_State *L)
{
    size_t n;
    const char *s = luaL_checklstring(L, 2, &n);
    int type = check_type_of(luaL_checkstring(L, 1));
    char buf[CHECK_REASON_SIZE];
    struct check_sets sets;
    luaL_argcheck(L, type >= 0, 1, "no such type");
    check_sets_init(&sets, "", "", 0);
    lua_pushstring(L, check_value(&sets, type, s, n, buf));
    return 1;
}
