/* cmd.h -- one Redis command under construction: argv, lengths, its slot */

#ifndef REQSTATS_CMD_H
#define REQSTATS_CMD_H

#include <stddef.h>

/* Arguments a command holds without a heap allocation: every fixed-shape
 * command of the store fits; a batch of hits asks for more (cmd_init_cap). */
#define CMD_INLINE_ARGS 16

/* Room for one formatted number ("%lld" plus NUL). */
#define CMD_NUM_LEN 24

/* A slot for commands that may run on any node (PING, CLUSTER SHARDS). */
#define CMD_ANY_SLOT (-1)

/* An argv being built. Strings added with cmd_bin/cmd_str are borrowed
 * and must outlive the command's use; numbers are formatted into the
 * command's own storage. Adding past the capacity marks the command
 * failed (err = 1) instead of writing out of bounds: the router refuses
 * to send it. A command points into itself: never copy one by value. */
struct cmd {
    int slot; /* hash slot of its keys, or CMD_ANY_SLOT */
    int argc;
    int cap;
    int err;
    const char **argv;
    size_t *len;
    char (*nums)[CMD_NUM_LEN];
    const char *argv_in[CMD_INLINE_ARGS];
    size_t len_in[CMD_INLINE_ARGS];
    char nums_in[CMD_INLINE_ARGS][CMD_NUM_LEN];
    void *heap; /* one allocation when cap > CMD_INLINE_ARGS */
};

/* Start an empty command for slot with the inline capacity. */
void cmd_init(struct cmd *c, int slot);

/* Start an empty command for slot with room for cap arguments. Returns 0,
 * or -1 when out of memory (the command is then empty with err set).
 * Release with cmd_free(). */
int cmd_init_cap(struct cmd *c, int slot, int cap);

/* Release what cmd_init_cap() allocated. Accepts an inline command. */
void cmd_free(struct cmd *c);

/* Drop the arguments, keep the capacity; the slot becomes slot. */
void cmd_reset(struct cmd *c, int slot);

/* Append an argument: bytes (binary-safe), a C string, a number. */
void cmd_bin(struct cmd *c, const char *s, size_t len);
void cmd_str(struct cmd *c, const char *s);
void cmd_ll(struct cmd *c, long long v);

/* Append "(v": an exclusive score bound for ZCOUNT and friends. */
void cmd_ll_excl(struct cmd *c, long long v);

#endif
