/* test_param.c -- unit tests for param.c
 *
 * param_find(): exact names, first occurrence, bare and empty values, no
 * prefix matches, NULL query. param_uint(): digits only, range edges up to
 * ULLONG_MAX, every malformed form docs/API.md 3 and 4 name.
 */

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "param.h"

/* Assert that `name` is found in qs with value `want` (a suffix view into
 * qs, compared by bytes). */
static void expect_found(const char *qs, const char *name, const char *want)
{
    size_t vlen = 9999;
    const char *v = param_find(qs, name, &vlen);

    assert_non_null(v);
    assert_true(v >= qs && v <= qs + strlen(qs)); /* borrowed from qs */
    assert_int_equal(vlen, strlen(want));
    assert_memory_equal(v, want, vlen);
}

static void expect_absent(const char *qs, const char *name)
{
    size_t vlen = 9999;

    assert_null(param_find(qs, name, &vlen));
}

static void test_find_basic(void **state)
{
    (void)state;
    expect_found("limit=10", "limit", "10");
    expect_found("offset=5&limit=10", "limit", "10");
    expect_found("limit=10&offset=5", "offset", "5");
    expect_found("a=1&limit=10&b=2", "limit", "10");
    expect_found("limit=a%20b", "limit", "a%20b"); /* raw, not decoded */
}

static void test_find_absent(void **state)
{
    (void)state;
    expect_absent("", "limit");
    expect_absent("offset=5", "limit");
    expect_absent("LIMIT=5", "limit");
    expect_absent("&&&", "limit");
    expect_absent("=limit", "limit");
    expect_absent(NULL, "limit");
}

static void test_find_first_wins(void **state)
{
    const char *qs = "limit=1&limit=2&limit=3";
    size_t vlen = 0;

    (void)state;
    expect_found(qs, "limit", "1");
    assert_ptr_equal(param_find(qs, "limit", &vlen), qs + 6);
    expect_found("limit=&limit=2", "limit", "");
    expect_found("limit&limit=2", "limit", "");
}

static void test_find_bare_and_empty(void **state)
{
    (void)state;
    expect_found("limit", "limit", "");
    expect_found("limit&offset=3", "limit", "");
    expect_found("offset=3&limit", "limit", "");
    expect_found("limit=", "limit", "");
    expect_found("limit=&offset=3", "limit", "");
    expect_found("offset=3&limit=", "limit", "");
    expect_found("&limit=7&", "limit", "7");
    expect_found("limit==7", "limit", "=7");
}

static void test_find_no_prefix_match(void **state)
{
    (void)state;
    expect_absent("limitx=5", "limit");
    expect_absent("xlimit=5", "limit");
    expect_absent("limi=5", "limit");
    expect_absent("limit_max=5&limits", "limit");
    expect_found("limitx=5&limit=6", "limit", "6");
    expect_found("xlimit=5&limit=6", "limit", "6");
    expect_found("lim=5&limit=6", "lim", "5");
}

/* ---- param_uint --------------------------------------------------------- */

static void expect_uint(const char *s, unsigned long long min, unsigned long long max,
                        unsigned long long want)
{
    unsigned long long v = 424242;

    assert_int_equal(param_uint(s, strlen(s), min, max, &v), 0);
    assert_true(v == want);
}

static void expect_reject(const char *s, unsigned long long min, unsigned long long max)
{
    unsigned long long v = 424242;

    assert_int_equal(param_uint(s, strlen(s), min, max, &v), -1);
    assert_true(v == 424242); /* untouched on failure */
}

static void test_uint_accepts(void **state)
{
    (void)state;
    expect_uint("5", 1, 100000, 5);
    expect_uint("100000", 1, 100000, 100000);
    expect_uint("1", 1, 100000, 1);
    expect_uint("0", 0, 10, 0);
    expect_uint("007", 1, 10, 7);
    expect_uint("0000000000000000000000000000000000000042", 1, 100, 42);
    expect_uint("10", 10, 10, 10);
}

static void test_uint_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",   "+5",  "-0",  "-5",  " 5",  "5 ",  "1e3",      "0x10", "abc", "5a", "a5",
        "5.", "5.0", "1,0", "\t5", "5\n", "%35", "\xd9\xa3", "0b1",  "+",   "-",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        unsigned long long v = 424242;

        if (param_uint(bad[i], strlen(bad[i]), 0, ULLONG_MAX, &v) != -1) {
            fail_msg("param_uint accepted \"%s\"", bad[i]);
        }
        assert_true(v == 424242);
    }
}

/* The length is what counts, not a NUL: "12" of "123" is 12, and a NUL
 * inside the given length is not a digit. */
static void test_uint_uses_len(void **state)
{
    unsigned long long v = 0;

    (void)state;
    assert_int_equal(param_uint("123", 2, 0, 1000, &v), 0);
    assert_true(v == 12);
    assert_int_equal(param_uint("5&limit=6", 1, 1, 10, &v), 0);
    assert_true(v == 5);
    assert_int_equal(param_uint("1\0002", 3, 0, 1000, &v), -1);
    assert_int_equal(param_uint("123", 0, 0, 1000, &v), -1);
}

static void test_uint_range(void **state)
{
    (void)state;
    expect_reject("0", 1, 100000);
    expect_reject("100001", 1, 100000);
    expect_reject("9", 10, 20);
    expect_reject("21", 10, 20);
    expect_reject("6", 0, 5); /* a single digit above max */
    expect_reject("10", 0, 9);
    expect_uint("9", 0, 9, 9);
}

static void test_uint_overflow(void **state)
{
    (void)state;
    expect_reject("99999999999999999999999", 0, ULLONG_MAX);
    expect_reject("99999999999999999999999", 1, 100000);
    expect_uint("18446744073709551615", 0, ULLONG_MAX, ULLONG_MAX);
    expect_uint("018446744073709551615", 0, ULLONG_MAX, ULLONG_MAX);
    expect_reject("18446744073709551616", 0, ULLONG_MAX);
    expect_reject("18446744073709551620", 0, ULLONG_MAX);
    expect_reject("28446744073709551615", 0, ULLONG_MAX);
    expect_reject("184467440737095516150", 0, ULLONG_MAX);
    /* Edges of a max that is not a power of ten. */
    expect_uint("9223372036854775807", 0, 9223372036854775807ULL, 9223372036854775807ULL);
    expect_reject("9223372036854775808", 0, 9223372036854775807ULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_find_basic),
        cmocka_unit_test(test_find_absent),
        cmocka_unit_test(test_find_first_wins),
        cmocka_unit_test(test_find_bare_and_empty),
        cmocka_unit_test(test_find_no_prefix_match),
        cmocka_unit_test(test_uint_accepts),
        cmocka_unit_test(test_uint_rejects_malformed),
        cmocka_unit_test(test_uint_uses_len),
        cmocka_unit_test(test_uint_range),
        cmocka_unit_test(test_uint_overflow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
