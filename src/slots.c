#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "error.h"
#include "signals.h"
#include "slots.h"

#define POLL_NS 10000000L /* 10 ms between rounds when every slot is taken */
#define SALT_SIZE 16

/* SipHash-2-4: a keyed hash, so that a lock file's name tells nothing about
 * the token to whoever does not hold the salt. */
#define ROTL(x, b) (uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))
#define SIPROUND(v0, v1, v2, v3) do { \
        v0 += v1; v1 = ROTL(v1, 13); v1 ^= v0; v0 = ROTL(v0, 32); \
        v2 += v3; v3 = ROTL(v3, 16); v3 ^= v2; \
        v0 += v3; v3 = ROTL(v3, 21); v3 ^= v0; \
        v2 += v1; v1 = ROTL(v1, 17); v1 ^= v2; v2 = ROTL(v2, 32); \
    } while (0)

static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    int i;
    for (i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static uint64_t siphash(const unsigned char key[SALT_SIZE], const unsigned char *in, size_t len)
{
    uint64_t k0 = load64(key), k1 = load64(key + 8), m, b = (uint64_t)len << 56;
    uint64_t v0 = k0 ^ UINT64_C(0x736f6d6570736575), v1 = k1 ^ UINT64_C(0x646f72616e646f6d);
    uint64_t v2 = k0 ^ UINT64_C(0x6c7967656e657261), v3 = k1 ^ UINT64_C(0x7465646279746573);
    size_t i, left = len & 7;
    for (i = 0; i + 8 <= len; i += 8) {
        m = load64(in + i);
        v3 ^= m;
        SIPROUND(v0, v1, v2, v3);
        SIPROUND(v0, v1, v2, v3);
        v0 ^= m;
    }
    while (left--)
        b |= (uint64_t)in[i + left] << (8 * left);
    v3 ^= b;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    SIPROUND(v0, v1, v2, v3);
    return v0 ^ v1 ^ v2 ^ v3;
}

static int fail(char *why, size_t size, const char *dir, const char *what)
{
    char text[128];
    snprintf(why, size, "%s: %s (%s)", dir, what, csvup_strerror(errno, text, sizeof text));
    return -1;
}

/* Creates the directory if missing; it must be ours and closed to others. */
static int private_directory(const char *dir, char *why, size_t size)
{
    struct stat st;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST)
        return fail(why, size, dir, "cannot create the directory");
    if (lstat(dir, &st) != 0)
        return fail(why, size, dir, "cannot read the directory");
    if (!S_ISDIR(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        snprintf(why, size, "%s: not a directory of this user with mode 0700; remove it or fix its owner and mode",
                 dir);
        return -1;
    }
    return 0;
}

/* Reads the salt, making it first when missing: written to a file of its own,
 * then linked in place, so that a reader never sees half a salt. */
static int read_salt(const char *dir, unsigned char salt[SALT_SIZE], char *why, size_t size)
{
    char path[4200], tmp[4200];
    int fd, n;
    if (snprintf(path, sizeof path, "%s/salt", dir) >= (int)sizeof path
        || snprintf(tmp, sizeof tmp, "%s/salt.XXXXXX", dir) >= (int)sizeof tmp) {
        snprintf(why, size, "the directory's name is too long");
        return -1;
    }
    if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0 && errno == ENOENT) {
        int random_fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC), made;
        if (random_fd < 0 || read(random_fd, salt, SALT_SIZE) != SALT_SIZE) {
            if (random_fd >= 0)
                close(random_fd);
            return fail(why, size, "/dev/urandom", "cannot read random bytes");
        }
        close(random_fd);
        if ((made = mkstemp(tmp)) < 0)
            return fail(why, size, dir, "cannot write the salt");
        n = (int)write(made, salt, SALT_SIZE);
        close(made);
        if (n != SALT_SIZE || (link(tmp, path) != 0 && errno != EEXIST)) {
            unlink(tmp);
            return fail(why, size, dir, "cannot write the salt");
        }
        unlink(tmp);
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    }
    if (fd < 0)
        return fail(why, size, path, "cannot open the salt");
    n = (int)read(fd, salt, SALT_SIZE);
    close(fd);
    if (n != SALT_SIZE) {
        snprintf(why, size, "%s: the salt is not %d bytes; remove it", path, SALT_SIZE);
        return -1;
    }
    return 0;
}

char *slots_open(const char *authorization, uint64_t *key, char *why, size_t why_size)
{
    const char *runtime = getenv("XDG_RUNTIME_DIR");
    unsigned char salt[SALT_SIZE];
    char dir[4096];
    char *copy;
    struct stat st;
    /* $XDG_RUNTIME_DIR only when it is ours: under sudo it names the caller's */
    if (runtime && *runtime == '/' && stat(runtime, &st) == 0 && st.st_uid == geteuid())
        snprintf(dir, sizeof dir, "%s/csvup", runtime);
    else
        snprintf(dir, sizeof dir, "/tmp/csvup-%lu", (unsigned long)geteuid());
    if (private_directory(dir, why, why_size) != 0 || read_salt(dir, salt, why, why_size) != 0)
        return NULL;
    *key = siphash(salt, (const unsigned char *)authorization, strlen(authorization));
    if (!(copy = strdup(dir)))
        snprintf(why, why_size, "out of memory");
    return copy;
}

int slots_try_acquire(const char *dir, uint64_t key, int slots)
{
    char path[4200];
    int i;
    for (i = 0; i < slots; i++) {
        int fd;
        if (snprintf(path, sizeof path, "%s/%016llx-%d.lock", dir, (unsigned long long)key, i) >= (int)sizeof path)
            return -1;
        if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600)) < 0)
            return -1;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        close(fd);
    }
    return SLOTS_BUSY;
}

int slots_acquire(const char *dir, uint64_t key, int slots, long timeout_ms)
{
    struct timespec pause = { 0, POLL_NS };
    int64_t deadline = clock_ms() + timeout_ms;
    int fd;
    while ((fd = slots_try_acquire(dir, key, slots)) == SLOTS_BUSY && clock_ms() < deadline) {
        if (signal_caught())
            return SLOTS_INTERRUPTED;
        nanosleep(&pause, NULL);
    }
    return fd;
}

void slots_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing drops the lock */
}
