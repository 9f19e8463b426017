/* cluster.c -- the Redis router: connections, backoff, slot map, routing
 *
 * Beneath the store modules (counters.c, runs.c) and the only place that
 * opens connections to Redis. It speaks to one standalone Redis or to a
 * Redis Cluster with one code path: standalone is a map in which
 * REDIS_HOST:REDIS_PORT serves every slot and is never refreshed.
 *
 * Routing. Every command carries the hash slot of its keys (cmd.h); the
 * node serving that slot comes from the map (slotmap.c). In cluster mode
 * the map is read with CLUSTER SHARDS from any known node (the masters
 * known so far, then the REDIS_CLUSTER seeds) on first use, after a node
 * fails, and after a MOVED; a refresh is attempted at most every
 * REFRESH_MIN_MS. Redirects are handled as libvalkey and hiredis-cluster
 * do, and bounded (REDIRECTS_MAX):
 *
 *   - MOVED <slot> <node>: the slot is reassigned in the map at once and
 *     the command resent there; a full refresh follows on the next call;
 *   - ASK <slot> <node>: ASKING and the command, once, on the named node
 *     (the map is not changed: the slot is still being migrated);
 *   - TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN: the cluster cannot serve
 *     this now. The command fails like a connection error: the node is
 *     backed off and the caller retries (batches are idempotent).
 *
 * Connections, per node and per process:
 *
 *   - a blocking query connection with connect and command timeouts:
 *     /stats/, the test-run records, the map itself. Commands of one call
 *     (cluster_run) are pipelined per node and all nodes are written
 *     before any is read, so a call costs one round trip however many
 *     nodes it touches;
 *   - a non-blocking batch connection (workers only) for the hit batches.
 *     The router does not know the worker's poll set: cluster_bfds() lists
 *     the descriptors and the events each waits for, the worker registers
 *     them and reports readiness back with cluster_bio(). Commands are
 *     answered in order on a connection, so each connection keeps a FIFO
 *     of what it is waiting for (AUTH, ASKING, a command with its
 *     completion callback and deadline). A command unanswered after
 *     REDIS_TIMEOUT_MS fails the connection and everything on it.
 *
 * Health, per node: after any failure the node's connections are freed
 * (hiredis contexts are dead after an error) and it is not tried again
 * before a backoff that doubles from 25 ms to REDIS_BACKOFF_MAX_MS;
 * meanwhile calls that need it fail at once, which is what lets /stats/
 * answer 503 without waiting. The first success resets it. The log says
 * "Redis lost at <node>" once when a node fails and "Redis back at <node>"
 * when it answers again. While a node is down, a fresh query connection
 * gets only the connect timeout for its first command, so a probe of a
 * frozen server costs the caller little.
 */

#include "cluster.h"

#include <errno.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "slotmap.h"

#define BACKOFF_MIN_MS 25
#define REDIRECTS_MAX  5
#define REFRESH_MIN_MS 100

/* Commands one batch connection may be waiting for: one per shard in
 * flight, an ASKING before each, and the AUTH of a fresh connection. */
#define PEND_MAX 1024

/* "[host]:port" of any node, NUL included. */
#define NODE_NAME_LEN (SLOTMAP_HOST_MAX + 10)

enum pend_kind { PEND_AUTH, PEND_ASKING, PEND_CMD };

struct pend {
    struct cmd *cmd;
    uint64_t cookie;
    cluster_done_fn *done;
    void *arg;
    int64_t deadline;
    enum pend_kind kind;
    int redirects;
};

struct node {
    char name[NODE_NAME_LEN];
    redisContext *q; /* blocking query connection */
    redisContext *b; /* non-blocking batch connection */
    int b_want_write;
    unsigned long b_id;
    struct pend *pend; /* ring of PEND_MAX, allocated with b */
    int phead, pcount;
    int down;
    int backoff_ms;
    int64_t retry_at;
    int replicas; /* as of the last map read */
};

struct cluster {
    const struct config *cfg;
    int cluster;
    int need_refresh;
    int64_t refresh_at;
    unsigned long conns; /* batch connections made, for their ids */
    int nseeds;
    int seeds[CONFIG_SEEDS_MAX]; /* node indexes of REDIS_CLUSTER */
    struct slotmap map;
    struct node nodes[SLOTMAP_NODES_MAX];
};

static struct timeval tv_of(int ms)
{
    struct timeval tv = {ms / 1000, (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

/* The node index for host:port, its name set when new; -1 if full. */
static int node_add(struct cluster *cl, const char *host, int port)
{
    int before = cl->map.nnodes;
    int i = slotmap_node(&cl->map, host, port);

    if (i >= 0 && i >= before) {
        snprintf(cl->nodes[i].name, NODE_NAME_LEN, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                 port);
    }
    return i;
}

struct cluster *cluster_new(const struct config *cfg)
{
    struct cluster *cl = calloc(1, sizeof(*cl));

    if (cl == NULL) {
        return NULL;
    }
    cl->cfg = cfg;
    cl->cluster = cfg->redis_nseeds > 0;
    slotmap_init(&cl->map);
    if (!cl->cluster) {
        int n = node_add(cl, cfg->redis_host, cfg->redis_port);

        slotmap_assign(&cl->map, 0, SLOTMAP_SLOTS - 1, n);
        return cl;
    }
    for (int i = 0; i < cfg->redis_nseeds; i++) {
        int n = node_add(cl, cfg->redis_seeds[i].host, cfg->redis_seeds[i].port);

        if (n >= 0) {
            cl->seeds[cl->nseeds++] = n;
        }
    }
    cl->need_refresh = 1;
    return cl;
}

int cluster_mode(const struct cluster *cl)
{
    return cl->cluster;
}

/* ---- health ------------------------------------------------------------ */

static int may_try(const struct node *nd)
{
    return nd->retry_at == 0 || clock_mono_ms() >= nd->retry_at;
}

static void query_drop(struct node *nd)
{
    redisFree(nd->q);
    nd->q = NULL;
}

/* Any failure on a node: back off before trying it again, and drop its
 * query connection so the next query reconnects with the short probe
 * timeout. In cluster mode the map may be stale: read it again. */
static void node_failed(struct cluster *cl, struct node *nd, const char *what, const char *detail)
{
    char copy[160];

    /* detail may point into the context about to be freed. */
    snprintf(copy, sizeof(copy), "%s", detail);
    query_drop(nd);
    nd->backoff_ms = nd->backoff_ms == 0 ? BACKOFF_MIN_MS : nd->backoff_ms * 2;
    if (nd->backoff_ms > cl->cfg->redis_backoff_max_ms) {
        nd->backoff_ms = cl->cfg->redis_backoff_max_ms;
    }
    nd->retry_at = clock_mono_ms() + nd->backoff_ms;
    if (cl->cluster) {
        cl->need_refresh = 1;
    }
    if (!nd->down) {
        nd->down = 1;
        log_warn("Redis lost at %s (%s: %s); retrying with backoff up to %d ms", nd->name, what,
                 copy, cl->cfg->redis_backoff_max_ms);
    } else {
        log_debug("Redis still down at %s (%s: %s); next attempt in %d ms", nd->name, what, copy,
                  nd->backoff_ms);
    }
}

static void node_ok(struct node *nd)
{
    if (nd->down) {
        log_info("Redis back at %s", nd->name);
    }
    nd->down = 0;
    nd->backoff_ms = 0;
    nd->retry_at = 0;
}

/* ---- the blocking query connections ------------------------------------ */

/* AUTH with REDIS_PASSWORD, the one place it is built (both connection
 * kinds append it first). Returns 0, -1 if the command is malformed. */
static int append_auth(const struct cluster *cl, redisContext *c)
{
    struct cmd a;

    cmd_init(&a, CMD_ANY_SLOT);
    cmd_str(&a, "AUTH");
    cmd_str(&a, cl->cfg->redis_password);
    return redisAppendCommandArgv(c, a.argc, a.argv, a.len) == REDIS_OK ? 0 : -1;
}

static redisContext *query_conn(struct cluster *cl, int i)
{
    const struct config *cfg = cl->cfg;
    struct node *nd = &cl->nodes[i];
    const struct slotmap_node *addr = &cl->map.nodes[i];
    redisContext *c;

    if (nd->q != NULL) {
        return nd->q;
    }
    if (!may_try(nd)) {
        return NULL;
    }
    c = redisConnectWithTimeout(addr->host, addr->port, tv_of(cfg->redis_connect_timeout_ms));
    if (c == NULL || c->err) {
        node_failed(cl, nd, "connect", c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return NULL;
    }
    /* While the node is down, a reconnect that succeeded may still reach
     * a frozen server (the kernel accepts for it): the first commands get
     * only the connect timeout. The normal one is set on success. */
    if (redisSetTimeout(c, tv_of(nd->down ? cfg->redis_connect_timeout_ms
                                          : cfg->redis_timeout_ms)) != REDIS_OK) {
        node_failed(cl, nd, "setsockopt", c->errstr);
        redisFree(c);
        return NULL;
    }
    if (cfg->redis_password[0] != '\0') {
        void *reply = NULL;
        redisReply *r;

        if (append_auth(cl, c) != 0 || redisGetReply(c, &reply) != REDIS_OK) {
            node_failed(cl, nd, "AUTH", c->errstr);
            redisFree(c);
            return NULL;
        }
        r = reply;
        if (r->type == REDIS_REPLY_ERROR) {
            node_failed(cl, nd, "AUTH", r->str);
            freeReplyObject(r);
            redisFree(c);
            return NULL;
        }
        freeReplyObject(r);
    }
    nd->q = c;
    return c;
}

/* Describe a failed blocking context's error into err. */
static void conn_error(const redisContext *c, int saved_errno, int timeout_ms, char *err,
                       size_t len)
{
    if (c->err == REDIS_ERR_IO && (saved_errno == EAGAIN || saved_errno == EWOULDBLOCK)) {
        snprintf(err, len, "no answer within %d ms", timeout_ms);
    } else {
        snprintf(err, len, "%s", c->errstr[0] ? c->errstr : "protocol error");
    }
}

static void free_replies(redisReply **r, int n)
{
    for (int i = 0; i < n; i++) {
        freeReplyObject(r[i]);
        r[i] = NULL;
    }
}

/* One pass of cluster_run over the commands still to do (todo[i] != 0):
 * returns 0 when every node answered, -1 on a failure (replies of this
 * pass freed), 1 when a stale reused connection failed (retry once). */
static int run_pass(struct cluster *cl, struct cmd *cmds, int n, redisReply **replies,
                    const char *todo, const int *target, const char *asking, int allow_stale)
{
    char used[SLOTMAP_NODES_MAX] = {0}, reused[SLOTMAP_NODES_MAX] = {0};
    int rc = 0;

    for (int i = 0; i < n; i++) {
        if (todo[i]) {
            used[target[i]] = 1;
        }
    }
    /* Connect and append everything. */
    for (int t = 0; t < cl->map.nnodes && rc == 0; t++) {
        redisContext *c;

        if (!used[t]) {
            continue;
        }
        reused[t] = cl->nodes[t].q != NULL;
        c = query_conn(cl, t);
        if (c == NULL) {
            rc = -1;
            break;
        }
        for (int i = 0; i < n; i++) {
            if (!todo[i] || target[i] != t) {
                continue;
            }
            if ((asking[i] && redisAppendCommand(c, "ASKING") != REDIS_OK) ||
                redisAppendCommandArgv(c, cmds[i].argc, cmds[i].argv, cmds[i].len) != REDIS_OK) {
                node_failed(cl, &cl->nodes[t], "command", "out of memory");
                rc = -1;
                break;
            }
        }
    }
    /* Write every node's pipeline before reading any. */
    for (int t = 0; t < cl->map.nnodes && rc == 0; t++) {
        int done = 0;

        if (!used[t]) {
            continue;
        }
        while (!done) {
            if (redisBufferWrite(cl->nodes[t].q, &done) != REDIS_OK) {
                break;
            }
        }
        /* A write error shows again, with its errno, when reading. */
    }
    for (int t = 0; t < cl->map.nnodes && rc == 0; t++) {
        redisContext *c = cl->nodes[t].q;

        if (!used[t]) {
            continue;
        }
        for (int i = 0; i < n; i++) {
            void *reply = NULL;

            if (!todo[i] || target[i] != t) {
                continue;
            }
            if (asking[i]) {
                if (redisGetReply(c, &reply) != REDIS_OK) {
                    goto io_fail;
                }
                freeReplyObject(reply);
                reply = NULL;
            }
            if (redisGetReply(c, &reply) != REDIS_OK) {
                goto io_fail;
            }
            replies[i] = reply;
            continue;

        io_fail : {
            int saved = errno;
            char err[160];
            int stale = c->err == REDIS_ERR_EOF ||
                        (c->err == REDIS_ERR_IO && (saved == ECONNRESET || saved == EPIPE));

            conn_error(c, saved, cl->cfg->redis_timeout_ms, err, sizeof(err));
            if (allow_stale && reused[t] && stale) {
                /* An idle connection the server may have closed: one
                 * fresh try, without counting it as a failure. */
                query_drop(&cl->nodes[t]);
                rc = 1;
            } else {
                node_failed(cl, &cl->nodes[t], "command", err);
                rc = -1;
            }
            break;
        }
        }
    }
    if (rc == 0) {
        for (int t = 0; t < cl->map.nnodes; t++) {
            if (used[t] && cl->nodes[t].down) {
                node_ok(&cl->nodes[t]);
                redisSetTimeout(cl->nodes[t].q, tv_of(cl->cfg->redis_timeout_ms));
            }
        }
        return 0;
    }
    /* Anything half-read is out of step: drop those connections. */
    for (int t = 0; t < cl->map.nnodes; t++) {
        if (used[t]) {
            query_drop(&cl->nodes[t]);
        }
    }
    for (int i = 0; i < n; i++) {
        if (todo[i]) {
            freeReplyObject(replies[i]);
            replies[i] = NULL;
        }
    }
    return rc;
}

static void maybe_refresh(struct cluster *cl)
{
    if (cl->cluster && cl->need_refresh && clock_mono_ms() >= cl->refresh_at) {
        cluster_refresh(cl);
    }
}

int cluster_run(struct cluster *cl, struct cmd *cmds, int n, redisReply **replies, int retry)
{
    char *todo = NULL, *asking = NULL;
    int *target = NULL;
    int rc = -1, stale_left = retry ? 1 : 0;

    for (int i = 0; i < n; i++) {
        replies[i] = NULL;
        if (cmds[i].err) {
            log_error("Redis command %s not sent: more than %d arguments",
                      cmds[i].argc > 0 ? cmds[i].argv[0] : "?", cmds[i].cap);
            return -1;
        }
    }
    maybe_refresh(cl);
    todo = calloc((size_t)n + 1, 1);
    asking = calloc((size_t)n + 1, 1);
    target = calloc((size_t)n + 1, sizeof(*target));
    if (todo == NULL || asking == NULL || target == NULL) {
        goto out;
    }
    for (int i = 0; i < n; i++) {
        int slot = cmds[i].slot == CMD_ANY_SLOT ? 0 : cmds[i].slot;

        todo[i] = 1;
        target[i] = slotmap_owner(&cl->map, slot);
        if (target[i] < 0) {
            log_debug("Redis: no node known for slot %d", slot);
            cl->need_refresh = 1;
            goto out;
        }
    }
    for (int round = 0; round <= REDIRECTS_MAX; round++) {
        int again = 0, pass;

        pass = run_pass(cl, cmds, n, replies, todo, target, asking, stale_left > 0);
        if (pass == 1) {
            stale_left--;
            round--;
            continue;
        }
        if (pass != 0) {
            goto out;
        }
        for (int i = 0; i < n; i++) {
            struct slotmap_redirect rd;
            redisReply *r = replies[i];
            enum slotmap_reply kind;
            int t;

            if (!todo[i]) {
                continue;
            }
            todo[i] = 0;
            asking[i] = 0;
            if (r == NULL) { /* cannot happen after a pass that succeeded */
                free_replies(replies, n);
                goto out;
            }
            if (r->type != REDIS_REPLY_ERROR) {
                continue;
            }
            kind = slotmap_classify(r->str, r->len, &rd);
            if (kind == SLOTMAP_ERROR || !cl->cluster) {
                continue; /* the caller's to judge */
            }
            if (kind == SLOTMAP_RETRY) {
                node_failed(cl, &cl->nodes[target[i]], "cluster", r->str);
                free_replies(replies, n);
                goto out;
            }
            t = node_add(cl, rd.host[0] ? rd.host : cl->map.nodes[target[i]].host, rd.port);
            if (t < 0) {
                log_error("Redis: cannot follow %s: too many nodes", r->str);
                free_replies(replies, n);
                goto out;
            }
            log_debug("Redis %s (from %s)", r->str, cl->nodes[target[i]].name);
            if (kind == SLOTMAP_MOVED) {
                slotmap_assign(&cl->map, rd.slot, rd.slot, t);
                cl->need_refresh = 1;
            } else {
                asking[i] = 1;
            }
            freeReplyObject(r);
            replies[i] = NULL;
            target[i] = t;
            todo[i] = 1;
            again = 1;
        }
        if (!again) {
            rc = 0;
            goto out;
        }
    }
    log_warn("Redis: more than %d redirects for one call; giving up", REDIRECTS_MAX);
    free_replies(replies, n);

out:
    free(target);
    free(asking);
    free(todo);
    return rc;
}

/* ---- the slot map -------------------------------------------------------- */

/* Value of field name in a flat [name, value, ...] array, or NULL. */
static const redisReply *field(const redisReply *a, const char *name)
{
    if (a == NULL || a->type != REDIS_REPLY_ARRAY) {
        return NULL;
    }
    for (size_t i = 0; i + 1 < a->elements; i += 2) {
        const redisReply *k = a->element[i];

        if (k->type == REDIS_REPLY_STRING && strcmp(k->str, name) == 0) {
            return a->element[i + 1];
        }
    }
    return NULL;
}

static int field_is(const redisReply *a, const char *name, const char *value)
{
    const redisReply *v = field(a, name);

    return v != NULL && v->type == REDIS_REPLY_STRING && strcmp(v->str, value) == 0;
}

/* Apply one CLUSTER SHARDS reply. Returns 0, or -1 if it does not parse
 * (the map is then left as it was). */
static int apply_shards(struct cluster *cl, const redisReply *r)
{
    struct slotmap next = cl->map;
    int replicas[SLOTMAP_NODES_MAX] = {0};

    if (r->type != REDIS_REPLY_ARRAY) {
        return -1;
    }
    slotmap_clear(&next);
    for (size_t s = 0; s < r->elements; s++) {
        const redisReply *shard = r->element[s];
        const redisReply *slots = field(shard, "slots");
        const redisReply *nodes = field(shard, "nodes");
        int master = -1, nrep = 0;

        if (slots == NULL || nodes == NULL || slots->type != REDIS_REPLY_ARRAY ||
            nodes->type != REDIS_REPLY_ARRAY) {
            return -1;
        }
        for (size_t j = 0; j < nodes->elements; j++) {
            const redisReply *nd = nodes->element[j];
            const redisReply *ep = field(nd, "endpoint"), *ip = field(nd, "ip");
            const redisReply *port = field(nd, "port");
            const char *host = NULL;

            if (!field_is(nd, "role", "master")) {
                nrep += !field_is(nd, "health", "fail");
                continue;
            }
            /* A failed master stays listed beside the replica that took
             * its place: take the live one. */
            if (field_is(nd, "health", "fail") && (master >= 0 || j + 1 < nodes->elements)) {
                continue;
            }
            if (ep != NULL && ep->type == REDIS_REPLY_STRING && ep->len > 0 &&
                strcmp(ep->str, "?") != 0) {
                host = ep->str;
            } else if (ip != NULL && ip->type == REDIS_REPLY_STRING && ip->len > 0) {
                host = ip->str;
            }
            if (host == NULL || port == NULL || port->type != REDIS_REPLY_INTEGER) {
                return -1;
            }
            master = slotmap_node(&next, host, (int)port->integer);
            if (master < 0) {
                return -1;
            }
        }
        if (master < 0) {
            continue; /* no master (yet): its slots stay unknown */
        }
        replicas[master] = nrep;
        for (size_t j = 0; j + 1 < slots->elements; j += 2) {
            const redisReply *a = slots->element[j], *b = slots->element[j + 1];

            if (a->type != REDIS_REPLY_INTEGER || b->type != REDIS_REPLY_INTEGER ||
                slotmap_assign(&next, (int)a->integer, (int)b->integer, master) != 0) {
                return -1;
            }
        }
    }
    /* Name the nodes that are new, then take the map. */
    for (int i = cl->map.nnodes; i < next.nnodes; i++) {
        const char *host = next.nodes[i].host;

        snprintf(cl->nodes[i].name, NODE_NAME_LEN, strchr(host, ':') ? "[%s]:%d" : "%s:%d", host,
                 next.nodes[i].port);
    }
    cl->map = next;
    for (int i = 0; i < cl->map.nnodes; i++) {
        cl->nodes[i].replicas = replicas[i];
    }
    return 0;
}

/* Try to read the map from node i. */
static int refresh_from(struct cluster *cl, int i)
{
    redisContext *c = query_conn(cl, i);
    void *reply = NULL;
    redisReply *r;
    int rc = -1;

    if (c == NULL) {
        return -1;
    }
    if (redisAppendCommand(c, "CLUSTER SHARDS") != REDIS_OK ||
        redisGetReply(c, &reply) != REDIS_OK) {
        char err[160];

        conn_error(c, errno, cl->cfg->redis_timeout_ms, err, sizeof(err));
        node_failed(cl, &cl->nodes[i], "CLUSTER SHARDS", err);
        return -1;
    }
    r = reply;
    if (r->type == REDIS_REPLY_ERROR) {
        node_failed(cl, &cl->nodes[i], "CLUSTER SHARDS", r->str);
    } else if (apply_shards(cl, r) != 0) {
        log_error("Redis: CLUSTER SHARDS from %s does not parse (or more than %d nodes)",
                  cl->nodes[i].name, SLOTMAP_NODES_MAX);
    } else {
        node_ok(&cl->nodes[i]);
        rc = 0;
    }
    freeReplyObject(r);
    return rc;
}

int cluster_refresh(struct cluster *cl)
{
    char tried[SLOTMAP_NODES_MAX] = {0};

    if (!cl->cluster) {
        return 0;
    }
    cl->refresh_at = clock_mono_ms() + REFRESH_MIN_MS;
    /* Masters first (they answer for sure while the cluster is up), then
     * the seeds, then every other node ever seen. */
    for (int pass = 0; pass < 3; pass++) {
        for (int i = 0; i < cl->map.nnodes; i++) {
            int master = 0;

            if (tried[i]) {
                continue;
            }
            for (int s = 0; s < SLOTMAP_SLOTS && pass == 0 && !master; s += 64) {
                master = cl->map.owner[s] == i;
            }
            if (pass == 0 && !master) {
                continue;
            }
            if (pass == 1) {
                int seed = 0;

                for (int k = 0; k < cl->nseeds; k++) {
                    seed |= cl->seeds[k] == i;
                }
                if (!seed) {
                    continue;
                }
            }
            tried[i] = 1;
            if (refresh_from(cl, i) == 0) {
                cl->need_refresh = 0;
                return 0;
            }
        }
    }
    return -1;
}

int cluster_ping(struct cluster *cl)
{
    int idx[SLOTMAP_NODES_MAX], slots[SLOTMAP_NODES_MAX], reps[SLOTMAP_NODES_MAX];
    struct cmd cmds[SLOTMAP_NODES_MAX];
    redisReply *replies[SLOTMAP_NODES_MAX];
    int n, rc = 0;

    if (cl->cluster && cluster_refresh(cl) != 0) {
        return -1;
    }
    n = cluster_masters(cl, idx, slots, reps, SLOTMAP_NODES_MAX);
    if (n == 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        int slot = 0;

        while (slot < SLOTMAP_SLOTS && cl->map.owner[slot] != idx[i]) {
            slot++;
        }
        cmd_init(&cmds[i], slot);
        cmd_str(&cmds[i], "PING");
    }
    if (cluster_run(cl, cmds, n, replies, 1) != 0) {
        return -1;
    }
    for (int i = 0; i < n; i++) {
        if (replies[i]->type != REDIS_REPLY_STATUS) {
            rc = -1;
        }
        freeReplyObject(replies[i]);
    }
    return rc;
}

int cluster_ping_each(struct cluster *cl, int *idx, int *up, int max)
{
    int n = 0;

    maybe_refresh(cl);
    for (int i = 0; i < cl->map.nnodes && n < max; i++) {
        struct node *nd = &cl->nodes[i];
        redisContext *c = query_conn(cl, i);
        redisReply *rep = NULL;
        struct cmd ping;

        idx[n] = i;
        up[n] = 0;
        if (c != NULL) {
            cmd_init(&ping, CMD_ANY_SLOT);
            cmd_str(&ping, "PING");
            rep = redisCommandArgv(c, ping.argc, ping.argv, ping.len);
            cmd_free(&ping);
            if (rep == NULL) {
                node_failed(cl, nd, "PING", c->errstr);
            } else if (rep->type == REDIS_REPLY_STATUS) {
                node_ok(nd);
                up[n] = 1;
            }
        }
        freeReplyObject(rep);
        n++;
    }
    return n;
}

const char *cluster_slot_node(const struct cluster *cl, int slot)
{
    int i = slotmap_owner(&cl->map, slot);

    return i < 0 ? "?" : cl->nodes[i].name;
}

int cluster_slot_owner(const struct cluster *cl, int slot)
{
    return slotmap_owner(&cl->map, slot);
}

int cluster_masters(const struct cluster *cl, int *idx, int *slots, int *replicas, int max)
{
    int count[SLOTMAP_NODES_MAX] = {0};
    int n = 0;

    for (int s = 0; s < SLOTMAP_SLOTS; s++) {
        if (cl->map.owner[s] >= 0) {
            count[cl->map.owner[s]]++;
        }
    }
    for (int i = 0; i < cl->map.nnodes && n < max; i++) {
        if (count[i] > 0) {
            idx[n] = i;
            slots[n] = count[i];
            replicas[n] = cl->nodes[i].replicas;
            n++;
        }
    }
    return n;
}

const char *cluster_node_name(const struct cluster *cl, int i)
{
    return i >= 0 && i < cl->map.nnodes ? cl->nodes[i].name : "?";
}

/* ---- the non-blocking batch connections --------------------------------- */

static struct pend *pend_at(struct node *nd, int k)
{
    return &nd->pend[(nd->phead + k) % PEND_MAX];
}

static int pend_push(struct node *nd, const struct pend *p)
{
    if (nd->pcount == PEND_MAX) {
        return -1;
    }
    *pend_at(nd, nd->pcount) = *p;
    nd->pcount++;
    return 0;
}

static struct pend pend_pop(struct node *nd)
{
    struct pend p = *pend_at(nd, 0);

    nd->phead = (nd->phead + 1) % PEND_MAX;
    nd->pcount--;
    return p;
}

/* Drop node i's batch connection and fail everything it was waiting for.
 * Completions run after the connection is gone, so a callback that sends
 * again starts from a clean state. */
static void batch_fail(struct cluster *cl, int i, const char *what, const char *detail)
{
    struct node *nd = &cl->nodes[i];
    struct pend failed[PEND_MAX];
    int nfailed = 0;

    if (nd->b != NULL) {
        node_failed(cl, nd, what, detail);
        redisFree(nd->b);
        nd->b = NULL;
    }
    nd->b_want_write = 0;
    while (nd->pcount > 0) {
        struct pend p = pend_pop(nd);

        if (p.kind == PEND_CMD) {
            failed[nfailed++] = p;
        }
    }
    for (int k = 0; k < nfailed; k++) {
        failed[k].done(failed[k].arg, failed[k].cookie, NULL);
    }
}

static int batch_connect(struct cluster *cl, int i, int64_t now)
{
    struct node *nd = &cl->nodes[i];
    const struct slotmap_node *addr = &cl->map.nodes[i];
    redisContext *c;

    if (nd->pend == NULL) {
        nd->pend = calloc(PEND_MAX, sizeof(*nd->pend));
        if (nd->pend == NULL) {
            return -1;
        }
    }
    c = redisConnectNonBlock(addr->host, addr->port);
    if (c == NULL || c->err) {
        node_failed(cl, nd, "connect", c != NULL ? c->errstr : "out of memory");
        redisFree(c);
        return -1;
    }
    nd->b = c;
    nd->b_id = ++cl->conns;
    nd->phead = 0;
    nd->pcount = 0;
    if (cl->cfg->redis_password[0] != '\0') {
        struct pend p = {NULL, 0, NULL, NULL, 0, PEND_AUTH, 0};

        p.deadline = now + cl->cfg->redis_connect_timeout_ms + cl->cfg->redis_timeout_ms;
        if (append_auth(cl, c) != 0 || pend_push(nd, &p) != 0) {
            batch_fail(cl, i, "AUTH", "out of memory");
            return -1;
        }
    }
    return 0;
}

/* Append p (its command, ASKING first if asked) to node i and push it. */
static int batch_append(struct cluster *cl, int i, struct pend *p, int asking, int64_t now)
{
    struct node *nd = &cl->nodes[i];
    int fresh = 0, done = 0;

    if (nd->b == NULL) {
        if (!may_try(nd) || batch_connect(cl, i, now) != 0) {
            return -1;
        }
        fresh = 1;
    }
    if (nd->pcount + 2 > PEND_MAX) {
        return -1;
    }
    p->deadline = now + cl->cfg->redis_timeout_ms + (fresh ? cl->cfg->redis_connect_timeout_ms : 0);
    if (asking) {
        struct pend a = {NULL, 0, NULL, NULL, p->deadline, PEND_ASKING, 0};

        if (redisAppendCommand(nd->b, "ASKING") != REDIS_OK) {
            batch_fail(cl, i, "ASKING", nd->b->errstr);
            return -1;
        }
        pend_push(nd, &a);
    }
    if (redisAppendCommandArgv(nd->b, p->cmd->argc, p->cmd->argv, p->cmd->len) != REDIS_OK) {
        batch_fail(cl, i, "command", nd->b->errstr);
        return -1;
    }
    pend_push(nd, p);
    if (redisBufferWrite(nd->b, &done) != REDIS_OK) {
        /* p is on the FIFO: batch_fail reports it failed. Return 0: its
         * completion has been reported. */
        batch_fail(cl, i, "write", nd->b->errstr);
        return 0;
    }
    nd->b_want_write = !done;
    return 0;
}

int cluster_bsend(struct cluster *cl, struct cmd *c, uint64_t cookie, int64_t now_ms,
                  cluster_done_fn *done, void *arg)
{
    struct pend p = {c, cookie, done, arg, 0, PEND_CMD, 0};
    int t;

    if (c->err) {
        log_error("Redis command %s not sent: more than %d arguments",
                  c->argc > 0 ? c->argv[0] : "?", c->cap);
        return -1;
    }
    maybe_refresh(cl);
    t = slotmap_owner(&cl->map, c->slot == CMD_ANY_SLOT ? 0 : c->slot);
    if (t < 0) {
        cl->need_refresh = 1;
        return -1;
    }
    return batch_append(cl, t, &p, 0, now_ms);
}

/* Handle one reply to node i's oldest pending entry. */
static void batch_reply(struct cluster *cl, int i, redisReply *r, int64_t now)
{
    struct node *nd = &cl->nodes[i];
    struct pend p = pend_pop(nd);
    struct slotmap_redirect rd;
    enum slotmap_reply kind;
    int t;

    if (p.kind == PEND_AUTH) {
        if (r->type == REDIS_REPLY_ERROR) {
            /* Put it back so batch_fail sees a consistent FIFO. */
            char msg[128];

            snprintf(msg, sizeof(msg), "%s", r->str);
            freeReplyObject(r);
            batch_fail(cl, i, "AUTH", msg);
            return;
        }
        freeReplyObject(r);
        return;
    }
    if (p.kind == PEND_ASKING) {
        freeReplyObject(r); /* +OK; the command's own reply follows */
        return;
    }
    if (r->type != REDIS_REPLY_ERROR) {
        node_ok(nd);
        p.done(p.arg, p.cookie, r);
        return;
    }
    kind = cl->cluster ? slotmap_classify(r->str, r->len, &rd) : SLOTMAP_ERROR;
    if (kind == SLOTMAP_ERROR) {
        /* An error reply (OOM, a busy script): the command did nothing.
         * Back off before the caller sends it again. */
        node_failed(cl, nd, "command", r->str);
        p.done(p.arg, p.cookie, r);
        return;
    }
    if (kind == SLOTMAP_RETRY || p.redirects >= REDIRECTS_MAX) {
        char msg[128];

        snprintf(msg, sizeof(msg), "%s", r->str);
        freeReplyObject(r);
        /* The node answers, but cannot serve the slot now: back off (the
         * connection stays, it is in step). */
        node_failed(cl, nd, kind == SLOTMAP_RETRY ? "cluster" : "redirects", msg);
        p.done(p.arg, p.cookie, NULL);
        return;
    }
    t = node_add(cl, rd.host[0] ? rd.host : cl->map.nodes[i].host, rd.port);
    log_debug("Redis %s (from %s)", r->str, nd->name);
    freeReplyObject(r);
    if (t < 0) {
        p.done(p.arg, p.cookie, NULL);
        return;
    }
    if (kind == SLOTMAP_MOVED) {
        slotmap_assign(&cl->map, rd.slot, rd.slot, t);
        cl->need_refresh = 1;
    }
    p.redirects++;
    if (batch_append(cl, t, &p, kind == SLOTMAP_ASK, now) != 0) {
        p.done(p.arg, p.cookie, NULL);
    }
}

static int node_of_fd(const struct cluster *cl, int fd)
{
    for (int i = 0; i < cl->map.nnodes; i++) {
        if (cl->nodes[i].b != NULL && cl->nodes[i].b->fd == fd) {
            return i;
        }
    }
    return -1;
}

static void batch_drive(struct cluster *cl, int i, unsigned events, int64_t now)
{
    struct node *nd = &cl->nodes[i];

    if (nd->b_want_write && (events & CLUSTER_WRITE)) {
        int done = 0;

        if (redisBufferWrite(nd->b, &done) != REDIS_OK) {
            batch_fail(cl, i, "write", nd->b->errstr);
            return;
        }
        nd->b_want_write = !done;
    }
    if (events & CLUSTER_READ) {
        if (redisBufferRead(nd->b) != REDIS_OK) {
            if (nd->pcount == 0) {
                /* An idle connection closed (Redis restarted, or its
                 * timeout): not a failure, reconnect when next needed. */
                redisFree(nd->b);
                nd->b = NULL;
                nd->b_want_write = 0;
                return;
            }
            batch_fail(cl, i, "read", nd->b->errstr);
            return;
        }
    }
    while (nd->b != NULL) {
        void *reply = NULL;

        if (redisGetReplyFromReader(nd->b, &reply) != REDIS_OK) {
            batch_fail(cl, i, "protocol", nd->b->errstr);
            return;
        }
        if (reply == NULL) {
            break;
        }
        if (nd->pcount == 0) {
            freeReplyObject(reply); /* nothing expected: ignore */
            continue;
        }
        batch_reply(cl, i, reply, now);
    }
}

void cluster_bio(struct cluster *cl, int fd, unsigned events, int64_t now_ms)
{
    int i = fd >= 0 ? node_of_fd(cl, fd) : -1;

    if (i >= 0) {
        batch_drive(cl, i, events, now_ms);
    }
    for (int k = 0; k < cl->map.nnodes; k++) {
        struct node *nd = &cl->nodes[k];

        if (nd->b != NULL && nd->pcount > 0 && now_ms >= pend_at(nd, 0)->deadline) {
            char detail[64];

            snprintf(detail, sizeof(detail), "no answer within %d ms", cl->cfg->redis_timeout_ms);
            batch_fail(cl, k, "batch", detail);
        }
    }
}

int cluster_bfds(const struct cluster *cl, struct cluster_fd *out, int max)
{
    int n = 0;

    for (int i = 0; i < cl->map.nnodes && n < max; i++) {
        const struct node *nd = &cl->nodes[i];

        if (nd->b != NULL) {
            out[n].fd = nd->b->fd;
            out[n].want = CLUSTER_READ | (nd->b_want_write ? CLUSTER_WRITE : 0);
            out[n].id = nd->b_id;
            n++;
        }
    }
    return n;
}

int64_t cluster_bdeadline(const struct cluster *cl)
{
    int64_t due = -1;

    for (int i = 0; i < cl->map.nnodes; i++) {
        const struct node *nd = &cl->nodes[i];

        if (nd->b != NULL && nd->pcount > 0) {
            int64_t d = nd->pend[nd->phead].deadline;

            if (due < 0 || d < due) {
                due = d;
            }
        }
    }
    return due;
}

int64_t cluster_retry_at(const struct cluster *cl, int slot)
{
    int i = slotmap_owner(&cl->map, slot == CMD_ANY_SLOT ? 0 : slot);

    /* A slot with no known node waits for the next map read. */
    return i < 0 ? cl->refresh_at : cl->nodes[i].retry_at;
}

void cluster_free(struct cluster *cl)
{
    if (cl == NULL) {
        return;
    }
    for (int i = 0; i < cl->map.nnodes; i++) {
        redisFree(cl->nodes[i].b);
        redisFree(cl->nodes[i].q);
        free(cl->nodes[i].pend);
    }
    free(cl);
}
