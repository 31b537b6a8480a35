#include <stdlib.h>
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

#define BATCH (1 << 20) /* bytes handed over at a time: fewer wake-ups than one read each */

/* The thread: each batch as it is handed over, in turn, until stopped. */
static void *hash_given(void *arg)
{
    struct digest_thread *t = arg;
    int next = 0;
    pthread_mutex_lock(&t->lock);
    for (;;) {
        struct digest_batch *b = &t->batch[next];
        while (!b->ready && !t->stop)
            pthread_cond_wait(&t->cond, &t->lock);
        if (!b->ready)
            break;
        pthread_mutex_unlock(&t->lock);
        digest_update(t->d, b->data, b->len);
        pthread_mutex_lock(&t->lock);
        b->ready = 0;
        pthread_cond_broadcast(&t->cond);
        next ^= 1;
    }
    pthread_mutex_unlock(&t->lock);
    return NULL;
}

void digest_thread_start(struct digest_thread *t, struct digest *d)
{
    memset(t, 0, sizeof *t);
    t->d = d;
    if (pthread_mutex_init(&t->lock, NULL) != 0)
        return;
    if (pthread_cond_init(&t->cond, NULL) != 0) {
        pthread_mutex_destroy(&t->lock);
        return;
    }
    t->running = pthread_create(&t->thread, NULL, hash_given, t) == 0;
    if (!t->running) {
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
    }
}

/* Hands the batch being filled over (when it holds anything), and waits
 * until the other one is free to fill; with all, until both are hashed. */
static void hand_over(struct digest_thread *t, int all)
{
    struct digest_batch *b = &t->batch[t->filling];
    pthread_mutex_lock(&t->lock);
    if (b->len) {
        b->ready = 1;
        pthread_cond_broadcast(&t->cond);
        t->filling ^= 1;
    }
    while (t->batch[t->filling].ready || (all && t->batch[t->filling ^ 1].ready))
        pthread_cond_wait(&t->cond, &t->lock);
    pthread_mutex_unlock(&t->lock);
    t->batch[t->filling].len = 0;
}

void digest_give(struct digest_thread *t, const void *data, size_t len)
{
    struct digest_batch *b = &t->batch[t->filling];
    if (t->running && b->len + len > b->cap) {
        size_t cap = b->len + len > BATCH ? b->len + len : BATCH;
        unsigned char *grown = realloc(b->data, cap);
        if (grown) {
            b->data = grown;
            b->cap = cap;
        }
    }
    if (!t->running || b->len + len > b->cap) {
        if (t->running)
            hand_over(t, 1); /* in order: what was given before is hashed first */
        digest_update(t->d, data, len);
        return;
    }
    memcpy(b->data + b->len, data, len);
    b->len += len;
    if (b->len >= BATCH)
        hand_over(t, 0);
}

void digest_thread_stop(struct digest_thread *t)
{
    int i;
    if (t->running) {
        hand_over(t, 1);
        pthread_mutex_lock(&t->lock);
        t->stop = 1;
        pthread_cond_broadcast(&t->cond);
        pthread_mutex_unlock(&t->lock);
        pthread_join(t->thread, NULL);
        pthread_cond_destroy(&t->cond);
        pthread_mutex_destroy(&t->lock);
        t->running = 0;
    }
    for (i = 0; i < 2; i++) {
        free(t->batch[i].data);
        t->batch[i].data = NULL;
        t->batch[i].len = t->batch[i].cap = 0;
    }
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
