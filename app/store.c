/* store.c -- request counters and test-run records in Redis
 *
 * This is the only file that knows Redis: key names, commands, scripts and
 * the reconnect policy live here, and it is the only file that includes
 * hiredis. Every argument goes through redisAppendCommandArgv, so paths and
 * ids are binary-safe and can never be parsed as commands.
 *
 * The schema, every key under the configured prefix P (default "reqstats:"):
 *
 *   P hits            sorted set  canonical path -> hit count
 *   P total           string      sum of all counts (never computed by scan)
 *   P dropped         string      hits dropped on worker buffer overflow
 *   P writer:<id>     string      last batch seq applied for one worker
 *                                 process (expires an hour after its last
 *                                 write); what makes batch retries idempotent
 *   P run:<id>        hash        one test run's record (fields below)
 *   P runs:active     set         ids of queued and running runs (bounded)
 *   P runs:queue      list        ids of queued runs, oldest first
 *   P runs:recent     list        ids of recent runs, newest first (trimmed)
 *   P history:<hour>  hash        requests per 10-s interval of one hour
 *                                 (hour = epoch s / 3600; field = interval
 *                                 within the hour, 0..359); see "history"
 *
 * A sorted set gives ZINCRBY in O(log n) and a page of the report in
 * O(log n + limit) with ZREVRANGE; ties come in reverse byte order of the
 * path, which is stable.
 *
 * Two connections per process, sharing one health state:
 *
 *   - the batch connection (workers only) is non-blocking and lives in the
 *     worker's epoll set: a batch of hits is one EVAL, sent without waiting,
 *     its reply read when it arrives. A batch unanswered after
 *     REDIS_TIMEOUT_MS (a frozen or vanished Redis) fails, the connection is
 *     dropped, and the batch is retried later with the same seq; the script
 *     ignores a seq it has seen, so a write that did land the first time is
 *     never applied twice;
 *   - the query connection is blocking with connect and command timeouts:
 *     /stats/, the test-run endpoints and the runner wait for their answer.
 *
 * After any failure the connection is freed (hiredis contexts are dead
 * after an error) and no new attempt is made before a backoff that doubles
 * from 25 ms to REDIS_BACKOFF_MAX_MS; meanwhile every call fails at once,
 * which is what lets /stats/ answer 503 without waiting. The first success
 * resets it. A reused connection that fails is retried once on a fresh one
 * for reads, since Redis may simply have restarted since it was last used.
 */

#include "store.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>

#include "clock.h"
#include "log.h"

#define BACKOFF_MIN_MS 25
#define WRITER_TTL_S   3600
#define KEY_MAX        128
#define RUNKEY_MAX     (KEY_MAX + RUN_ID_LEN + 1)
#define CMD_MAX_ARGS   40
#define RUN_FIELDS_MAX 32

/* Apply one batch of hits at most once.
 * KEYS: hits, total, dropped, writer, then one history hash per interval
 * tally (see "history" below). ARGV: seq, ttl, hits, dropped, number of
 * tallies, then (field, count, expire-at) per tally, then (count, path)
 * pairs. Returns 1 if applied, 0 if this seq was already. */
static const char batch_script[] =
    "local last = tonumber(redis.call('GET', KEYS[4]) or '0')\n"
    "if tonumber(ARGV[1]) <= last then return 0 end\n"
    "local nh = tonumber(ARGV[5])\n"
    "for i = 1, nh do\n"
    "  redis.call('HINCRBY', KEYS[4 + i], ARGV[3 + 3 * i], ARGV[4 + 3 * i])\n"
    "  redis.call('EXPIREAT', KEYS[4 + i], ARGV[5 + 3 * i])\n"
    "end\n"
    "for i = 6 + 3 * nh, #ARGV, 2 do redis.call('ZINCRBY', KEYS[1], ARGV[i], ARGV[i + 1]) end\n"
    "if ARGV[3] ~= '0' then redis.call('INCRBY', KEYS[2], ARGV[3]) end\n"
    "if ARGV[4] ~= '0' then redis.call('INCRBY', KEYS[3], ARGV[4]) end\n"
    "redis.call('SET', KEYS[4], ARGV[1], 'EX', ARGV[2])\n"
    "return 1\n";

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

/* Claim the oldest queued run. The run key is derived from the popped id,
 * so this script (like the sweep) needs a single Redis, not a cluster.
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

struct store {
    const struct config *cfg;
    char writer[33]; /* random id of this process as a batch writer */
    char k_hits[KEY_MAX], k_total[KEY_MAX], k_dropped[KEY_MAX], k_writer[KEY_MAX];
    char k_run[KEY_MAX], k_active[KEY_MAX], k_queue[KEY_MAX], k_recent[KEY_MAX];

    /* Health, shared by both connections. */
    int down;
    int backoff_ms;
    int64_t retry_at;

    redisContext *q; /* blocking query connection */

    redisContext *b; /* non-blocking batch connection */
    int epfd;
    uint64_t tag;
    uint32_t b_events; /* currently registered events, 0 = not registered */
    int b_busy;
    int b_auth_pending;
    int b_want_write;
    int64_t b_deadline;
};

/* An argv under construction; numbers are formatted into its own storage. */
struct cmd {
    int argc;
    const char *argv[CMD_MAX_ARGS];
    size_t len[CMD_MAX_ARGS];
    char nums[CMD_MAX_ARGS][24];
};

static void arg(struct cmd *c, const char *s, size_t len)
{
    c->argv[c->argc] = s;
    c->len[c->argc] = len;
    c->argc++;
}

static void arg_str(struct cmd *c, const char *s)
{
    arg(c, s, strlen(s));
}

static void arg_ll(struct cmd *c, long long v)
{
    int n = snprintf(c->nums[c->argc], sizeof(c->nums[0]), "%lld", v);
    arg(c, c->nums[c->argc], (size_t)n);
}

/* ---- health ---------------------------------------------------------- */

static void query_drop(struct store *st);

/* Any failure, on either connection, means Redis is down for both: the
 * query connection is dropped too, so the next query after the backoff
 * reconnects with the short probe timeout instead of waiting the full
 * command timeout on a connection to a server that may be frozen. */
static void mark_failed(struct store *st, const char *what, const char *detail)
{
    query_drop(st);
    st->backoff_ms = st->backoff_ms == 0 ? BACKOFF_MIN_MS : st->backoff_ms * 2;
    if (st->backoff_ms > st->cfg->redis_backoff_max_ms) {
        st->backoff_ms = st->cfg->redis_backoff_max_ms;
    }
    st->retry_at = clock_mono_ms() + st->backoff_ms;
    if (!st->down) {
        st->down = 1;
        log_warn("Redis lost at %s:%d (%s: %s); retrying with backoff up to %d ms",
                 st->cfg->redis_host, st->cfg->redis_port, what, detail,
                 st->cfg->redis_backoff_max_ms);
    } else {
        log_debug("Redis still down (%s: %s); next attempt in %d ms", what, detail, st->backoff_ms);
    }
}

static void mark_ok(struct store *st)
{
    if (st->down) {
        log_info("Redis back at %s:%d", st->cfg->redis_host, st->cfg->redis_port);
    }
    st->down = 0;
    st->backoff_ms = 0;
    st->retry_at = 0;
}

static int may_try(const struct store *st)
{
    return st->retry_at == 0 || clock_mono_ms() >= st->retry_at;
}

int store_down(const struct store *st)
{
    return st->down;
}

int64_t store_retry_at(const struct store *st)
{
    return st->retry_at;
}

/* ---- lifecycle ------------------------------------------------------- */

struct store *store_new(const struct config *cfg)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[16];
    struct store *st;
    const char *p = cfg->redis_prefix;

    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
        return NULL;
    }
    st = calloc(1, sizeof(*st));
    if (st == NULL) {
        return NULL;
    }
    st->cfg = cfg;
    st->epfd = -1;
    for (size_t i = 0; i < sizeof(raw); i++) {
        st->writer[2 * i] = hex[raw[i] >> 4];
        st->writer[2 * i + 1] = hex[raw[i] & 0x0f];
    }
    /* The prefix is at most 64 bytes, so none of these truncate. */
    snprintf(st->k_hits, KEY_MAX, "%shits", p);
    snprintf(st->k_total, KEY_MAX, "%stotal", p);
    snprintf(st->k_dropped, KEY_MAX, "%sdropped", p);
    snprintf(st->k_writer, KEY_MAX, "%swriter:%s", p, st->writer);
    snprintf(st->k_run, KEY_MAX, "%srun:", p);
    snprintf(st->k_active, KEY_MAX, "%sruns:active", p);
    snprintf(st->k_queue, KEY_MAX, "%sruns:queue", p);
    snprintf(st->k_recent, KEY_MAX, "%sruns:recent", p);
    return st;
}

static void batch_drop(struct store *st)
{
    if (st->b == NULL) {
        return;
    }
    if (st->b_events != 0 && st->epfd >= 0) {
        epoll_ctl(st->epfd, EPOLL_CTL_DEL, st->b->fd, NULL);
    }
    redisFree(st->b);
    st->b = NULL;
    st->b_events = 0;
    st->b_busy = 0;
    st->b_auth_pending = 0;
    st->b_want_write = 0;
    st->b_deadline = 0;
}

static void query_drop(struct store *st)
{
    redisFree(st->q);
    st->q = NULL;
}

void store_free(struct store *st)
{
    if (st == NULL) {
        return;
    }
    batch_drop(st);
    query_drop(st);
    free(st);
}

/* ---- the blocking query connection ----------------------------------- */

static struct timeval tv_of(int ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static redisContext *query_conn(struct store *st)
{
    const struct config *cfg = st->cfg;
    redisContext *c;
    redisReply *r;

    if (st->q != NULL) {
        return st->q;
    }
    if (!may_try(st)) {
        return NULL;
    }
    c = redisConnectWithTimeout(cfg->redis_host, cfg->redis_port,
                                tv_of(cfg->redis_connect_timeout_ms));
    if (c == NULL || c->err) {
        mark_failed(st, "connect", c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    /* While Redis is down, a reconnect that succeeded may still reach a
     * frozen server (the kernel accepts for it): give the first commands
     * only the connect timeout, so a probe costs the caller less.
     * mark_ok() is followed by the normal timeout below, on success. */
    if (redisSetTimeout(c, tv_of(st->down ? cfg->redis_connect_timeout_ms
                                          : cfg->redis_timeout_ms)) != REDIS_OK) {
        mark_failed(st, "setsockopt", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (cfg->redis_password[0] != '\0') {
        const char *argv[2] = {"AUTH", cfg->redis_password};
        size_t len[2] = {4, strlen(cfg->redis_password)};

        r = redisCommandArgv(c, 2, argv, len);
        if (r == NULL || r->type == REDIS_REPLY_ERROR) {
            mark_failed(st, "AUTH", r != NULL ? r->str : c->errstr);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    st->q = c;
    return c;
}

/* Send ncmd pipelined commands and read their replies into out[]. On
 * success returns 0 and the caller frees each out[i]. On an I/O failure of
 * a reused connection, and when `retry` is set, tries once more on a fresh
 * one. Returns -1 (nothing to free) when Redis is down or failed. */
static int query_run(struct store *st, struct cmd *cmds, int ncmd, redisReply **out, int retry)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int reused = st->q != NULL;
        redisContext *c = query_conn(st);
        char err[128];
        int i, got = 0, stale;

        if (c == NULL) {
            return -1;
        }
        for (i = 0; i < ncmd; i++) {
            if (redisAppendCommandArgv(c, cmds[i].argc, cmds[i].argv, cmds[i].len) != REDIS_OK) {
                goto fail;
            }
        }
        for (got = 0; got < ncmd; got++) {
            void *reply = NULL;

            if (redisGetReply(c, &reply) != REDIS_OK) {
                goto fail;
            }
            out[got] = reply;
        }
        if (st->down) {
            mark_ok(st);
            redisSetTimeout(c, tv_of(st->cfg->redis_timeout_ms));
        }
        return 0;

    fail:
        /* A connection that sat idle may have been closed by a restarted
         * Redis: that shows as EOF or a reset, and deserves one fresh try.
         * A timeout does not: trying again would only double the wait. */
        stale = c->err == REDIS_ERR_EOF ||
                (c->err == REDIS_ERR_IO && (errno == ECONNRESET || errno == EPIPE));
        if (c->err == REDIS_ERR_IO && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            snprintf(err, sizeof(err), "no answer within %d ms", st->cfg->redis_timeout_ms);
        } else {
            snprintf(err, sizeof(err), "%s", c->errstr[0] ? c->errstr : "protocol error");
        }
        for (i = 0; i < got; i++) {
            freeReplyObject(out[i]);
        }
        query_drop(st);
        if (!(reused && stale && retry && attempt == 0)) {
            mark_failed(st, "command", err);
            return -1;
        }
    }
    return -1;
}

/* Run one command; returns its reply (caller frees) or NULL. */
static redisReply *query_one(struct store *st, struct cmd *c, int retry)
{
    redisReply *r = NULL;

    if (query_run(st, c, 1, &r, retry) != 0) {
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

int store_ping(struct store *st)
{
    struct cmd c = {0};
    redisReply *r;
    int rc;

    arg_str(&c, "PING");
    r = query_one(st, &c, 1);
    rc = r != NULL && r->type == REDIS_REPLY_STATUS ? 0 : -1;
    freeReplyObject(r);
    return rc;
}

/* ---- the non-blocking batch connection -------------------------------- */

/* History layout helpers, defined with the history reads at the end. */
#define HISTORY_PER_HOUR (3600 / HITBUF_INTERVAL_S)
static void history_key(const struct store *st, int64_t hour, char *buf);
static int64_t history_expire_at(int64_t hour);

void store_batch_attach(struct store *st, int epfd, uint64_t tag)
{
    st->epfd = epfd;
    st->tag = tag;
}

int store_batch_busy(const struct store *st)
{
    return st->b_busy;
}

int64_t store_batch_deadline(const struct store *st)
{
    return st->b_busy ? st->b_deadline : -1;
}

static int batch_register(struct store *st)
{
    uint32_t want = EPOLLIN | (st->b_want_write ? EPOLLOUT : 0);
    struct epoll_event ev;

    if (st->epfd < 0 || st->b == NULL || want == st->b_events) {
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    ev.data.u64 = st->tag;
    if (epoll_ctl(st->epfd, st->b_events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, st->b->fd, &ev) !=
        0) {
        return -1;
    }
    st->b_events = want;
    return 0;
}

static enum store_io batch_fail(struct store *st, const char *what, const char *detail)
{
    char copy[128];

    /* detail may point into the context about to be freed. */
    snprintf(copy, sizeof(copy), "%s", detail);
    batch_drop(st);
    mark_failed(st, what, copy);
    return STORE_IO_FAILED;
}

static int batch_connect(struct store *st)
{
    const struct config *cfg = st->cfg;
    redisContext *c = redisConnectNonBlock(cfg->redis_host, cfg->redis_port);

    if (c == NULL || c->err) {
        mark_failed(st, "connect", c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    st->b = c;
    if (cfg->redis_password[0] != '\0') {
        const char *argv[2] = {"AUTH", cfg->redis_password};
        size_t len[2] = {4, strlen(cfg->redis_password)};

        if (redisAppendCommandArgv(c, 2, argv, len) != REDIS_OK) {
            batch_fail(st, "AUTH", c->errstr);
            return -1;
        }
        st->b_auth_pending = 1;
    }
    return 0;
}

int store_batch_send(struct store *st, const struct hitbatch *b, int64_t now_ms)
{
    const struct config *cfg = st->cfg;
    size_t nh = b->nintervals;
    int argc = 12 + 4 * (int)nh + 2 * (int)b->n, a;
    const char **argv = NULL;
    size_t *len = NULL;
    char *nums = NULL, *hkeys = NULL, head[6][24];
    int fresh = 0, done = 0, rc = -1;

    if (st->b_busy) {
        return 0;
    }
    if (st->b == NULL) {
        if (!may_try(st) || batch_connect(st) != 0) {
            return -1;
        }
        fresh = 1;
    }
    argv = malloc((size_t)argc * sizeof(*argv));
    len = malloc((size_t)argc * sizeof(*len));
    nums = malloc((b->n + 3 * nh) * 24 + 1);
    hkeys = malloc(nh * KEY_MAX + 1);
    if (argv == NULL || len == NULL || nums == NULL || hkeys == NULL) {
        goto out;
    }
    snprintf(head[0], sizeof(head[0]), "%llu", (unsigned long long)b->seq);
    snprintf(head[1], sizeof(head[1]), "%d", WRITER_TTL_S);
    snprintf(head[2], sizeof(head[2]), "%llu", (unsigned long long)b->hits);
    snprintf(head[3], sizeof(head[3]), "%llu", (unsigned long long)b->dropped);
    snprintf(head[4], sizeof(head[4]), "%zu", 4 + nh);
    snprintf(head[5], sizeof(head[5]), "%zu", nh);
    argv[0] = "EVAL";
    argv[1] = batch_script;
    argv[2] = head[4];
    argv[3] = st->k_hits;
    argv[4] = st->k_total;
    argv[5] = st->k_dropped;
    argv[6] = st->k_writer;
    a = 7;
    for (size_t i = 0; i < nh; i++) {
        history_key(st, b->intervals[i].interval / HISTORY_PER_HOUR, hkeys + i * KEY_MAX);
        argv[a++] = hkeys + i * KEY_MAX;
    }
    for (int i = 0; i < 4; i++) {
        argv[a++] = head[i];
    }
    argv[a++] = head[5];
    for (size_t i = 0; i < nh; i++) {
        int64_t iv = b->intervals[i].interval;
        char *num = nums + 3 * i * 24;

        snprintf(num, 24, "%lld", (long long)(iv % HISTORY_PER_HOUR));
        snprintf(num + 24, 24, "%llu", (unsigned long long)b->intervals[i].count);
        snprintf(num + 48, 24, "%lld", (long long)history_expire_at(iv / HISTORY_PER_HOUR));
        argv[a++] = num;
        argv[a++] = num + 24;
        argv[a++] = num + 48;
    }
    for (int i = 0; i < a; i++) {
        len[i] = strlen(argv[i]);
    }
    for (size_t i = 0; i < b->n; i++) {
        char *num = nums + (3 * nh + i) * 24;
        int n = snprintf(num, 24, "%llu", (unsigned long long)b->entries[i].count);

        argv[a] = num;
        len[a++] = (size_t)n;
        argv[a] = b->entries[i].path;
        len[a++] = b->entries[i].len;
    }
    if (redisAppendCommandArgv(st->b, argc, argv, len) != REDIS_OK) {
        batch_fail(st, "EVAL", st->b->errstr);
        goto out;
    }
    if (redisBufferWrite(st->b, &done) != REDIS_OK) {
        batch_fail(st, "write", st->b->errstr);
        goto out;
    }
    st->b_want_write = !done;
    st->b_busy = 1;
    st->b_deadline = now_ms + cfg->redis_timeout_ms + (fresh ? cfg->redis_connect_timeout_ms : 0);
    if (batch_register(st) != 0) {
        batch_fail(st, "epoll_ctl", strerror(errno));
        goto out;
    }
    rc = 0;

out:
    free(hkeys);
    free(nums);
    free(len);
    free(argv);
    return rc;
}

enum store_io store_batch_io(struct store *st, uint32_t events, int64_t now_ms)
{
    redisContext *c = st->b;
    void *reply;

    if (c == NULL) {
        return STORE_IO_PENDING;
    }
    if (st->b_want_write && (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))) {
        int done = 0;

        if (redisBufferWrite(c, &done) != REDIS_OK) {
            return batch_fail(st, "write", c->errstr);
        }
        st->b_want_write = !done;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        if (redisBufferRead(c) != REDIS_OK) {
            if (!st->b_busy) {
                /* An idle connection closed (Redis restarted, or its
                 * timeout): not a failure, just reconnect next time. */
                batch_drop(st);
                return STORE_IO_PENDING;
            }
            return batch_fail(st, "read", c->errstr);
        }
    }
    for (;;) {
        redisReply *r;

        reply = NULL;
        if (redisGetReplyFromReader(c, &reply) != REDIS_OK) {
            return batch_fail(st, "protocol", c->errstr);
        }
        if (reply == NULL) {
            break;
        }
        r = reply;
        if (st->b_auth_pending) {
            st->b_auth_pending = 0;
            if (r->type == REDIS_REPLY_ERROR) {
                enum store_io io = batch_fail(st, "AUTH", r->str);
                freeReplyObject(r);
                return io;
            }
            freeReplyObject(r);
            continue;
        }
        if (!st->b_busy) {
            freeReplyObject(r); /* nothing expected: ignore */
            continue;
        }
        st->b_busy = 0;
        if (r->type == REDIS_REPLY_INTEGER) {
            freeReplyObject(r);
            mark_ok(st);
            batch_register(st);
            return STORE_IO_DONE;
        }
        /* An error reply (OOM, a busy script, a wrong key type): the
         * script failed before its first write, so nothing was applied.
         * Keep the connection, back off, retry the same batch later. */
        mark_failed(st, "EVAL", r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
        freeReplyObject(r);
        return STORE_IO_FAILED;
    }
    if (st->b_busy && now_ms >= st->b_deadline) {
        char detail[64];

        snprintf(detail, sizeof(detail), "no answer within %d ms", st->cfg->redis_timeout_ms);
        return batch_fail(st, "batch", detail);
    }
    if (batch_register(st) != 0) {
        return batch_fail(st, "epoll_ctl", strerror(errno));
    }
    return STORE_IO_PENDING;
}

/* ---- the report ------------------------------------------------------ */

static long long reply_ll(const redisReply *r)
{
    if (r == NULL) {
        return 0;
    }
    if (r->type == REDIS_REPLY_INTEGER) {
        return r->integer;
    }
    if (r->type == REDIS_REPLY_STRING) {
        /* Counts are whole numbers; scores come back as "%.17g" text. */
        return (long long)strtod(r->str, NULL);
    }
    return 0;
}

int store_page(struct store *st, long long offset, long long limit, struct store_page *page)
{
    struct cmd cmds[6];
    redisReply *rep[6] = {0};
    redisReply *exec, *range;

    memset(page, 0, sizeof(*page));
    memset(cmds, 0, sizeof(cmds));
    arg_str(&cmds[0], "MULTI");
    arg_str(&cmds[1], "ZREVRANGE");
    arg_str(&cmds[1], st->k_hits);
    arg_ll(&cmds[1], offset);
    arg_ll(&cmds[1], offset + limit - 1);
    arg_str(&cmds[1], "WITHSCORES");
    arg_str(&cmds[2], "ZCARD");
    arg_str(&cmds[2], st->k_hits);
    arg_str(&cmds[3], "GET");
    arg_str(&cmds[3], st->k_total);
    arg_str(&cmds[4], "GET");
    arg_str(&cmds[4], st->k_dropped);
    arg_str(&cmds[5], "EXEC");

    if (query_run(st, cmds, 6, rep, 1) != 0) {
        return -1;
    }
    for (int i = 0; i < 5; i++) {
        freeReplyObject(rep[i]);
    }
    exec = rep[5];
    if (exec == NULL || exec->type != REDIS_REPLY_ARRAY || exec->elements != 4 ||
        exec->element[0]->type != REDIS_REPLY_ARRAY) {
        reply_error_log("report", exec);
        freeReplyObject(exec);
        return -1;
    }
    page->priv = exec;
    range = exec->element[0];
    page->unique = reply_ll(exec->element[1]);
    page->total = reply_ll(exec->element[2]);
    page->dropped = reply_ll(exec->element[3]);
    page->n = range->elements / 2;
    if (page->n > 0) {
        page->entries = calloc(page->n, sizeof(*page->entries));
        if (page->entries == NULL) {
            return -1;
        }
    }
    for (size_t i = 0; i < page->n; i++) {
        const redisReply *m = range->element[2 * i];

        page->entries[i].path = m->type == REDIS_REPLY_STRING ? m->str : "";
        page->entries[i].len = m->type == REDIS_REPLY_STRING ? m->len : 0;
        page->entries[i].count = reply_ll(range->element[2 * i + 1]);
    }
    return 0;
}

void store_page_free(struct store_page *page)
{
    free(page->entries);
    freeReplyObject(page->priv);
    memset(page, 0, sizeof(*page));
}

/* ---- test runs -------------------------------------------------------- */

/* buf holds RUNKEY_MAX bytes; id is at most RUN_ID_LEN bytes. */
static void run_key(const struct store *st, const char *id, char *buf)
{
    snprintf(buf, RUNKEY_MAX, "%s%s", st->k_run, id);
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

int store_run_create(struct store *st, const struct run *r, int max_active, int kept)
{
    char key[RUNKEY_MAX];
    struct cmd c = {0};
    redisReply *rep;
    int rc;

    run_key(st, r->id, key);
    arg_str(&c, "EVAL");
    arg_str(&c, create_script);
    arg_str(&c, "4");
    arg_str(&c, key);
    arg_str(&c, st->k_active);
    arg_str(&c, st->k_queue);
    arg_str(&c, st->k_recent);
    arg_str(&c, r->id);
    arg_ll(&c, r->requests);
    arg_ll(&c, r->created_ms);
    arg_ll(&c, max_active);
    arg_ll(&c, kept);
    /* Not retried on a stale connection: a create that reached Redis
     * before the connection broke must not queue the run twice. */
    rep = query_one(st, &c, 0);
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

int store_run_get(struct store *st, const char *id, struct run *r)
{
    char key[RUNKEY_MAX];
    struct cmd c = {0};
    redisReply *rep;
    int rc;

    run_key(st, id, key);
    arg_str(&c, "HGETALL");
    arg_str(&c, key);
    rep = query_one(st, &c, 1);
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

int store_run_list(struct store *st, size_t max, struct run *runs, size_t *n)
{
    struct cmd c = {0};
    struct cmd *gets = NULL;
    char *keys = NULL; /* count keys of RUNKEY_MAX bytes each */
    redisReply *ids, **reps = NULL;
    size_t count;
    int rc = -1;

    *n = 0;
    arg_str(&c, "LRANGE");
    arg_str(&c, st->k_recent);
    arg_ll(&c, 0);
    arg_ll(&c, (long long)max - 1);
    ids = query_one(st, &c, 1);
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
            run_key(st, "-", key);
        } else {
            run_key(st, id->str, key);
        }
        arg_str(&gets[i], "HGETALL");
        arg_str(&gets[i], key);
    }
    if (query_run(st, gets, (int)count, reps, 1) != 0) {
        goto out;
    }
    for (size_t i = 0; i < count; i++) {
        if (parse_run(reps[i], &runs[*n]) == 0) {
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

int store_run_claim(struct store *st, const char *owner, int64_t now_ms, struct run *r)
{
    struct cmd c = {0};
    redisReply *rep;
    char id[RUN_ID_LEN + 1];
    int rc;

    arg_str(&c, "EVAL");
    arg_str(&c, claim_script);
    arg_str(&c, "2");
    arg_str(&c, st->k_queue);
    arg_str(&c, st->k_active);
    arg_str(&c, st->k_run);
    arg_ll(&c, now_ms);
    arg_str(&c, owner);
    rep = query_one(st, &c, 0);
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
    rc = store_run_get(st, id, r);
    return rc == 0 ? 0 : -1;
}

int store_run_progress(struct store *st, const struct run *r)
{
    char key[RUNKEY_MAX], pool[URLGEN_POOL * (URLGEN_SEG_LEN + 1) + 1] = "";
    struct cmd c = {0};
    redisReply *rep;
    size_t plen = 0;
    int rc;

    for (int i = 0; i < r->npool; i++) {
        plen +=
            (size_t)snprintf(pool + plen, sizeof(pool) - plen, "%s%s", i ? "," : "", r->pool[i]);
    }
    run_key(st, r->id, key);
    arg_str(&c, "HSET");
    arg_str(&c, key);
    arg_str(&c, "sent");
    arg_ll(&c, r->sent);
    arg_str(&c, "succeeded");
    arg_ll(&c, r->succeeded);
    arg_str(&c, "failed");
    arg_ll(&c, r->failed);
    arg_str(&c, "heartbeat");
    arg_ll(&c, r->heartbeat_ms);
    arg_str(&c, "pool");
    arg_str(&c, pool);
    arg_str(&c, "error");
    arg_str(&c, r->error);
    rep = query_one(st, &c, 1);
    rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    reply_error_log("run progress", rep);
    freeReplyObject(rep);
    return rc;
}

int store_run_finish(struct store *st, const struct run *r, const char *owner, int retention_s)
{
    char key[RUNKEY_MAX];
    struct cmd c = {0};
    redisReply *rep;
    int rc;

    run_key(st, r->id, key);
    arg_str(&c, "EVAL");
    arg_str(&c, finish_script);
    arg_str(&c, "2");
    arg_str(&c, key);
    arg_str(&c, st->k_active);
    arg_str(&c, owner);
    arg_str(&c, run_status_name(r->status));
    arg_ll(&c, r->finished_ms);
    arg_ll(&c, r->sent);
    arg_ll(&c, r->succeeded);
    arg_ll(&c, r->failed);
    arg_str(&c, r->error);
    arg_ll(&c, retention_s);
    arg_str(&c, r->id);
    rep = query_one(st, &c, 1);
    rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? 0 : -1;
    reply_error_log("finish run", rep);
    freeReplyObject(rep);
    return rc;
}

int store_run_sweep(struct store *st, int64_t now_ms, int64_t stale_ms, const char *reason,
                    int retention_s)
{
    struct cmd c = {0};
    redisReply *rep;
    int rc;

    arg_str(&c, "EVAL");
    arg_str(&c, sweep_script);
    arg_str(&c, "1");
    arg_str(&c, st->k_active);
    arg_str(&c, st->k_run);
    arg_ll(&c, now_ms);
    arg_ll(&c, stale_ms);
    arg_str(&c, reason);
    arg_ll(&c, retention_s);
    rep = query_one(st, &c, 1);
    rc = rep != NULL && rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : -1;
    reply_error_log("sweep runs", rep);
    freeReplyObject(rep);
    return rc;
}

/* ==== history: requests per 10-s interval (docs/API.md section 10) ======
 *
 * Layout: one hash per hour of wall clock, P history:<epoch s / 3600>,
 * field = the interval's index within the hour (0..359), value = requests
 * counted in it. The batch script above adds each batch's interval tallies
 * with HINCRBY (under the batch's seq check, so a retried batch never adds
 * twice) and sets EXPIREAT to the hour's end + HISTORY_KEEP_S, so every
 * point is kept at least 25 h and memory is bounded: at most ~26 hashes of
 * at most 360 small fields. A read of N points is one EVAL that HMGETs
 * exactly those N fields from the at most 25 hours they span: O(points). */

#define HISTORY_KEEP_S ((int64_t)25 * 3600)

/* Read n intervals from `first` (interval index), filled with 0.
 * KEYS: the hour hashes from first's hour on, one per hour. ARGV: first,
 * n, intervals per hour. Returns n integers. */
static const char history_script[] =
    "local first, n, per = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local base = math.floor(first / per)\n"
    "local out = {}\n"
    "for k = 1, #KEYS do\n"
    "  local hour = base + k - 1\n"
    "  local lo = math.max(first, hour * per)\n"
    "  local hi = math.min(first + n - 1, hour * per + per - 1)\n"
    "  local fields = {}\n"
    "  for i = lo, hi do fields[#fields + 1] = string.format('%d', i - hour * per) end\n"
    "  if #fields > 0 then\n"
    "    local vals = redis.call('HMGET', KEYS[k], unpack(fields))\n"
    "    for j = 1, #vals do out[#out + 1] = tonumber(vals[j] or '0') or 0 end\n"
    "  end\n"
    "end\n"
    "return out\n";

static void history_key(const struct store *st, int64_t hour, char *buf)
{
    snprintf(buf, KEY_MAX, "%shistory:%lld", st->cfg->redis_prefix, (long long)hour);
}

static int64_t history_expire_at(int64_t hour)
{
    return (hour + 1) * 3600 + HISTORY_KEEP_S;
}

int store_history(struct store *st, int64_t first, size_t n, long long *counts)
{
    char keys[STORE_HISTORY_HOURS_MAX][KEY_MAX];
    int64_t h0 = first / HISTORY_PER_HOUR;
    int64_t h1 = (first + (int64_t)n - 1) / HISTORY_PER_HOUR;
    struct cmd c = {0};
    redisReply *rep;
    int rc = -1;

    if (n == 0 || first < 0 || h1 - h0 + 1 > STORE_HISTORY_HOURS_MAX) {
        return -1;
    }
    arg_str(&c, "EVAL");
    arg_str(&c, history_script);
    arg_ll(&c, h1 - h0 + 1);
    for (int64_t h = h0; h <= h1; h++) {
        history_key(st, h, keys[h - h0]);
        arg_str(&c, keys[h - h0]);
    }
    arg_ll(&c, first);
    arg_ll(&c, (long long)n);
    arg_ll(&c, HISTORY_PER_HOUR);
    rep = query_one(st, &c, 1);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != n) {
        reply_error_log("history", rep);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        counts[i] = reply_ll(rep->element[i]);
    }
    rc = 0;

out:
    freeReplyObject(rep);
    return rc;
}

/* ==== reset (docs/API.md section 11) =====================================
 *
 * One script, so it is atomic with respect to every batch: a batch is
 * applied wholly before or wholly after it. It removes the counts, the
 * total, the dropped-hit count and the history hashes of every hour a
 * point can still exist in (their EXPIREAT is at most HISTORY_KEEP_S past
 * the hour's end; the window also covers a wall clock a little ahead).
 * UNLINK frees a large sorted set in the background instead of stalling
 * Redis. Writer seq keys stay, so a batch retried after the reset is still
 * recognised as applied. Test runs are not touched.
 * KEYS: hits, total, dropped, history hashes. Returns the removed
 * {total, unique, dropped}. */
#define RESET_HOURS_AHEAD 1
#define RESET_HOURS       (HISTORY_KEEP_S / 3600 + 3 + RESET_HOURS_AHEAD)

static const char reset_script[] = "local total = tonumber(redis.call('GET', KEYS[2]) or '0')\n"
                                   "local unique = redis.call('ZCARD', KEYS[1])\n"
                                   "local dropped = tonumber(redis.call('GET', KEYS[3]) or '0')\n"
                                   "redis.call('UNLINK', unpack(KEYS))\n"
                                   "return {total, unique, dropped}\n";

int store_reset(struct store *st, int64_t now_s, struct store_reset *out)
{
    char keys[RESET_HOURS][KEY_MAX];
    int64_t hour = now_s / 3600;
    struct cmd c = {0};
    redisReply *rep;
    int rc = -1;

    memset(out, 0, sizeof(*out));
    arg_str(&c, "EVAL");
    arg_str(&c, reset_script);
    arg_ll(&c, 3 + RESET_HOURS);
    arg_str(&c, st->k_hits);
    arg_str(&c, st->k_total);
    arg_str(&c, st->k_dropped);
    for (int i = 0; i < RESET_HOURS; i++) {
        history_key(st, hour + RESET_HOURS_AHEAD - i, keys[i]);
        arg_str(&c, keys[i]);
    }
    /* Not retried on a stale connection: a reset is not worth risking
     * twice (the second would remove hits counted in between). */
    rep = query_one(st, &c, 0);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3) {
        reply_error_log("reset", rep);
        goto out;
    }
    out->total = reply_ll(rep->element[0]);
    out->unique = reply_ll(rep->element[1]);
    out->dropped = reply_ll(rep->element[2]);
    rc = 0;

out:
    freeReplyObject(rep);
    return rc;
}

/* ==== /metrics: the Redis-side figures (docs/API.md section 8) ===========
 *
 * One script reads the totals and counts test runs by status: the runs
 * listed in the recent-runs list (TEST_RUNS_KEPT at most) plus any active
 * run not in it, so the cost is bounded by the configuration. Like the
 * claim script it derives run keys from ids (single Redis).
 * KEYS: hits, total, dropped, active, recent. ARGV: run key prefix.
 * Returns {total, unique, dropped, queued, running, done, failed,
 * cancelled}. */
static const char metrics_script[] =
    "local by = {queued = 0, running = 0, done = 0, failed = 0, cancelled = 0}\n"
    "local seen = {}\n"
    "local function count(id)\n"
    "  if seen[id] then return end\n"
    "  seen[id] = true\n"
    "  local s = redis.call('HGET', ARGV[1] .. id, 'status')\n"
    "  if s and by[s] then by[s] = by[s] + 1 end\n"
    "end\n"
    "for _, id in ipairs(redis.call('LRANGE', KEYS[5], 0, -1)) do count(id) end\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do count(id) end\n"
    "return {tonumber(redis.call('GET', KEYS[2]) or '0'), redis.call('ZCARD', KEYS[1]),\n"
    "  tonumber(redis.call('GET', KEYS[3]) or '0'), by.queued, by.running, by.done,\n"
    "  by.failed, by.cancelled}\n";

int store_metrics(struct store *st, struct store_metrics *m)
{
    struct cmd c = {0};
    redisReply *rep;
    int rc = -1;

    memset(m, 0, sizeof(*m));
    arg_str(&c, "EVAL");
    arg_str(&c, metrics_script);
    arg_str(&c, "5");
    arg_str(&c, st->k_hits);
    arg_str(&c, st->k_total);
    arg_str(&c, st->k_dropped);
    arg_str(&c, st->k_active);
    arg_str(&c, st->k_recent);
    arg_str(&c, st->k_run);
    rep = query_one(st, &c, 1);
    if (rep == NULL) {
        return -1;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 + RUN_STATUSES) {
        reply_error_log("metrics", rep);
        goto out;
    }
    m->total = reply_ll(rep->element[0]);
    m->unique = reply_ll(rep->element[1]);
    m->dropped = reply_ll(rep->element[2]);
    for (int i = 0; i < RUN_STATUSES; i++) {
        m->runs[i] = reply_ll(rep->element[3 + i]);
    }
    rc = 0;

out:
    freeReplyObject(rep);
    return rc;
}

/* ==== cancelling a test run (docs/API.md section 11) =====================
 *
 * A queued run is marked cancelled and leaves the queue: it never starts.
 * A running run is marked cancelled at once; its runner checks the status
 * every few hundred ms (store_run_status), stops its transfers and writes
 * its final counters through the finish script. Either way the run leaves
 * the active set now, and its record expires after the retention.
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

int store_run_cancel(struct store *st, const char *id, int64_t now_ms, int retention_s)
{
    char key[RUNKEY_MAX];
    struct cmd c = {0};
    redisReply *rep;
    int rc = -1;

    run_key(st, id, key);
    arg_str(&c, "EVAL");
    arg_str(&c, cancel_script);
    arg_str(&c, "3");
    arg_str(&c, key);
    arg_str(&c, st->k_active);
    arg_str(&c, st->k_queue);
    arg_str(&c, id);
    arg_ll(&c, now_ms);
    arg_ll(&c, retention_s);
    rep = query_one(st, &c, 1);
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

int store_run_status(struct store *st, const char *id, enum run_status *status)
{
    char key[RUNKEY_MAX];
    struct cmd c = {0};
    redisReply *rep;
    int rc = -1;

    run_key(st, id, key);
    arg_str(&c, "HGET");
    arg_str(&c, key);
    arg_str(&c, "status");
    rep = query_one(st, &c, 1);
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
