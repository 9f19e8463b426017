/* store.h -- request counters and test-run records in Redis */

#ifndef REQSTATS_STORE_H
#define REQSTATS_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "hitbuf.h"
#include "run.h"

struct store;

/* Create a store for one process. Nothing connects yet: connections are
 * made on first use and remade, with backoff, after any failure. Returns
 * NULL when out of memory or getrandom fails. Caller frees with
 * store_free(). cfg is borrowed and must outlive the store. */
struct store *store_new(const struct config *cfg);

/* Close every connection and free the store. Accepts NULL. */
void store_free(struct store *st);

/* 1 while Redis is considered down (after a failure, until the backoff
 * expires and a new attempt succeeds), else 0. */
int store_down(const struct store *st);

/* ---- Counting: the worker's non-blocking batch channel ---------------- */

/* Register the batch connection, whenever one exists, in the epoll set
 * epfd with data.u64 = tag; the store keeps the registration up to date
 * (EPOLLIN, EPOLLOUT while it has bytes to send) across reconnects. */
void store_batch_attach(struct store *st, int epfd, uint64_t tag);

/* 1 while a batch write is in flight, else 0. */
int store_batch_busy(const struct store *st);

/* Start writing batch b (borrowed; its contents are copied). It is applied
 * with one EVAL that skips batches whose seq this process already wrote,
 * so sending the same batch again after a timeout never counts twice.
 * Returns 0 when the write is under way, -1 when Redis is down or the
 * connection failed (b stays the caller's to retry later). */
int store_batch_send(struct store *st, const struct hitbatch *b, int64_t now_ms);

enum store_io { STORE_IO_PENDING, STORE_IO_DONE, STORE_IO_FAILED };

/* Drive the batch connection after epoll reported it ready (events are
 * EPOLL* bits, 0 for a timer tick) or its deadline passed. Returns
 * STORE_IO_DONE once Redis has applied (or had already applied) the batch,
 * STORE_IO_FAILED when the connection failed or timed out (it is dropped;
 * retry after the backoff), STORE_IO_PENDING otherwise. */
enum store_io store_batch_io(struct store *st, uint32_t events, int64_t now_ms);

/* Monotonic ms by which the in-flight batch must be answered, or -1. */
int64_t store_batch_deadline(const struct store *st);

/* Monotonic ms before which no new connection is attempted (0 if none). */
int64_t store_retry_at(const struct store *st);

/* ---- Reading the report ----------------------------------------------- */

struct store_entry {
    const char *path; /* borrowed from the page, NUL-terminated */
    size_t len;
    long long count;
};

struct store_page {
    long long total;   /* total_requests */
    long long unique;  /* unique_urls */
    long long dropped; /* hits dropped on buffer overflow, ever */
    size_t n;
    struct store_entry *entries; /* most requested first */
    void *priv;                  /* owns the strings */
};

/* Read one page of the report, entries [offset, offset + limit), and the
 * totals, atomically (MULTI/EXEC), in one round trip: O(log n + limit).
 * Returns 0, or -1 when Redis is down or failed. Caller frees the page
 * with store_page_free(), also after a failure. */
int store_page(struct store *st, long long offset, long long limit, struct store_page *page);

/* Release what store_page() filled in. Accepts a zeroed page. */
void store_page_free(struct store_page *page);

/* PING over the blocking connection. Returns 0 if Redis answered. */
int store_ping(struct store *st);

/* ---- Test runs ------------------------------------------------------- */

/* Record a new queued run (id, requests and created_ms from r) and queue
 * it, unless max_active runs are queued or running already. Keeps the
 * recent-runs list to `kept` entries. Returns 0 when queued, 1 when the
 * bound was reached, -1 when Redis is down or failed. */
int store_run_create(struct store *st, const struct run *r, int max_active, int kept);

/* Read the run `id`. Returns 0 and fills *r, 1 when no such run, -1 on
 * failure. */
int store_run_get(struct store *st, const char *id, struct run *r);

/* Read up to max of the most recent runs, newest first, into runs[]; sets
 * *n. Returns 0 or -1. */
int store_run_list(struct store *st, size_t max, struct run *runs, size_t *n);

/* Take the oldest queued run, mark it running (started, heartbeat = now,
 * owner) and fill *r. Returns 0 when a run was claimed, 1 when none is
 * queued, -1 on failure. */
int store_run_claim(struct store *st, const char *owner, int64_t now_ms, struct run *r);

/* Write a running run's progress (counters, pool, error, heartbeat).
 * Returns 0 or -1. */
int store_run_progress(struct store *st, const struct run *r);

/* Write a run's final state (status, counters, finished_ms, error), take
 * it off the active set and let its record expire after retention_s. Only
 * applies while the record still says running under `owner`. Returns 0 or
 * -1. */
int store_run_finish(struct store *st, const struct run *r, const char *owner, int retention_s);

/* Mark failed, with `reason`, every running run whose heartbeat is older
 * than stale_ms, and drop ids whose record vanished. Returns the number of
 * runs marked, or -1. */
int store_run_sweep(struct store *st, int64_t now_ms, int64_t stale_ms, const char *reason,
                    int retention_s);

/* ==== Operator endpoints (docs/API.md sections 8, 10, 11) ============== */

/* Most hours one history read may span: 1440 minutes of intervals. */
#define STORE_HISTORY_HOURS_MAX 25

/* Read the cluster-wide request counts of n consecutive history intervals
 * (index = epoch seconds / HITBUF_INTERVAL_S) from `first` into counts[]
 * (n entries, 0 for an interval without requests), in one round trip:
 * O(n). Returns 0, or -1 when Redis is down or failed or the span is over
 * STORE_HISTORY_HOURS_MAX hours. */
int store_history(struct store *st, int64_t first, size_t n, long long *counts);

/* What a reset removed. */
struct store_reset {
    long long total, unique, dropped;
};

/* Remove every count, the total, the dropped-hit count and every history
 * point, atomically (one script); now_s is the wall clock in epoch
 * seconds. Writer seq keys and test runs stay. Returns 0 and fills *out
 * with the figures removed, or -1 when Redis is down or failed. */
int store_reset(struct store *st, int64_t now_s, struct store_reset *out);

/* The Redis-side figures of /metrics. runs[] is indexed by enum
 * run_status: runs in the recent-runs list plus active ones. */
struct store_metrics {
    long long total, unique, dropped;
    long long runs[RUN_STATUSES];
};

/* Read them in one round trip, O(TEST_RUNS_KEPT). Returns 0 or -1. */
int store_metrics(struct store *st, struct store_metrics *m);

/* Cancel the run `id` (taking it off the queue and the active set; a
 * running run's runner stops on its next status check). Returns 0 when
 * cancelled, 1 when there is no such run, 2 when it has ended already, -1
 * on failure. */
int store_run_cancel(struct store *st, const char *id, int64_t now_ms, int retention_s);

/* Read only the status of run `id`. Returns 0 and sets *status, 1 when no
 * such run, -1 on failure. */
int store_run_status(struct store *st, const char *id, enum run_status *status);

#endif
