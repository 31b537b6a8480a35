/* The sources of a body: a file's one descriptor, or a string. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "file.h"
#include "stage.h"

struct fd_source {
    struct stage s;
    int fd;
    long long size, pos;
    const char *path;
    struct stat st;
};

/* The file's end is the change check: when it was read to the size it had,
 * before its last bytes go on, so a file that changed never ends a body. */
static int fd_finish(struct stage *s)
{
    struct fd_source *f = (struct fd_source *)s;
    if (file_changed(f->fd, f->path, &f->st))
        return stage_fail(s, "file_changed", "the file changed while it was read");
    return 0;
}

static long fd_read(struct stage *s, char *buf, size_t n)
{
    struct fd_source *f = (struct fd_source *)s;
    ssize_t got;
    char why[128];
    if ((long long)n > f->size - f->pos)
        n = (size_t)(f->size - f->pos);
    if (n == 0)
        return 0;
    do
        got = pread(f->fd, buf, n, (off_t)f->pos);
    while (got < 0 && errno == EINTR);
    if (got < 0)
        return stage_fail(s, "file_unreadable", "%s", csvup_strerror(errno, why, sizeof why));
    if (got == 0)
        return stage_fail(s, "file_changed", "the file ended before the size it had");
    f->pos += got;
    if (f->pos == f->size && fd_finish(s) < 0)
        return -1;
    return (long)got;
}

static int fd_rewind(struct stage *s)
{
    ((struct fd_source *)s)->pos = 0;
    return 0;
}

static void stage_free(struct stage *s)
{
    free(s);
}

static const struct stage_ops FD_OPS = { fd_read, fd_rewind, fd_finish, stage_free };

struct stage *stage_fd(int fd, long long size, const char *path, const struct stat *st)
{
    struct fd_source *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    f->s.ops = &FD_OPS;
    f->fd = fd;
    f->size = size;
    f->path = path;
    f->st = *st;
    return &f->s;
}

struct string_source {
    struct stage s;
    const char *data;
    size_t len, pos;
};

static long string_read(struct stage *s, char *buf, size_t n)
{
    struct string_source *d = (struct string_source *)s;
    if (n > d->len - d->pos)
        n = d->len - d->pos;
    memcpy(buf, d->data + d->pos, n);
    d->pos += n;
    return (long)n;
}

static int string_rewind(struct stage *s)
{
    ((struct string_source *)s)->pos = 0;
    return 0;
}

static int string_finish(struct stage *s)
{
    (void)s;
    return 0;
}

static const struct stage_ops STRING_OPS = { string_read, string_rewind, string_finish, stage_free };

struct stage *stage_string(const char *data, size_t len)
{
    struct string_source *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->s.ops = &STRING_OPS;
    d->data = len ? data : "";
    d->len = len;
    return &d->s;
}
