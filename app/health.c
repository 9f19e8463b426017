/* health.c -- the --health probe used by container health checks
 *
 * A health check must not disturb what it checks: it opens and closes a
 * connection to the FastCGI socket (which a worker accepts and drops
 * without a request, so nothing is counted) and sends Redis a PING (in
 * cluster mode: reads the slot map and PINGs every master).
 */

#include "health.h"

#include <stdio.h>

#include "listener.h"
#include "cluster.h"

#define PROBE_TIMEOUT_MS 2000

int health_check(const struct config *cfg)
{
    struct cluster *cl;
    char err[256];
    int rc = 0;

    if (listener_probe(cfg, PROBE_TIMEOUT_MS, err, sizeof(err)) != 0) {
        printf("unhealthy: FastCGI socket: %s\n", err);
        return 1;
    }
    cl = cluster_new(cfg);
    if (cl == NULL || cluster_ping(cl) != 0) {
        if (cfg->redis_nseeds > 0) {
            printf("unhealthy: Redis Cluster %s does not answer\n", cfg->redis_cluster);
        } else {
            printf("unhealthy: Redis at %s:%d does not answer\n", cfg->redis_host, cfg->redis_port);
        }
        rc = 1;
    } else {
        printf("healthy\n");
    }
    cluster_free(cl);
    return rc;
}
