/* test_slotmap.c -- unit tests for slotmap.c
 *
 * The CRC16 test vector, key slots with and without hash tags (the rules
 * of the Redis Cluster specification: the first '{', the first '}' after
 * it, an empty tag hashes the whole key), slots Redis documents for plain
 * keys, redirect parsing (MOVED, ASK, IPv6 hosts, an empty host, garbage),
 * the retry class of errors, and slot map updates: a full snapshot, a
 * MOVED for one slot, node reuse, the node bound.
 */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "slotmap.h"

static int slot(const char *key)
{
    return slotmap_keyslot(key, strlen(key));
}

static void test_crc16_vector(void **state)
{
    (void)state;
    /* The CRC16-CCITT (XMODEM) check value. */
    assert_int_equal(slotmap_crc16("123456789", 9), 0x31C3);
    assert_int_equal(slotmap_crc16("", 0), 0);
    assert_int_equal(slot("123456789"), 0x31C3 & 0x3fff);
}

static void test_plain_keys(void **state)
{
    (void)state;
    /* Slots Redis's documentation and test suite show for these keys. */
    assert_int_equal(slot("foo"), 12182);
    assert_int_equal(slot("bar"), 5061);
    assert_int_equal(slot("hello"), 866);
    /* Binary-safe: a NUL inside the key counts. */
    assert_int_not_equal(slotmap_keyslot("a\0b", 3), slotmap_keyslot("a", 1));
}

static void test_hash_tags(void **state)
{
    (void)state;
    /* Keys with the same tag share a slot: the tag's own slot. */
    assert_int_equal(slot("{user1000}.following"), slot("{user1000}.followers"));
    assert_int_equal(slot("{user1000}.following"), slot("user1000"));
    assert_int_equal(slot("foo{bar}zap"), slot("bar"));
    /* Only the first '{' and the first '}' after it. */
    assert_int_equal(slot("foo{bar}{zap}"), slot("bar"));
    assert_int_equal(slot("foo{{bar}}zap"), slot("{bar"));
    /* An empty tag: the whole key is hashed. */
    assert_int_equal(slot("foo{}{bar}"), slot("foo{}{bar}"));
    assert_int_not_equal(slot("foo{}{bar}"), slot("bar"));
    assert_int_equal(slot("{}"), (int)(slotmap_crc16("{}", 2) & 0x3fff));
    /* No closing brace, or a closing one first: the whole key. */
    assert_int_equal(slot("foo{bar"), (int)(slotmap_crc16("foo{bar", 7) & 0x3fff));
    assert_int_equal(slot("foo}bar{"), (int)(slotmap_crc16("foo}bar{", 8) & 0x3fff));
    /* The key layout's own keys. */
    assert_int_equal(slot("reqstats:{7.42}hits"), slot("reqstats:{7.42}writer:abc"));
    assert_int_equal(slot("reqstats:{runs}runs:active"), slot("runs"));
}

static void test_classify_redirects(void **state)
{
    struct slotmap_redirect r;
    const char *m;

    (void)state;
    m = "MOVED 3999 127.0.0.1:6381";
    assert_int_equal(slotmap_classify(m, strlen(m), &r), SLOTMAP_MOVED);
    assert_int_equal(r.slot, 3999);
    assert_string_equal(r.host, "127.0.0.1");
    assert_int_equal(r.port, 6381);

    m = "ASK 16383 redis-2.example:7000";
    assert_int_equal(slotmap_classify(m, strlen(m), &r), SLOTMAP_ASK);
    assert_int_equal(r.slot, 16383);
    assert_string_equal(r.host, "redis-2.example");
    assert_int_equal(r.port, 7000);

    /* IPv6 comes without brackets: the port follows the last ':'. */
    m = "MOVED 0 fe80::1:7002";
    assert_int_equal(slotmap_classify(m, strlen(m), &r), SLOTMAP_MOVED);
    assert_int_equal(r.slot, 0);
    assert_string_equal(r.host, "fe80::1");
    assert_int_equal(r.port, 7002);

    /* A node that does not know its address: empty host, "the one asked". */
    m = "MOVED 12 :7005";
    assert_int_equal(slotmap_classify(m, strlen(m), &r), SLOTMAP_MOVED);
    assert_string_equal(r.host, "");
    assert_int_equal(r.port, 7005);

    /* Only the given length is read. */
    m = "MOVED 5 h:1234567";
    assert_int_equal(slotmap_classify(m, strlen("MOVED 5 h:123"), &r), SLOTMAP_MOVED);
    assert_int_equal(r.port, 123);
}

static void test_classify_bad_and_retry(void **state)
{
    static const char *const bad[] = {
        "MOVED",
        "MOVED ",
        "MOVED 3999",
        "MOVED 3999 ",
        "MOVED 3999 host",
        "MOVED 16384 h:1",
        "MOVED -1 h:1",
        "MOVED x h:1",
        "MOVED 1 h:0",
        "MOVED 1 h:65536",
        "MOVED 1 h:12a",
        "MOVED 1 h:1 extra",
        "MOVEDX 1 h:1",
        "moved 1 h:1",
        "ASK",
        "ASK 1",
        "ERR unknown command",
        "WRONGTYPE Operation against a key holding the wrong kind of value",
        "",
    };
    static const char *const retry[] = {
        "TRYAGAIN Multiple keys request during rehashing of slot",
        "CLUSTERDOWN The cluster is down",
        "CLUSTERDOWN Hash slot not served",
        "LOADING Redis is loading the dataset in memory",
        "MASTERDOWN Link with MASTER is down",
    };
    struct slotmap_redirect r;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (slotmap_classify(bad[i], strlen(bad[i]), &r) != SLOTMAP_ERROR) {
            fail_msg("\"%s\" not classified as a plain error", bad[i]);
        }
    }
    for (size_t i = 0; i < sizeof(retry) / sizeof(retry[0]); i++) {
        assert_int_equal(slotmap_classify(retry[i], strlen(retry[i]), &r), SLOTMAP_RETRY);
    }
    {
        /* A host longer than the bound is refused, not truncated. */
        char m[400];

        memcpy(m, "MOVED 1 ", 8);
        memset(m + 8, 'h', 300);
        memcpy(m + 308, ":1", 3);
        assert_int_equal(slotmap_classify(m, strlen(m), &r), SLOTMAP_ERROR);
    }
}

static struct slotmap map; /* 33 KiB: not on the stack */

static void test_map_snapshot_and_moved(void **state)
{
    int a, b, c, a2;

    (void)state;
    slotmap_init(&map);
    assert_int_equal(slotmap_owner(&map, 0), -1);
    assert_int_equal(slotmap_masters(&map), 0);
    /* A snapshot as redis-cli --cluster create splits 3 masters. */
    a = slotmap_node(&map, "127.0.0.1", 7000);
    b = slotmap_node(&map, "127.0.0.1", 7001);
    c = slotmap_node(&map, "::1", 7002);
    assert_int_equal(a, 0);
    assert_int_equal(b, 1);
    assert_int_equal(c, 2);
    assert_int_equal(slotmap_assign(&map, 0, 5460, a), 0);
    assert_int_equal(slotmap_assign(&map, 5461, 10922, b), 0);
    assert_int_equal(slotmap_assign(&map, 10923, 16383, c), 0);
    assert_int_equal(slotmap_owner(&map, 0), a);
    assert_int_equal(slotmap_owner(&map, 5460), a);
    assert_int_equal(slotmap_owner(&map, 5461), b);
    assert_int_equal(slotmap_owner(&map, 16383), c);
    assert_int_equal(slotmap_owner(&map, 16384), -1);
    assert_int_equal(slotmap_owner(&map, -1), -1);
    assert_int_equal(slotmap_masters(&map), 3);

    /* MOVED to a known node: one slot changes, its neighbours do not. */
    a2 = slotmap_node(&map, "127.0.0.1", 7000);
    assert_int_equal(a2, a);
    assert_int_equal(slotmap_assign(&map, 6000, 6000, a2), 0);
    assert_int_equal(slotmap_owner(&map, 6000), a);
    assert_int_equal(slotmap_owner(&map, 5999), b);
    assert_int_equal(slotmap_owner(&map, 6001), b);

    /* MOVED to a new node (a promoted replica): added, indexes stable. */
    {
        int d = slotmap_node(&map, "127.0.0.1", 7003);

        assert_int_equal(d, 3);
        assert_int_equal(slotmap_assign(&map, 0, 5460, d), 0);
        assert_int_equal(slotmap_owner(&map, 100), d);
        assert_int_equal(slotmap_masters(&map), 4); /* a still owns 6000 */
        assert_string_equal(map.nodes[a].host, "127.0.0.1");
        assert_int_equal(map.nodes[a].port, 7000);
    }

    /* A fresh snapshot clears every slot first. */
    slotmap_clear(&map);
    assert_int_equal(slotmap_owner(&map, 100), -1);
    assert_int_equal(slotmap_masters(&map), 0);
    assert_int_equal(map.nnodes, 4); /* nodes are kept */

    /* Invalid updates change nothing. */
    assert_int_equal(slotmap_assign(&map, 0, 16384, a), -1);
    assert_int_equal(slotmap_assign(&map, 10, 5, a), -1);
    assert_int_equal(slotmap_assign(&map, -1, 5, a), -1);
    assert_int_equal(slotmap_assign(&map, 0, 5, 99), -1);
    assert_int_equal(slotmap_assign(&map, 0, 5, -1), -1);
    assert_int_equal(slotmap_owner(&map, 0), -1);
}

static void test_map_node_bounds(void **state)
{
    char host[SLOTMAP_HOST_MAX + 2];

    (void)state;
    slotmap_init(&map);
    assert_int_equal(slotmap_node(&map, "", 1), -1);
    assert_int_equal(slotmap_node(&map, "h", 0), -1);
    assert_int_equal(slotmap_node(&map, "h", 65536), -1);
    memset(host, 'h', SLOTMAP_HOST_MAX + 1);
    host[SLOTMAP_HOST_MAX + 1] = '\0';
    assert_int_equal(slotmap_node(&map, host, 1), -1);
    host[SLOTMAP_HOST_MAX] = '\0';
    assert_int_equal(slotmap_node(&map, host, 1), 0);
    for (int i = 1; i < SLOTMAP_NODES_MAX; i++) {
        assert_int_equal(slotmap_node(&map, "10.0.0.1", 1000 + i), i);
    }
    /* Full: a new node is refused, a known one still found. */
    assert_int_equal(slotmap_node(&map, "10.0.0.2", 1), -1);
    assert_int_equal(slotmap_node(&map, "10.0.0.1", 1001), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc16_vector),
        cmocka_unit_test(test_plain_keys),
        cmocka_unit_test(test_hash_tags),
        cmocka_unit_test(test_classify_redirects),
        cmocka_unit_test(test_classify_bad_and_retry),
        cmocka_unit_test(test_map_snapshot_and_moved),
        cmocka_unit_test(test_map_node_bounds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
