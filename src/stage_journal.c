/* The journal's gate: after the SHA-256 tee (stage_tee.c), at the body's
 * end, before its last bytes go out, the upload recorded in the journal under
 * the tee's hash, or stopped there when the journal already holds it (sent
 * before, or being sent). A body stopped before its end is never a complete
 * request, so the service keeps nothing of it. */
#include <stdlib.h>
#include <string.h>

#include "digest.h"
#include "journal.h"
#include "stage.h"

struct journal_stage {
    struct stage s;
    struct journal *j;     /* anchored by args.stages while the request runs */
    char *key[8];          /* service, base_url, account, counter, endpoint, query, hash, file */
    int len[8];
    char *marker;
    char hash[DIGEST_HEX]; /* the tee's, at the end */
    long long size;        /* the bytes it hashed */
    int recorded;          /* the journal records this upload: an attempt again sends it whole */
};

static long gate_read(struct stage *s, char *buf, size_t n)
{
    return s->up->ops->read(s->up, buf, n);
}

static int gate_rewind(struct stage *s)
{
    return s->up->ops->rewind(s->up);
}

static int gate_finish(struct stage *s)
{
    struct journal_stage *g = (struct journal_stage *)s;
    char message[200];
    const char *outcome, *code;
    if (stage_finish_up(s) < 0) /* the tee's hash complete */
        return -1;
    if (g->recorded)
        return 0;
    g->key[JOURNAL_KEY_HASH] = g->hash;
    g->len[JOURNAL_KEY_HASH] = DIGEST_HEX - 1;
    outcome = journal_gate(g->j, (const char *const *)g->key, g->len, g->size, g->marker, &code, message,
                           sizeof message);
    if (!outcome)
        return stage_fail(s, code, "%s", message);
    if (strcmp(outcome, "new") != 0)
        return stage_fail(s, "journal_holds", "the journal holds this upload (%s)", outcome);
    g->recorded = 1;
    return 0;
}

static void gate_free(struct stage *s)
{
    struct journal_stage *g = (struct journal_stage *)s;
    int i;
    for (i = 0; i < 8; i++)
        if (i != JOURNAL_KEY_HASH)
            free(g->key[i]);
    free(g->marker);
    free(g);
}

static const struct stage_ops GATE_OPS = { gate_read, gate_rewind, gate_finish, gate_free };

static char *copy(const char *s, size_t len)
{
    char *c = malloc(len + 1);
    if (c) {
        memcpy(c, s, len);
        c[len] = '\0';
    }
    return c;
}

int stage_add_journal(lua_State *L, struct chain *c, int idx)
{
    struct journal_stage *g;
    const char *text[8] = { NULL };
    int len[8] = { 0 };
    size_t marker_len;
    const char *marker;
    int i, key, ok;
    lua_getfield(L, idx, "journal");
    luaL_argcheck(L, journal_test(L, -1) != NULL, 2, "args.stages: journal takes a csvup.journal");
    lua_getfield(L, idx, "marker");
    luaL_argcheck(L, lua_type(L, -1) == LUA_TSTRING, 2, "args.stages: journal takes the upload's marker");
    marker = lua_tolstring(L, -1, &marker_len);
    lua_getfield(L, idx, "key");
    luaL_argcheck(L, lua_istable(L, -1), 2, "args.stages: journal takes the upload's key");
    key = lua_gettop(L);
    for (i = 0; i < 8; i++) /* left on the stack while they are copied; the hash comes at the end */
        if (i != JOURNAL_KEY_HASH)
            text[i] = journal_text_arg(L, key, JOURNAL_KEY[i], JOURNAL_KEY_REQUIRED[i], &len[i]);
    if (!(g = calloc(1, sizeof *g)))
        return chain_add(c, NULL);
    g->s.ops = &GATE_OPS;
    g->j = journal_test(L, key - 2);
    ok = (g->marker = copy(marker, marker_len)) != NULL;
    for (i = 0; i < 8 && ok; i++) {
        if (i == JOURNAL_KEY_HASH || (i == JOURNAL_KEY_FILE && !text[i])) /* no file name is NULL */
            continue;
        ok = (g->key[i] = copy(text[i] ? text[i] : "", (size_t)len[i])) != NULL;
        g->len[i] = len[i];
    }
    lua_settop(L, key - 3);
    if (!ok || stage_add_sha256(c, g->hash, &g->size) < 0) {
        gate_free(&g->s);
        return chain_add(c, NULL);
    }
    return chain_add(c, &g->s);
}
