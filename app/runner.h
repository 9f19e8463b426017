/* runner.h -- the process that executes test runs with libcurl */

#ifndef REQSTATS_RUNNER_H
#define REQSTATS_RUNNER_H

#include "config.h"

/* Execute queued test runs one at a time until SIGTERM/SIGINT or the death
 * of the master; a run interrupted by the stop is recorded as failed.
 * Returns the exit status: 0, or CONFIG_EXIT_FATAL when libcurl cannot be
 * initialised. Called in the child right after fork. */
int runner_run(const struct config *cfg);

#endif
