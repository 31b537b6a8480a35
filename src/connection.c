#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "connection.h"
#include "error.h"
#include "slots.h"
#include "version.h"

#define CONNECTION_MT "csvup.connection"
#define WEEK 604800.0

/* Metrica allows 3 parallel requests per user; Carrot quest publishes no such
 * limit (its rate advice is kept by the Lua client). */
const struct service csvup_services[] = {
    { "metrika", "https://api-metrika.yandex.net", "OAuth", 3 },
    { "carrotquest", "https://api.carrotquest.io", "Token", 0 },
};
const size_t csvup_service_count = sizeof csvup_services / sizeof csvup_services[0];

struct connection *connection_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, CONNECTION_MT);
}

/* Frees s after overwriting it, so that a token does not stay readable in
 * freed memory (volatile: the compiler may not drop the stores). */
static void wipe_free(char *s)
{
    if (s) {
        volatile char *p = s;
        while (*p)
            *p++ = 0;
        free(s);
    }
}

static void connection_free(struct connection *conn)
{
    if (conn->easy) {
        curl_easy_cleanup(conn->easy);
        conn->easy = NULL;
    }
    wipe_free(conn->authorization);
    free(conn->base_url);
    free(conn->user_agent);
    free(conn->ca_file);
    free(conn->slots_dir);
    conn->base_url = conn->authorization = conn->user_agent = conn->ca_file = conn->slots_dir = NULL;
    conn->close_pending = 0;
}

/* conn:close(), also __gc and __close. Inside a callback of a call running on
 * the connection, the handle is in use: it is closed when that call ends. */
static int connection_close(lua_State *L)
{
    struct connection *conn = connection_check(L, 1);
    if (conn->busy)
        conn->close_pending = 1;
    else
        connection_free(conn);
    return 0;
}

static int connection_gc(lua_State *L)
{
    connection_free(connection_check(L, 1)); /* no call can be running: it would hold a reference */
    return 0;
}

int connection_claim(lua_State *L, struct connection *conn, const char *what)
{
    if (!conn->easy || conn->close_pending)
        return csvup_fail(L, KIND_INPUT, "closed", "%s: the connection is closed", what);
    if (conn->busy)
        return csvup_fail(L, KIND_INPUT, "busy",
                          "%s: the connection is in use by the call whose callback this is; "
                          "use another client inside callbacks", what);
    conn->busy = 1;
    return 0;
}

void connection_unclaim(struct connection *conn)
{
    conn->busy = 0;
    if (conn->close_pending)
        connection_free(conn);
}

static int connection_tostring(lua_State *L)
{
    struct connection *conn = connection_check(L, 1);
    lua_pushfstring(L, "csvup.connection (%s%s)", csvup_services[conn->service].name,
                    conn->easy ? "" : ", closed");
    return 1;
}

/* conn:base_url() -> the base URL requests go to, as parsed (no trailing slash) */
static int connection_base_url(lua_State *L)
{
    lua_pushstring(L, connection_check(L, 1)->base_url);
    return 1;
}

/* Where "authorization" starts in line, any case, or NULL. */
static const char *names_authorization(const char *line, size_t len)
{
    static const char word[] = "authorization";
    size_t i, n = sizeof word - 1;
    for (i = 0; i + n <= len; i++)
        if (strncasecmp(line + i, word, n) == 0)
            return line + i;
    return NULL;
}

/* One line of verbose output: control bytes shown as '?', and everything from
 * a mention of Authorization on hidden, whatever the info type wraps it in
 * (HTTP/2 prints "[authorization: OAuth ...]" as text). */
static void print_redacted(const char *prefix, const char *line, size_t len)
{
    const char *auth = names_authorization(line, len);
    size_t i, shown = auth ? (size_t)(auth - line) : len;
    fputs(prefix, stderr);
    for (i = 0; i < shown; i++) {
        unsigned char c = (unsigned char)line[i];
        fputc(c < 0x20 && c != '\t' ? '?' : c == 0x7f ? '?' : c, stderr);
    }
    fputs(auth ? "Authorization: [hidden]\n" : "\n", stderr);
}

/* Text and header lines are written to stderr; bodies and TLS data are not. */
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
        size_t len;
        for (end = start; end < size && data[end] != '\n'; end++)
            ;
        len = end - start;
        if (len > 0 && data[start + len - 1] == '\r')
            len--;
        print_redacted(prefix, data + start, len);
        start = end + 1;
    }
    return 0;
}

void connection_prepare(struct connection *conn)
{
    CURL *e = conn->easy;
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_USERAGENT, conn->user_agent);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, conn->connect_timeout_ms);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, conn->low_speed_limit);
    curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, conn->low_speed_time);
    /* The upload buffer: a file's bytes are read into it, checked there and
     * sent while they are still in the processor's L2 cache (1 MB a core on
     * the machine measured). At loopback speed, 640 KB beat 2 MB by 15% with
     * every row checked; 1 MB was as slow as 2 MB, and the default 64 KB
     * costs ~50% in sends. */
    curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, 640L * 1024);
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

/* An optional string option and its length; *bad is set when it is not one line. */
static const char *opt_string(lua_State *L, const char *name, size_t *len, int *bad)
{
    const char *s;
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *len = 0;
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING)
        luaL_error(L, "connection option '%s' must be a string", name);
    s = lua_tolstring(L, -1, len);
    lua_pop(L, 1); /* still referenced by the options table */
    if (!is_one_line(s, *len))
        *bad = 1;
    return s;
}

/* A number option within [min, max] (NaN and infinities never are), times
 * scale (1000 for seconds to milliseconds) into *out; fallback when absent.
 * 0, or nil and an invalid_argument error pushed (2). */
static int opt_number(lua_State *L, const char *name, lua_Number min, lua_Number max, lua_Number scale,
                      long fallback, long *out)
{
    lua_Number n;
    lua_getfield(L, 1, name);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *out = fallback;
        return 0;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        return luaL_error(L, "connection option '%s' must be a number", name);
    n = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(n >= min && n <= max)) {
        char range[96];
        snprintf(range, sizeof range, "from %g to %g, got %g", (double)min, (double)max, (double)n);
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s must be a number %s", name, range);
    }
    *out = (long)(n * scale);
    return 0;
}

static int opt_flag(lua_State *L, const char *name)
{
    int on;
    lua_getfield(L, 1, name);
    on = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return on;
}

/* Whether host (as libcurl's URL parser gives it) is this machine:
 * localhost, an IPv4 literal in 127.0.0.0/8, or [::1]. */
static int is_loopback_host(const char *host)
{
    struct in_addr addr;
    if (strcasecmp(host, "localhost") == 0 || strcmp(host, "[::1]") == 0)
        return 1;
    return inet_pton(AF_INET, host, &addr) == 1 && ((const unsigned char *)&addr.s_addr)[0] == 127;
}

/* The base URL as libcurl will read it, without a trailing slash (malloc'd),
 * or NULL and an invalid_argument error pushed. Plain http goes only to this
 * machine unless allow_http: the token would travel unencrypted. */
static char *parse_base_url(lua_State *L, const char *text, int allow_http)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL, *query = NULL, *fragment = NULL;
    char *url = NULL, *result = NULL;
    const char *problem = NULL;
    if (!u)
        luaL_error(L, "out of memory");
    if (curl_url_set(u, CURLUPART_URL, text, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK
        || curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
        problem = "is not a URL";
    else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)
        problem = "must start with https:// or http://";
    else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK
             || curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK)
        problem = "holds a user name or password (\"user@host\"): the host is what follows '@'";
    else if (curl_url_get(u, CURLUPART_QUERY, &query, 0) == CURLUE_OK
             || curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK)
        problem = "must not hold a query ('?') or a fragment ('#')";
    else if (strcmp(scheme, "http") == 0 && !allow_http && !is_loopback_host(host))
        problem = "is plain http to another machine: the token would travel unencrypted "
                  "(use https, or allow_http = true)";
    if (problem) {
        csvup_fail(L, KIND_INPUT, "invalid_argument", "base_url %s %s", text, problem);
    } else if ((result = strdup(url))) {
        size_t len = strlen(result);
        while (len > 0 && result[len - 1] == '/')
            result[--len] = '\0';
    }
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_free(query);
    curl_free(fragment);
    curl_free(url);
    curl_url_cleanup(u);
    if (!problem && !result)
        luaL_error(L, "out of memory");
    return result;
}

/* A token is printable ASCII without spaces: anything else would change the header. */
static int check_token(lua_State *L, const char *token, size_t len)
{
    size_t i;
    if (len == 0)
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "a token is required");
    for (i = 0; i < len; i++)
        if ((unsigned char)token[i] < 0x21 || (unsigned char)token[i] > 0x7e)
            return csvup_fail(L, KIND_INPUT, "invalid_argument",
                              "the token holds a space, control or non-ASCII byte (at byte %d)", (int)i + 1);
    return 0;
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

/* The numbers of a connection's options, checked; 0 or nil, err pushed (2). */
static int read_numbers(lua_State *L, struct connection *c, int service)
{
    long parallel;
    int rc;
    if ((rc = opt_number(L, "timeout", 0.01, WEEK, 1000, 60000, &c->timeout_ms))
        || (rc = opt_number(L, "upload_timeout", 0.01, WEEK, 1000, 0, &c->upload_timeout_ms))
        || (rc = opt_number(L, "connect_timeout", 0.01, 3600, 1000, 10000, &c->connect_timeout_ms))
        || (rc = opt_number(L, "low_speed_limit", 1, 1e9, 1, 1024, &c->low_speed_limit))
        || (rc = opt_number(L, "low_speed_time", 1, 86400, 1, 120, &c->low_speed_time))
        || (rc = opt_number(L, "parallel", 0, 64, 1, csvup_services[service].parallel, &parallel)))
        return rc;
    lua_getfield(L, 1, "parallel");
    if (!lua_isnil(L, -1) && lua_tonumber(L, -1) != (lua_Number)parallel)
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "parallel must be a whole number of requests");
    lua_pop(L, 1);
    c->parallel = (int)parallel;
    return 0;
}

/* core.connection{ service, token, base_url?, allow_http?, timeout?, upload_timeout?,
 *                  connect_timeout?, low_speed_limit?, low_speed_time?, parallel?,
 *                  user_agent?, ca_file?, insecure?, verbose? } -> connection | nil, err */
int connection_new(lua_State *L)
{
    const char *service, *token, *base_url, *user_agent, *ca_file;
    char product[64], why[256];
    struct connection opts, *conn;
    size_t i, token_len, len;
    int bad = 0, rc;
    char *url;

    luaL_checktype(L, 1, LUA_TTABLE);
    lua_getfield(L, 1, "service");
    service = lua_tostring(L, -1);
    lua_pop(L, 1);
    for (i = 0; service && i < csvup_service_count; i++)
        if (strcmp(service, csvup_services[i].name) == 0)
            break;
    if (!service || i == csvup_service_count)
        return luaL_error(L, "connection option 'service' must be \"metrika\" or \"carrotquest\"");

    token = opt_string(L, "token", &token_len, &bad); /* check_token, first, says what is wrong */
    base_url = opt_string(L, "base_url", &len, &bad);
    user_agent = opt_string(L, "user_agent", &len, &bad);
    ca_file = opt_string(L, "ca_file", &len, &bad);
    if ((rc = check_token(L, token ? token : "", token_len)))
        return rc;
    if (bad)
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "base_url, user_agent and ca_file must be one line each");
    memset(&opts, 0, sizeof opts);
    if ((rc = read_numbers(L, &opts, (int)i)))
        return rc;
    if (!(url = parse_base_url(L, base_url ? base_url : csvup_services[i].base_url, opt_flag(L, "allow_http"))))
        return 2;

    conn = lua_newuserdata(L, sizeof *conn);
    *conn = opts;
    conn->base_url = url;
    luaL_getmetatable(L, CONNECTION_MT);
    lua_setmetatable(L, -2);

    conn->service = (int)i;
    conn->insecure = opt_flag(L, "insecure");
    conn->verbose = opt_flag(L, "verbose");
    snprintf(product, sizeof product, "csvup/%s libcurl/%s", CSVUP_VERSION,
             curl_version_info(CURLVERSION_NOW)->version);
    conn->authorization = format_alloc("Authorization: %s %s", csvup_services[i].auth_scheme, token);
    conn->user_agent = user_agent ? format_alloc("%s %s", user_agent, product) : format_alloc("%s", product);
    conn->ca_file = ca_file ? format_alloc("%s", ca_file) : NULL;
    conn->easy = curl_easy_init();
    if (!conn->authorization || !conn->user_agent || (ca_file && !conn->ca_file) || !conn->easy) {
        connection_free(conn);
        return luaL_error(L, "out of memory");
    }
    if (conn->parallel > 0 && !(conn->slots_dir = slots_open(conn->authorization, &conn->slot_key, why, sizeof why))) {
        connection_free(conn);
        return csvup_fail(L, KIND_INTERNAL, "slots_unavailable",
                          "the parallel-request guard cannot keep its lock files: %s (parallel = 0 turns it off)",
                          why);
    }
    return 1;
}

void connection_init(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "close", connection_close },
        { "base_url", connection_base_url },
        { NULL, NULL }
    };
    csvup_class(L, CONNECTION_MT, methods, connection_gc, connection_close, connection_tostring);
}
