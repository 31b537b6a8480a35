#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "clock.h"
#include "connection.h"
#include "error.h"
#include "multi.h"
#include "request.h"
#include "signals.h"
#include "slots.h"

#define POLL_MS 100

/* The connections of one core.multi call, the multi handle that drives them,
 * and the request running on each (entry 0: the connection is idle). */
struct pool {
    CURLM *multi;
    int nconns;
    struct connection **conns;
    struct request *requests;
    lua_Integer *entry;
    curl_off_t done_sent, done_size; /* upload bytes of the finished entries */
    long interval_ms;      /* between two starts (a client's rate), or 0 */
    int64_t next_start;    /* the monotonic ms before which nothing starts */
};

/* Stack slots of the protected part. */
enum { POOL = 1, CONNS, ENTRIES, PROGRESS, RESULTS, ANCHORS };

/* results[i] = { status, body, retry_after } or { nil, err }: the n values on top, popped. */
static void store_result(lua_State *L, lua_Integer i, int n)
{
    int k;
    lua_createtable(L, n, 0);
    for (k = 1; k <= n; k++) {
        lua_pushvalue(L, -(n - k + 2));
        lua_rawseti(L, -2, k);
    }
    lua_rawseti(L, RESULTS, (int)i);
    lua_pop(L, n);
}

static void finish(lua_State *L, struct pool *p, int c, CURLcode rc)
{
    struct request *req = &p->requests[c];
    p->done_sent += req->sent;
    p->done_size += req->size;
    store_result(L, p->entry[c], request_finish(L, req, rc));
    p->entry[c] = 0;
    lua_pushnil(L);
    lua_rawseti(L, ANCHORS, c + 1);
}

/* Starts entry i on connection c, which holds slot (or -1); false when it was
 * refused before sending (its result is stored then). */
static int start(lua_State *L, struct pool *p, int c, lua_Integer i, int slot)
{
    struct request *req = &p->requests[c];
    struct endpoint ep;
    int top = lua_gettop(L), n;
    lua_rawgeti(L, ENTRIES, (int)i);
    luaL_argcheck(L, lua_istable(L, -1), 2, "each entry must be { endpoint = table, args = table }");
    lua_getfield(L, -1, "endpoint");
    luaL_argcheck(L, lua_istable(L, -1), 2, "each entry's endpoint must be a table of csvup.registry");
    endpoint_read(L, -1, p->conns[c], &ep);
    lua_getfield(L, -2, "args");
    luaL_argcheck(L, lua_istable(L, -1), 2, "each entry's args must be a table");
    request_init(req, L, p->conns[c], &ep, lua_gettop(L));
    req->slot = slot;
    p->entry[c] = i;
    if ((n = request_prepare(L, req)) != 0 || (n = request_take_slot(L, req)) != 0) {
        request_release(req);
        p->entry[c] = 0;
        store_result(L, i, n);
        lua_settop(L, top);
        return 0;
    }
    lua_getfield(L, req->args, "data"); /* read in place while the transfer runs */
    lua_rawseti(L, ANCHORS, c + 1);
    req->multi = p->multi;
    curl_multi_add_handle(p->multi, p->conns[c]->easy);
    lua_settop(L, top);
    return 1;
}

/* Calls progress(sent, total, done, count) under lua_pcall; false when it
 * raised, its error then on top. */
static int report(lua_State *L, struct pool *p, lua_Integer count, lua_Integer done)
{
    curl_off_t sent = p->done_sent, size = p->done_size;
    int c;
    if (lua_isnil(L, PROGRESS))
        return 1;
    for (c = 0; c < p->nconns; c++) {
        if (p->entry[c]) {
            sent += p->requests[c].sent;
            size += p->requests[c].size;
        }
    }
    lua_pushvalue(L, PROGRESS);
    lua_pushnumber(L, (lua_Number)sent);
    lua_pushnumber(L, (lua_Number)size);
    lua_pushinteger(L, done);
    lua_pushinteger(L, count);
    return lua_pcall(L, 4, 0, 0) == 0;
}

/* Stops every running transfer: its result says why (the error at cause, or a
 * signal), with how much of it was sent. Returns nil and the batch's error,
 * which carries the results so far. */
static int stop_all(lua_State *L, struct pool *p, int cause)
{
    int c;
    for (c = 0; c < p->nconns; c++) {
        if (p->entry[c]) {
            if (cause)
                p->requests[c].failed = cause;
            else
                p->requests[c].interrupted = 1;
            finish(L, p, c, CURLE_ABORTED_BY_CALLBACK);
        }
    }
    lua_pushnil(L);
    if (cause)
        csvup_push_error(L, KIND_INTERNAL, "callback_error", lua_tostring(L, cause) ? lua_tostring(L, cause)
                                                                                   : "progress raised");
    else
        csvup_push_error(L, KIND_INTERNAL, "interrupted", signal_name() ? signal_name() : "interrupted");
    lua_pushvalue(L, RESULTS);
    lua_setfield(L, -2, "results");
    return 2;
}

/* The next parallel-request slot for connection c: a descriptor, -1 when it
 * needs none or request_take_slot must wait for one, SLOTS_BUSY when one of
 * ours will free one. */
static int next_slot(const struct pool *p, int c, int active)
{
    const struct connection *conn = p->conns[c];
    int slot;
    if (conn->parallel <= 0)
        return -1;
    slot = slots_try_acquire(conn->slots_dir, conn->slot_key, conn->parallel);
    if (slot == SLOTS_BUSY && active == 0)
        return -1; /* all held by other processes: request_take_slot waits, within the timeout */
    return slot;
}

static int run_protected(lua_State *L)
{
    struct pool *p = lua_touserdata(L, POOL);
    lua_Integer count = (lua_Integer)lua_rawlen(L, ENTRIES), next = 1, done = 0;
    int c, still = 0, active = 0;
    lua_settop(L, PROGRESS);
    lua_createtable(L, (int)count, 0); /* RESULTS */
    lua_createtable(L, p->nconns, 0);  /* ANCHORS: what each running request reads in place */
    luaL_checkstack(L, 16, "batch");
    while (done < count) {
        CURLMsg *msg;
        int queued, finished = 0, usable = 0;
        if (signal_caught())
            return stop_all(L, p, 0);
        /* start what the free connections and the parallel-request slots allow */
        for (c = 0; c < p->nconns && next <= count; c++) {
            int slot;
            if (p->entry[c] || p->conns[c]->close_pending)
                continue;
            usable++;
            if (p->interval_ms && clock_ms() < p->next_start)
                break; /* the rate allows no start yet */
            if ((slot = next_slot(p, c, active)) == SLOTS_BUSY)
                break;
            if (start(L, p, c, next++, slot))
                active++;
            else
                done++;
            p->next_start = clock_ms() + p->interval_ms;
        }
        if (!usable && active == 0) { /* a callback closed every connection */
            for (; next <= count; next++, done++)
                store_result(L, next, csvup_fail(L, KIND_INPUT, "closed", "the batch's connections were closed"));
            break;
        }
        curl_multi_perform(p->multi, &still);
        while ((msg = curl_multi_info_read(p->multi, &queued))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (c = 0; c < p->nconns && p->conns[c]->easy != msg->easy_handle; c++)
                ;
            finish(L, p, c, msg->data.result);
            active--;
            done++;
            finished++;
        }
        if (!report(L, p, count, done))
            return stop_all(L, p, lua_gettop(L));
        if (active > 0 && !finished) { /* a freed connection starts the next entry first */
            curl_multi_poll(p->multi, NULL, 0, POLL_MS, NULL);
        } else if (next <= count && p->interval_ms) { /* until the rate allows the next start */
            int64_t wait = p->next_start - clock_ms();
            if (wait > 0)
                curl_multi_poll(p->multi, NULL, 0, (int)(wait < POLL_MS ? wait : POLL_MS), NULL);
        }
    }
    lua_pushvalue(L, RESULTS);
    return 1;
}

static void pool_free(struct pool *p)
{
    int c;
    for (c = 0; c < p->nconns; c++) {
        if (p->requests && p->entry[c])
            request_release(&p->requests[c]);
        if (p->conns[c])
            connection_unclaim(p->conns[c]);
    }
    if (p->multi)
        curl_multi_cleanup(p->multi);
    free(p->conns);
    free(p->requests);
    free(p->entry);
}

/* core.multi(conns, entries, progress?, { interval = seconds }?) -> results | nil, err
 * entries[i] = { endpoint = name, args = {...} } run at most #conns at a time,
 * each on a free connection; results[i] = { status, body, retry_after } or
 * { nil, err }, in the order of entries. A raising progress or a signal stops
 * the batch: nil, err with err.results, where a stopped entry's error says
 * how much of it was sent and an entry never started has no result. The
 * connections are busy until the call returns. */
int multi_run(lua_State *L)
{
    struct pool p;
    int c, rc;
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_checktype(L, 2, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3))
        luaL_checktype(L, 3, LUA_TFUNCTION);
    memset(&p, 0, sizeof p);
    if (!lua_isnoneornil(L, 4)) {
        lua_Number interval;
        luaL_checktype(L, 4, LUA_TTABLE);
        lua_getfield(L, 4, "interval");
        interval = luaL_optnumber(L, -1, 0);
        luaL_argcheck(L, interval >= 0 && interval <= 3600, 4, "interval must be from 0 to 3600 seconds");
        p.interval_ms = (long)(interval * 1000);
    }
    lua_settop(L, 3);
    p.nconns = (int)lua_rawlen(L, 1);
    luaL_argcheck(L, p.nconns > 0, 1, "at least one connection");
    lua_createtable(L, p.nconns, 0); /* a copy: a callback emptying conns cannot free one in use */
    for (c = 0; c < p.nconns; c++) {
        lua_rawgeti(L, 1, c + 1);
        connection_check(L, -1);
        lua_rawseti(L, -2, c + 1);
    }
    lua_replace(L, 1);
    p.conns = calloc((size_t)p.nconns, sizeof *p.conns);
    p.requests = calloc((size_t)p.nconns, sizeof *p.requests);
    p.entry = calloc((size_t)p.nconns, sizeof *p.entry);
    p.multi = curl_multi_init();
    if (!p.conns || !p.requests || !p.entry || !p.multi) {
        pool_free(&p);
        return luaL_error(L, "out of memory");
    }
    for (c = 0; c < p.nconns; c++) {
        lua_rawgeti(L, 1, c + 1);
        p.conns[c] = lua_touserdata(L, -1);
        lua_pop(L, 1);
        if ((rc = connection_claim(L, p.conns[c], "a connection of the batch"))) {
            p.conns[c] = NULL;
            pool_free(&p);
            return rc;
        }
    }
    lua_pushcfunction(L, run_protected);
    lua_pushlightuserdata(L, &p);
    lua_pushvalue(L, 1);
    lua_pushvalue(L, 2);
    lua_pushvalue(L, 3);
    rc = lua_pcall(L, 4, LUA_MULTRET, 0);
    pool_free(&p);
    if (rc != 0)
        return lua_error(L);
    return lua_gettop(L) - 3;
}
