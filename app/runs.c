/* runs.c -- test-run records in Redis
 *
 * The records behind POST /test/{n}/ and GET /test/runs/: which runs are
 * queued, running and recent, and each run's progress. Every key lives
 * under the prefix P and, in cluster mode, under the one hash tag {runs},
 * so every script below touches a single slot (the claim and the sweep
 * derive run keys from ids, which a cluster allows only within the
 * script's slot). Standalone keeps the names every earlier release used:
 *
 *   P run:<id>        hash        one test run's record (fields below)
 *   P runs:active     set         ids of queued and running runs (bounded)
 *   P runs:queue      list        ids of queued runs, oldest first
 *   P runs:recent     list        ids of recent runs, newest first (trimmed)
 *
 * and in cluster mode P{runs}run:<id>, P{runs}runs:active, and so on.
 * A run is cancelled by one script (runs_cancel); its runner notices on
 * its next status read (runs_status).
 * Every argument goes through cmd.h, so ids are binary-safe; every record
 * read back is shown as JSON, so only printable ASCII is kept from it.
 */

#include "runs.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "slotmap.h"

#define KEY_MAX    128
#define RUNKEY_MAX (KEY_MAX + RUN_ID_LEN + 1)

/* Queue a run unless the active bound is reached.
 * KEYS: run, active, queue, recent. ARGV: id, requests, created, max, kept. */
static const char create_script[] =
    "if redis.call('SCARD', KEYS[2]) >= tonumber(ARGV[4]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'id', ARGV[1], 'requests', ARGV[2], 'status', 'queued',\n"
    "  'created', ARGV[3], 'sent', 0, 'succeeded', 0, 'failed', 0)\n"
    "redis.call('SADD', KEYS[2], ARGV[1])\n"
    "redis.call('RPUSH', KEYS[3], ARGV[1])\n"
    "redis.call('LPUSH', KEYS[4], ARGV[1])\n"
    "redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[5]) - 1)\n"
    "return 1\n";

/* Claim the oldest queued run. The run key is derived from the popped id:
 * in a cluster it shares the {runs} tag, so it is in the script's slot.
 * KEYS: queue, active. ARGV: run key prefix, now, owner. */
static const char claim_script[] =
    "while true do\n"
    "  local id = redis.call('LPOP', KEYS[1])\n"
    "  if not id then return false end\n"
    "  local key = ARGV[1] .. id\n"
    "  if redis.call('HGET', key, 'status') == 'queued' then\n"
    "    redis.call('HSET', key, 'status', 'running', 'started', ARGV[2],\n"
    "      'heartbeat', ARGV[2], 'owner', ARGV[3])\n"
    "    return id\n"
    "  end\n"
    "  redis.call('SREM', KEYS[2], id)\n"
    "end\n";

/* Finish a run if it is still ours and running (or cancelled, when the
 * final status is "cancelled": the runner then writes its final counters).
 * KEYS: run, active. ARGV: owner, status, finished, sent, succeeded, failed,
 * error, retention, id. */
static const char finish_script[] =
    "local cur = redis.call('HMGET', KEYS[1], 'status', 'owner')\n"
    "if (cur[1] ~= 'running' and cur[1] ~= ARGV[2]) or cur[2] ~= ARGV[1] then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'status', ARGV[2], 'finished', ARGV[3], 'sent', ARGV[4],\n"
    "  'succeeded', ARGV[5], 'failed', ARGV[6], 'error', ARGV[7])\n"
    "redis.call('SREM', KEYS[2], ARGV[9])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[8])\n"
    "return 1\n";

/* Fail running runs whose runner stopped beating.
 * KEYS: active. ARGV: run key prefix, now, stale, reason, retention. */
static const char sweep_script[] =
    "local n = 0\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local key = ARGV[1] .. id\n"
    "  local cur = redis.call('HMGET', key, 'status', 'heartbeat')\n"
    "  if not cur[1] then\n"
    "    redis.call('SREM', KEYS[1], id)\n"
    "  elseif cur[1] == 'running' and\n"
    "      tonumber(cur[2] or '0') < tonumber(ARGV[2]) - tonumber(ARGV[3]) then\n"
    "    redis.call('HSET', key, 'status', 'failed', 'finished', ARGV[2], 'error', ARGV[4])\n"
    "    redis.call('SREM', KEYS[1], id)\n"
    "    redis.call('EXPIRE', key, ARGV[5])\n"
    "    n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* Count runs by status: the runs in the recent-runs list (TEST_RUNS_KEPT
 * at most) plus any active run not in it, so the cost is bounded by the
 * configuration. Derives run keys from ids, within the {runs} slot.
 * KEYS: active, recent. ARGV: run key prefix. Returns {queued, running,
 * done, failed, cancelled}. */
static const char by_status_script[] =
    "local by = {queued = 0, running = 0, done = 0, failed = 0, cancelled = 0}\n"
    "local seen = {}\n"
    "local function count(id)\n"
    "  if seen[id] then return end\n"
    "  seen[id] = true\n"
    "  local s = redis.call('HGET', ARGV[1] .. id, 'status')\n"
    "  if s and by[s] then by[s] = by[s] + 1 end\n"
    "end\n"
    "for _, id in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do count(id) end\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do count(id) end\n"
    "return {by.queued, by.running, by.done, by.failed, by.cancelled}\n";

/* Cancel a run (docs/API.md section 11). A queued run is marked cancelled
 * and leaves the queue: it never starts. A running run is marked cancelled
 * at once; its runner checks the status every few hundred ms
 * (runs_status), stops its transfers and writes its final counters
 * through the finish script. Either way the run leaves the active set now,
 * and its record expires after the retention.
 * KEYS: run, active, queue. ARGV: id, now, retention.
 * Returns 1 cancelled, 0 no such run, 2 already ended. */
static const char cancel_script[] =
    "local st = redis.call('HGET', KEYS[1], 'status')\n"
    "if not st then return 0 end\n"
    "if st ~= 'queued' and st ~= 'running' then return 2 end\n"
    "redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished', ARGV[2])\n"
    "if st == 'queued' then redis.call('LREM', KEYS[3], 0, ARGV[1]) end\n"
    "redis.call('SREM', KEYS[2], ARGV[1])\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[3])\n"
    "return 1\n";

struct runs {
    const struct config *cfg;
    struct cluster *cl;
    int slot; /* of every key */
    char k_run[KEY_MAX], k_active[KEY_MAX], k_queue[KEY_MAX], k_recent[KEY_MAX];
};

struct runs *runs_new(const struct config *cfg, struct cluster *cl)
{
    struct runs *rs = calloc(1, sizeof(*rs));
    const char *p = cfg->redis_prefix, *tag = cluster_mode(cl) ? "{runs}" : "";

    if (rs == NULL) {
        return NULL;
    }
    rs->cfg = cfg;
    rs->cl = cl;
    /* The prefix is at most 64 bytes, so none of these truncate. */
    snprintf(rs->k_run, KEY_MAX, "%s%srun:", p, tag);
    snprintf(rs->k_active, KEY_MAX, "%s%sruns:active", p, tag);
    snprintf(rs->k_queue, KEY_MAX, "%s%sruns:queue", p, tag);
    snprintf(rs->k_recent, KEY_MAX, "%s%sruns:recent", p, tag);
    rs->slot = slotmap_keyslot(rs->k_active, strlen(rs->k_active));
    return rs;
}

void runs_free(struct runs *rs)
{
    free(rs);
}

/* Run one command; returns its reply (caller frees) or NULL. */
static redisReply *query_one(struct runs *rs, struct cmd *c, int retry)
{
    redisReply *r = NULL;

    if (cluster_run(rs->cl, c, 1, &r, retry) != 0) {
        return NULL;
    }
    return r;
}

static int reply_error_log(const char *what, const redisReply *r)
{
    if (r != NULL && r->type == REDIS_REPLY_ERROR) {
        log_error("Redis %s: %s", what, r->str);
        return 1;
    }
    return 0;
}

/* A stored number: the whole string, or 0 when it is not one. */
static long long reply_ll(const redisReply *r)
{
    char *end = NULL;
    long long v;

    if (r == NULL) {
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        return r->integer;
    }
    if (r->type != REDIS_REPLY_STRING || r->len == 0) {
        return 0;
    }
    errno = 0;
    v = strtoll(r->str, &end, 10);
    return errno == 0 && end == r->str + r->len ? v : 0;
}

/* buf holds RUNKEY_MAX bytes; id is at most RUN_ID_LEN bytes. */
static void run_key(const struct runs *rs, const char *id, char *buf)
{
    snprintf(buf, RUNKEY_MAX, "%s%s", rs->k_run, id);
}

/* Copy a stored string keeping printable ASCII only: a record is shown as
 * JSON and must never carry bytes that are not UTF-8. */
static void copy_printable(char *dst, size_t size, const char *src, size_t len)
{
    size_t n = len < size - 1 ? len : size - 1;

    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)src[i];
        dst[i] = ch >= 0x20 && ch < 0x7f ? (char)ch : '?';
    }
    dst[n] = '\0';
}

static void parse_pool(struct run *r, const char *s, size_t len)
{
    size_t start = 0;

    r->npool = 0;
    for (size_t i = 0; i <= len && r->npool < URLGEN_POOL; i++) {
        if (i == len || s[i] == ',') {
            if (i > start) {
                copy_printable(r->pool[r->npool], sizeof(r->pool[0]), s + start, i - start);
                r->npool++;
            }
            start = i + 1;
        }
    }
}

/* Fill r from an HGETALL reply. Returns 0, 1 if the hash is empty. */
static int parse_run(const redisReply *h, struct run *r)
{
    memset(r, 0, sizeof(*r));
    if (h == NULL || h->type != REDIS_REPLY_ARRAY || h->elements == 0) {
        return 1;
    }
    for (size_t i = 0; i + 1 < h->elements; i += 2) {
        const redisReply *k = h->element[i], *v = h->element[i + 1];
        const char *f;

        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING) {
            continue;
        }
        f = k->str;
        if (!strcmp(f, "id")) {
            copy_printable(r->id, sizeof(r->id), v->str, v->len);
        } else if (!strcmp(f, "status")) {
            if (run_status_parse(v->str, &r->status) != 0) {
                r->status = RUN_FAILED;
            }
        } else if (!strcmp(f, "requests")) {
            r->requests = reply_ll(v);
        } else if (!strcmp(f, "sent")) {
            r->sent = reply_ll(v);
        } else if (!strcmp(f, "succeeded")) {
            r->succeeded = reply_ll(v);
        } else if (!strcmp(f, "failed")) {
            r->failed = reply_ll(v);
        } else if (!strcmp(f, "pool")) {
            parse_pool(r, v->str, v->len);
        } else if (!strcmp(f, "created")) {
            r->created_ms = reply_ll(v);
        } else if (!strcmp(f, "started")) {
            r->started_ms = reply_ll(v);
        } else if (!strcmp(f, "finished")) {
            r->finished_ms = reply_ll(v);
        } else if (!strcmp(f, "heartbeat")) {
            r->heartbeat_ms = reply_ll(v);
        } else if (!strcmp(f, "error")) {
            copy_printable(r->error, sizeof(r->error), v->str, v->len);
        }
    }
    return r->id[0] != '\0' ? 0 : 1;
}

/* Start c as EVAL of script with nkeys keys, all in the runs' one slot;
 * the caller appends the keys and arguments. */
static void eval_begin(struct cmd *c, const struct runs *rs, const char *script, int nkeys)
{
    cmd_init(c, rs->slot);
    cmd_str(c, "EVAL");
    cmd_str(c, script);
    cmd_ll(c, nkeys);
}

int runs_create(struct runs *rs, const struct run *r, int max_active, int kept)
{
    char key[RUNKEY_MAX];
    struct cmd c;
    redisReply *rep;
    int rc;

    run_key(rs, r->id, key);
    eval_begin(&c, rs, create_script, 4);
    cmd_str(&c, key);
    cmd_str(&c, rs->k_active);
    cmd_str(&c, rs->k_queue);
    cmd_str(&c, rs->k_recent);
    cmd_str(&c, r->id);
    cmd_ll(&c, r->requests);
    cmd_ll(&c, r->created_ms);
    cmd_ll(&c, max_active);
    cmd_ll(&c, kept);
    /* Not retried on a stale connection: a create that reached Redis
     * before the connection broke must not queue the run twice. */
    rep = query_one(rs, &c, 0);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type != REDIS_REPLY_INTEGER) {
        reply_error_log("create run", rep);
        freeReplyObject(rep);
        return -1;
    }
    rc = rep->integer == 1 ? 0 : 1;
    freeReplyObject(rep);
    return rc;
}

int runs_get(struct runs *rs, const char *id, struct run *r)
{
    char key[RUNKEY_MAX];
    struct cmd c;
    redisReply *rep;
    int rc;

    run_key(rs, id, key);
    cmd_init(&c, rs->slot);
    cmd_str(&c, "HGETALL");
    cmd_str(&c, key);
    rep = query_one(rs, &c, 1);
    if (rep == NULL) {
        return -1;
    }
    if (reply_error_log("read run", rep)) {
        freeReplyObject(rep);
        return -1;
    }
    rc = parse_run(rep, r);
    freeReplyObject(rep);
    return rc;
}

int runs_list(struct runs *rs, size_t max, struct run *out, size_t *n)
{
    struct cmd c;
    struct cmd *gets = NULL;
    char *keys = NULL; /* count keys of RUNKEY_MAX bytes each */
    redisReply *ids, **reps = NULL;
    size_t count;
    int rc = -1;

    *n = 0;
    cmd_init(&c, rs->slot);
    cmd_str(&c, "LRANGE");
    cmd_str(&c, rs->k_recent);
    cmd_ll(&c, 0);
    cmd_ll(&c, (long long)max - 1);
    ids = query_one(rs, &c, 1);
    if (ids == NULL) {
        return -1;
    }
    if (ids->type != REDIS_REPLY_ARRAY) {
        reply_error_log("list runs", ids);
        goto out;
    }
    count = ids->elements < max ? ids->elements : max;
    if (count == 0) {
        rc = 0;
        goto out;
    }
    gets = calloc(count, sizeof(*gets));
    keys = calloc(count, RUNKEY_MAX);
    reps = calloc(count, sizeof(redisReply *));
    if (gets == NULL || keys == NULL || reps == NULL) {
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        char *key = keys + i * RUNKEY_MAX;
        const redisReply *id = ids->element[i];

        if (id->type != REDIS_REPLY_STRING || !run_id_valid(id->str, id->len)) {
            /* Never stored by us; ask for a key that cannot exist. */
            run_key(rs, "-", key);
        } else {
            run_key(rs, id->str, key);
        }
        cmd_init(&gets[i], rs->slot);
        cmd_str(&gets[i], "HGETALL");
        cmd_str(&gets[i], key);
    }
    if (cluster_run(rs->cl, gets, (int)count, reps, 1) != 0) {
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        if (parse_run(reps[i], &out[*n]) == 0) {
            (*n)++;
        }
        freeReplyObject(reps[i]);
    }
    rc = 0;

out:
    free(reps);
    free(keys);
    free(gets);
    freeReplyObject(ids);
    return rc;
}

int runs_claim(struct runs *rs, const char *owner, int64_t now_ms, struct run *r)
{
    struct cmd c;
    redisReply *rep;
    char id[RUN_ID_LEN + 1];
    int rc;

    eval_begin(&c, rs, claim_script, 2);
    cmd_str(&c, rs->k_queue);
    cmd_str(&c, rs->k_active);
    cmd_str(&c, rs->k_run);
    cmd_ll(&c, now_ms);
    cmd_str(&c, owner);
    rep = query_one(rs, &c, 0);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        freeReplyObject(rep);
        return 1;
    }
    if (rep->type != REDIS_REPLY_STRING || !run_id_valid(rep->str, rep->len)) {
        reply_error_log("claim run", rep);
        freeReplyObject(rep);
        return -1;
    }
    memcpy(id, rep->str, RUN_ID_LEN + 1);
    freeReplyObject(rep);
    rc = runs_get(rs, id, r);
    return rc == 0 ? 0 : -1;
}

int runs_progress(struct runs *rs, const struct run *r)
{
    char key[RUNKEY_MAX], pool[URLGEN_POOL * (URLGEN_SEG_LEN + 1) + 1] = "";
    struct cmd c;
    redisReply *rep;
    size_t plen = 0;
    int rc;

    for (int i = 0; i < r->npool; i++) {
        plen +=
            (size_t)snprintf(pool + plen, sizeof(pool) - plen, "%s%s", i ? "," : "", r->pool[i]);
    }
    run_key(rs, r->id, key);
    cmd_init(&c, rs->slot);
    cmd_str(&c, "HSET");
    cmd_str(&c, key);
    cmd_str(&c, "sent");
    cmd_ll(&c, r->sent);
    cmd_str(&c, "succeeded");
    cmd_ll(&c, r->succeeded);
    cmd_str(&c, "failed");
    cmd_ll(&c, r->failed);
    cmd_str(&c, "heartbeat");
    cmd_ll(&c, r->heartbeat_ms);
    cmd_str(&c, "pool");
    cmd_str(&c, pool);
    cmd_str(&c, "error");
    cmd_str(&c, r->error);
    rep = query_one(rs, &c, 1);
    rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    reply_error_log("run progress", rep);
    freeReplyObject(rep);
    return rc;
}

int runs_finish(struct runs *rs, const struct run *r, const char *owner, int retention_s)
{
    char key[RUNKEY_MAX];
    struct cmd c;
    redisReply *rep;
    int rc;

    run_key(rs, r->id, key);
    eval_begin(&c, rs, finish_script, 2);
    cmd_str(&c, key);
    cmd_str(&c, rs->k_active);
    cmd_str(&c, owner);
    cmd_str(&c, run_status_name(r->status));
    cmd_ll(&c, r->finished_ms);
    cmd_ll(&c, r->sent);
    cmd_ll(&c, r->succeeded);
    cmd_ll(&c, r->failed);
    cmd_str(&c, r->error);
    cmd_ll(&c, retention_s);
    cmd_str(&c, r->id);
    rep = query_one(rs, &c, 1);
    rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    reply_error_log("finish run", rep);
    freeReplyObject(rep);
    return rc;
}

int runs_sweep(struct runs *rs, int64_t now_ms, int64_t stale_ms, const char *reason,
               int retention_s)
{
    struct cmd c;
    redisReply *rep;
    int rc;

    eval_begin(&c, rs, sweep_script, 1);
    cmd_str(&c, rs->k_active);
    cmd_str(&c, rs->k_run);
    cmd_ll(&c, now_ms);
    cmd_ll(&c, stale_ms);
    cmd_str(&c, reason);
    cmd_ll(&c, retention_s);
    rep = query_one(rs, &c, 1);
    rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    reply_error_log("sweep runs", rep);
    freeReplyObject(rep);
    return rc;
}

int runs_by_status(struct runs *rs, long long *by)
{
    struct cmd c;
    redisReply *rep;
    int rc = -1;

    for (int i = 0; i < RUN_STATUSES; i++) {
        by[i] = 0;
    }
    eval_begin(&c, rs, by_status_script, 2);
    cmd_str(&c, rs->k_active);
    cmd_str(&c, rs->k_recent);
    cmd_str(&c, rs->k_run);
    rep = query_one(rs, &c, 1);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != RUN_STATUSES) {
        reply_error_log("runs by status", rep);
        goto out;
    }
    for (int i = 0; i < RUN_STATUSES; i++) {
        by[i] = reply_ll(rep->element[i]);
    }
    rc = 0;

out:
    freeReplyObject(rep);
    return rc;
}

int runs_cancel(struct runs *rs, const char *id, int64_t now_ms, int retention_s)
{
    char key[RUNKEY_MAX];
    struct cmd c;
    redisReply *rep;
    int rc = -1;

    run_key(rs, id, key);
    eval_begin(&c, rs, cancel_script, 3);
    cmd_str(&c, key);
    cmd_str(&c, rs->k_active);
    cmd_str(&c, rs->k_queue);
    cmd_str(&c, id);
    cmd_ll(&c, now_ms);
    cmd_ll(&c, retention_s);
    rep = query_one(rs, &c, 1);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type == REDIS_REPLY_INTEGER) {
        rc = rep->integer == 1 ? 0 : rep->integer == 0 ? 1 : 2;
    } else {
        reply_error_log("cancel run", rep);
    }
    freeReplyObject(rep);
    return rc;
}

int runs_status(struct runs *rs, const char *id, enum run_status *status)
{
    char key[RUNKEY_MAX];
    struct cmd c;
    redisReply *rep;
    int rc = -1;

    run_key(rs, id, key);
    cmd_init(&c, rs->slot);
    cmd_str(&c, "HGET");
    cmd_str(&c, key);
    cmd_str(&c, "status");
    rep = query_one(rs, &c, 1);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        rc = 1;
    } else if (rep->type == REDIS_REPLY_STRING && run_status_parse(rep->str, status) == 0) {
        rc = 0;
    } else {
        reply_error_log("run status", rep);
    }
    freeReplyObject(rep);
    return rc;
}
