/* A connection: one libcurl easy handle, reused across calls for keep-alive. */
#ifndef CSVUP_CONNECTION_H
#define CSVUP_CONNECTION_H

#include <curl/curl.h>

#include "compat.h"

struct connection {
    CURL *easy;          /* NULL once closed */
    int service;         /* index into csvup_services */
    char *base_url;      /* without a trailing slash */
    char *authorization; /* the whole "Authorization: ..." header line */
    char *user_agent;
    char *ca_file;
    long timeout_ms, connect_timeout_ms;
    int insecure, verbose;
};

int connection_new(lua_State *L);
struct connection *connection_check(lua_State *L, int idx);
/* Resets the handle to the connection's own options, keeping live connections. */
void connection_prepare(struct connection *conn);
void connection_init(lua_State *L);

#endif
