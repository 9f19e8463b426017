/* config.h -- the service configuration, read once from the environment */

#ifndef REQSTATS_CONFIG_H
#define REQSTATS_CONFIG_H

#include <stdio.h>

/* Exit status of a process that must not be restarted: the configuration is
 * invalid or the process cannot initialise for a reason a restart will not
 * fix. The master never respawns a child that exits with it (EX_CONFIG). */
#define CONFIG_EXIT_FATAL 78

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Seed nodes REDIS_CLUSTER may name at most. */
#define CONFIG_SEEDS_MAX 16

struct config_seed {
    char host[256];
    int port;
};

/* The effective configuration. Filled once by config_load() and then only
 * read: every module receives it as `const struct config *`. Strings point
 * into the struct's own storage. */
struct config {
    /* FastCGI listen socket: unix path (fcgi_unix != 0) or host:port. */
    char fcgi_listen[256];
    int fcgi_unix;
    char fcgi_host[128];
    int fcgi_port;
    int fcgi_backlog;
    int fcgi_socket_mode;

    int workers;
    int worker_connections;

    char redis_host[256];
    int redis_port;
    char redis_password[256];
    char redis_prefix[65];
    char redis_cluster[1024]; /* empty: standalone */
    int redis_nseeds;         /* REDIS_CLUSTER parsed; 0: standalone */
    struct config_seed redis_seeds[CONFIG_SEEDS_MAX];
    int redis_shards;
    int redis_connect_timeout_ms;
    int redis_timeout_ms;
    int redis_backoff_max_ms;

    int flush_interval_ms;
    int flush_batch_paths;
    long long hit_buffer_bytes;

    int stats_default_limit;
    int stats_max_limit;
    int stats_cache_ms;    /* 0: no shared /stats/ cache */
    int history_enabled;   /* write and serve /stats/history/ */
    char admin_token[256]; /* empty: DELETE /stats/ is disabled */

    int test_enabled;
    char test_token[256];
    char test_target_url[512];
    char test_target_socket[108]; /* empty: connect to the URL's host */
    long long test_max_requests;
    int test_max_active;
    int test_concurrency;
    int test_request_timeout_ms;
    int test_run_retention_s;
    int test_runs_kept;

    int shutdown_timeout_ms;
    enum log_level log_level;
};

/* Fill cfg from the defaults and the process environment and validate every
 * value. Returns 0, or -1 with a one-line description of the first bad
 * variable in err (the caller logs it and exits with CONFIG_EXIT_FATAL). */
int config_load(struct config *cfg, char *err, size_t errlen);

/* Print the effective configuration, one NAME=value line per variable in
 * table order, secrets masked. */
void config_print(const struct config *cfg, FILE *out);

/* Print the table of variables (name, default, bounds, meaning). */
void config_usage(FILE *out);

#endif
