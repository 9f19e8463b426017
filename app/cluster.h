/* cluster.h -- the Redis router: connections, backoff, slot map, routing */

#ifndef REQSTATS_CLUSTER_H
#define REQSTATS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "cmd.h"
#include "config.h"

struct redisReply; /* hiredis: only store modules include this header */
struct cluster;

/* A router for one process, standalone (REDIS_HOST:REDIS_PORT owns every
 * slot) or cluster (REDIS_CLUSTER seeds; the map is read on first use).
 * Nothing connects yet. Returns NULL when out of memory. cfg is borrowed
 * and must outlive the router. Caller frees with cluster_free(). */
struct cluster *cluster_new(const struct config *cfg);

/* Close every connection and free the router. Accepts NULL. */
void cluster_free(struct cluster *cl);

/* 1 in cluster mode, 0 standalone. */
int cluster_mode(const struct cluster *cl);

/* ---- blocking commands (queries, test runs, the layout check) ------- */

/* Run cmds[0..n) on the nodes serving their slots: pipelined per node,
 * every node written before any is read, so one round costs one round
 * trip whatever the number of nodes. replies[i] receives command i's
 * reply (caller frees each with freeReplyObject). MOVED updates the map
 * and resends; ASK sends ASKING plus the command, once, to the named node
 * (at most 5 redirects). Returns 0 when every command has a final reply
 * (which may be an error reply: the caller checks), -1 when a node is in
 * backoff or failed, the cluster cannot serve (TRYAGAIN, CLUSTERDOWN,
 * LOADING) or a command was malformed; replies are then all NULL. With
 * retry, a failure on a reused connection that the server may simply have
 * closed (EOF, reset) is retried once on a fresh one: pass 0 for commands
 * that must not run twice. */
int cluster_run(struct cluster *cl, struct cmd *cmds, int n, struct redisReply **replies,
                int retry);

/* Read the slot map now (cluster mode; a no-op standalone). Returns 0,
 * or -1 when no node answered. */
int cluster_refresh(struct cluster *cl);

/* PING every master. Returns 0 when all answered. */
int cluster_ping(struct cluster *cl);

/* PING each node the router knows (the seeds and every master it has
 * read in a slot map, failed ones included), one at a time: a node down
 * or backing off counts as not answering without being waited for, and
 * does not hide the others. Fills idx[] with up to max node indexes (for
 * cluster_node_name()) and up[] with 1 for each that answered. Returns
 * how many it filled. */
int cluster_ping_each(struct cluster *cl, int *idx, int *up, int max);

/* "host:port" of the node serving slot, or "?" when unknown. Borrowed,
 * valid until the map changes. */
const char *cluster_slot_node(const struct cluster *cl, int slot);

/* The node index serving slot (stable for the router's life), or -1. */
int cluster_slot_owner(const struct cluster *cl, int slot);

/* Masters as of the last map read: up to max node indexes into idx[],
 * with their slot counts and replica counts. Returns how many. */
int cluster_masters(const struct cluster *cl, int *idx, int *slots, int *replicas, int max);

/* "host:port" of node index i. Borrowed, valid for the router's life. */
const char *cluster_node_name(const struct cluster *cl, int i);

/* ---- the non-blocking batch channel (workers) ------------------------- */

/* Readiness flags, the caller's poll mapped to these. */
#define CLUSTER_READ  1u
#define CLUSTER_WRITE 2u

struct cluster_fd {
    int fd;
    unsigned want;    /* CLUSTER_READ | CLUSTER_WRITE */
    unsigned long id; /* of the connection: a new one may reuse an fd number */
};

/* Called for each batch command that finished: reply is its final answer
 * (caller frees), after any redirect; NULL when it failed (connection
 * lost or timed out, TRYAGAIN, CLUSTERDOWN, LOADING, too many redirects):
 * the caller retries it after cluster_retry_at(). */
typedef void cluster_done_fn(void *arg, uint64_t cookie, struct redisReply *reply);

/* Send c on the batch connection of the node serving c->slot, connecting
 * it if needed. c is borrowed until its completion is reported (it may be
 * resent on a redirect). Returns 0 when under way, -1 when that node is
 * in backoff or the send failed (nothing is pending then). */
int cluster_bsend(struct cluster *cl, struct cmd *c, uint64_t cookie, int64_t now_ms,
                  cluster_done_fn *done, void *arg);

/* Drive the batch connection with descriptor fd (fd -1: none, only check
 * deadlines). events: CLUSTER_READ / CLUSTER_WRITE as reported ready.
 * Completions are reported through the done function given to
 * cluster_bsend. */
void cluster_bio(struct cluster *cl, int fd, unsigned events, int64_t now_ms);

/* The batch connections and the events each waits for: up to max entries
 * into out. Returns how many. The caller keeps its poll set in step. */
int cluster_bfds(const struct cluster *cl, struct cluster_fd *out, int max);

/* Monotonic ms by which the oldest unanswered batch command must be
 * answered, or -1 when none is pending. */
int64_t cluster_bdeadline(const struct cluster *cl);

/* Monotonic ms before which the node serving slot is not tried again (0:
 * now). */
int64_t cluster_retry_at(const struct cluster *cl, int slot);

#endif
