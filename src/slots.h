/* Parallel-request slots: at most N requests at once per token, counted across
 * every thread and process of the user by lock files (flock), so that a
 * crashed process gives its slot back with its descriptors. The lock files
 * live in a directory only the user can enter, named by a keyed hash of the
 * token whose key is a random salt kept in that directory. */
#ifndef CSVUP_SLOTS_H
#define CSVUP_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#define SLOTS_BUSY (-2)        /* every slot is taken (or stayed taken until the deadline) */
#define SLOTS_INTERRUPTED (-3) /* a signal stopped the wait */

/* The private directory ($XDG_RUNTIME_DIR/csvup or /tmp/csvup-<uid>), made
 * when missing and checked (owned by the user, mode 0700), and the key of the
 * token's lock files in it. Returns the directory (malloc'd), or NULL with
 * the reason written to why. */
char *slots_open(const char *authorization, uint64_t *key, char *why, size_t why_size);

/* One of the slots, without waiting: the lock's descriptor; SLOTS_BUSY when
 * all are taken; -1 when a lock file cannot be opened (errno says why). */
int slots_try_acquire(const char *dir, uint64_t key, int slots);
/* The same, waiting at most timeout_ms while every slot is taken. */
int slots_acquire(const char *dir, uint64_t key, int slots, long timeout_ms);
void slots_release(int fd);

#endif
