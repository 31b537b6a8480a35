/* SIGINT and SIGTERM for the command line: a flag that transfers, slot waits
 * and core.sleep check, so that a signal stops them at once. */
#ifndef CSVUP_SIGNALS_H
#define CSVUP_SIGNALS_H

#include "compat.h"

/* The signal that arrived since core.signals(), or 0. */
int signal_caught(void);
/* "SIGINT", "SIGTERM", or NULL. */
const char *signal_name(void);

/* core.signals(): installs the handlers; true. */
int signals_install(lua_State *L);
/* core.interrupted() -> nil | "SIGINT" | "SIGTERM" */
int signals_interrupted(lua_State *L);

#endif
