/* One call of an endpoint: arguments checked, the request built and sent. */
#ifndef CSVUP_REQUEST_H
#define CSVUP_REQUEST_H

#include <curl/curl.h>

#include "compat.h"
#include "connection.h"
#include "endpoints.h"

struct request;

/* A request userdata (pushed) for ep on conn, its arguments at stack index args. */
struct request *request_new(lua_State *L, struct connection *conn, const struct endpoint *ep, int args);
/* 0 when the handle is ready to transfer; else nil, err pushed and 2. */
int request_prepare(lua_State *L, struct request *req);
/* Pushes the outcome of a finished transfer: 3 values, or nil, err (2). */
int request_result(lua_State *L, struct request *req, CURLcode rc);
/* Frees what a request stopped before its end holds (its slot among them);
 * its connection's handle must be reset first. */
void request_abort(struct request *req);
/* Hands the request a parallel-request slot, released with its result. */
void request_set_slot(struct request *req, int slot);
/* Upload bytes sent so far and the body's size (0 until known). */
void request_progress(const struct request *req, curl_off_t *sent, curl_off_t *size);

/* The Lua function behind every endpoint; upvalue 1 is its row in csvup_endpoints. */
int request_call(lua_State *L);
int request_check_file(lua_State *L);
void request_init(lua_State *L);

#endif
