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
#include "stage.h"

struct recode {
    char *path;            /* for errors: the stream is read from its one descriptor, never reopened */
    int cp1251;            /* the file is Windows-1251 */
    char in_delimiter;     /* 0: the most frequent of , ; tab | in the header */
    char out_delimiter;
    FILE *f;               /* the file, for core.recoder */
    struct stage *up;      /* or the stage before it in an upload's chain (see stage.h) */
    struct cp1251_source decoder;
    struct reader r;
    struct buffer out;     /* encoded, not yet handed out: out.data[pos, out.len) */
    size_t pos;
    int done;
    int encoded;           /* a record was encoded since the start */
    long long produced;    /* bytes handed out since the start */
    long long size;        /* the bytes of the whole recoded file, as the check measured them; -1 unknown */
};

/* Reads up to n bytes of the recoded file into buf: the count, 0 at the end,
 * -1 on an error (rc->r.error says which). */
long recode_read(struct recode *rc, char *buf, size_t n);
/* Back to the first byte (libcurl rewinds a body it sends again): 0 or -1. */
int recode_rewind(struct recode *rc);
/* The bytes the whole recoded file has (the size given, or read through once), rewound; or -1. */
long long recode_total(struct recode *rc);

/* The bytes recode_read gives for the record the reader r holds (read from
 * the file as the recoder reads it); first: it is the first record written. */
long long recode_measure_record(const struct reader *r, char out, int first);
/* The bytes recode_read gives for the whole records in s[0, n), read from
 * the file with the delimiter in as the recoder reads it, past its first
 * record: the converted size, measured by the pass that checks the file. */
long long recode_measure(const unsigned char *s, size_t n, char in, char out);

/* The delimiter named by field name of the options table at idx: one byte,
 * or 0 for "auto"; fallback when it is nil. Raises for another. */
char recode_delimiter(lua_State *L, int idx, const char *name, const char *fallback);
/* core.recoder(path | csvup.file, { encoding = "utf-8" | "cp1251", delimiter = "," | "auto" | ..., to = ",", size? })
 *   -> recoder | nil, err; recoder:size() -> bytes | nil, err, recoder:read(n) -> text | nil */
int recode_new(lua_State *L);
/* The recoder userdata at idx. */
struct recode *recode_check(lua_State *L, int idx);
void recode_init(lua_State *L);

#endif
