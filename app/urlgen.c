/* urlgen.c -- the random /api/ URLs of a test run (docs/API.md 4)
 *
 * All randomness comes from getrandom(2), read 256 bytes at a time: the
 * kernel's generator is fast enough for a load generator and needs no
 * seeding of our own. Uniform choices use rejection sampling (a byte is
 * redrawn when it falls in the incomplete last block), so depth 1..6,
 * segment 0..2 and alphabet picks carry no modulo bias.
 */

#include "urlgen.h"

#include <errno.h>
#include <string.h>
#include <sys/random.h>

static const char alphabet[] = "abcdefghijklmnopqrstuvwxyz0123456789";

static int next_byte(struct urlgen *g, unsigned char *out)
{
    if (g->used >= sizeof(g->rnd)) {
        size_t got = 0;

        while (got < sizeof(g->rnd)) {
            ssize_t n = getrandom(g->rnd + got, sizeof(g->rnd) - got, 0);
            if (n < 0) {
                if (errno == EINTR) {
                    continue;
                }
                return -1;
            }
            got += (size_t)n;
        }
        g->used = 0;
    }
    *out = g->rnd[g->used++];
    return 0;
}

/* Uniform integer in [0, n), n <= 256. */
static int uniform(struct urlgen *g, unsigned n, unsigned *out)
{
    unsigned limit = 256 - 256 % n;
    unsigned char b;

    do {
        if (next_byte(g, &b) != 0) {
            return -1;
        }
    } while (b >= limit);
    *out = b % n;
    return 0;
}

int urlgen_init(struct urlgen *g)
{
    memset(g, 0, sizeof(*g));
    g->used = sizeof(g->rnd); /* empty: the first draw fills it */
    for (int i = 0; i < URLGEN_POOL; i++) {
        int dup;

        do {
            for (int j = 0; j < URLGEN_SEG_LEN; j++) {
                unsigned k;

                if (uniform(g, sizeof(alphabet) - 1, &k) != 0) {
                    return -1;
                }
                g->pool[i][j] = alphabet[k];
            }
            g->pool[i][URLGEN_SEG_LEN] = '\0';
            dup = 0;
            for (int j = 0; j < i; j++) {
                dup |= strcmp(g->pool[i], g->pool[j]) == 0;
            }
        } while (dup);
    }
    return 0;
}

int urlgen_next(struct urlgen *g, char *buf, size_t size)
{
    unsigned depth, seg;
    size_t n = 5;

    if (size < URLGEN_URL_MAX) {
        errno = ENOBUFS;
        return -1;
    }
    if (uniform(g, URLGEN_MAX_DEPTH, &depth) != 0) {
        return -1;
    }
    memcpy(buf, "/api/", 5);
    for (unsigned i = 0; i <= depth; i++) {
        if (uniform(g, URLGEN_POOL, &seg) != 0) {
            return -1;
        }
        memcpy(buf + n, g->pool[seg], URLGEN_SEG_LEN);
        n += URLGEN_SEG_LEN;
        buf[n++] = '/';
    }
    buf[n] = '\0';
    return (int)n;
}
