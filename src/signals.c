#include <signal.h>
#include <string.h>

#include "signals.h"

/* The one piece of process-wide state besides curl_global_init: signals are
 * delivered to the process, not to a Lua state, so the flag cannot live in
 * one. Only the handler writes it, and only after the program (the csvup
 * command) asked for the handlers; a library user who never calls
 * core.signals() keeps the default dispositions and a flag that stays 0. */
static volatile sig_atomic_t caught;

/* Async-signal-safe: it only sets the flag. SA_RESETHAND makes a second
 * signal act as if no handler were installed (the process ends at once). */
static void on_signal(int sig)
{
    caught = sig;
}

int signal_caught(void)
{
    return caught;
}

const char *signal_name(void)
{
    int sig = caught;
    return sig == SIGINT ? "SIGINT" : sig == SIGTERM ? "SIGTERM" : NULL;
}

int signals_install(lua_State *L)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* and no SA_RESTART: a blocking wait returns early */
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGINT, &sa, NULL) != 0 || sigaction(SIGTERM, &sa, NULL) != 0)
        return luaL_error(L, "sigaction failed");
    lua_pushboolean(L, 1);
    return 1;
}

int signals_interrupted(lua_State *L)
{
    const char *name = signal_name();
    if (!name)
        return 0;
    lua_pushstring(L, name);
    return 1;
}
