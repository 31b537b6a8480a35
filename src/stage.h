/* The body of an upload as a chain: a source (a file's one descriptor, or a
 * string) and stages after it, each reading from the one before. libcurl
 * pulls from the end of the chain (see request.c):
 *
 *   source -> [recode] -> [check | utf8] -> [sha256 [-> journal]] -> counter -> libcurl
 *
 * A stage fills the buffer it is given as far as it can (never a record at
 * a time: libcurl sends what it gets), and stops the body with a failure the
 * request reports. */
#ifndef CSVUP_STAGE_H
#define CSVUP_STAGE_H

#include <stddef.h>
#include <sys/stat.h>

#include "compat.h"

/* Why a chain stopped. code is NULL while it did not: "file_changed" (the
 * file moved under the upload), "validation_failed" (a record failed its
 * check, or a byte was no UTF-8), "file_unreadable", or a reader's code
 * ("malformed_csv", ...) for a file that cannot be converted. The first
 * failure stands: a stage does not hide the one of the stage before it. */
struct stage_failure {
    const char *code;
    char message[200];
};

struct stage;

struct stage_ops {
    /* Up to n bytes into buf: the count, 0 at the end, -1 with the failure set. */
    long (*read)(struct stage *s, char *buf, size_t n);
    /* Back to the first byte (libcurl sends a body again from its start): 0 or -1. */
    int (*rewind)(struct stage *s);
    /* The checks at the end of the body (the file as it was opened): 0 or -1. */
    int (*finish)(struct stage *s);
    void (*free)(struct stage *s);
};

struct stage {
    const struct stage_ops *ops;
    struct stage *up;                /* the stage it reads from; NULL for a source */
    struct stage_failure *failure;   /* the chain's */
};

/* A source and its stages, and the bytes the end gives (the part's length). */
struct chain {
    struct stage *source, *end;
    struct stage_failure failure;
    long long size;
};

/* Records the failure unless one is already recorded; -1. */
int stage_fail(struct stage *s, const char *code, const char *fmt, ...)
#ifdef __GNUC__
    __attribute__((format(printf, 3, 4)))
#endif
    ;
/* The finish of a stage that checks nothing at the end: its upstream's. */
int stage_finish_up(struct stage *s);
/* Reads s as a reader_source (ctx: the stage), for a stage that parses its input. */
long stage_reader_source(void *ctx, unsigned char *buf, size_t n, char *message, size_t size);

/* Attaches s at the end of the chain, a source first: 0, or -1 with the
 * failure set when s is NULL (out of memory). */
int chain_add(struct chain *c, struct stage *s);
long chain_read(struct chain *c, char *buf, size_t n);
int chain_rewind(struct chain *c);
int chain_finish(struct chain *c);
/* Whether the source says its file changed since it was opened. */
int chain_source_changed(struct chain *c);
/* Frees every stage; safe to call again. */
void chain_free(struct chain *c);

/* The sources. The descriptor is not the stage's: it is read by pread from
 * offset 0 to size, and the finish is the change check (file_changed on fd,
 * path and st). The string is not copied: its owner keeps it alive. */
struct stage *stage_fd(int fd, long long size, const char *path, const struct stat *st);
struct stage *stage_string(const char *data, size_t len);

/* The stages; each that needs to read at once reads from c's end, where it
 * is added (0, or -1 with the failure set). */
/* The CSV converted to UTF-8 (from Windows-1251 with cp1251) and to the
 * delimiter out (in: the file's, 0 to read it from the header); c->size
 * becomes the bytes it gives: size, or read through once when -1. */
int stage_add_recode(struct chain *c, int cp1251, char in, char out, long long size);
/* Every record past the header checked by the plan at idx (csvup.validate's,
 * with its delimiter) as the bytes pass: only records that pass go on, so a
 * record that fails stops the body before its end. Reads the header now. */
int stage_add_check(lua_State *L, struct chain *c, int idx);
/* The bytes checked as UTF-8 without NUL, a character cut by a buffer checked whole. */
int stage_add_utf8(struct chain *c);
/* The bytes as they are, hashed (SHA-256, in a thread of its own) into hex,
 * and their count into *size (unless NULL), at the body's end: its finish,
 * or its end read through. */
int stage_add_sha256(struct chain *c, char *hex, long long *size);
/* The bytes as they are, counted since the start (*count: for progress). */
int stage_add_counter(struct chain *c, long long *count);
/* The journal's gate (the stage table at idx: { "journal", journal =
 * csvup.journal, key = { service, base_url, account?, counter?, endpoint,
 * query?, file? }, marker }): the bytes as they are, hashed in a thread; at
 * the end, before the last bytes go out, the upload is recorded as started
 * under its hash and marker, or the body stops there ("journal_holds") when
 * the journal holds it already, or "journal_failed". */
int stage_add_journal(lua_State *L, struct chain *c, int idx);

#endif
