/* O_TMPFILE is Linux's: without it, a temporary file is created and unlinked at once */
#define _GNU_SOURCE 1
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "file.h"

#define FILE_MT "csvup.file"

int file_open_regular(lua_State *L, const char *path, struct stat *st)
{
    char why[128];
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        csvup_fail(L, KIND_INPUT, errno == ENOENT ? "file_not_found" : "file_unreadable", "%s: %s", path,
                   csvup_strerror(errno, why, sizeof why));
        return -1;
    }
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        close(fd);
        csvup_fail(L, KIND_INPUT, "file_unreadable", "%s: not a regular file", path);
        return -1;
    }
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* read front to back: a longer read-ahead */
    return fd;
}

struct file *file_test(lua_State *L, int idx)
{
    struct file *f = luaL_testudata(L, idx, FILE_MT);
    if (f && f->fd < 0 && !f->parked)
        luaL_error(L, "%s: the file is closed", f->path ? f->path : "file");
    return f;
}

/* Whether b is another file than a, or a's content changed since. */
static int other_file(const struct stat *a, const struct stat *b)
{
    return a->st_dev != b->st_dev || a->st_ino != b->st_ino || a->st_size != b->st_size
        || a->st_mtim.tv_sec != b->st_mtim.tv_sec || a->st_mtim.tv_nsec != b->st_mtim.tv_nsec;
}

int file_unpark(lua_State *L, struct file *f)
{
    struct stat st;
    if (f->fd >= 0)
        return 0;
    if ((f->fd = file_open_regular(L, f->path, &st)) < 0)
        return -1;
    if (other_file(&f->st, &st)) {
        close(f->fd);
        f->fd = -1;
        csvup_fail(L, KIND_INPUT, "file_changed", "%s: the file changed after it was checked, so nothing was "
                   "sent. Upload it again once it is complete", f->path);
        return -1;
    }
    f->parked = 0;
    return 0;
}

FILE *file_stream(lua_State *L, int idx, const char **name)
{
    struct file *of = file_test(L, idx);
    struct stat st;
    char why[128];
    int fd;
    FILE *f;
    if (of && file_unpark(L, of) != 0)
        return NULL;
    if (of) {
        *name = of->path;
        fd = dup(of->fd);
        if (fd >= 0 && lseek(fd, 0, SEEK_SET) < 0) {
            close(fd);
            fd = -1;
        }
        if (fd < 0) {
            csvup_fail(L, KIND_INPUT, "file_unreadable", "%s: %s", of->path, csvup_strerror(errno, why, sizeof why));
            return NULL;
        }
    } else {
        *name = luaL_checkstring(L, idx);
        if ((fd = file_open_regular(L, *name, &st)) < 0)
            return NULL;
    }
    if (!(f = fdopen(fd, "rb"))) {
        close(fd);
        csvup_fail(L, KIND_INPUT, "file_unreadable", "%s: %s", *name, csvup_strerror(errno, why, sizeof why));
    }
    return f;
}

int file_changed(int fd, const char *path, const struct stat *st)
{
    struct stat now, named;
    return fstat(fd, &now) != 0 || other_file(st, &now)
        || (path && (stat(path, &named) != 0 || named.st_dev != st->st_dev || named.st_ino != st->st_ino));
}

long long file_measure(int fd)
{
    char chunk[1 << 16];
    long long total = 0;
    ssize_t n;
    for (;;) {
        do
            n = pread(fd, chunk, sizeof chunk, (off_t)total);
        while (n < 0 && errno == EINTR);
        if (n <= 0)
            return n < 0 ? -1 : total;
        total += n;
    }
}

const char *file_path(const struct file *f)
{
    return f->temporary ? NULL : f->path;
}

static struct file *push_file(lua_State *L, const char *path)
{
    struct file *f = lua_newuserdata(L, sizeof *f);
    memset(f, 0, sizeof *f);
    f->fd = -1;
    luaL_getmetatable(L, FILE_MT);
    lua_setmetatable(L, -2);
    if (!(f->path = strdup(path)))
        luaL_error(L, "out of memory");
    return f;
}

int file_temp(lua_State *L)
{
    const char *dir = getenv("TMPDIR");
    struct file *f = push_file(L, "rows.csv");
    char why[128], *name;
    size_t n;
    if (!dir || dir[0] != '/')
        dir = "/tmp";
#ifdef O_TMPFILE
    f->fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
#endif
    if (f->fd < 0) { /* a file system without O_TMPFILE: created, then unlinked at once */
        n = strlen(dir) + sizeof "/csvup-rows-XXXXXX";
        if (!(name = malloc(n)))
            return luaL_error(L, "out of memory");
        snprintf(name, n, "%s/csvup-rows-XXXXXX", dir);
        if ((f->fd = mkstemp(name)) >= 0) {
            unlink(name);
            fcntl(f->fd, F_SETFD, FD_CLOEXEC);
        }
        free(name);
    }
    if (f->fd < 0)
        return csvup_fail(L, KIND_INTERNAL, "file_unreadable", "a temporary file in %s: %s", dir,
                          csvup_strerror(errno, why, sizeof why));
    f->temporary = 1;
    if (digest_init(&f->sha) != 0)
        return luaL_error(L, "out of memory");
    return 1;
}

int file_new(lua_State *L)
{
    const char *path = luaL_checkstring(L, 1);
    struct file *f = push_file(L, path);
    if ((f->fd = file_open_regular(L, path, &f->st)) < 0)
        return 2;
    return 1;
}

static struct file *file_check(lua_State *L)
{
    struct file *f = luaL_checkudata(L, 1, FILE_MT);
    if (f->fd < 0 && !(f->parked && file_unpark(L, f) == 0))
        luaL_error(L, "%s: the file is closed", f->path ? f->path : "file");
    return f;
}

void file_park_again(struct file *f)
{
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->parked = 1;
}

/* file:park(): its descriptor closed until an upload opens it again (a
 * temporary file, which has no path to open, stays open) */
static int file_park(lua_State *L)
{
    struct file *f = file_check(L);
    if (!f->temporary)
        file_park_again(f);
    return 0;
}

/* file:write(s) -> true | nil, err: appended to a temporary file not finished yet */
static int file_write(lua_State *L)
{
    struct file *f = file_check(L);
    size_t len, done = 0;
    const char *s = luaL_checklstring(L, 2, &len);
    char why[128];
    ssize_t n;
    luaL_argcheck(L, f->temporary && f->sha.ctx, 1, "a temporary file, not finished");
    while (done < len) {
        if ((n = write(f->fd, s + done, len - done)) < 0 && errno != EINTR)
            return csvup_fail(L, KIND_INTERNAL, "write_error", "a temporary file: %s",
                              csvup_strerror(errno, why, sizeof why));
        done += n > 0 ? (size_t)n : 0;
    }
    digest_update(&f->sha, s, len);
    lua_pushboolean(L, 1);
    return 1;
}

/* file:finish() -> sha256 hex, size: the temporary file as written, read from now on */
static int file_finish(lua_State *L)
{
    struct file *f = file_check(L);
    char hex[DIGEST_HEX];
    luaL_argcheck(L, f->temporary && f->sha.ctx, 1, "a temporary file, not finished");
    if (fstat(f->fd, &f->st) != 0)
        return csvup_fail(L, KIND_INTERNAL, "file_unreadable", "a temporary file: fstat failed");
    lua_pushinteger(L, (lua_Integer)f->sha.length);
    digest_final(&f->sha, hex);
    lua_pushstring(L, hex);
    lua_insert(L, -2);
    return 2;
}

/* file:size() -> the bytes the file had when it was opened (0 for one that
 * says so and may have more: /proc) */
static int file_size(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)file_check(L)->st.st_size);
    return 1;
}

static int file_close(lua_State *L)
{
    struct file *f = luaL_checkudata(L, 1, FILE_MT);
    digest_free(&f->sha);
    if (f->fd >= 0)
        close(f->fd);
    f->fd = -1;
    f->parked = 0;
    free(f->path);
    f->path = NULL;
    return 0;
}

void file_init(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "park", file_park },
        { "write", file_write },
        { "finish", file_finish },
        { "size", file_size },
        { "close", file_close },
        { NULL, NULL }
    };
    csvup_class(L, FILE_MT, methods, file_close, file_close, NULL);
}
