#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "clock.h"
#include "error.h"
#include "signals.h"
#include "slots.h"

#define POLL_NS 10000000L /* 10 ms between rounds when every slot is taken */
#define SALT_SIZE 16

/* The key of a token's lock files: HMAC-SHA256 of the Authorization line
 * under the directory's random salt, so that a file's name tells nothing about
 * the token to whoever does not hold the salt. Its first 8 bytes name the files. */
static int token_key(const unsigned char salt[SALT_SIZE], const char *authorization, uint64_t *key)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0, i;
    if (!HMAC(EVP_sha256(), salt, SALT_SIZE, (const unsigned char *)authorization, strlen(authorization), mac, &len)
        || len < 8)
        return -1;
    for (*key = 0, i = 0; i < 8; i++)
        *key = (*key << 8) | mac[i];
    return 0;
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
    if (token_key(salt, authorization, key) != 0) {
        snprintf(why, why_size, "HMAC-SHA256 is not available from libcrypto");
        return NULL;
    }
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
