/* hitbuf.c -- a worker's hits that Redis has not taken yet
 *
 * Each hit a worker answers is first added here, aggregated by path, and
 * leaves only when Redis acknowledges the batch that carried it. That makes
 * two promises cheap to keep: counting never waits for Redis (a request
 * costs one hash lookup), and an unreachable Redis loses nothing until the
 * memory bound is reached. Past the bound, hits of paths not already
 * waiting are dropped and tallied, and the tally travels to Redis with the
 * next batch so the loss is visible in /stats/.
 *
 * Waiting hits live in a jansson object used as a hash table: its hashing
 * is seeded per process (collision floods from hostile paths do not
 * degrade it) and it iterates in insertion order, which gives "oldest
 * first" for free. The open batch is a private copy in one allocation, so
 * new hits of the same path keep aggregating while a write is in flight.
 *
 * Beside the paths, hitbuf_add_at() tallies hits per history interval (10
 * s of wall clock): the tallies travel with the next batch, so hits held
 * while Redis was down still land in the interval they were counted in.
 * At most HITBUF_INTERVALS_MAX tallies, apart from max_bytes (24 h of them
 * are about 140 KB).
 *
 * Memory accounting is an estimate, not malloc's truth: each path costs its
 * length plus ENTRY_OVERHEAD, in the waiting table and in the batch alike.
 */

#include "hitbuf.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* Approximate per-path cost in jansson's table and in a batch. */
#define ENTRY_OVERHEAD 96

struct hitbuf {
    json_t *waiting; /* path -> json integer count, in insertion order */
    uint64_t waiting_hits;
    size_t bytes, max_bytes;
    uint64_t dropped;       /* not yet moved into a batch */
    uint64_t dropped_total; /* since creation */
    uint64_t next_seq;
    struct hitbatch batch;
    void *batch_mem; /* NULL when no batch is open */
    size_t batch_bytes;
    /* ---- history interval tallies, oldest first (hitbuf_add_at) ---- */
    struct hitbatch_interval *intervals;
    size_t nintervals, intervals_cap;
};

struct hitbuf *hitbuf_new(size_t max_bytes)
{
    struct hitbuf *hb = calloc(1, sizeof(*hb));

    if (hb == NULL) {
        return NULL;
    }
    hb->waiting = json_object();
    if (hb->waiting == NULL) {
        free(hb);
        return NULL;
    }
    hb->max_bytes = max_bytes;
    hb->next_seq = 1;
    return hb;
}

void hitbuf_free(struct hitbuf *hb)
{
    if (hb == NULL) {
        return;
    }
    json_decref(hb->waiting);
    free(hb->batch_mem);
    free(hb->intervals);
    free(hb);
}

int hitbuf_add(struct hitbuf *hb, const char *path, uint64_t n)
{
    json_t *v = json_object_get(hb->waiting, path);
    size_t cost;

    if (v != NULL) {
        json_integer_set(v, json_integer_value(v) + (json_int_t)n);
        hb->waiting_hits += n;
        return 0;
    }
    cost = strlen(path) + ENTRY_OVERHEAD;
    if (hb->bytes + cost > hb->max_bytes ||
        json_object_set_new_nocheck(hb->waiting, path, json_integer((json_int_t)n)) != 0) {
        hb->dropped += n;
        hb->dropped_total += n;
        return -1;
    }
    hb->bytes += cost;
    hb->waiting_hits += n;
    return 0;
}

size_t hitbuf_waiting_paths(const struct hitbuf *hb)
{
    return json_object_size(hb->waiting);
}

uint64_t hitbuf_waiting_hits(const struct hitbuf *hb)
{
    return hb->waiting_hits;
}

uint64_t hitbuf_unwritten_hits(const struct hitbuf *hb)
{
    return hb->waiting_hits + (hb->batch_mem != NULL ? hb->batch.hits : 0);
}

uint64_t hitbuf_dropped_total(const struct hitbuf *hb)
{
    return hb->dropped_total;
}

size_t hitbuf_bytes(const struct hitbuf *hb)
{
    return hb->bytes;
}

const struct hitbatch *hitbuf_batch(const struct hitbuf *hb)
{
    return hb->batch_mem != NULL ? &hb->batch : NULL;
}

const struct hitbatch *hitbuf_batch_open(struct hitbuf *hb, size_t max_paths)
{
    size_t n = 0, strbytes = 0, cost = 0;
    struct hitbatch_entry *entries;
    char *strings;
    const char *key;
    void *iter;

    if (hb->batch_mem != NULL) {
        return &hb->batch;
    }
    if (json_object_size(hb->waiting) == 0 && hb->dropped == 0 && hb->nintervals == 0) {
        return NULL;
    }
    /* First pass: size the oldest max_paths entries. */
    for (iter = json_object_iter(hb->waiting); iter != NULL && n < max_paths;
         iter = json_object_iter_next(hb->waiting, iter)) {
        strbytes += strlen(json_object_iter_key(iter)) + 1;
        n++;
    }
    /* Layout: interval tallies (aligned first), entries, strings. */
    hb->batch_mem = malloc(hb->nintervals * sizeof(struct hitbatch_interval) +
                           n * sizeof(*entries) + strbytes + 1);
    if (hb->batch_mem == NULL) {
        return NULL;
    }
    entries = (struct hitbatch_entry *)((struct hitbatch_interval *)hb->batch_mem + hb->nintervals);
    strings = (char *)(entries + n);

    /* Second pass: move them. Deleting the current key invalidates its
     * iterator, so always take the first entry of the table. */
    memset(&hb->batch, 0, sizeof(hb->batch));
    for (size_t i = 0; i < n; i++) {
        size_t len;

        iter = json_object_iter(hb->waiting);
        key = json_object_iter_key(iter);
        len = strlen(key);
        memcpy(strings, key, len + 1);
        entries[i].path = strings;
        entries[i].len = len;
        entries[i].count = (uint64_t)json_integer_value(json_object_iter_value(iter));
        hb->batch.hits += entries[i].count;
        strings += len + 1;
        cost += len + ENTRY_OVERHEAD;
        json_object_del(hb->waiting, entries[i].path);
    }
    hb->waiting_hits -= hb->batch.hits;
    hb->batch.seq = hb->next_seq++;
    hb->batch.n = n;
    hb->batch.entries = entries;
    hb->batch.dropped = hb->dropped;
    hb->dropped = 0;
    if (hb->nintervals > 0) {
        memcpy(hb->batch_mem, hb->intervals, hb->nintervals * sizeof(*hb->intervals));
    }
    hb->batch.intervals = hb->batch_mem;
    hb->batch.nintervals = hb->nintervals;
    hb->nintervals = 0;
    /* The paths' cost moves from the table to the batch: same total. */
    hb->batch_bytes = cost;
    return &hb->batch;
}

void hitbuf_batch_close(struct hitbuf *hb)
{
    if (hb->batch_mem == NULL) {
        return;
    }
    free(hb->batch_mem);
    hb->batch_mem = NULL;
    hb->bytes -= hb->batch_bytes;
    hb->batch_bytes = 0;
    memset(&hb->batch, 0, sizeof(hb->batch));
}

/* ---- history interval tallies ------------------------------------------ */

static int tally_interval(struct hitbuf *hb, int64_t interval, uint64_t n)
{
    struct hitbatch_interval *last = hb->nintervals > 0 ? &hb->intervals[hb->nintervals - 1] : NULL;

    if (last != NULL && interval <= last->interval) {
        last->count += n;
        return 0;
    }
    if (hb->intervals != NULL && hb->nintervals == HITBUF_INTERVALS_MAX) {
        memmove(hb->intervals, hb->intervals + 1, (hb->nintervals - 1) * sizeof(*hb->intervals));
        hb->nintervals--;
    }
    if (hb->intervals == NULL || hb->nintervals == hb->intervals_cap) {
        size_t cap = hb->intervals_cap == 0 ? 4 : hb->intervals_cap * 2;
        struct hitbatch_interval *grown;

        if (cap > HITBUF_INTERVALS_MAX) {
            cap = HITBUF_INTERVALS_MAX;
        }
        grown = realloc(hb->intervals, cap * sizeof(*grown));
        if (grown == NULL) {
            return -1;
        }
        hb->intervals = grown;
        hb->intervals_cap = cap;
    }
    hb->intervals[hb->nintervals].interval = interval;
    hb->intervals[hb->nintervals].count = n;
    hb->nintervals++;
    return 0;
}

int hitbuf_add_at(struct hitbuf *hb, const char *path, uint64_t n, int64_t interval)
{
    if (hitbuf_add(hb, path, n) != 0) {
        return -1;
    }
    /* Out of memory for a tally loses a history point, never the hit. */
    if (interval >= 0) {
        tally_interval(hb, interval, n);
    }
    return 0;
}
