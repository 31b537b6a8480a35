#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "connection.h"
#include "endpoints.h"
#include "error.h"
#include "multi.h"
#include "request.h"
#include "slots.h"

#define MULTI_MT "csvup.multi"
#define POLL_MS 100

/* The multi handle and which entry each connection runs (0: idle). A userdata,
 * so that a Lua error anywhere cleans it up. */
struct batch {
    CURLM *multi;
    int nconns;
    struct connection **conns;
    lua_Integer *running; /* entry index per connection */
};

/* Takes every running transfer off the multi handle and out of its request. */
static void stop_all(struct batch *b)
{
    int c;
    for (c = 0; c < b->nconns; c++) {
        if (b->running[c] && b->conns[c]->easy) {
            curl_multi_remove_handle(b->multi, b->conns[c]->easy);
            curl_easy_reset(b->conns[c]->easy);
        }
        b->running[c] = 0;
    }
}

static int batch_gc(lua_State *L)
{
    struct batch *b = luaL_checkudata(L, 1, MULTI_MT);
    if (b->running)
        stop_all(b);
    if (b->multi)
        curl_multi_cleanup(b->multi);
    free(b->conns);
    free(b->running);
    memset(b, 0, sizeof *b);
    return 0;
}

/* results[i] = { status, body, headers } or { nil, err }: the n values on top, popped. */
static void store_result(lua_State *L, int results, lua_Integer i, int n)
{
    int k;
    lua_createtable(L, n, 0);
    for (k = 1; k <= n; k++) {
        lua_pushvalue(L, -(n - k + 2));
        lua_rawseti(L, -2, k);
    }
    lua_rawseti(L, results, (int)i);
    lua_pop(L, n);
}

/* Starts entry i on connection c; false when it was refused before sending
 * (its result is stored then). */
static int start(lua_State *L, struct batch *b, int c, lua_Integer i, int entries, int anchors, int results, int slot)
{
    const struct endpoint *ep;
    struct request *req;
    int top = lua_gettop(L), n;
    lua_rawgeti(L, entries, (int)i);
    luaL_argcheck(L, lua_istable(L, -1), 2, "each entry must be { endpoint = name, args = table }");
    lua_getfield(L, -1, "endpoint");
    ep = endpoint_find(lua_tostring(L, -1));
    if (!ep || ep->service != b->conns[c]->service)
        return luaL_error(L, "entry %d: no %s endpoint named %s", (int)i, csvup_services[b->conns[c]->service].name,
                          lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_getfield(L, -2, "args");
    luaL_argcheck(L, lua_istable(L, -1), 2, "each entry's args must be a table");
    req = request_new(L, b->conns[c], ep, lua_gettop(L));
    lua_pushvalue(L, -1);
    lua_rawseti(L, anchors, (int)i);
    if ((n = request_prepare(L, req)) != 0) {
        slots_release(slot);
        store_result(L, results, i, n);
        lua_settop(L, top);
        return 0;
    }
    request_set_slot(req, slot);
    curl_multi_add_handle(b->multi, b->conns[c]->easy);
    b->running[c] = i;
    lua_settop(L, top);
    return 1;
}

/* Calls progress(sent, total, done, count) under lua_pcall; false when it raised. */
static int report(lua_State *L, int progress, int anchors, lua_Integer count, lua_Integer done)
{
    curl_off_t sent_all = 0, size_all = 0, sent, size;
    lua_Integer i;
    if (!progress)
        return 1;
    for (i = 1; i <= count; i++) {
        lua_rawgeti(L, anchors, (int)i);
        if (lua_touserdata(L, -1)) {
            request_progress(lua_touserdata(L, -1), &sent, &size);
            sent_all += sent;
            size_all += size;
        }
        lua_pop(L, 1);
    }
    lua_pushvalue(L, progress);
    lua_pushnumber(L, (lua_Number)sent_all);
    lua_pushnumber(L, (lua_Number)size_all);
    lua_pushinteger(L, done);
    lua_pushinteger(L, count);
    return lua_pcall(L, 4, 0, 0) == 0;
}

/* core.multi(conns, entries, progress?) -> results | nil, err
 * entries[i] = { endpoint = name, args = {...} } run at most #conns at a time,
 * each on a free connection; results[i] = { status, body, headers } or
 * { nil, err }, in the order of entries. A raising progress stops the batch. */
int multi_run(lua_State *L)
{
    const int conns = 1, entries = 2, results = 4, anchors = 5;
    int progress = 0, c, still = 0, active = 0;
    lua_Integer count, next = 1, done = 0;
    struct batch *b;
    luaL_checktype(L, conns, LUA_TTABLE);
    luaL_checktype(L, entries, LUA_TTABLE);
    if (!lua_isnoneornil(L, 3)) {
        luaL_checktype(L, 3, LUA_TFUNCTION);
        progress = 3;
    }
    lua_settop(L, 3);
    count = (lua_Integer)lua_rawlen(L, entries);
    lua_createtable(L, (int)count, 0); /* results */
    lua_createtable(L, (int)count, 0); /* anchors: the request userdata of each entry */
    b = lua_newuserdata(L, sizeof *b);
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, MULTI_MT);
    lua_setmetatable(L, -2);
    b->nconns = (int)lua_rawlen(L, conns);
    luaL_argcheck(L, b->nconns > 0, 1, "at least one connection");
    b->conns = calloc((size_t)b->nconns, sizeof *b->conns);
    b->running = calloc((size_t)b->nconns, sizeof *b->running);
    b->multi = curl_multi_init();
    if (!b->conns || !b->running || !b->multi)
        return luaL_error(L, "out of memory");
    for (c = 0; c < b->nconns; c++) {
        lua_rawgeti(L, conns, c + 1);
        b->conns[c] = connection_check(L, -1);
        lua_pop(L, 1);
        if (!b->conns[c]->easy)
            return csvup_fail(L, "closed", "a connection of the batch is closed");
    }
    luaL_checkstack(L, 16, "batch");

    while (done < count) {
        CURLMsg *msg;
        int queued, finished = 0;
        /* start what the free connections and the parallel-request slots allow */
        for (c = 0; c < b->nconns && next <= count; c++) {
            struct connection *conn = b->conns[c];
            int slot = -1;
            if (b->running[c])
                continue;
            if (conn->parallel > 0) {
                slot = slots_try_acquire(conn->slot_key, conn->parallel);
                if (slot == SLOTS_BUSY && active == 0)
                    slot = slots_acquire(conn->slot_key, conn->parallel); /* all held by other processes */
                if (slot == SLOTS_BUSY)
                    break; /* one of ours will free a slot */
            }
            if (start(L, b, c, next++, entries, anchors, results, slot))
                active++;
            else
                done++;
        }
        curl_multi_perform(b->multi, &still);
        while ((msg = curl_multi_info_read(b->multi, &queued))) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            for (c = 0; c < b->nconns && b->conns[c]->easy != msg->easy_handle; c++)
                ;
            curl_multi_remove_handle(b->multi, msg->easy_handle);
            lua_rawgeti(L, anchors, (int)b->running[c]);
            store_result(L, results, b->running[c], request_result(L, lua_touserdata(L, -1), msg->data.result));
            lua_pop(L, 1);
            b->running[c] = 0;
            active--;
            done++;
            finished++;
        }
        if (!report(L, progress, anchors, count, done)) {
            lua_Integer *stopped = lua_newuserdata(L, sizeof *stopped * (size_t)b->nconns);
            memcpy(stopped, b->running, sizeof *stopped * (size_t)b->nconns);
            stop_all(b);
            for (c = 0; c < b->nconns; c++) { /* their parallel-request slots too, now rather than at collection */
                if (stopped[c]) {
                    lua_rawgeti(L, anchors, (int)stopped[c]);
                    request_abort(lua_touserdata(L, -1));
                    lua_pop(L, 1);
                }
            }
            lua_pop(L, 1);
            lua_pushnil(L);
            csvup_push_error(L, "callback_error", lua_tostring(L, -2) ? lua_tostring(L, -2) : "progress raised");
            return 2; /* __gc of the batch stops what still runs */
        }
        if (active > 0 && !finished) /* a freed connection starts the next entry first */
            curl_multi_poll(b->multi, NULL, 0, POLL_MS, NULL);
    }
    lua_pushvalue(L, results);
    return 1;
}

void multi_init(lua_State *L)
{
    if (luaL_newmetatable(L, MULTI_MT)) {
        lua_pushcfunction(L, batch_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
}
