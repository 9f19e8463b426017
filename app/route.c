/* route.c -- which endpoint a canonical path names (docs/API.md 2-5, 8, 10, 11)
 *
 * Routing works on the canonical path only, so "/stats/", "/stats//" and
 * "/stats/./" are the same endpoint, exactly as they are the same counter.
 * An endpoint written without its trailing slash ("/stats", "/test/5",
 * "/api") is answered with a 308 to the slash form, which keeps the method
 * and the body; everything else outside the table is 404. /metrics is the
 * one endpoint without a trailing slash, as Prometheus scrapes it.
 */

#include "route.h"

#include <string.h>

#include "path.h"

static int starts(const char *p, size_t len, const char *prefix)
{
    size_t n = strlen(prefix);
    return len >= n && memcmp(p, prefix, n) == 0;
}

/* Match a path that ends with '/'. */
static void match_slashed(const char *p, size_t len, struct route *r)
{
    const char *seg, *slash;

    if (starts(p, len, "/api/")) {
        r->id = ROUTE_API;
    } else if (len == 7 && memcmp(p, "/stats/", 7) == 0) {
        r->id = ROUTE_STATS;
    } else if (len == 15 && memcmp(p, "/stats/history/", 15) == 0) {
        r->id = ROUTE_HISTORY;
    } else if (len == 11 && memcmp(p, "/test/runs/", 11) == 0) {
        r->id = ROUTE_RUN_LIST;
    } else if (starts(p, len, "/test/runs/")) {
        seg = p + 11;
        slash = memchr(seg, '/', len - 11);
        if (slash == p + len - 1) {
            r->id = ROUTE_RUN;
            r->arg = seg;
            r->arglen = (size_t)(slash - seg);
        }
    } else if (starts(p, len, "/test/") && len > 7) {
        seg = p + 6;
        slash = memchr(seg, '/', len - 6);
        if (slash == p + len - 1) {
            r->id = ROUTE_TEST_START;
            r->arg = seg;
            r->arglen = (size_t)(slash - seg);
        }
    }
}

void route_match(const char *path, size_t len, struct route *r)
{
    char buf[PATH_CANON_MAX + 2];

    r->id = ROUTE_NOT_FOUND;
    r->arg = NULL;
    r->arglen = 0;
    if (len == 0 || path[0] != '/') {
        return;
    }
    if (path[len - 1] == '/') {
        match_slashed(path, len, r);
        return;
    }
    if (len == 8 && memcmp(path, "/metrics", 8) == 0) {
        r->id = ROUTE_METRICS;
        return;
    }
    /* No trailing slash: is it an endpoint once the slash is added? (API
     * paths are endpoints with or without it.) */
    if (starts(path, len, "/api/")) {
        r->id = ROUTE_API;
        return;
    }
    if (len + 1 < sizeof(buf)) {
        struct route slashed = {ROUTE_NOT_FOUND, NULL, 0};

        memcpy(buf, path, len);
        buf[len] = '/';
        match_slashed(buf, len + 1, &slashed);
        if (slashed.id != ROUTE_NOT_FOUND) {
            r->id = ROUTE_SLASH;
        }
    }
}

const char *route_allow(enum route_id id)
{
    switch (id) {
    case ROUTE_STATS:
    case ROUTE_RUN:
        return "GET, HEAD, DELETE";
    case ROUTE_API:
    case ROUTE_RUN_LIST:
    case ROUTE_HISTORY:
    case ROUTE_METRICS:
        return "GET, HEAD";
    case ROUTE_TEST_START:
        return "POST";
    case ROUTE_NOT_FOUND:
    case ROUTE_SLASH:
        break;
    }
    return NULL;
}

int route_method_ok(enum route_id id, const char *method)
{
    switch (id) {
    case ROUTE_STATS:
    case ROUTE_RUN:
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
               strcmp(method, "DELETE") == 0;
    case ROUTE_API:
    case ROUTE_RUN_LIST:
    case ROUTE_HISTORY:
    case ROUTE_METRICS:
        return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    case ROUTE_TEST_START:
        return strcmp(method, "POST") == 0;
    case ROUTE_NOT_FOUND:
    case ROUTE_SLASH:
        break;
    }
    return 1;
}
