/* The upload journal: a SQLite file that records each upload before it is sent
 * and its uploading after, so that a rerun never sends the same bytes twice. */
#ifndef CSVUP_JOURNAL_H
#define CSVUP_JOURNAL_H

#include "compat.h"

/* core.journal_open(path) -> journal | nil, err */
int journal_open(lua_State *L);
/* core.journal_check(path) -> { finding, ... } | nil, err */
int journal_check_file(lua_State *L);
void journal_init(lua_State *L);

struct journal;
/* The key's text fields, in the order of the statements that find and record an entry. */
extern const char *const JOURNAL_KEY[8];
/* Whether each of them must be there (service, base_url, endpoint, hash). */
extern const int JOURNAL_KEY_REQUIRED[8];
#define JOURNAL_KEY_HASH 6
#define JOURNAL_KEY_FILE 7
/* The text (a string or a number) of field name of the table at t, left on
 * the stack, and its length; NULL when it is nil and not required. Raises
 * when it is anything else. */
const char *journal_text_arg(lua_State *L, int t, const char *name, int required, int *len);
/* The csvup.journal at idx, or NULL when it is something else. */
struct journal *journal_test(lua_State *L, int idx);
/* What j:begin decides for the key text[0..7] (service, base_url, account,
 * counter, endpoint, query, hash, file; len: their lengths) of size bytes,
 * for an upload that carries marker: "new" when it is recorded as started
 * by this process (or was, under the same marker), else "finished",
 * "started" (left as it is: the hash-first path takes it over and looks it
 * up) or "running" (what the journal holds answers for it: do not send it
 * now); NULL with *code (journal_busy, journal_failed) and message written
 * when the journal could not tell. */
const char *journal_gate(struct journal *j, const char *const *text, const int *len, long long size,
                         const char *marker, const char **code, char *message, size_t message_size);

#endif
