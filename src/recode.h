/* A CSV file read back in the form a service documents: UTF-8, and a
 * delimiter of the service's choosing; produced as it is sent, in bounded
 * memory, never into a temporary copy. */
#ifndef CSVUP_RECODE_H
#define CSVUP_RECODE_H

#include <stddef.h>
#include <stdio.h>

#include "buffer.h"
#include "compat.h"
#include "cp1251.h"
#include "reader.h"

struct recode {
    char *path;            /* for errors: the stream is read from its one descriptor, never reopened */
    int cp1251;            /* the file is Windows-1251 */
    char in_delimiter;     /* 0: the most frequent of , ; tab | in the header */
    char out_delimiter;
    FILE *f;
    struct cp1251_source decoder;
    struct reader r;
    struct buffer out;     /* encoded, not yet handed out: out.data[pos, out.len) */
    size_t pos;
    int done;
    int encoded;           /* a record was encoded since the start */
    long long produced;    /* bytes handed out since the start */
};

/* Reads up to n bytes of the recoded file into buf: the count, 0 at the end,
 * -1 on an error (rc->r.error says which). */
long recode_read(struct recode *rc, char *buf, size_t n);
/* Back to the first byte (libcurl rewinds a body it sends again): 0 or -1. */
int recode_rewind(struct recode *rc);
/* The bytes the whole recoded file has (read through once, then rewound), or -1. */
long long recode_total(struct recode *rc);

/* core.recoder(path | csvup.file, { encoding = "utf-8" | "cp1251", delimiter = "," | "auto" | ..., to = "," })
 *   -> recoder | nil, err; recoder:size() -> bytes | nil, err, recoder:read(n) -> text | nil */
int recode_new(lua_State *L);
/* The recoder userdata at idx. */
struct recode *recode_check(lua_State *L, int idx);
void recode_init(lua_State *L);

#endif
