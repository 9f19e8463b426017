/* handler.h -- one HTTP request: canonical path, count, route, answer */

#ifndef REQSTATS_HANDLER_H
#define REQSTATS_HANDLER_H

#include <fcgiapp.h>

#include "config.h"
#include "hitbuf.h"
#include "counters.h"
#include "runs.h"

/* What a worker lends the handlers; all borrowed. */
struct statcache;
struct metrics;

struct handler_ctx {
    const struct config *cfg;
    struct counters *ctr;
    struct runs *runs;
    struct hitbuf *hb;
    struct statcache *sc; /* shared /stats/ answers; NULL: none */
    struct metrics *mx;   /* shared process figures for /metrics; NULL: none */
    struct cluster *cl;   /* the Redis router beneath ctr and runs */
};

/* Answer the request read by FCGX_Accept_r(): compute the canonical path
 * from REQUEST_URI, count it in ctx->hb (except a 414), route it and write
 * the whole response to req->out. Never fails: every outcome is a JSON
 * answer. The caller finishes the request (FCGX_Finish_r). */
void handler_serve(const struct handler_ctx *ctx, FCGX_Request *req);

#endif
