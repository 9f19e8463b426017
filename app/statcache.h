/* statcache.h -- /stats/ answers shared by all workers for a few ms */

#ifndef REQSTATS_STATCACHE_H
#define REQSTATS_STATCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "jsonbuf.h"

/* A few rendered /stats/ bodies, keyed by (offset, limit), in memory the
 * master maps before it forks, so every worker reads what any worker
 * fetched. An answer is served from it only while it is younger than the
 * TTL; STATS_CACHE_MS + FLUSH_INTERVAL_MS is bounded by the configuration,
 * so a hit is still visible in /stats/ within 100 ms of its response. */
struct statcache;

/* Map a cache of nslots slots of slot_bytes each; NULL on failure. Call in
 * the master, before the fork. */
struct statcache *statcache_new(int ttl_ms, int nslots, size_t slot_bytes);

/* Unmap (in the master, after its children are gone). NULL is ignored. */
void statcache_free(struct statcache *sc);

/* If a body for (offset, limit) fetched less than ttl ms before now_ms is
 * cached, append it to jb and return 1; else return 0. sc may be NULL. */
int statcache_get(struct statcache *sc, long long offset, long long limit, int64_t now_ms,
                  struct jsonbuf *jb);

/* Offer the body of (offset, limit) whose Redis read began at fetched_ms.
 * It is kept unless it is larger than a slot or the cache already holds a
 * read of the same page that began later: what the cache serves for a
 * page never goes back in time. sc may be NULL. */
void statcache_put(struct statcache *sc, long long offset, long long limit, int64_t fetched_ms,
                   const char *body, size_t len);

/* Serve no body whose Redis read began before floor_ms (monotonic ms),
 * from now on, in every process: for a reset, whose answer must not be
 * followed by a page read before it. sc may be NULL. */
void statcache_invalidate(struct statcache *sc, int64_t floor_ms);

#endif
