/* runs.h -- test-run records in Redis */

#ifndef REQSTATS_RUNS_H
#define REQSTATS_RUNS_H

#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "config.h"
#include "run.h"

struct runs;

/* The run records of one process on router cl (borrowed; must outlive
 * them). Returns NULL when out of memory. Caller frees with runs_free(). */
struct runs *runs_new(const struct config *cfg, struct cluster *cl);

/* Free. Accepts NULL. */
void runs_free(struct runs *rs);

/* Record a new queued run (id, requests and created_ms from r) and queue
 * it, unless max_active runs are queued or running already. Keeps the
 * recent-runs list to `kept` entries. Returns 0 when queued, 1 when the
 * bound was reached, -1 when Redis is down or failed. */
int runs_create(struct runs *rs, const struct run *r, int max_active, int kept);

/* Read the run `id`. Returns 0 and fills *r, 1 when no such run, -1 on
 * failure. */
int runs_get(struct runs *rs, const char *id, struct run *r);

/* Read up to max of the most recent runs, newest first, into runs[]; sets
 * *n. Returns 0 or -1. */
int runs_list(struct runs *rs, size_t max, struct run *out, size_t *n);

/* Take the oldest queued run, mark it running (started, heartbeat = now,
 * owner) and fill *r. Returns 0 when a run was claimed, 1 when none is
 * queued, -1 on failure. */
int runs_claim(struct runs *rs, const char *owner, int64_t now_ms, struct run *r);

/* Write a running run's progress (counters, pool, error, heartbeat).
 * Returns 0 or -1. */
int runs_progress(struct runs *rs, const struct run *r);

/* Write a run's final state (status, counters, finished_ms, error), take
 * it off the active set and let its record expire after retention_s. Only
 * applies while the record still says running under `owner`. Returns 0 or
 * -1. */
int runs_finish(struct runs *rs, const struct run *r, const char *owner, int retention_s);

/* Mark failed, with `reason`, every running run whose heartbeat is older
 * than stale_ms, and drop ids whose record vanished. Returns the number of
 * runs marked, or -1. */
int runs_sweep(struct runs *rs, int64_t now_ms, int64_t stale_ms, const char *reason,
               int retention_s);

/* Runs by status (indexed by enum run_status): the recent runs kept
 * (TEST_RUNS_KEPT) and any active one, for /metrics. by[] has
 * RUN_STATUSES entries. Returns 0, or -1 (by[] then all 0). */
int runs_by_status(struct runs *rs, long long *by);

/* Cancel the run `id` (taking it off the queue and the active set; a
 * running run's runner stops on its next status check). Returns 0 when
 * cancelled, 1 when there is no such run, 2 when it has ended already, -1
 * on failure. */
int runs_cancel(struct runs *rs, const char *id, int64_t now_ms, int retention_s);

/* Read only the status of run `id`. Returns 0 and sets *status, 1 when no
 * such run, -1 on failure. */
int runs_status(struct runs *rs, const char *id, enum run_status *status);

#endif
