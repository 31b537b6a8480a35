/* Parallel-request slots: at most N requests at once per token, counted across
 * every thread and process of the user by lock files (flock), so that a
 * crashed process gives its slot back with its descriptors. */
#ifndef CSVUP_SLOTS_H
#define CSVUP_SLOTS_H

#include <stdint.h>

/* A key for the token that names no part of it: FNV-1a of the header line. */
uint64_t slots_key(const char *authorization);
#define SLOTS_BUSY (-2)

/* One of the slots of key, without waiting: the lock's descriptor; SLOTS_BUSY
 * when all are taken; -1 when the lock files cannot be opened (then nothing
 * is limited). */
int slots_try_acquire(uint64_t key, int slots);
/* The same, waiting while every slot is taken. */
int slots_acquire(uint64_t key, int slots);
void slots_release(int fd);

#endif
