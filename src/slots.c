#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/file.h>
#include <time.h>
#include <unistd.h>

#include "slots.h"

#define POLL_NS 10000000L /* 10 ms between rounds when every slot is taken */

uint64_t slots_key(const char *authorization)
{
    uint64_t h = UINT64_C(14695981039346656037);
    for (; *authorization; authorization++) {
        h ^= (unsigned char)*authorization;
        h *= UINT64_C(1099511628211);
    }
    return h;
}

int slots_try_acquire(uint64_t key, int slots)
{
    const char *dir = getenv("XDG_RUNTIME_DIR");
    char path[512];
    int i, opened = 0;
    if (!dir || !*dir)
        dir = "/tmp";
    for (i = 0; i < slots; i++) {
        int fd;
        snprintf(path, sizeof path, "%s/csvup-%016llx-%d.lock", dir, (unsigned long long)key, i);
        if ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600)) < 0)
            continue;
        opened++;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0)
            return fd;
        close(fd);
    }
    return opened ? SLOTS_BUSY : -1;
}

int slots_acquire(uint64_t key, int slots)
{
    struct timespec pause = { 0, POLL_NS };
    int fd;
    while ((fd = slots_try_acquire(key, slots)) == SLOTS_BUSY)
        nanosleep(&pause, NULL);
    return fd;
}

void slots_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing drops the lock */
}
