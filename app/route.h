/* route.h -- which endpoint a canonical path names (docs/API.md 2-5, 8, 10, 11) */

#ifndef REQSTATS_ROUTE_H
#define REQSTATS_ROUTE_H

#include <stddef.h>

enum route_id {
    ROUTE_NOT_FOUND,
    ROUTE_API,        /* /api/ and everything below it */
    ROUTE_STATS,      /* /stats/ */
    ROUTE_SLASH,      /* an endpoint named without its trailing slash: 308 */
    ROUTE_TEST_START, /* /test/{n}/, arg = the n segment (unvalidated) */
    ROUTE_RUN_LIST,   /* /test/runs/ */
    ROUTE_RUN,        /* /test/runs/{id}/, arg = the id segment (unvalidated) */
    ROUTE_HISTORY,    /* /stats/history/ (docs/API.md section 10) */
    ROUTE_METRICS     /* /metrics, without a trailing slash (section 8) */
};

struct route {
    enum route_id id;
    const char *arg; /* borrowed from the path passed to route_match() */
    size_t arglen;
};

/* Classify a canonical path (as produced by path_canon()). Pure. */
void route_match(const char *path, size_t len, struct route *r);

/* The value of the Allow header for a route, or NULL for ROUTE_NOT_FOUND and
 * ROUTE_SLASH, which answer every method. */
const char *route_allow(enum route_id id);

/* 1 if `method` may be used on the route, else 0. HEAD is allowed wherever
 * GET is. */
int route_method_ok(enum route_id id, const char *method);

#endif
