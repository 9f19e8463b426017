/* slotmap.c -- Redis Cluster key slots, redirects and the slot -> node map
 *
 * The pure half of the cluster client (cluster.c is the half that talks):
 * the key -> slot function, the reading of redirect errors, and the table
 * of which node serves each of the 16384 slots. Nothing here does I/O, so
 * all of it is unit-tested without a server (tests/unit/test_slotmap.c)
 * and checked against a real server's CLUSTER KEYSLOT by the integration
 * suite.
 *
 * The map changes in two ways, as in every cluster client: a full
 * snapshot (CLUSTER SHARDS) clears and reassigns every slot, and a MOVED
 * redirect reassigns one slot at once, so the next command for it goes to
 * the right node even before the next snapshot. Node entries are never
 * removed: the router keeps a connection per node index, and a node that
 * no longer serves slots simply stops being used. The table is bounded
 * (SLOTMAP_NODES_MAX); a cluster with more nodes than that fails to map
 * instead of overflowing it.
 *
 * Redirect text, as Redis writes it: "MOVED <slot> <host>:<port>" and
 * "ASK <slot> <host>:<port>". The host is written without brackets even
 * for IPv6, so the port is what follows the last ':'; an empty host means
 * "the node you asked" (a node that does not know its own address).
 */

#include "slotmap.h"

#include <string.h>

/* CRC16-CCITT, polynomial 0x1021, initial value 0 (the XMODEM variant). */
static const uint16_t crc16_table[256] = {
    0x0000, 0x1021, 0x2042, 0x3063, 0x4084, 0x50a5, 0x60c6, 0x70e7, 0x8108, 0x9129, 0xa14a, 0xb16b,
    0xc18c, 0xd1ad, 0xe1ce, 0xf1ef, 0x1231, 0x0210, 0x3273, 0x2252, 0x52b5, 0x4294, 0x72f7, 0x62d6,
    0x9339, 0x8318, 0xb37b, 0xa35a, 0xd3bd, 0xc39c, 0xf3ff, 0xe3de, 0x2462, 0x3443, 0x0420, 0x1401,
    0x64e6, 0x74c7, 0x44a4, 0x5485, 0xa56a, 0xb54b, 0x8528, 0x9509, 0xe5ee, 0xf5cf, 0xc5ac, 0xd58d,
    0x3653, 0x2672, 0x1611, 0x0630, 0x76d7, 0x66f6, 0x5695, 0x46b4, 0xb75b, 0xa77a, 0x9719, 0x8738,
    0xf7df, 0xe7fe, 0xd79d, 0xc7bc, 0x48c4, 0x58e5, 0x6886, 0x78a7, 0x0840, 0x1861, 0x2802, 0x3823,
    0xc9cc, 0xd9ed, 0xe98e, 0xf9af, 0x8948, 0x9969, 0xa90a, 0xb92b, 0x5af5, 0x4ad4, 0x7ab7, 0x6a96,
    0x1a71, 0x0a50, 0x3a33, 0x2a12, 0xdbfd, 0xcbdc, 0xfbbf, 0xeb9e, 0x9b79, 0x8b58, 0xbb3b, 0xab1a,
    0x6ca6, 0x7c87, 0x4ce4, 0x5cc5, 0x2c22, 0x3c03, 0x0c60, 0x1c41, 0xedae, 0xfd8f, 0xcdec, 0xddcd,
    0xad2a, 0xbd0b, 0x8d68, 0x9d49, 0x7e97, 0x6eb6, 0x5ed5, 0x4ef4, 0x3e13, 0x2e32, 0x1e51, 0x0e70,
    0xff9f, 0xefbe, 0xdfdd, 0xcffc, 0xbf1b, 0xaf3a, 0x9f59, 0x8f78, 0x9188, 0x81a9, 0xb1ca, 0xa1eb,
    0xd10c, 0xc12d, 0xf14e, 0xe16f, 0x1080, 0x00a1, 0x30c2, 0x20e3, 0x5004, 0x4025, 0x7046, 0x6067,
    0x83b9, 0x9398, 0xa3fb, 0xb3da, 0xc33d, 0xd31c, 0xe37f, 0xf35e, 0x02b1, 0x1290, 0x22f3, 0x32d2,
    0x4235, 0x5214, 0x6277, 0x7256, 0xb5ea, 0xa5cb, 0x95a8, 0x8589, 0xf56e, 0xe54f, 0xd52c, 0xc50d,
    0x34e2, 0x24c3, 0x14a0, 0x0481, 0x7466, 0x6447, 0x5424, 0x4405, 0xa7db, 0xb7fa, 0x8799, 0x97b8,
    0xe75f, 0xf77e, 0xc71d, 0xd73c, 0x26d3, 0x36f2, 0x0691, 0x16b0, 0x6657, 0x7676, 0x4615, 0x5634,
    0xd94c, 0xc96d, 0xf90e, 0xe92f, 0x99c8, 0x89e9, 0xb98a, 0xa9ab, 0x5844, 0x4865, 0x7806, 0x6827,
    0x18c0, 0x08e1, 0x3882, 0x28a3, 0xcb7d, 0xdb5c, 0xeb3f, 0xfb1e, 0x8bf9, 0x9bd8, 0xabbb, 0xbb9a,
    0x4a75, 0x5a54, 0x6a37, 0x7a16, 0x0af1, 0x1ad0, 0x2ab3, 0x3a92, 0xfd2e, 0xed0f, 0xdd6c, 0xcd4d,
    0xbdaa, 0xad8b, 0x9de8, 0x8dc9, 0x7c26, 0x6c07, 0x5c64, 0x4c45, 0x3ca2, 0x2c83, 0x1ce0, 0x0cc1,
    0xef1f, 0xff3e, 0xcf5d, 0xdf7c, 0xaf9b, 0xbfba, 0x8fd9, 0x9ff8, 0x6e17, 0x7e36, 0x4e55, 0x5e74,
    0x2e93, 0x3eb2, 0x0ed1, 0x1ef0,
};

unsigned slotmap_crc16(const char *buf, size_t len)
{
    uint16_t crc = 0;

    for (size_t i = 0; i < len; i++) {
        crc = (uint16_t)((crc << 8) ^ crc16_table[((crc >> 8) ^ (unsigned char)buf[i]) & 0xff]);
    }
    return crc;
}

int slotmap_keyslot(const char *key, size_t len)
{
    const char *open = memchr(key, '{', len);

    if (open != NULL) {
        size_t start = (size_t)(open - key) + 1;
        const char *close = memchr(open + 1, '}', len - start);

        if (close != NULL && close > open + 1) {
            return (int)(slotmap_crc16(open + 1, (size_t)(close - open - 1)) & 0x3fff);
        }
    }
    return (int)(slotmap_crc16(key, len) & 0x3fff);
}

void slotmap_init(struct slotmap *m)
{
    m->nnodes = 0;
    slotmap_clear(m);
}

void slotmap_clear(struct slotmap *m)
{
    for (int i = 0; i < SLOTMAP_SLOTS; i++) {
        m->owner[i] = -1;
    }
}

int slotmap_node(struct slotmap *m, const char *host, int port)
{
    size_t len = strlen(host);

    if (len == 0 || len > SLOTMAP_HOST_MAX || port < 1 || port > 65535) {
        return -1;
    }
    for (int i = 0; i < m->nnodes; i++) {
        if (m->nodes[i].port == port && strcmp(m->nodes[i].host, host) == 0) {
            return i;
        }
    }
    if (m->nnodes == SLOTMAP_NODES_MAX) {
        return -1;
    }
    memcpy(m->nodes[m->nnodes].host, host, len + 1);
    m->nodes[m->nnodes].port = port;
    return m->nnodes++;
}

int slotmap_assign(struct slotmap *m, int first, int last, int node)
{
    if (first < 0 || last >= SLOTMAP_SLOTS || first > last || node < 0 || node >= m->nnodes) {
        return -1;
    }
    for (int s = first; s <= last; s++) {
        m->owner[s] = (int16_t)node;
    }
    return 0;
}

int slotmap_owner(const struct slotmap *m, int slot)
{
    if (slot < 0 || slot >= SLOTMAP_SLOTS) {
        return -1;
    }
    return m->owner[slot];
}

int slotmap_masters(const struct slotmap *m)
{
    unsigned char seen[SLOTMAP_NODES_MAX] = {0};
    int n = 0;

    for (int s = 0; s < SLOTMAP_SLOTS; s++) {
        int o = m->owner[s];

        if (o >= 0 && !seen[o]) {
            seen[o] = 1;
            n++;
        }
    }
    return n;
}

/* msg starts with word (case-sensitive, as Redis writes it) followed by
 * the end or a space. */
static int starts_with(const char *msg, size_t len, const char *word)
{
    size_t n = strlen(word);

    return len >= n && memcmp(msg, word, n) == 0 && (len == n || msg[n] == ' ');
}

/* Parse a decimal in [min, max] from s[0..len). */
static int parse_num(const char *s, size_t len, long min, long max, long *out)
{
    long v = 0;

    if (len == 0 || len > 9) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max) {
        return -1;
    }
    *out = v;
    return 0;
}

/* "<slot> <host>:<port>" after the word. */
static int parse_redirect(const char *s, size_t len, struct slotmap_redirect *r)
{
    const char *sp = memchr(s, ' ', len);
    const char *addr, *colon = NULL;
    size_t alen, hlen;
    long slot, port;

    if (sp == NULL || parse_num(s, (size_t)(sp - s), 0, SLOTMAP_SLOTS - 1, &slot) != 0) {
        return -1;
    }
    addr = sp + 1;
    alen = len - (size_t)(addr - s);
    for (size_t i = 0; i < alen; i++) {
        if (addr[i] == ' ') {
            return -1;
        }
        if (addr[i] == ':') {
            colon = addr + i;
        }
    }
    if (colon == NULL) {
        return -1;
    }
    hlen = (size_t)(colon - addr);
    if (hlen > SLOTMAP_HOST_MAX || parse_num(colon + 1, alen - hlen - 1, 1, 65535, &port) != 0) {
        return -1;
    }
    r->slot = (int)slot;
    memcpy(r->host, addr, hlen);
    r->host[hlen] = '\0';
    r->port = (int)port;
    return 0;
}

enum slotmap_reply slotmap_classify(const char *msg, size_t len, struct slotmap_redirect *r)
{
    if (starts_with(msg, len, "MOVED")) {
        return len > 6 && parse_redirect(msg + 6, len - 6, r) == 0 ? SLOTMAP_MOVED : SLOTMAP_ERROR;
    }
    if (starts_with(msg, len, "ASK")) {
        return len > 4 && parse_redirect(msg + 4, len - 4, r) == 0 ? SLOTMAP_ASK : SLOTMAP_ERROR;
    }
    if (starts_with(msg, len, "TRYAGAIN") || starts_with(msg, len, "CLUSTERDOWN") ||
        starts_with(msg, len, "LOADING") || starts_with(msg, len, "MASTERDOWN")) {
        return SLOTMAP_RETRY;
    }
    return SLOTMAP_ERROR;
}
