/* worker.c -- a prefork FastCGI worker: connections, requests, flushes
 *
 * A worker is one process with one epoll set holding the shared listen
 * socket, every FastCGI connection it has accepted, and its Redis batch
 * connection. It never blocks waiting for any one of them:
 *
 *   - connections: nginx keeps FastCGI connections open between requests
 *     (fastcgi_keep_conn). A plain libfcgi loop blocks reading the next
 *     request on its one kept connection while others queue, which is why
 *     keepalive stalls such workers. Here each connection has its own
 *     FCGX_Request slot (up to WORKER_CONNECTIONS). The worker accepts
 *     connections itself (the listen socket is non-blocking, so losing the
 *     accept race to another worker costs an EAGAIN), bounds their I/O
 *     and watches them; FCGX_Accept_r is only called on a slot whose
 *     connection epoll reported readable, so a peer that connects and
 *     sends nothing holds a slot, never the worker. Requests are answered
 *     one at a time, in arrival order. A
 *     kept connection stays with the worker that accepted it, so workers
 *     publish how many they hold (memory shared through the master) and
 *     only the least loaded ones watch the listen socket: otherwise one
 *     worker ends up holding most of nginx's pool and serving everything;
 *   - hits: handler.c counts each request into the hit buffer; every
 *     FLUSH_INTERVAL_MS at most, the oldest waiting paths go to Redis as one
 *     batch on the non-blocking connections (counters.c: one per node it
 *     writes to), so a request never waits for a Redis round trip and a
 *     slow or frozen Redis only makes hits wait. The worker owns its epoll
 *     set: after every round it asks the router which connections exist
 *     and what each waits for, and keeps its registrations in step;
 *   - signals: SIGTERM/SIGINT are blocked except inside epoll_pwait, so
 *     they only ever interrupt the wait, never a request.
 *
 * Shutdown: stop accepting, answer what nginx already sent on kept
 * connections, close them, then write every held hit to Redis, waiting at
 * most until the master's deadline. Hits still unwritten then are logged
 * as lost.
 *
 * libfcgi detail: a slot hands its accepted connection to libfcgi through
 * FCGX_Request.ipcFd with keepConnection set (FCGX_Accept_r then reads the
 * next request from it instead of accepting one), and its requests have no
 * listen socket (-1): when libfcgi finds the connection closed it returns
 * an error instead of accepting another one behind epoll's back. These are
 * fields fcgiapp.h calls internal; libfcgi 2.4 has no other way in.
 */

#include "worker.h"

#include <errno.h>
#include <fcgiapp.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "clock.h"
#include "handler.h"
#include "hitbuf.h"
#include "log.h"
#include "cluster.h"
#include "counters.h"
#include "metrics.h"
#include "runs.h"
#include "sig.h"

/* epoll data: a slot index, the listen socket, or TAG_REDIS + fd. */
#define TAG_LISTEN UINT64_MAX
#define TAG_REDIS  ((uint64_t)1 << 32)
#define MAX_EVENTS 64

/* Redis batch connections a worker may hold (one per node it writes to). */
#define REDIS_FDS_MAX 128

/* Connection balancing: a worker takes new connections only while it holds
 * at most BALANCE_SLACK more than the least loaded worker; one that does
 * not listen looks again every BALANCE_RECHECK_MS. */
#define BALANCE_SLACK      1
#define BALANCE_RECHECK_MS 20

/* How long a stopping worker keeps answering requests already on its kept
 * connections before it closes them. */
#define DRAIN_MS 300

/* Send and receive timeout of a FastCGI connection: a peer that stops in
 * the middle of a request or stops reading an answer frees the worker
 * after this long (libfcgi's reads and writes are blocking). */
#define CONN_IO_TIMEOUT_S 10

/* Request bodies are not used; this much is read and discarded before a
 * connection is closed instead. nginx's client_max_body_size is far lower. */
#define DRAIN_BODY_MAX   ((size_t)64 * 1024)
#define DRAIN_BODY_CHUNK 4096

/* A stopping worker's drain loop waits at most this long per round, so it
 * sees DRAIN_MS pass. */
#define DRAIN_POLL_MS 50

/* At shutdown, held hits are written until SHUTDOWN_TIMEOUT_MS minus
 * SHUTDOWN_MARGIN_MS (so the worker exits before the master's SIGKILL),
 * but for at least FLUSH_MIN_MS. */
#define SHUTDOWN_MARGIN_MS 1000
#define FLUSH_MIN_MS       100

/* Dropped hits are logged at most once per this interval. */
#define DROP_LOG_INTERVAL_MS 1000

static volatile sig_atomic_t stop_flag;

static void on_stop(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct slot {
    FCGX_Request req; /* req.ipcFd >= 0 while it holds a connection */
};

struct worker {
    const struct config *cfg;
    int index;
    int listen_fd;
    int listen_tcp; /* the listen socket is TCP (else unix) */
    int listening;  /* listen fd is in the epoll set */
    int epfd;
    struct slot *slots;
    int nslots;
    int *free_list; /* indexes of slots without a connection */
    int nfree;
    struct cluster *cl;
    struct counters *ctr;
    struct runs *runs;
    struct cluster_fd redis[REDIS_FDS_MAX]; /* registered in epfd */
    int nredis;
    struct hitbuf *hb;
    struct handler_ctx ctx;
    int64_t oldest_ms; /* when the oldest waiting hit arrived, 0 if none */
    int *load;         /* shared: connections held per worker, see worker.h */
    int conns;         /* connections this worker holds */
    uint64_t dropped_logged;
    int64_t dropped_log_ms;
    sigset_t waitmask;     /* mask inside epoll_pwait: stop signals let through */
    struct metrics *mx;    /* shared /metrics figures, NULL: none */
    int64_t batch_sent_us; /* when the batch in flight was sent */
};

static int listen_watch(struct worker *w, int on)
{
    struct epoll_event ev;

    if (on == w->listening || w->listen_fd < 0) {
        return 0;
    }
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN | EPOLLEXCLUSIVE;
    ev.data.u64 = TAG_LISTEN;
    if (epoll_ctl(w->epfd, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL, w->listen_fd, &ev) != 0) {
        log_error("epoll_ctl listen: %s", strerror(errno));
        return -1;
    }
    w->listening = on;
    return 0;
}

static void publish_load(struct worker *w)
{
    __atomic_store_n(&w->load[w->index], w->conns, __ATOMIC_RELAXED);
}

/* A slot's connection is gone (closed by libfcgi or by us). Only a slot
 * that slot_accept() filled comes here. */
static void slot_release(struct worker *w, int i)
{
    w->conns--;
    publish_load(w);
    w->free_list[w->nfree++] = i;
}

static int is_tcp(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);

    memset(&ss, 0, sizeof(ss));
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0) {
        return 0;
    }
    return ss.ss_family == AF_INET || ss.ss_family == AF_INET6;
}

/* Take a new connection into a free slot: bound its I/O, watch it. */
static void slot_accept(struct worker *w)
{
    struct timeval tv = {CONN_IO_TIMEOUT_S, 0};
    struct epoll_event ev;
    int one = 1;
    int i, fd;

    if (w->nfree == 0) {
        return;
    }
    fd = accept4(w->listen_fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR && errno != ECONNABORTED) {
            log_warn("accept: %s", strerror(errno));
        }
        return; /* most often another worker took it */
    }
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (w->listen_tcp) {
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
    i = w->free_list[--w->nfree];
    memset(&ev, 0, sizeof(ev));
    ev.events = EPOLLIN;
    ev.data.u64 = (uint64_t)i;
    if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) != 0) {
        log_error("epoll_ctl connection: %s; closing it", strerror(errno));
        close(fd);
        w->free_list[w->nfree++] = i;
        return;
    }
    /* Handed to libfcgi as an open connection; keepConnection stops its
     * FCGX_Accept_r from closing it as the end of a previous request. */
    w->slots[i].req.ipcFd = fd;
    w->slots[i].req.keepConnection = 1;
    w->conns++;
    publish_load(w);
}

/* Whether this worker should take new connections now: it has a free slot
 * and holds no more than BALANCE_SLACK connections above the least loaded
 * running worker (nginx reuses kept connections, so whoever accepts them
 * serves their requests from then on: balancing happens at accept time). */
static int accept_allowed(const struct worker *w)
{
    int least = w->conns;

    if (w->nfree == 0 || stop_flag) {
        return 0;
    }
    for (int i = 0; i < w->cfg->workers; i++) {
        int n = __atomic_load_n(&w->load[i], __ATOMIC_RELAXED);

        if (n >= 0 && n < least) {
            least = n;
        }
    }
    return w->conns <= least + BALANCE_SLACK;
}

/* Read and discard the request body so the kept connection stays in step.
 * Returns 0, or -1 if the body is too large (close the connection). */
static int drain_body(FCGX_Stream *in)
{
    char buf[DRAIN_BODY_CHUNK];
    size_t total = 0;
    int n;

    while ((n = FCGX_GetStr(buf, sizeof(buf), in)) > 0) {
        total += (size_t)n;
        if (total > DRAIN_BODY_MAX) {
            return -1;
        }
    }
    return 0;
}

static void log_drops(struct worker *w, int64_t now)
{
    uint64_t dropped = hitbuf_dropped_total(w->hb);

    if (dropped != w->dropped_logged && now - w->dropped_log_ms >= DROP_LOG_INTERVAL_MS) {
        log_warn("hit buffer full (%zu bytes): dropped %llu hits (%llu since start)",
                 hitbuf_bytes(w->hb), (unsigned long long)(dropped - w->dropped_logged),
                 (unsigned long long)dropped);
        w->dropped_logged = dropped;
        w->dropped_log_ms = now;
    }
}

/* Read the next request on slot i (a kept connection, or a free slot that
 * accepts a new one), answer it and finish it. */
static void serve(struct worker *w, int i)
{
    struct slot *s = &w->slots[i];
    int had_waiting = hitbuf_waiting_paths(w->hb) > 0;
    int close_conn;

    if (FCGX_Accept_r(&s->req) < 0) {
        /* nginx closed the connection (or sent something libfcgi could
         * not read): libfcgi has closed it. */
        slot_release(w, i);
        return;
    }
    handler_serve(&w->ctx, &s->req);
    close_conn = drain_body(s->req.in) != 0;
    FCGX_Finish_r(&s->req);
    if (close_conn && s->req.ipcFd >= 0) {
        FCGX_Free(&s->req, 1);
    }
    if (!had_waiting && hitbuf_waiting_paths(w->hb) > 0) {
        w->oldest_ms = clock_mono_ms();
    }
    if (s->req.ipcFd < 0) {
        slot_release(w, i); /* closed after the answer (no keep-alive) */
    }
}

/* Decide whether to start a batch write now, and start it. */
static void flush_tick(struct worker *w, int64_t now, int force)
{
    const struct hitbatch *b;

    if (counters_batch_busy(w->ctr)) {
        return;
    }
    b = hitbuf_batch(w->hb);
    if (b == NULL) {
        size_t waiting = hitbuf_waiting_paths(w->hb);

        if (!force && (waiting == 0 || (now - w->oldest_ms < w->cfg->flush_interval_ms &&
                                        waiting < (size_t)w->cfg->flush_batch_paths))) {
            return;
        }
        b = hitbuf_batch_open(w->hb, (size_t)w->cfg->flush_batch_paths);
        if (b == NULL) {
            return;
        }
        if (hitbuf_waiting_paths(w->hb) == 0) {
            w->oldest_ms = 0;
        }
    }
    if (counters_retry_at(w->ctr) != 0 && now < counters_retry_at(w->ctr)) {
        return;
    }
    if (counters_batch_send(w->ctr, b, now) == 0) {
        w->batch_sent_us = clock_mono_us();
    }
}

/* A Redis connection is ready (fd -1: only check deadlines). */
static void redis_event(struct worker *w, int fd, uint32_t events, int64_t now)
{
    unsigned ready = 0;

    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
        ready |= CLUSTER_READ;
    }
    if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) {
        ready |= CLUSTER_WRITE;
    }
    if (counters_batch_io(w->ctr, fd, ready, now) == COUNTERS_IO_DONE) {
        metrics_batch_observe(w->mx, w->index, clock_mono_us() - w->batch_sent_us);
        hitbuf_batch_close(w->hb);
    }
}

static uint32_t epoll_events(unsigned want)
{
    return ((want & CLUSTER_READ) ? EPOLLIN : 0) | ((want & CLUSTER_WRITE) ? EPOLLOUT : 0);
}

/* Keep the epoll set in step with the router's batch connections: add
 * new ones, change what changed, remove what is gone. A connection closed
 * by the router has already left the set (closing an fd removes it), so
 * a failing EPOLL_CTL_DEL is expected; a new connection that reuses an fd
 * number has a new id and is added again. */
static void redis_watch(struct worker *w)
{
    struct cluster_fd want[REDIS_FDS_MAX];
    int n = cluster_bfds(w->cl, want, REDIS_FDS_MAX);

    for (int i = 0; i < w->nredis; i++) {
        int keep = 0;

        for (int j = 0; j < n && !keep; j++) {
            keep = want[j].fd == w->redis[i].fd && want[j].id == w->redis[i].id;
        }
        if (!keep) {
            epoll_ctl(w->epfd, EPOLL_CTL_DEL, w->redis[i].fd, NULL);
        }
    }
    for (int j = 0; j < n; j++) {
        const struct cluster_fd *old = NULL;
        struct epoll_event ev;
        int rc = 0;

        for (int i = 0; i < w->nredis && old == NULL; i++) {
            if (w->redis[i].fd == want[j].fd && w->redis[i].id == want[j].id) {
                old = &w->redis[i];
            }
        }
        if (old != NULL && old->want == want[j].want) {
            continue;
        }
        memset(&ev, 0, sizeof(ev));
        ev.events = epoll_events(want[j].want);
        ev.data.u64 = TAG_REDIS + (uint64_t)want[j].fd;
        rc = epoll_ctl(w->epfd, old != NULL ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, want[j].fd, &ev);
        if (rc != 0 && (errno == EEXIST || errno == ENOENT)) {
            rc = epoll_ctl(w->epfd, errno == EEXIST ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, want[j].fd,
                           &ev);
        }
        if (rc != 0) {
            int saved = errno;

            log_error("epoll_ctl Redis connection: %s", strerror(saved));
        }
    }
    memcpy(w->redis, want, (size_t)n * sizeof(want[0]));
    w->nredis = n;
}

/* Milliseconds epoll may sleep: until the batch deadline, the retry time,
 * or the moment the oldest waiting hit is due; -1 when nothing is due. */
static int next_timeout(const struct worker *w, int64_t now)
{
    int64_t due = -1;

    if (counters_batch_busy(w->ctr)) {
        due = counters_batch_deadline(w->ctr);
    } else if (hitbuf_batch(w->hb) != NULL) {
        due = counters_retry_at(w->ctr) > now ? counters_retry_at(w->ctr) : now;
    } else if (hitbuf_waiting_paths(w->hb) > 0) {
        due = w->oldest_ms + w->cfg->flush_interval_ms;
        if (counters_retry_at(w->ctr) > due) {
            due = counters_retry_at(w->ctr);
        }
    }
    if (due < 0) {
        return -1;
    }
    return due <= now ? 0 : (int)(due - now);
}

static void dispatch(struct worker *w, const struct epoll_event *ev, int64_t now)
{
    if (ev->data.u64 == TAG_LISTEN) {
        slot_accept(w);
    } else if (ev->data.u64 >= TAG_REDIS) {
        redis_event(w, (int)(ev->data.u64 - TAG_REDIS), ev->events, now);
    } else if (ev->data.u64 < (uint64_t)w->nslots) {
        serve(w, (int)ev->data.u64);
    }
}

/* One round of the loop: wait, handle events, flush. */
static int loop_once(struct worker *w, int max_wait_ms, int force_flush)
{
    struct epoll_event evs[MAX_EVENTS];
    int64_t now = clock_mono_ms();
    int timeout = next_timeout(w, now);
    int n;

    if (!stop_flag) {
        listen_watch(w, accept_allowed(w));
        if (!w->listening && (timeout < 0 || timeout > BALANCE_RECHECK_MS)) {
            timeout = BALANCE_RECHECK_MS;
        }
    }
    if (max_wait_ms >= 0 && (timeout < 0 || timeout > max_wait_ms)) {
        timeout = max_wait_ms;
    }
    n = epoll_pwait(w->epfd, evs, MAX_EVENTS, timeout, &w->waitmask);
    if (n < 0) {
        if (errno == EINTR) {
            return 0;
        }
        log_error("epoll_wait: %s", strerror(errno));
        return -1;
    }
    now = clock_mono_ms();
    for (int i = 0; i < n; i++) {
        dispatch(w, &evs[i], now);
    }
    if (counters_batch_busy(w->ctr)) {
        redis_event(w, -1, 0, now); /* deadline check */
    }
    flush_tick(w, now, force_flush);
    redis_watch(w);
    log_drops(w, now);
    metrics_set_buffered(w->mx, w->index, hitbuf_unwritten_hits(w->hb));
    return n;
}

static void shutdown_worker(struct worker *w)
{
    int64_t start = clock_mono_ms();
    int64_t flush_deadline = start + w->cfg->shutdown_timeout_ms - SHUTDOWN_MARGIN_MS;

    /* Stop accepting (the master and the other workers keep the listen
     * socket open). */
    listen_watch(w, 0);
    close(w->listen_fd);
    w->listen_fd = -1;

    /* Answer what nginx already sent on kept connections. */
    while (w->conns > 0 && clock_mono_ms() - start < DRAIN_MS) {
        if (loop_once(w, DRAIN_POLL_MS, 0) < 0) {
            break;
        }
    }
    for (int i = 0; i < w->nslots; i++) {
        if (w->slots[i].req.ipcFd >= 0) {
            FCGX_Free(&w->slots[i].req, 1);
            slot_release(w, i);
        }
    }

    /* Write every held hit. */
    if (flush_deadline < start + FLUSH_MIN_MS) {
        flush_deadline = start + FLUSH_MIN_MS;
    }
    while (hitbuf_unwritten_hits(w->hb) > 0 || hitbuf_batch(w->hb) != NULL) {
        int64_t now = clock_mono_ms();

        if (now >= flush_deadline) {
            break;
        }
        flush_tick(w, now, 1);
        if (loop_once(w, (int)(flush_deadline - now), 1) < 0) {
            break;
        }
    }
    if (hitbuf_unwritten_hits(w->hb) > 0) {
        log_error("exiting with %llu hits Redis did not take: they are lost",
                  (unsigned long long)hitbuf_unwritten_hits(w->hb));
    }
}

static int worker_init(struct worker *w, const struct config *cfg, int listen_fd, int index,
                       int *load, struct statcache *sc, struct metrics *mx)
{
    static const int handled[] = {SIGTERM, SIGINT, 0};
    static const int ignored[] = {SIGPIPE, 0};

    memset(w, 0, sizeof(*w));
    w->cfg = cfg;
    w->index = index;
    w->listen_fd = listen_fd;
    w->epfd = -1;
    w->listen_tcp = is_tcp(listen_fd);
    w->load = load;
    publish_load(w);

    /* Stop signals: handled, blocked outside epoll_pwait. libfcgi's own
     * SIGTERM/SIGPIPE handlers are installed only over SIG_DFL/SIG_IGN, so
     * ours must be in place before FCGX_Init(). */
    if (sig_setup(on_stop, handled, ignored, &w->waitmask) != 0) {
        log_error("signal setup: %s", strerror(errno));
        return -1;
    }

    if (FCGX_Init() != 0) {
        log_error("FCGX_Init failed");
        return -1;
    }
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (w->epfd < 0) {
        int e = errno;

        log_error("worker initialisation failed: epoll_create1: %s", strerror(e));
        return -1;
    }
    w->nslots = cfg->worker_connections;
    w->slots = calloc((size_t)w->nslots, sizeof(*w->slots));
    w->free_list = calloc((size_t)w->nslots, sizeof(*w->free_list));
    w->hb = hitbuf_new((size_t)cfg->hit_buffer_bytes);
    if (w->slots == NULL || w->free_list == NULL || w->hb == NULL) {
        log_error("worker initialisation failed: out of memory");
        return -1;
    }
    w->cl = cluster_new(cfg);
    w->ctr = w->cl != NULL ? counters_new(cfg, w->cl) : NULL;
    w->runs = w->cl != NULL ? runs_new(cfg, w->cl) : NULL;
    if (w->ctr == NULL || w->runs == NULL) {
        int e = errno;

        log_error("worker initialisation failed: store: %s", strerror(e));
        return -1;
    }
    for (int i = 0; i < w->nslots; i++) {
        FCGX_InitRequest(&w->slots[i].req, -1, 0); /* connections come from slot_accept() */
        w->free_list[w->nfree++] = w->nslots - 1 - i;
    }
    w->ctx.cfg = cfg;
    w->ctx.ctr = w->ctr;
    w->ctx.cl = w->cl;
    w->ctx.runs = w->runs;
    w->ctx.hb = w->hb;
    w->ctx.sc = sc;
    w->ctx.mx = mx;
    w->mx = mx;
    return 0;
}

static void worker_cleanup(struct worker *w)
{
    runs_free(w->runs);
    counters_free(w->ctr);
    cluster_free(w->cl);
    hitbuf_free(w->hb);
    free(w->free_list);
    free(w->slots);
    if (w->epfd >= 0) {
        close(w->epfd);
    }
}

int worker_run(const struct config *cfg, int listen_fd, int index, int *load, struct statcache *sc,
               struct metrics *mx)
{
    struct worker w;
    int status = 0;

    if (worker_init(&w, cfg, listen_fd, index, load, sc, mx) != 0) {
        worker_cleanup(&w);
        return CONFIG_EXIT_FATAL;
    }
    log_info("worker %d started: %d connections, flush every %d ms", index, cfg->worker_connections,
             cfg->flush_interval_ms);

    while (!stop_flag) {
        if (loop_once(&w, -1, 0) < 0) {
            status = 1;
            break;
        }
        if (counters_fatal(w.ctr)) {
            /* The recorded shard layout differs (logged): writing would
             * put counts where no reader looks. */
            worker_cleanup(&w);
            return CONFIG_EXIT_FATAL;
        }
    }
    log_info("worker %d stopping: %llu hits to write", index,
             (unsigned long long)hitbuf_unwritten_hits(w.hb));
    shutdown_worker(&w);
    worker_cleanup(&w);
    return status;
}
