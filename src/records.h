/* core.csv_reader: the records of a CSV file for csv.rows and the checks of
 * csvup.validate, on the C tokenizer. */
#ifndef CSVUP_RECORDS_H
#define CSVUP_RECORDS_H

#include "compat.h"

struct records;

int records_open(lua_State *L);
/* A reader of the file at source (a csvup.file: its descriptor, from the
 * first byte) whose records past the header an upload checks by the plan at
 * plan (absolute indexes; plan.delimiter is the file's) as it sends them.
 * Pushed, or NULL with nil, err pushed. */
struct records *records_sending(lua_State *L, int source, int plan);
/* An upload sends the file as it checks it, one read for both:
 * records_checked is the end of the bytes checked so far (the file's
 * first bytes up to it passed), -1 once a record failed (records_failure
 * says where and why). records_check_more checks more of it, at least one
 * record unless the file ended, and gives the new end; it may drop bytes
 * before the old end from the buffer, so it must be called only once all of
 * them were handed out. records_bytes(rs, from) are the checked bytes from
 * file offset `from` on, up to records_checked. */
long long records_checked(const struct records *rs);
long long records_check_more(struct records *rs);
const unsigned char *records_bytes(const struct records *rs, long long from);
/* Once every checked byte was handed out: the next bytes of the file read
 * straight into buf (up to want), without the reader's buffer, when the
 * quick pass passes records at their start. Their count, 0 when it passes
 * none (then records_check_more reads on). */
size_t records_pass_into(struct records *rs, unsigned char *buf, size_t want);
const char *records_failure(const struct records *rs);
/* Closes the file and frees what the reader holds; safe to call again. */
void records_release(struct records *rs);
void records_init(lua_State *L);

#endif
