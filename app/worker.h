/* worker.h -- a prefork FastCGI worker: connections, requests, flushes */

#ifndef REQSTATS_WORKER_H
#define REQSTATS_WORKER_H

#include "config.h"

struct statcache;
struct metrics;

/* Run worker number `index` on the inherited listen socket until SIGTERM,
 * SIGINT or the death of the master, then finish what is in flight, flush
 * the hits it holds (bounded by SHUTDOWN_TIMEOUT_MS) and return the exit
 * status: 0, or CONFIG_EXIT_FATAL when it cannot start at all. Called in
 * the child right after fork.
 *
 * load is memory shared by the master and every worker (cfg->workers ints):
 * load[i] is the number of FastCGI connections worker i holds, -1 while no
 * worker i runs. Each worker writes only its own entry; workers read all of
 * them to take new connections only while they are among the least loaded.
 * sc is the /stats/ cache all workers share (statcache.h), or NULL; mx the
 * shared figures of /metrics (metrics.h), where the worker publishes its
 * buffered hits and batch latencies, or NULL. */
int worker_run(const struct config *cfg, int listen_fd, int index, int *load, struct statcache *sc,
               struct metrics *mx);

#endif
