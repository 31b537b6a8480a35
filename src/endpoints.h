/* The API endpoints csvup speaks: one descriptor a row. */
#ifndef CSVUP_ENDPOINTS_H
#define CSVUP_ENDPOINTS_H

#include <stddef.h>
#include <stdint.h>

enum body_kind {
    BODY_NONE,      /* no request body */
    BODY_MULTIPART, /* CSV in the part "file", plus form fields */
    BODY_JSON       /* args.body, sent as application/json */
};

struct service {
    const char *name;
    const char *base_url;     /* default, overridden by connection{ base_url } */
    const char *auth_scheme;  /* Authorization: <scheme> <token> */
    const char *common_query; /* query parameters every endpoint of the service takes */
    int parallel;             /* default limit of requests at once per token (0: none) */
};

struct endpoint {
    const char *name;
    int service;        /* index into csvup_services */
    const char *method;
    const char *path;   /* "{counter}" and "{id}" are path parameters */
    const char *query;  /* allowed query parameters, comma-separated, in URL order */
    enum body_kind body;
    int64_t max_file_size; /* bytes; 0 for no limit */
};

extern const struct service csvup_services[];
extern const size_t csvup_service_count;
extern const struct endpoint csvup_endpoints[];
extern const size_t csvup_endpoint_count;

/* The endpoint of that name, or NULL. */
const struct endpoint *endpoint_find(const char *name);

#endif
