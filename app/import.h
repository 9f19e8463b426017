/* import.h -- reqstats --import: a standalone dataset into a Redis Cluster */
#ifndef REQSTATS_IMPORT_H
#define REQSTATS_IMPORT_H

#include "config.h"

/* Copy the standalone dataset at REDIS_HOST:REDIS_PORT into the empty
 * cluster dataset at REDIS_CLUSTER (same REDIS_PREFIX), or finish an
 * interrupted import (import.c). Logs its progress and outcome. Returns
 * the process exit status: 0 done, 1 Redis failed or the source changed
 * (run it again), CONFIG_EXIT_FATAL when it must not run. */
int import_run(const struct config *cfg);

#endif
