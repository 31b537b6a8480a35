/* csvup.core: connections, one generic request, and the helpers
 * the Lua modules need from C. */
#include <pthread.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "clock.h"
#include "compat.h"
#include "connection.h"
#include "csv.h"
#include "error.h"
#include "journal.h"
#include "json.h"
#include "multi.h"
#include "plan.h"
#include "records.h"
#include "digest.h"
#include "file.h"
#include "recode.h"
#include "request.h"
#include "scan.h"
#include "signals.h"
#include "version.h"

#define CSVUP_EXPORT __attribute__((visibility("default")))

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_result; /* written once, under curl_once */

static void curl_init(void)
{
    curl_init_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

#define SLEEP_MAX 86400.0 /* a day: a longer wait is a bug in the caller */
#define SLEEP_SLICE 0.1   /* seconds between looks at the signal flag */

/* core.sleep(seconds) -> nil | "SIGINT" | "SIGTERM": for retries and rate
 * limits, in any thread; cut short by a signal caught since core.signals(). */
static int core_sleep(lua_State *L)
{
    lua_Number left = luaL_checknumber(L, 1);
    luaL_argcheck(L, left >= -SLEEP_MAX && left <= SLEEP_MAX, 1, "seconds must be a finite number up to a day");
    while (left > 0 && !signal_caught()) {
        lua_Number slice = left < SLEEP_SLICE ? left : SLEEP_SLICE;
        struct timespec t;
        t.tv_sec = (time_t)slice;
        t.tv_nsec = (long)((slice - (lua_Number)t.tv_sec) * 1e9);
        nanosleep(&t, NULL); /* a signal ends it early: the flag is looked at next */
        left -= slice;
    }
    return signals_interrupted(L);
}

/* core.isatty(fd) -> whether the descriptor is a terminal (stderr: 2) */
static int core_isatty(lua_State *L)
{
    lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)));
    return 1;
}

/* core.columns(fd) -> the width of the terminal on the descriptor, or nil */
static int core_columns(lua_State *L)
{
    struct winsize ws;
    if (ioctl((int)luaL_checkinteger(L, 1), TIOCGWINSZ, &ws) != 0 || ws.ws_col == 0)
        return 0;
    lua_pushinteger(L, ws.ws_col);
    return 1;
}

/* core.now() -> seconds on a monotonic clock */
static int core_now(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)clock_ns() / 1e9);
    return 1;
}

CSVUP_EXPORT int luaopen_csvup_core(lua_State *L)
{
    static const luaL_Reg functions[] = {
        { "connection", connection_new },
        { "check_file", request_check_file },
        { "recoder", recode_new },
        { "request", request_call },
        { "open_file", file_new },
        { "temp_file", file_temp },
        { "columns", core_columns },
        { "csv_columns", csv_columns },
        { "csv_encoder", csv_encoder_new },
        { "csv_reader", records_open },
        { "check_rows", plan_check_rows },
        { "check_value", plan_check_value },
        { "utf8_check_file", scan_utf8_file },
        { "error", csvup_error_new },
        { "isatty", core_isatty },
        { "journal_open", journal_open },
        { "journal_check", journal_check_file },
        { "json_mark_integers", json_mark_integers },
        { "multi", multi_run },
        { "interrupted", signals_interrupted },
        { "now", core_now },
        { "sha256", digest_string },
        { "sha256_file", digest_file },
        { "signals", signals_install },
        { "sleep", core_sleep },
        { NULL, NULL }
    };
    pthread_once(&curl_once, curl_init);
    if (curl_init_result != CURLE_OK)
        return luaL_error(L, "curl_global_init failed: %s", curl_easy_strerror(curl_init_result));
    csvup_error_init(L);
    connection_init(L);
    csv_init(L);
    file_init(L);
    recode_init(L);
    records_init(L);
    journal_init(L);

    lua_newtable(L);
    luaL_setfuncs(L, functions, 0);
    lua_pushliteral(L, CSVUP_VERSION);
    lua_setfield(L, -2, "VERSION");
    lua_pushstring(L, curl_version_info(CURLVERSION_NOW)->version);
    lua_setfield(L, -2, "CURL_VERSION");
    return 1;
}
