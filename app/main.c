/* main.c -- reqstats: count every HTTP request by path in Redis
 *
 * The entry point only reads the command line and the configuration, then
 * hands over to the master (serve), the health probe, the config check or
 * the import of a standalone data set (import.c).
 * See README.md, "Source layout", for the path a request takes.
 */

#include <stdio.h>
#include <string.h>

#include "config.h"
#include "health.h"
#include "import.h"
#include "log.h"
#include "master.h"
#include "version.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: reqstats [--check-config | --health | --import | --help | --version]\n"
                 "\n"
                 "  (no option)     run the master, its FastCGI workers and the test runner\n"
                 "  --check-config  validate the environment and print the effective config\n"
                 "  --health        exit 0 if the FastCGI socket and Redis answer\n"
                 "  --import        copy the standalone Redis at REDIS_HOST:REDIS_PORT into the\n"
                 "                  empty Redis Cluster dataset at REDIS_CLUSTER (app stopped)\n"
                 "\n");
    config_usage(out);
}

int main(int argc, char **argv)
{
    struct config cfg;
    char err[512];
    const char *mode = argc > 1 ? argv[1] : "";

    if (argc > 2 || (argc == 2 && strcmp(mode, "--check-config") != 0 &&
                     strcmp(mode, "--health") != 0 && strcmp(mode, "--import") != 0 &&
                     strcmp(mode, "--help") != 0 && strcmp(mode, "--version") != 0)) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(mode, "--help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(mode, "--version")) {
        printf("reqstats %s\n", REQSTATS_VERSION);
        return 0;
    }
    if (config_load(&cfg, err, sizeof(err)) != 0) {
        log_init("master", LOG_INFO);
        log_error("configuration: %s", err);
        return CONFIG_EXIT_FATAL;
    }
    if (!strcmp(mode, "--check-config")) {
        config_print(&cfg, stdout);
        printf("configuration ok\n");
        return 0;
    }
    if (!strcmp(mode, "--health")) {
        log_init("health", LOG_ERROR);
        return health_check(&cfg);
    }
    if (!strcmp(mode, "--import")) {
        log_init("import", cfg.log_level);
        return import_run(&cfg);
    }
    log_init("master", cfg.log_level);
    return master_run(&cfg);
}
