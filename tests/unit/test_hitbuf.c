/* test_hitbuf.c -- unit tests for hitbuf.c
 *
 * Aggregation, counters, oldest-first batches of at most max_paths, batch
 * immutability while open (the idempotent-retry promise), sequence numbers,
 * the byte bound with its dropped tally, and what close releases. The byte
 * cost of a path is measured, not assumed: hitbuf.h only promises "length
 * plus a fixed overhead per entry".
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hitbuf.h"

#define BIG (1u << 20)

/* The fixed per-entry overhead, measured on an empty buffer. */
static size_t overhead(void)
{
    struct hitbuf *hb = hitbuf_new(BIG);
    size_t o;

    assert_non_null(hb);
    assert_int_equal(hitbuf_bytes(hb), 0);
    assert_int_equal(hitbuf_add(hb, "/api/x/", 1), 0);
    assert_true(hitbuf_bytes(hb) > strlen("/api/x/"));
    o = hitbuf_bytes(hb) - strlen("/api/x/");
    /* Same overhead for a path of another length. */
    assert_int_equal(hitbuf_add(hb, "/api/longer/path/", 1), 0);
    assert_int_equal(hitbuf_bytes(hb), 2 * o + strlen("/api/x/") + strlen("/api/longer/path/"));
    hitbuf_free(hb);
    return o;
}

/* Find path in a batch; fails the test when absent. */
static const struct hitbatch_entry *entry(const struct hitbatch *b, const char *path)
{
    for (size_t i = 0; i < b->n; i++) {
        if (strcmp(b->entries[i].path, path) == 0) {
            assert_int_equal(b->entries[i].len, strlen(path));
            return &b->entries[i];
        }
    }
    fail_msg("%s not in batch %llu", path, (unsigned long long)b->seq);
    return NULL;
}

static void test_empty(void **state)
{
    struct hitbuf *hb = hitbuf_new(BIG);

    (void)state;
    assert_non_null(hb);
    assert_int_equal(hitbuf_waiting_paths(hb), 0);
    assert_int_equal(hitbuf_waiting_hits(hb), 0);
    assert_int_equal(hitbuf_unwritten_hits(hb), 0);
    assert_int_equal(hitbuf_dropped_total(hb), 0);
    assert_null(hitbuf_batch(hb));
    assert_null(hitbuf_batch_open(hb, 10)); /* nothing waiting */
    assert_null(hitbuf_batch(hb));
    hitbuf_batch_close(hb); /* no-op */
    assert_int_equal(hitbuf_bytes(hb), 0);
    hitbuf_free(hb);
    hitbuf_free(NULL);
}

static void test_aggregation(void **state)
{
    struct hitbuf *hb = hitbuf_new(BIG);
    const struct hitbatch *b;

    (void)state;
    assert_int_equal(hitbuf_add(hb, "/api/a/", 1), 0);
    assert_int_equal(hitbuf_add(hb, "/api/b/", 2), 0);
    assert_int_equal(hitbuf_add(hb, "/api/a/", 1), 0);
    assert_int_equal(hitbuf_add(hb, "/api/a/", 5), 0);
    assert_int_equal(hitbuf_add(hb, "/api/a", 1), 0); /* another path */
    assert_int_equal(hitbuf_waiting_paths(hb), 3);
    assert_int_equal(hitbuf_waiting_hits(hb), 10);
    assert_int_equal(hitbuf_unwritten_hits(hb), 10);

    b = hitbuf_batch_open(hb, 100);
    assert_non_null(b);
    assert_int_equal(b->n, 3);
    assert_int_equal(b->hits, 10);
    assert_int_equal(b->dropped, 0);
    assert_int_equal(entry(b, "/api/a/")->count, 7);
    assert_int_equal(entry(b, "/api/b/")->count, 2);
    assert_int_equal(entry(b, "/api/a")->count, 1);
    assert_int_equal(hitbuf_waiting_paths(hb), 0);
    assert_int_equal(hitbuf_waiting_hits(hb), 0);
    assert_int_equal(hitbuf_unwritten_hits(hb), 10);
    assert_ptr_equal(hitbuf_batch(hb), b);

    hitbuf_batch_close(hb);
    assert_null(hitbuf_batch(hb));
    assert_int_equal(hitbuf_unwritten_hits(hb), 0);
    hitbuf_free(hb);
}

/* Batches take the oldest paths first (first added first, however many
 * hits came later), at most max_paths at a time. */
static void test_oldest_first_and_max_paths(void **state)
{
    static const char *const paths[] = {"/p/0/", "/p/1/", "/p/2/", "/p/3/", "/p/4/"};
    struct hitbuf *hb = hitbuf_new(BIG);
    const struct hitbatch *b;

    (void)state;
    for (size_t i = 0; i < 5; i++) {
        assert_int_equal(hitbuf_add(hb, paths[i], 1), 0);
    }
    /* Later hits of an old path keep its place. */
    assert_int_equal(hitbuf_add(hb, "/p/0/", 10), 0);
    assert_int_equal(hitbuf_add(hb, "/p/4/", 10), 0);

    b = hitbuf_batch_open(hb, 2);
    assert_non_null(b);
    assert_int_equal(b->n, 2);
    assert_string_equal(b->entries[0].path, "/p/0/");
    assert_int_equal(b->entries[0].count, 11);
    assert_string_equal(b->entries[1].path, "/p/1/");
    assert_int_equal(b->entries[1].count, 1);
    assert_int_equal(b->hits, 12);
    assert_int_equal(hitbuf_waiting_paths(hb), 3);
    assert_int_equal(hitbuf_waiting_hits(hb), 13);
    assert_int_equal(hitbuf_unwritten_hits(hb), 25);
    hitbuf_batch_close(hb);

    b = hitbuf_batch_open(hb, 2);
    assert_int_equal(b->n, 2);
    assert_string_equal(b->entries[0].path, "/p/2/");
    assert_string_equal(b->entries[1].path, "/p/3/");
    hitbuf_batch_close(hb);

    b = hitbuf_batch_open(hb, 2);
    assert_int_equal(b->n, 1);
    assert_string_equal(b->entries[0].path, "/p/4/");
    assert_int_equal(b->entries[0].count, 11);
    hitbuf_batch_close(hb);
    assert_null(hitbuf_batch_open(hb, 2));
    hitbuf_free(hb);
}

static void test_seq(void **state)
{
    struct hitbuf *hb = hitbuf_new(BIG);

    (void)state;
    for (uint64_t want = 1; want <= 5; want++) {
        const struct hitbatch *b;

        assert_int_equal(hitbuf_add(hb, "/api/x/", 1), 0);
        b = hitbuf_batch_open(hb, 10);
        assert_non_null(b);
        assert_int_equal(b->seq, want);
        hitbuf_batch_close(hb);
    }
    /* An open that finds nothing does not use up a number. */
    assert_null(hitbuf_batch_open(hb, 10));
    assert_int_equal(hitbuf_add(hb, "/api/x/", 1), 0);
    assert_int_equal(hitbuf_batch_open(hb, 10)->seq, 6);
    hitbuf_free(hb);
}

/* While a batch is open it does not change, and open returns it again (a
 * retry); new hits, of the same paths too, wait for the next batch. */
static void test_batch_immutable_and_retry(void **state)
{
    struct hitbuf *hb = hitbuf_new(BIG);
    const struct hitbatch *b, *again;
    struct hitbatch copy;
    struct hitbatch_entry entries[2];

    (void)state;
    assert_int_equal(hitbuf_add(hb, "/api/a/", 2), 0);
    assert_int_equal(hitbuf_add(hb, "/api/b/", 3), 0);
    b = hitbuf_batch_open(hb, 10);
    assert_non_null(b);
    assert_int_equal(b->n, 2);
    copy = *b;
    memcpy(entries, b->entries, sizeof(entries));

    assert_int_equal(hitbuf_add(hb, "/api/a/", 4), 0); /* same path */
    assert_int_equal(hitbuf_add(hb, "/api/c/", 1), 0);
    assert_int_equal(hitbuf_add(hb, "/api/a/", 1), 0);
    assert_int_equal(hitbuf_waiting_paths(hb), 2);
    assert_int_equal(hitbuf_waiting_hits(hb), 6);
    assert_int_equal(hitbuf_unwritten_hits(hb), 11);

    again = hitbuf_batch_open(hb, 10);
    assert_ptr_equal(again, b);
    assert_ptr_equal(hitbuf_batch(hb), b);
    assert_int_equal(again->seq, copy.seq);
    assert_int_equal(again->n, copy.n);
    assert_int_equal(again->hits, 5);
    assert_int_equal(again->dropped, copy.dropped);
    assert_ptr_equal(again->entries, copy.entries);
    for (size_t i = 0; i < 2; i++) {
        assert_ptr_equal(again->entries[i].path, entries[i].path);
        assert_int_equal(again->entries[i].count, entries[i].count);
    }
    assert_string_equal(again->entries[0].path, "/api/a/");
    assert_int_equal(again->entries[0].count, 2);
    assert_string_equal(again->entries[1].path, "/api/b/");
    assert_int_equal(again->entries[1].count, 3);

    hitbuf_batch_close(hb);
    b = hitbuf_batch_open(hb, 10);
    assert_int_equal(b->seq, copy.seq + 1);
    assert_int_equal(b->n, 2);
    assert_string_equal(b->entries[0].path, "/api/a/");
    assert_int_equal(b->entries[0].count, 5);
    assert_string_equal(b->entries[1].path, "/api/c/");
    assert_int_equal(b->entries[1].count, 1);
    assert_int_equal(b->hits, 6);
    hitbuf_free(hb); /* frees the open batch too (ASan checks) */
}

/* Room for exactly two paths: a third is dropped and tallied, the two
 * still aggregate, the tally rides with the next batch, and closing the
 * batch makes room again. */
static void test_byte_bound(void **state)
{
    size_t o = overhead();
    const char *a = "/api/aaaa/", *b = "/api/bb/", *c = "/api/c/";
    size_t max = 2 * o + strlen(a) + strlen(b);
    struct hitbuf *hb = hitbuf_new(max);
    const struct hitbatch *bt;

    (void)state;
    assert_int_equal(hitbuf_add(hb, a, 1), 0);
    assert_int_equal(hitbuf_add(hb, b, 1), 0);
    assert_int_equal(hitbuf_bytes(hb), max);
    assert_int_equal(hitbuf_add(hb, c, 3), -1);
    assert_int_equal(hitbuf_add(hb, c, 2), -1);
    assert_int_equal(hitbuf_dropped_total(hb), 5);
    assert_int_equal(hitbuf_add(hb, a, 100), 0); /* existing paths still count */
    assert_int_equal(hitbuf_add(hb, b, 7), 0);
    assert_int_equal(hitbuf_waiting_paths(hb), 2);
    assert_int_equal(hitbuf_waiting_hits(hb), 109);
    assert_int_equal(hitbuf_unwritten_hits(hb), 109); /* dropped hits are not unwritten */
    assert_int_equal(hitbuf_bytes(hb), max);

    /* The tally moves into the next batch, once. */
    bt = hitbuf_batch_open(hb, 1);
    assert_non_null(bt);
    assert_int_equal(bt->n, 1);
    assert_string_equal(bt->entries[0].path, a);
    assert_int_equal(bt->dropped, 5);
    /* The batch still holds a's bytes: no room yet for c. */
    assert_int_equal(hitbuf_bytes(hb), max);
    assert_int_equal(hitbuf_add(hb, c, 1), -1);
    assert_int_equal(hitbuf_dropped_total(hb), 6);
    hitbuf_batch_close(hb);
    assert_int_equal(hitbuf_bytes(hb), o + strlen(b));

    /* Closing released a's bytes: c fits now. */
    assert_int_equal(hitbuf_add(hb, c, 1), 0);
    assert_int_equal(hitbuf_bytes(hb), 2 * o + strlen(b) + strlen(c));
    bt = hitbuf_batch_open(hb, 10);
    assert_int_equal(bt->n, 2);
    assert_int_equal(bt->dropped, 1); /* only what was dropped since */
    assert_int_equal(bt->hits, 9);
    hitbuf_batch_close(hb);
    assert_int_equal(hitbuf_bytes(hb), 0);
    assert_int_equal(hitbuf_dropped_total(hb), 6); /* monotonic */
    assert_int_equal(hitbuf_unwritten_hits(hb), 0);
    hitbuf_free(hb);
}

/* A path that fits exactly is taken; one byte longer is not. */
static void test_byte_bound_exact(void **state)
{
    size_t o = overhead();
    struct hitbuf *hb = hitbuf_new(o + 5);

    (void)state;
    assert_int_equal(hitbuf_add(hb, "/abcde", 1), -1);
    assert_int_equal(hitbuf_add(hb, "/abcd", 1), 0);
    assert_int_equal(hitbuf_bytes(hb), o + 5);
    hitbuf_free(hb);
}

/* Only dropped hits waiting: a batch with no entries carries the tally. */
static void test_batch_of_dropped_only(void **state)
{
    struct hitbuf *hb = hitbuf_new(0);
    const struct hitbatch *b;

    (void)state;
    assert_int_equal(hitbuf_add(hb, "/api/x/", 4), -1);
    assert_int_equal(hitbuf_waiting_paths(hb), 0);
    b = hitbuf_batch_open(hb, 10);
    assert_non_null(b);
    assert_int_equal(b->n, 0);
    assert_int_equal(b->hits, 0);
    assert_int_equal(b->dropped, 4);
    assert_int_equal(b->seq, 1);
    hitbuf_batch_close(hb);
    assert_null(hitbuf_batch_open(hb, 10));
    assert_int_equal(hitbuf_dropped_total(hb), 4);
    hitbuf_free(hb);
}

/* Many paths through many batches: nothing lost, nothing counted twice,
 * bytes back to zero. */
static void test_many_paths_accounting(void **state)
{
    struct hitbuf *hb = hitbuf_new(BIG);
    uint64_t added = 0, batched = 0, seq = 0;
    char path[32];

    (void)state;
    for (int i = 0; i < 3000; i++) {
        snprintf(path, sizeof(path), "/api/%d/", i % 1000);
        assert_int_equal(hitbuf_add(hb, path, (uint64_t)(i % 7) + 1), 0);
        added += (uint64_t)(i % 7) + 1;
    }
    assert_int_equal(hitbuf_waiting_paths(hb), 1000);
    assert_int_equal(hitbuf_waiting_hits(hb), added);
    for (;;) {
        const struct hitbatch *b = hitbuf_batch_open(hb, 64);
        uint64_t sum = 0;

        if (b == NULL) {
            break;
        }
        assert_true(b->n <= 64);
        assert_int_equal(b->seq, ++seq);
        for (size_t i = 0; i < b->n; i++) {
            sum += b->entries[i].count;
        }
        assert_int_equal(sum, b->hits);
        batched += b->hits;
        hitbuf_batch_close(hb);
    }
    assert_int_equal(seq, (1000 + 63) / 64);
    assert_int_equal(batched, added);
    assert_int_equal(hitbuf_bytes(hb), 0);
    assert_int_equal(hitbuf_unwritten_hits(hb), 0);
    hitbuf_free(hb);
}

/* History interval tallies travel with the next batch, oldest first; a
 * clock that steps back tallies in the newest interval; dropped hits are
 * not tallied; interval -1 tallies nothing. */
static void test_interval_tallies(void **state)
{
    struct hitbuf *hb = hitbuf_new(BIG);
    const struct hitbatch *b;

    (void)state;
    assert_int_equal(hitbuf_add_at(hb, "/api/a/", 1, 100), 0);
    assert_int_equal(hitbuf_add_at(hb, "/api/b/", 2, 100), 0);
    assert_int_equal(hitbuf_add_at(hb, "/api/a/", 3, 102), 0);
    assert_int_equal(hitbuf_add_at(hb, "/api/a/", 4, 101), 0); /* stepped back */
    assert_int_equal(hitbuf_add_at(hb, "/api/c/", 5, -1), 0);  /* no history */
    b = hitbuf_batch_open(hb, 1);                              /* one path only */
    assert_non_null(b);
    assert_int_equal(b->n, 1);
    assert_int_equal(b->nintervals, 2);
    assert_int_equal(b->intervals[0].interval, 100);
    assert_int_equal(b->intervals[0].count, 3);
    assert_int_equal(b->intervals[1].interval, 102);
    assert_int_equal(b->intervals[1].count, 7);
    /* Immutable while open: new tallies wait for the next batch. */
    assert_int_equal(hitbuf_add_at(hb, "/api/a/", 1, 103), 0);
    assert_int_equal(b->nintervals, 2);
    hitbuf_batch_close(hb);
    b = hitbuf_batch_open(hb, 10);
    assert_non_null(b);
    assert_int_equal(b->nintervals, 1);
    assert_int_equal(b->intervals[0].interval, 103);
    assert_int_equal(b->intervals[0].count, 1);
    hitbuf_batch_close(hb);
    hitbuf_free(hb);

    /* A full buffer drops the hit and tallies nothing. */
    hb = hitbuf_new(1);
    assert_int_equal(hitbuf_add_at(hb, "/api/x/", 1, 5), -1);
    b = hitbuf_batch_open(hb, 10);
    assert_non_null(b);
    assert_int_equal(b->nintervals, 0);
    assert_int_equal(b->dropped, 1);
    hitbuf_free(hb);
}

/* At most HITBUF_INTERVALS_MAX tallies: the oldest are forgotten. */
static void test_interval_bound(void **state)
{
    struct hitbuf *hb = hitbuf_new(BIG);
    const struct hitbatch *b;

    (void)state;
    for (int64_t i = 0; i < HITBUF_INTERVALS_MAX + 10; i++) {
        assert_int_equal(hitbuf_add_at(hb, "/api/x/", 1, i), 0);
    }
    b = hitbuf_batch_open(hb, 10);
    assert_non_null(b);
    assert_int_equal(b->nintervals, HITBUF_INTERVALS_MAX);
    assert_int_equal(b->intervals[0].interval, 10);
    assert_int_equal(b->intervals[HITBUF_INTERVALS_MAX - 1].interval, HITBUF_INTERVALS_MAX + 9);
    assert_int_equal(b->hits, HITBUF_INTERVALS_MAX + 10); /* every hit still counted */
    hitbuf_free(hb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_aggregation),
        cmocka_unit_test(test_oldest_first_and_max_paths),
        cmocka_unit_test(test_seq),
        cmocka_unit_test(test_batch_immutable_and_retry),
        cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_byte_bound_exact),
        cmocka_unit_test(test_batch_of_dropped_only),
        cmocka_unit_test(test_many_paths_accounting),
        cmocka_unit_test(test_interval_tallies),
        cmocka_unit_test(test_interval_bound),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
