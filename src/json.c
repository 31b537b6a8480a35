/* Debian's lua-cjson 2.1.0 reads every number as a double, so an int64 id
 * such as 133591247640966458 would lose digits, and on Lua 5.4 a count of 1
 * would come back as the float 1.0. Before decoding, integer literals of at
 * least min_digits digits are rewritten as strings marked by a leading NUL
 * ("\u0000<digits>"); csvup.json turns them back into exact integers. */
#include "json.h"

#define MARK "\"\\u0000"

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* core.json_mark_integers(text, min_digits) -> text, count of integers marked */
int json_mark_integers(lua_State *L)
{
    size_t n, i = 0, copied = 0;
    const char *s = luaL_checklstring(L, 1, &n);
    size_t min_digits = (size_t)luaL_checkinteger(L, 2);
    int count = 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (i < n) {
        size_t start = i, digits;
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
            i++;
            continue;
        }
        if (s[i] != '-' && !is_digit(s[i])) {
            i++;
            continue;
        }
        if (s[i] == '-')
            i++;
        for (digits = 0; i < n && is_digit(s[i]); i++)
            digits++;
        if (i < n && (s[i] == '.' || s[i] == 'e' || s[i] == 'E')) {
            while (i < n && (is_digit(s[i]) || s[i] == '.' || s[i] == 'e' || s[i] == 'E' || s[i] == '+' || s[i] == '-'))
                i++;
            continue;
        }
        if (digits >= min_digits) {
            luaL_addlstring(&b, s + copied, start - copied);
            luaL_addstring(&b, MARK);
            luaL_addlstring(&b, s + start, i - start);
            luaL_addchar(&b, '"');
            copied = i;
            count++;
        }
    }
    if (count == 0) {
        lua_settop(L, 1);
    } else {
        luaL_addlstring(&b, s + copied, n - copied);
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, count);
    return 2;
}
