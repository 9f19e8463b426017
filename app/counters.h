/* counters.h -- request counters in Redis: shards, batches, the report */

#ifndef REQSTATS_COUNTERS_H
#define REQSTATS_COUNTERS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "hitbuf.h"
#include "shards.h"

struct counters;

/* The counters of one process on router cl (borrowed; must outlive
 * them). Nothing is read or written yet. Returns NULL when out of memory,
 * getrandom fails or no hash tag was found for a shard. Caller frees with
 * counters_free(). */
struct counters *counters_new(const struct config *cfg, struct cluster *cl);

/* Free the counters. Accepts NULL. */
void counters_free(struct counters *ctr);

/* The master's start-up check: log the mode, the nodes found and the
 * shard layout; in cluster mode record REDIS_SHARDS in a new dataset or
 * compare it with the recorded one. Returns 0 when fine, 1 when Redis did
 * not answer (logged; every process checks again on first contact), -1
 * when the recorded layout differs (logged: refuse to start). */
int counters_startup(struct counters *ctr);

/* 1 once this process found a recorded layout that differs from its own
 * (it must exit with CONFIG_EXIT_FATAL), else 0. */
int counters_fatal(const struct counters *ctr);

/* ---- counting: the worker's batches ------------------------------------ */

/* 1 while a write of the open batch is in flight, else 0. */
int counters_batch_busy(const struct counters *ctr);

/* Write batch b (borrowed until counters_batch_io() reports it done; the
 * same b is passed again to retry). Its hits are split by shard into one
 * EVAL per shard, each with its own sequence number per (process, shard),
 * that skips a sequence the shard has already applied: a retry never
 * counts twice. Parts already applied are not sent again; parts whose
 * node is backing off wait. Returns 0 when some write is under way, -1
 * when none could be started (retry after counters_retry_at()). */
int counters_batch_send(struct counters *ctr, const struct hitbatch *b, int64_t now_ms);

enum counters_io { COUNTERS_IO_PENDING, COUNTERS_IO_DONE };

/* Drive the batch connection fd after poll reported events on it
 * (CLUSTER_READ / CLUSTER_WRITE), or only check deadlines (fd -1).
 * Returns COUNTERS_IO_DONE once every part of the open batch has been
 * applied (or had been): the caller closes the batch. */
enum counters_io counters_batch_io(struct counters *ctr, int fd, unsigned events, int64_t now_ms);

/* Monotonic ms by which an in-flight write must be answered, or -1. */
int64_t counters_batch_deadline(const struct counters *ctr);

/* Monotonic ms before which a waiting part cannot be sent (0: now). */
int64_t counters_retry_at(const struct counters *ctr);

/* ---- the report ------------------------------------------------------- */

struct counters_page {
    long long total;   /* total_requests over every shard */
    long long unique;  /* unique_urls */
    long long dropped; /* hits dropped on buffer overflow, ever */
    size_t n;
    struct shards_item *entries; /* global order (shards.h) */
    void *priv;                  /* owns the strings */
};

/* Read entries [offset, offset + limit) in global order and the totals.
 * Standalone: one MULTI/EXEC round trip, O(log n + limit). Sharded: a few
 * round trips whose Redis work grows with the shards, log n and limit,
 * never with offset (shards.h). Returns 0, or -1 when Redis is down, the
 * cluster cannot serve, or a reply made no sense. Caller frees the page
 * with counters_page_free(), also after a failure. */
int counters_page(struct counters *ctr, long long offset, long long limit,
                  struct counters_page *page);

/* Release what counters_page() filled in. Accepts a zeroed page. */
void counters_page_free(struct counters_page *page);

/* ---- totals, history, reset (docs/API.md sections 8, 10, 11) ----------- */

struct counters_totals {
    long long total, unique, dropped;
};

/* total_requests, unique_urls and dropped_hits over every shard, in one
 * round trip. Returns 0 or -1. */
int counters_totals(struct counters *ctr, struct counters_totals *out);

/* History intervals per hour (an interval is HITBUF_INTERVAL_S seconds). */
#define COUNTERS_HISTORY_PER_HOUR (3600 / HITBUF_INTERVAL_S)

/* Most hours one history read may span: 1440 minutes of intervals. */
#define COUNTERS_HISTORY_HOURS_MAX 25

/* Read the request counts of n consecutive history intervals (index =
 * epoch seconds / HITBUF_INTERVAL_S) from `first` into counts[] (n
 * entries, 0 for an interval without requests), summed over the shards,
 * in one round trip: O(shards x n). Returns 0, or -1 when Redis is down or
 * failed or the span is over COUNTERS_HISTORY_HOURS_MAX hours. */
int counters_history(struct counters *ctr, int64_t first, size_t n, long long *counts);

/* Remove every count, the totals, the dropped-hit counts and every
 * history point: one atomic script per shard, all shards in one round
 * trip; now_s is the wall clock in epoch seconds. Writer seq keys and test
 * runs stay. Returns 0 and fills *out with the figures removed, or -1 when
 * Redis is down or failed (some shards may then be reset already). */
int counters_reset(struct counters *ctr, int64_t now_s, struct counters_totals *out);

/* ---- import of a standalone dataset (reqstats --import, import.c) ----- */

/* The number of shards (1 standalone). */
int counters_shards(const struct counters *ctr);

enum counters_import {
    COUNTERS_IMPORT_GO,           /* empty, or an import to resume: go on */
    COUNTERS_IMPORT_NOT_EMPTY,    /* counts of its own and no import running */
    COUNTERS_IMPORT_DONE_ALREADY, /* an import finished into it */
    COUNTERS_IMPORT_LAYOUT,       /* its recorded shard count differs (logged) */
    COUNTERS_IMPORT_FAILED        /* Redis down or failed, or not cluster mode */
};

/* Open an import into the cluster dataset of ctr: check (or record) the
 * shard layout, check that the dataset is empty or has an import running,
 * and mark it running (P{meta}import). */
enum counters_import counters_import_begin(struct counters *ctr);

/* Write n entries (path and count; their counts replace any there) into
 * their shards, one ZADD per shard touched, in one round trip, and add
 * each count to sums[shard] (counters_shards() entries). Returns 0 or -1. */
int counters_import_entries(struct counters *ctr, const struct shards_item *e, size_t n,
                            long long *sums);

/* Write one hour's history (counts[] of its COUNTERS_HISTORY_PER_HOUR
 * intervals, as counters_history() reads them) into shard 0, replacing
 * what the hour held; an hour without requests, or already past its
 * retention at now_s (epoch seconds), is skipped. Returns 1 when written,
 * 0 when skipped, -1 when Redis failed. */
int counters_import_history(struct counters *ctr, int64_t hour, const long long *counts,
                            int64_t now_s);

/* Set every shard's total to sums[shard] and shard 0's dropped count to
 * dropped, then mark the import done. Returns 0 or -1. */
int counters_import_end(struct counters *ctr, const long long *sums, long long dropped);

#endif
