/* config.c -- the service configuration, read once from the environment
 *
 * Every setting is an environment variable described by one row of the
 * table below: name, default, bounds and meaning. config_load() walks the
 * table, parses each value strictly (whole string, no sign surprises, range
 * checked) and then checks the rules that tie variables together. Nothing
 * else in the program calls getenv(): the resulting struct is immutable and
 * passed down as const. The README's configuration table mirrors this one;
 * `reqstats --help` prints it.
 */

#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum kind {
    K_INT,    /* decimal integer in [min, max] stored in an int */
    K_LLONG,  /* decimal integer in [min, max] stored in a long long */
    K_BOOL,   /* 0/1, false/true, no/yes, off/on */
    K_MODE,   /* octal file mode */
    K_STR,    /* free text without control characters */
    K_SECRET, /* like K_STR, masked when printed */
    K_HOST,   /* host name or address */
    K_PREFIX, /* Redis key prefix: printable ASCII without spaces */
    K_LISTEN, /* unix:/path, /path or host:port */
    K_URL,    /* http:// or https:// base URL */
    K_SOCKET, /* empty, or an absolute unix socket path */
    K_SEEDS,  /* empty, or host:port[,host:port...] (IPv6 as [addr]:port) */
    K_LEVEL   /* debug, info, warn, error */
};

struct var {
    const char *name;
    enum kind kind;
    const char *def;
    long long min, max; /* numeric bounds, or string length bounds */
    size_t off;         /* offset of the field in struct config */
    size_t size;        /* size of the field (strings) */
    const char *help;
};

/* docs/API.md 1: a hit is visible in /stats/ within 100 ms of its response. It
 * waits up to FLUSH_INTERVAL_MS in its worker and a cached page is up to
 * STATS_CACHE_MS old; the rest of the 100 ms is left for the write. */
#define VISIBLE_BUDGET_MS 90

/* FLUSH_INTERVAL_MS when REDIS_CLUSTER is set and the variable is not. A
 * worker writes one EVAL per shard it holds hits for, and a cluster EVAL
 * costs its master about 100 us of CPU whatever it carries: at 10 ms a
 * batch part held about 3 hits and the cluster hot path ran at 0.6 x
 * standalone on one machine; 50 ms gives parts several times larger (the
 * bench's cluster phase measures it), and with STATS_CACHE_MS's default a
 * hit still shows within 75 ms. */
#define CLUSTER_FLUSH_INTERVAL_MS 50

#define F(field) offsetof(struct config, field), sizeof(((struct config *)0)->field)

static const struct var vars[] = {
    {"FCGI_LISTEN", K_LISTEN, "127.0.0.1:9000", 1, 255, F(fcgi_listen),
     "FastCGI socket nginx connects to: unix:/path, /path, or host:port"},
    {"FCGI_BACKLOG", K_INT, "1024", 16, 65535, F(fcgi_backlog), "listen(2) backlog"},
    {"FCGI_SOCKET_MODE", K_MODE, "0660", 0, 0777, F(fcgi_socket_mode),
     "permissions of a unix FastCGI socket (octal)"},
    {"WORKERS", K_INT, "4", 1, 64, F(workers), "prefork FastCGI worker processes"},
    {"WORKER_CONNECTIONS", K_INT, "128", 1, 1000, F(worker_connections),
     "FastCGI connections one worker keeps open at most"},
    {"REDIS_HOST", K_HOST, "127.0.0.1", 1, 255, F(redis_host), "Redis host name or address"},
    {"REDIS_PORT", K_INT, "6379", 1, 65535, F(redis_port), "Redis TCP port"},
    {"REDIS_PASSWORD", K_SECRET, "", 0, 255, F(redis_password),
     "Redis AUTH password (empty: no AUTH)"},
    {"REDIS_PREFIX", K_PREFIX, "reqstats:", 1, 64, F(redis_prefix),
     "prefix of every Redis key the service uses"},
    {"REDIS_CLUSTER", K_SEEDS, "", 0, 1023, F(redis_cluster),
     "Redis Cluster seed nodes host:port[,host:port...] (IPv6 as [addr]:port); set: cluster "
     "mode, REDIS_HOST and REDIS_PORT unused"},
    {"REDIS_SHARDS", K_INT, "12", 1, 256, F(redis_shards),
     "cluster mode: shards the counts are spread over; fixed when the dataset is created"},
    {"REDIS_CONNECT_TIMEOUT_MS", K_INT, "250", 10, 10000, F(redis_connect_timeout_ms),
     "Redis connect timeout"},
    {"REDIS_TIMEOUT_MS", K_INT, "500", 10, 60000, F(redis_timeout_ms),
     "Redis command timeout; a slower Redis is treated as down"},
    {"REDIS_BACKOFF_MAX_MS", K_INT, "2000", 10, 60000, F(redis_backoff_max_ms),
     "longest wait between Redis reconnect attempts"},
    {"FLUSH_INTERVAL_MS", K_INT, "10", 1, VISIBLE_BUDGET_MS, F(flush_interval_ms),
     "longest time a worker holds a hit before writing it to Redis (unset with REDIS_CLUSTER: "
     "50)"},
    {"FLUSH_BATCH_PATHS", K_INT, "512", 1, 10000, F(flush_batch_paths),
     "most distinct paths written to Redis in one batch"},
    {"HIT_BUFFER_BYTES", K_LLONG, "16777216", 65536, 1073741824, F(hit_buffer_bytes),
     "memory one worker may use for hits Redis has not taken yet"},
    {"STATS_DEFAULT_LIMIT", K_INT, "100", 1, 100000, F(stats_default_limit),
     "/stats/ page size when no limit is given"},
    {"STATS_MAX_LIMIT", K_INT, "10000", 1, 100000, F(stats_max_limit),
     "largest accepted /stats/ limit"},
    {"STATS_CACHE_MS", K_INT, "25", 0, VISIBLE_BUDGET_MS - 1, F(stats_cache_ms),
     "how long all workers answer a /stats/ page from one Redis read (0: every request reads; "
     "plus FLUSH_INTERVAL_MS at most 90)"},
    {"HISTORY_ENABLED", K_BOOL, "1", 0, 1, F(history_enabled),
     "count requests per 10-s interval for GET /stats/history/ (0: no history writes, the "
     "endpoint answers 403)"},
    {"ADMIN_TOKEN", K_SECRET, "", 0, 255, F(admin_token),
     "if set, DELETE /stats/ with 'Authorization: Bearer <token>' resets every count (empty: "
     "reset disabled, 403)"},
    {"TEST_ENABLED", K_BOOL, "1", 0, 1, F(test_enabled),
     "serve POST /test/{n}/ and the run endpoints (0: answer 403)"},
    {"TEST_TOKEN", K_SECRET, "", 0, 255, F(test_token),
     "if set, POST /test/{n}/ needs 'Authorization: Bearer <token>'"},
    {"TEST_TARGET_URL", K_URL, "http://127.0.0.1:5000", 8, 511, F(test_target_url),
     "base URL test runs send their GET /api/... requests to"},
    {"TEST_TARGET_SOCKET", K_SOCKET, "", 0, 107, F(test_target_socket),
     "unix socket test runs connect to instead of TEST_TARGET_URL's host and port "
     "(nginx's `listen unix:`; empty: TCP)"},
    {"TEST_MAX_REQUESTS", K_LLONG, "100000", 1, 10000000, F(test_max_requests),
     "largest n accepted by POST /test/{n}/"},
    {"TEST_MAX_ACTIVE", K_INT, "4", 1, 100, F(test_max_active),
     "runs queued or running at once; more get 429"},
    {"TEST_CONCURRENCY", K_INT, "32", 1, 256, F(test_concurrency),
     "concurrent transfers of one test run"},
    {"TEST_REQUEST_TIMEOUT_MS", K_INT, "5000", 100, 60000, F(test_request_timeout_ms),
     "timeout of one test-run request, connect included"},
    {"TEST_RUN_RETENTION_S", K_INT, "604800", 60, 31536000, F(test_run_retention_s),
     "how long a finished run's record is kept"},
    {"TEST_RUNS_KEPT", K_INT, "100", 1, 10000, F(test_runs_kept),
     "how many recent runs GET /test/runs/ can list"},
    {"SHUTDOWN_TIMEOUT_MS", K_INT, "8000", 100, 120000, F(shutdown_timeout_ms),
     "grace period on SIGTERM before children are killed"},
    {"LOG_LEVEL", K_LEVEL, "info", 0, 0, F(log_level), "debug, info, warn or error"},
};

#define NVARS (sizeof(vars) / sizeof(vars[0]))

static const char *level_names[] = {"debug", "info", "warn", "error"};

static int parse_ll(const char *s, int base, long long *out)
{
    char *end = NULL;
    long long v;

    /* strtoll would skip leading white space and take a sign: demand a
     * digit first, so "\t4" or "+4" is an error, not 4. */
    if (*s < '0' || *s > '9') {
        return -1;
    }
    errno = 0;
    v = strtoll(s, &end, base);
    if (errno != 0 || end == s || *end != '\0') {
        return -1;
    }
    *out = v;
    return 0;
}

static int printable(const char *s, int allow_space)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c >= 0x7f || (!allow_space && c == ' ')) {
            return 0;
        }
    }
    return 1;
}

static int copy_str(const struct var *v, void *field, const char *val)
{
    size_t len = strlen(val);

    if ((long long)len < v->min || (long long)len > v->max || len >= v->size) {
        return -1;
    }
    memcpy(field, val, len + 1);
    return 0;
}

/* Split host:port; IPv6 literals are written [addr]:port. */
static int split_hostport(const char *s, char *host, size_t hostsize, int *port)
{
    const char *colon = strrchr(s, ':');
    const char *h = s;
    size_t hlen;
    long long p;

    if (colon == NULL) {
        return -1;
    }
    hlen = (size_t)(colon - s);
    if (hlen >= 2 && s[0] == '[' && s[hlen - 1] == ']') {
        h = s + 1;
        hlen -= 2;
    }
    if (hlen == 0 || hlen >= hostsize || parse_ll(colon + 1, 10, &p) != 0 || p < 1 || p > 65535) {
        return -1;
    }
    memcpy(host, h, hlen);
    host[hlen] = '\0';
    *port = (int)p;
    return 0;
}

static int set_listen(struct config *cfg, const char *val)
{
    const char *path = NULL;

    if (strncmp(val, "unix:", 5) == 0) {
        path = val + 5;
    } else if (val[0] == '/' || val[0] == '.') {
        path = val;
    }
    if (path != NULL) {
        /* sun_path holds 108 bytes including the NUL. */
        if (*path == '\0' || strlen(path) > 107) {
            return -1;
        }
        cfg->fcgi_unix = 1;
        memcpy(cfg->fcgi_listen, path, strlen(path) + 1);
        return 0;
    }
    cfg->fcgi_unix = 0;
    if (split_hostport(val, cfg->fcgi_host, sizeof(cfg->fcgi_host), &cfg->fcgi_port) != 0) {
        return -1;
    }
    memcpy(cfg->fcgi_listen, val, strlen(val) + 1);
    return 0;
}

/* REDIS_CLUSTER: up to CONFIG_SEEDS_MAX comma-separated host:port. A
 * host with a ':' must be bracketed ([::1]:7000); no empty element. */
static int set_seeds(struct config *cfg, const char *val)
{
    size_t len = strlen(val);
    const char *p = val;

    cfg->redis_nseeds = 0;
    if (len >= sizeof(cfg->redis_cluster)) {
        return -1;
    }
    memcpy(cfg->redis_cluster, val, len + 1);
    while (len > 0) {
        const char *comma = strchr(p, ',');
        size_t n = comma != NULL ? (size_t)(comma - p) : strlen(p);
        struct config_seed *seed;
        char item[300];

        if (n == 0 || n >= sizeof(item) || cfg->redis_nseeds == CONFIG_SEEDS_MAX) {
            return -1;
        }
        memcpy(item, p, n);
        item[n] = '\0';
        seed = &cfg->redis_seeds[cfg->redis_nseeds];
        if (split_hostport(item, seed->host, sizeof(seed->host), &seed->port) != 0 ||
            strpbrk(seed->host, "[]") != NULL ||
            (item[0] != '[' && strchr(seed->host, ':') != NULL)) {
            return -1;
        }
        cfg->redis_nseeds++;
        if (comma == NULL) {
            break;
        }
        p = comma + 1;
        if (*p == '\0') {
            return -1; /* a trailing comma */
        }
    }
    return 0;
}

static int set_url(char *field, size_t size, const char *val)
{
    size_t len = strlen(val);
    const char *host;

    if (strncmp(val, "http://", 7) == 0) {
        host = val + 7;
    } else if (strncmp(val, "https://", 8) == 0) {
        host = val + 8;
    } else {
        return -1;
    }
    /* A base URL: a host, an optional port and nothing a request could
     * smuggle into it (no user info, query or fragment). */
    if (*host == '\0' || *host == '/' || strpbrk(val, "?#@\\") != NULL || len >= size) {
        return -1;
    }
    while (len > 0 && val[len - 1] == '/') {
        len--;
    }
    memcpy(field, val, len);
    field[len] = '\0';
    return 0;
}

static int set_var(struct config *cfg, const struct var *v, const char *val)
{
    char *field = (char *)cfg + v->off;
    long long n;

    switch (v->kind) {
    case K_INT:
    case K_LLONG:
        if (parse_ll(val, 10, &n) != 0 || n < v->min || n > v->max) {
            return -1;
        }
        if (v->kind == K_INT) {
            *(int *)(void *)field = (int)n;
        } else {
            *(long long *)(void *)field = n;
        }
        return 0;
    case K_MODE:
        if (parse_ll(val, 8, &n) != 0 || n < v->min || n > v->max) {
            return -1;
        }
        *(int *)(void *)field = (int)n;
        return 0;
    case K_BOOL:
        if (!strcmp(val, "1") || !strcmp(val, "true") || !strcmp(val, "yes") ||
            !strcmp(val, "on")) {
            *(int *)(void *)field = 1;
        } else if (!strcmp(val, "0") || !strcmp(val, "false") || !strcmp(val, "no") ||
                   !strcmp(val, "off")) {
            *(int *)(void *)field = 0;
        } else {
            return -1;
        }
        return 0;
    case K_STR:
    case K_SECRET:
        return printable(val, 1) ? copy_str(v, field, val) : -1;
    case K_HOST:
    case K_PREFIX:
        return printable(val, 0) ? copy_str(v, field, val) : -1;
    case K_LISTEN:
        return printable(val, 0) ? set_listen(cfg, val) : -1;
    case K_URL:
        return printable(val, 0) ? set_url(field, v->size, val) : -1;
    case K_SEEDS:
        return printable(val, 0) ? set_seeds(cfg, val) : -1;
    case K_SOCKET:
        /* Empty, or absolute: a relative path would depend on the cwd. */
        return printable(val, 0) && (*val == '\0' || *val == '/') ? copy_str(v, field, val) : -1;
    case K_LEVEL:
        for (size_t i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
            if (!strcmp(val, level_names[i])) {
                *(enum log_level *)(void *)field = (enum log_level)i;
                return 0;
            }
        }
        return -1;
    }
    return -1;
}

/* Copy at most size - 1 bytes of s for an error message, with every byte
 * that is not printable ASCII (or is a quote) shown as '?': the message
 * stays one line whatever the environment holds. */
static void quote(const char *s, char *out, size_t size)
{
    size_t n = 0;

    for (; *s && n + 1 < size; s++) {
        unsigned char c = (unsigned char)*s;
        out[n++] = c >= 0x20 && c < 0x7f && c != '"' ? (char)c : '?';
    }
    out[n] = '\0';
}

static void describe_bounds(const struct var *v, char *buf, size_t len)
{
    switch (v->kind) {
    case K_INT:
    case K_LLONG:
        snprintf(buf, len, "an integer from %lld to %lld", v->min, v->max);
        break;
    case K_MODE:
        snprintf(buf, len, "an octal mode from 0 to 0777");
        break;
    case K_BOOL:
        snprintf(buf, len, "0 or 1");
        break;
    case K_LISTEN:
        snprintf(buf, len, "unix:/path, /path (at most 107 bytes) or host:port");
        break;
    case K_URL:
        snprintf(buf, len, "an http:// or https:// base URL without user, query or fragment");
        break;
    case K_SOCKET:
        snprintf(buf, len, "empty or an absolute path of at most %lld bytes", v->max);
        break;
    case K_SEEDS:
        snprintf(buf, len,
                 "empty, or 1 to %d comma-separated host:port ([addr]:port for IPv6), at most "
                 "%lld bytes",
                 CONFIG_SEEDS_MAX, v->max);
        break;
    case K_LEVEL:
        snprintf(buf, len, "one of debug, info, warn, error");
        break;
    default:
        snprintf(buf, len, "printable text of %lld to %lld bytes%s", v->min, v->max,
                 v->kind == K_STR || v->kind == K_SECRET ? "" : " without spaces");
        break;
    }
}

int config_load(struct config *cfg, char *err, size_t errlen)
{
    memset(cfg, 0, sizeof(*cfg));

    for (size_t i = 0; i < NVARS; i++) {
        const struct var *v = &vars[i];
        const char *val = getenv(v->name);
        char bounds[128];

        if (val == NULL) {
            val = v->def;
        }
        if (set_var(cfg, v, val) != 0) {
            char shown[65];

            describe_bounds(v, bounds, sizeof(bounds));
            quote(v->kind == K_SECRET ? "***" : val, shown, sizeof(shown));
            snprintf(err, errlen, "invalid %s=\"%s\": expected %s", v->name, shown, bounds);
            return -1;
        }
    }

    if (cfg->redis_nseeds > 0 && getenv("FLUSH_INTERVAL_MS") == NULL) {
        cfg->flush_interval_ms = CLUSTER_FLUSH_INTERVAL_MS;
    }
    if (cfg->stats_default_limit > cfg->stats_max_limit) {
        snprintf(err, errlen, "invalid STATS_DEFAULT_LIMIT=%d: greater than STATS_MAX_LIMIT=%d",
                 cfg->stats_default_limit, cfg->stats_max_limit);
        return -1;
    }
    if (cfg->stats_cache_ms + cfg->flush_interval_ms > VISIBLE_BUDGET_MS) {
        snprintf(err, errlen,
                 "invalid STATS_CACHE_MS=%d: with FLUSH_INTERVAL_MS=%d over %d ms, a hit could "
                 "take more than 100 ms to show in /stats/",
                 cfg->stats_cache_ms, cfg->flush_interval_ms, VISIBLE_BUDGET_MS);
        return -1;
    }
    if (cfg->redis_nseeds > 0 && strpbrk(cfg->redis_prefix, "{}") != NULL) {
        snprintf(err, errlen,
                 "invalid REDIS_PREFIX=\"%s\": with REDIS_CLUSTER it must not contain '{' or '}' "
                 "(a hash tag in the prefix would put every key in one slot)",
                 cfg->redis_prefix);
        return -1;
    }
    if (cfg->test_runs_kept < cfg->test_max_active) {
        snprintf(err, errlen, "invalid TEST_RUNS_KEPT=%d: smaller than TEST_MAX_ACTIVE=%d",
                 cfg->test_runs_kept, cfg->test_max_active);
        return -1;
    }
    return 0;
}

void config_print(const struct config *cfg, FILE *out)
{
    for (size_t i = 0; i < NVARS; i++) {
        const struct var *v = &vars[i];
        const char *field = (const char *)cfg + v->off;

        fprintf(out, "%s=", v->name);
        switch (v->kind) {
        case K_INT:
        case K_BOOL:
            fprintf(out, "%d\n", *(const int *)(const void *)field);
            break;
        case K_LLONG:
            fprintf(out, "%lld\n", *(const long long *)(const void *)field);
            break;
        case K_MODE:
            fprintf(out, "%04o\n", (unsigned)*(const int *)(const void *)field);
            break;
        case K_LEVEL:
            fprintf(out, "%s\n", level_names[*(const enum log_level *)(const void *)field]);
            break;
        case K_SECRET:
            fprintf(out, "%s\n", *field ? "***" : "");
            break;
        case K_LISTEN:
            fprintf(out, "%s%s\n", cfg->fcgi_unix ? "unix:" : "", field);
            break;
        default:
            fprintf(out, "%s\n", field);
            break;
        }
    }
}

void config_usage(FILE *out)
{
    char bounds[128];

    fprintf(out, "Environment variables (name, default, accepted values, meaning):\n");
    for (size_t i = 0; i < NVARS; i++) {
        describe_bounds(&vars[i], bounds, sizeof(bounds));
        fprintf(out, "  %-26s default \"%s\"; %s\n  %-26s %s\n", vars[i].name, vars[i].def, bounds,
                "", vars[i].help);
    }
}
