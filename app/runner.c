/* runner.c -- the process that executes test runs with libcurl
 *
 * POST /test/{n}/ only records a queued run in Redis; this process, one
 * per service, supervised by the master like the workers, takes queued
 * runs oldest first and executes them one at a time. Why a separate
 * process fed from Redis:
 *
 *   - it is outside the worker pool, so its requests are served by workers
 *     that are never busy waiting for them (no self-request deadlock);
 *   - the queue and every record live in Redis, so queued runs survive a
 *     restart of the app, and a run cut short is visible as such;
 *   - resource use is fixed: one process, TEST_CONCURRENCY transfers,
 *     TEST_MAX_ACTIVE runs queued or running, TEST_MAX_REQUESTS per run.
 *
 * A run is driven by libcurl's multi interface in its event-driven form
 * (curl_multi_socket_action on an epoll set): a window of TEST_CONCURRENCY
 * transfers over reused keep-alive connections, each with a timeout; every
 * finished transfer frees a place for the next at once. Progress
 * (counters and a heartbeat) is written every PROGRESS_MS. A run whose
 * runner died without finishing it (SIGKILL, a crash, a power cut) stops
 * beating; every runner sweeps the active runs each SWEEP_MS and marks such
 * runs failed, so none stays "running" forever. A graceful stop marks the
 * current run failed at once. A run cancelled through the API (its record
 * says "cancelled") is noticed within CANCEL_MS: its transfers are dropped
 * at once, no new one starts, and its final counters are written.
 *
 * The target is TEST_TARGET_URL from the configuration, never anything
 * from a request; only http and https are allowed, redirects are not
 * followed.
 */

#include "runner.h"

#include <curl/curl.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "run.h"
#include "runs.h"
#include "sig.h"
#include "urlgen.h"

#define PROGRESS_MS  200
#define CANCEL_MS    100 /* how often a running run's status is checked */
#define SWEEP_MS     1000
#define STALE_MS     5000 /* a running run silent this long is dead */
#define IDLE_WAIT_MS 200  /* queue polling interval when idle */
#define FINISH_TRIES 25   /* x IDLE_WAIT_MS: how long to retry a final write */
/* TEST_TARGET_URL followed by a generated path. */
#define URL_MAX     (sizeof(((struct config *)0)->test_target_url) + URLGEN_URL_MAX)
#define MAX_EVENTS  64  /* epoll events taken per wait */
#define WAIT_MAX_MS 100 /* longest wait during a run: stop_flag is checked after each */

/* A transfer's connect timeout: TEST_REQUEST_TIMEOUT_MS, at most this. */
#define CONNECT_TIMEOUT_MAX_MS 2000L
#define TESTRUN_USER_AGENT     "reqstats-testrun/1"

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct transfer {
    CURL *easy;
    char url[URL_MAX];
    int busy;
};

struct runner {
    const struct config *cfg;
    struct cluster *cl;
    struct runs *runs;
    char owner[RUN_ID_LEN + 1];
    CURLM *multi;
    struct transfer *xfers;
    int nxfers;
    int epfd;      /* the transfers' sockets, as libcurl asks */
    uint32_t *fds; /* per fd: registered events and state, see on_socket */
    size_t nfds;
    int64_t timer_at; /* libcurl's timer: monotonic ms it fires at, -1 none */
    sigset_t waitmask;
};

static size_t discard(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    (void)ptr;
    (void)userdata;
    return size * nmemb;
}

static void sleep_ms(const struct runner *rn, int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    ppoll(NULL, 0, &ts, &rn->waitmask);
}

/* libcurl tells which sockets to watch for what (CURLMOPT_SOCKETFUNCTION);
 * they go in the runner's epoll set, so one wait costs O(ready sockets)
 * instead of a poll() over every connection.
 *
 * libcurl drops a socket (CURL_POLL_REMOVE) each time its connection goes
 * back to the pool and asks for it again when the next transfer reuses it:
 * two epoll_ctl calls per request for nothing. So removal is lazy: the
 * socket stays registered, marked unwatched in rn->fds[], and leaves the
 * epoll set only if it reports an event while unwatched (the server closed
 * an idle connection). fds[fd] holds the registered events | FD_IN_SET,
 * plus FD_WATCHED while libcurl wants them. */
#define FD_EVENTS  0xffffu /* the EPOLLIN/EPOLLOUT bits registered */
#define FD_IN_SET  0x10000u
#define FD_WATCHED 0x20000u
#define FD_GROW    64 /* table entries added beyond a new highest fd */

static uint32_t *fd_slot(struct runner *rn, int fd)
{
    if (fd < 0) {
        return NULL;
    }
    if ((size_t)fd >= rn->nfds) {
        size_t n = (size_t)fd + FD_GROW;
        uint32_t *grown = realloc(rn->fds, n * sizeof(*grown));

        if (grown == NULL) {
            return NULL;
        }
        memset(grown + rn->nfds, 0, (n - rn->nfds) * sizeof(*grown));
        rn->fds = grown;
        rn->nfds = n;
    }
    return &rn->fds[fd];
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    struct runner *rn = userp;
    uint32_t *slot = fd_slot(rn, fd);
    uint32_t want = (what & CURL_POLL_IN ? EPOLLIN : 0) | (what & CURL_POLL_OUT ? EPOLLOUT : 0);
    struct epoll_event ev;

    (void)easy;
    (void)socketp;
    if (slot == NULL) {
        log_error("test-run socket %d: out of memory", (int)fd);
        return -1;
    }
    if (what == CURL_POLL_REMOVE) {
        *slot &= ~FD_WATCHED;
        return 0;
    }
    if ((*slot & FD_IN_SET) && (*slot & FD_EVENTS) == want) {
        *slot |= FD_WATCHED;
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = want;
    ev.data.fd = fd;
    if (epoll_ctl(rn->epfd, (*slot & FD_IN_SET) ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_error("epoll_ctl test-run socket: %s", strerror(errno));
        return -1;
    }
    *slot = want | FD_IN_SET | FD_WATCHED;
    return 0;
}

/* libcurl opens its sockets through this (CURLOPT_OPENSOCKETFUNCTION) so
 * the table entry of a reused fd number starts clean: a socket libcurl
 * closed left the epoll set with it, whatever the table said. */
static curl_socket_t on_open(void *clientp, curlsocktype purpose, struct curl_sockaddr *addr)
{
    struct runner *rn = clientp;
    curl_socket_t fd = socket(addr->family, addr->socktype | SOCK_CLOEXEC, addr->protocol);
    uint32_t *slot = fd_slot(rn, fd);

    (void)purpose;
    if (slot != NULL) {
        *slot = 0;
    }
    return fd;
}

/* An event on fd: hand it to libcurl, or take a socket it no longer
 * watches out of the epoll set. */
static CURLMcode socket_event(struct runner *rn, const struct epoll_event *ev, int *running)
{
    uint32_t *slot = fd_slot(rn, ev->data.fd);
    int flags;

    if (slot != NULL && !(*slot & FD_WATCHED)) {
        epoll_ctl(rn->epfd, EPOLL_CTL_DEL, ev->data.fd, NULL);
        *slot = 0;
        return CURLM_OK;
    }
    flags = (ev->events & EPOLLIN ? CURL_CSELECT_IN : 0) |
            (ev->events & EPOLLOUT ? CURL_CSELECT_OUT : 0) |
            (ev->events & (EPOLLERR | EPOLLHUP) ? CURL_CSELECT_ERR : 0);
    return curl_multi_socket_action(rn->multi, ev->data.fd, flags, running);
}

/* libcurl's single timer (CURLMOPT_TIMERFUNCTION). */
static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
    struct runner *rn = userp;

    (void)multi;
    rn->timer_at = timeout_ms < 0 ? -1 : clock_mono_ms() + timeout_ms;
    return 0;
}

/* Milliseconds until libcurl's timer fires, capped at cap_ms. */
static int timer_wait(const struct runner *rn, int cap_ms)
{
    int64_t left;

    if (rn->timer_at < 0) {
        return cap_ms;
    }
    left = rn->timer_at - clock_mono_ms();
    return left <= 0 ? 0 : (left < cap_ms ? (int)left : cap_ms);
}

/* Whether a curl_easy_setopt/curl_easy_getinfo call (named in what)
 * succeeded; if not, err says which call and option failed, and why.
 * Returns 0 or -1. */
static int easy_check(CURLcode cc, const char *what, char *err, size_t errlen)
{
    if (cc == CURLE_OK) {
        return 0;
    }
    snprintf(err, errlen, "%s: %s", what, curl_easy_strerror(cc));
    return -1;
}

static int multi_check(CURLMcode mc, const char *what, char *err, size_t errlen)
{
    if (mc == CURLM_OK) {
        return 0;
    }
    snprintf(err, errlen, "%s: %s", what, curl_multi_strerror(mc));
    return -1;
}

/* One checked libcurl call each, naming its option: 0 or -1 (err set). */
#define EASY_SETOPT(e, opt, val, err, len)                                                         \
    easy_check(curl_easy_setopt((e), (opt), (val)), "curl_easy_setopt " #opt, (err), (len))
#define EASY_GETINFO(e, info, out, err, len)                                                       \
    easy_check(curl_easy_getinfo((e), (info), (out)), "curl_easy_getinfo " #info, (err), (len))
#define MULTI_SETOPT(m, opt, val, err, len)                                                        \
    multi_check(curl_multi_setopt((m), (opt), (val)), "curl_multi_setopt " #opt, (err), (len))

/* The multi handle, the epoll set and TEST_CONCURRENCY easy handles.
 * Returns 0, or -1 with err set. */
static int setup_transfers(struct runner *rn, char *err, size_t errlen)
{
    const struct config *cfg = rn->cfg;
    CURLM *mh;
    long timeout_ms = cfg->test_request_timeout_ms;
    long connect_ms = cfg->test_request_timeout_ms < CONNECT_TIMEOUT_MAX_MS
                          ? cfg->test_request_timeout_ms
                          : CONNECT_TIMEOUT_MAX_MS;

    rn->multi = mh = curl_multi_init();
    rn->nxfers = cfg->test_concurrency;
    rn->xfers = calloc((size_t)rn->nxfers, sizeof(*rn->xfers));
    if (rn->multi == NULL || rn->xfers == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rn->epfd = epoll_create1(EPOLL_CLOEXEC);
    rn->timer_at = -1;
    if (rn->epfd < 0) {
        int e = errno;

        snprintf(err, errlen, "epoll_create1: %s", strerror(e));
        return -1;
    }
    if (MULTI_SETOPT(mh, CURLMOPT_MAX_HOST_CONNECTIONS, (long)rn->nxfers, err, errlen) != 0 ||
        MULTI_SETOPT(mh, CURLMOPT_MAXCONNECTS, (long)rn->nxfers, err, errlen) != 0 ||
        MULTI_SETOPT(mh, CURLMOPT_SOCKETFUNCTION, on_socket, err, errlen) != 0 ||
        MULTI_SETOPT(mh, CURLMOPT_SOCKETDATA, rn, err, errlen) != 0 ||
        MULTI_SETOPT(mh, CURLMOPT_TIMERFUNCTION, on_timer, err, errlen) != 0 ||
        MULTI_SETOPT(mh, CURLMOPT_TIMERDATA, rn, err, errlen) != 0) {
        return -1;
    }
    for (int i = 0; i < rn->nxfers; i++) {
        CURL *e = curl_easy_init();

        if (e == NULL) {
            snprintf(err, errlen, "curl_easy_init failed");
            return -1;
        }
        rn->xfers[i].easy = e;
        if (EASY_SETOPT(e, CURLOPT_PRIVATE, &rn->xfers[i], err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_OPENSOCKETFUNCTION, on_open, err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_OPENSOCKETDATA, rn, err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_WRITEFUNCTION, discard, err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_NOSIGNAL, 1L, err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_TIMEOUT_MS, timeout_ms, err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms, err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_PROTOCOLS_STR, "http,https", err, errlen) != 0 ||
            /* Straight to TEST_TARGET_URL: an http_proxy in the environment
             * must not divert test traffic (and is not looked up per request). */
            EASY_SETOPT(e, CURLOPT_PROXY, "", err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_NOPROXY, "*", err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_FOLLOWLOCATION, 0L, err, errlen) != 0 ||
            EASY_SETOPT(e, CURLOPT_USERAGENT, TESTRUN_USER_AGENT, err, errlen) != 0) {
            return -1;
        }
        /* Through nginx's unix listener when configured: the same server
         * and locations, without the TCP stack on either side (README,
         * Performance). The URL still gives the scheme and Host. */
        if (cfg->test_target_socket[0] != '\0' &&
            EASY_SETOPT(e, CURLOPT_UNIX_SOCKET_PATH, cfg->test_target_socket, err, errlen) != 0) {
            return -1;
        }
    }
    return 0;
}

static void free_transfers(struct runner *rn)
{
    for (int i = 0; rn->xfers != NULL && i < rn->nxfers; i++) {
        if (rn->xfers[i].busy) {
            curl_multi_remove_handle(rn->multi, rn->xfers[i].easy);
        }
        curl_easy_cleanup(rn->xfers[i].easy);
    }
    free(rn->xfers);
    rn->xfers = NULL;
    if (rn->multi != NULL) {
        curl_multi_cleanup(rn->multi);
        rn->multi = NULL;
    }
    if (rn->epfd >= 0) {
        close(rn->epfd);
        rn->epfd = -1;
    }
    free(rn->fds);
    rn->fds = NULL;
    rn->nfds = 0;
}

/* Start one transfer on a free handle. Returns 0 or -1 (run error). */
static int start_transfer(struct runner *rn, struct urlgen *g, struct run *r, char *err,
                          size_t errlen)
{
    struct transfer *t = NULL;
    char path[URLGEN_URL_MAX];
    CURLMcode mc;

    for (int i = 0; i < rn->nxfers; i++) {
        if (!rn->xfers[i].busy) {
            t = &rn->xfers[i];
            break;
        }
    }
    if (t == NULL) {
        return 0;
    }
    if (urlgen_next(g, path, sizeof(path)) < 0) {
        snprintf(err, errlen, "getrandom: %s", strerror(errno));
        return -1;
    }
    snprintf(t->url, sizeof(t->url), "%s%s", rn->cfg->test_target_url, path);
    if (EASY_SETOPT(t->easy, CURLOPT_URL, t->url, err, errlen) != 0) {
        return -1;
    }
    mc = curl_multi_add_handle(rn->multi, t->easy);
    if (mc != CURLM_OK) {
        snprintf(err, errlen, "curl_multi_add_handle: %s", curl_multi_strerror(mc));
        return -1;
    }
    t->busy = 1;
    r->sent++;
    return 0;
}

/* Collect finished transfers into the run's counters. */
static void collect(struct runner *rn, struct run *r)
{
    CURLMsg *msg;
    int left;

    while ((msg = curl_multi_info_read(rn->multi, &left)) != NULL) {
        struct transfer *t = NULL;
        long code = 0;

        if (msg->msg != CURLMSG_DONE) {
            continue;
        }
        if (EASY_GETINFO(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t, r->error,
                         sizeof(r->error)) != 0 ||
            EASY_GETINFO(msg->easy_handle, CURLINFO_RESPONSE_CODE, &code, r->error,
                         sizeof(r->error)) != 0) {
            r->failed++; /* r->error says which call failed */
        } else if (msg->data.result == CURLE_OK && code == 200) {
            r->succeeded++;
        } else {
            r->failed++;
            if (msg->data.result != CURLE_OK) {
                snprintf(r->error, sizeof(r->error), "last failure: %s",
                         curl_easy_strerror(msg->data.result));
            } else {
                snprintf(r->error, sizeof(r->error), "last failure: HTTP status %ld", code);
            }
        }
        curl_multi_remove_handle(rn->multi, msg->easy_handle);
        if (t != NULL) {
            t->busy = 0;
        }
    }
}

static void write_progress(struct runner *rn, struct run *r)
{
    r->heartbeat_ms = clock_wall_ms();
    if (runs_progress(rn->runs, r) != 0) {
        log_warn("run %s: progress not recorded (Redis unavailable)", r->id);
    }
}

static void finish(struct runner *rn, struct run *r)
{
    r->finished_ms = clock_wall_ms();
    for (int i = 0; i < FINISH_TRIES; i++) {
        if (runs_finish(rn->runs, r, rn->owner, rn->cfg->test_run_retention_s) == 0) {
            log_info("run %s %s: %lld sent, %lld succeeded, %lld failed in %.3f s%s%s", r->id,
                     run_status_name(r->status), r->sent, r->succeeded, r->failed,
                     (double)(r->finished_ms - r->started_ms) / 1000.0, r->error[0] ? "; " : "",
                     r->error);
            return;
        }
        sleep_ms(rn, IDLE_WAIT_MS);
    }
    log_error("run %s: final state not recorded; the sweep will mark it failed", r->id);
}

/* 1 if the run's record says it was cancelled (docs/API.md section 11). */
static int cancelled(struct runner *rn, const struct run *r)
{
    enum run_status status;

    return runs_status(rn->runs, r->id, &status) == 0 && status == RUN_CANCELLED;
}

static void drop_transfers(struct runner *rn)
{
    for (int i = 0; i < rn->nxfers; i++) {
        if (rn->xfers[i].busy) {
            curl_multi_remove_handle(rn->multi, rn->xfers[i].easy);
            rn->xfers[i].busy = 0;
        }
    }
}

static void execute(struct runner *rn, struct run *r)
{
    struct urlgen g;
    int64_t last_progress = 0, last_cancel_check = 0;
    char err[160] = "";
    int running = 0;

    if (urlgen_init(&g) != 0) {
        snprintf(err, sizeof(err), "getrandom: %s", strerror(errno));
        goto fail;
    }
    for (int i = 0; i < URLGEN_POOL; i++) {
        memcpy(r->pool[i], g.pool[i], sizeof(r->pool[i]));
    }
    r->npool = URLGEN_POOL;
    r->sent = r->succeeded = r->failed = 0;
    r->error[0] = '\0';
    log_info("run %s started: %lld requests to %s, %d at a time, pool %s,%s,%s", r->id, r->requests,
             rn->cfg->test_target_url, rn->nxfers, r->pool[0], r->pool[1], r->pool[2]);
    write_progress(rn, r);

    while (r->succeeded + r->failed < r->requests) {
        struct epoll_event evs[MAX_EVENTS];
        CURLMcode mc = CURLM_OK;
        int64_t now = clock_mono_ms();
        int n;

        if (stop_flag) {
            snprintf(err, sizeof(err), "interrupted: the service was stopped after %lld of %lld",
                     r->succeeded + r->failed, r->requests);
            goto fail;
        }
        if (now - last_progress >= PROGRESS_MS) {
            write_progress(rn, r);
            last_progress = now;
        }
        if (now - last_cancel_check >= CANCEL_MS) {
            last_cancel_check = now;
            if (cancelled(rn, r)) {
                goto cancel;
            }
        }
        /* Keep the window full; libcurl starts new transfers on its timer. */
        while (r->sent < r->requests && r->sent - r->succeeded - r->failed < rn->nxfers) {
            if (start_transfer(rn, &g, r, err, sizeof(err)) != 0) {
                goto fail;
            }
        }
        n = epoll_pwait(rn->epfd, evs, MAX_EVENTS, timer_wait(rn, WAIT_MAX_MS), &rn->waitmask);
        if (n < 0 && errno != EINTR) {
            snprintf(err, sizeof(err), "epoll_wait: %s", strerror(errno));
            goto fail;
        }
        for (int i = 0; i < n && mc == CURLM_OK; i++) {
            mc = socket_event(rn, &evs[i], &running);
        }
        if (mc == CURLM_OK && rn->timer_at >= 0 && timer_wait(rn, WAIT_MAX_MS) == 0) {
            rn->timer_at = -1;
            mc = curl_multi_socket_action(rn->multi, CURL_SOCKET_TIMEOUT, 0, &running);
        }
        if (mc != CURLM_OK) {
            snprintf(err, sizeof(err), "libcurl: %s", curl_multi_strerror(mc));
            goto fail;
        }
        collect(rn, r);
    }
    r->status = RUN_DONE;
    finish(rn, r);
    return;

fail:
    for (int i = 0; i < rn->nxfers; i++) {
        if (rn->xfers[i].busy) {
            curl_multi_remove_handle(rn->multi, rn->xfers[i].easy);
            rn->xfers[i].busy = 0;
        }
    }
    r->status = RUN_FAILED;
    snprintf(r->error, sizeof(r->error), "%s", err);
    finish(rn, r);
    return;

cancel:
    /* Transfers in flight are dropped: no new request leaves from now on
     * (one already sent may still be answered and counted by the app). */
    drop_transfers(rn);
    r->status = RUN_CANCELLED;
    finish(rn, r);
}

static void sweep(struct runner *rn)
{
    int n = runs_sweep(rn->runs, clock_wall_ms(), STALE_MS,
                       "interrupted: its runner stopped (crash or restart)",
                       rn->cfg->test_run_retention_s);
    if (n > 0) {
        log_warn("marked %d interrupted run%s failed", n, n == 1 ? "" : "s");
    }
}

int runner_run(const struct config *cfg)
{
    static const int handled[] = {SIGTERM, SIGINT, 0};
    static const int ignored[] = {SIGPIPE, 0};
    struct runner rn;
    char err[256] = "";
    int64_t last_sweep = 0;
    int status = 0;

    memset(&rn, 0, sizeof(rn));
    rn.epfd = -1;
    rn.cfg = cfg;
    /* Stop signals arrive only in the idle wait and the transfers'
     * epoll_pwait, and stop_flag is checked after each. */
    if (sig_setup(on_stop, handled, ignored, &rn.waitmask) != 0) {
        log_error("signal setup: %s", strerror(errno));
        return CONFIG_EXIT_FATAL;
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        log_error("curl_global_init failed");
        return CONFIG_EXIT_FATAL;
    }
    rn.cl = cluster_new(cfg);
    rn.runs = rn.cl != NULL ? runs_new(cfg, rn.cl) : NULL;
    if (rn.runs == NULL) {
        int e = errno;

        snprintf(err, sizeof(err), "store: %s", strerror(e));
    } else if (run_id_new(rn.owner) != 0) {
        int e = errno;

        snprintf(err, sizeof(err), "run owner id: %s", strerror(e));
    }
    if (err[0] != '\0' || setup_transfers(&rn, err, sizeof(err)) != 0) {
        log_error("runner initialisation failed: %s", err);
        status = CONFIG_EXIT_FATAL;
        goto out;
    }
    log_info("runner started: target %s, %d concurrent transfers%s%s", cfg->test_target_url,
             cfg->test_concurrency, cfg->test_target_socket[0] ? ", through unix socket " : "",
             cfg->test_target_socket);

    while (!stop_flag) {
        struct run r;
        int64_t now = clock_mono_ms();
        int rc;

        if (now - last_sweep >= SWEEP_MS) {
            sweep(&rn);
            last_sweep = now;
        }
        rc = runs_claim(rn.runs, rn.owner, clock_wall_ms(), &r);
        if (rc == 0) {
            execute(&rn, &r);
        } else {
            sleep_ms(&rn, IDLE_WAIT_MS);
        }
    }
    log_info("runner stopping");

out:
    free_transfers(&rn);
    runs_free(rn.runs);
    cluster_free(rn.cl);
    curl_global_cleanup();
    return status;
}
