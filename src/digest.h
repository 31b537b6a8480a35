/* SHA-256 from libcrypto (OpenSSL 3), fed in pieces: the journal's pass
 * hashes what it checks. */
#ifndef CSVUP_DIGEST_H
#define CSVUP_DIGEST_H

#include <pthread.h>
#include <stddef.h>

#include <openssl/evp.h>

#include "compat.h"

#define DIGEST_HEX 65 /* 64 lowercase hex digits and a NUL */

struct digest {
    EVP_MD_CTX *ctx;  /* NULL when not hashing */
    long long length; /* bytes fed so far */
};

/* 0, or -1 when libcrypto cannot start a hash (out of memory). */
int digest_init(struct digest *d);
void digest_update(struct digest *d, const void *data, size_t len);
/* Writes the digest as hex and frees what the hash holds. */
void digest_final(struct digest *d, char hex[DIGEST_HEX]);
/* Frees what the hash holds; safe to call again. */
void digest_free(struct digest *d);

/* A thread that hashes into d while its caller goes on (reads and checks
 * the next bytes): digest_give copies the bytes into one of two batches, and
 * hands a full one over to the thread while the caller fills the other.
 * Where no thread could start, or no copy be made, digest_give hashes at once. */
struct digest_batch {
    unsigned char *data;
    size_t len, cap;
    int ready; /* handed over, not hashed yet */
};

struct digest_thread {
    struct digest *d;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct digest_batch batch[2];
    int filling; /* the batch digest_give copies into */
    int running, stop;
};

void digest_thread_start(struct digest_thread *t, struct digest *d);
void digest_give(struct digest_thread *t, const void *data, size_t len);
/* Hashes what was given, ends the thread; safe to call again. */
void digest_thread_stop(struct digest_thread *t);

/* core.sha256(s) -> hex */
int digest_string(lua_State *L);
/* core.sha256_file(path | csvup.file) -> hex, size | nil, err */
int digest_file(lua_State *L);

#endif
