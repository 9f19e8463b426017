/* test_statcache.c -- unit tests for statcache.c
 *
 * Hits only within the TTL and only for the same (offset, limit); a page
 * never goes back (pages are ordered by their version, the counts they
 * show, not by when their reads began; an older read is answered with the
 * newer cached page; versions restart after a reset and the floor wins);
 * bodies larger than a slot are not kept; the slot read longest ago is the
 * one replaced; what one process puts another (forked) one gets; and a
 * process that dies holding the lock leaves an empty, working cache, not a
 * deadlock, and one that holds it without dying only makes the others miss
 * after a bounded wait. That last test locks the mutex directly: it is the first
 * member of struct statcache, so the cache pointer is a pointer to it.
 */

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "statcache.h"

#define TTL 25

/* statcache_get() into a fresh jsonbuf: 1 and the body in out, or 0. */
static int get(struct statcache *sc, long long off, long long lim, int64_t now, char *out,
               size_t size)
{
    char storage[64];
    struct jsonbuf jb;
    int hit;

    jsonbuf_init(&jb, storage, sizeof(storage));
    hit = statcache_get(sc, off, lim, now, &jb);
    assert_false(jsonbuf_failed(&jb));
    if (hit) {
        assert_true(jb.len < size);
        memcpy(out, jb.data, jb.len);
        out[jb.len] = '\0';
    } else {
        assert_int_equal(jb.len, 0);
    }
    jsonbuf_free(&jb);
    return hit;
}

/* statcache_put() of body, read at `at` with version v: returns what it
 * returns, and the body the worker would serve in out (if not NULL). */
static int offer(struct statcache *sc, long long off, long long lim, int64_t at, long long v,
                 const char *body, char *out, size_t size)
{
    char storage[16]; /* small: a larger body moves to the heap */
    struct jsonbuf jb;
    int newer;

    jsonbuf_init(&jb, storage, sizeof(storage));
    jsonbuf_raw(&jb, body, strlen(body));
    newer = statcache_put(sc, off, lim, at, v, &jb);
    assert_false(jsonbuf_failed(&jb));
    if (out != NULL) {
        assert_true(jb.len < size);
        memcpy(out, jb.data, jb.len);
        out[jb.len] = '\0';
    }
    jsonbuf_free(&jb);
    return newer;
}

/* A put of a page with the same version as any other (0): only the read
 * times matter. */
static void put(struct statcache *sc, long long off, long long lim, int64_t at, const char *body)
{
    (void)offer(sc, off, lim, at, 0, body, NULL, 0);
}

static void test_disabled(void **state)
{
    char out[64];

    (void)state;
    assert_null(statcache_new(0, 8, 1024));
    assert_null(statcache_new(TTL, 0, 1024));
    put(NULL, 0, 100, 1000, "x"); /* no-ops */
    assert_int_equal(get(NULL, 0, 100, 1000, out, sizeof(out)), 0);
    statcache_free(NULL);
}

static void test_ttl_and_key(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 1024);
    char out[64];

    (void)state;
    assert_non_null(sc);
    assert_int_equal(get(sc, 0, 100, 1000, out, sizeof(out)), 0);
    put(sc, 0, 100, 1000, "{\"a\":1}");
    assert_int_equal(get(sc, 0, 100, 1000, out, sizeof(out)), 1);
    assert_string_equal(out, "{\"a\":1}");
    assert_int_equal(get(sc, 0, 100, 1000 + TTL - 1, out, sizeof(out)), 1);
    assert_int_equal(get(sc, 0, 100, 1000 + TTL, out, sizeof(out)), 0);
    /* Another page is another key. */
    assert_int_equal(get(sc, 0, 99, 1001, out, sizeof(out)), 0);
    assert_int_equal(get(sc, 100, 100, 1001, out, sizeof(out)), 0);
    statcache_free(sc);
}

/* Pages are ordered by version, not by when their reads began: A stamps
 * its read first but reaches Redis after B, so A's page is the newer. */
static void test_never_back_in_time(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 1024);
    char out[64];

    (void)state;
    assert_non_null(sc);
    assert_int_equal(offer(sc, 0, 10, 1005, 50, "B v50", out, sizeof(out)), 0);
    assert_string_equal(out, "B v50");
    assert_int_equal(offer(sc, 0, 10, 1000, 60, "A v60", out, sizeof(out)), 0);
    assert_string_equal(out, "A v60");
    assert_int_equal(get(sc, 0, 10, 1010, out, sizeof(out)), 1);
    assert_string_equal(out, "A v60");
    /* A's data is newer than B's read, so it was current after 1005: it
     * keeps B's stamp for the TTL. */
    assert_int_equal(get(sc, 0, 10, 1005 + TTL - 1, out, sizeof(out)), 1);
    assert_string_equal(out, "A v60");
    /* A fresh read older than the cached page answers with the page. */
    assert_int_equal(offer(sc, 0, 10, 1012, 55, "C v55", out, sizeof(out)), 1);
    assert_string_equal(out, "A v60");
    assert_int_equal(get(sc, 0, 10, 1013, out, sizeof(out)), 1);
    assert_string_equal(out, "A v60");
    /* The same version replaces it. */
    assert_int_equal(offer(sc, 0, 10, 1011, 60, "D v60", out, sizeof(out)), 0);
    assert_string_equal(out, "D v60");
    assert_int_equal(get(sc, 0, 10, 1013, out, sizeof(out)), 1);
    assert_string_equal(out, "D v60");
    /* Expired, it is not served, but an older read still answers with it. */
    assert_int_equal(get(sc, 0, 10, 1100, out, sizeof(out)), 0);
    assert_int_equal(offer(sc, 0, 10, 1100, 40, "E v40", out, sizeof(out)), 1);
    assert_string_equal(out, "D v60");
    assert_int_equal(offer(sc, 0, 10, 1100, 70, "F v70", out, sizeof(out)), 0);
    assert_string_equal(out, "F v70");
    assert_int_equal(get(sc, 0, 10, 1101, out, sizeof(out)), 1);
    assert_string_equal(out, "F v70");
    statcache_free(sc);
}

/* The version is the whole state's: a late, older read of a page whose
 * slot was evicted meanwhile is answered but not kept. */
static void test_older_than_newest_not_kept(void **state)
{
    struct statcache *sc = statcache_new(TTL, 1, 64);
    char out[64];

    (void)state;
    assert_non_null(sc);
    assert_int_equal(offer(sc, 0, 10, 1000, 100, "p1 v100", out, sizeof(out)), 0);
    assert_int_equal(offer(sc, 0, 20, 1001, 100, "p2 v100", out, sizeof(out)), 0);
    assert_int_equal(get(sc, 0, 10, 1002, out, sizeof(out)), 0); /* evicted */
    assert_int_equal(offer(sc, 0, 10, 999, 90, "p1 v90", out, sizeof(out)), 0);
    assert_string_equal(out, "p1 v90");
    assert_int_equal(get(sc, 0, 10, 1002, out, sizeof(out)), 0);
    assert_int_equal(get(sc, 0, 20, 1002, out, sizeof(out)), 1);
    assert_string_equal(out, "p2 v100");
    statcache_free(sc);
}

/* After a reset versions start again from 0: the floor wins over them. */
static void test_reset_versions(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 64);
    char out[64];

    (void)state;
    assert_non_null(sc);
    assert_int_equal(offer(sc, 0, 10, 2000, 500, "before v500", out, sizeof(out)), 0);
    statcache_invalidate(sc, 2010);
    /* The page from before the reset is neither served nor preferred. */
    assert_int_equal(offer(sc, 0, 10, 2010, 3, "after v3", out, sizeof(out)), 0);
    assert_string_equal(out, "after v3");
    assert_int_equal(get(sc, 0, 10, 2011, out, sizeof(out)), 1);
    assert_string_equal(out, "after v3");
    /* A read begun before the floor: never kept; answered with the cached
     * page when that one is newer (it was read after the reset). */
    assert_int_equal(offer(sc, 0, 10, 2005, 600, "racing v600", out, sizeof(out)), 0);
    assert_string_equal(out, "racing v600");
    assert_int_equal(offer(sc, 0, 10, 2005, 2, "racing v2", out, sizeof(out)), 1);
    assert_string_equal(out, "after v3");
    assert_int_equal(get(sc, 0, 10, 2012, out, sizeof(out)), 1);
    assert_string_equal(out, "after v3");
    /* The newest version from before the floor does not block later pages. */
    assert_int_equal(offer(sc, 0, 20, 2012, 4, "other v4", out, sizeof(out)), 0);
    assert_int_equal(get(sc, 0, 20, 2013, out, sizeof(out)), 1);
    assert_string_equal(out, "other v4");
    statcache_free(sc);
}

static void test_too_large_not_kept(void **state)
{
    struct statcache *sc = statcache_new(TTL, 2, 8);
    char out[64];

    (void)state;
    put(sc, 0, 1, 1000, "12345678");
    assert_int_equal(get(sc, 0, 1, 1000, out, sizeof(out)), 1);
    assert_string_equal(out, "12345678");
    put(sc, 0, 2, 1000, "123456789");
    assert_int_equal(get(sc, 0, 2, 1000, out, sizeof(out)), 0);
    statcache_free(sc);
}

static void test_replaces_oldest(void **state)
{
    struct statcache *sc = statcache_new(TTL, 3, 64);
    char out[64];

    (void)state;
    put(sc, 0, 1, 1003, "one");
    put(sc, 0, 2, 1001, "two"); /* read longest ago */
    put(sc, 0, 3, 1002, "three");
    put(sc, 0, 4, 1004, "four");
    assert_int_equal(get(sc, 0, 2, 1005, out, sizeof(out)), 0);
    assert_int_equal(get(sc, 0, 1, 1005, out, sizeof(out)), 1);
    assert_string_equal(out, "one");
    assert_int_equal(get(sc, 0, 3, 1005, out, sizeof(out)), 1);
    assert_string_equal(out, "three");
    assert_int_equal(get(sc, 0, 4, 1005, out, sizeof(out)), 1);
    assert_string_equal(out, "four");
    statcache_free(sc);
}

/* A body bigger than the jsonbuf's storage: it moves to the heap. */
static void test_large_body(void **state)
{
    struct statcache *sc = statcache_new(TTL, 2, 1 << 16);
    char *body = malloc(40000), *out = malloc(40001);

    (void)state;
    assert_non_null(body);
    assert_non_null(out);
    for (size_t i = 0; i < 39999; i++) {
        body[i] = (char)('a' + i % 26);
    }
    body[39999] = '\0';
    put(sc, 5, 500, 1000, body);
    assert_int_equal(get(sc, 5, 500, 1010, out, 40001), 1);
    assert_string_equal(out, body);
    free(body);
    free(out);
    statcache_free(sc);
}

static void test_shared_across_fork(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 1024);
    char out[64];
    int status;
    pid_t pid;

    (void)state;
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        put(sc, 0, 100, 1000, "from the child");
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(get(sc, 0, 100, 1001, out, sizeof(out)), 1);
    assert_string_equal(out, "from the child");
    statcache_free(sc);
}

static void test_holder_died(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 1024);
    char out[64];
    int status;
    pid_t pid;

    (void)state;
    put(sc, 0, 100, 1000, "before");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Dies holding the lock, as a worker killed mid-copy would. */
        _exit(pthread_mutex_lock((pthread_mutex_t *)(void *)sc) == 0 ? 0 : 1);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    /* No deadlock; what it may have half written is gone. */
    assert_int_equal(get(sc, 0, 100, 1001, out, sizeof(out)), 0);
    put(sc, 0, 100, 1002, "after");
    assert_int_equal(get(sc, 0, 100, 1003, out, sizeof(out)), 1);
    assert_string_equal(out, "after");
    statcache_free(sc);
}

static void test_holder_stuck(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 1024);
    char out[64];
    int pipefd[2], status;
    int64_t t0, waited;
    pid_t pid;
    char c;

    (void)state;
    put(sc, 0, 100, 1000, "cached");
    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* Takes the lock and keeps it, as a stopped worker would. */
        int rc = pthread_mutex_lock((pthread_mutex_t *)(void *)sc);
        (void)!write(pipefd[1], rc == 0 ? "y" : "n", 1);
        pause();
        _exit(0);
    }
    assert_int_equal(read(pipefd[0], &c, 1), 1);
    assert_int_equal(c, 'y');
    t0 = clock_mono_ms();
    assert_int_equal(get(sc, 0, 100, 1001, out, sizeof(out)), 0); /* a miss, not a hang */
    put(sc, 0, 100, 1002, "skipped");
    waited = clock_mono_ms() - t0;
    assert_true(waited >= 2 * 45 && waited < 2000);
    /* Once it is gone, the cache works again (emptied: EOWNERDEAD). */
    assert_int_equal(kill(pid, SIGKILL), 0);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_int_equal(get(sc, 0, 100, 1003, out, sizeof(out)), 0);
    put(sc, 0, 100, 1004, "again");
    assert_int_equal(get(sc, 0, 100, 1005, out, sizeof(out)), 1);
    assert_string_equal(out, "again");
    close(pipefd[0]);
    close(pipefd[1]);
    statcache_free(sc);
}

#define T(f) cmocka_unit_test(f)

/* After statcache_invalidate(floor) no body read before floor is served
 * or kept, in this process or a child; later reads are cached again. */
static void test_invalidate(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 1024);
    char out[64];
    pid_t pid;
    int status;

    (void)state;
    assert_non_null(sc);
    put(sc, 0, 10, 1000, "before");
    put(sc, 5, 10, 1003, "before too");
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        statcache_invalidate(sc, 1005); /* in another process, as a worker does */
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_equal(get(sc, 0, 10, 1006, out, sizeof(out)), 0);
    assert_int_equal(get(sc, 5, 10, 1006, out, sizeof(out)), 0);
    put(sc, 0, 10, 1004, "read before, put after"); /* refused */
    assert_int_equal(get(sc, 0, 10, 1006, out, sizeof(out)), 0);
    put(sc, 0, 10, 1005, "after");
    assert_int_equal(get(sc, 0, 10, 1006, out, sizeof(out)), 1);
    assert_string_equal(out, "after");
    statcache_invalidate(sc, 900); /* the floor never goes down */
    put(sc, 5, 10, 1001, "old");
    assert_int_equal(get(sc, 5, 10, 1006, out, sizeof(out)), 0);
    statcache_invalidate(NULL, 1); /* no-op */
    statcache_free(sc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_disabled),
        T(test_ttl_and_key),
        T(test_never_back_in_time),
        T(test_too_large_not_kept),
        T(test_replaces_oldest),
        T(test_large_body),
        T(test_shared_across_fork),
        T(test_holder_died),
        T(test_holder_stuck),
        T(test_invalidate),
        T(test_older_than_newest_not_kept),
        T(test_reset_versions),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
