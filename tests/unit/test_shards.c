/* test_shards.c -- unit tests for shards.c
 *
 * Placement: target slots evenly spaced, every tag found and on its
 * target, the default 24 shards 8/8/8 over an even 3-master split, the
 * path hash stable and spread. The page arithmetic against brute force on
 * random shard contents (many ties, skewed counts, empty shards): the
 * global order of the merge, the probes' bracket always holding the count
 * at a rank, and both ways of locating a rank (a tied group, a bracket
 * read whole) giving exactly the brute-force positions.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "shards.h"
#include "slotmap.h"

static void test_target_slots(void **state)
{
    (void)state;
    assert_int_equal(shards_target_slot(0, 1), 8192);
    assert_int_equal(shards_target_slot(0, 2), 4096);
    assert_int_equal(shards_target_slot(1, 2), 12288);
    assert_int_equal(shards_target_slot(-1, 2), -1);
    assert_int_equal(shards_target_slot(2, 2), -1);
    assert_int_equal(shards_target_slot(0, 0), -1);
    assert_int_equal(shards_target_slot(0, SHARDS_MAX + 1), -1);
    for (int n = 1; n <= SHARDS_MAX; n++) {
        int prev = -1;

        for (int i = 0; i < n; i++) {
            int s = shards_target_slot(i, n);

            assert_true(s > prev && s < SLOTMAP_SLOTS);
            prev = s;
        }
    }
}

static void test_tags_on_target(void **state)
{
    static const int sizes[] = {1, 2, 3, 5, 24, 64, SHARDS_MAX};
    char tag[SHARDS_TAG_LEN];

    (void)state;
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        int n = sizes[k];

        for (int i = 0; i < n; i++) {
            char key[64];
            int s = shards_tag(i, n, tag, sizeof(tag));

            assert_int_equal(s, shards_target_slot(i, n));
            /* The tag as it sits in a key hashes to the same slot. */
            snprintf(key, sizeof(key), "reqstats:{%s}hits", tag);
            assert_int_equal(slotmap_keyslot(key, strlen(key)), s);
        }
    }
    /* Stable: part of the data layout. */
    assert_int_equal(shards_tag(0, 24, tag, sizeof(tag)), 341);
    assert_string_equal(tag, "0.48631");
    assert_int_equal(shards_tag(23, 24, tag, sizeof(tag)), 16042);
    assert_string_equal(tag, "23.8058");
    assert_int_equal(shards_tag(0, 24, tag, 3), -1); /* too small */
}

/* Over redis-cli --cluster create's even split of M masters, S shards
 * land S / M per master whenever M divides S: the default 12 over 2, 3,
 * 4, 6 and 12 masters, 24 over 8 too. */
static void test_even_over_masters(void **state)
{
    static const int cases[][2] = {{12, 2}, {12, 3}, {12, 4},  {12, 6}, {12, 12},
                                   {24, 3}, {24, 8}, {24, 24}, {48, 16}};

    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        int n = cases[k][0], m = cases[k][1], count[24] = {0};

        for (int i = 0; i < n; i++) {
            int s = shards_target_slot(i, n);
            /* redis-cli gives master j slots [j * 16384 / m, (j + 1) * 16384 / m). */
            int j = 0;

            while (j + 1 < m && s >= (int)(((long)(j + 1) * SLOTMAP_SLOTS) / m)) {
                j++;
            }
            count[j]++;
        }
        for (int j = 0; j < m; j++) {
            assert_int_equal(count[j], n / m);
        }
    }
}

static void test_path_hash(void **state)
{
    int count[24] = {0};
    char path[64];

    (void)state;
    /* FNV-1a 64 of "/api/a/" mod 24, by hand: part of the layout. */
    assert_int_equal(shards_of("", 0, 24), (int)(14695981039346656037ULL % 24));
    assert_int_equal(shards_of("/api/a/", 7, 1), 0);
    for (int i = 0; i < 48000; i++) {
        int n = snprintf(path, sizeof(path), "/api/items/%d/", i);

        count[shards_of(path, (size_t)n, 24)]++;
    }
    for (int s = 0; s < 24; s++) {
        /* 2000 expected; 5 standard deviations is about +-220. */
        assert_in_range(count[s], 1750, 2250);
    }
}

/* ---- the page arithmetic against brute force ---------------------------- */

#define NS      7
#define MAXPER  400
#define NTRIALS 300

struct model {
    int n;
    size_t len[NS];
    struct shards_item items[NS][MAXPER];
    char names[NS][MAXPER][16];
    struct shards_item all[NS * MAXPER]; /* global order */
    int shard_of[NS * MAXPER];
    size_t total;
};

static struct model M;

/* Shard order: count desc, then path in descending byte order. */
static int by_shard_order(const void *a, const void *b)
{
    const struct shards_item *x = a, *y = b;

    if (x->count != y->count) {
        return x->count > y->count ? -1 : 1;
    }
    return -strcmp(x->path, y->path);
}

static unsigned long long rng = 88172645463325252ULL;

static unsigned long long next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random shards: some empty, counts skewed (a few large, many tied). */
static void make_model(int n)
{
    size_t k = 0;

    M.n = n;
    for (int s = 0; s < n; s++) {
        size_t len = next_rand() % 5 == 0 ? 0 : (size_t)(next_rand() % MAXPER);

        M.len[s] = len;
        for (size_t i = 0; i < len; i++) {
            unsigned long long r = next_rand() % 100;
            long long c = r < 60 ? 1 + (long long)(next_rand() % 3)
                                 : (r < 95 ? 1 + (long long)(next_rand() % 50)
                                           : 1 + (long long)(next_rand() % 100000));

            snprintf(M.names[s][i], sizeof(M.names[s][i]), "/p%llu/", next_rand() % 100000);
            M.items[s][i].path = M.names[s][i];
            M.items[s][i].len = strlen(M.names[s][i]);
            M.items[s][i].count = c;
        }
        qsort(M.items[s], len, sizeof(M.items[s][0]), by_shard_order);
    }
    /* Brute force global order: count desc, shard asc, shard order. */
    {
        size_t head[NS] = {0};

        for (;;) {
            int best = -1;

            for (int s = 0; s < n; s++) {
                if (head[s] < M.len[s] &&
                    (best < 0 || M.items[s][head[s]].count > M.items[best][head[best]].count)) {
                    best = s;
                }
            }
            if (best < 0) {
                break;
            }
            /* Check ties by hand instead of trusting the same loop: the
             * best on a tie must be the lowest shard. */
            for (int s = 0; s < best; s++) {
                assert_false(head[s] < M.len[s] &&
                             M.items[s][head[s]].count == M.items[best][head[best]].count);
            }
            M.all[k] = M.items[best][head[best]];
            M.shard_of[k] = best;
            head[best]++;
            k++;
        }
    }
    M.total = k;
}

/* pos[s]: members of shard s among global ranks [0, R). */
static void brute_pos(long long R, long long *pos)
{
    for (int s = 0; s < M.n; s++) {
        pos[s] = 0;
    }
    for (long long i = 0; i < R && (size_t)i < M.total; i++) {
        pos[M.shard_of[i]]++;
    }
}

static long long count_ge(int s, long long c)
{
    long long n = 0;

    for (size_t i = 0; i < M.len[s]; i++) {
        n += M.items[s][i].count >= c;
    }
    return n;
}

static void test_merge_global_order(void **state)
{
    struct shards_run runs[NS];
    struct shards_item *out = calloc(NS * MAXPER, sizeof(*out));
    size_t taken[NS];

    (void)state;
    assert_non_null(out);
    for (int t = 0; t < 50; t++) {
        size_t got;

        make_model(NS);
        for (int s = 0; s < NS; s++) {
            runs[s].items = M.items[s];
            runs[s].n = M.len[s];
        }
        got = shards_merge(NS, runs, M.total + 5, out, taken);
        assert_int_equal(got, M.total);
        for (size_t i = 0; i < got; i++) {
            assert_string_equal(out[i].path, M.all[i].path);
            assert_int_equal(out[i].count, M.all[i].count);
            if (i > 0) {
                assert_true(out[i].count <= out[i - 1].count);
            }
        }
        /* A prefix: taken[] are the brute-force positions. */
        {
            long long pos[NS];
            size_t k = M.total / 3;

            assert_int_equal(shards_merge(NS, runs, k, NULL, taken), k);
            brute_pos((long long)k, pos);
            for (int s = 0; s < NS; s++) {
                assert_int_equal((long long)taken[s], pos[s]);
            }
        }
    }
    free(out);
}

/* The whole locate procedure on the model, as counters.c runs it against
 * Redis: probes -> bracket -> (tied group | bracket read whole). */
static void test_locate_against_brute_force(void **state)
{
    int tied = 0, whole = 0;

    (void)state;
    for (int t = 0; t < NTRIALS; t++) {
        long long card[NS], est[NS], lo[NS], hi[NS], lo_val[NS], hi_val[NS];
        long long L, H, R, cR, gt[NS], in[NS], pos[NS], want[NS];

        make_model(NS);
        if (M.total < 2) {
            continue;
        }
        R = (long long)(next_rand() % M.total);
        cR = M.all[R].count;
        for (int s = 0; s < NS; s++) {
            card[s] = (long long)M.len[s];
            /* Estimates: exact half the time, else off by up to 50%. */
            est[s] = t % 2 ? card[s] : card[s] + (long long)(next_rand() % (card[s] / 2 + 2));
            est[s] = est[s] > 0 ? est[s] : 1;
        }
        shards_probe_ranks(NS, R, est, lo, hi);
        {
            long long sum_hi = 0, sum_lo = 0;

            for (int s = 0; s < NS; s++) {
                sum_hi += hi[s];
                sum_lo += lo[s] + 1;
                assert_true(hi[s] >= 0);
            }
            assert_true(sum_hi <= R);
            assert_true(sum_lo >= R + 1);
        }
        for (int s = 0; s < NS; s++) {
            lo_val[s] = lo[s] >= 0 && lo[s] < card[s] ? M.items[s][lo[s]].count : SHARDS_NONE;
            hi_val[s] = hi[s] < card[s] ? M.items[s][hi[s]].count : SHARDS_NONE;
        }
        shards_bracket(NS, R, card, lo, lo_val, hi_val, &L, &H);
        if (L > cR || H < cR) {
            fail_msg("trial %d: bracket [%lld, %lld] misses c(%lld) = %lld", t, L, H, R, cR);
        }
        brute_pos(R, want);
        for (int s = 0; s < NS; s++) {
            gt[s] = count_ge(s, H + 1);
            in[s] = count_ge(s, L) - gt[s];
        }
        if (L == H) {
            shards_locate(NS, R, gt, in, pos);
            tied++;
        } else {
            struct shards_run runs[NS];
            size_t taken[NS];
            long long above = 0;

            /* The bracket's members, read whole. */
            for (int s = 0; s < NS; s++) {
                runs[s].items = M.items[s] + gt[s];
                runs[s].n = (size_t)in[s];
                above += gt[s];
            }
            shards_merge(NS, runs, (size_t)(R - above), NULL, taken);
            for (int s = 0; s < NS; s++) {
                pos[s] = gt[s] + (long long)taken[s];
            }
            whole++;
        }
        for (int s = 0; s < NS; s++) {
            if (pos[s] != want[s]) {
                fail_msg("trial %d: R %lld shard %d: %lld, brute force %lld", t, R, s, pos[s],
                         want[s]);
            }
        }
        /* And the tied-group rule at the exact count, always. */
        for (int s = 0; s < NS; s++) {
            gt[s] = count_ge(s, cR + 1);
            in[s] = count_ge(s, cR) - gt[s];
        }
        shards_locate(NS, R, gt, in, pos);
        for (int s = 0; s < NS; s++) {
            assert_int_equal(pos[s], want[s]);
        }
    }
    /* Both ways were exercised. */
    assert_true(tied > 10);
    assert_true(whole > 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_target_slots),
        cmocka_unit_test(test_tags_on_target),
        cmocka_unit_test(test_even_over_masters),
        cmocka_unit_test(test_path_hash),
        cmocka_unit_test(test_merge_global_order),
        cmocka_unit_test(test_locate_against_brute_force),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
