/* test_statcache.c -- unit tests for statcache.c
 *
 * Hits only within the TTL and only for the same (offset, limit); a page
 * never goes back in time (an older read does not replace a newer one);
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

static void put(struct statcache *sc, long long off, long long lim, int64_t at, const char *body)
{
    statcache_put(sc, off, lim, at, body, strlen(body));
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

static void test_never_back_in_time(void **state)
{
    struct statcache *sc = statcache_new(TTL, 4, 1024);
    char out[64];

    (void)state;
    put(sc, 0, 10, 2000, "new");
    put(sc, 0, 10, 1990, "old"); /* a read that began earlier, finished later */
    assert_int_equal(get(sc, 0, 10, 2001, out, sizeof(out)), 1);
    assert_string_equal(out, "new");
    put(sc, 0, 10, 2000, "same ms"); /* not later: kept out */
    assert_int_equal(get(sc, 0, 10, 2001, out, sizeof(out)), 1);
    assert_string_equal(out, "new");
    put(sc, 0, 10, 2010, "newer");
    assert_int_equal(get(sc, 0, 10, 2011, out, sizeof(out)), 1);
    assert_string_equal(out, "newer");
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
        T(test_disabled),           T(test_ttl_and_key),     T(test_never_back_in_time),
        T(test_too_large_not_kept), T(test_replaces_oldest), T(test_large_body),
        T(test_shared_across_fork), T(test_holder_died),     T(test_holder_stuck),
        T(test_invalidate),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
