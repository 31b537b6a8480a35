/* A file to upload, check or hash: opened once, read-only, as a regular
 * file only. core.open_file(path) gives it to Lua (csvup.file), so that the
 * check, the hash and every attempt of the upload read the same descriptor
 * and never open the path again. */
#ifndef CSVUP_FILE_H
#define CSVUP_FILE_H

#include <stdio.h>
#include <sys/stat.h>

#include "compat.h"
#include "digest.h"

struct file {
    int fd;          /* -1 once closed */
    struct stat st;  /* at the open, or once a temporary file was finished */
    char *path;      /* for errors; a temporary file has no path to look at again */
    int temporary;   /* written by file:write until file:finish, hashed as written */
    int parked;      /* closed until an upload opens it again, refusing another file than st */
    struct digest sha;
};

/* Opens path read-only and close-on-exec, without blocking on a FIFO, and
 * refuses at once what is not a regular file (a FIFO, a directory, a
 * device). The descriptor, blocking again, or -1 with nil, err pushed. */
int file_open_regular(lua_State *L, const char *path, struct stat *st);
/* The csvup.file at idx, or NULL when it is something else; raises when it is closed. */
struct file *file_test(lua_State *L, int idx);
/* Opens a parked file again (a no-op for one that is open): 0, or -1 with
 * nil, err pushed (file_changed when its path names another file than the
 * one parked, or it has another size or time). */
int file_unpark(lua_State *L, struct file *f);
/* Closes the descriptor of a file that file_unpark opened again. */
void file_park_again(struct file *f);
/* A stream from the first byte of the path or csvup.file at idx (a
 * duplicate of its descriptor: no second open), for one reader at a time;
 * *name is the path. NULL with nil, err pushed. */
FILE *file_stream(lua_State *L, int idx, const char **name);
/* Whether the file at path is another one than the open one (renamed over,
 * a link retargeted), or the open one has another size or time than st. */
int file_changed(int fd, const char *path, const struct stat *st);
/* A descriptor's bytes from offset to its end, counted by reading (a file
 * that says it has 0 bytes may have more: /proc); -1 on a read error. */
long long file_measure(int fd);
/* The path to look at again for a change, or NULL for a temporary file. */
const char *file_path(const struct file *f);
/* core.open_file(path) -> file | nil, err; file:close() (or the collector)
 * closes it; file:park() closes its descriptor until an upload opens it again
 * (a batch plans many uploads but runs a few at a time); file:size() is its
 * size at the open. */
int file_new(lua_State *L);
/* core.temp_file() -> file | nil, err: an unlinked file in $TMPDIR (O_TMPFILE
 * where the file system has it), file:write(s) -> true | nil, err, then
 * file:finish() -> sha256 hex, size: read like any other from then on. */
int file_temp(lua_State *L);
void file_init(lua_State *L);

#endif
