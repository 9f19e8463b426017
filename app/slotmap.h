/* slotmap.h -- Redis Cluster key slots, redirects and the slot -> node map */

#ifndef REQSTATS_SLOTMAP_H
#define REQSTATS_SLOTMAP_H

#include <stddef.h>
#include <stdint.h>

#define SLOTMAP_SLOTS     16384
#define SLOTMAP_NODES_MAX 128
#define SLOTMAP_HOST_MAX  255

/* CRC16-CCITT (XMODEM) of buf, the checksum Redis Cluster keys hash with. */
unsigned slotmap_crc16(const char *buf, size_t len);

/* The hash slot of a key: CRC16 mod 16384 of the key, or of its hash tag,
 * the bytes between the first '{' and the first '}' after it when there
 * is at least one byte between them. */
int slotmap_keyslot(const char *key, size_t len);

struct slotmap_node {
    char host[SLOTMAP_HOST_MAX + 1];
    int port;
};

/* Which node serves each slot. Nodes are only ever added, so a node's
 * index stays valid for the life of the map (the router keeps its
 * connections by index). */
struct slotmap {
    int nnodes;
    struct slotmap_node nodes[SLOTMAP_NODES_MAX];
    int16_t owner[SLOTMAP_SLOTS]; /* node index, -1 while unknown */
};

/* An empty map: no node, every slot unknown. */
void slotmap_init(struct slotmap *m);

/* The index of node host:port, added if new. Returns -1 when the host is
 * empty or too long, the port out of range, or the table is full. */
int slotmap_node(struct slotmap *m, const char *host, int port);

/* Slots first..last (inclusive) are served by node. Returns 0, or -1 when
 * the range or the node index is invalid (nothing changes then). */
int slotmap_assign(struct slotmap *m, int first, int last, int node);

/* Forget every slot's owner (before a full snapshot is applied). */
void slotmap_clear(struct slotmap *m);

/* Node index serving slot, or -1 when unknown or slot out of range. */
int slotmap_owner(const struct slotmap *m, int slot);

/* Number of distinct nodes that own at least one slot (the masters). */
int slotmap_masters(const struct slotmap *m);

/* What an error reply from a cluster node asks the client to do. */
enum slotmap_reply {
    SLOTMAP_ERROR, /* any other error: a real failure of the command */
    SLOTMAP_MOVED, /* the slot lives elsewhere now: update the map, resend */
    SLOTMAP_ASK,   /* migrating: ASKING + the command, once, on the named node */
    SLOTMAP_RETRY  /* TRYAGAIN, CLUSTERDOWN, LOADING, MASTERDOWN: back off, retry */
};

struct slotmap_redirect {
    int slot;
    char host[SLOTMAP_HOST_MAX + 1]; /* empty: the node that answered */
    int port;
};

/* Classify the error message msg (len bytes, without the leading '-', as
 * hiredis gives it). For MOVED and ASK, fill r; a redirect that does not
 * parse ("MOVED x", a port out of range) is SLOTMAP_ERROR. */
enum slotmap_reply slotmap_classify(const char *msg, size_t len, struct slotmap_redirect *r);

#endif
