/* The CSV tokenizer: RFC 4180 records from a byte source, in bounded memory.
 * Quoted fields may hold delimiters, quotes ("") and line breaks; lines end
 * with LF or CRLF; a UTF-8 byte order mark is skipped. Line numbers count
 * every line break, those inside quotes included. */
#ifndef CSVUP_READER_H
#define CSVUP_READER_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "buffer.h"

#define READER_HEADER_LIMIT (64 * 1024)
#define READER_RECORD_LIMIT (4 * 1024 * 1024)

struct field {
    const char *data;
    size_t len;
};

/* Why reading stopped; code is NULL while there was no error. */
struct reader_error {
    const char *code; /* "malformed_csv", "invalid_utf8", "file_unreadable" */
    long long line, column; /* column: the byte of the line, 1-based; 0 when unknown */
    char message[160];
};

/* Fills buf with up to n bytes: the count, 0 at the end; -1 on an error,
 * with its message written to message (of `size` bytes). */
typedef long (*reader_source)(void *ctx, unsigned char *buf, size_t n, char *message, size_t size);

/* Reads a FILE* (the ctx) as a reader_source. */
long reader_file_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size);

struct reader {
    reader_source read;
    void *ctx;
    char delimiter;
    int check_utf8;      /* an invalid UTF-8 byte is an error */
    size_t limit;        /* the longest record now, in bytes: the header's, then record_limit */
    size_t record_limit;
    unsigned char special[256]; /* bytes that end an unquoted run */
    unsigned char *buf;
    size_t cap, start, end; /* unread bytes: buf[start, end) */
    long long offset;    /* the bytes of the source before buf[0] */
    int eof, started;
    long long line;      /* the line the next record starts on */
    long long record_line; /* the line of the record last read */
    int blank;           /* the record last read was an empty line */
    struct field *fields;
    size_t nfields, fields_cap;
    size_t *offsets;     /* during a parse: where each field starts, in buf or in scratch */
    unsigned char *in_scratch; /* whether a field's bytes are in scratch (it had "" escapes) */
    struct buffer scratch;
    struct reader_error error;
};

/* Starts reading from read(ctx, ...); delimiter 0 takes the most frequent
 * of , ; tab | in the first line. 0, or -1 with r->error set. */
int reader_open(struct reader *r, reader_source read, void *ctx, char delimiter, int check_utf8, size_t record_limit);
/* The next record into r->fields / r->nfields: 1, 0 at the end, -1 with r->error. */
int reader_next(struct reader *r);
/* Takes the first `bytes` unread bytes as read: `lines` records of one line
 * each, read and checked by the caller (see plan_pass). */
void reader_skip(struct reader *r, size_t bytes, long long lines);
/* Takes `bytes` more of the source, past the unread ones, as read by the
 * caller (`lines` records of one line each): the unread bytes are dropped,
 * and the next read of the source must start after those bytes. */
void reader_jump(struct reader *r, size_t bytes, long long lines);
/* The bytes of the source read so far, the unread ones not counted. */
long long reader_offset(const struct reader *r);
void reader_free(struct reader *r);

#endif
