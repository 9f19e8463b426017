/* test_run.c -- unit tests for run.c
 *
 * Status names, run ids, and the docs/API.md 5 object: every field with its
 * JSON type, null times before they happen, ISO 8601 UTC times, and
 * elapsed_seconds / requests_per_second from started and finished (or now
 * while running).
 */

#include <math.h>
#include <regex.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "run.h"

/* 2026-11-28T12:00:00Z in epoch milliseconds. */
#define T0 1795867200000LL

static void test_status_round_trip(void **state)
{
    static const char *const names[] = {"queued", "running", "done", "failed", "cancelled"};
    static const enum run_status all[] = {RUN_QUEUED, RUN_RUNNING, RUN_DONE, RUN_FAILED,
                                          RUN_CANCELLED};

    (void)state;
    assert_int_equal(RUN_STATUSES, 5);
    for (size_t i = 0; i < 5; i++) {
        enum run_status s = RUN_FAILED;

        assert_string_equal(run_status_name(all[i]), names[i]);
        assert_int_equal(run_status_parse(names[i], &s), 0);
        assert_int_equal(s, all[i]);
        assert_int_equal(run_status_parse(run_status_name(all[i]), &s), 0);
        assert_int_equal(s, all[i]);
    }
}

static void test_status_unknown(void **state)
{
    static const char *const bad[] = {"",    "Queued",   "RUNNING",  "done ",  " done",
                                      "don", "finished", "canceled", "failedx"};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        enum run_status s = RUN_RUNNING;

        assert_int_equal(run_status_parse(bad[i], &s), -1);
        assert_int_equal(s, RUN_RUNNING); /* untouched */
    }
}

static int id_cmp(const void *a, const void *b)
{
    return memcmp(a, b, RUN_ID_LEN + 1);
}

static void test_id_new(void **state)
{
    enum { N = 2000 };
    char(*ids)[RUN_ID_LEN + 1] = calloc(N, sizeof(*ids));

    (void)state;
    assert_non_null(ids);
    assert_int_equal(RUN_ID_LEN, 16);
    for (int i = 0; i < N; i++) {
        memset(ids[i], 'Z', sizeof(ids[i]));
        assert_int_equal(run_id_new(ids[i]), 0);
        assert_int_equal(strlen(ids[i]), RUN_ID_LEN);
        for (int k = 0; k < RUN_ID_LEN; k++) {
            char c = ids[i][k];

            assert_true((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'));
        }
        assert_true(run_id_valid(ids[i], RUN_ID_LEN));
    }
    qsort(ids, N, sizeof(*ids), id_cmp);
    for (int i = 1; i < N; i++) {
        assert_string_not_equal(ids[i - 1], ids[i]);
    }
    free(ids);
}

static void test_id_valid(void **state)
{
    (void)state;
    assert_true(run_id_valid("0123456789abcdef", 16));
    assert_true(run_id_valid("ffffffffffffffff", 16));
    assert_true(run_id_valid("0000000000000000", 16));
    assert_true(run_id_valid("0123456789abcdefXYZ", 16)); /* len counts, not NUL */
    assert_false(run_id_valid("", 0));
    assert_false(run_id_valid("0123456789abcde", 15));
    assert_false(run_id_valid("0123456789abcdef0", 17));
    assert_false(run_id_valid("0123456789ABCDEF", 16));
    assert_false(run_id_valid("0123456789abcdeF", 16));
    assert_false(run_id_valid("0123456789abcdeg", 16));
    assert_false(run_id_valid("/123456789abcdef", 16)); /* '0' - 1 */
    assert_false(run_id_valid(":123456789abcdef", 16)); /* '9' + 1 */
    assert_false(run_id_valid("`123456789abcdef", 16)); /* 'a' - 1 */
    assert_false(run_id_valid("0123456789abcde\0", 16));
    assert_false(run_id_valid("01234567-9abcdef", 16));
    assert_false(run_id_valid("../../../../etc/", 16));
}

/* ---- run_to_json ------------------------------------------------------- */

static struct run sample(enum run_status status)
{
    struct run r;

    memset(&r, 0, sizeof(r));
    memcpy(r.id, "00c0ffee00c0ffee", RUN_ID_LEN + 1);
    r.status = status;
    r.requests = 1000;
    r.created_ms = T0 + 123;
    return r;
}

static json_t *member(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);

    if (v == NULL) {
        fail_msg("field \"%s\" missing", key);
    }
    return v;
}

static long long int_member(json_t *obj, const char *key)
{
    json_t *v = member(obj, key);

    if (!json_is_integer(v)) {
        fail_msg("field \"%s\" is not a JSON integer", key);
    }
    return (long long)json_integer_value(v);
}

static double num_member(json_t *obj, const char *key)
{
    json_t *v = member(obj, key);

    if (!json_is_number(v)) {
        fail_msg("field \"%s\" is not a JSON number", key);
    }
    return json_number_value(v);
}

/* Assert that field key is a number within 1e-9 of want. */
static void expect_num(json_t *obj, const char *key, double want)
{
    double got = num_member(obj, key);

    if (fabs(got - want) > 1e-9) {
        fail_msg("%s is %.9f, want %.9f", key, got, want);
    }
}

/* An ISO 8601 UTC date-time as clock.h formats it. */
static void assert_iso_utc(json_t *v)
{
    regex_t re;
    int rc;

    assert_true(json_is_string(v));
    assert_int_equal(
        regcomp(&re, "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\\.[0-9]{1,6})?Z$",
                REG_EXTENDED | REG_NOSUB),
        0);
    rc = regexec(&re, json_string_value(v), 0, NULL, 0);
    regfree(&re);
    if (rc != 0) {
        fail_msg("not an ISO 8601 UTC time: %s", json_string_value(v));
    }
}

/* Every docs/API.md 5 field, with its JSON type. */
static void check_shape(json_t *o, const struct run *r)
{
    json_t *pool;
    char url[64];

    assert_non_null(o);
    assert_true(json_is_object(o));
    assert_true(json_is_string(member(o, "id")));
    assert_string_equal(json_string_value(member(o, "id")), r->id);
    assert_int_equal(int_member(o, "requests"), r->requests);
    assert_true(json_is_string(member(o, "status")));
    assert_string_equal(json_string_value(member(o, "status")), run_status_name(r->status));
    assert_int_equal(int_member(o, "sent"), r->sent);
    assert_int_equal(int_member(o, "succeeded"), r->succeeded);
    assert_int_equal(int_member(o, "failed"), r->failed);
    pool = member(o, "pool");
    assert_true(json_is_array(pool));
    assert_int_equal(json_array_size(pool), r->npool);
    for (int i = 0; i < r->npool; i++) {
        assert_true(json_is_string(json_array_get(pool, (size_t)i)));
        assert_string_equal(json_string_value(json_array_get(pool, (size_t)i)), r->pool[i]);
    }
    assert_iso_utc(member(o, "created_at"));
    if (r->started_ms > 0) {
        assert_iso_utc(member(o, "started_at"));
    } else {
        assert_true(json_is_null(member(o, "started_at")));
    }
    if (r->finished_ms > 0) {
        assert_iso_utc(member(o, "finished_at"));
    } else {
        assert_true(json_is_null(member(o, "finished_at")));
    }
    assert_true(isfinite(num_member(o, "elapsed_seconds")));
    assert_true(isfinite(num_member(o, "requests_per_second")));
    /* Extra fields are allowed; this one must point at the run. */
    snprintf(url, sizeof(url), "/test/runs/%s/", r->id);
    if (json_object_get(o, "status_url") != NULL) {
        assert_string_equal(json_string_value(member(o, "status_url")), url);
    }
}

static void test_json_queued(void **state)
{
    struct run r = sample(RUN_QUEUED);
    json_t *o = run_to_json(&r, T0 + 5000);

    (void)state;
    check_shape(o, &r);
    assert_string_equal(json_string_value(member(o, "created_at")), "2026-11-28T12:00:00.123Z");
    assert_true(json_is_null(member(o, "started_at")));
    assert_true(json_is_null(member(o, "finished_at")));
    assert_true(num_member(o, "elapsed_seconds") == 0.0);
    assert_true(num_member(o, "requests_per_second") == 0.0);
    assert_int_equal(json_array_size(member(o, "pool")), 0);
    json_decref(o);
}

static void test_json_running_uses_now(void **state)
{
    struct run r = sample(RUN_RUNNING);
    json_t *o;

    (void)state;
    r.started_ms = T0 + 1000;
    r.sent = 2100;
    r.succeeded = 1500;
    r.failed = 500;
    r.npool = 3;
    memcpy(r.pool[0], "xyz123", 7);
    memcpy(r.pool[1], "abc456", 7);
    memcpy(r.pool[2], "def789", 7);
    o = run_to_json(&r, T0 + 5000);
    check_shape(o, &r);
    assert_string_equal(json_string_value(member(o, "started_at")), "2026-11-28T12:00:01.000Z");
    assert_true(json_is_null(member(o, "finished_at")));
    expect_num(o, "elapsed_seconds", 4.0);
    expect_num(o, "requests_per_second", 500.0);
    json_decref(o);

    /* Later, more elapsed: it really is computed from now. */
    o = run_to_json(&r, T0 + 9000);
    expect_num(o, "elapsed_seconds", 8.0);
    expect_num(o, "requests_per_second", 250.0);
    json_decref(o);
}

static void test_json_done_uses_finished(void **state)
{
    struct run r = sample(RUN_DONE);
    json_t *o;

    (void)state;
    r.started_ms = T0 + 2000;
    r.finished_ms = T0 + 4500;
    r.sent = r.succeeded = 1000;
    r.npool = 3;
    memcpy(r.pool[0], "aaaaaa", 7);
    memcpy(r.pool[1], "bbbbbb", 7);
    memcpy(r.pool[2], "cccccc", 7);
    o = run_to_json(&r, T0 + 3600000); /* an hour later: must not matter */
    check_shape(o, &r);
    assert_string_equal(json_string_value(member(o, "finished_at")), "2026-11-28T12:00:04.500Z");
    expect_num(o, "elapsed_seconds", 2.5);
    expect_num(o, "requests_per_second", 400.0);
    json_decref(o);
}

/* No time passed yet, or a clock that went backwards: zero, never a
 * division by zero or a negative duration. */
static void test_json_zero_elapsed(void **state)
{
    struct run r = sample(RUN_RUNNING);
    json_t *o;

    (void)state;
    r.started_ms = T0 + 1000;
    r.succeeded = 5;
    o = run_to_json(&r, T0 + 1000);
    check_shape(o, &r);
    assert_true(num_member(o, "elapsed_seconds") == 0.0);
    assert_true(num_member(o, "requests_per_second") == 0.0);
    json_decref(o);
    o = run_to_json(&r, T0 + 500);
    check_shape(o, &r);
    assert_true(num_member(o, "elapsed_seconds") == 0.0);
    assert_true(num_member(o, "requests_per_second") == 0.0);
    json_decref(o);
}

/* The object serialises to strict JSON, and a failed run carries its
 * status. */
static void test_json_failed_serialises(void **state)
{
    struct run r = sample(RUN_FAILED);
    json_t *o, *back;
    json_error_t err;
    char *text;

    (void)state;
    r.started_ms = T0 + 1000;
    r.finished_ms = T0 + 3000;
    r.sent = 10;
    r.failed = 10;
    memcpy(r.error, "target \"unreachable\"", 21);
    o = run_to_json(&r, T0 + 3000);
    check_shape(o, &r);
    assert_string_equal(json_string_value(member(o, "status")), "failed");
    text = json_dumps(o, JSON_COMPACT);
    assert_non_null(text);
    back = json_loads(text, JSON_REJECT_DUPLICATES, &err);
    assert_non_null(back);
    assert_true(json_equal(o, back));
    json_decref(back);
    free(text);
    json_decref(o);
}

/* elapsed_seconds is exact to the millisecond: (finished - started) ms
 * must read back as that many thousandths, for every duration. */
static void test_json_elapsed_exact_ms(void **state)
{
    (void)state;
    for (int64_t ms = 1; ms <= 3000; ms++) {
        struct run r = sample(RUN_DONE);
        json_t *o;
        double got;

        r.started_ms = T0;
        r.finished_ms = T0 + ms;
        o = run_to_json(&r, T0 + ms);
        assert_non_null(o);
        got = num_member(o, "elapsed_seconds");
        json_decref(o);
        if (fabs(got - (double)ms / 1000.0) > 0.0005) {
            fail_msg("a run of %lld ms reports elapsed_seconds %.6f", (long long)ms, got);
        }
    }
}

/* docs/API.md 5's own example: 640 requests completed 0.41 s after the start
 * read as 0.41 s and 1561.0 requests per second (640 / 0.41 = 1560.98). */
static void test_json_api_example(void **state)
{
    struct run r = sample(RUN_RUNNING);
    json_t *o;
    double elapsed, rate;

    (void)state;
    r.started_ms = T0;
    r.sent = r.succeeded = 640;
    o = run_to_json(&r, T0 + 410);
    check_shape(o, &r);
    elapsed = num_member(o, "elapsed_seconds");
    rate = num_member(o, "requests_per_second");
    json_decref(o);
    assert_true(fabs(elapsed - 0.41) < 1e-9);
    if (fabs(rate - 640 / 0.41) > 0.05) {
        fail_msg("requests_per_second %.3f, docs/API.md says 1561.0", rate);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_round_trip),
        cmocka_unit_test(test_status_unknown),
        cmocka_unit_test(test_id_new),
        cmocka_unit_test(test_id_valid),
        cmocka_unit_test(test_json_queued),
        cmocka_unit_test(test_json_running_uses_now),
        cmocka_unit_test(test_json_done_uses_finished),
        cmocka_unit_test(test_json_zero_elapsed),
        cmocka_unit_test(test_json_failed_serialises),
        cmocka_unit_test(test_json_elapsed_exact_ms),
        cmocka_unit_test(test_json_api_example),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
