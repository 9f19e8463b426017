/* test_cmd.c -- unit tests for cmd.c
 *
 * Arguments are kept with their lengths (binary-safe), numbers formatted
 * into the command's own storage, the capacity is a hard bound (one more
 * argument marks the command failed and writes nothing), a large command
 * gets its capacity from the heap, and reset keeps the capacity.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "cmd.h"

static void test_args_and_numbers(void **state)
{
    struct cmd c;

    (void)state;
    cmd_init(&c, 42);
    assert_int_equal(c.slot, 42);
    cmd_str(&c, "ZCOUNT");
    cmd_bin(&c, "k\0ey", 4);
    cmd_ll_excl(&c, 17);
    cmd_ll(&c, -9223372036854775807LL - 1);
    cmd_str(&c, "+inf");
    assert_int_equal(c.err, 0);
    assert_int_equal(c.argc, 5);
    assert_int_equal(c.len[1], 4);
    assert_memory_equal(c.argv[1], "k\0ey", 4);
    assert_int_equal(c.len[2], 3);
    assert_memory_equal(c.argv[2], "(17", 3);
    assert_string_equal(c.argv[3], "-9223372036854775808");
    assert_int_equal(c.len[3], strlen("-9223372036854775808"));
    cmd_free(&c); /* an inline command: nothing to free, still usable */
    assert_int_equal(c.argc, 0);
}

static void test_capacity_is_a_bound(void **state)
{
    struct cmd c;

    (void)state;
    cmd_init(&c, CMD_ANY_SLOT);
    for (int i = 0; i < CMD_INLINE_ARGS; i++) {
        cmd_ll(&c, i);
    }
    assert_int_equal(c.err, 0);
    assert_int_equal(c.argc, CMD_INLINE_ARGS);
    cmd_str(&c, "one too many");
    assert_int_equal(c.err, 1);
    assert_int_equal(c.argc, CMD_INLINE_ARGS);
    cmd_ll(&c, 7);
    assert_int_equal(c.argc, CMD_INLINE_ARGS);
    /* What was there is intact. */
    assert_string_equal(c.argv[CMD_INLINE_ARGS - 1], "15");
    cmd_reset(&c, 3);
    assert_int_equal(c.err, 0);
    assert_int_equal(c.argc, 0);
    assert_int_equal(c.slot, 3);
}

static void test_heap_capacity(void **state)
{
    struct cmd c;
    char name[32];

    (void)state;
    assert_int_equal(cmd_init_cap(&c, 5, 11 + 2 * 1000), 0);
    assert_int_equal(c.cap, 2011);
    cmd_str(&c, "EVAL");
    for (int i = 0; i < 2010; i++) {
        cmd_ll(&c, i);
    }
    assert_int_equal(c.err, 0);
    assert_int_equal(c.argc, 2011);
    snprintf(name, sizeof(name), "%d", 2009);
    assert_string_equal(c.argv[2010], name);
    cmd_str(&c, "x");
    assert_int_equal(c.err, 1);
    cmd_free(&c);
    assert_null(c.heap);
    assert_int_equal(c.cap, CMD_INLINE_ARGS);
    /* A small request stays inline. */
    assert_int_equal(cmd_init_cap(&c, 5, 3), 0);
    assert_null(c.heap);
    cmd_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args_and_numbers),
        cmocka_unit_test(test_capacity_is_a_bound),
        cmocka_unit_test(test_heap_capacity),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
