/* test_urlgen.c -- unit tests for urlgen.c
 *
 * The shape docs/API.md 4 promises of a run's URLs, checked on 60,000 draws
 * from one generator: ^/api/(s/){1,6}$ with every s from a pool of exactly
 * three distinct [a-z0-9]{6} strings, every depth and every pool member
 * seen, and frequencies inside bounds wide enough never to flake (each is
 * more than 20 standard deviations from the expected value).
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "urlgen.h"

#define DRAWS 60000

static int seg_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

/* Assert the pool holds URLGEN_POOL distinct NUL-terminated [a-z0-9]{6}. */
static void check_pool(const struct urlgen *g)
{
    assert_int_equal(URLGEN_POOL, 3);
    assert_int_equal(URLGEN_SEG_LEN, 6);
    for (int i = 0; i < URLGEN_POOL; i++) {
        assert_int_equal(strlen(g->pool[i]), URLGEN_SEG_LEN);
        for (int j = 0; j < URLGEN_SEG_LEN; j++) {
            assert_true(seg_char_ok(g->pool[i][j]));
        }
        for (int j = 0; j < i; j++) {
            assert_string_not_equal(g->pool[i], g->pool[j]);
        }
    }
}

/* Parse url as "/api/" then 1..6 "seg/" with every seg in the pool.
 * Returns the depth and counts each segment's pool index in seen[];
 * fails the test on any other shape. */
static int parse_url(const struct urlgen *g, const char *url, size_t len, long seen[])
{
    const char *p = url + 5;
    int depth = 0;

    if (len < 5 || memcmp(url, "/api/", 5) != 0) {
        fail_msg("no /api/ prefix: %s", url);
    }
    while (p < url + len) {
        int which = -1;

        if ((size_t)(url + len - p) < URLGEN_SEG_LEN + 1 || p[URLGEN_SEG_LEN] != '/') {
            fail_msg("segment of the wrong length in %s", url);
        }
        for (int i = 0; i < URLGEN_POOL; i++) {
            if (memcmp(p, g->pool[i], URLGEN_SEG_LEN) == 0) {
                which = i;
            }
        }
        if (which < 0) {
            fail_msg("segment outside the pool in %s", url);
        }
        seen[which]++;
        depth++;
        p += URLGEN_SEG_LEN + 1;
    }
    if (depth < 1 || depth > URLGEN_MAX_DEPTH) {
        fail_msg("depth %d in %s", depth, url);
    }
    return depth;
}

static void test_shape_and_distribution(void **state)
{
    struct urlgen g;
    char pool[URLGEN_POOL][URLGEN_SEG_LEN + 1];
    long depths[URLGEN_MAX_DEPTH + 1] = {0};
    long seen[URLGEN_POOL] = {0};
    long segments = 0;

    (void)state;
    assert_int_equal(urlgen_init(&g), 0);
    check_pool(&g);
    memcpy(pool, g.pool, sizeof(pool));

    for (int i = 0; i < DRAWS; i++) {
        char buf[URLGEN_URL_MAX + 8];
        int n;

        memset(buf, 'Z', sizeof(buf));
        n = urlgen_next(&g, buf, URLGEN_URL_MAX);
        assert_true(n > 0);
        assert_true((size_t)n < URLGEN_URL_MAX);
        assert_int_equal(strlen(buf), n);
        assert_int_equal(buf[URLGEN_URL_MAX], 'Z'); /* nothing past size */
        depths[parse_url(&g, buf, (size_t)n, seen)]++;
    }
    /* The pool never changes during a run: no fourth string. */
    assert_memory_equal(pool, g.pool, sizeof(pool));

    for (int d = 1; d <= URLGEN_MAX_DEPTH; d++) {
        /* Expected 1/6 = 16.7%; sd of the count is 0.15% of draws. */
        if (depths[d] < DRAWS * 12 / 100 || depths[d] > DRAWS * 21 / 100) {
            fail_msg("depth %d drawn %ld times of %d", d, depths[d], DRAWS);
        }
        segments += d * depths[d];
    }
    for (int i = 0; i < URLGEN_POOL; i++) {
        /* Expected 1/3 of about 210,000 segments; sd is 0.1%. */
        if (seen[i] < segments * 28 / 100 || seen[i] > segments * 39 / 100) {
            fail_msg("pool member %d used %ld times of %ld", i, seen[i], segments);
        }
    }
    /* Mean depth 3.5 */
    assert_true(segments > DRAWS * 33 / 10 && segments < DRAWS * 37 / 10);
}

/* Separate runs draw separate pools (a repeat of all three strings has
 * probability about 36^-18). */
static void test_pools_differ(void **state)
{
    struct urlgen g[5];

    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(urlgen_init(&g[i]), 0);
        check_pool(&g[i]);
        for (int j = 0; j < i; j++) {
            assert_memory_not_equal(g[i].pool, g[j].pool, sizeof(g[i].pool));
        }
    }
}

/* Over many pools every character of [a-z0-9] shows up: the alphabet is
 * the whole one, not a subset. */
static void test_pool_alphabet(void **state)
{
    int seen[256] = {0};
    int distinct = 0;

    (void)state;
    for (int i = 0; i < 200; i++) {
        struct urlgen g;

        assert_int_equal(urlgen_init(&g), 0);
        for (int k = 0; k < URLGEN_POOL; k++) {
            for (int j = 0; j < URLGEN_SEG_LEN; j++) {
                seen[(unsigned char)g.pool[k][j]]++;
            }
        }
    }
    /* 3600 characters over 36: each expected 100 times. */
    for (int c = 0; c < 256; c++) {
        if (seen[c] > 0) {
            assert_true(seg_char_ok((char)c));
            distinct++;
        }
    }
    assert_int_equal(distinct, 36);
}

static void test_buffer_too_small(void **state)
{
    struct urlgen g;
    char buf[URLGEN_URL_MAX];

    (void)state;
    assert_int_equal(URLGEN_URL_MAX, 48);
    assert_int_equal(urlgen_init(&g), 0);
    errno = 0;
    assert_int_equal(urlgen_next(&g, buf, URLGEN_URL_MAX - 1), -1);
    assert_int_equal(errno, ENOBUFS);
    assert_int_equal(urlgen_next(&g, buf, 0), -1);
    assert_true(urlgen_next(&g, buf, URLGEN_URL_MAX) > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shape_and_distribution),
        cmocka_unit_test(test_pools_differ),
        cmocka_unit_test(test_pool_alphabet),
        cmocka_unit_test(test_buffer_too_small),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
