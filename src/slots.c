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

int slots_acquire(uint64_t key, int slots)
{
    const char *dir = getenv("XDG_RUNTIME_DIR");
    char path[512];
    struct timespec pause = { 0, POLL_NS };
    int i, opened;
    if (!dir || !*dir)
        dir = "/tmp";
    for (;;) {
        opened = 0;
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
        if (!opened)
            return -1;
        nanosleep(&pause, NULL);
    }
}

void slots_release(int fd)
{
    if (fd >= 0)
        close(fd); /* closing drops the lock */
}
