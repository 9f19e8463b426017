/* statcache.c -- /stats/ answers shared by all workers for a few ms
 *
 * Why: the report's cost is a Redis round trip, and Redis is one thread
 * that also takes every worker's counting batches. Dashboards, retries and
 * floods asking for the same page at once are answered from one read per
 * page per STATS_CACHE_MS, however many workers and requests there are.
 * Requests are still counted (the cache is behind the counting, unlike an
 * HTTP cache in nginx, which would also answer in whole seconds).
 *
 * The mapping is shared (MAP_SHARED | MAP_ANONYMOUS, made before the
 * fork), guarded by one process-shared robust mutex held only to copy a
 * body in or out. A worker killed while holding it leaves the slots maybe
 * half written: the next process to lock gets EOWNERDEAD and empties the
 * cache before it goes on. A holder that stops without dying (SIGSTOP,
 * a debugger) cannot stall the others: they wait at most LOCK_WAIT_MS for
 * the lock and then read Redis as if the page were not cached. The mutex
 * is the first member of struct statcache (test_statcache.c locks it
 * through the cache pointer). Layout: the header, nslots slot records,
 * then nslots bodies of slot_bytes each.
 *
 * Order. Pages are ordered by the data they show, not by when their reads
 * began: a page's version is total_requests + dropped_hits of its read.
 * Both only grow between resets, and one Redis state of the counts is
 * reached after another exactly when its version is higher (equal
 * versions: the same counts, since flush and page read are each atomic).
 * Read start times do not give that order: a worker can stamp its read
 * first and reach Redis last. So a slot takes a page whose version is at
 * least the one it holds, and a worker whose fresh read is older than the
 * slot's page answers with the slot's body instead (statcache_put returns
 * it). The cache also remembers the newest version it took since the
 * floor, over all pages, since the version is the whole state's: a late
 * read older than that is not kept even when its slot was evicted
 * meanwhile, so a client that saw the newer page cannot be served an
 * older one from here.
 *
 * Reset. Versions restart from 0 after DELETE /stats/; a page read before
 * the floor (statcache_invalidate) is never served, never kept, and its
 * version is never compared with a later one: a slot or newest version
 * stamped before the floor counts as empty. A read that began before the
 * floor is not kept, since its version may belong to either side.
 *
 * Expiry. A slot's stamp is when the Redis read behind it began, or later
 * when its data is known to be newer than a read that began later (the
 * larger of the two stamps): its counts were current at some moment after
 * the stamp, so a hit flushed before the stamp is in it, and it is served
 * only within ttl_ms of the stamp. Once a slot expires the worker reads
 * Redis directly; that read cannot be lower than any page a client was
 * served before asking again: such a page came from a Redis read that
 * completed before it was answered, the client asked again after the
 * answer, so the new read reaches Redis later, and there the totals only
 * grow (a reset between them is the one exception, and the one that
 * should show). If a slower read began earlier and returns older data,
 * the slot (expired or not) still holds the newer version and that
 * worker answers with the newer body.
 *
 * Left open: when the lock cannot be had in LOCK_WAIT_MS (a stopped
 * holder) a worker answers its own read without comparing it with the
 * slot; a cache emptied after a dead holder has forgotten its versions;
 * and a reset's floor is raised after the reset, so a read racing the
 * reset itself is ordered by chance, as the reset's answer is not sent
 * yet.
 */

#include "statcache.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "clock.h"

#define LOCK_WAIT_MS 50

struct slot {
    long long offset, limit;
    int64_t fetched_ms; /* when the Redis read behind the body began, or later (Expiry) */
    long long version;  /* total_requests + dropped_hits of that read */
    size_t len;
    int used;
};

struct statcache {
    pthread_mutex_t lock;
    int ttl_ms;
    int nslots;
    size_t slot_bytes;
    size_t map_bytes;
    int64_t floor_ms;         /* no body read before this is served (statcache_invalidate) */
    int64_t newest_ms;        /* stamp of newest_version; below the floor: none */
    long long newest_version; /* the highest version taken since the floor */
    struct slot slots[];
};

static char *body_of(struct statcache *sc, int i)
{
    return (char *)&sc->slots[sc->nslots] + (size_t)i * sc->slot_bytes;
}

struct statcache *statcache_new(int ttl_ms, int nslots, size_t slot_bytes)
{
    size_t bytes = sizeof(struct statcache) + (size_t)nslots * (sizeof(struct slot) + slot_bytes);
    pthread_mutexattr_t attr;
    struct statcache *sc;
    int rc;

    if (ttl_ms <= 0 || nslots <= 0 || slot_bytes == 0) {
        errno = EINVAL;
        return NULL;
    }
    sc = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (sc == MAP_FAILED) {
        return NULL;
    }
    /* The mapping starts zeroed: every slot unused. */
    sc->ttl_ms = ttl_ms;
    sc->nslots = nslots;
    sc->slot_bytes = slot_bytes;
    sc->map_bytes = bytes;
    /* The pthread calls return their error instead of setting errno. */
    rc = pthread_mutexattr_init(&attr);
    if (rc == 0) {
        rc = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
        if (rc == 0) {
            rc = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
        }
        if (rc == 0) {
            rc = pthread_mutex_init(&sc->lock, &attr);
        }
        pthread_mutexattr_destroy(&attr);
    }
    if (rc != 0) {
        munmap(sc, bytes);
        errno = rc;
        return NULL;
    }
    return sc;
}

void statcache_free(struct statcache *sc)
{
    if (sc != NULL) {
        pthread_mutex_destroy(&sc->lock);
        munmap(sc, sc->map_bytes);
    }
}

static int cache_lock(struct statcache *sc)
{
    int64_t until_ms = clock_mono_ms() + LOCK_WAIT_MS;
    struct timespec until = {.tv_sec = until_ms / 1000, .tv_nsec = (until_ms % 1000) * 1000000L};
    int rc = pthread_mutex_clocklock(&sc->lock, CLOCK_MONOTONIC, &until);

    if (rc == EOWNERDEAD) {
        /* Its holder died, maybe in the middle of a copy. */
        for (int i = 0; i < sc->nslots; i++) {
            sc->slots[i].used = 0;
        }
        sc->newest_ms = -1; /* below any floor: no newest version */
        pthread_mutex_consistent(&sc->lock);
        return 0;
    }
    return rc == 0 ? 0 : -1; /* ETIMEDOUT: go without the cache */
}

static int find(const struct statcache *sc, long long offset, long long limit)
{
    for (int i = 0; i < sc->nslots; i++) {
        const struct slot *s = &sc->slots[i];
        if (s->used && s->offset == offset && s->limit == limit) {
            return i;
        }
    }
    return -1;
}

int statcache_get(struct statcache *sc, long long offset, long long limit, int64_t now_ms,
                  struct jsonbuf *jb)
{
    int i, hit = 0;

    if (sc == NULL || cache_lock(sc) != 0) {
        return 0;
    }
    i = find(sc, offset, limit);
    if (i >= 0 && now_ms - sc->slots[i].fetched_ms < sc->ttl_ms &&
        sc->slots[i].fetched_ms >= __atomic_load_n(&sc->floor_ms, __ATOMIC_ACQUIRE)) {
        jsonbuf_raw(jb, body_of(sc, i), sc->slots[i].len);
        hit = 1;
    }
    pthread_mutex_unlock(&sc->lock);
    return hit;
}

int statcache_put(struct statcache *sc, long long offset, long long limit, int64_t fetched_ms,
                  long long version, struct jsonbuf *jb)
{
    int64_t floor_ms;
    struct slot *s;
    int i, valid;

    if (sc == NULL || cache_lock(sc) != 0) {
        return 0;
    }
    floor_ms = __atomic_load_n(&sc->floor_ms, __ATOMIC_ACQUIRE);
    i = find(sc, offset, limit);
    valid = i >= 0 && sc->slots[i].fetched_ms >= floor_ms;
    if (valid && sc->slots[i].version > version) {
        /* A newer page of the same key: answer with it. */
        jb->len = 0;
        jsonbuf_raw(jb, body_of(sc, i), sc->slots[i].len);
        pthread_mutex_unlock(&sc->lock);
        return 1;
    }
    if (jb->len > sc->slot_bytes || fetched_ms < floor_ms ||
        (sc->newest_ms >= floor_ms && version < sc->newest_version)) {
        /* Too large, maybe from before the reset, or older than a page
         * the cache already took (its slot since evicted). */
        pthread_mutex_unlock(&sc->lock);
        return 0;
    }
    if (valid && sc->slots[i].fetched_ms > fetched_ms) {
        /* Not older than that page, so read after its read began. */
        fetched_ms = sc->slots[i].fetched_ms;
    }
    if (i < 0) {
        /* A free slot, else the one read longest ago. */
        i = 0;
        for (int j = 0; j < sc->nslots; j++) {
            if (!sc->slots[j].used) {
                i = j;
                break;
            }
            if (sc->slots[j].fetched_ms < sc->slots[i].fetched_ms) {
                i = j;
            }
        }
    }
    s = &sc->slots[i];
    memcpy(body_of(sc, i), jb->data, jb->len);
    s->offset = offset;
    s->limit = limit;
    s->fetched_ms = fetched_ms;
    s->version = version;
    s->len = jb->len;
    s->used = 1;
    if (sc->newest_ms < floor_ms || version >= sc->newest_version) {
        sc->newest_version = version;
        sc->newest_ms = fetched_ms;
    }
    pthread_mutex_unlock(&sc->lock);
    return 0;
}

/* After a reset (DELETE /stats/, docs/API.md section 11) no page read
 * before it may be served: raising the floor is enough, since a get
 * compares every slot's read time with it. No lock is taken, so a stopped
 * lock holder cannot delay a reset's answer; the floor only grows. */
void statcache_invalidate(struct statcache *sc, int64_t floor_ms)
{
    int64_t cur;

    if (sc == NULL) {
        return;
    }
    cur = __atomic_load_n(&sc->floor_ms, __ATOMIC_ACQUIRE);
    while (cur < floor_ms && !__atomic_compare_exchange_n(&sc->floor_ms, &cur, floor_ms, 0,
                                                          __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
    }
}
