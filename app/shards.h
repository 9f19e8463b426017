/* shards.h -- counts spread over shards: tags, placement, global order */

#ifndef REQSTATS_SHARDS_H
#define REQSTATS_SHARDS_H

#include <limits.h>
#include <stddef.h>

/* Bounds of REDIS_SHARDS. */
#define SHARDS_MAX 256

/* Room for a shard's hash tag, e.g. "7.12345", with its NUL. */
#define SHARDS_TAG_LEN 24

/* A probe that found no member (a rank past the end of a shard). */
#define SHARDS_NONE LLONG_MIN

/* The slot shard i of n is placed on: the middle of the i-th of n equal
 * parts of the 16384 slots, so any split of the slots into equal ranges
 * (redis-cli --cluster create, rebalance) gives every master the same
 * number of shards, give or take one. */
int shards_target_slot(int i, int n);

/* Write shard i of n's hash tag (without braces) into tag: "<i>.<k>" with
 * the smallest k >= 0 whose CRC16 slot is shards_target_slot(i, n). The
 * tags are part of the data layout: never change this function. Returns
 * the tag's slot, or -1 when i or n is out of range or size too small. */
int shards_tag(int i, int n, char *tag, size_t size);

/* The shard of a canonical path: FNV-1a (64-bit) of its bytes mod n. Also
 * part of the data layout. */
int shards_of(const char *path, size_t len, int n);

/* ---- a page in global order (docs/API.md section 7) -------------------
 *
 * Global order: count descending, then shard ascending, then path in
 * descending byte order (each shard's sorted set already gives count desc,
 * path desc). Ranks are 0-based positions in that order. */

struct shards_item {
    const char *path; /* borrowed */
    size_t len;
    long long count;
};

/* One shard's members, in that shard's order. */
struct shards_run {
    const struct shards_item *items;
    size_t n;
};

/* Merge the n runs into global order and keep the first `take` items:
 * written to out (room for take items; NULL: not written) and counted per
 * shard in taken[n] (NULL: not counted). Returns how many were kept (less
 * than take when the runs hold fewer). */
size_t shards_merge(int n, const struct shards_run *runs, size_t take, struct shards_item *out,
                    size_t *taken);

/* Ranks to probe in each shard to bracket the count c(R) of global rank R:
 * the score at hi[s] in every shard gives an upper bound (their maximum),
 * the score at lo[s] a lower bound (their minimum), because sum(hi) <= R
 * and sum(lo + 1) >= R + 1. est[s] estimates shard s's size (any positive
 * numbers; exact sizes give the tightest bracket). */
void shards_probe_ranks(int n, long long R, const long long *est, long long *lo, long long *hi);

/* The bracket L <= c(R) <= H from the probes: card[s] the shards' real
 * sizes, lo_val[s] / hi_val[s] the scores found at lo[s] / hi[s]
 * (SHARDS_NONE when the rank was past the end). When the lower probes do
 * not cover R + 1 members (the estimates were off), L is 0. Requires
 * R < sum(card). */
void shards_bracket(int n, long long R, const long long *card, const long long *lo,
                    const long long *lo_val, const long long *hi_val, long long *L, long long *H);

/* With every member's count known to be c(R) or more in a group of
 * eq[s] members per shard above which gt[s] members rank (count > c(R)),
 * write pos[s]: how many of shard s's members rank before R. Requires
 * sum(gt) <= R < sum(gt) + sum(eq). */
void shards_locate(int n, long long R, const long long *gt, const long long *eq, long long *pos);

#endif
