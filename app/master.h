/* master.h -- the supervising process: listen socket, children, signals */

#ifndef REQSTATS_MASTER_H
#define REQSTATS_MASTER_H

#include "config.h"

/* Open the listen socket, start WORKERS workers and (when test runs are
 * enabled) the runner, and supervise them until SIGTERM or SIGINT. Returns
 * the process exit status: 0 after a clean shutdown, CONFIG_EXIT_FATAL
 * when the socket cannot be opened or every worker failed fatally. */
int master_run(const struct config *cfg);

#endif
