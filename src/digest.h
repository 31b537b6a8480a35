/* SHA-256 from libcrypto (OpenSSL 3), fed in pieces: the journal's pass
 * hashes what it checks. */
#ifndef CSVUP_DIGEST_H
#define CSVUP_DIGEST_H

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

/* core.sha256(s) -> hex */
int digest_string(lua_State *L);
/* core.sha256_file(path | csvup.file) -> hex, size | nil, err */
int digest_file(lua_State *L);

#endif
