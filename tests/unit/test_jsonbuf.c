/* test_jsonbuf.c -- unit tests for jsonbuf.c
 *
 * Everything jsonbuf writes is parsed back with jansson (strict: the
 * parser rejects invalid UTF-8 and bad escapes) and compared with what was
 * meant: integers at their limits, paths with quotes and backslashes,
 * paths holding bytes that are not printable ASCII, and the move from the
 * caller's storage to the heap.
 */

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "jsonbuf.h"

/* Parse jb's content as JSON; fails the test if it is not valid. */
static json_t *parse(const struct jsonbuf *jb)
{
    json_error_t err;
    json_t *v;

    assert_false(jsonbuf_failed(jb));
    v = json_loadb(jb->data, jb->len, JSON_DECODE_ANY, &err);
    if (v == NULL) {
        fprintf(stderr, "invalid JSON (%s): %.*s\n", err.text, (int)jb->len, jb->data);
    }
    assert_non_null(v);
    return v;
}

static void test_integers(void **state)
{
    const long long values[] = {0, 1, -1, 9, 10, 42, 1234567890123LL, LLONG_MAX, LLONG_MIN};
    char storage[64];
    struct jsonbuf jb;

    (void)state;
    for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
        json_t *v;

        jsonbuf_init(&jb, storage, sizeof(storage));
        jsonbuf_int(&jb, values[i]);
        v = parse(&jb);
        assert_true(json_is_integer(v));
        assert_true(json_integer_value(v) == values[i]);
        json_decref(v);
        jsonbuf_free(&jb);
    }
}

/* Write p as a path string and return what a JSON parser reads back. */
static void expect_path(const char *p, size_t len, const char *want)
{
    char storage[16];
    struct jsonbuf jb;
    json_t *v;

    jsonbuf_init(&jb, storage, sizeof(storage));
    jsonbuf_path(&jb, p, len);
    v = parse(&jb);
    assert_true(json_is_string(v));
    assert_int_equal(json_string_length(v), strlen(want));
    assert_memory_equal(json_string_value(v), want, strlen(want));
    json_decref(v);
    jsonbuf_free(&jb);
}

static void test_canonical_paths_verbatim(void **state)
{
    (void)state;
    expect_path("/", 1, "/");
    expect_path("/api/caf%C3%A9/", 15, "/api/caf%C3%A9/");
    expect_path("/api/a'b(c)*+,;=:@!$&~/", 23, "/api/a'b(c)*+,;=:@!$&~/");
}

static void test_quotes_and_backslashes_escaped(void **state)
{
    (void)state;
    expect_path("/a\"b\\c/", 7, "/a\"b\\c/");
    expect_path("\"\\\"\\", 4, "\"\\\"\\");
}

static void test_foreign_bytes_percent_encoded(void **state)
{
    (void)state;
    /* Not something this service stores; must still be valid JSON. */
    expect_path("/caf\xc3\xa9/", 7, "/caf%C3%A9/");
    expect_path("/bad\xff\xfe/", 7, "/bad%FF%FE/");
    expect_path("/nul\0x", 6, "/nul%00x");
    expect_path("/ctl\n\t\x7f%", 8, "/ctl%0A%09%7F%25");
    expect_path("/q\"\xff\\", 5, "/q\"%FF\\");
}

static void test_grows_to_heap(void **state)
{
    char storage[8], path[3000];
    struct jsonbuf jb;
    json_t *v, *arr;

    (void)state;
    memset(path, 'a', sizeof(path));
    path[0] = '/';
    jsonbuf_init(&jb, storage, sizeof(storage));
    jsonbuf_lit(&jb, "[");
    for (int i = 0; i < 50; i++) {
        if (i > 0) {
            jsonbuf_lit(&jb, ",");
        }
        jsonbuf_path(&jb, path, sizeof(path));
    }
    jsonbuf_lit(&jb, "]");
    assert_true(jb.heap);
    assert_true(jb.len > 50 * sizeof(path));
    arr = parse(&jb);
    assert_int_equal(json_array_size(arr), 50);
    v = json_array_get(arr, 49);
    assert_int_equal(json_string_length(v), sizeof(path));
    json_decref(arr);
    jsonbuf_free(&jb);
    assert_null(jb.data);
}

static void test_object_shape(void **state)
{
    char storage[256];
    struct jsonbuf jb;
    json_t *v;

    (void)state;
    jsonbuf_init(&jb, storage, sizeof(storage));
    jsonbuf_lit(&jb, "{\"path\":");
    jsonbuf_path(&jb, "/api/x/", 7);
    jsonbuf_lit(&jb, ",\"n\":");
    jsonbuf_int(&jb, 7);
    jsonbuf_lit(&jb, "}\n");
    assert_false(jb.heap);
    v = parse(&jb);
    assert_string_equal(json_string_value(json_object_get(v, "path")), "/api/x/");
    assert_int_equal(json_integer_value(json_object_get(v, "n")), 7);
    json_decref(v);
    jsonbuf_free(&jb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_canonical_paths_verbatim),
        cmocka_unit_test(test_quotes_and_backslashes_escaped),
        cmocka_unit_test(test_foreign_bytes_percent_encoded),
        cmocka_unit_test(test_grows_to_heap),
        cmocka_unit_test(test_object_shape),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
