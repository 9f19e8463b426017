/* import.c -- reqstats --import: a standalone dataset into a Redis Cluster
 *
 * Moving from one Redis to a cluster keeps the counts. With REDIS_CLUSTER
 * naming the cluster and REDIS_HOST / REDIS_PORT the standalone Redis
 * (REDIS_PREFIX and REDIS_PASSWORD apply to both), `reqstats --import`
 * copies every count, the totals, the dropped-hit count and the last 25
 * hours of history into the cluster layout (docs/API.md section 7). Test
 * runs are not copied. The standalone Redis is only read.
 *
 * Every reqstats process must be stopped first: the standalone dataset is
 * read page by page in rank order (one MULTI/EXEC each, with its totals),
 * and a page whose totals differ from those the import began with stops
 * the import (a dataset still being written would be copied wrongly). The
 * cluster dataset must be empty, or hold an import that was interrupted:
 * every write sets a value (counters.c, "import"), so running the import
 * again finishes it. At the end the cluster's totals are read back and
 * compared with the source.
 *
 * Exit status: 0 imported (or imported before), 1 Redis failed or the
 * source changed (run it again), CONFIG_EXIT_FATAL when it must not run
 * (no REDIS_CLUSTER, a cluster dataset with counts of its own, another
 * shard count).
 */

#include "import.h"

#include <stdlib.h>

#include "clock.h"
#include "cluster.h"
#include "counters.h"
#include "log.h"

/* URLs read from the standalone Redis per round trip. */
#define IMPORT_PAGE 1000

/* Log progress every this many URLs. */
#define IMPORT_PROGRESS 100000

/* History hours copied: the 25 h a point is kept, the hour under way and
 * one ahead (a wall clock a little ahead of this one). */
#define IMPORT_HOURS_BACK  26
#define IMPORT_HOURS_AHEAD 1

static int same_totals(const struct counters_totals *a, long long total, long long unique,
                       long long dropped)
{
    return a->total == total && a->unique == unique && a->dropped == dropped;
}

static void source_changed(void)
{
    log_error("the standalone dataset changed during the import: stop every reqstats process "
              "that writes to it, then run reqstats --import again (it resumes)");
}

/* Copy the history hours around now. Returns the hours written, or -1. */
static int copy_history(struct counters *src, struct counters *dst)
{
    int64_t now_s = clock_wall_ms() / 1000;
    int64_t hour = now_s / 3600;
    long long counts[COUNTERS_HISTORY_PER_HOUR];
    int written = 0;

    for (int64_t h = hour - IMPORT_HOURS_BACK; h <= hour + IMPORT_HOURS_AHEAD; h++) {
        int rc;

        if (counters_history(src, h * COUNTERS_HISTORY_PER_HOUR, COUNTERS_HISTORY_PER_HOUR,
                             counts) != 0) {
            log_error("standalone Redis: reading the history of hour %lld failed", (long long)h);
            return -1;
        }
        rc = counters_import_history(dst, h, counts, now_s);
        if (rc < 0) {
            log_error("Redis Cluster: writing the history of hour %lld failed", (long long)h);
            return -1;
        }
        written += rc;
    }
    return written;
}

int import_run(const struct config *cfg)
{
    struct config scfg = *cfg;
    struct cluster *scl = NULL, *dcl = NULL;
    struct counters *src = NULL, *dst = NULL;
    struct counters_page page = {0};
    struct counters_totals t0, t1, got;
    long long *sums = NULL, sum = 0, off = 0, next_log = IMPORT_PROGRESS;
    int64_t start = clock_mono_ms();
    int rc = 1, hours, ns;

    if (cfg->redis_nseeds == 0) {
        log_error("--import copies the standalone Redis at REDIS_HOST:REDIS_PORT into the Redis "
                  "Cluster REDIS_CLUSTER names: set REDIS_CLUSTER");
        return CONFIG_EXIT_FATAL;
    }
    scfg.redis_nseeds = 0;
    scl = cluster_new(&scfg);
    dcl = cluster_new(cfg);
    src = scl != NULL ? counters_new(&scfg, scl) : NULL;
    dst = dcl != NULL ? counters_new(cfg, dcl) : NULL;
    ns = dst != NULL ? counters_shards(dst) : 0;
    sums = ns > 0 ? calloc((size_t)ns, sizeof(*sums)) : NULL;
    if (src == NULL || dst == NULL || sums == NULL) {
        log_error("import: out of memory");
        goto out;
    }
    if (counters_totals(src, &t0) != 0) {
        log_error("standalone Redis at %s:%d did not answer, or its keys under prefix \"%s\" "
                  "are not a reqstats dataset",
                  cfg->redis_host, cfg->redis_port, cfg->redis_prefix);
        goto out;
    }
    if (cluster_refresh(dcl) != 0) {
        log_error("Redis Cluster: no seed of REDIS_CLUSTER=%s answered", cfg->redis_cluster);
        goto out;
    }
    switch (counters_import_begin(dst)) {
    case COUNTERS_IMPORT_GO:
        break;
    case COUNTERS_IMPORT_NOT_EMPTY:
        log_error("the cluster dataset under prefix \"%s\" has counts of its own: --import only "
                  "writes into an empty dataset (or finishes an interrupted import)",
                  cfg->redis_prefix);
        rc = CONFIG_EXIT_FATAL;
        goto out;
    case COUNTERS_IMPORT_DONE_ALREADY:
        log_info("an import into the cluster dataset under prefix \"%s\" finished before: "
                 "nothing to do",
                 cfg->redis_prefix);
        rc = 0;
        goto out;
    case COUNTERS_IMPORT_LAYOUT:
        rc = CONFIG_EXIT_FATAL;
        goto out;
    case COUNTERS_IMPORT_FAILED:
        log_error("Redis Cluster: the import could not start");
        goto out;
    }
    log_info("importing %lld URLs (%lld requests, %lld dropped hits) from %s:%d into %d shards",
             t0.unique, t0.total, t0.dropped, cfg->redis_host, cfg->redis_port, ns);
    while (off < t0.unique) {
        counters_page_free(&page);
        if (counters_page(src, off, IMPORT_PAGE, &page) != 0) {
            log_error("standalone Redis: reading the URLs from rank %lld failed", off);
            goto out;
        }
        if (!same_totals(&t0, page.total, page.unique, page.dropped) || page.n == 0) {
            source_changed();
            goto out;
        }
        if (counters_import_entries(dst, page.entries, page.n, sums) != 0) {
            log_error("Redis Cluster: writing the URLs from rank %lld failed; run reqstats "
                      "--import again to finish",
                      off);
            goto out;
        }
        off += (long long)page.n;
        if (off >= next_log) {
            log_info("%lld of %lld URLs", off, t0.unique);
            next_log += IMPORT_PROGRESS;
        }
    }
    hours = copy_history(src, dst);
    if (hours < 0) {
        goto out;
    }
    if (counters_totals(src, &t1) != 0 || !same_totals(&t1, t0.total, t0.unique, t0.dropped)) {
        source_changed();
        goto out;
    }
    if (counters_import_end(dst, sums, t0.dropped) != 0) {
        log_error("Redis Cluster: writing the totals failed; run reqstats --import again");
        goto out;
    }
    for (int i = 0; i < ns; i++) {
        sum += sums[i];
    }
    if (counters_totals(dst, &got) != 0 || !same_totals(&got, sum, t0.unique, t0.dropped)) {
        log_error("Redis Cluster: the imported dataset reads back as %lld URLs, %lld requests, "
                  "%lld dropped hits; expected %lld, %lld, %lld",
                  got.unique, got.total, got.dropped, t0.unique, sum, t0.dropped);
        goto out;
    }
    if (sum != t0.total) {
        log_warn("the standalone total_requests (%lld) was not the sum of its counts (%lld); "
                 "the cluster's is the sum",
                 t0.total, sum);
    }
    log_info("import done: %lld URLs, %lld requests, %lld dropped hits and %d hour%s of "
             "history in %.1f s; start reqstats with REDIS_CLUSTER now",
             t0.unique, sum, t0.dropped, hours, hours == 1 ? "" : "s",
             (double)(clock_mono_ms() - start) / 1000.0);
    rc = 0;

out:
    counters_page_free(&page);
    free(sums);
    counters_free(dst);
    counters_free(src);
    cluster_free(dcl);
    cluster_free(scl);
    return rc;
}
