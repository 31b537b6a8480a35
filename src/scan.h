/* Streaming checks of a file before it is uploaded. */
#ifndef CSVUP_SCAN_H
#define CSVUP_SCAN_H

#include "compat.h"

int scan_utf8_file(lua_State *L);

#endif
