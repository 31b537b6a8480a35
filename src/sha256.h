/* SHA-256 (FIPS 180-4), fed in pieces: the upload path hashes what it reads. */
#ifndef CSVUP_SHA256_H
#define CSVUP_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

#define SHA256_DIGEST 32
#define SHA256_HEX (2 * SHA256_DIGEST + 1)

struct sha256 {
    uint32_t state[8];
    uint64_t length; /* bytes fed so far */
    unsigned char block[64];
    size_t used; /* bytes waiting in block */
};

void sha256_init(struct sha256 *h);
void sha256_update(struct sha256 *h, const void *data, size_t len);
/* Writes the digest as 64 lowercase hex digits and a NUL. */
void sha256_final(struct sha256 *h, char hex[SHA256_HEX]);

/* core.sha256(s) -> hex */
int sha256_string(lua_State *L);
/* core.sha256_file(path) -> hex, size | nil, err */
int sha256_file(lua_State *L);

#endif
