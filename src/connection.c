#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connection.h"
#include "endpoints.h"
#include "error.h"
#include "slots.h"
#include "version.h"

#define CONNECTION_MT "csvup.connection"

struct connection *connection_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, CONNECTION_MT);
}

static int connection_close(lua_State *L)
{
    struct connection *conn = connection_check(L, 1);
    if (conn->easy) {
        curl_easy_cleanup(conn->easy);
        conn->easy = NULL;
    }
    free(conn->base_url);
    free(conn->authorization);
    free(conn->user_agent);
    free(conn->ca_file);
    conn->base_url = conn->authorization = conn->user_agent = conn->ca_file = NULL;
    return 0;
}

static int connection_tostring(lua_State *L)
{
    struct connection *conn = connection_check(L, 1);
    lua_pushfstring(L, "csvup.connection (%s%s)", csvup_services[conn->service].name,
                    conn->easy ? "" : ", closed");
    return 1;
}

/* Header lines are written to stderr with the Authorization value hidden. */
static int debug_redacted(CURL *easy, curl_infotype type, char *data, size_t size, void *userdata)
{
    const char *prefix = type == CURLINFO_TEXT ? "* " : type == CURLINFO_HEADER_IN ? "< "
                       : type == CURLINFO_HEADER_OUT ? "> " : NULL;
    size_t start = 0, end;
    (void)easy;
    (void)userdata;
    if (!prefix)
        return 0;
    while (start < size) {
        for (end = start; end < size && data[end] != '\n'; end++)
            ;
        if (end - start >= 14 && strncasecmp(data + start, "authorization:", 14) == 0)
            fprintf(stderr, "%sAuthorization: [hidden]\n", prefix);
        else
            fprintf(stderr, "%s%.*s\n", prefix, (int)(end - start), data + start);
        start = end + 1;
    }
    return 0;
}

void connection_prepare(struct connection *conn)
{
    CURL *e = conn->easy;
    curl_easy_reset(e);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, conn->user_agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conn->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, conn->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, conn->low_speed_time);
    /* A 2 MB upload buffer streams a file at loopback speed (the default 64 KB costs ~50%). */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 2L * 1024 * 1024);
    if (conn->ca_file)
        curl_easy_setopt(e, CURLOPT_CAINFO, conn->ca_file);
    if (conn->insecure) {
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (conn->verbose) {
        curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, debug_redacted);
        curl_easy_setopt(e, CURLOPT_VERBOSE, 1L);
    }
}

/* A header or option value must be one line: no NUL, CR or LF. */
static int is_one_line(const char *s, size_t len)
{
    return strlen(s) == len && !strpbrk(s, "\r\n");
}

/* An optional string option; *bad is set when it is not one line. */
static const char *opt_string(lua_State *L, const char *name, int *bad)
{
    const char *s;
    size_t len;
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "connection option '%s' must be a string", name);
    s = lua_tolstring(L, -1, &len);
    lua_pop(L, 1); /* still referenced by the options table */
    if (!is_one_line(s, len))
        *bad = 1;
    return s;
}

/* A number option, times scale (1000 for seconds to milliseconds); 0 or less is 0. */
static long opt_number(lua_State *L, const char *name, long fallback, lua_Number scale)
{
    lua_Number n;
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return fallback;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "connection option '%s' must be a number", name);
    n = lua_tonumber(L, -1) * scale;
    lua_pop(L, 1);
    return n > 0 && n < 1e12 ? (long)n : 0;
}

/* Whether a plain http:// URL points at this machine (the sandbox, a local proxy). */
static int is_loopback(const char *url)
{
    const char *host = url + 7; /* after "http://" */
    size_t n = strcspn(host, ":/?#");
    if (*host == '[')
        return strncmp(host, "[::1]", 5) == 0;
    return (n == 9 && strncmp(host, "localhost", 9) == 0) || strncmp(host, "127.", 4) == 0;
}

static int opt_flag(lua_State *L, const char *name)
{
    int on;
    lua_getfield(L, 1, name);
    on = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return on;
}

static char *format_alloc(const char *fmt, ...)
{
    va_list ap;
    char *s;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0 || !(s = malloc((size_t)n + 1)))
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

/* core.connection{ service, token, base_url?, allow_http?, timeout?, upload_timeout?,
 *                  connect_timeout?, low_speed_limit?, low_speed_time?, parallel?,
 *                  user_agent?, ca_file?, insecure?, verbose? } */
int connection_new(lua_State *L)
{
    const char *service, *token, *base_url, *user_agent, *ca_file;
    char product[64];
    size_t i, url_len;
    int bad = 0, bad_token = 0;
    struct connection *conn;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "service");
    service = lua_tostring(L, -1);
    lua_pop(L, 1);
    for (i = 0; service && i < csvup_service_count; i++)
        if (strcmp(service, csvup_services[i].name) == 0)
            break;
    if (!service || i == csvup_service_count)
        return luaL_error(L, "connection option 'service' must be \"metrika\" or \"carrotquest\"");

    token = opt_string(L, "token", &bad_token);
    base_url = opt_string(L, "base_url", &bad);
    user_agent = opt_string(L, "user_agent", &bad);
    ca_file = opt_string(L, "ca_file", &bad);
    if (!token || !*token)
        return csvup_fail(L, "invalid_argument", "a token is required");
    if (bad_token)
        return csvup_fail(L, "invalid_argument", "the token holds a line break or NUL byte");
    if (bad)
        return csvup_fail(L, "invalid_argument", "base_url, user_agent and ca_file must be one line each");
    if (!base_url)
        base_url = csvup_services[i].base_url;
    if (strncmp(base_url, "http://", 7) != 0 && strncmp(base_url, "https://", 8) != 0)
        return csvup_fail(L, "invalid_argument", "base_url must start with https:// or http://: %s", base_url);
    if (strncmp(base_url, "http://", 7) == 0 && !is_loopback(base_url) && !opt_flag(L, "allow_http"))
        return csvup_fail(L, "invalid_argument",
                          "%s is plain http on another machine: the token would travel unencrypted "
                          "(use https, or allow_http = true)", base_url);

    conn = lua_newuserdata(L, sizeof *conn);
    memset(conn, 0, sizeof *conn);
    luaL_getmetatable(L, CONNECTION_MT);
    lua_setmetatable(L, -2);

    conn->service = (int)i;
    conn->timeout_ms = opt_number(L, "timeout", 60000, 1000);
    conn->upload_timeout_ms = opt_number(L, "upload_timeout", 0, 1000);
    conn->connect_timeout_ms = opt_number(L, "connect_timeout", 10000, 1000);
    conn->low_speed_limit = opt_number(L, "low_speed_limit", 1024, 1);
    conn->low_speed_time = opt_number(L, "low_speed_time", 120, 1);
    conn->parallel = (int)opt_number(L, "parallel", csvup_services[i].parallel, 1);
    conn->insecure = opt_flag(L, "insecure");
    conn->verbose = opt_flag(L, "verbose");
    snprintf(product, sizeof product, "csvup/%s libcurl/%s", CSVUP_VERSION,
             curl_version_info(CURLVERSION_NOW)->version);
    url_len = strlen(base_url);
    while (url_len > 0 && base_url[url_len - 1] == '/')
        url_len--;
    conn->base_url = malloc(url_len + 1);
    if (conn->base_url) {
        memcpy(conn->base_url, base_url, url_len);
        conn->base_url[url_len] = '\0';
    }
    conn->authorization = format_alloc("Authorization: %s %s", csvup_services[i].auth_scheme, token);
    conn->user_agent = user_agent ? format_alloc("%s %s", user_agent, product) : format_alloc("%s", product);
    conn->ca_file = ca_file ? format_alloc("%s", ca_file) : NULL;
    if (conn->authorization)
        conn->slot_key = slots_key(conn->authorization);
    conn->easy = curl_easy_init();
    if (!conn->base_url || !conn->authorization || !conn->user_agent || (ca_file && !conn->ca_file)
        || !conn->easy) {
        lua_pushcfunction(L, connection_close);
        lua_pushvalue(L, -2);
        lua_call(L, 1, 0);
        return luaL_error(L, "out of memory");
    }
    return 1;
}

void connection_init(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "close", connection_close },
        { NULL, NULL }
    };
    if (luaL_newmetatable(L, CONNECTION_MT)) {
        lua_pushcfunction(L, connection_close);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, connection_close);
        lua_setfield(L, -2, "__close");
#endif
        lua_pushcfunction(L, connection_tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        luaL_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}
