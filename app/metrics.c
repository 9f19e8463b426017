/* metrics.c -- the figures of GET /metrics and their Prometheus text
 *
 * Two sources (docs/API.md section 8). Redis holds what is cluster-wide:
 * the counts, the dropped hits and the test runs; they are read at scrape
 * time by the worker that answers, and are absent (never a wrong 0) when
 * Redis does not answer. The processes hold the rest: hits buffered in
 * each worker, Redis batch latency, workers running and restarted; those
 * live in this shared mapping so any worker can report them all.
 *
 * Every figure is written with relaxed atomics by its one writer (a worker
 * for its own slot, the master for restarts and up flags) and read the
 * same way: a scrape may see one worker's figures a moment older than
 * another's, never a torn value. The histogram's buckets, sum and count
 * are separate words, so a scrape racing an observation can be off by that
 * one observation between them, which Prometheus tolerates.
 *
 * No series carries a URL label: counted paths are unbounded (millions are
 * normal), and each label value would be a new time series in Prometheus.
 * Per-path counts stay in /stats/.
 */

#include "metrics.h"

#include <string.h>
#include <sys/mman.h>

#include "version.h"

/* Upper bounds (seconds) of the batch latency buckets, and the same as
 * label text: a batch is normally well under a millisecond; the top ones
 * reach REDIS_TIMEOUT_MS's range. */
#define NBUCKETS 12
static const int64_t bucket_us[NBUCKETS] = {100,   250,   500,   1000,   2500,   5000,
                                            10000, 25000, 50000, 100000, 250000, 1000000};
static const char *const bucket_le[NBUCKETS] = {"0.0001", "0.00025", "0.0005", "0.001",
                                                "0.0025", "0.005",   "0.01",   "0.025",
                                                "0.05",   "0.1",     "0.25",   "1"};

struct worker_figs {
    uint64_t buffered;
    uint64_t batches;  /* observations */
    uint64_t batch_us; /* their sum */
    uint64_t bucket[NBUCKETS];
    int up;
};

struct metrics {
    size_t bytes;
    int nworkers;
    int64_t start_s;
    uint64_t restarts;
    struct worker_figs w[];
};

struct metrics *metrics_new(int nworkers, int64_t start_s)
{
    size_t bytes = sizeof(struct metrics) + (size_t)nworkers * sizeof(struct worker_figs);
    struct metrics *mx =
        mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (mx == MAP_FAILED) {
        return NULL;
    }
    memset(mx, 0, bytes);
    mx->bytes = bytes;
    mx->nworkers = nworkers;
    mx->start_s = start_s;
    return mx;
}

void metrics_free(struct metrics *mx)
{
    if (mx != NULL) {
        munmap(mx, mx->bytes);
    }
}

void metrics_worker_up(struct metrics *mx, int index, int up)
{
    if (mx == NULL || index < 0 || index >= mx->nworkers) {
        return;
    }
    __atomic_store_n(&mx->w[index].up, up, __ATOMIC_RELAXED);
    if (!up) {
        __atomic_store_n(&mx->w[index].buffered, 0, __ATOMIC_RELAXED);
    }
}

void metrics_worker_restart(struct metrics *mx)
{
    if (mx != NULL) {
        __atomic_add_fetch(&mx->restarts, 1, __ATOMIC_RELAXED);
    }
}

void metrics_set_buffered(struct metrics *mx, int index, uint64_t hits)
{
    if (mx != NULL && index >= 0 && index < mx->nworkers) {
        __atomic_store_n(&mx->w[index].buffered, hits, __ATOMIC_RELAXED);
    }
}

void metrics_batch_observe(struct metrics *mx, int index, int64_t us)
{
    struct worker_figs *f;

    if (mx == NULL || index < 0 || index >= mx->nworkers) {
        return;
    }
    f = &mx->w[index];
    if (us < 0) {
        us = 0;
    }
    for (int i = 0; i < NBUCKETS; i++) {
        if (us <= bucket_us[i]) {
            __atomic_add_fetch(&f->bucket[i], 1, __ATOMIC_RELAXED);
            break;
        }
    }
    __atomic_add_fetch(&f->batch_us, (uint64_t)us, __ATOMIC_RELAXED);
    __atomic_add_fetch(&f->batches, 1, __ATOMIC_RELAXED);
}

static void head(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* reqstats_redis_up. Standalone: 1 when this scrape read the totals and
 * the test-run records. Cluster: one sample per master, 1 when it answered
 * a PING during this scrape (node names come from CLUSTER SHARDS; quotes,
 * backslashes and newlines are escaped as the format asks). */
static void render_redis_up(FILE *out, int up, const struct metrics_node *nodes, int nnodes)
{
    head(out, "reqstats_redis_up", "gauge",
         "1 if Redis (each master, by node) answered this scrape, else 0.");
    if (nnodes == 0) {
        fprintf(out, "reqstats_redis_up %d\n", up);
        return;
    }
    for (int i = 0; i < nnodes; i++) {
        fputs("reqstats_redis_up{node=\"", out);
        for (const char *p = nodes[i].name; *p != '\0'; p++) {
            if (*p == '\\' || *p == '"') {
                fputc('\\', out);
                fputc(*p, out);
            } else if (*p == '\n') {
                fputs("\\n", out);
            } else {
                fputc(*p, out);
            }
        }
        fprintf(out, "\"} %d\n", nodes[i].up);
    }
}

static void render_redis(FILE *out, const struct metrics_redis *r)
{
    head(out, "reqstats_requests_total", "counter",
         "Requests counted, all paths (total_requests of /stats/).");
    fprintf(out, "reqstats_requests_total %lld\n", r->total);
    head(out, "reqstats_unique_urls", "gauge", "Distinct canonical paths counted.");
    fprintf(out, "reqstats_unique_urls %lld\n", r->unique);
    head(out, "reqstats_dropped_hits_total", "counter",
         "Hits dropped because a worker's hit buffer was full.");
    fprintf(out, "reqstats_dropped_hits_total %lld\n", r->dropped);
    head(out, "reqstats_test_runs", "gauge",
         "Test runs by status: the recent runs kept (TEST_RUNS_KEPT) and any active one.");
    for (int i = 0; i < RUN_STATUSES; i++) {
        fprintf(out, "reqstats_test_runs{status=\"%s\"} %lld\n",
                run_status_name((enum run_status)i), r->runs[i]);
    }
}

static void render_processes(FILE *out, const struct metrics *mx)
{
    uint64_t buffered = 0, batches = 0, sum_us = 0, buckets[NBUCKETS] = {0}, cum = 0;
    int up = 0;

    for (int i = 0; i < mx->nworkers; i++) {
        const struct worker_figs *f = &mx->w[i];

        up += __atomic_load_n(&f->up, __ATOMIC_RELAXED) != 0;
        buffered += __atomic_load_n(&f->buffered, __ATOMIC_RELAXED);
        batches += __atomic_load_n(&f->batches, __ATOMIC_RELAXED);
        sum_us += __atomic_load_n(&f->batch_us, __ATOMIC_RELAXED);
        for (int b = 0; b < NBUCKETS; b++) {
            buckets[b] += __atomic_load_n(&f->bucket[b], __ATOMIC_RELAXED);
        }
    }
    head(out, "reqstats_buffered_hits", "gauge",
         "Hits held in worker memory, not yet written to Redis.");
    fprintf(out, "reqstats_buffered_hits %llu\n", (unsigned long long)buffered);
    head(out, "reqstats_workers", "gauge", "Worker processes running.");
    fprintf(out, "reqstats_workers %d\n", up);
    head(out, "reqstats_worker_restarts_total", "counter",
         "Worker processes restarted by the master after an unexpected exit.");
    fprintf(out, "reqstats_worker_restarts_total %llu\n",
            (unsigned long long)__atomic_load_n(&mx->restarts, __ATOMIC_RELAXED));
    head(out, "reqstats_redis_batch_duration_seconds", "histogram",
         "Time from sending a batch of hits to Redis to its answer.");
    for (int b = 0; b < NBUCKETS; b++) {
        cum += buckets[b];
        fprintf(out, "reqstats_redis_batch_duration_seconds_bucket{le=\"%s\"} %llu\n", bucket_le[b],
                (unsigned long long)cum);
    }
    /* Observations over the top bucket are only in +Inf; a racing
     * observation must not make +Inf smaller than a bucket below it. */
    if (batches < cum) {
        batches = cum;
    }
    fprintf(out, "reqstats_redis_batch_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
            (unsigned long long)batches);
    fprintf(out, "reqstats_redis_batch_duration_seconds_sum %llu.%06llu\n",
            (unsigned long long)(sum_us / 1000000), (unsigned long long)(sum_us % 1000000));
    fprintf(out, "reqstats_redis_batch_duration_seconds_count %llu\n", (unsigned long long)batches);
    head(out, "reqstats_process_start_time_seconds", "gauge",
         "Start time of the reqstats master process since the Unix epoch, in seconds.");
    fprintf(out, "reqstats_process_start_time_seconds %lld\n", (long long)mx->start_s);
}

int metrics_render(FILE *out, const struct metrics *mx, const struct metrics_redis *redis,
                   const struct metrics_node *nodes, int nnodes)
{
    head(out, "reqstats_build_info", "gauge",
         "Always 1; the version label names the running build.");
    fprintf(out, "reqstats_build_info{version=\"%s\"} 1\n", REQSTATS_VERSION);
    render_redis_up(out, redis != NULL, nodes, nnodes);
    if (redis != NULL) {
        render_redis(out, redis);
    }
    if (mx != NULL) {
        render_processes(out, mx);
    }
    return ferror(out) ? -1 : 0;
}
