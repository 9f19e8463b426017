/* cmd.c -- one Redis command under construction: argv, lengths, its slot
 *
 * Every command the store sends is built here and handed to the router
 * (cluster.c) as an argv with lengths, so paths and ids are binary-safe
 * and never parsed as commands. A command knows the hash slot of its keys,
 * which is all the router needs to pick a node. The capacity is a hard
 * bound: an argument past it marks the command failed, and a failed
 * command is never sent (a programming error shows as a logged failure,
 * not as memory written out of bounds).
 */

#include "cmd.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void use_inline(struct cmd *c)
{
    c->argv = c->argv_in;
    c->len = c->len_in;
    c->nums = c->nums_in;
    c->cap = CMD_INLINE_ARGS;
    c->heap = NULL;
}

void cmd_init(struct cmd *c, int slot)
{
    c->slot = slot;
    c->argc = 0;
    c->err = 0;
    use_inline(c);
}

int cmd_init_cap(struct cmd *c, int slot, int cap)
{
    size_t n;
    char *mem;

    cmd_init(c, slot);
    if (cap <= CMD_INLINE_ARGS) {
        return 0;
    }
    n = (size_t)cap;
    mem = malloc(n * (sizeof(*c->argv) + sizeof(*c->len) + CMD_NUM_LEN));
    if (mem == NULL) {
        c->err = 1;
        c->cap = 0;
        return -1;
    }
    c->heap = mem;
    c->argv = (const char **)(void *)mem;
    c->len = (size_t *)(void *)(mem + n * sizeof(*c->argv));
    c->nums = (char(*)[CMD_NUM_LEN])(void *)(mem + n * (sizeof(*c->argv) + sizeof(*c->len)));
    c->cap = cap;
    return 0;
}

void cmd_free(struct cmd *c)
{
    free(c->heap);
    cmd_init(c, c->slot);
}

void cmd_reset(struct cmd *c, int slot)
{
    c->slot = slot;
    c->argc = 0;
    c->err = c->cap == 0;
}

void cmd_bin(struct cmd *c, const char *s, size_t len)
{
    if (c->argc >= c->cap) {
        c->err = 1;
        return;
    }
    c->argv[c->argc] = s;
    c->len[c->argc] = len;
    c->argc++;
}

void cmd_str(struct cmd *c, const char *s)
{
    cmd_bin(c, s, strlen(s));
}

static void num(struct cmd *c, const char *lead, long long v)
{
    int n;

    if (c->argc >= c->cap) {
        c->err = 1;
        return;
    }
    n = snprintf(c->nums[c->argc], CMD_NUM_LEN, "%s%lld", lead, v);
    cmd_bin(c, c->nums[c->argc], (size_t)n);
}

void cmd_ll(struct cmd *c, long long v)
{
    num(c, "", v);
}

void cmd_ll_excl(struct cmd *c, long long v)
{
    num(c, "(", v);
}
