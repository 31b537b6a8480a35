/* A connection: one libcurl easy handle, reused across calls for keep-alive. */
#ifndef CSVUP_CONNECTION_H
#define CSVUP_CONNECTION_H

#include <stdint.h>

#include <curl/curl.h>

#include "compat.h"

struct connection {
    CURL *easy;          /* NULL once closed */
    int service;         /* index into csvup_services */
    char *base_url;      /* without a trailing slash */
    char *authorization; /* the whole "Authorization: ..." header line */
    char *user_agent;
    char *ca_file;
    long timeout_ms;        /* calls without an upload body */
    long upload_timeout_ms; /* uploads: 0, no limit, by default */
    long connect_timeout_ms;
    long low_speed_limit, low_speed_time; /* abort below limit bytes/s for time seconds */
    int insecure, verbose;
    int parallel;           /* requests at once per token (0: no limit) */
    uint64_t slot_key;
};

int connection_new(lua_State *L);
struct connection *connection_check(lua_State *L, int idx);
/* Resets the handle to the connection's own options, keeping live connections. */
void connection_prepare(struct connection *conn);
void connection_init(lua_State *L);

#endif
