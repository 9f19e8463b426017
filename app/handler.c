/* handler.c -- one HTTP request: canonical path, count, route, answer
 *
 * The order matters and is the contract (docs/API.md 1): the canonical path is
 * computed first, the hit is counted before anything is answered (a
 * canonical path over 2048 bytes is the only thing not counted), and only
 * then is the request routed. Validation errors, unknown paths and wrong
 * methods are counted like any other request.
 *
 * Handlers build their answers with jansson and hand them to reply.c. Text
 * from the request reaches an answer only through JSON escaping, and a
 * header only after it was validated or percent-encoded.
 */

#include "handler.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cluster.h"
#include "jsonbuf.h"
#include "log.h"
#include "metrics.h"
#include "param.h"
#include "path.h"
#include "reply.h"
#include "route.h"
#include "run.h"
#include "statcache.h"

/* Largest offset accepted by /stats/: 2^53 - 1, the largest integer every
 * JSON client reads exactly. */
#define STATS_OFFSET_MAX 9007199254740991ULL

/* Longest query string a trailing-slash redirect carries over. */
#define SLASH_QUERY_MAX 4096

/* Runs GET /test/runs/ lists when no limit is given. */
#define RUNS_DEFAULT_LIMIT 20

/* Longest request id echoed (nginx's $request_id has 32 hex digits) and
 * longest method named in a 405 message. */
#define REQUEST_ID_MAX 64
#define METHOD_MAX     32

/* A /stats/ page up to this size is built on the stack; a larger one
 * moves to the heap (jsonbuf.c). */
#define STATS_STACK_BYTES 16384

/* Seconds a client should wait after a 429 or 503. */
#define RETRY_AFTER_BUSY  "Retry-After: 5\r\n"
#define RETRY_AFTER_REDIS "Retry-After: 1\r\n"

struct request {
    const char *method;
    const char *query;
    const char *authorization;
    char path[PATH_CANON_MAX + 1];
    size_t pathlen;
    struct route route;
    struct reply rp;
};

static const char *param(FCGX_Request *req, const char *name)
{
    return FCGX_GetParam(name, req->envp);
}

/* nginx's $request_id is 32 hex digits; accept any short token of safe
 * characters so it can be echoed, and drop anything else. */
static const char *valid_request_id(const char *id)
{
    size_t n;

    if (id == NULL || *id == '\0') {
        return NULL;
    }
    n = strspn(id, "0123456789abcdefABCDEF-_.");
    return n == strlen(id) && n <= REQUEST_ID_MAX ? id : NULL;
}

/* Methods are HTTP tokens; echo one in a message only if it is one. */
static int valid_method(const char *m)
{
    size_t n =
        strspn(m, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.!#$%&'*+^`|~");
    return *m != '\0' && n == strlen(m) && n <= METHOD_MAX;
}

static void serve_error(struct request *r, int status, const char *code, const char *message,
                        const char *extra)
{
    reply_error(&r->rp, status, code, message, extra);
}

static void serve_json(struct request *r, int status, const char *extra, json_t *body)
{
    if (body == NULL || reply_json(&r->rp, status, extra, body) != 0) {
        serve_error(r, 500, "internal_error", "could not build the answer", NULL);
    }
    json_decref(body);
}

/* Answer with a body written by jsonbuf, then release it. */
static void serve_buf(struct request *r, int status, const char *extra, struct jsonbuf *jb)
{
    if (jsonbuf_failed(jb) || reply_body(&r->rp, status, extra, jb->data, jb->len) != 0) {
        serve_error(r, 500, "internal_error", "could not build the answer", NULL);
    }
    jsonbuf_free(jb);
}

static void serve_redis_down(struct request *r)
{
    serve_error(r, 503, "service_unavailable", "Redis is unreachable; try again shortly",
                RETRY_AFTER_REDIS);
}

static void serve_method(struct request *r)
{
    const char *allow = route_allow(r->route.id);
    char extra[64], msg[128];

    snprintf(extra, sizeof(extra), "Allow: %s\r\n", allow);
    if (valid_method(r->method)) {
        snprintf(msg, sizeof(msg), "method %s is not allowed here; use %s", r->method, allow);
    } else {
        snprintf(msg, sizeof(msg), "method not allowed here; use %s", allow);
    }
    serve_error(r, 405, "method_not_allowed", msg, extra);
}

/* Append s to buf as header-safe text: printable ASCII except space stays,
 * everything else becomes %XX. Returns -1 if it does not fit. */
static int append_header_safe(char *buf, size_t size, size_t *len, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (*len + 4 > size) {
            return -1;
        }
        if (c > 0x20 && c < 0x7f) {
            buf[(*len)++] = (char)c;
        } else {
            buf[(*len)++] = '%';
            buf[(*len)++] = hex[c >> 4];
            buf[(*len)++] = hex[c & 0x0f];
        }
    }
    buf[*len] = '\0';
    return 0;
}

static void serve_slash(struct request *r)
{
    /* The canonical path, '/', '?', and the query percent-encoded up to
     * SLASH_QUERY_MAX bytes; a longer query is dropped from the redirect. */
    char location[PATH_CANON_MAX + 2 + 3 * SLASH_QUERY_MAX + 1];
    char header[sizeof(location) + 16];
    size_t len = r->pathlen;

    memcpy(location, r->path, r->pathlen);
    location[len++] = '/';
    location[len] = '\0';
    if (r->query != NULL && *r->query != '\0' && strlen(r->query) <= SLASH_QUERY_MAX) {
        location[len++] = '?';
        location[len] = '\0';
        append_header_safe(location, sizeof(location), &len, r->query);
    }
    snprintf(header, sizeof(header), "Location: %s\r\n", location);
    serve_json(r, 308, header, json_pack("{s:s}", "location", location));
}

static void serve_api(struct request *r)
{
    char storage[3 * PATH_CANON_MAX + 16];
    struct jsonbuf jb;

    /* The hot path: written directly, no allocation (jsonbuf.c). */
    jsonbuf_init(&jb, storage, sizeof(storage));
    jsonbuf_lit(&jb, "{\"path\":");
    jsonbuf_path(&jb, r->path, r->pathlen);
    jsonbuf_lit(&jb, "}\n");
    serve_buf(r, 200, NULL, &jb);
}

/* Parse an optional numeric query parameter. Returns 0 and sets *out (the
 * default when absent), or -1 after answering 400. */
static int query_number(struct request *r, const char *name, unsigned long long min,
                        unsigned long long max, unsigned long long def, unsigned long long *out)
{
    size_t vlen = 0;
    const char *v = param_find(r->query, name, &vlen);
    char msg[128];

    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (param_uint(v, vlen, min, max, out) == 0) {
        return 0;
    }
    snprintf(msg, sizeof(msg), "%s must be an integer from %llu to %llu", name, min, max);
    serve_error(r, 400, "bad_request", msg, NULL);
    return -1;
}

static void serve_stats(const struct handler_ctx *ctx, struct request *r)
{
    unsigned long long limit, offset;
    struct counters_page page;
    struct jsonbuf jb;
    char storage[STATS_STACK_BYTES];
    long long version;
    int64_t now;

    if (query_number(r, "limit", 1, (unsigned long long)ctx->cfg->stats_max_limit,
                     (unsigned long long)ctx->cfg->stats_default_limit, &limit) != 0 ||
        query_number(r, "offset", 0, STATS_OFFSET_MAX, 0, &offset) != 0) {
        return;
    }
    jsonbuf_init(&jb, storage, sizeof(storage));
    now = clock_mono_ms();
    if (statcache_get(ctx->sc, (long long)offset, (long long)limit, now, &jb)) {
        serve_buf(r, 200, NULL, &jb);
        return;
    }
    if (counters_page(ctx->ctr, (long long)offset, (long long)limit, &page) != 0) {
        counters_page_free(&page);
        serve_redis_down(r);
        return;
    }
    /* Written directly (jsonbuf.c): a page of 100 entries through jansson
     * cost more than the Redis round trip. */
    jsonbuf_lit(&jb, "{\"total_requests\":");
    jsonbuf_int(&jb, page.total);
    jsonbuf_lit(&jb, ",\"unique_urls\":");
    jsonbuf_int(&jb, page.unique);
    jsonbuf_lit(&jb, ",\"offset\":");
    jsonbuf_int(&jb, (long long)offset);
    jsonbuf_lit(&jb, ",\"limit\":");
    jsonbuf_int(&jb, (long long)limit);
    jsonbuf_lit(&jb, ",\"urls\":[");
    for (size_t i = 0; i < page.n; i++) {
        if (i > 0) {
            jsonbuf_lit(&jb, ",");
        }
        jsonbuf_lit(&jb, "{\"url\":");
        jsonbuf_path(&jb, page.entries[i].path, page.entries[i].len);
        jsonbuf_lit(&jb, ",\"count\":");
        jsonbuf_int(&jb, page.entries[i].count);
        jsonbuf_lit(&jb, "}");
    }
    jsonbuf_lit(&jb, "],\"next\":");
    if (offset + limit < (unsigned long long)page.unique) {
        jsonbuf_lit(&jb, "\"/stats/?offset=");
        jsonbuf_int(&jb, (long long)(offset + limit));
        jsonbuf_lit(&jb, "&limit=");
        jsonbuf_int(&jb, (long long)limit);
        jsonbuf_lit(&jb, "\"");
    } else {
        jsonbuf_lit(&jb, "null");
    }
    jsonbuf_lit(&jb, ",\"dropped_hits\":");
    jsonbuf_int(&jb, page.dropped);
    jsonbuf_lit(&jb, "}\n");
    version = page.total + page.dropped;
    counters_page_free(&page);
    if (!jsonbuf_failed(&jb)) {
        /* Replaces jb with a newer cached page if there is one. */
        (void)statcache_put(ctx->sc, (long long)offset, (long long)limit, now, version, &jb);
    }
    serve_buf(r, 200, NULL, &jb);
}

/* The test endpoints are off, or need a token the request lacks. Returns 0
 * when the request may go on, -1 after answering. */
static int test_gate(const struct handler_ctx *ctx, struct request *r, int needs_token)
{
    const char *token = ctx->cfg->test_token;
    const char *auth = r->authorization;
    unsigned char diff = 0;
    size_t tlen, alen;

    if (!ctx->cfg->test_enabled) {
        serve_error(r, 403, "forbidden", "test runs are disabled on this server", NULL);
        return -1;
    }
    if (!needs_token || token[0] == '\0') {
        return 0;
    }
    tlen = strlen(token);
    alen = auth != NULL ? strlen(auth) : 0;
    if (alen == tlen + 7 && strncmp(auth, "Bearer ", 7) == 0) {
        /* Constant-time compare: no early exit on the first difference. */
        for (size_t i = 0; i < tlen; i++) {
            diff |= (unsigned char)(auth[7 + i] ^ token[i]);
        }
        if (diff == 0) {
            return 0;
        }
    }
    serve_error(r, 401, "unauthorized", "this endpoint needs 'Authorization: Bearer <token>'",
                "WWW-Authenticate: Bearer\r\n");
    return -1;
}

static void serve_test_start(const struct handler_ctx *ctx, struct request *r)
{
    unsigned long long n;
    struct run run;
    char msg[128], header[64];
    int rc;

    if (test_gate(ctx, r, 1) != 0) {
        return;
    }
    if (param_uint(r->route.arg, r->route.arglen, 1,
                   (unsigned long long)ctx->cfg->test_max_requests, &n) != 0) {
        snprintf(msg, sizeof(msg), "n must be an integer from 1 to %lld",
                 ctx->cfg->test_max_requests);
        serve_error(r, 400, "bad_request", msg, NULL);
        return;
    }
    memset(&run, 0, sizeof(run));
    if (run_id_new(run.id) != 0) {
        serve_error(r, 500, "internal_error", "could not draw a run id", NULL);
        return;
    }
    run.requests = (long long)n;
    run.status = RUN_QUEUED;
    run.created_ms = clock_wall_ms();
    rc = runs_create(ctx->runs, &run, ctx->cfg->test_max_active, ctx->cfg->test_runs_kept);
    if (rc < 0) {
        serve_redis_down(r);
        return;
    }
    if (rc > 0) {
        snprintf(msg, sizeof(msg), "%d test runs are queued or running already; retry later",
                 ctx->cfg->test_max_active);
        serve_error(r, 429, "too_many_requests", msg, RETRY_AFTER_BUSY);
        return;
    }
    snprintf(header, sizeof(header), "Location: /test/runs/%s/\r\n", run.id);
    log_info("test run %s queued: %llu requests", run.id, n);
    serve_json(r, 202, header,
               json_pack("{s:s, s:I, s:s, s:s++}", "id", run.id, "requests", (json_int_t)n,
                         "status", "queued", "status_url", "/test/runs/", run.id, "/"));
}

/* The gate of a /test/runs/{id}/ request and its id, copied into id.
 * Returns 0, or -1 when the answer (403, 401, 404) has been written. */
static int run_target(const struct handler_ctx *ctx, struct request *r, int needs_token,
                      char id[RUN_ID_LEN + 1])
{
    if (test_gate(ctx, r, needs_token) != 0) {
        return -1;
    }
    if (!run_id_valid(r->route.arg, r->route.arglen)) {
        serve_error(r, 404, "not_found", "no such test run", NULL);
        return -1;
    }
    memcpy(id, r->route.arg, RUN_ID_LEN);
    id[RUN_ID_LEN] = '\0';
    return 0;
}

static void serve_run(const struct handler_ctx *ctx, struct request *r)
{
    char id[RUN_ID_LEN + 1];
    struct run run;
    int rc;

    if (run_target(ctx, r, 0, id) != 0) {
        return;
    }
    rc = runs_get(ctx->runs, id, &run);
    if (rc < 0) {
        serve_redis_down(r);
    } else if (rc > 0) {
        serve_error(r, 404, "not_found", "no such test run", NULL);
    } else {
        serve_json(r, 200, NULL, run_to_json(&run, clock_wall_ms()));
    }
}

static void serve_run_list(const struct handler_ctx *ctx, struct request *r)
{
    unsigned long long kept = (unsigned long long)ctx->cfg->test_runs_kept, limit;
    unsigned long long def = RUNS_DEFAULT_LIMIT < kept ? RUNS_DEFAULT_LIMIT : kept;
    struct run *runs;
    size_t n = 0;
    json_t *list;
    int64_t now = clock_wall_ms();

    if (test_gate(ctx, r, 0) != 0 || query_number(r, "limit", 1, kept, def, &limit) != 0) {
        return;
    }
    runs = calloc(limit, sizeof(*runs));
    if (runs == NULL) {
        serve_error(r, 500, "internal_error", "out of memory", NULL);
        return;
    }
    if (runs_list(ctx->runs, limit, runs, &n) != 0) {
        free(runs);
        serve_redis_down(r);
        return;
    }
    list = json_array();
    for (size_t i = 0; list != NULL && i < n; i++) {
        if (json_array_append_new(list, run_to_json(&runs[i], now)) != 0) {
            json_decref(list);
            list = NULL;
        }
    }
    free(runs);
    serve_json(r, 200, NULL, json_pack("{s:o, s:I}", "runs", list, "limit", (json_int_t)limit));
}

/* ==== the operator's endpoints (docs/API.md sections 8, 10, 11) ========== */

/* Longest history a request may ask for, in minutes. */
#define HISTORY_MINUTES_MAX 1440

/* Masters /metrics lists in cluster mode (the router knows at most this
 * many nodes). */
#define METRICS_NODES_MAX   128
#define HISTORY_MINUTES_DEF 60

/* 1 if auth is exactly "Bearer <token>"; the token is compared in constant
 * time (no early exit on the first difference). token is not empty. */
static int bearer_matches(const char *auth, const char *token)
{
    size_t tlen = strlen(token), alen = auth != NULL ? strlen(auth) : 0;
    unsigned char diff = 0;

    if (alen != tlen + 7 || strncmp(auth, "Bearer ", 7) != 0) {
        return 0;
    }
    for (size_t i = 0; i < tlen; i++) {
        diff |= (unsigned char)(auth[7 + i] ^ token[i]);
    }
    return diff == 0;
}

/* GET /stats/history/?minutes=N: one point per interval, oldest first,
 * the last one the interval now in progress. */
static void serve_history(const struct handler_ctx *ctx, struct request *r)
{
    unsigned long long minutes;
    int64_t now_s = clock_wall_ms() / 1000, first;
    long long *counts = NULL;
    struct jsonbuf jb;
    char storage[16384];
    size_t n;

    if (!ctx->cfg->history_enabled) {
        serve_error(r, 403, "forbidden", "request history is disabled on this server", NULL);
        return;
    }
    if (query_number(r, "minutes", 1, HISTORY_MINUTES_MAX, HISTORY_MINUTES_DEF, &minutes) != 0) {
        return;
    }
    n = (size_t)minutes * 60 / HITBUF_INTERVAL_S;
    first = now_s / HITBUF_INTERVAL_S - (int64_t)n + 1;
    counts = calloc(n, sizeof(*counts));
    if (counts == NULL) {
        serve_error(r, 500, "internal_error", "out of memory", NULL);
        return;
    }
    if (counters_history(ctx->ctr, first, n, counts) != 0) {
        free(counts);
        serve_redis_down(r);
        return;
    }
    jsonbuf_init(&jb, storage, sizeof(storage));
    jsonbuf_lit(&jb, "{\"interval_seconds\":");
    jsonbuf_int(&jb, HITBUF_INTERVAL_S);
    jsonbuf_lit(&jb, ",\"points\":[");
    for (size_t i = 0; i < n; i++) {
        time_t t = (time_t)((first + (int64_t)i) * HITBUF_INTERVAL_S);
        char iso[32];
        struct tm tm;

        if (gmtime_r(&t, &tm) == NULL ||
            strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
            iso[0] = '\0';
        }
        if (i > 0) {
            jsonbuf_lit(&jb, ",");
        }
        jsonbuf_lit(&jb, "{\"t\":\"");
        jsonbuf_raw(&jb, iso, strlen(iso));
        jsonbuf_lit(&jb, "\",\"requests\":");
        jsonbuf_int(&jb, counts[i]);
        jsonbuf_lit(&jb, "}");
    }
    jsonbuf_lit(&jb, "]}\n");
    free(counts);
    serve_buf(r, 200, NULL, &jb);
}

/* DELETE /stats/ with the ADMIN_TOKEN bearer: remove every count. */
static void serve_reset(const struct handler_ctx *ctx, struct request *r)
{
    struct counters_totals removed;

    if (ctx->cfg->admin_token[0] == '\0') {
        serve_error(r, 403, "forbidden", "reset is disabled on this server (no ADMIN_TOKEN)", NULL);
        return;
    }
    if (!bearer_matches(r->authorization, ctx->cfg->admin_token)) {
        serve_error(r, 401, "unauthorized", "this endpoint needs 'Authorization: Bearer <token>'",
                    "WWW-Authenticate: Bearer\r\n");
        return;
    }
    if (counters_reset(ctx->ctr, clock_wall_ms() / 1000, &removed) != 0) {
        serve_redis_down(r);
        return;
    }
    /* No /stats/ page read before the reset may be served after this
     * answer: the cache drops what it holds and refuses any page whose
     * Redis read began before now (+1: the same millisecond may still be
     * before the reset). */
    statcache_invalidate(ctx->sc, clock_mono_ms() + 1);
    log_info("counts reset: %lld requests, %lld paths, %lld dropped hits removed", removed.total,
             removed.unique, removed.dropped);
    serve_json(r, 200, NULL,
               json_pack("{s:b, s:{s:I, s:I, s:I}}", "reset", 1, "removed", "total_requests",
                         (json_int_t)removed.total, "unique_urls", (json_int_t)removed.unique,
                         "dropped_hits", (json_int_t)removed.dropped));
}

/* DELETE /test/runs/{id}/ (with the TEST_TOKEN bearer when one is set). */
static void serve_cancel(const struct handler_ctx *ctx, struct request *r)
{
    char id[RUN_ID_LEN + 1];
    struct run run;
    int rc;

    if (run_target(ctx, r, 1, id) != 0) {
        return;
    }
    rc = runs_cancel(ctx->runs, id, clock_wall_ms(), ctx->cfg->test_run_retention_s);
    if (rc < 0) {
        serve_redis_down(r);
        return;
    }
    if (rc == 1) {
        serve_error(r, 404, "not_found", "no such test run", NULL);
        return;
    }
    if (rc == 2) {
        serve_error(r, 409, "conflict", "this test run has ended already", NULL);
        return;
    }
    log_info("test run %s cancelled", id);
    if (runs_get(ctx->runs, id, &run) == 0) {
        serve_json(r, 200, NULL, run_to_json(&run, clock_wall_ms()));
    } else {
        /* Cancelled; only the read-back failed. */
        serve_json(r, 200, NULL,
                   json_pack("{s:s, s:s, s:s++}", "id", id, "status", "cancelled", "status_url",
                             "/test/runs/", id, "/"));
    }
}

/* GET /metrics: Prometheus text, also while Redis is down. */
static void serve_metrics(const struct handler_ctx *ctx, struct request *r)
{
    struct metrics_node nodes[METRICS_NODES_MAX];
    int idx[METRICS_NODES_MAX], up_of[METRICS_NODES_MAX], nnodes = 0;
    struct metrics_redis sm;
    struct counters_totals tot;
    char *text = NULL;
    size_t len = 0;
    int up = counters_totals(ctx->ctr, &tot) == 0 && runs_by_status(ctx->runs, sm.runs) == 0;
    FILE *f;
    int rc = -1;

    /* docs/API.md section 8: in cluster mode reqstats_redis_up per node. */
    if (cluster_mode(ctx->cl)) {
        nnodes = cluster_ping_each(ctx->cl, idx, up_of, METRICS_NODES_MAX);
        for (int i = 0; i < nnodes; i++) {
            nodes[i].name = cluster_node_name(ctx->cl, idx[i]);
            nodes[i].up = up_of[i];
        }
    }
    f = open_memstream(&text, &len);

    sm.total = tot.total;
    sm.unique = tot.unique;
    sm.dropped = tot.dropped;
    if (f != NULL) {
        rc = metrics_render(f, ctx->mx, up ? &sm : NULL, nodes, nnodes);
        if (fclose(f) != 0) {
            rc = -1;
        }
    }
    if (rc != 0 || reply_typed(&r->rp, 200, METRICS_CONTENT_TYPE, text, len) != 0) {
        if (rc != 0) {
            serve_error(r, 500, "internal_error", "could not build the answer", NULL);
        }
    }
    free(text);
}

void handler_serve(const struct handler_ctx *ctx, FCGX_Request *req)
{
    struct request r;
    const char *uri = param(req, "REQUEST_URI");
    size_t urilen = uri != NULL ? strlen(uri) : 0;

    memset(&r.route, 0, sizeof(r.route));
    r.method = param(req, "REQUEST_METHOD");
    if (r.method == NULL) {
        r.method = "";
    }
    r.query = param(req, "QUERY_STRING");
    r.authorization = param(req, "HTTP_AUTHORIZATION");
    r.rp.out = req->out;
    r.rp.head = strcmp(r.method, "HEAD") == 0;
    r.rp.request_id = valid_request_id(param(req, "REQUEST_ID"));

    if (path_canon(uri != NULL ? uri : "/", urilen, r.path, &r.pathlen) != 0) {
        char msg[64];

        snprintf(msg, sizeof(msg), "the canonical path is longer than %d bytes", PATH_CANON_MAX);
        serve_error(&r, 414, "uri_too_long", msg, NULL);
        return;
    }

    /* Counted before anything is answered: docs/API.md 1. A full buffer drops
     * the hit; hitbuf tallies it and the worker logs it. */
    hitbuf_add_at(ctx->hb, r.path, 1,
                  ctx->cfg->history_enabled ? clock_wall_ms() / ((int64_t)1000 * HITBUF_INTERVAL_S)
                                            : -1);

    route_match(r.path, r.pathlen, &r.route);
    if (r.route.id == ROUTE_NOT_FOUND) {
        serve_error(&r, 404, "not_found", "no such endpoint", NULL);
        return;
    }
    if (r.route.id == ROUTE_SLASH) {
        serve_slash(&r);
        return;
    }
    if (!route_method_ok(r.route.id, r.method)) {
        serve_method(&r);
        return;
    }
    switch (r.route.id) {
    case ROUTE_API:
        serve_api(&r);
        break;
    case ROUTE_STATS:
        if (strcmp(r.method, "DELETE") == 0) {
            serve_reset(ctx, &r);
        } else {
            serve_stats(ctx, &r);
        }
        break;
    case ROUTE_TEST_START:
        serve_test_start(ctx, &r);
        break;
    case ROUTE_RUN_LIST:
        serve_run_list(ctx, &r);
        break;
    case ROUTE_RUN:
        if (strcmp(r.method, "DELETE") == 0) {
            serve_cancel(ctx, &r);
        } else {
            serve_run(ctx, &r);
        }
        break;
    case ROUTE_HISTORY:
        serve_history(ctx, &r);
        break;
    case ROUTE_METRICS:
        serve_metrics(ctx, &r);
        break;
    case ROUTE_NOT_FOUND:
    case ROUTE_SLASH:
        break;
    }
}
