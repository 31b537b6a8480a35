/* One call of an endpoint, in three steps shared by the single-call path
 * (request_call) and the multi path (multi.c): request_prepare checks the
 * arguments and sets the connection's handle up, the caller performs the
 * transfer, request_finish pushes its outcome. request_release, the one
 * cleanup, runs on every path: after finish, after a refusal, on abort and
 * when a Lua error unwinds the call. */
#ifndef CSVUP_REQUEST_H
#define CSVUP_REQUEST_H

#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>

#include <curl/curl.h>

#include "buffer.h"
#include "compat.h"
#include "connection.h"
#include "file.h"
#include "stage.h"

enum body_kind {
    BODY_NONE,      /* no request body */
    BODY_MULTIPART, /* CSV in the part "file", plus form fields */
    BODY_JSON,      /* args.body, sent as application/json */
    BODY_FORM       /* args.fields, URL-encoded in the order of the endpoint's fields */
};

/* An endpoint as csvup.registry describes it, read from its Lua table for one
 * call (endpoint_read). name and method are copied: a callback may change the
 * table while the transfer runs. table is its stack index while the call is
 * prepared, for the path, query and fields. */
struct endpoint {
    char name[64];
    char method[8];
    int table;
    enum body_kind body;
    int64_t max_file_size; /* bytes of a multipart body's CSV; 0 for no limit */
};

struct request {
    lua_State *L;
    struct connection *conn;
    struct endpoint endpoint;
    int args;               /* stack index of the arguments */
    int attached;           /* the handle holds options pointing into this request */
    CURLM *multi;           /* the multi handle running the transfer, or NULL */
    curl_mime *mime;
    struct curl_slist *headers;
    struct buffer url, body, form;
    long timeout_ms;        /* of the transfer, decided by request_prepare */
    int fd;                 /* args.source or args.file, opened once, or -1 */
    const char *path;       /* its path, held by source_ref */
    int source_ref;         /* registry reference to args.source or args.file while the request holds it */
    struct file *parked;    /* args.source, parked: opened for this attempt only */
    struct chain chain;     /* the multipart body: its source and stages (see stage.h) */
    long long handed;       /* bytes handed to libcurl since the chain's start, by its counter (progress) */
    int progress;           /* stack index of args.progress, or 0 */
    int failed;             /* stack index of a callback's error, or 0 */
    int interrupted;        /* a signal stopped the transfer */
    int too_large;          /* the answer passed the response limit */
    curl_off_t reported;    /* bytes sent at the last progress call, -1 before it */
    int slot;               /* descriptor holding a parallel-request slot, or -1 */
    curl_off_t sent, size;  /* upload progress, for a batch's overall progress */
    char errbuf[CURL_ERROR_SIZE];
};

/* Reads the endpoint table at idx into ep, raising an error for one that is
 * malformed or not of the connection's service. */
void endpoint_read(lua_State *L, int idx, const struct connection *conn, struct endpoint *ep);
/* ep: the endpoint read, copied into the request. */
void request_init(struct request *req, lua_State *L, struct connection *conn, const struct endpoint *ep, int args);
/* 0 when the handle is ready to transfer; else nil, err pushed and 2. */
int request_prepare(lua_State *L, struct request *req);
/* Takes a parallel-request slot unless one is held or none is needed, waiting
 * at most the transfer's timeout: 0, or nil, err pushed and 2. */
int request_take_slot(lua_State *L, struct request *req);
/* Pushes the outcome of a finished (or stopped) transfer, status, body,
 * retry_after (3: seconds, or nil) or nil, err (2), then releases the request. */
int request_finish(lua_State *L, struct request *req, CURLcode rc);
/* Gives back all a request holds and resets the connection's handle; safe to
 * call again. */
void request_release(struct request *req);

/* core.request(conn, endpoint, args) -> status, body, retry_after | nil, err:
 * one call of the endpoint csvup.registry describes. */
int request_call(lua_State *L);
/* core.check_file(endpoint, path | csvup.file) -> true | nil, err: whether
 * the file can be uploaded to the endpoint (a csvup.file: and is as it was
 * opened). The upload itself refuses a csvup.file that changed since it was
 * opened: args.source. */
int request_check_file(lua_State *L);

#endif
