/* A connection: one libcurl easy handle, reused across calls for keep-alive. */
#ifndef CSVUP_CONNECTION_H
#define CSVUP_CONNECTION_H

#include <stdint.h>

#include <curl/curl.h>

#include "compat.h"

/* The services a connection speaks to; what each endpoint is lives in Lua
 * (csvup.registry): here only the address, the authorization and the limit
 * of requests at once that every connection of a service starts from. */
struct service {
    const char *name;
    const char *base_url;     /* default, overridden by connection{ base_url } */
    const char *auth_scheme;  /* Authorization: <scheme> <token> */
    int parallel;             /* default limit of requests at once per token (0: none) */
};

extern const struct service csvup_services[];
extern const size_t csvup_service_count;

struct connection {
    CURL *easy;          /* NULL once closed */
    int service;         /* index into csvup_services */
    char *base_url;      /* without a trailing slash */
    char *authorization; /* the whole "Authorization: ..." header line, wiped when freed */
    char *user_agent;
    char *ca_file;
    long timeout_ms;        /* calls without an upload body */
    long upload_timeout_ms; /* uploads; 0: derived from the body's size (request.c) */
    long connect_timeout_ms;
    long low_speed_limit, low_speed_time; /* abort below limit bytes/s for time seconds */
    int insecure, verbose;
    int parallel;           /* requests at once per token (0: no limit) */
    char *slots_dir;        /* the private directory of the slots' lock files */
    uint64_t slot_key;      /* names the token's lock files in it */
    int busy;               /* a call or a batch runs on it: callbacks may not use it */
    int close_pending;      /* close() came while busy: done when the call ends */
};

int connection_new(lua_State *L);
struct connection *connection_check(lua_State *L, int idx);
/* Marks the connection busy for a call; 0, or nil and an error ("closed",
 * "busy") pushed and 2. what names the call in the message. */
int connection_claim(lua_State *L, struct connection *conn, const char *what);
/* Ends the call's claim; a close() asked for meanwhile happens now. */
void connection_unclaim(struct connection *conn);
/* Sets the connection's own options on its handle, which is fresh or reset. */
void connection_prepare(struct connection *conn);
void connection_init(lua_State *L);

#endif
