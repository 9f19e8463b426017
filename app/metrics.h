/* metrics.h -- the figures of GET /metrics and their Prometheus text */

#ifndef REQSTATS_METRICS_H
#define REQSTATS_METRICS_H

#include <stdint.h>
#include <stdio.h>

#include "run.h"

/* Per-process figures that Redis does not hold, in memory the master maps
 * before it forks (like the connection loads): each worker writes its own
 * slot, the master writes restarts and which workers run, and whichever
 * worker answers /metrics reads them all. */
struct metrics;

/* Map the figures for nworkers workers; start_s is the master's start
 * time (epoch seconds). NULL with errno set on failure. Master, before
 * the fork. */
struct metrics *metrics_new(int nworkers, int64_t start_s);

/* Unmap (master, after its children are gone). Accepts NULL. */
void metrics_free(struct metrics *mx);

/* Master: worker `index` is running (up = 1) or gone (0; its held hits
 * are gone with it, so its buffered figure is cleared). */
void metrics_worker_up(struct metrics *mx, int index, int up);

/* Master: a worker exited unexpectedly and is being restarted. */
void metrics_worker_restart(struct metrics *mx);

/* Worker `index`: hits held in memory, not yet acknowledged by Redis. */
void metrics_set_buffered(struct metrics *mx, int index, uint64_t hits);

/* Worker `index`: one batch was answered by Redis after us microseconds. */
void metrics_batch_observe(struct metrics *mx, int index, int64_t us);

/* The Redis-side figures: totals over every shard, and test runs by
 * status (indexed by enum run_status: the recent runs kept and any active
 * one). */
struct metrics_redis {
    long long total, unique, dropped;
    long long runs[RUN_STATUSES];
};

/* One Redis Cluster node as a scrape saw it. */
struct metrics_node {
    const char *name; /* "host:port", borrowed */
    int up;           /* 1: it answered a PING during this scrape */
};

/* Write the Prometheus text exposition (format 0.0.4) to out: the Redis
 * series from redis (NULL while Redis is down: reqstats_redis_up 0 and no
 * Redis-derived series at all), then the process series from mx (NULL:
 * none). With nnodes > 0 (cluster mode) reqstats_redis_up is one sample
 * per node of nodes[], labelled node="host:port"; else one unlabelled
 * sample. Returns 0, or -1 if writing to out failed. */
int metrics_render(FILE *out, const struct metrics *mx, const struct metrics_redis *redis,
                   const struct metrics_node *nodes, int nnodes);

/* The Content-Type of that text. */
#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

#endif
