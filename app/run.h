/* run.h -- a test run's record and its JSON form (docs/API.md 4, 5) */

#ifndef REQSTATS_RUN_H
#define REQSTATS_RUN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "urlgen.h"

#define RUN_ID_LEN 16 /* lower-case hex characters */

enum run_status { RUN_QUEUED, RUN_RUNNING, RUN_DONE, RUN_FAILED, RUN_CANCELLED };

/* Number of statuses (the size of an array indexed by enum run_status). */
#define RUN_STATUSES 5

/* One run as stored in Redis. Times are epoch milliseconds, 0 = not yet. */
struct run {
    char id[RUN_ID_LEN + 1];
    enum run_status status;
    long long requests;  /* n */
    long long sent;      /* transfers started */
    long long succeeded; /* completed with HTTP 200 */
    long long failed;    /* completed otherwise (error, timeout, other status) */
    char pool[URLGEN_POOL][URLGEN_SEG_LEN + 1];
    int npool; /* 0 until the run starts */
    int64_t created_ms, started_ms, finished_ms, heartbeat_ms;
    char error[160]; /* why a run failed, or the last transfer error; "" if none */
};

/* "queued", "running", "done", "failed", "cancelled". */
const char *run_status_name(enum run_status s);

/* Parse a status name. Returns 0, or -1 if unknown. */
int run_status_parse(const char *s, enum run_status *out);

/* Draw a new random id from getrandom(2) into id (RUN_ID_LEN + 1 bytes).
 * Returns 0, or -1 with errno set. */
int run_id_new(char *id);

/* 1 if s[0..len) is a well-formed run id, else 0. */
int run_id_valid(const char *s, size_t len);

/* The docs/API.md 5 object for r, with elapsed_seconds and requests_per_second
 * computed at now_ms for a run still going. Returns a new reference (caller
 * decrefs), or NULL when out of memory. */
json_t *run_to_json(const struct run *r, int64_t now_ms);

#endif
