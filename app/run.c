/* run.c -- a test run's record and its JSON form (docs/API.md 4, 5)
 *
 * The record is what runs.c keeps in Redis and what the runner updates as
 * it goes; this file only names its states and renders it, so the HTTP
 * answer and the stored fields cannot drift apart. Ids are 64 random bits
 * in hex: unique across restarts without any coordination, and not
 * guessable from one another.
 */

#include "run.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

#include "clock.h"

static const char *const status_names[] = {"queued", "running", "done", "failed", "cancelled"};

const char *run_status_name(enum run_status s)
{
    return status_names[s];
}

int run_status_parse(const char *s, enum run_status *out)
{
    for (size_t i = 0; i < sizeof(status_names) / sizeof(status_names[0]); i++) {
        if (strcmp(s, status_names[i]) == 0) {
            *out = (enum run_status)i;
            return 0;
        }
    }
    return -1;
}

int run_id_new(char *id)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[RUN_ID_LEN / 2];

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        if (errno == 0) {
            errno = EIO;
        }
        return -1;
    }
    for (size_t i = 0; i < sizeof(raw); i++) {
        id[2 * i] = hex[raw[i] >> 4];
        id[2 * i + 1] = hex[raw[i] & 0x0f];
    }
    id[RUN_ID_LEN] = '\0';
    return 0;
}

int run_id_valid(const char *s, size_t len)
{
    if (len != RUN_ID_LEN) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) {
            return 0;
        }
    }
    return 1;
}

static json_t *time_or_null(int64_t ms)
{
    char buf[CLOCK_ISO_LEN];

    return ms > 0 ? json_string(clock_iso8601(ms, buf, sizeof(buf))) : json_null();
}

json_t *run_to_json(const struct run *r, int64_t now_ms)
{
    json_t *obj, *pool;
    int64_t end, elapsed_ms = 0;
    double rate = 0;

    pool = json_array();
    for (int i = 0; pool != NULL && i < r->npool; i++) {
        json_array_append_new(pool, json_string(r->pool[i]));
    }
    if (r->started_ms > 0) {
        end = r->finished_ms > 0 ? r->finished_ms : now_ms;
        elapsed_ms = end > r->started_ms ? end - r->started_ms : 0;
        if (elapsed_ms > 0) {
            /* Rounded to one decimal, like docs/API.md's example (1561.0). */
            rate = (double)(long long)((double)(r->succeeded + r->failed) * 10000.0 /
                                           (double)elapsed_ms +
                                       0.5) /
                   10.0;
        }
    }
    obj = json_pack("{s:s, s:I, s:s, s:I, s:I, s:I, s:o*, s:o, s:o, s:o, s:f, s:f}", "id", r->id,
                    "requests", (json_int_t)r->requests, "status", run_status_name(r->status),
                    "sent", (json_int_t)r->sent, "succeeded", (json_int_t)r->succeeded, "failed",
                    (json_int_t)r->failed, "pool", pool, "created_at", time_or_null(r->created_ms),
                    "started_at", time_or_null(r->started_ms), "finished_at",
                    time_or_null(r->finished_ms), "elapsed_seconds", (double)elapsed_ms / 1000.0,
                    "requests_per_second", rate);
    if (obj != NULL) {
        json_object_set_new(obj, "status_url", json_sprintf("/test/runs/%s/", r->id));
        json_object_set_new(obj, "error", r->error[0] ? json_string(r->error) : json_null());
    }
    return obj;
}
