#include <string.h>

#include "digest.h"
#include "error.h"
#include "file.h"

#define CHUNK (1 << 18)

int digest_init(struct digest *d)
{
    d->length = 0;
    if (!(d->ctx = EVP_MD_CTX_new()))
        return -1;
    if (EVP_DigestInit_ex(d->ctx, EVP_sha256(), NULL) != 1) {
        digest_free(d);
        return -1;
    }
    return 0;
}

void digest_update(struct digest *d, const void *data, size_t len)
{
    EVP_DigestUpdate(d->ctx, data, len);
    d->length += (long long)len;
}

void digest_final(struct digest *d, char hex[DIGEST_HEX])
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0, i;
    EVP_DigestFinal_ex(d->ctx, md, &n);
    for (i = 0; i < n && i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[2 * i] = '\0';
    digest_free(d);
}

void digest_free(struct digest *d)
{
    EVP_MD_CTX_free(d->ctx);
    d->ctx = NULL;
}

int digest_string(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    struct digest d;
    char hex[DIGEST_HEX];
    if (digest_init(&d) != 0)
        return luaL_error(L, "out of memory");
    digest_update(&d, s, len);
    digest_final(&d, hex);
    lua_pushstring(L, hex);
    return 1;
}

int digest_file(lua_State *L)
{
    const char *name;
    struct digest d;
    char hex[DIGEST_HEX];
    unsigned char *buf;
    size_t n;
    FILE *f;
    lua_settop(L, 1);
    if (!(f = file_stream(L, 1, &name)))
        return 2;
    buf = lua_newuserdata(L, CHUNK); /* freed by the collector whatever happens */
    if (digest_init(&d) != 0) {
        fclose(f);
        return luaL_error(L, "out of memory");
    }
    while ((n = fread(buf, 1, CHUNK, f)) > 0)
        digest_update(&d, buf, n);
    if (ferror(f)) {
        fclose(f);
        digest_free(&d);
        return csvup_fail(L, KIND_INPUT, "file_unreadable", "%s: read error", name);
    }
    fclose(f);
    lua_pushinteger(L, (lua_Integer)d.length);
    digest_final(&d, hex);
    lua_pushstring(L, hex);
    lua_insert(L, -2);
    return 2;
}
