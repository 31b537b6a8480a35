#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buffer.h"
#include "clock.h"
#include "connection.h"
#include "error.h"
#include "file.h"
#include "recode.h"
#include "request.h"
#include "signals.h"
#include "slots.h"

#define URL_LIMIT (64u << 10)
#define FORM_LIMIT (64u << 10) /* a URL-encoded body: a few fields, like a query */
#define RESPONSE_LIMIT (16u << 20) /* an answer larger than this is an error, not an out-of-memory */
#define UPLOAD_MIN_RATE (64 << 10) /* bytes a second, see upload_ceiling_ms */

void request_init(struct request *req, lua_State *L, struct connection *conn, const struct endpoint *ep, int args)
{
    memset(req, 0, sizeof *req);
    req->L = L;
    req->conn = conn;
    req->endpoint = *ep;
    req->args = args;
    req->url.limit = URL_LIMIT;
    req->form.limit = FORM_LIMIT;
    req->body.limit = RESPONSE_LIMIT;
    req->reported = -1;
    req->slot = -1;
    req->fd = -1;
    req->source_ref = LUA_NOREF;
}

/* The header list holds a copy of the Authorization line: overwritten before it is freed. */
static void wipe_headers(struct curl_slist *headers)
{
    for (; headers; headers = headers->next) {
        volatile char *p = headers->data;
        while (*p)
            *p++ = 0;
    }
}

void request_release(struct request *req)
{
    CURL *e = req->conn ? req->conn->easy : NULL;
    if (req->multi && e)
        curl_multi_remove_handle(req->multi, e);
    req->multi = NULL;
    if (req->attached && e)
        curl_easy_reset(e); /* drops the handle's pointers into req; live connections stay */
    req->attached = 0;
    slots_release(req->slot);
    req->slot = -1;
    if (req->parked) { /* its descriptor is req->fd */
        req->parked->fd = -1;
        req->parked->parked = 1;
    }
    req->parked = NULL;
    if (req->fd >= 0)
        close(req->fd);
    req->fd = -1;
    chain_free(&req->chain);
    luaL_unref(req->L, LUA_REGISTRYINDEX, req->source_ref);
    req->source_ref = LUA_NOREF;
    curl_mime_free(req->mime);
    req->mime = NULL;
    wipe_headers(req->headers);
    curl_slist_free_all(req->headers);
    req->headers = NULL;
    buffer_free(&req->url);
    buffer_free(&req->body);
    buffer_free(&req->form);
}

static const char *describe(lua_State *L, int idx)
{
    int t = lua_type(L, idx);
    return t == LUA_TSTRING || t == LUA_TNUMBER ? lua_tostring(L, idx) : lua_typename(L, t);
}

static int is_one_line(const char *s, size_t len)
{
    return strlen(s) == len && !strpbrk(s, "\r\n");
}

/* A string argument of one line (it reaches a URL, a header or a form field). */
static const char *one_line(lua_State *L, int idx)
{
    size_t len;
    const char *s;
    if (lua_type(L, idx) != LUA_TSTRING)
        return NULL;
    s = lua_tolstring(L, idx, &len);
    return is_one_line(s, len) ? s : NULL;
}

/* A positive int64 path parameter: a Lua integer or a string of digits, so
 * that ids above 2^53 keep every digit. Writes its decimal text to out. */
static int path_integer(lua_State *L, int idx, char out[24])
{
    int64_t v;
    size_t len, i;
    const char *s;
    if (csvup_tointeger(L, idx, &v)) {
        if (v < 1)
            return 0;
        snprintf(out, 24, "%lld", (long long)v);
        return 1;
    }
    if (lua_type(L, idx) != LUA_TSTRING)
        return 0;
    s = lua_tolstring(L, idx, &len);
    if (len == 0 || len > 19 || s[0] == '0')
        return 0;
    for (i = 0; i < len; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    if (len == 19 && strcmp(s, "9223372036854775807") > 0)
        return 0;
    memcpy(out, s, len + 1);
    return 1;
}

static const char *const METHODS[] = { "GET", "POST", "PUT", "PATCH", "DELETE", NULL };
static const char *const BODIES[] = { "none", "multipart", "json", "form", NULL };

/* The index of s in names (NULL-terminated), or -1. */
static int find_name(const char *const *names, const char *s)
{
    int i;
    for (i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0)
            return i;
    return -1;
}

void endpoint_read(lua_State *L, int idx, const struct connection *conn, struct endpoint *ep)
{
    const char *name, *service;
    size_t len;
    int top = lua_gettop(L), method = -1, body;
    if (idx < 0)
        idx = top + idx + 1;
    luaL_checktype(L, idx, LUA_TTABLE);
    memset(ep, 0, sizeof *ep);
    ep->table = idx;
    lua_getfield(L, idx, "name");
    name = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || len == 0 || len >= sizeof ep->name || strlen(name) != len)
        luaL_error(L, "an endpoint's name must be a string of 1 to %d bytes", (int)sizeof ep->name - 1);
    memcpy(ep->name, name, len + 1);
    lua_getfield(L, idx, "method");
    if (lua_type(L, -1) != LUA_TSTRING || (method = find_name(METHODS, lua_tostring(L, -1))) < 0)
        luaL_error(L, "%s: the endpoint's method must be GET, POST, PUT, PATCH or DELETE", ep->name);
    strcpy(ep->method, METHODS[method]);
    lua_getfield(L, idx, "body");
    if ((body = lua_isnil(L, -1) ? BODY_NONE : find_name(BODIES, lua_tostring(L, -1))) < 0
        || (body != BODY_NONE && method == 0))
        luaL_error(L, "%s: the endpoint's body must be nil, \"multipart\", \"json\" or \"form\", and a GET has none",
                   ep->name);
    ep->body = (enum body_kind)body;
    lua_getfield(L, idx, "max_file_size");
    if (!lua_isnil(L, -1) && (!csvup_tointeger(L, -1, &ep->max_file_size) || ep->max_file_size < 0))
        luaL_error(L, "%s: the endpoint's max_file_size must be a whole number of bytes", ep->name);
    lua_getfield(L, idx, "service");
    service = lua_tostring(L, -1);
    if (conn && (!service || strcmp(service, csvup_services[conn->service].name) != 0))
        luaL_error(L, "%s is a %s endpoint, called with a %s connection", ep->name, service ? service : "(no service)",
                   csvup_services[conn->service].name);
    lua_settop(L, top);
}

/* The endpoint's path with each "{name}" replaced by args[name], a positive integer. */
static int append_path(lua_State *L, struct request *req, const struct endpoint *ep)
{
    const char *p, *open;
    char name[32], digits[24];
    lua_getfield(L, ep->table, "path");
    if (!(p = one_line(L, -1)) || *p != '/' || strpbrk(p, "?# "))
        return luaL_error(L, "%s: the endpoint's path must be one line that starts with / and has no ?, # or space",
                          ep->name);
    while ((open = strchr(p, '{'))) {
        const char *close = strchr(open, '}');
        size_t n = close ? (size_t)(close - open - 1) : 0;
        if (n == 0 || n >= sizeof name || memchr(open + 1, '{', n) || memchr(p, '}', (size_t)(open - p)))
            return luaL_error(L, "%s: a path parameter is {name}, its name 1 to %d bytes", ep->name,
                              (int)sizeof name - 1);
        memcpy(name, open + 1, n);
        name[n] = '\0';
        buffer_append(&req->url, p, (size_t)(open - p));
        lua_getfield(L, req->args, name);
        if (!path_integer(L, -1, digits))
            return csvup_fail(L, KIND_INPUT, "invalid_argument",
                              "%s: %s must be a positive integer (a Lua integer or a string of digits), got %s",
                              ep->name, name, describe(L, -1));
        lua_pop(L, 1);
        buffer_puts(&req->url, digits);
        p = close + 1;
    }
    if (strchr(p, '}'))
        return luaL_error(L, "%s: a path parameter is {name}", ep->name);
    buffer_puts(&req->url, p);
    lua_pop(L, 1);
    return 0;
}

/* The text of a query value, or NULL when it is not a one-line string, an integer or a boolean. */
static const char *query_text(lua_State *L, int idx, char num[24])
{
    int64_t v;
    if (lua_type(L, idx) == LUA_TBOOLEAN)
        return lua_toboolean(L, idx) ? "true" : "false";
    if (csvup_tointeger(L, idx, &v)) {
        snprintf(num, 24, "%lld", (long long)v);
        return num;
    }
    return one_line(L, idx);
}

/* The i-th name of the array at list: letters, digits, '_', '.' or '-'
 * (nothing a URL must escape), else an error raised. */
static const char *list_name(lua_State *L, const struct endpoint *ep, int list, size_t i)
{
    const char *name;
    size_t len;
    lua_rawgeti(L, list, (int)i);
    name = lua_tolstring(L, -1, &len);
    if (lua_type(L, -1) != LUA_TSTRING || len == 0 || len > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz"
        "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
        luaL_error(L, "%s: the endpoint's names must be 1 to 64 letters, digits, '_', '.' or '-'", ep->name);
    lua_pop(L, 1); /* still held by the list */
    return name;
}

/* Pushes the names of the array at list, comma-separated. */
static void push_names(lua_State *L, const struct endpoint *ep, int list, size_t n)
{
    size_t i;
    lua_pushliteral(L, "");
    for (i = 1; i <= n; i++) {
        lua_pushstring(L, i > 1 ? "," : "");
        lua_pushstring(L, list_name(L, ep, list, i));
        lua_concat(L, 3);
    }
}

/* args[field] (name = value), URL-encoded into out as name=value pairs
 * joined by '&', the first after lead, in the order of the endpoint's array
 * of names of the same field; a name not in it is an error, and so is a value
 * that is not one line (no CR, LF or NUL) or does not fit. what names a pair
 * in messages. */
static int append_params(lua_State *L, struct request *req, struct buffer *out, const char *field,
                         const char *lead, const char *what)
{
    const struct endpoint *ep = &req->endpoint;
    int top = lua_gettop(L), values, list, first = 1;
    size_t i, n = 0;
    char num[24];
    lua_getfield(L, req->args, field);
    if (lua_isnil(L, -1)) {
        lua_settop(L, top);
        return 0;
    }
    if (!lua_istable(L, -1))
        return luaL_error(L, "%s: args.%s must be a table", ep->name, field);
    values = lua_gettop(L);
    lua_getfield(L, ep->table, field);
    list = lua_gettop(L);
    if (lua_istable(L, list))
        n = lua_rawlen(L, list);
    else if (!lua_isnil(L, list))
        return luaL_error(L, "%s: the endpoint's %s must be an array of names", ep->name, field);
    lua_pushnil(L);
    while (lua_next(L, values)) {
        int known = 0;
        lua_pop(L, 1);
        for (i = 1; i <= n && !known && lua_type(L, -1) == LUA_TSTRING; i++)
            known = strcmp(list_name(L, ep, list, i), lua_tostring(L, -1)) == 0;
        if (!known) {
            const char *name = describe(L, -1);
            push_names(L, ep, list, n);
            return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: unknown %s '%s' (known: %s)", ep->name, what,
                              name, lua_tostring(L, -1));
        }
    }
    for (i = 1; i <= n; i++) {
        const char *name = list_name(L, ep, list, i), *text;
        char *escaped;
        lua_getfield(L, values, name);
        if (lua_isnil(L, -1)) {
            lua_pop(L, 1);
            continue;
        }
        if (!(text = query_text(L, -1, num)))
            return csvup_fail(L, KIND_INPUT, "invalid_argument",
                              "%s: %s '%s' must be one line of text, an integer or a boolean", ep->name, what, name);
        if (strlen(text) <= out->limit) {
            if (!(escaped = curl_easy_escape(req->conn->easy, text, (int)strlen(text))))
                return luaL_error(L, "out of memory");
            buffer_puts(out, first ? lead : "&");
            buffer_puts(out, name);
            buffer_puts(out, "=");
            buffer_puts(out, escaped);
            curl_free(escaped);
            first = 0;
        }
        if (strlen(text) > out->limit || out->overflow) /* sending the rest would change what the request means */
            return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: %s '%s' does not fit (%d KB at most)",
                              ep->name, what, name, (int)(out->limit >> 10));
        lua_pop(L, 1);
    }
    lua_settop(L, top);
    return 0;
}

static int too_large(lua_State *L, const struct endpoint *ep, const char *what, int64_t size)
{
    char text[160];
    snprintf(text, sizeof text, "%.1f MB (%lld bytes), over the %lld MB limit of ", (double)size / (1 << 20),
             (long long)size, (long long)(ep->max_file_size >> 20));
    return csvup_fail(L, KIND_INPUT, "file_too_large", "%s is %s%s", what, text, ep->name);
}

/* Closes what open_file opened (a parked file: parked again); -1. */
static int close_file(struct request *req, int fd)
{
    if (req->parked)
        file_park_again(req->parked); /* fd is its descriptor */
    else if (fd >= 0)
        close(fd);
    req->parked = NULL;
    return -1;
}

/* Opens the file to upload (args.file at idx: a path, or a csvup.file whose
 * descriptor is shared, never opened again) and checks it before anything is
 * sent: a readable regular file within the limit, as it was when the
 * csvup.file was opened. The descriptor (>= 0), or nil, err pushed and -1. */
static int open_file(lua_State *L, struct request *req, int idx, struct stat *st)
{
    const struct endpoint *ep = &req->endpoint;
    struct file *of = file_test(L, idx);
    const char *path = of ? of->path : lua_tostring(L, idx);
    int fd;
    if (of && of->parked) { /* opened for this attempt, its descriptor the request's, parked again at the end */
        if (file_unpark(L, of) != 0)
            return -1;
        req->parked = of;
    }
    fd = !of ? file_open_regular(L, path, st) : req->parked ? of->fd : fcntl(of->fd, F_DUPFD_CLOEXEC, 0);
    if (of && (fd < 0 || (of->temporary && of->sha.ctx) || file_changed(fd, file_path(of), &of->st))) {
        csvup_fail(L, KIND_INPUT, "file_changed", "%s: the file changed after it was checked, so nothing was "
                   "sent. Upload it again once it is complete", path);
        return close_file(req, fd);
    }
    if (of)
        *st = of->st;
    if (fd >= 0 && ep->max_file_size && st->st_size > ep->max_file_size) {
        too_large(L, ep, path, (int64_t)st->st_size);
        return close_file(req, fd);
    }
    return fd;
}

/* Whether SIGINT or SIGTERM arrived: then the transfer is marked
 * interrupted, and the callback asking stops it at once. */
static int stopped_by_signal(struct request *req)
{
    if (signal_caught())
        req->interrupted = 1;
    return req->interrupted;
}

/* The body for libcurl, from the end of the chain: as many bytes as the
 * chain said it has, the last ones only once the chain's end checks passed
 * (the file is as it was opened), so a body that fails stays incomplete. */
static size_t body_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct request *req = arg;
    size_t want = size * nitems;
    long n;
    if (stopped_by_signal(req))
        return CURL_READFUNC_ABORT;
    if ((long long)want > req->chain.size - req->handed)
        want = (size_t)(req->chain.size - req->handed);
    if (want == 0)
        return chain_finish(&req->chain) < 0 ? CURL_READFUNC_ABORT : 0;
    if ((n = chain_read(&req->chain, buf, want)) < 0)
        return CURL_READFUNC_ABORT;
    if (n == 0) {
        stage_fail(req->chain.end, "file_changed", "it ended before the size measured");
        return CURL_READFUNC_ABORT;
    }
    if (req->handed == req->chain.size && chain_finish(&req->chain) < 0)
        return CURL_READFUNC_ABORT; /* the last bytes are never sent: the body stays incomplete */
    return (size_t)n;
}

/* libcurl sends the body again from its start (a rewind of the chain), or
 * asks for where it is. */
static int body_seek(void *arg, curl_off_t offset, int origin)
{
    struct request *req = arg;
    if (origin != SEEK_SET || (offset != 0 && offset != (curl_off_t)req->handed))
        return CURL_SEEKFUNC_CANTSEEK;
    if (offset == (curl_off_t)req->handed)
        return CURL_SEEKFUNC_OK;
    return chain_rewind(&req->chain) == 0 ? CURL_SEEKFUNC_OK : CURL_SEEKFUNC_FAIL;
}

/* How long an upload of size bytes may take unless upload_timeout says
 * otherwise: the connect timeout, plus the body at UPLOAD_MIN_RATE (64 KB/s),
 * plus 60 s for the service to answer. A server that takes the body slower
 * than that cannot keep the upload alive for hours. */
static long upload_ceiling_ms(const struct connection *conn, curl_off_t size)
{
    if (conn->upload_timeout_ms > 0)
        return conn->upload_timeout_ms;
    return conn->connect_timeout_ms + (long)(size * 1000 / UPLOAD_MIN_RATE) + 60000;
}

static int add_field(lua_State *L, struct request *req, const struct endpoint *ep, const char *name, int idx)
{
    const char *value = one_line(L, idx);
    curl_mimepart *part;
    if (!value)
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: form field '%s' must be one line of text", ep->name, name);
    part = curl_mime_addpart(req->mime);
    if (!part || curl_mime_name(part, name) != CURLE_OK || curl_mime_data(part, value, CURL_ZERO_TERMINATED) != CURLE_OK)
        return luaL_error(L, "out of memory");
    return 0;
}

/* args.fields: name = "value" or name = { "value", ... } for a repeated field. */
static int add_fields(lua_State *L, struct request *req, const struct endpoint *ep)
{
    int fields, rc;
    lua_getfield(L, req->args, "fields");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    if (!lua_istable(L, -1))
        return luaL_error(L, "%s: args.fields must be a table", ep->name);
    fields = lua_gettop(L);
    lua_pushnil(L);
    while (lua_next(L, fields)) {
        const char *name = one_line(L, -2);
        if (!name || !strcmp(name, "file"))
            return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: bad form field name '%s'", ep->name, describe(L, -2));
        if (lua_istable(L, -1)) {
            size_t i, n = lua_rawlen(L, -1);
            for (i = 1; i <= n; i++) {
                lua_rawgeti(L, -1, (int)i);
                if ((rc = add_field(L, req, ep, name, -1)))
                    return rc;
                lua_pop(L, 1);
            }
        } else if ((rc = add_field(L, req, ep, name, -1))) {
            return rc;
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return 0;
}

/* args.stages, the stages after the source, in order, each a table named
 * by its first field (what csvup.client describes a body with):
 *   { "recode", encoding = "utf-8" | "cp1251", delimiter = "," | ";" | ... | "auto", to = ",", size? }
 *     the CSV converted as it is sent; size: its bytes, measured by the check before
 *   { "check", plan = <a plan of csvup.validate, with its delimiter> }  every record checked as it is sent
 *   { "utf8" }  the bytes checked as UTF-8 as they are sent
 *   { "journal", journal =, key =, marker = }  hashed as they are sent, recorded in the journal at the end
 * 0, or -1 with the chain's failure set. */
static int add_stages(lua_State *L, struct request *req)
{
    struct chain *c = &req->chain;
    size_t i, n;
    int stages, rc = 0;
    lua_getfield(L, req->args, "stages");
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return 0;
    }
    luaL_argcheck(L, lua_istable(L, -1), 2, "args.stages must be an array of stages");
    stages = lua_gettop(L);
    n = lua_rawlen(L, stages);
    for (i = 1; i <= n && rc == 0; i++) {
        const char *kind;
        lua_rawgeti(L, stages, (int)i);
        luaL_argcheck(L, lua_istable(L, -1), 2, "args.stages: a stage is a table");
        lua_rawgeti(L, -1, 1);
        kind = lua_tostring(L, -1);
        lua_pop(L, 1);
        if (kind && strcmp(kind, "recode") == 0) {
            const char *encoding;
            char in = recode_delimiter(L, -1, "delimiter", ","), out = recode_delimiter(L, -1, "to", ",");
            lua_getfield(L, -1, "encoding");
            encoding = luaL_optstring(L, -1, "utf-8");
            luaL_argcheck(L, (!strcmp(encoding, "utf-8") || !strcmp(encoding, "cp1251")) && out, 2,
                          "args.stages: recode takes encoding \"utf-8\" or \"cp1251\", and a delimiter to");
            lua_getfield(L, -2, "size");
            rc = stage_add_recode(c, strcmp(encoding, "cp1251") == 0, in, out, (long long)luaL_optinteger(L, -1, -1));
            lua_pop(L, 2);
        } else if (kind && strcmp(kind, "check") == 0) {
            lua_getfield(L, -1, "plan");
            luaL_argcheck(L, lua_istable(L, -1), 2, "args.stages: check takes a plan");
            rc = stage_add_check(L, c, lua_gettop(L));
            lua_pop(L, 1);
        } else if (kind && strcmp(kind, "utf8") == 0) {
            rc = stage_add_utf8(c);
        } else if (kind && strcmp(kind, "journal") == 0) {
            rc = stage_add_journal(L, c, lua_gettop(L));
        } else {
            luaL_error(L, "args.stages: no stage %s", kind ? kind : "(unnamed)");
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

/* The body's chain: its source at idx, args.data (is_data: read from the
 * Lua string in place, args holds it), else args.source (a csvup.file) or
 * args.file (a path), streamed from the descriptor opened here; then
 * args.stages, then the counter that progress reads. what names it in
 * errors. 0, or nil, err pushed and 2. */
static int build_chain(lua_State *L, struct request *req, const struct endpoint *ep, int idx, int is_data,
                       const char *what)
{
    struct chain *c = &req->chain;
    struct stat st;
    long long source_size;
    if (is_data) {
        size_t len;
        const char *data = lua_tolstring(L, idx, &len);
        if (chain_add(c, stage_string(data, len)) < 0)
            return luaL_error(L, "out of memory");
        c->size = (long long)len;
    } else {
        if ((req->fd = open_file(L, req, idx, &st)) < 0)
            return 2;
        lua_pushvalue(L, idx); /* held while the request is: a callback may drop args.source */
        req->source_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        req->path = file_test(L, idx) ? file_path(file_test(L, idx)) : what;
        /* a file that says it is empty may not be (/proc): read to its end, as every check of it is */
        c->size = st.st_size ? (long long)st.st_size : file_measure(req->fd);
        if (c->size < 0)
            return csvup_fail(L, KIND_INPUT, "file_unreadable", "%s: reading the file failed", what);
        if (chain_add(c, stage_fd(req->fd, c->size, req->path, &st)) < 0)
            return luaL_error(L, "out of memory");
    }
    source_size = c->size;
    if (add_stages(L, req) < 0 || stage_add_counter(c, &req->handed) < 0)
        return csvup_fail(L, KIND_INPUT, c->failure.code, "%s: %s", what, c->failure.message);
    if (ep->max_file_size && c->size > ep->max_file_size)
        return too_large(L, ep, c->size != source_size ? "the converted file" : what, (int64_t)c->size);
    return 0;
}

/* The CSV goes in the part "file", from the end of the body's chain
 * (build_chain). The upload's timeout follows from the body's size. */
static int build_multipart(lua_State *L, struct request *req, const struct connection *conn,
                           const struct endpoint *ep)
{
    const char *file, *filename;
    curl_mimepart *part;
    int rc, data;
    lua_getfield(L, req->args, "source"); /* the file as opened once (csvup.file), else args.file */
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        lua_getfield(L, req->args, "file");
    }
    lua_getfield(L, req->args, "data");
    lua_getfield(L, req->args, "filename");
    file = file_test(L, -3) ? file_test(L, -3)->path : lua_tostring(L, -3);
    data = !lua_isnil(L, -2);
    if (!lua_isnil(L, -3) && lua_type(L, -3) != LUA_TSTRING && !file_test(L, -3))
        return luaL_error(L, "%s: args.file must be a path or a csvup.file", ep->name);
    if (data && lua_type(L, -2) != LUA_TSTRING)
        return luaL_error(L, "%s: args.data must be a string", ep->name);
    if (!file == !data)
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: give exactly one of file (a path) or data (CSV text)", ep->name);
    if (lua_isnil(L, -1)) {
        const char *slash = file ? strrchr(file, '/') : NULL;
        filename = slash ? slash + 1 : file ? file : "data.csv";
    } else if (!(filename = one_line(L, -1))) {
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: filename must be one line of text", ep->name);
    }
    if ((rc = build_chain(L, req, ep, data ? lua_gettop(L) - 1 : lua_gettop(L) - 2, data, file ? file : "data")))
        return rc;
    req->timeout_ms = upload_ceiling_ms(conn, (curl_off_t)req->chain.size);

    if (!(req->mime = curl_mime_init(conn->easy)))
        return luaL_error(L, "out of memory");
    if ((rc = add_fields(L, req, ep)))
        return rc;
    if (!(part = curl_mime_addpart(req->mime)) || curl_mime_name(part, "file") != CURLE_OK
        || curl_mime_data_cb(part, (curl_off_t)req->chain.size, body_read, body_seek, NULL, req) != CURLE_OK
        || curl_mime_filename(part, filename) != CURLE_OK || curl_mime_type(part, "text/csv") != CURLE_OK)
        return luaL_error(L, "out of memory");
    curl_easy_setopt(conn->easy, CURLOPT_MIMEPOST, req->mime);
    return 0;
}

static int build_json(lua_State *L, struct request *req, const struct connection *conn, const struct endpoint *ep)
{
    size_t len;
    const char *body;
    lua_getfield(L, req->args, "body");
    if (!(body = lua_tolstring(L, -1, &len)) || lua_type(L, -1) != LUA_TSTRING)
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: args.body must be a JSON string", ep->name);
    req->headers = curl_slist_append(req->headers, "Content-Type: application/json");
    curl_easy_setopt(conn->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    /* copied: a callback may drop args.body while the transfer runs */
    if (curl_easy_setopt(conn->easy, CURLOPT_COPYPOSTFIELDS, body) != CURLE_OK)
        return luaL_error(L, "out of memory");
    lua_pop(L, 1);
    return 0;
}

/* args.fields, URL-encoded (application/x-www-form-urlencoded, libcurl's default for a posted body). */
static int build_form(lua_State *L, struct request *req, const struct connection *conn)
{
    int rc;
    if ((rc = append_params(L, req, &req->form, "fields", "", "form field")))
        return rc;
    curl_easy_setopt(conn->easy, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->form.len);
    if (curl_easy_setopt(conn->easy, CURLOPT_COPYPOSTFIELDS, req->form.len ? req->form.data : "") != CURLE_OK)
        return luaL_error(L, "out of memory");
    return 0;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct request *req = arg;
    if (buffer_append(&req->body, data, size * nmemb) == 0)
        return size * nmemb;
    req->too_large = size * nmemb > req->body.limit - req->body.len;
    return 0;
}

/* The bytes of the file (converted, where it is) or of the data handed to
 * libcurl so far, and their total: what the user gave, not the multipart
 * body with its part headers. */
static void count_body(const struct request *req, curl_off_t *now, curl_off_t *total)
{
    if (req->chain.end) {
        *now = (curl_off_t)req->handed;
        *total = (curl_off_t)req->chain.size;
    }
}

/* Calls args.progress(sent, total) under lua_pcall, with the body's bytes
 * (count_body); an error stops the transfer, and so does a signal (checked
 * at least once a second). */
static int on_progress(void *arg, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct request *req = arg;
    lua_State *L = req->L;
    (void)dltotal;
    (void)dlnow;
    req->sent = ulnow;
    req->size = ultotal;
    if (stopped_by_signal(req))
        return 1;
    if (ultotal > 0)
        count_body(req, &ulnow, &ultotal);
    if (!req->progress || ultotal == 0 || ulnow == req->reported)
        return 0;
    req->reported = ulnow;
    lua_pushvalue(L, req->progress);
    lua_pushnumber(L, (lua_Number)ulnow);
    lua_pushnumber(L, (lua_Number)ultotal);
    if (lua_pcall(L, 2, 0, 0) != 0) {
        req->failed = lua_gettop(L);
        return 1;
    }
    return 0;
}

static const char *curl_code_name(CURLcode rc)
{
#define CURL_CODES(X) X(UNSUPPORTED_PROTOCOL) X(URL_MALFORMAT) X(COULDNT_RESOLVE_PROXY) \
    X(COULDNT_RESOLVE_HOST) X(COULDNT_CONNECT) X(WEIRD_SERVER_REPLY) X(PARTIAL_FILE) X(HTTP_RETURNED_ERROR) \
    X(WRITE_ERROR) X(UPLOAD_FAILED) X(READ_ERROR) X(OUT_OF_MEMORY) X(OPERATION_TIMEDOUT) X(HTTP_POST_ERROR) \
    X(SSL_CONNECT_ERROR) X(ABORTED_BY_CALLBACK) X(TOO_MANY_REDIRECTS) X(GOT_NOTHING) X(SEND_ERROR) \
    X(RECV_ERROR) X(SSL_CERTPROBLEM) X(SSL_CIPHER) X(PEER_FAILED_VERIFICATION) X(BAD_CONTENT_ENCODING) \
    X(FILESIZE_EXCEEDED) X(SEND_FAIL_REWIND) X(SSL_CACERT_BADFILE) X(SSL_SHUTDOWN_FAILED) X(AGAIN) \
    X(SSL_CRL_BADFILE) X(SSL_ISSUER_ERROR) X(HTTP2) X(HTTP2_STREAM) X(RECURSIVE_API_CALL) X(AUTH_ERROR) \
    X(HTTP3) X(QUIC_CONNECT_ERROR) X(PROXY) X(SSL_CLIENTCERT) X(UNRECOVERABLE_POLL)
#define CURL_CODE_CASE(name) case CURLE_##name: return #name;
    switch (rc) {
        CURL_CODES(CURL_CODE_CASE)
    default:
        return "CURL_ERROR";
    }
#undef CURL_CODE_CASE
#undef CURL_CODES
}

/* The answer's Retry-After in seconds, as libcurl reads it (a number of
 * seconds or an HTTP date), or nil when it has none (or one already past). */
static void push_retry_after(lua_State *L, CURL *easy)
{
    curl_off_t seconds = 0;
    if (curl_easy_getinfo(easy, CURLINFO_RETRY_AFTER, &seconds) == CURLE_OK && seconds > 0)
        lua_pushinteger(L, (lua_Integer)seconds);
    else
        lua_pushnil(L);
}

/* After a transfer failed: how much of the request body went out, so that the
 * caller can tell a request that surely was not processed from one that may have been. */
static void add_sent(lua_State *L, const struct request *req)
{
    curl_off_t sent = 0, size = -1, started = 0;
    if (req->attached) {
        curl_easy_getinfo(req->conn->easy, CURLINFO_SIZE_UPLOAD_T, &sent);
        curl_easy_getinfo(req->conn->easy, CURLINFO_CONTENT_LENGTH_UPLOAD_T, &size);
        curl_easy_getinfo(req->conn->easy, CURLINFO_PRETRANSFER_TIME_T, &started); /* 0: no request went out */
    }
    lua_pushnumber(L, (lua_Number)sent);
    lua_setfield(L, -2, "sent");
    if (size > 0) {
        lua_pushnumber(L, (lua_Number)size);
        lua_setfield(L, -2, "body_size");
    }
    if (started == 0 || size > 0) {
        lua_pushboolean(L, started != 0 && sent >= size);
        lua_setfield(L, -2, "request_sent");
    }
}

/* Sets the connection's handle up for the request in req->args; 0, or nil and
 * an error pushed (2) when the arguments are refused. Nothing is sent. */
int request_prepare(lua_State *L, struct request *req)
{
    struct connection *conn = req->conn;
    const struct endpoint *ep = &req->endpoint;
    CURL *e = conn->easy;
    int rc = 0;
    req->attached = 1;
    req->timeout_ms = conn->timeout_ms;
    connection_prepare(conn);
    buffer_puts(&req->url, conn->base_url);
    if ((rc = append_path(L, req, ep)) || (rc = append_params(L, req, &req->url, "query", "?", "query parameter")))
        return rc;
    if (strcmp(ep->method, "GET") != 0 && strcmp(ep->method, "POST") != 0)
        curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, ep->method);
    if (strcmp(ep->method, "GET") != 0) {
        /* libcurl silently re-sends a request whose reused connection closed
         * without an answer; a request that changes data must never be sent
         * twice unasked, so it gets a connection of its own. */
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    if (ep->body == BODY_MULTIPART) {
        /* HTTP/1.1: an upload has a connection of its own, so HTTP/2 gains it
         * nothing, and libcurl 7.88 spins on an HTTP/2 stream whose server
         * answered without reading the body until the transfer times out. */
        curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
        rc = build_multipart(L, req, conn, ep);
    }
    else if (ep->body == BODY_JSON)
        rc = build_json(L, req, conn, ep);
    else if (ep->body == BODY_FORM)
        rc = build_form(L, req, conn);
    else if (strcmp(ep->method, "POST") == 0) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
    }
    if (rc)
        return rc;
    req->headers = curl_slist_append(req->headers, conn->authorization);
    req->headers = curl_slist_append(req->headers, "Accept: application/json");
    if (!req->headers)
        return luaL_error(L, "out of memory");
    if (buffer_append(&req->url, "", 1) != 0)
        return csvup_fail(L, KIND_INPUT, "invalid_argument", "%s: the request URL is longer than %d KB", ep->name,
                          (int)(URL_LIMIT >> 10));
    curl_easy_setopt(e, CURLOPT_URL, req->url.data);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, req->headers);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, req->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, req);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    curl_easy_setopt(e, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(e, CURLOPT_XFERINFODATA, req);
    curl_easy_setopt(e, CURLOPT_NOPROGRESS, 0L);
    return 0;
}

/* nil and an error of a request that was stopped before anything was sent. */
static int fail_unsent(lua_State *L, enum error_kind kind, const char *code, const char *message)
{
    lua_pushnil(L);
    csvup_push_error(L, kind, code, message);
    lua_pushnumber(L, 0);
    lua_setfield(L, -2, "sent");
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "request_sent");
    return 2;
}

static int fail_interrupted(lua_State *L, int sent)
{
    char text[160];
    snprintf(text, sizeof text, "stopped by %s%s", signal_name() ? signal_name() : "a signal",
             sent ? "" : " before anything was sent");
    return sent ? csvup_fail(L, KIND_INTERNAL, "interrupted", "%s", text)
                : fail_unsent(L, KIND_INTERNAL, "interrupted", text);
}

int request_take_slot(lua_State *L, struct request *req)
{
    struct connection *conn = req->conn;
    int64_t started = clock_ms();
    long waited;
    char text[256], why[128];
    if (conn->parallel <= 0 || req->slot >= 0)
        return 0;
    req->slot = slots_acquire(conn->slots_dir, conn->slot_key, conn->parallel, req->timeout_ms);
    if (req->slot == SLOTS_INTERRUPTED)
        return fail_interrupted(L, 0);
    if (req->slot == SLOTS_BUSY) {
        snprintf(text, sizeof text, "%s: all %d parallel-request slots of this token stayed taken for %ld ms "
                 "(by other csvup processes of this user)", req->endpoint.name, conn->parallel, req->timeout_ms);
        return fail_unsent(L, KIND_NETWORK, "slot_timeout", text);
    }
    if (req->slot < 0) {
        snprintf(text, sizeof text, "%s: a lock file in %s cannot be opened: %s", req->endpoint.name, conn->slots_dir,
                 csvup_strerror(errno, why, sizeof why));
        return fail_unsent(L, KIND_INTERNAL, "slots_unavailable", text);
    }
    /* the wait counts against the call's timeout */
    waited = (long)(clock_ms() - started);
    curl_easy_setopt(conn->easy, CURLOPT_TIMEOUT_MS, req->timeout_ms > waited ? req->timeout_ms - waited : 1L);
    return 0;
}

int request_finish(lua_State *L, struct request *req, CURLcode rc)
{
    long status = 0;
    int n = 2;
    const char *failed = req->chain.failure.code;
    curl_easy_getinfo(req->conn->easy, CURLINFO_RESPONSE_CODE, &status);
    if (failed && strcmp(failed, "validation_failed") == 0 && chain_source_changed(&req->chain))
        failed = "file_changed"; /* cut mid-record by a change, say: not the file that was checked */
    if (req->interrupted) {
        fail_interrupted(L, 1);
    } else if (req->failed) {
        lua_pushnil(L);
        csvup_push_error(L, KIND_INTERNAL, "callback_error", describe(L, req->failed));
        lua_pushvalue(L, req->failed);
        lua_setfield(L, -2, "cause");
    } else if (failed && strcmp(failed, "validation_failed") == 0) {
        csvup_fail(L, KIND_INPUT, failed, "%s: %s; the upload was stopped before its end, so the service got no "
                   "complete request", req->endpoint.name, req->chain.failure.message);
    } else if (failed && strncmp(failed, "journal_", 8) == 0) { /* the gate's: see stage_journal.c */
        csvup_fail(L, KIND_INTERNAL, failed, "%s: %s; the upload was stopped before its end, so the service got "
                   "no complete request", req->endpoint.name, req->chain.failure.message);
    } else if (failed && strcmp(failed, "file_changed") == 0) {
        csvup_fail(L, KIND_INPUT, failed, "%s: the file changed while it was uploaded; the upload was stopped "
                   "before its end, so the service refuses what it got. Upload it again once it is complete",
                   req->endpoint.name);
    } else if (failed) {
        csvup_fail(L, KIND_INPUT, failed, "%s: reading the file failed: %s", req->endpoint.name,
                   req->chain.failure.message);
    } else if (req->too_large) {
        csvup_fail(L, KIND_API, "response_too_large", "the answer is larger than %d MB", RESPONSE_LIMIT >> 20);
    } else if (rc != CURLE_OK) {
        csvup_fail(L, KIND_NETWORK, curl_code_name(rc), "%s", *req->errbuf ? req->errbuf : curl_easy_strerror(rc));
    } else {
        lua_pushinteger(L, (lua_Integer)status);
        lua_pushlstring(L, req->body.data ? req->body.data : "", req->body.len);
        push_retry_after(L, req->conn->easy);
        n = 3;
    }
    if (n == 2)
        add_sent(L, req);
    request_release(req);
    return n;
}

/* The protected part of a call: (request, args, endpoint) on the stack. */
static int call_protected(lua_State *L)
{
    struct request *req = lua_touserdata(L, 1);
    int rc;
    req->args = 2;
    req->endpoint.table = 3;
    lua_getfield(L, 2, "progress");
    luaL_argcheck(L, lua_isnil(L, -1) || lua_isfunction(L, -1), 3, "args.progress must be a function");
    if (lua_isfunction(L, -1)) {
        req->progress = lua_gettop(L);
        luaL_checkstack(L, 4, "progress callback");
    }
    if ((rc = request_prepare(L, req)) || (rc = request_take_slot(L, req)))
        return rc;
    if (signal_caught())
        return fail_interrupted(L, 0);
    return request_finish(L, req, curl_easy_perform(req->conn->easy));
}

/* core.request(conn, endpoint, args) -> status, body, retry_after | nil, err.
 * The connection is busy while the call runs: its callbacks cannot use it
 * (busy), a close() is done at the end; and whatever happens, the request is
 * released. */
int request_call(lua_State *L)
{
    struct connection *conn = connection_check(L, 1);
    struct endpoint ep;
    struct request req;
    int rc, base;
    if (lua_isnoneornil(L, 3)) {
        lua_settop(L, 2);
        lua_newtable(L);
    }
    luaL_checktype(L, 3, LUA_TTABLE);
    lua_settop(L, 3);
    endpoint_read(L, 2, conn, &ep);
    if ((rc = connection_claim(L, conn, ep.name)))
        return rc;
    request_init(&req, L, conn, &ep, 0);
    base = lua_gettop(L);
    lua_pushcfunction(L, call_protected);
    lua_pushlightuserdata(L, &req);
    lua_pushvalue(L, 3);
    lua_pushvalue(L, 2);
    rc = lua_pcall(L, 3, LUA_MULTRET, 0);
    request_release(&req);
    connection_unclaim(conn);
    if (rc != 0)
        return lua_error(L);
    return lua_gettop(L) - base;
}

/* core.check_file(endpoint, path) -> true | nil, err: the checks an upload
 * makes before sending, for callers that read the file first (see request.h). */
int request_check_file(lua_State *L)
{
    struct endpoint ep;
    struct request req;
    struct stat st;
    int fd;
    endpoint_read(L, 1, NULL, &ep);
    luaL_argcheck(L, lua_type(L, 2) == LUA_TSTRING || file_test(L, 2), 2, "a path or a csvup.file");
    req.endpoint = ep;
    req.parked = NULL;
    if ((fd = open_file(L, &req, 2, &st)) < 0)
        return 2;
    close_file(&req, fd);
    lua_pushboolean(L, 1);
    return 1;
}
