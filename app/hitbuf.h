/* hitbuf.h -- a worker's hits that Redis has not taken yet */

#ifndef REQSTATS_HITBUF_H
#define REQSTATS_HITBUF_H

#include <stddef.h>
#include <stdint.h>

struct hitbuf;

struct hitbatch_entry {
    const char *path; /* NUL-terminated canonical path, owned by the batch */
    size_t len;
    uint64_t count;
};

/* Hits counted in one history interval (docs/API.md section 10): the
 * interval's index is epoch seconds / HITBUF_INTERVAL_S. */
struct hitbatch_interval {
    int64_t interval;
    uint64_t count;
};

/* The hits being written to Redis. A batch is immutable from the moment it
 * is opened until it is closed: a write that timed out is retried with the
 * same seq and contents, which is what makes retries idempotent. */
struct hitbatch {
    uint64_t seq; /* 1, 2, 3... per hitbuf: the idempotency key */
    size_t n;     /* number of entries */
    const struct hitbatch_entry *entries;
    uint64_t hits;     /* sum of the entries' counts */
    uint64_t dropped;  /* hits dropped on overflow, reported with this batch */
    size_t nintervals; /* per-interval tallies, oldest first (0 without history) */
    const struct hitbatch_interval *intervals;
};

/* Length of a history interval in seconds. */
#define HITBUF_INTERVAL_S 10

/* Most interval tallies a buffer holds (24 hours of intervals plus one):
 * while Redis is down for longer, the oldest tally is forgotten, which
 * only loses a history point older than the history keeps anyway. */
#define HITBUF_INTERVALS_MAX (24 * 3600 / HITBUF_INTERVAL_S + 1)

/* Create an empty buffer that uses at most max_bytes (paths plus a fixed
 * overhead per entry) for waiting and in-flight hits. Returns NULL when out
 * of memory. Caller frees with hitbuf_free(). */
struct hitbuf *hitbuf_new(size_t max_bytes);

/* Free the buffer and any open batch. Accepts NULL. */
void hitbuf_free(struct hitbuf *hb);

/* Add n hits of path (NUL-terminated, no NUL inside). Returns 0, or -1 when
 * the path is not yet waiting and it does not fit: the hits are then
 * dropped and added to the dropped tally. Hits of a path already waiting
 * always fit. */
int hitbuf_add(struct hitbuf *hb, const char *path, uint64_t n);

/* hitbuf_add(), and when the hits were counted (not dropped) and
 * interval >= 0, add n to the tally of that history interval as well. An
 * interval older than the newest tallied one (the wall clock stepped back)
 * is tallied in the newest. The tallies live beside the paths, apart from
 * max_bytes, at most HITBUF_INTERVALS_MAX of them. Returns as hitbuf_add(). */
int hitbuf_add_at(struct hitbuf *hb, const char *path, uint64_t n, int64_t interval);

/* Distinct paths and hits waiting (not in the open batch). */
size_t hitbuf_waiting_paths(const struct hitbuf *hb);
uint64_t hitbuf_waiting_hits(const struct hitbuf *hb);

/* Hits not yet dropped but not yet acknowledged by Redis: waiting plus the
 * open batch. What a worker would lose if it died now. */
uint64_t hitbuf_unwritten_hits(const struct hitbuf *hb);

/* Dropped hits since the buffer was created (monotonic, for logs). */
uint64_t hitbuf_dropped_total(const struct hitbuf *hb);

/* Bytes accounted against max_bytes right now. */
size_t hitbuf_bytes(const struct hitbuf *hb);

/* The open batch, or NULL. Borrowed: valid until hitbuf_batch_close() or
 * hitbuf_free(). */
const struct hitbatch *hitbuf_batch(const struct hitbuf *hb);

/* Open a batch unless one is open: move up to max_paths of the oldest
 * waiting paths (first added first), the dropped tally and every interval
 * tally into it (the history may thus run ahead of the paths by the
 * batches still to come, never behind). Returns
 * the open batch (possibly the one that was already open), or NULL when
 * nothing is waiting or memory for the batch could not be allocated (the
 * hits then stay waiting). */
const struct hitbatch *hitbuf_batch_open(struct hitbuf *hb, size_t max_paths);

/* Redis has applied the open batch: forget it. No-op when none is open. */
void hitbuf_batch_close(struct hitbuf *hb);

#endif
