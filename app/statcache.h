/* statcache.h -- /stats/ answers shared by all workers for a few ms */

#ifndef REQSTATS_STATCACHE_H
#define REQSTATS_STATCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "jsonbuf.h"

/* A few rendered /stats/ bodies, keyed by (offset, limit), in memory the
 * master maps before it forks, so every worker reads what any worker
 * fetched. An answer is served from it only while the Redis read behind
 * it began less than the TTL ago; STATS_CACHE_MS + FLUSH_INTERVAL_MS is bounded by the
 * configuration, so a hit is still visible in /stats/ within 100 ms of its response. */
struct statcache;

/* Map a cache of nslots slots of slot_bytes each; NULL with errno set on
 * failure. Call in the master, before the fork. */
struct statcache *statcache_new(int ttl_ms, int nslots, size_t slot_bytes);

/* Unmap (in the master, after its children are gone). NULL is ignored. */
void statcache_free(struct statcache *sc);

/* If a body for (offset, limit) fetched less than ttl ms before now_ms is
 * cached, append it to jb and return 1; else return 0. sc may be NULL. */
int statcache_get(struct statcache *sc, long long offset, long long limit, int64_t now_ms,
                  struct jsonbuf *jb);

/* Offer the body in jb of (offset, limit), read from Redis at version
 * (total_requests + dropped_hits of that read, docs/API.md section 3;
 * both only grow between resets) by a read that began at fetched_ms.
 * Returns 1 when the cache holds a newer page of (offset, limit) (a
 * higher version, read after the last reset): jb then holds that body
 * instead of the older one, to be served in its place. Else returns 0,
 * jb unchanged, and the body is kept unless it is larger than a slot, was
 * read before the floor (statcache_invalidate), or is older than a page
 * the cache already held since the floor: what the cache serves never
 * goes back. A failed allocation while copying marks jb failed
 * (jsonbuf.h). sc may be NULL (returns 0). */
int statcache_put(struct statcache *sc, long long offset, long long limit, int64_t fetched_ms,
                  long long version, struct jsonbuf *jb);

/* Serve no body whose Redis read began before floor_ms (monotonic ms),
 * from now on, in every process: for a reset, whose answer must not be
 * followed by a page read before it. sc may be NULL. */
void statcache_invalidate(struct statcache *sc, int64_t floor_ms);

#endif
