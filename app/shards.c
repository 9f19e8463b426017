/* shards.c -- counts spread over shards: tags, placement, global order
 *
 * In cluster mode the counters live in S shards (REDIS_SHARDS, fixed when
 * the dataset is created), each a sorted set with its own total, dropped
 * and writer keys under one hash tag, so a batch for one shard is one
 * single-slot script. This file is the arithmetic of that layout, with no
 * I/O (tests/unit/test_shards.c):
 *
 *   - placement: a path belongs to shard FNV-1a(path) mod S; shard i's tag
 *     is found by search so that its slot is the middle of the i-th of S
 *     equal parts of the slot space. An even split of slots over M masters
 *     then gives each master S/M shards (+-1): with the default S = 12,
 *     exactly 4 on each of 3 masters (and an even split over 2, 4, 6
 *     and 12). Both functions are part of the data
 *     layout and must never change;
 *   - a page in global order without reading `offset` members: the page
 *     [offset, offset + limit) is found by locating two global ranks, R =
 *     offset and R = offset + limit, as "how many members of each shard
 *     rank before R" (pos[s]); the page is then, per shard, the members at
 *     shard ranks [pos_start[s], pos_end[s]), read by rank (O(log n + k)
 *     in Redis), merged here. Locating R: probe each shard's score at a
 *     rank proportional to its size (shards_probe_ranks); the probes
 *     bracket the count c(R) of rank R (shards_bracket); ZCOUNTs then say
 *     how many members of each shard lie above and inside the bracket, and
 *     either all counts in the bracket are equal (shards_locate) or its
 *     members are few enough to read and merge (shards_merge). counters.c
 *     drives the rounds; when the bracket is wide it narrows it by
 *     bisection first.
 *
 * Why the probes bracket c(R): take any ranks r[s] with sum r[s] <= R. A
 * member counted above max_s score(r[s]) must be among the top r[s] of its
 * shard, so at most R members are above it and c(R) <= that maximum.
 * Likewise, with sum (r[s] + 1) >= R + 1, at least R + 1 members count
 * min_s score(r[s]) or more, so c(R) >= that minimum.
 */

#include "shards.h"

#include <stdint.h>
#include <stdio.h>

#include "slotmap.h"

/* Tags are searched over k < TAG_SEARCH_MAX: every slot is reached far
 * sooner (about 16384 tries on average). */
#define TAG_SEARCH_MAX 10000000

#define FNV_OFFSET 14695981039346656037ULL
#define FNV_PRIME  1099511628211ULL

int shards_target_slot(int i, int n)
{
    if (n < 1 || n > SHARDS_MAX || i < 0 || i >= n) {
        return -1;
    }
    return (int)(((2LL * i + 1) * SLOTMAP_SLOTS) / (2LL * n));
}

int shards_tag(int i, int n, char *tag, size_t size)
{
    int target = shards_target_slot(i, n);

    if (target < 0) {
        return -1;
    }
    for (long k = 0; k < TAG_SEARCH_MAX; k++) {
        int len = snprintf(tag, size, "%d.%ld", i, k);

        if (len < 0 || (size_t)len >= size) {
            return -1;
        }
        if ((int)(slotmap_crc16(tag, (size_t)len) & 0x3fff) == target) {
            return target;
        }
    }
    return -1;
}

int shards_of(const char *path, size_t len, int n)
{
    uint64_t h = FNV_OFFSET;

    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)path[i];
        h *= FNV_PRIME;
    }
    return n > 1 ? (int)(h % (uint64_t)n) : 0;
}

size_t shards_merge(int n, const struct shards_run *runs, size_t take, struct shards_item *out,
                    size_t *taken)
{
    size_t head[SHARDS_MAX] = {0};
    size_t kept = 0;

    if (n < 1 || n > SHARDS_MAX) {
        return 0;
    }
    while (kept < take) {
        int best = -1;

        /* The highest count wins; on a tie the lowest shard (scanned
         * first); within a shard the run's own order stands. */
        for (int s = 0; s < n; s++) {
            if (head[s] < runs[s].n &&
                (best < 0 || runs[s].items[head[s]].count > runs[best].items[head[best]].count)) {
                best = s;
            }
        }
        if (best < 0) {
            break;
        }
        if (out != NULL) {
            out[kept] = runs[best].items[head[best]];
        }
        head[best]++;
        kept++;
    }
    if (taken != NULL) {
        for (int s = 0; s < n; s++) {
            taken[s] = head[s];
        }
    }
    return kept;
}

void shards_probe_ranks(int n, long long R, const long long *est, long long *lo, long long *hi)
{
    long double total = 0;
    long long sum_hi = 0, sum_lo = 0;

    for (int s = 0; s < n; s++) {
        total += est[s] > 0 ? (long double)est[s] : 0;
    }
    for (int s = 0; s < n; s++) {
        long double share = total > 0 && est[s] > 0 ? (long double)est[s] / total : 0;
        long double y = (long double)(R + 1) * share;
        long long fy = (long long)y;

        /* hi: floor(R * share), lo: ceil((R + 1) * share) - 1 (-1 for a
         * shard with no share: no lower probe). */
        hi[s] = (long long)((long double)R * share);
        lo[s] = ((long double)fy == y ? fy : fy + 1) - 1;
        sum_hi += hi[s];
        sum_lo += lo[s] + 1;
    }
    /* Floating point may miss by one either way; the bounds need exact
     * sums (sum hi <= R, sum (lo + 1) >= R + 1), so mend them. */
    for (int s = 0; sum_hi > R && s < n; s++) {
        if (hi[s] > 0) {
            hi[s]--;
            sum_hi--;
            s--;
        }
    }
    for (int s = 0; sum_lo < R + 1 && s < n; s++) {
        if (est[s] > 0) {
            lo[s]++;
            sum_lo++;
        }
    }
}

void shards_bracket(int n, long long R, const long long *card, const long long *lo,
                    const long long *lo_val, const long long *hi_val, long long *L, long long *H)
{
    long long cover = 0, lmin = SHARDS_NONE, hmax = SHARDS_NONE;

    for (int s = 0; s < n; s++) {
        if (lo[s] >= 0 && lo[s] < card[s] && lo_val[s] != SHARDS_NONE) {
            cover += lo[s] + 1;
            if (lmin == SHARDS_NONE || lo_val[s] < lmin) {
                lmin = lo_val[s];
            }
        }
        if (hi_val[s] != SHARDS_NONE && (hmax == SHARDS_NONE || hi_val[s] > hmax)) {
            hmax = hi_val[s];
        }
    }
    *H = hmax == SHARDS_NONE ? 0 : hmax;
    *L = cover >= R + 1 && lmin != SHARDS_NONE ? lmin : 0;
    if (*L > *H) {
        *L = *H; /* only when the shards changed between the reads */
    }
}

void shards_locate(int n, long long R, const long long *gt, const long long *eq, long long *pos)
{
    long long above = 0, k;

    for (int s = 0; s < n; s++) {
        above += gt[s];
    }
    k = R - above; /* members of the tied group that rank before R */
    for (int s = 0; s < n; s++) {
        long long take = k < 0 ? 0 : (k < eq[s] ? k : eq[s]);

        pos[s] = gt[s] + take;
        k -= take;
    }
}
