/* test_config.c -- unit tests for config.c
 *
 * Every test starts from an environment without any of the service's
 * variables: their names are read from config_print() itself, so a
 * variable added to the table later is cleared too. Then: the defaults,
 * the bounds of every numeric variable (min, max, one past each, garbage,
 * signs), the FastCGI listen forms, the test target URL rules, the rules
 * that tie variables together, and error messages that name the variable.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

/* The variables the service documents (README, config.c's table). */
static const char *const known[] = {
    "FCGI_LISTEN",          "FCGI_BACKLOG",
    "FCGI_SOCKET_MODE",     "WORKERS",
    "WORKER_CONNECTIONS",   "REDIS_HOST",
    "REDIS_PORT",           "REDIS_PASSWORD",
    "REDIS_PREFIX",         "REDIS_CLUSTER",
    "REDIS_SHARDS",         "REDIS_CONNECT_TIMEOUT_MS",
    "REDIS_TIMEOUT_MS",     "REDIS_BACKOFF_MAX_MS",
    "FLUSH_INTERVAL_MS",    "FLUSH_BATCH_PATHS",
    "HIT_BUFFER_BYTES",     "STATS_DEFAULT_LIMIT",
    "STATS_MAX_LIMIT",      "STATS_CACHE_MS",
    "HISTORY_ENABLED",      "ADMIN_TOKEN",
    "TEST_ENABLED",         "TEST_TOKEN",
    "TEST_TARGET_URL",      "TEST_TARGET_SOCKET",
    "TEST_MAX_REQUESTS",    "TEST_MAX_ACTIVE",
    "TEST_CONCURRENCY",     "TEST_REQUEST_TIMEOUT_MS",
    "TEST_RUN_RETENTION_S", "TEST_RUNS_KEPT",
    "SHUTDOWN_TIMEOUT_MS",  "LOG_LEVEL",
};

#define NKNOWN (sizeof(known) / sizeof(known[0]))

/* config_print() of cfg into a new string; caller frees. */
static char *printed(const struct config *cfg)
{
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);

    assert_non_null(f);
    config_print(cfg, f);
    assert_int_equal(fclose(f), 0);
    assert_non_null(text);
    return text;
}

/* Unset every variable config_print() names, and every known one. */
static int clean_env(void **state)
{
    struct config zero;
    char *text, *line;

    (void)state;
    memset(&zero, 0, sizeof(zero));
    text = printed(&zero);
    for (line = text; *line != '\0';) {
        size_t n = strcspn(line, "=\n");
        char name[64];

        if (line[n] == '=' && n > 0 && n < sizeof(name)) {
            memcpy(name, line, n);
            name[n] = '\0';
            unsetenv(name);
        }
        line += strcspn(line, "\n");
        line += *line == '\n';
    }
    free(text);
    for (size_t i = 0; i < NKNOWN; i++) {
        unsetenv(known[i]);
    }
    return 0;
}

static int load(struct config *cfg, char *err, size_t errlen)
{
    memset(err, 0, errlen);
    return config_load(cfg, err, errlen);
}

/* Set name=value (alone on top of the clean environment), load, and
 * return the result; a failure must name the variable. */
static int load_one(const char *name, const char *value, struct config *cfg)
{
    char err[512];
    int rc;

    assert_int_equal(setenv(name, value, 1), 0);
    rc = load(cfg, err, sizeof(err));
    if (rc != 0) {
        assert_int_equal(rc, -1);
        if (strstr(err, name) == NULL) {
            fail_msg("error for %s=\"%s\" does not name it: %s", name, value, err);
        }
    }
    unsetenv(name);
    return rc;
}

static void expect_ok(const char *name, const char *value, struct config *cfg)
{
    if (load_one(name, value, cfg) != 0) {
        fail_msg("%s=\"%s\" rejected", name, value);
    }
}

static void expect_bad(const char *name, const char *value)
{
    struct config cfg;

    if (load_one(name, value, &cfg) != -1) {
        fail_msg("%s=\"%s\" accepted", name, value);
    }
}

/* name takes a value of max bytes (lead, then fill) and refuses one of
 * max + 1; cfg holds the configuration loaded with the longest. */
static void expect_max_len(const char *name, char lead, char fill, size_t max, struct config *cfg)
{
    char s[512];

    assert_true(max + 2 <= sizeof(s));
    memset(s, fill, max + 1);
    s[0] = lead;
    s[max] = '\0';
    expect_ok(name, s, cfg);
    s[max] = fill;
    s[max + 1] = '\0';
    expect_bad(name, s);
}

/* config_print() lists exactly the documented variables, in table order:
 * a variable added to config.c must be added here and to the README. */
static void test_names_match(void **state)
{
    struct config cfg;
    char err[256];
    char *text;
    const char *at;
    size_t lines = 0;

    (void)state;
    assert_int_equal(load(&cfg, err, sizeof(err)), 0);
    text = printed(&cfg);
    at = text;
    for (const char *p = text; *p != '\0'; p++) {
        lines += *p == '\n';
    }
    for (size_t i = 0; i < NKNOWN; i++) {
        char needle[64];
        const char *found;

        snprintf(needle, sizeof(needle), "%s%s=", i == 0 ? "" : "\n", known[i]);
        found = strstr(at, needle);
        if (found == NULL || (i == 0 && found != text)) {
            fail_msg("%s missing from config_print() or out of order", known[i]);
        }
        at = found + 1;
    }
    assert_int_equal(lines, NKNOWN);
    free(text);
}

static void test_defaults(void **state)
{
    struct config c;
    char err[256];

    (void)state;
    assert_int_equal(load(&c, err, sizeof(err)), 0);
    assert_string_equal(c.fcgi_listen, "127.0.0.1:9000");
    assert_int_equal(c.fcgi_unix, 0);
    assert_string_equal(c.fcgi_host, "127.0.0.1");
    assert_int_equal(c.fcgi_port, 9000);
    assert_int_equal(c.fcgi_backlog, 1024);
    assert_int_equal(c.fcgi_socket_mode, 0660);
    assert_int_equal(c.workers, 4);
    assert_int_equal(c.worker_connections, 128);
    assert_string_equal(c.redis_host, "127.0.0.1");
    assert_int_equal(c.redis_port, 6379);
    assert_string_equal(c.redis_password, "");
    assert_string_equal(c.redis_prefix, "reqstats:");
    assert_string_equal(c.redis_cluster, ""); /* docs/API.md 7: standalone by default */
    assert_int_equal(c.redis_nseeds, 0);
    assert_int_equal(c.redis_shards, 12);
    assert_int_equal(c.redis_connect_timeout_ms, 250);
    assert_int_equal(c.redis_timeout_ms, 500);
    assert_int_equal(c.redis_backoff_max_ms, 2000);
    assert_int_equal(c.flush_interval_ms, 10);
    assert_true(c.flush_interval_ms < 100); /* docs/API.md 1: visible within 100 ms */
    assert_int_equal(c.flush_batch_paths, 512);
    assert_int_equal(c.hit_buffer_bytes, 16777216);
    assert_int_equal(c.stats_default_limit, 100); /* docs/API.md 3 */
    assert_int_equal(c.stats_max_limit, 10000);   /* docs/API.md 3 */
    assert_int_equal(c.test_enabled, 1);
    assert_string_equal(c.test_token, "");
    assert_string_equal(c.test_target_url, "http://127.0.0.1:5000"); /* docs/API.md 4 */
    assert_int_equal(c.test_max_requests, 100000);                   /* docs/API.md 4 */
    assert_int_equal(c.test_max_active, 4);
    assert_int_equal(c.test_concurrency, 32);
    assert_int_equal(c.test_request_timeout_ms, 5000);
    assert_int_equal(c.test_run_retention_s, 604800);
    assert_int_equal(c.test_runs_kept, 100);
    assert_int_equal(c.shutdown_timeout_ms, 8000);
    assert_int_equal(c.log_level, LOG_INFO);
}

/* ---- numeric bounds ---------------------------------------------------- */

struct numeric {
    const char *name;
    long long min, max;
    size_t off;
    int is_ll;             /* field is long long, else int */
    const char *companion; /* "NAME=value" the cross-checks need, or NULL */
};

#define INT_FIELD(f) offsetof(struct config, f), 0
#define LL_FIELD(f)  offsetof(struct config, f), 1

static const struct numeric numerics[] = {
    {"FCGI_BACKLOG", 16, 65535, INT_FIELD(fcgi_backlog), NULL},
    {"WORKERS", 1, 64, INT_FIELD(workers), NULL},
    {"WORKER_CONNECTIONS", 1, 1000, INT_FIELD(worker_connections), NULL},
    {"REDIS_PORT", 1, 65535, INT_FIELD(redis_port), NULL},
    {"REDIS_SHARDS", 1, 256, INT_FIELD(redis_shards), NULL},
    {"REDIS_CONNECT_TIMEOUT_MS", 10, 10000, INT_FIELD(redis_connect_timeout_ms), NULL},
    {"REDIS_TIMEOUT_MS", 10, 60000, INT_FIELD(redis_timeout_ms), NULL},
    {"REDIS_BACKOFF_MAX_MS", 10, 60000, INT_FIELD(redis_backoff_max_ms), NULL},
    {"FLUSH_INTERVAL_MS", 1, 90, INT_FIELD(flush_interval_ms), "STATS_CACHE_MS=0"},
    {"FLUSH_BATCH_PATHS", 1, 10000, INT_FIELD(flush_batch_paths), NULL},
    {"HIT_BUFFER_BYTES", 65536, 1073741824, LL_FIELD(hit_buffer_bytes), NULL},
    {"STATS_DEFAULT_LIMIT", 1, 100000, INT_FIELD(stats_default_limit), "STATS_MAX_LIMIT=100000"},
    {"STATS_MAX_LIMIT", 1, 100000, INT_FIELD(stats_max_limit), "STATS_DEFAULT_LIMIT=1"},
    {"STATS_CACHE_MS", 0, 89, INT_FIELD(stats_cache_ms), "FLUSH_INTERVAL_MS=1"},
    {"TEST_MAX_REQUESTS", 1, 10000000, LL_FIELD(test_max_requests), NULL},
    {"TEST_MAX_ACTIVE", 1, 100, INT_FIELD(test_max_active), "TEST_RUNS_KEPT=10000"},
    {"TEST_CONCURRENCY", 1, 256, INT_FIELD(test_concurrency), NULL},
    {"TEST_REQUEST_TIMEOUT_MS", 100, 60000, INT_FIELD(test_request_timeout_ms), NULL},
    {"TEST_RUN_RETENTION_S", 60, 31536000, INT_FIELD(test_run_retention_s), NULL},
    {"TEST_RUNS_KEPT", 1, 10000, INT_FIELD(test_runs_kept), "TEST_MAX_ACTIVE=1"},
    {"SHUTDOWN_TIMEOUT_MS", 100, 120000, INT_FIELD(shutdown_timeout_ms), NULL},
};

static long long field_value(const struct config *cfg, const struct numeric *v)
{
    const char *p = (const char *)cfg + v->off;
    long long ll;
    int i;

    if (v->is_ll) {
        memcpy(&ll, p, sizeof(ll));
        return ll;
    }
    memcpy(&i, p, sizeof(i));
    return i;
}

static void set_companion(const struct numeric *v)
{
    char name[64];
    const char *eq;

    if (v->companion == NULL) {
        return;
    }
    eq = strchr(v->companion, '=');
    assert_non_null(eq);
    assert_true((size_t)(eq - v->companion) < sizeof(name));
    memcpy(name, v->companion, (size_t)(eq - v->companion));
    name[eq - v->companion] = '\0';
    assert_int_equal(setenv(name, eq + 1, 1), 0);
}

static void expect_num_ok(const struct numeric *v, const char *text, long long want)
{
    struct config cfg;

    expect_ok(v->name, text, &cfg);
    if (field_value(&cfg, v) != want) {
        fail_msg("%s=\"%s\" stored %lld", v->name, text, field_value(&cfg, v));
    }
}

static void test_numeric_bounds(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(numerics) / sizeof(numerics[0]); i++) {
        const struct numeric *v = &numerics[i];
        static const char *const garbage[] = {
            "",    "abc",  "12abc", "1.5",   "1e3",      "0x10",
            "0b1", "five", "1 0",   "1_000", "\xd9\xa1", "9999999999999999999999999"};
        char text[64];

        clean_env(NULL);
        set_companion(v);
        snprintf(text, sizeof(text), "%lld", v->min);
        expect_num_ok(v, text, v->min);
        snprintf(text, sizeof(text), "%lld", v->max);
        expect_num_ok(v, text, v->max);
        snprintf(text, sizeof(text), "%0*lld", 12, v->max); /* leading zeros: decimal */
        expect_num_ok(v, text, v->max);
        snprintf(text, sizeof(text), "%lld", v->min - 1);
        expect_bad(v->name, text);
        snprintf(text, sizeof(text), "%lld", v->max + 1);
        expect_bad(v->name, text);
        snprintf(text, sizeof(text), "+%lld", v->min);
        expect_bad(v->name, text);
        snprintf(text, sizeof(text), "-%lld", v->min);
        expect_bad(v->name, text);
        expect_bad(v->name, "-0");
        snprintf(text, sizeof(text), " %lld", v->min);
        expect_bad(v->name, text);
        snprintf(text, sizeof(text), "%lld ", v->min);
        expect_bad(v->name, text);
        for (size_t g = 0; g < sizeof(garbage) / sizeof(garbage[0]); g++) {
            expect_bad(v->name, garbage[g]);
        }
    }
}

/* "Whole string, no sign surprises": other leading white space than a
 * space is garbage too (strtoll would skip it). */
static void test_numeric_leading_whitespace(void **state)
{
    static const char *const ws[] = {"\t4", "\n4", "\v4", "\f4", "\r4"};

    (void)state;
    for (size_t i = 0; i < sizeof(ws) / sizeof(ws[0]); i++) {
        expect_bad("WORKERS", ws[i]);
        expect_bad("TEST_MAX_REQUESTS", ws[i]);
    }
}

static void test_socket_mode(void **state)
{
    struct config cfg;

    (void)state;
    expect_ok("FCGI_SOCKET_MODE", "0600", &cfg);
    assert_int_equal(cfg.fcgi_socket_mode, 0600);
    expect_ok("FCGI_SOCKET_MODE", "777", &cfg);
    assert_int_equal(cfg.fcgi_socket_mode, 0777);
    expect_ok("FCGI_SOCKET_MODE", "0", &cfg);
    assert_int_equal(cfg.fcgi_socket_mode, 0);
    expect_bad("FCGI_SOCKET_MODE", "1000");
    expect_bad("FCGI_SOCKET_MODE", "0778");
    expect_bad("FCGI_SOCKET_MODE", "8");
    expect_bad("FCGI_SOCKET_MODE", "-1");
    expect_bad("FCGI_SOCKET_MODE", "+660");
    expect_bad("FCGI_SOCKET_MODE", "");
    expect_bad("FCGI_SOCKET_MODE", "rw-rw----");
}

static void test_bool_and_level(void **state)
{
    static const char *const on[] = {"1", "true", "yes", "on"};
    static const char *const off[] = {"0", "false", "no", "off"};
    static const char *const levels[] = {"debug", "info", "warn", "error"};
    static const enum log_level lv[] = {LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR};
    struct config cfg;

    (void)state;
    for (size_t i = 0; i < 4; i++) {
        expect_ok("TEST_ENABLED", on[i], &cfg);
        assert_int_equal(cfg.test_enabled, 1);
        expect_ok("TEST_ENABLED", off[i], &cfg);
        assert_int_equal(cfg.test_enabled, 0);
        expect_ok("LOG_LEVEL", levels[i], &cfg);
        assert_int_equal(cfg.log_level, lv[i]);
    }
    expect_bad("TEST_ENABLED", "");
    expect_bad("TEST_ENABLED", "2");
    expect_bad("TEST_ENABLED", "maybe");
    expect_bad("LOG_LEVEL", "");
    expect_bad("LOG_LEVEL", "trace");
    expect_bad("LOG_LEVEL", "info ");
}

static void test_strings(void **state)
{
    struct config cfg;

    (void)state;
    expect_ok("REDIS_HOST", "redis", &cfg);
    assert_string_equal(cfg.redis_host, "redis");
    expect_bad("REDIS_HOST", "");
    expect_bad("REDIS_HOST", "red is");
    expect_bad("REDIS_HOST", "redis\n");
    expect_max_len("REDIS_HOST", 'h', 'h', 255, &cfg);
    assert_int_equal(strlen(cfg.redis_host), 255);

    expect_max_len("REDIS_PREFIX", 'p', 'p', 64, &cfg);
    assert_int_equal(strlen(cfg.redis_prefix), 64);
    expect_bad("REDIS_PREFIX", "");
    expect_bad("REDIS_PREFIX", "a b:");
    expect_bad("REDIS_PREFIX", "caf\xc3\xa9:");

    expect_ok("TEST_TOKEN", "correct horse battery", &cfg);
    assert_string_equal(cfg.test_token, "correct horse battery");
    expect_bad("TEST_TOKEN", "line\nbreak");

    expect_ok("ADMIN_TOKEN", "reset me", &cfg);
    assert_string_equal(cfg.admin_token, "reset me");
    expect_bad("ADMIN_TOKEN", "tab\there");
    expect_ok("HISTORY_ENABLED", "0", &cfg);
    assert_int_equal(cfg.history_enabled, 0);
    expect_bad("HISTORY_ENABLED", "2");
}

/* A bad secret is reported by name without its value. */
static void test_secret_not_in_error(void **state)
{
    char err[512];
    struct config cfg;

    (void)state;
    assert_int_equal(setenv("REDIS_PASSWORD", "hunter2\x01", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "REDIS_PASSWORD"));
    assert_null(strstr(err, "hunter2"));
    unsetenv("REDIS_PASSWORD");
}

static void test_print_masks_secrets(void **state)
{
    char err[256];
    struct config cfg;
    char *text;

    (void)state;
    assert_int_equal(setenv("REDIS_PASSWORD", "hunter2", 1), 0);
    assert_int_equal(setenv("FCGI_LISTEN", "unix:/run/r.sock", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), 0);
    assert_string_equal(cfg.redis_password, "hunter2");
    text = printed(&cfg);
    assert_null(strstr(text, "hunter2"));
    assert_non_null(strstr(text, "\nREDIS_PASSWORD=***\n"));
    assert_non_null(strstr(text, "FCGI_LISTEN=unix:/run/r.sock\n"));
    free(text);
}

/* ---- FCGI_LISTEN --------------------------------------------------------- */

static void expect_unix(const char *value, const char *path)
{
    struct config cfg;

    expect_ok("FCGI_LISTEN", value, &cfg);
    assert_int_equal(cfg.fcgi_unix, 1);
    assert_string_equal(cfg.fcgi_listen, path);
}

static void expect_tcp(const char *value, const char *host, int port)
{
    struct config cfg;

    expect_ok("FCGI_LISTEN", value, &cfg);
    assert_int_equal(cfg.fcgi_unix, 0);
    assert_string_equal(cfg.fcgi_host, host);
    assert_int_equal(cfg.fcgi_port, port);
}

static void test_listen_forms(void **state)
{
    char s[200];

    (void)state;
    expect_unix("unix:/run/reqstats/fcgi.sock", "/run/reqstats/fcgi.sock");
    expect_unix("/tmp/fcgi.sock", "/tmp/fcgi.sock");
    expect_tcp("127.0.0.1:9001", "127.0.0.1", 9001);
    expect_tcp("app:1", "app", 1);
    expect_tcp("localhost:65535", "localhost", 65535);
    expect_tcp("[::1]:9000", "::1", 9000);
    expect_tcp("[fe80::1]:80", "fe80::1", 80);

    /* sun_path holds 107 bytes and a NUL. */
    memset(s, 'a', sizeof(s));
    s[0] = '/';
    s[107] = '\0';
    expect_unix(s, s);
    s[107] = 'a';
    s[108] = '\0';
    expect_bad("FCGI_LISTEN", s);
}

static void test_listen_bad(void **state)
{
    static const char *const bad[] = {
        "",
        "unix:",
        "9000",
        "localhost",
        "localhost:",
        ":9000",
        "host:0",
        "host:65536",
        "host:-1",
        "host:+80",
        "host:80x",
        "host: 80",
        "host:99999999999999999999",
        "[::1]",
        "[::1]:",
        "[]:80",
        "a b:80",
        "host:80\n",
        "host\t:80",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad("FCGI_LISTEN", bad[i]);
    }
}

/* ---- TEST_TARGET_URL -------------------------------------------------- */

static void expect_url(const char *value, const char *want)
{
    struct config cfg;

    expect_ok("TEST_TARGET_URL", value, &cfg);
    assert_string_equal(cfg.test_target_url, want);
}

static void test_target_url(void **state)
{
    static const char *const bad[] = {
        "",
        "127.0.0.1:5000",
        "ftp://host",
        "file:///etc/passwd",
        "gopher://host:70",
        "http://",
        "https://",
        "http:///path",
        "http://host/?q=1",
        "http://host/#frag",
        "http://host?q",
        "http://user:pass@host/",
        "http://user@host",
        "http://host\\evil",
        "http://ho st/",
        "http://host/\r\nX: y",
        "javascript:alert(1)",
    };

    (void)state;
    expect_url("http://127.0.0.1:5000", "http://127.0.0.1:5000");
    expect_url("http://127.0.0.1:5000/", "http://127.0.0.1:5000");
    expect_url("https://example.com///", "https://example.com");
    expect_url("http://nginx:5000/base/", "http://nginx:5000/base");
    expect_url("https://[::1]:8443", "https://[::1]:8443");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad("TEST_TARGET_URL", bad[i]);
    }
}

/* ---- TEST_TARGET_SOCKET ----------------------------------------------- */

static void test_target_socket(void **state)
{
    static const char *const bad[] = {
        "relative/http.sock",   "./http.sock",    "unix:/run/http.sock",
        "/run/with space.sock", "/run/\x01.sock",
    };
    struct config cfg;

    (void)state;
    expect_ok("TEST_TARGET_SOCKET", "", &cfg);
    assert_string_equal(cfg.test_target_socket, "");
    expect_ok("TEST_TARGET_SOCKET", "/run/reqstats/http.sock", &cfg);
    assert_string_equal(cfg.test_target_socket, "/run/reqstats/http.sock");
    /* sun_path holds 108 bytes with the NUL: 107 fit, 108 do not. */
    expect_max_len("TEST_TARGET_SOCKET", '/', 'a', 107, &cfg);
    assert_int_equal(strlen(cfg.test_target_socket), 107);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad("TEST_TARGET_SOCKET", bad[i]);
    }
}

/* ---- rules between variables ------------------------------------------ */

static void test_default_limit_over_max(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    assert_int_equal(setenv("STATS_DEFAULT_LIMIT", "200", 1), 0);
    assert_int_equal(setenv("STATS_MAX_LIMIT", "100", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "STATS_DEFAULT_LIMIT"));
    assert_int_equal(setenv("STATS_MAX_LIMIT", "200", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.stats_default_limit, 200);
    assert_int_equal(cfg.stats_max_limit, 200);
    /* A max under the default default is an error too. */
    unsetenv("STATS_DEFAULT_LIMIT");
    assert_int_equal(setenv("STATS_MAX_LIMIT", "50", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "STATS_DEFAULT_LIMIT"));
}

static void test_runs_kept_under_active(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    assert_int_equal(setenv("TEST_MAX_ACTIVE", "10", 1), 0);
    assert_int_equal(setenv("TEST_RUNS_KEPT", "9", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "TEST_RUNS_KEPT"));
    assert_int_equal(setenv("TEST_RUNS_KEPT", "10", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), 0);
}

/* docs/API.md 1: a hit's wait in its worker plus a cached page's age leave 10 of
 * the 100 ms for the write. */
static void test_cache_plus_flush_bounded(void **state)
{
    struct config cfg;
    char err[512];

    (void)state;
    assert_int_equal(load(&cfg, err, sizeof(err)), 0);
    assert_int_equal(cfg.stats_cache_ms + cfg.flush_interval_ms, 35); /* defaults 25 + 10 */
    assert_int_equal(setenv("STATS_CACHE_MS", "81", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "STATS_CACHE_MS=81"));
    assert_non_null(strstr(err, "FLUSH_INTERVAL_MS=10"));
    assert_int_equal(setenv("STATS_CACHE_MS", "80", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), 0);
    assert_int_equal(setenv("FLUSH_INTERVAL_MS", "11", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), -1);
    assert_int_equal(setenv("STATS_CACHE_MS", "0", 1), 0);
    assert_int_equal(setenv("FLUSH_INTERVAL_MS", "90", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), 0);
}

/* The first bad variable is reported, and the message fits a short
 * buffer without overflowing it. */
static void test_error_message(void **state)
{
    struct config cfg;
    char err[512];
    char small[16];

    (void)state;
    assert_int_equal(setenv("WORKERS", "0", 1), 0);
    assert_int_equal(load(&cfg, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "WORKERS"));
    assert_non_null(strstr(err, "\"0\""));
    assert_non_null(strstr(err, "1"));
    assert_non_null(strstr(err, "64"));
    memset(small, 'X', sizeof(small));
    assert_int_equal(config_load(&cfg, small, sizeof(small)), -1);
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_memory_equal(small, "invalid WORKERS", 15);
}

/* config.h: "-1 with a one-line description": a value with a line break
 * or other control byte must not break the message into several lines. */
static void test_error_one_line(void **state)
{
    static const char *const vars[] = {"REDIS_HOST", "FCGI_LISTEN", "TEST_TARGET_URL", "LOG_LEVEL",
                                       "WORKERS"};
    static const char *const values[] = {"x\nforged line", "x\r\nX: y", "x\x1b[2J"};

    (void)state;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++) {
        for (size_t k = 0; k < sizeof(values) / sizeof(values[0]); k++) {
            struct config cfg;
            char err[512];

            assert_int_equal(setenv(vars[i], values[k], 1), 0);
            assert_int_equal(load(&cfg, err, sizeof(err)), -1);
            unsetenv(vars[i]);
            assert_non_null(strstr(err, vars[i]));
            for (const char *p = err; *p != '\0'; p++) {
                if ((unsigned char)*p < 0x20 || *p == 0x7f) {
                    fail_msg("control byte 0x%02x in the error for %s: %s", (unsigned char)*p,
                             vars[i], err);
                }
            }
        }
    }
}

/* ---- REDIS_CLUSTER ------------------------------------------------------- */

static void expect_seed(const struct config *c, int i, const char *host, int port)
{
    assert_true(i < c->redis_nseeds);
    assert_string_equal(c->redis_seeds[i].host, host);
    assert_int_equal(c->redis_seeds[i].port, port);
}

static void test_cluster_seeds(void **state)
{
    struct config c;
    char list[1100];
    size_t len = 0;

    (void)state;
    expect_ok("REDIS_CLUSTER", "127.0.0.1:7000", &c);
    assert_int_equal(c.redis_nseeds, 1);
    expect_seed(&c, 0, "127.0.0.1", 7000);
    assert_string_equal(c.redis_cluster, "127.0.0.1:7000");

    expect_ok("REDIS_CLUSTER", "redis-1:6379,10.0.0.2:6380,[::1]:7001,[fe80::1%eth0]:7002", &c);
    assert_int_equal(c.redis_nseeds, 4);
    expect_seed(&c, 0, "redis-1", 6379);
    expect_seed(&c, 1, "10.0.0.2", 6380);
    expect_seed(&c, 2, "::1", 7001);
    expect_seed(&c, 3, "fe80::1%eth0", 7002);

    /* Exactly CONFIG_SEEDS_MAX seeds, then one more. */
    for (int i = 0; i < CONFIG_SEEDS_MAX; i++) {
        len +=
            (size_t)snprintf(list + len, sizeof(list) - len, "%sh%d:%d", i ? "," : "", i, 7000 + i);
    }
    expect_ok("REDIS_CLUSTER", list, &c);
    assert_int_equal(c.redis_nseeds, CONFIG_SEEDS_MAX);
    expect_seed(&c, CONFIG_SEEDS_MAX - 1, "h15", 7015);
    snprintf(list + len, sizeof(list) - len, ",h16:7016");
    expect_bad("REDIS_CLUSTER", list);
}

static void test_cluster_seeds_bad(void **state)
{
    static const char *const bad[] = {
        "127.0.0.1",            /* no port */
        "127.0.0.1:",           /* empty port */
        ":7000",                /* empty host */
        "127.0.0.1:0",          /* port out of range */
        "127.0.0.1:65536",      /* port out of range */
        "127.0.0.1:70x",        /* port not a number */
        "127.0.0.1:+7000",      /* sign */
        "127.0.0.1:7000,",      /* trailing comma */
        ",127.0.0.1:7000",      /* leading comma */
        "127.0.0.1:7000,,h:1",  /* empty element */
        "::1:7000",             /* IPv6 without brackets */
        "[::1]7000",            /* no colon after the bracket */
        "[]:7000",              /* empty bracketed host */
        "[a[b]:7000",           /* bracket inside */
        "127.0.0.1:7000 h:1",   /* space */
        "127.0.0.1:7000,\th:1", /* control byte */
        "h\xc3\xa9:7000",       /* not ASCII */
    };
    char longhost[300];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        expect_bad("REDIS_CLUSTER", bad[i]);
    }
    /* A host of 255 bytes is fine, 256 is not. */
    memset(longhost, 'h', 255);
    memcpy(longhost + 255, ":1", 3);
    {
        struct config c;

        expect_ok("REDIS_CLUSTER", longhost, &c);
        assert_int_equal(strlen(c.redis_seeds[0].host), 255);
    }
    memset(longhost, 'h', 256);
    memcpy(longhost + 256, ":1", 3);
    expect_bad("REDIS_CLUSTER", longhost);
    /* The whole value is bounded too: 1023 bytes of seeds. */
    {
        char s[1100];
        size_t n = 0;

        while (n + 20 < sizeof(s) - 1) {
            n += (size_t)snprintf(s + n, sizeof(s) - n, "%shhhhhhhhhhhhhhh:1", n ? "," : "");
        }
        assert_true(strlen(s) > 1023);
        expect_bad("REDIS_CLUSTER", s);
    }
}

/* In cluster mode a brace in the prefix would be a hash tag: every key
 * in one slot. Standalone does not care. */
static void test_cluster_prefix_braces(void **state)
{
    struct config c;
    char err[512];

    (void)state;
    assert_int_equal(setenv("REDIS_PREFIX", "app{x}:", 1), 0);
    assert_int_equal(load(&c, err, sizeof(err)), 0);
    assert_int_equal(setenv("REDIS_CLUSTER", "127.0.0.1:7000", 1), 0);
    assert_int_equal(load(&c, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "REDIS_PREFIX"));
    assert_int_equal(setenv("REDIS_PREFIX", "app:", 1), 0);
    assert_int_equal(load(&c, err, sizeof(err)), 0);
    assert_int_equal(c.redis_nseeds, 1);
}

/* Cluster mode writes larger batch parts: FLUSH_INTERVAL_MS defaults to 50
 * there, 10 standalone, and a value set is always taken. */
static void test_cluster_flush_default(void **state)
{
    struct config c;
    char err[512];

    (void)state;
    assert_int_equal(load(&c, err, sizeof(err)), 0);
    assert_int_equal(c.flush_interval_ms, 10);
    assert_int_equal(setenv("REDIS_CLUSTER", "127.0.0.1:7000", 1), 0);
    assert_int_equal(load(&c, err, sizeof(err)), 0);
    assert_int_equal(c.flush_interval_ms, 50);
    assert_true(c.flush_interval_ms + c.stats_cache_ms <= 90); /* docs/API.md 1 */
    assert_int_equal(setenv("FLUSH_INTERVAL_MS", "10", 1), 0);
    assert_int_equal(load(&c, err, sizeof(err)), 0);
    assert_int_equal(c.flush_interval_ms, 10);
}

#define T(f) cmocka_unit_test_setup_teardown(f, clean_env, clean_env)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_names_match),
        T(test_defaults),
        T(test_numeric_bounds),
        T(test_numeric_leading_whitespace),
        T(test_socket_mode),
        T(test_bool_and_level),
        T(test_strings),
        T(test_secret_not_in_error),
        T(test_print_masks_secrets),
        T(test_listen_forms),
        T(test_listen_bad),
        T(test_target_url),
        T(test_target_socket),
        T(test_default_limit_over_max),
        T(test_runs_kept_under_active),
        T(test_cache_plus_flush_bounded),
        T(test_error_message),
        T(test_error_one_line),
        T(test_cluster_seeds),
        T(test_cluster_seeds_bad),
        T(test_cluster_prefix_braces),
        T(test_cluster_flush_default),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
