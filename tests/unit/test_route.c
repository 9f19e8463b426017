/* test_route.c -- unit tests for route.c
 *
 * A table of canonical paths and the route (and argument) each names, then
 * the Allow header and method check of every route: HEAD wherever GET, and
 * exactly the methods Allow lists.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route.h"

struct route_case {
    const char *path;
    enum route_id id;
    const char *arg; /* NULL: no argument expected */
};

static const struct route_case cases[] = {
    {"/api/", ROUTE_API, NULL},
    {"/api/x", ROUTE_API, NULL},
    {"/api/x/", ROUTE_API, NULL},
    {"/api/x/y/", ROUTE_API, NULL},
    {"/api/x/y/z/w/v/u/", ROUTE_API, NULL},
    {"/api/%C3%A9/", ROUTE_API, NULL},
    {"/api", ROUTE_SLASH, NULL},
    {"/stats/", ROUTE_STATS, NULL},
    {"/stats", ROUTE_SLASH, NULL},
    {"/stats/x/", ROUTE_NOT_FOUND, NULL},
    {"/stats/history/", ROUTE_HISTORY, NULL},
    {"/stats/history", ROUTE_SLASH, NULL},
    {"/stats/history/x/", ROUTE_NOT_FOUND, NULL},
    {"/metrics", ROUTE_METRICS, NULL},
    {"/metrics/", ROUTE_NOT_FOUND, NULL},
    {"/metricsx", ROUTE_NOT_FOUND, NULL},
    {"/stats/x", ROUTE_NOT_FOUND, NULL},
    {"/statsx/", ROUTE_NOT_FOUND, NULL},
    {"/test/5/", ROUTE_TEST_START, "5"},
    {"/test/100000/", ROUTE_TEST_START, "100000"},
    {"/test/abc/", ROUTE_TEST_START, "abc"}, /* unvalidated: the handler says 400 */
    {"/test/5", ROUTE_SLASH, NULL},
    {"/test/runs/", ROUTE_RUN_LIST, NULL},
    {"/test/runs", ROUTE_SLASH, NULL},
    {"/test/runs/abc/", ROUTE_RUN, "abc"},
    {"/test/runs/0123456789abcdef/", ROUTE_RUN, "0123456789abcdef"},
    {"/test/runs/abc", ROUTE_SLASH, NULL},
    {"/test/runs/a/b/", ROUTE_NOT_FOUND, NULL},
    {"/test/", ROUTE_NOT_FOUND, NULL},
    {"/test", ROUTE_NOT_FOUND, NULL},
    {"/test/1/2/", ROUTE_NOT_FOUND, NULL},
    {"/test/1/2", ROUTE_NOT_FOUND, NULL},
    {"/", ROUTE_NOT_FOUND, NULL},
    {"/x/", ROUTE_NOT_FOUND, NULL},
    {"/apix/", ROUTE_NOT_FOUND, NULL},
    {"/API/", ROUTE_NOT_FOUND, NULL},
    {"/Stats/", ROUTE_NOT_FOUND, NULL},
    {"/favicon.ico", ROUTE_NOT_FOUND, NULL},
    {"", ROUTE_NOT_FOUND, NULL},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const struct route_case *c = &cases[i];
        struct route r = {ROUTE_API, "junk", 4}; /* must be overwritten */

        route_match(c->path, strlen(c->path), &r);
        if (r.id != c->id) {
            fail_msg("%s: route %d, want %d", c->path, (int)r.id, (int)c->id);
        }
        if (c->arg == NULL) {
            if (r.arg != NULL || r.arglen != 0) {
                fail_msg("%s: unexpected argument", c->path);
            }
            continue;
        }
        /* The argument is borrowed from the path, not copied. */
        if (r.arg == NULL || r.arg < c->path || r.arg + r.arglen > c->path + strlen(c->path) ||
            r.arglen != strlen(c->arg) || memcmp(r.arg, c->arg, r.arglen) != 0) {
            fail_msg("%s: wrong argument, want \"%s\"", c->path, c->arg);
        }
    }
}

/* Only len bytes are looked at: a prefix of a longer buffer routes as
 * itself. */
static void test_uses_len(void **state)
{
    static const char buf[] = "/stats/x/";
    struct route r;

    (void)state;
    route_match(buf, 7, &r);
    assert_int_equal(r.id, ROUTE_STATS);
    route_match(buf, 6, &r);
    assert_int_equal(r.id, ROUTE_SLASH);
    route_match("/test/5/9/", 8, &r);
    assert_int_equal(r.id, ROUTE_TEST_START);
    assert_int_equal(r.arglen, 1);
    assert_memory_equal(r.arg, "5", 1);
}

static const enum route_id all_ids[] = {ROUTE_NOT_FOUND, ROUTE_API,        ROUTE_STATS,
                                        ROUTE_SLASH,     ROUTE_TEST_START, ROUTE_RUN_LIST,
                                        ROUTE_RUN,       ROUTE_HISTORY,    ROUTE_METRICS};

static void test_allow(void **state)
{
    (void)state;
    assert_string_equal(route_allow(ROUTE_API), "GET, HEAD");
    assert_string_equal(route_allow(ROUTE_STATS), "GET, HEAD, DELETE");
    assert_string_equal(route_allow(ROUTE_RUN_LIST), "GET, HEAD");
    assert_string_equal(route_allow(ROUTE_RUN), "GET, HEAD, DELETE");
    assert_string_equal(route_allow(ROUTE_HISTORY), "GET, HEAD");
    assert_string_equal(route_allow(ROUTE_METRICS), "GET, HEAD");
    assert_string_equal(route_allow(ROUTE_TEST_START), "POST");
    assert_null(route_allow(ROUTE_NOT_FOUND));
    assert_null(route_allow(ROUTE_SLASH));
}

static void test_method_ok(void **state)
{
    (void)state;
    assert_true(route_method_ok(ROUTE_API, "GET"));
    assert_true(route_method_ok(ROUTE_API, "HEAD"));
    assert_false(route_method_ok(ROUTE_API, "POST"));
    assert_false(route_method_ok(ROUTE_API, "PUT"));
    assert_false(route_method_ok(ROUTE_API, "DELETE"));
    assert_false(route_method_ok(ROUTE_API, "get")); /* methods are case-sensitive */
    assert_false(route_method_ok(ROUTE_API, "GETX"));
    assert_false(route_method_ok(ROUTE_API, ""));
    assert_true(route_method_ok(ROUTE_STATS, "GET"));
    assert_true(route_method_ok(ROUTE_STATS, "HEAD"));
    assert_false(route_method_ok(ROUTE_STATS, "POST"));
    assert_true(route_method_ok(ROUTE_STATS, "DELETE"));
    assert_false(route_method_ok(ROUTE_HISTORY, "DELETE"));
    assert_false(route_method_ok(ROUTE_METRICS, "POST"));
    assert_true(route_method_ok(ROUTE_TEST_START, "POST"));
    assert_false(route_method_ok(ROUTE_TEST_START, "GET"));
    assert_false(route_method_ok(ROUTE_TEST_START, "HEAD"));
    assert_false(route_method_ok(ROUTE_TEST_START, "PUT"));
    assert_true(route_method_ok(ROUTE_RUN_LIST, "HEAD"));
    assert_false(route_method_ok(ROUTE_RUN_LIST, "POST"));
    assert_true(route_method_ok(ROUTE_RUN, "HEAD"));
    assert_true(route_method_ok(ROUTE_RUN, "DELETE"));
    assert_false(route_method_ok(ROUTE_RUN_LIST, "DELETE"));
    /* 404 and 308 answer whatever the method. */
    assert_true(route_method_ok(ROUTE_NOT_FOUND, "BREW"));
    assert_true(route_method_ok(ROUTE_SLASH, "POST"));
}

/* 1 if method is one of the comma-separated names in allow. */
static int listed(const char *allow, const char *method)
{
    size_t mlen = strlen(method);

    while (*allow != '\0') {
        size_t n = strcspn(allow, ",");

        if (n == mlen && memcmp(allow, method, n) == 0) {
            return 1;
        }
        allow += n;
        allow += strspn(allow, ", ");
    }
    return 0;
}

/* HEAD wherever GET, and route_method_ok() agrees with Allow. */
static void test_method_matches_allow(void **state)
{
    static const char *const methods[] = {"GET",     "HEAD",  "POST",    "PUT",  "DELETE",
                                          "OPTIONS", "PATCH", "CONNECT", "TRACE"};

    (void)state;
    for (size_t i = 0; i < sizeof(all_ids) / sizeof(all_ids[0]); i++) {
        const char *allow = route_allow(all_ids[i]);

        if (route_method_ok(all_ids[i], "GET")) {
            assert_true(route_method_ok(all_ids[i], "HEAD"));
        }
        for (size_t m = 0; allow != NULL && m < sizeof(methods) / sizeof(methods[0]); m++) {
            if (route_method_ok(all_ids[i], methods[m]) != listed(allow, methods[m])) {
                fail_msg("route %d: %s disagrees with Allow: %s", (int)all_ids[i], methods[m],
                         allow);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_uses_len),
        cmocka_unit_test(test_allow),
        cmocka_unit_test(test_method_ok),
        cmocka_unit_test(test_method_matches_allow),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
