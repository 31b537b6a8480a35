#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "clock.h"
#include "connection.h"
#include "error.h"
#include "journal.h"

#define JOURNAL_MT "csvup.journal"
/* How long open, or any one call, waits in all for another process's write to end. */
#define BUSY_TIMEOUT_MS 10000
/* How long open's check of the file may take: past it a large journal is used unchecked. */
#define CHECK_TIMEOUT_MS 2000

/* At most one live row ("started" or "finished") per key: the unique index is
 * what makes begin() decide once for processes racing on the same upload.
 * Rows that failed or were replaced by a forced send stay as history. The key
 * names where the upload went (base_url) and for whom (account), so that a
 * rehearsal against a sandbox or another account's upload never answers for it. */
static const char SCHEMA[] =
    "CREATE TABLE IF NOT EXISTS uploads ("
    " id INTEGER PRIMARY KEY,"
    " service TEXT NOT NULL, counter TEXT NOT NULL, endpoint TEXT NOT NULL,"
    " query TEXT NOT NULL, hash TEXT NOT NULL, file TEXT, size INTEGER,"
    " state TEXT NOT NULL CHECK (state IN ('started', 'finished', 'failed', 'replaced')),"
    " uploading TEXT, uploading_id TEXT, status TEXT, error TEXT,"
    " pid INTEGER, host TEXT, pid_start INTEGER," /* the process sending it */
    " created INTEGER NOT NULL, updated INTEGER NOT NULL,"
    " base_url TEXT NOT NULL DEFAULT '', account TEXT NOT NULL DEFAULT '',"
    " sending INTEGER NOT NULL DEFAULT 0," /* sending: 1 while its process sends it */
    " steps TEXT," /* steps: JSON, what a multi-step upload's next step needs */
    " marker TEXT);"; /* the marker its uploading carries, where it was chosen before the hash was known */

/* A journal written before the key held base_url, account and sending.
 * Where its entries went is not recorded: they are taken as sent to the
 * service's own address, for which a cron job most likely made them. Taking
 * them as sent elsewhere would send each last upload once more after the
 * upgrade, silently; this way a rehearsal made before it at worst stops the
 * first real upload of the same file, saying so ("force" sends it). The
 * index keeps its name, so that an older csvup's CREATE ... IF NOT EXISTS
 * leaves this one in place. */
static const char MIGRATE[] =
    "ALTER TABLE uploads ADD COLUMN base_url TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE uploads ADD COLUMN account TEXT NOT NULL DEFAULT '';"
    "ALTER TABLE uploads ADD COLUMN sending INTEGER NOT NULL DEFAULT 0;"
    "DROP INDEX IF EXISTS uploads_live;";
static const char MIGRATE_STEPS[] = "ALTER TABLE uploads ADD COLUMN steps TEXT";
static const char MIGRATE_MARKER[] = "ALTER TABLE uploads ADD COLUMN marker TEXT";
static const char MIGRATE_BASE_URL[] = "UPDATE uploads SET base_url = ?2 WHERE base_url = '' AND service = ?1";

static const char INDEX[] =
    "CREATE UNIQUE INDEX IF NOT EXISTS uploads_live"
    " ON uploads (service, base_url, account, counter, endpoint, query, hash)"
    " WHERE state IN ('started', 'finished');";

/* What an entry shows; a counter and an account are '' in the key when there is none. */
#define COLUMNS "id, service, base_url, nullif(account, '') AS account," \
                " nullif(counter, '') AS counter, endpoint, query, hash, file, size, state," \
                " uploading, uploading_id, status, error, pid, created, updated, steps, marker"

enum {
    S_BEGIN, S_COMMIT, S_ROLLBACK, S_FIND, S_INSERT, S_REPLACE, S_TAKE, S_FINISH, S_FAIL, S_RELEASE, S_GET, S_LIST,
    S_HOLDS, S_MARKED, STATEMENTS
};

static const char *const SQL[STATEMENTS] = {
    [S_BEGIN] = "BEGIN IMMEDIATE",
    [S_COMMIT] = "COMMIT",
    [S_ROLLBACK] = "ROLLBACK",
    [S_FIND] = "SELECT id, state, pid, host, pid_start, sending, marker FROM uploads WHERE service = ?1 AND base_url = ?2"
               " AND account = ?3 AND counter = ?4 AND endpoint = ?5 AND query = ?6 AND hash = ?7"
               " AND state IN ('started', 'finished')",
    [S_INSERT] = "INSERT INTO uploads (service, base_url, account, counter, endpoint, query, hash, file, size, state,"
                 " pid, host, pid_start, created, updated, sending, marker)"
                 " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 'started', ?10, ?11, ?12, ?13, ?13, 1, ?14)",
    [S_REPLACE] = "UPDATE uploads SET state = 'replaced', updated = ?2 WHERE id = ?1",
    [S_TAKE] = "UPDATE uploads SET pid = ?2, host = ?3, pid_start = ?4, updated = ?5, sending = 1 WHERE id = ?1",
    [S_FINISH] = "UPDATE uploads SET state = CASE state WHEN 'started' THEN 'finished' ELSE state END,"
                 " uploading = coalesce(?2, uploading), uploading_id = coalesce(?3, uploading_id),"
                 " status = coalesce(?4, status), updated = ?5, sending = 0, steps = coalesce(?6, steps) WHERE id = ?1",
    [S_FAIL] = "UPDATE uploads SET state = 'failed', error = ?2, updated = ?3, sending = 0"
               " WHERE id = ?1 AND state = 'started'",
    [S_RELEASE] = "UPDATE uploads SET sending = 0 WHERE id = ?1",
    [S_GET] = "SELECT " COLUMNS " FROM uploads WHERE id = ?1",
    [S_LIST] = "SELECT " COLUMNS " FROM uploads ORDER BY id DESC LIMIT ?1",
    /* a live entry of the key whose file had this size, or an unknown one */
    [S_HOLDS] = "SELECT 1 FROM uploads WHERE service = ?1 AND base_url = ?2 AND account = ?3 AND counter = ?4"
                " AND endpoint = ?5 AND query = ?6 AND (size = ?7 OR size IS NULL)"
                " AND state IN ('started', 'finished') LIMIT 1",
    [S_MARKED] = "SELECT " COLUMNS " FROM uploads WHERE marker = ?1 ORDER BY id DESC LIMIT 1",
};

struct journal {
    sqlite3 *db; /* NULL once closed */
    int readonly; /* opened read-only: it can answer a finished upload, not record one */
    char *path;   /* for messages */
    sqlite3_stmt *stmt[STATEMENTS];
    int64_t deadline; /* ms on the monotonic clock: when the call running gives up on a lock */
};

/* A process, as recorded beside the upload it sends: the pid alone could be
 * another program's by now, its start time (in clock ticks since boot) tells. */
struct owner {
    sqlite3_int64 pid, start;
    char host[256];
};

/* Journal errors carry a kind: "input" when the path cannot hold a journal,
 * "internal" for what SQLite reports afterwards. */
static int journal_error(lua_State *L, enum error_kind kind, const char *code, const char *fmt, ...)
{
    va_list ap;
    const char *message;
    va_start(ap, fmt);
    message = lua_pushvfstring(L, fmt, ap);
    va_end(ap);
    csvup_fail(L, kind, code, "%s", message);
    lua_remove(L, -3);
    return 2;
}

static struct journal *journal_check(lua_State *L)
{
    return luaL_checkudata(L, 1, JOURNAL_MT);
}

/* Runs a statement that returns no rows; SQLITE_DONE becomes SQLITE_OK. */
static int run(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Sets the deadline of a call (or of open) that is starting. */
static void start_call(struct journal *j)
{
    j->deadline = clock_ms() + BUSY_TIMEOUT_MS;
}

/* The busy handler: short sleeps while the call's deadline is ahead. SQLite's
 * busy timeout would start over for every statement, and a call runs several. */
static int busy_wait(void *arg, int count)
{
    const struct journal *j = arg;
    int64_t left = j->deadline - clock_ms(), pause = count < 20 ? count + 1 : 20;
    if (left <= 0)
        return 0;
    sqlite3_sleep((int)(pause < left ? pause : left));
    return 1;
}

/* SQLite's error rc while doing `where`, as a message and its code:
 * journal_busy when another process kept the lock past the deadline, else code. */
static const char *db_failure(sqlite3 *db, int rc, const char *where, const char *code, char *message, size_t size)
{
    if (rc == SQLITE_BUSY || rc == SQLITE_LOCKED) {
        snprintf(message, size, "%s: another process kept it locked for %d s (%s)", where, BUSY_TIMEOUT_MS / 1000,
                 sqlite3_errmsg(db));
        return "journal_busy";
    }
    snprintf(message, size, "%s: %s", where, sqlite3_errmsg(db));
    return code;
}

/* nil, err for SQLite's error rc in `where`, the string on top of the stack
 * (it is removed): db_failure's, of `kind` unless the journal was busy. */
static int db_error(lua_State *L, sqlite3 *db, int rc, enum error_kind kind, const char *code)
{
    char message[PATH_MAX + 512];
    const char *failed = db_failure(db, rc, lua_tostring(L, -1), code, message, sizeof message);
    journal_error(L, failed == code ? kind : KIND_INTERNAL, failed, "%s", message);
    lua_remove(L, -3);
    return 2;
}

/* Reports SQLite's error, rolling back the transaction if one is open. */
static int sqlite_fail(lua_State *L, struct journal *j, const char *what)
{
    lua_pushfstring(L, "journal %s: %s", j->path, what);
    db_error(L, j->db, sqlite3_errcode(j->db), KIND_INTERNAL, "journal_failed");
    if (!sqlite3_get_autocommit(j->db))
        run(j->stmt[S_ROLLBACK]);
    return 2;
}

static int journal_close(lua_State *L)
{
    struct journal *j = journal_check(L);
    int i;
    for (i = 0; i < STATEMENTS; i++) {
        sqlite3_finalize(j->stmt[i]);
        j->stmt[i] = NULL;
    }
    sqlite3_close_v2(j->db);
    j->db = NULL;
    free(j->path);
    j->path = NULL;
    return 0;
}

static int journal_tostring(lua_State *L)
{
    lua_pushstring(L, journal_check(L)->db ? "csvup.journal" : "csvup.journal (closed)");
    return 1;
}

/* The start time of a process from /proc (0 where there is none). */
static sqlite3_int64 process_start(sqlite3_int64 pid)
{
    char path[64], line[1024], *p;
    long long start = 0;
    size_t n;
    int field;
    FILE *f;
    snprintf(path, sizeof path, "/proc/%lld/stat", (long long)pid);
    if (!(f = fopen(path, "r")))
        return 0;
    n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    /* the name in parentheses may hold spaces: fields count from the last ')';
     * the start time is field 22, the state after ')' is field 3 */
    if (!(p = strrchr(line, ')')))
        return 0;
    for (field = 2; field < 21 && p; field++)
        p = strchr(p + 1, ' ');
    if (p)
        start = strtoll(p + 1, NULL, 10);
    return start;
}

static void owner_self(struct owner *o)
{
    o->pid = (sqlite3_int64)getpid();
    o->start = process_start(o->pid);
    if (gethostname(o->host, sizeof o->host) != 0)
        o->host[0] = '\0';
    o->host[sizeof o->host - 1] = '\0';
}

/* Whether the row find is on was started by this very process. */
static int owner_is_self(sqlite3_stmt *find, const struct owner *self)
{
    const char *host = (const char *)sqlite3_column_text(find, 3);
    return host && strcmp(host, self->host) == 0 && sqlite3_column_int64(find, 2) == self->pid
        && sqlite3_column_int64(find, 4) == self->start;
}

/* Whether the process that started an upload may still be sending it. One on
 * another machine (a journal on a shared disk) cannot be seen: it counts as alive. */
static int owner_alive(sqlite3_stmt *find, const struct owner *self)
{
    sqlite3_int64 pid = sqlite3_column_int64(find, 2), start = sqlite3_column_int64(find, 4);
    const char *host = (const char *)sqlite3_column_text(find, 3);
    if (!host || strcmp(host, self->host) != 0)
        return 1;
    if (pid <= 0 || (kill((pid_t)pid, 0) != 0 && errno != EPERM))
        return 0;
    return start == 0 || process_start(pid) == start;
}

/* A text field of an argument table, left on the stack so that it lives on
 * while SQLite reads it; NULL when absent and optional. Numbers count as text. */
const char *journal_text_arg(lua_State *L, int t, const char *name, int required, int *len)
{
    size_t n;
    const char *s;
    lua_getfield(L, t, name);
    if (lua_isnil(L, -1) && !required) {
        *len = 0;
        return NULL;
    }
    if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "journal: '%s' must be a string", name);
    s = lua_tolstring(L, -1, &n);
    *len = n > 0x7fffffff ? 0x7fffffff : (int)n;
    return s;
}

static void bind_text(sqlite3_stmt *stmt, int i, const char *s, int len)
{
    if (s)
        sqlite3_bind_text(stmt, i, s, len, SQLITE_STATIC);
    else
        sqlite3_bind_null(stmt, i);
}

/* Pushes the current row as a table named by its columns; NULLs are left out. */
static void push_row(lua_State *L, sqlite3_stmt *stmt)
{
    int i, n = sqlite3_column_count(stmt);
    lua_createtable(L, 0, n);
    for (i = 0; i < n; i++) {
        switch (sqlite3_column_type(stmt, i)) {
        case SQLITE_INTEGER:
            lua_pushinteger(L, (lua_Integer)sqlite3_column_int64(stmt, i));
            break;
        case SQLITE_TEXT:
            lua_pushlstring(L, (const char *)sqlite3_column_text(stmt, i), (size_t)sqlite3_column_bytes(stmt, i));
            break;
        default:
            continue;
        }
        lua_setfield(L, -2, sqlite3_column_name(stmt, i));
    }
}

/* Pushes entry id, with state set to what begin() decided. */
static int push_entry(lua_State *L, struct journal *j, sqlite3_int64 id, const char *state)
{
    sqlite3_stmt *get = j->stmt[S_GET];
    int rc;
    sqlite3_bind_int64(get, 1, id);
    if ((rc = sqlite3_step(get)) == SQLITE_ROW) {
        push_row(L, get);
        lua_pushstring(L, state);
        lua_setfield(L, -2, "state");
    }
    sqlite3_reset(get);
    return rc == SQLITE_ROW ? SQLITE_OK : rc == SQLITE_DONE ? SQLITE_NOTFOUND : rc;
}

/* begin() on a journal opened read-only: a finished upload is answered from
 * it; any other cannot be recorded before it is sent, so it is not sent. */
static int begin_readonly(lua_State *L, struct journal *j, const char *const *text, const int *len, int force)
{
    sqlite3_stmt *find = j->stmt[S_FIND];
    sqlite3_int64 id = 0;
    int i, rc;
    for (i = 0; i < 7; i++)
        bind_text(find, i + 1, text[i], len[i]);
    if ((rc = sqlite3_step(find)) == SQLITE_ROW && !force
        && strcmp((const char *)sqlite3_column_text(find, 1), "finished") == 0)
        id = sqlite3_column_int64(find, 0);
    sqlite3_reset(find);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sqlite_fail(L, j, "find");
    if (!id)
        return journal_error(L, KIND_INPUT, "journal_readonly", "journal %s can be read but not written (a "
                             "read-only or full file system?): this upload cannot be recorded, so it was not sent. "
                             "Free the disk or make the journal writable, or send without the journal", j->path);
    if (push_entry(L, j, id, "finished") != SQLITE_OK)
        return sqlite_fail(L, j, "read");
    return 1;
}

/* What begin decided for a key. */
struct decision {
    const char *outcome; /* "new", "finished", "started" or "running" */
    sqlite3_int64 id;
    int this_process;
    const char *failed;  /* what SQLite failed to do, or NULL */
};

/* Finds the live entry of the key (text[0..6]) and decides, in one
 * transaction: a new entry started by this process, the one found taken over
 * when its sender is gone (only where take is set: the gate, which does not
 * send what it finds, leaves it to the look-up that follows), or that one as
 * it is. An entry found under marker, when one is given, is this process's
 * own (an earlier attempt of the same send): "new". 0, or -1 with d->failed
 * set and nothing changed. */
static int decide(struct journal *j, const char *const *text, const int *len, int64_t size, int force,
                  const char *marker, int take, struct decision *d)
{
    struct owner self;
    sqlite3_stmt *find = j->stmt[S_FIND], *insert = j->stmt[S_INSERT];
    sqlite3_int64 now = (sqlite3_int64)time(NULL);
    int i, rc;
    d->outcome = "new";
    d->id = 0;
    d->this_process = 0;
    d->failed = NULL;
    owner_self(&self);
    if (!sqlite3_get_autocommit(j->db)) /* left open by an error thrown while pushing an entry */
        run(j->stmt[S_ROLLBACK]);
    if (run(j->stmt[S_BEGIN]) != SQLITE_OK) {
        d->failed = "begin";
        return -1;
    }
    for (i = 0; i < 7; i++)
        bind_text(find, i + 1, text[i], len[i]);
    if ((rc = sqlite3_step(find)) == SQLITE_ROW) {
        const char *mark = (const char *)sqlite3_column_text(find, 6);
        d->id = sqlite3_column_int64(find, 0);
        if (force)
            d->outcome = "new";
        else if (marker && mark && strcmp(mark, marker) == 0 && owner_is_self(find, &self)) /* this send's own */
            d->outcome = "new";
        else if (strcmp((const char *)sqlite3_column_text(find, 1), "finished") == 0)
            d->outcome = "finished";
        else if (!sqlite3_column_int(find, 5)) /* released: its outcome unknown, no process sends it */
            d->outcome = "started";
        else if (owner_is_self(find, &self)) { /* waiting for this process would never end */
            d->outcome = "running";
            d->this_process = 1;
        } else
            d->outcome = owner_alive(find, &self) ? "running" : "started";
    }
    sqlite3_reset(find);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        d->failed = "find";
    else if (d->id && force) {
        sqlite3_bind_int64(j->stmt[S_REPLACE], 1, d->id);
        sqlite3_bind_int64(j->stmt[S_REPLACE], 2, now);
        if (run(j->stmt[S_REPLACE]) != SQLITE_OK)
            d->failed = "replace";
        d->id = 0;
    }
    if (d->failed) {
        /* nothing more: rolled back below */
    } else if (strcmp(d->outcome, "started") == 0) {
        if (take) {
            sqlite3_stmt *take_over = j->stmt[S_TAKE];
            sqlite3_bind_int64(take_over, 1, d->id);
            sqlite3_bind_int64(take_over, 2, self.pid);
            sqlite3_bind_text(take_over, 3, self.host, -1, SQLITE_STATIC);
            sqlite3_bind_int64(take_over, 4, self.start);
            sqlite3_bind_int64(take_over, 5, now);
            if (run(take_over) != SQLITE_OK)
                d->failed = "take over";
        }
    } else if (!d->id) {
        for (i = 0; i < 8; i++)
            bind_text(insert, i + 1, text[i], len[i]);
        if (size >= 0)
            sqlite3_bind_int64(insert, 9, (sqlite3_int64)size);
        else
            sqlite3_bind_null(insert, 9);
        sqlite3_bind_int64(insert, 10, self.pid);
        sqlite3_bind_text(insert, 11, self.host, -1, SQLITE_STATIC);
        sqlite3_bind_int64(insert, 12, self.start);
        sqlite3_bind_int64(insert, 13, now);
        bind_text(insert, 14, marker, -1);
        if (run(insert) != SQLITE_OK)
            d->failed = "insert";
        d->id = sqlite3_last_insert_rowid(j->db);
    }
    if (!d->failed && run(j->stmt[S_COMMIT]) != SQLITE_OK)
        d->failed = "commit";
    if (d->failed && !sqlite3_get_autocommit(j->db))
        run(j->stmt[S_ROLLBACK]);
    return d->failed ? -1 : 0;
}

const char *const JOURNAL_KEY[8] = { "service", "base_url", "account", "counter", "endpoint", "query", "hash",
                                     "file" };
const int JOURNAL_KEY_REQUIRED[8] = { 1, 1, 0, 0, 1, 0, 1, 0 };

/* j:begin{ service, base_url, account?, counter?, endpoint, query?, hash, file?, size?, force?, marker? }
 * -> entry | nil, err
 * entry.state: "new" (recorded as started: send it), "finished" (sent before: entry.uploading),
 * "started" (its sender died, or released it with its outcome unknown: now
 * the caller's, look for it before sending) or "running" (a live process,
 * entry.pid, is sending it: do not send; entry.this_process when it is this one).
 * marker: the one the upload carries, recorded with a new entry. */
static int journal_begin(lua_State *L)
{
    struct journal *j = journal_check(L);
    const char *text[8], *marker;
    int len[8], i, force, marker_len;
    int64_t size = -1;
    struct decision d;

    luaL_checktype(L, 2, LUA_TTABLE);
    for (i = 0; i < 8; i++)
        text[i] = journal_text_arg(L, 2, JOURNAL_KEY[i], JOURNAL_KEY_REQUIRED[i], &len[i]);
    marker = journal_text_arg(L, 2, "marker", 0, &marker_len);
    luaL_argcheck(L, len[1] > 0, 2, "base_url must name where the upload goes");
    lua_getfield(L, 2, "size");
    luaL_argcheck(L, lua_isnil(L, -1) || csvup_tointeger(L, -1, &size), 2, "size must be an integer");
    lua_getfield(L, 2, "force");
    force = lua_toboolean(L, -1);
    if (!j->db)
        return journal_error(L, KIND_INTERNAL, "closed", "the journal is closed");
    for (i = 0; i < 7; i++) /* the key's optional parts (account, counter, query) are '' when absent */
        if (!text[i])
            text[i] = "";
    start_call(j);
    if (j->readonly)
        return begin_readonly(L, j, text, len, force);
    if (decide(j, text, len, size, force, marker, 1, &d) != 0)
        return sqlite_fail(L, j, d.failed);
    if (push_entry(L, j, d.id, d.outcome) != SQLITE_OK)
        return sqlite_fail(L, j, "read");
    if (d.this_process) {
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "this_process");
    }
    return 1;
}

const char *journal_gate(struct journal *j, const char *const *text, const int *len, long long size,
                         const char *marker, const char **code, char *message, size_t message_size)
{
    struct decision d;
    char where[PATH_MAX + 64];
    *code = "journal_failed";
    if (!j->db || j->readonly) {
        snprintf(message, message_size, "the journal is %s", j->db ? "read-only" : "closed");
        return NULL;
    }
    start_call(j);
    if (decide(j, text, len, (int64_t)size, 0, marker, 0, &d) != 0) {
        snprintf(where, sizeof where, "journal %s: %s", j->path, d.failed);
        *code = db_failure(j->db, sqlite3_errcode(j->db), where, *code, message, message_size);
        return NULL;
    }
    return d.outcome;
}

struct journal *journal_test(lua_State *L, int idx)
{
    return luaL_testudata(L, idx, JOURNAL_MT);
}

/* j:holds{ service, base_url, account?, counter?, endpoint, query?, size } -> bool | nil, err:
 * whether a live entry of the key is of a file of that size (or of an
 * unknown one), so that its hash must be known before anything is sent. A
 * journal that can only be read holds everything: nothing is sent unrecorded. */
static int journal_holds(lua_State *L)
{
    struct journal *j = journal_check(L);
    sqlite3_stmt *holds = j->stmt[S_HOLDS];
    const char *text[6];
    int len[6], i, rc;
    int64_t size = -1;
    luaL_checktype(L, 2, LUA_TTABLE);
    for (i = 0; i < 6; i++)
        if (!(text[i] = journal_text_arg(L, 2, JOURNAL_KEY[i], 0, &len[i])))
            text[i] = "";
    lua_getfield(L, 2, "size");
    luaL_argcheck(L, csvup_tointeger(L, -1, &size), 2, "size must be an integer");
    if (!j->db)
        return journal_error(L, KIND_INTERNAL, "closed", "the journal is closed");
    if (j->readonly) {
        lua_pushboolean(L, 1);
        return 1;
    }
    start_call(j);
    for (i = 0; i < 6; i++)
        bind_text(holds, i + 1, text[i], len[i]);
    sqlite3_bind_int64(holds, 7, (sqlite3_int64)size);
    rc = sqlite3_step(holds);
    sqlite3_reset(holds);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sqlite_fail(L, j, "find");
    lua_pushboolean(L, rc == SQLITE_ROW);
    return 1;
}

/* j:marked(marker) -> entry | nil (none) | nil, err: the newest entry recorded under the marker. */
static int journal_marked(lua_State *L)
{
    struct journal *j = journal_check(L);
    sqlite3_stmt *marked = j->stmt[S_MARKED];
    const char *marker = luaL_checkstring(L, 2);
    int rc;
    if (!j->db)
        return journal_error(L, KIND_INTERNAL, "closed", "the journal is closed");
    start_call(j);
    sqlite3_bind_text(marked, 1, marker, -1, SQLITE_STATIC);
    if ((rc = sqlite3_step(marked)) == SQLITE_ROW)
        push_row(L, marked);
    else
        lua_pushnil(L);
    sqlite3_reset(marked);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return sqlite_fail(L, j, "read");
    return 1;
}

static sqlite3_int64 id_arg(lua_State *L)
{
    int64_t id = 0;
    luaL_argcheck(L, csvup_tointeger(L, 2, &id), 2, "an entry id (integer) expected");
    return (sqlite3_int64)id;
}

/* j:finish(id, { uploading = json_text?, uploading_id?, status?, steps = json_text? }) -> true | nil, err
 * Marks a started entry finished; on a finished one, updates what is given. */
static int journal_finish(lua_State *L)
{
    static const char *const key[] = { "uploading", "uploading_id", "status", "steps" };
    struct journal *j = journal_check(L);
    sqlite3_int64 id = id_arg(L);
    sqlite3_stmt *finish = j->stmt[S_FINISH];
    const char *text[4];
    int len[4], i;
    luaL_checktype(L, 3, LUA_TTABLE);
    for (i = 0; i < 4; i++)
        text[i] = journal_text_arg(L, 3, key[i], 0, &len[i]);
    if (!j->db)
        return journal_error(L, KIND_INTERNAL, "closed", "the journal is closed");
    start_call(j);
    sqlite3_bind_int64(finish, 1, id);
    for (i = 0; i < 3; i++)
        bind_text(finish, i + 2, text[i], len[i]);
    sqlite3_bind_int64(finish, 5, (sqlite3_int64)time(NULL));
    bind_text(finish, 6, text[3], len[3]);
    if (run(finish) != SQLITE_OK)
        return sqlite_fail(L, j, "finish");
    if (sqlite3_changes(j->db) == 0) {
        char number[24];
        snprintf(number, sizeof number, "%lld", (long long)id);
        return journal_error(L, KIND_INTERNAL, "journal_no_entry", "journal: no entry %s", number);
    }
    lua_pushboolean(L, 1);
    return 1;
}

/* j:fail(id, code?) -> true | nil, err: the upload surely was not sent, so a
 * rerun sends it. Only a started entry changes; a finished one stays. */
static int journal_fail_entry(lua_State *L)
{
    struct journal *j = journal_check(L);
    sqlite3_int64 id = id_arg(L);
    sqlite3_stmt *fail = j->stmt[S_FAIL];
    const char *code = luaL_optstring(L, 3, "failed");
    if (!j->db)
        return journal_error(L, KIND_INTERNAL, "closed", "the journal is closed");
    start_call(j);
    sqlite3_bind_int64(fail, 1, id);
    sqlite3_bind_text(fail, 2, code, -1, SQLITE_STATIC);
    sqlite3_bind_int64(fail, 3, (sqlite3_int64)time(NULL));
    if (run(fail) != SQLITE_OK)
        return sqlite_fail(L, j, "fail");
    lua_pushboolean(L, 1);
    return 1;
}

/* j:release(id) -> true | nil, err: this process no longer sends the upload,
 * and its outcome is unknown. The entry stays started: a rerun, from this
 * process or any other, looks for it by its marker before sending. */
static int journal_release(lua_State *L)
{
    struct journal *j = journal_check(L);
    sqlite3_int64 id = id_arg(L);
    if (!j->db)
        return journal_error(L, KIND_INTERNAL, "closed", "the journal is closed");
    start_call(j);
    sqlite3_bind_int64(j->stmt[S_RELEASE], 1, id);
    if (run(j->stmt[S_RELEASE]) != SQLITE_OK)
        return sqlite_fail(L, j, "release");
    lua_pushboolean(L, 1);
    return 1;
}

/* j:list{ limit = 20 } -> { entry, ... } newest first | nil, err */
static int journal_list(lua_State *L)
{
    struct journal *j = journal_check(L);
    sqlite3_stmt *list = j->stmt[S_LIST];
    int64_t limit = 20;
    int rc, n = 0;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "limit");
        luaL_argcheck(L, lua_isnil(L, -1) || (csvup_tointeger(L, -1, &limit) && limit > 0), 2,
                      "limit must be a positive integer");
    }
    if (!j->db)
        return journal_error(L, KIND_INTERNAL, "closed", "the journal is closed");
    start_call(j);
    lua_newtable(L);
    sqlite3_bind_int64(list, 1, (sqlite3_int64)limit);
    while ((rc = sqlite3_step(list)) == SQLITE_ROW) {
        push_row(L, list);
        lua_rawseti(L, -2, ++n);
    }
    sqlite3_reset(list);
    if (rc != SQLITE_DONE)
        return sqlite_fail(L, j, "list");
    return 1;
}

/* Creates the folders above path (mode 0700) that do not exist yet. */
static int make_parents(lua_State *L, const char *path)
{
    char why[128];
    char *dir = malloc(strlen(path) + 1), *p;
    if (!dir)
        return luaL_error(L, "out of memory");
    strcpy(dir, path);
    for (p = strchr(dir + 1, '/'); p; p = strchr(p + 1, '/')) {
        *p = '\0';
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
            int e = errno;
            journal_error(L, KIND_INPUT, "journal_unusable", "journal %s: cannot create %s: %s", path, dir, csvup_strerror(e, why, sizeof why));
            free(dir);
            return 2;
        }
        *p = '/';
    }
    free(dir);
    return 0;
}

/* Whether the uploads table lacks column name (*missing), or SQLite's error. */
static int column_missing(sqlite3 *db, const char *name, int *missing)
{
    sqlite3_stmt *stmt;
    int rc = sqlite3_prepare_v2(db, "SELECT 1 FROM pragma_table_info('uploads') WHERE name = ?1", -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_bind_text(stmt, 1, name, -1, SQLITE_STATIC);
    rc = sqlite3_step(stmt);
    *missing = rc == SQLITE_DONE;
    sqlite3_finalize(stmt);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* A read-only journal written before the steps and marker columns, which it
 * cannot be given: a temporary view of the same name (temporary names come
 * first) shows them as NULL, and refuses writes, which a read-only journal
 * never makes, so that the statements prepare as on a current journal. */
static int shadow_missing_columns(sqlite3 *db)
{
    static const char *const added[] = { "steps", "marker" };
    char sql[400] = "CREATE TEMP VIEW uploads AS SELECT *";
    int rc = SQLITE_OK, missing, any = 0;
    size_t i;
    for (i = 0; i < sizeof added / sizeof *added && rc == SQLITE_OK; i++) {
        if ((rc = column_missing(db, added[i], &missing)) == SQLITE_OK && missing) {
            any = 1;
            snprintf(sql + strlen(sql), sizeof sql - strlen(sql), ", NULL AS %s", added[i]);
        }
    }
    if (rc != SQLITE_OK || !any)
        return rc;
    snprintf(sql + strlen(sql), sizeof sql - strlen(sql), " FROM main.uploads;"
             "CREATE TEMP TRIGGER uploads_insert INSTEAD OF INSERT ON uploads BEGIN SELECT RAISE(ABORT, 'read-only'); END;"
             "CREATE TEMP TRIGGER uploads_update INSTEAD OF UPDATE ON uploads BEGIN SELECT RAISE(ABORT, 'read-only'); END;");
    return sqlite3_exec(db, sql, NULL, NULL, NULL);
}

/* An older journal's entries, taken as sent to each service's own address (see MIGRATE). */
static int migrate_base_urls(sqlite3 *db)
{
    sqlite3_stmt *stmt;
    size_t i;
    int rc = sqlite3_prepare_v2(db, MIGRATE_BASE_URL, -1, &stmt, NULL);
    for (i = 0; rc == SQLITE_OK && i < csvup_service_count; i++) {
        sqlite3_bind_text(stmt, 1, csvup_services[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(stmt, 2, csvup_services[i].base_url, -1, SQLITE_STATIC);
        rc = sqlite3_step(stmt) == SQLITE_DONE ? SQLITE_OK : sqlite3_errcode(db);
        sqlite3_reset(stmt);
    }
    sqlite3_finalize(stmt);
    return rc;
}

/* The table, brought up to date, and its index, in one transaction; it is
 * left open on an error. */
static int create(sqlite3 *db)
{
    int rc, missing = 0;
    if ((rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL)) != SQLITE_OK
        || (rc = sqlite3_exec(db, SCHEMA, NULL, NULL, NULL)) != SQLITE_OK
        || (rc = column_missing(db, "base_url", &missing)) != SQLITE_OK
        || (missing && ((rc = sqlite3_exec(db, MIGRATE, NULL, NULL, NULL)) != SQLITE_OK
                        || (rc = migrate_base_urls(db)) != SQLITE_OK))
        || (rc = column_missing(db, "steps", &missing)) != SQLITE_OK
        || (missing && (rc = sqlite3_exec(db, MIGRATE_STEPS, NULL, NULL, NULL)) != SQLITE_OK)
        || (rc = column_missing(db, "marker", &missing)) != SQLITE_OK
        || (missing && (rc = sqlite3_exec(db, MIGRATE_MARKER, NULL, NULL, NULL)) != SQLITE_OK)
        || (rc = sqlite3_exec(db, INDEX, NULL, NULL, NULL)) != SQLITE_OK)
        return rc;
    return sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
}

/* WAL (readers never wait for a writer), FULL (a recorded start survives a
 * power cut) and the schema. Switching a new file to WAL can be refused at
 * once with SQLITE_BUSY while another process does the same, without the busy
 * handler: that is retried here. Both end at the deadline open set. */
static int set_up(struct journal *j)
{
    int rc;
    for (;;) {
        rc = sqlite3_exec(j->db, "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL", NULL, NULL, NULL);
        if (rc == SQLITE_OK)
            rc = create(j->db);
        if (rc != SQLITE_BUSY || clock_ms() >= j->deadline)
            return rc;
        if (!sqlite3_get_autocommit(j->db))
            sqlite3_exec(j->db, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_sleep(10);
    }
}


/* Whether SQLite's rc says the file can be read but not written: a read-only
 * file or file system, a full disk, a failing write. Open then reads it. */
static int cannot_write(int rc)
{
    rc &= 0xff;
    return rc == SQLITE_READONLY || rc == SQLITE_CANTOPEN || rc == SQLITE_FULL || rc == SQLITE_IOERR
        || rc == SQLITE_PERM;
}

static int check_deadline(void *arg)
{
    return clock_ms() >= *(const int64_t *)arg;
}

/* PRAGMA quick_check for at most CHECK_TIMEOUT_MS: SQLITE_OK when the file is
 * sound (or a large one was not read through in time), SQLITE_CORRUPT with the
 * first finding in finding, or SQLite's error. */
static int quick_check(sqlite3 *db, char *finding, size_t size)
{
    sqlite3_stmt *stmt;
    int64_t deadline = clock_ms() + CHECK_TIMEOUT_MS;
    int rc = sqlite3_prepare_v2(db, "PRAGMA quick_check(1)", -1, &stmt, NULL);
    if (rc != SQLITE_OK)
        return rc;
    sqlite3_progress_handler(db, 1000, check_deadline, &deadline);
    rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        rc = text && strcmp(text, "ok") != 0 ? SQLITE_CORRUPT : SQLITE_OK;
        if (rc != SQLITE_OK) {
            char *p;
            snprintf(finding, size, "%s", text);
            for (p = finding; (p = strchr(p, '\n')); )
                *p = ' ';
        }
    } else if (rc == SQLITE_INTERRUPT) {
        rc = SQLITE_OK;
    }
    sqlite3_progress_handler(db, 0, NULL, NULL);
    sqlite3_finalize(stmt);
    return rc;
}

/* Opens name with flags, checks it and, when writable, sets it up. */
static int open_db(struct journal *j, const char *name, int flags, char *finding, size_t size)
{
    int rc;
    if (j->db) {
        sqlite3_close_v2(j->db);
        j->db = NULL;
    }
    rc = sqlite3_open_v2(name, &j->db, flags, NULL);
    if (!j->db)
        return SQLITE_NOMEM;
    sqlite3_busy_handler(j->db, busy_wait, j);
    if (rc == SQLITE_OK)
        rc = quick_check(j->db, finding, size);
    if (rc == SQLITE_OK && (flags & SQLITE_OPEN_READWRITE))
        rc = set_up(j);
    return rc;
}

/* The journal read only, where it cannot be written: "file:" URIs with
 * mode=ro, then with immutable=1, which reads a WAL journal whose -shm file
 * cannot be made (a read-only folder, a full disk); nobody can write it then
 * either, or not much. Reserved characters of the path are escaped. */
static int open_readonly(lua_State *L, struct journal *j, const char *name, char *finding, size_t size)
{
    static const char *const modes[] = { "?mode=ro", "?mode=ro&immutable=1" };
    luaL_Buffer b;
    const char *p;
    size_t i;
    int rc = SQLITE_CANTOPEN;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "file:");
    for (p = name; *p; p++)
        if (*p == '%' || *p == '?' || *p == '#')
            luaL_addstring(&b, *p == '%' ? "%25" : *p == '?' ? "%3f" : "%23");
        else
            luaL_addchar(&b, *p);
    luaL_pushresult(&b);
    for (i = 0; i < 2 && cannot_write(rc); i++) {
        const char *uri = lua_pushfstring(L, "%s%s", lua_tostring(L, -1), modes[i]);
        rc = open_db(j, uri, SQLITE_OPEN_READONLY | SQLITE_OPEN_URI, finding, size);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    j->readonly = 1;
    return rc;
}

/* core.journal_open(path) -> journal | nil, err; the file (mode 0600) and the
 * folders above it are created where missing. Its pages are checked first (a
 * damaged journal is journal_damaged); one that can be read but not written
 * is opened read-only, to answer uploads it lists as finished. */
int journal_open(lua_State *L)
{
    char why[128], finding[256] = "";
    size_t len;
    const char *path = luaL_checklstring(L, 1, &len), *name;
    struct journal *j;
    int fd, i, rc, writable = 1;
    if (len == 0 || strlen(path) != len)
        return journal_error(L, KIND_INPUT, "journal_unusable", "journal path must be a file name");
    if (make_parents(L, path))
        return 2;
    if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) >= 0)
        close(fd);
    else if ((errno == EACCES || errno == EROFS || errno == EPERM) && access(path, R_OK) == 0)
        writable = 0;
    else
        return journal_error(L, KIND_INPUT, "journal_unusable", "journal %s: %s", path, csvup_strerror(errno, why, sizeof why));
    /* SQLite reads ":memory:" or "file:..." as something else than a file name */
    name = path[0] == '/' ? path : lua_pushfstring(L, "./%s", path);

    j = lua_newuserdata(L, sizeof *j);
    memset(j, 0, sizeof *j);
    luaL_getmetatable(L, JOURNAL_MT);
    lua_setmetatable(L, -2);
    if (!(j->path = malloc(len + 1)))
        return luaL_error(L, "out of memory");
    memcpy(j->path, path, len + 1);
    start_call(j);
    rc = writable ? open_db(j, name, SQLITE_OPEN_READWRITE, finding, sizeof finding) : SQLITE_READONLY;
    if (rc == SQLITE_NOMEM)
        return luaL_error(L, "out of memory");
    if (cannot_write(rc))
        rc = open_readonly(L, j, name, finding, sizeof finding);
    if ((rc & 0xff) == SQLITE_CORRUPT) { /* a file that is no database at all is journal_unusable */
        journal_error(L, KIND_INPUT, "journal_damaged", "journal %s is damaged (%s): nothing was sent. Move it "
                      "aside (mv %s %s.damaged): the next run starts a new journal, which knows nothing of the "
                      "uploads the old one kept; csvup journal --check --journal %s.damaged lists what is wrong",
                      path, finding[0] ? finding : sqlite3_errstr(rc), path, path, path);
        sqlite3_close_v2(j->db);
        j->db = NULL;
        return 2;
    }
    if (rc != SQLITE_OK) {
        lua_pushfstring(L, "journal %s", path);
        db_error(L, j->db, rc, KIND_INPUT, "journal_unusable");
        sqlite3_close_v2(j->db);
        j->db = NULL;
        return 2;
    }
    if (j->readonly && (rc = shadow_missing_columns(j->db)) != SQLITE_OK) {
        lua_pushfstring(L, "journal %s", path);
        db_error(L, j->db, rc, KIND_INPUT, "journal_unusable");
        sqlite3_close_v2(j->db);
        j->db = NULL;
        return 2;
    }
    for (i = 0; i < STATEMENTS; i++)
        if (sqlite3_prepare_v2(j->db, SQL[i], -1, &j->stmt[i], NULL) != SQLITE_OK) {
            journal_error(L, KIND_INTERNAL, "journal_failed", "journal %s: %s", path, sqlite3_errmsg(j->db));
            lua_pushcfunction(L, journal_close);
            lua_pushvalue(L, -4);
            lua_call(L, 1, 0);
            return 2;
        }
    return 1;
}

/* core.journal_check(path) -> { finding, ... } (empty when sound) | nil, err:
 * PRAGMA integrity_check of the file, read only, however long it takes. */
int journal_check_file(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    sqlite3 *db = NULL;
    sqlite3_stmt *stmt = NULL;
    int rc, n = 0;
    if (access(path, R_OK) != 0) {
        char why[128];
        return journal_error(L, KIND_INPUT, "journal_unusable", "journal %s: %s", path,
                             csvup_strerror(errno, why, sizeof why));
    }
    lua_newtable(L);
    rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &stmt, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(stmt)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(stmt, 0);
        if (text && strcmp(text, "ok") != 0) {
            lua_pushstring(L, text);
            lua_rawseti(L, -2, ++n);
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) { /* what stopped the check is a finding too */
        lua_pushstring(L, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        lua_rawseti(L, -2, ++n);
    }
    sqlite3_finalize(stmt);
    sqlite3_close_v2(db);
    return 1;
}

void journal_init(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "begin", journal_begin },
        { "finish", journal_finish },
        { "fail", journal_fail_entry },
        { "release", journal_release },
        { "list", journal_list },
        { "holds", journal_holds },
        { "marked", journal_marked },
        { "close", journal_close },
        { NULL, NULL }
    };
    csvup_class(L, JOURNAL_MT, methods, journal_close, journal_close, journal_tostring);
}
