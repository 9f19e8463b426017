/* urlgen.h -- the random /api/ URLs of a test run (docs/API.md 4) */

#ifndef REQSTATS_URLGEN_H
#define REQSTATS_URLGEN_H

#include <stddef.h>

#define URLGEN_POOL      3 /* distinct strings per run */
#define URLGEN_SEG_LEN   6 /* bytes per string, from [a-z0-9] */
#define URLGEN_MAX_DEPTH 6 /* segments per URL: 1..6 */
/* "/api/" + depth * (segment + "/") + NUL */
#define URLGEN_URL_MAX (5 + URLGEN_MAX_DEPTH * (URLGEN_SEG_LEN + 1) + 1)

struct urlgen {
    char pool[URLGEN_POOL][URLGEN_SEG_LEN + 1];
    unsigned char rnd[256]; /* bytes from getrandom(), consumed in order */
    size_t used;
};

/* Start a run: draw URLGEN_POOL distinct strings from getrandom(2).
 * Returns 0, or -1 with errno set when the entropy source fails. */
int urlgen_init(struct urlgen *g);

/* Write the next URL path, "/api/s1/.../sk/" with k uniform in 1..6 and
 * each segment uniform over the pool, into buf (size >= URLGEN_URL_MAX).
 * Returns its length, or -1 with errno set when getrandom fails. */
int urlgen_next(struct urlgen *g, char *buf, size_t size);

#endif
