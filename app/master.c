/* master.c -- the supervising process: listen socket, children, signals
 *
 * The master owns nothing a request touches. It opens the listen socket,
 * forks the children and then sleeps in ppoll() with its signals blocked
 * everywhere else, so a handler only ever sets a flag the loop reads:
 *
 *   - SIGCHLD: reap every exited child (waitpid WNOHANG), log how it ended,
 *     and schedule a respawn. A child that ran less than RESPAWN_QUICK_MS
 *     is respawned after a backoff that doubles up to RESPAWN_MAX_MS, so a
 *     crash loop cannot spin; one that exits with CONFIG_EXIT_FATAL is never
 *     respawned (and if every worker did so, the master gives up). A fork
 *     that fails, at start-up or later, is retried after the same backoff;
 *   - SIGTERM, SIGINT: remove the unix socket so nginx stops connecting,
 *     send SIGTERM to every child (they finish requests and flush their
 *     hits), wait up to SHUTDOWN_TIMEOUT_MS, SIGKILL the rest, exit 0.
 *
 * Children ask the kernel for SIGTERM when the master dies, so a master
 * killed with SIGKILL leaves no workers serving on their own.
 */

#include "master.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "cluster.h"
#include "counters.h"
#include "listener.h"
#include "log.h"
#include "metrics.h"
#include "runner.h"
#include "sig.h"
#include "statcache.h"
#include "worker.h"

/* The /stats/ cache: pages of up to 1 MiB (limit 10000 with paths of
 * ~60 bytes); the mapping is reserved, and pages are committed as used. */
#define STATCACHE_SLOTS      8
#define STATCACHE_SLOT_BYTES ((size_t)1 << 20)

#define RESPAWN_QUICK_MS 2000
#define RESPAWN_MIN_MS   100
#define RESPAWN_MAX_MS   5000

/* While stopping, the master looks at its children at least this often. */
#define SHUTDOWN_POLL_MS 100

static volatile sig_atomic_t child_flag, stop_flag;

static void on_signal(int sig)
{
    if (sig == SIGCHLD) {
        child_flag = 1;
    } else {
        stop_flag = 1;
    }
}

enum role { ROLE_WORKER, ROLE_RUNNER };

struct child {
    enum role role;
    int index;
    pid_t pid;          /* 0 when not running */
    int64_t started_ms; /* when the current process started */
    int backoff_ms;
    int64_t respawn_at; /* 0 = not scheduled */
    int fatal;          /* exited with CONFIG_EXIT_FATAL: never respawned */
};

struct master {
    const struct config *cfg;
    int listen_fd;
    int *load;            /* shared with the workers: connections per worker, see worker.h */
    struct statcache *sc; /* shared with the workers: /stats/ answers */
    struct metrics *mx;   /* shared with the workers: /metrics figures; NULL: none */
    struct child *children;
    int nchildren;
    sigset_t waitmask;
};

static const char *role_name(enum role r)
{
    return r == ROLE_WORKER ? "worker" : "runner";
}

/* In the child: reset what the master set up, run, exit. */
static void child_main(struct master *m, struct child *c, pid_t master_pid)
{
    static const int reset[] = {SIGCHLD, SIGHUP, 0};
    int status;

    if (sig_reset(reset) != 0) {
        int e = errno;

        log_warn("signal reset: %s", strerror(e));
    }

    /* Die with the master, even one killed with SIGKILL: the kernel sends
     * SIGTERM, and the child stops gracefully. If the master is already
     * gone (it died between fork and here), stop at once. */
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != master_pid) {
        free(m->children);
        exit(0);
    }

    if (c->role == ROLE_WORKER) {
        log_init("worker", m->cfg->log_level);
        status = worker_run(m->cfg, m->listen_fd, c->index, m->load, m->sc, m->mx);
    } else {
        /* The runner is a client: it must not hold the listen socket. */
        close(m->listen_fd);
        log_init("runner", m->cfg->log_level);
        status = runner_run(m->cfg);
    }
    free(m->children);
    exit(status);
}

/* Schedule c's next start: at once after a long life, else after a
 * backoff that doubles up to RESPAWN_MAX_MS while it keeps failing fast. */
static void schedule_respawn(struct child *c, int64_t now, int quick)
{
    if (quick) {
        c->backoff_ms = c->backoff_ms == 0 ? RESPAWN_MIN_MS : c->backoff_ms * 2;
        if (c->backoff_ms > RESPAWN_MAX_MS) {
            c->backoff_ms = RESPAWN_MAX_MS;
        }
    } else {
        c->backoff_ms = 0;
    }
    c->respawn_at = now + c->backoff_ms;
}

/* Start c. A failed fork schedules a retry like a quick death, so the
 * pool is never left short. Returns 0, or -1 if the fork failed. */
static int spawn(struct master *m, struct child *c)
{
    pid_t master_pid = getpid();
    pid_t pid = fork();

    if (pid < 0) {
        int err = errno;

        schedule_respawn(c, clock_mono_ms(), 1);
        log_error("fork %s %d: %s; retrying in %d ms", role_name(c->role), c->index, strerror(err),
                  c->backoff_ms);
        return -1;
    }
    if (pid == 0) {
        child_main(m, c, master_pid);
    }
    c->pid = pid;
    c->started_ms = clock_mono_ms();
    c->respawn_at = 0;
    if (c->role == ROLE_WORKER) {
        metrics_worker_up(m->mx, c->index, 1);
    }
    log_info("%s %d started as pid %ld", role_name(c->role), c->index, (long)pid);
    return 0;
}

static struct child *find(struct master *m, pid_t pid)
{
    for (int i = 0; i < m->nchildren; i++) {
        if (m->children[i].pid == pid) {
            return &m->children[i];
        }
    }
    return NULL;
}

static void describe_exit(int status, char *buf, size_t len)
{
    if (WIFEXITED(status)) {
        snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
    } else if (WIFSIGNALED(status)) {
        snprintf(buf, len, "killed by signal %d (%s)%s", WTERMSIG(status),
                 strsignal(WTERMSIG(status)), WCOREDUMP(status) ? ", core dumped" : "");
    } else {
        snprintf(buf, len, "ended with wait status %d", status);
    }
}

/* Reap every exited child; schedule respawns unless stopping. */
static void reap(struct master *m, int stopping)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        struct child *c = find(m, pid);
        int64_t now = clock_mono_ms();
        char how[96];

        describe_exit(status, how, sizeof(how));
        if (c == NULL) {
            log_warn("unknown child %ld %s", (long)pid, how);
            continue;
        }
        c->pid = 0;
        if (c->role == ROLE_WORKER) {
            /* Its connections died with it: no longer a candidate load. */
            __atomic_store_n(&m->load[c->index], -1, __ATOMIC_RELAXED);
            metrics_worker_up(m->mx, c->index, 0);
        }
        if (stopping) {
            log_info("%s %d (pid %ld) %s", role_name(c->role), c->index, (long)pid, how);
            continue;
        }
        if (WIFEXITED(status) && WEXITSTATUS(status) == CONFIG_EXIT_FATAL) {
            c->fatal = 1;
            log_error("%s %d (pid %ld) %s (fatal): not respawning", role_name(c->role), c->index,
                      (long)pid, how);
            continue;
        }
        schedule_respawn(c, now, now - c->started_ms < RESPAWN_QUICK_MS);
        if (c->role == ROLE_WORKER) {
            metrics_worker_restart(m->mx);
        }
        log_warn("%s %d (pid %ld) %s; respawning in %d ms", role_name(c->role), c->index, (long)pid,
                 how, c->backoff_ms);
    }
}

/* Respawn what is due; returns ms until the next scheduled respawn, or -1. */
static int respawn_due(struct master *m)
{
    int64_t now = clock_mono_ms(), next = -1;

    for (int i = 0; i < m->nchildren; i++) {
        struct child *c = &m->children[i];

        if (c->pid != 0 || c->fatal || c->respawn_at == 0) {
            continue;
        }
        if (c->respawn_at <= now && spawn(m, c) == 0) {
            continue; /* started; a failed fork scheduled a retry */
        }
        if (next < 0 || c->respawn_at < next) {
            next = c->respawn_at;
        }
    }
    return next < 0 ? -1 : (int)(next - now);
}

static int all_workers_fatal(const struct master *m)
{
    for (int i = 0; i < m->nchildren; i++) {
        if (m->children[i].role == ROLE_WORKER && !m->children[i].fatal) {
            return 0;
        }
    }
    return 1;
}

static int running(const struct master *m)
{
    int n = 0;

    for (int i = 0; i < m->nchildren; i++) {
        n += m->children[i].pid != 0;
    }
    return n;
}

static void signal_all(struct master *m, int sig)
{
    for (int i = 0; i < m->nchildren; i++) {
        if (m->children[i].pid != 0) {
            kill(m->children[i].pid, sig);
        }
    }
}

static void wait_signal(struct master *m, int timeout_ms)
{
    struct timespec ts, *tsp = NULL;

    if (timeout_ms >= 0) {
        ts.tv_sec = timeout_ms / 1000;
        ts.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
        tsp = &ts;
    }
    /* Signals are delivered only here, atomically with the wait. */
    ppoll(NULL, 0, tsp, &m->waitmask);
}

static void shutdown_children(struct master *m)
{
    int64_t deadline = clock_mono_ms() + m->cfg->shutdown_timeout_ms;

    log_info("stopping: %d children, grace %d ms", running(m), m->cfg->shutdown_timeout_ms);
    listener_unlink(m->cfg);
    close(m->listen_fd);
    m->listen_fd = -1;
    signal_all(m, SIGTERM);
    while (running(m) > 0) {
        int64_t left = deadline - clock_mono_ms();

        if (left <= 0) {
            log_warn("%d children still running after %d ms: killing them", running(m),
                     m->cfg->shutdown_timeout_ms);
            signal_all(m, SIGKILL);
            while (running(m) > 0) {
                int status;
                pid_t pid = waitpid(-1, &status, 0);
                struct child *c;

                if (pid < 0) {
                    break;
                }
                c = find(m, pid);
                if (c != NULL) {
                    c->pid = 0;
                }
            }
            break;
        }
        child_flag = 0;
        reap(m, 1);
        if (running(m) > 0) {
            wait_signal(m, (int)(left < SHUTDOWN_POLL_MS ? left : SHUTDOWN_POLL_MS));
        }
    }
}

/* Log how the store is laid out and check the recorded shard layout.
 * Returns -1 when the process must not start (a layout mismatch). */
static int check_store(const struct config *cfg)
{
    struct cluster *cl = cluster_new(cfg);
    struct counters *ctr = cl != NULL ? counters_new(cfg, cl) : NULL;
    int rc = -1;

    if (ctr == NULL) {
        log_error("cannot initialise the Redis client (out of memory)");
    } else {
        rc = counters_startup(ctr) < 0 ? -1 : 0;
    }
    counters_free(ctr);
    cluster_free(cl);
    return rc;
}

int master_run(const struct config *cfg)
{
    static const int handled[] = {SIGCHLD, SIGTERM, SIGINT, 0};
    static const int ignored[] = {SIGHUP, SIGPIPE, 0};
    struct master m;
    char err[256];
    int status = 1, nworkers = cfg->workers;

    memset(&m, 0, sizeof(m));
    m.cfg = cfg;
    if (check_store(cfg) != 0) {
        return CONFIG_EXIT_FATAL;
    }
    m.listen_fd = listener_open(cfg, err, sizeof(err));
    if (m.listen_fd < 0) {
        log_error("cannot listen: %s", err);
        status = CONFIG_EXIT_FATAL;
        goto out;
    }
    /* Shared before the fork, so every worker sees every other's load. */
    m.load = mmap(NULL, (size_t)nworkers * sizeof(*m.load), PROT_READ | PROT_WRITE,
                  MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (m.load == MAP_FAILED) {
        int e = errno;

        m.load = NULL;
        log_error("mmap: %s", strerror(e));
        goto out;
    }
    for (int i = 0; i < nworkers; i++) {
        m.load[i] = -1;
    }
    if (cfg->stats_cache_ms > 0) {
        m.sc = statcache_new(cfg->stats_cache_ms, STATCACHE_SLOTS, STATCACHE_SLOT_BYTES);
        if (m.sc == NULL) {
            int e = errno;

            /* Answers stay correct without it, only every one reads Redis. */
            log_warn("/stats/ cache unavailable (%s): every /stats/ request reads Redis",
                     strerror(e));
        }
    }
    /* Like the cache: without it /metrics only lacks the process series. */
    m.mx = metrics_new(nworkers, clock_wall_ms() / 1000);
    if (m.mx == NULL) {
        int e = errno;

        log_warn("/metrics figures unavailable (%s): only Redis series are served", strerror(e));
    }
    m.nchildren = nworkers + (cfg->test_enabled ? 1 : 0);
    m.children = calloc((size_t)m.nchildren, sizeof(*m.children));
    if (m.children == NULL) {
        log_error("out of memory");
        goto out;
    }
    for (int i = 0; i < m.nchildren; i++) {
        m.children[i].role = i < nworkers ? ROLE_WORKER : ROLE_RUNNER;
        m.children[i].index = i < nworkers ? i : 0;
    }
    if (sig_setup(on_signal, handled, ignored, &m.waitmask) != 0) {
        int e = errno;

        log_error("signal setup: %s", strerror(e));
        goto out;
    }
    status = 0;

    log_info("reqstats starting: listening on %s%s, %d workers, test runs %s",
             cfg->fcgi_unix ? "unix:" : "", cfg->fcgi_listen, nworkers,
             cfg->test_enabled ? "enabled" : "disabled");
    /* A child whose fork fails is scheduled for a retry by spawn(). */
    for (int i = 0; i < m.nchildren && !stop_flag; i++) {
        spawn(&m, &m.children[i]);
    }

    while (!stop_flag) {
        int timeout;

        if (child_flag) {
            child_flag = 0;
            reap(&m, 0);
            if (all_workers_fatal(&m)) {
                log_error("every worker failed fatally: giving up");
                status = CONFIG_EXIT_FATAL;
                break;
            }
        }
        timeout = respawn_due(&m);
        if (stop_flag || child_flag) {
            continue;
        }
        wait_signal(&m, timeout);
    }

    shutdown_children(&m);
    log_info("stopped");

out:
    /* Still open only if start-up failed before any child ran: the socket
     * is ours, so its path goes too. */
    if (m.listen_fd >= 0) {
        close(m.listen_fd);
        listener_unlink(cfg);
    }
    free(m.children);
    statcache_free(m.sc);
    metrics_free(m.mx);
    if (m.load != NULL) {
        munmap(m.load, (size_t)nworkers * sizeof(*m.load));
    }
    return status;
}
