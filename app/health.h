/* health.h -- the --health probe used by container health checks */

#ifndef REQSTATS_HEALTH_H
#define REQSTATS_HEALTH_H

#include "config.h"

/* Check that the FastCGI socket accepts connections and that Redis
 * answers PING, without sending a request (so nothing is counted). Prints
 * one line on stdout. Returns 0 when healthy, 1 otherwise. */
int health_check(const struct config *cfg);

#endif
