/* test_path.c -- unit tests for path.c
 *
 * Every example of docs/API.md section 1, the edges of each step (cut, decode,
 * dot segments, re-encoding, the 2048-byte bound) and the properties on
 * random byte strings: printable ASCII, leading '/', no '"' '\\' '?' '#',
 * '%' only in upper-case escapes, length bound, idempotence, and agreement
 * with the independent model in tests/fuzz/path_model.h. The random cases
 * use a fixed seed, printed, which REQSTATS_TEST_SEED overrides.
 */

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "path.h"

#include "../fuzz/path_model.h"

#define DEFAULT_SEED 0x5eed2026c0ffeeULL
#define RANDOM_CASES 20000

/* path_canon() on len bytes; checks the output contract either way and
 * returns the result code. out must hold PATH_CANON_MAX + 1 bytes. */
static int canon(const char *in, size_t len, char *out, size_t *outlen)
{
    int rc;

    memset(out, 'Z', PATH_CANON_MAX + 1);
    *outlen = 12345;
    rc = path_canon(in, len, out, outlen);
    if (rc == 0) {
        assert_int_equal(strlen(out), *outlen);
        assert_true(*outlen <= PATH_CANON_MAX);
    } else {
        assert_int_equal(rc, -1);
        assert_int_equal(out[0], '\0');
    }
    return rc;
}

/* Assert canon(in[0..len)) == want and that want is a fixed point. */
static void expect_bytes(const char *in, size_t len, const char *want)
{
    char out[PATH_CANON_MAX + 1], again[PATH_CANON_MAX + 1];
    size_t outlen, againlen;

    assert_int_equal(canon(in, len, out, &outlen), 0);
    assert_string_equal(out, want);
    assert_int_equal(canon(out, outlen, again, &againlen), 0);
    assert_string_equal(again, want);
}

static void expect(const char *in, const char *want)
{
    expect_bytes(in, strlen(in), want);
}

static void test_api_examples(void **state)
{
    (void)state;
    expect("/api/caf%c3%a9/", "/api/caf%C3%A9/");
    expect("/api/caf\xc3\xa9/", "/api/caf%C3%A9/");
    expect("/api//a/./b/../c/?x=1", "/api/a/c/");
    expect("/api/%7Euser/", "/api/~user/");
    expect("/api/a%2Fb/", "/api/a/b/");
}

static void test_query_and_fragment_cut(void **state)
{
    (void)state;
    expect("/api/x/?a=1&b=2", "/api/x/");
    expect("/api/x?", "/api/x");
    expect("/api/x#frag", "/api/x");
    expect("/api/x#frag?q=1", "/api/x");
    expect("/api/x?q=1#frag", "/api/x");
    expect("/api/a/b?/../..", "/api/a/b");
    expect("?only=query", "/");
    expect("#only-fragment", "/");
    /* An escaped '?' or '#' is data, not a cut, and stays escaped. */
    expect("/api/a%3Fb/", "/api/a%3Fb/");
    expect("/api/a%23b/", "/api/a%23b/");
    /* The cut comes before decoding: "%4" is cut from its digit. */
    expect("/api/%4?1", "/api/%254");
}

static void test_percent_edges(void **state)
{
    (void)state;
    expect("/api/%", "/api/%25");
    expect("/api/a%", "/api/a%25");
    expect("/api/%zz/", "/api/%25zz/");
    expect("/api/%4", "/api/%254");
    expect("/api/%4g/", "/api/%254g/");
    expect("/api/%g4/", "/api/%25g4/");
    expect("/api/%%41/", "/api/%25A/");
    expect("/api/%00/", "/api/%00/");
    expect("/api/%0a%0D/", "/api/%0A%0D/");
    /* Lower, upper and mixed hex decode alike. */
    expect("/api/%4a%4A%6b%6B/", "/api/JJkk/");
    expect("/api/%c3%A9%C3%a9/", "/api/%C3%A9%C3%A9/");
    /* Decoding happens once: "%2541" is the three bytes "%41". */
    expect("/api/%2541/", "/api/%2541/");
    expect("/api/%252F/", "/api/%252F/");
    /* Escapes of kept characters come out as the characters. */
    expect("/api/%21%24%26%27%28%29%2A%2B%2C%3B%3D%3A%40/", "/api/!$&'()*+,;=:@/");
    expect("/api/%41%5a%30%2d%2e%5f%7e/", "/api/AZ0-._~/");
}

static void test_reencoding(void **state)
{
    (void)state;
    expect("/api/a b/", "/api/a%20b/");
    expect("/api/\"q\"/", "/api/%22q%22/");
    expect("/api/a\\b/", "/api/a%5Cb/");
    expect("/api/\x01\x1f\x7f/", "/api/%01%1F%7F/");
    expect("/api/\r\nSet-Cookie: x/", "/api/%0D%0ASet-Cookie:%20x/");
    expect("/api/\x80\xfe\xff/", "/api/%80%FE%FF/");
    expect("/api/<>[]{}|^`/", "/api/%3C%3E%5B%5D%7B%7D%7C%5E%60/");
    expect("/api/-._~!$&'()*+,;=:@/", "/api/-._~!$&'()*+,;=:@/");
    expect_bytes("/api/a\0b/", 9, "/api/a%00b/");
    expect_bytes("\0", 1, "/%00");
}

/* Every single byte after "/x/": kept as is, or %XX upper-case. */
static void test_every_byte(void **state)
{
    static const char keep[] = "-._~!$&'()*+,;=:@";

    (void)state;
    for (unsigned b = 0; b < 256; b++) {
        char in[4] = {'/', 'x', '/', (char)b};
        char want[16];
        int alnum = (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z') || (b >= '0' && b <= '9');

        if (b == '/' || b == '?' || b == '#' || b == '.') {
            snprintf(want, sizeof(want), "/x/");
        } else if (b == '%') {
            snprintf(want, sizeof(want), "/x/%%25");
        } else if (alnum || (b != 0 && strchr(keep, (int)b) != NULL)) {
            snprintf(want, sizeof(want), "/x/%c", (char)b);
        } else {
            snprintf(want, sizeof(want), "/x/%%%02X", b);
        }
        expect_bytes(in, sizeof(in), want);
    }
}

static void test_dot_segments(void **state)
{
    (void)state;
    /* RFC 3986 5.2.4's own examples, made absolute. */
    expect("/a/b/c/./../../g", "/a/g");
    expect("/mid/content=5/../6", "/mid/6");
    /* Never above the root. */
    expect("/..", "/");
    expect("/../a", "/a");
    expect("/../../..", "/");
    expect("/a/../../b", "/b");
    expect("/a/../../../b/", "/b/");
    expect("/api/../../../../etc/passwd", "/etc/passwd");
    /* Encoded dots are dots (step 2 comes before step 3). */
    expect("/api/%2e%2e/x", "/x");
    expect("/api/x/%2E%2E/y/", "/api/y/");
    expect("/api/%2e/x/", "/api/x/");
    expect("/api/.%2e/x", "/x");
    expect("/api/a%2F..%2Fb", "/api/b");
    /* Only exact "." and ".." are dot segments. */
    expect("/api/.x/", "/api/.x/");
    expect("/api/..x/", "/api/..x/");
    expect("/api/x./", "/api/x./");
    expect("/api/.../", "/api/.../");
    expect("/api/..../", "/api/..../");
    expect("/api/.%2e.", "/api/...");
}

/* RFC 3986 5.2.4: a final "." or ".." leaves the path ending in '/'. */
static void test_trailing_slash_rules(void **state)
{
    (void)state;
    expect("/.", "/");
    expect("/a/b/.", "/a/b/");
    expect("/a/b/./", "/a/b/");
    expect("/a/b/..", "/a/");
    expect("/a/b/../", "/a/");
    expect("/a/..", "/");
    expect("/a/b/./c", "/a/b/c");
    expect("/a/b/../c", "/a/c");
    expect("/a/b", "/a/b");
    expect("/a/b/", "/a/b/");
    expect("/a/b/%2e", "/a/b/");
    expect("/a/b/%2E%2e", "/a/");
    expect("/a/b/.?x", "/a/b/");
    expect("/a/b/..#x", "/a/");
}

static void test_slash_merging(void **state)
{
    (void)state;
    expect("//", "/");
    expect("////", "/");
    expect("//api///x////", "/api/x/");
    expect("/api/x%2F%2F%2Fy", "/api/x/y");
    expect("/api/x/%2F", "/api/x/");
    expect("/api/./././x", "/api/x");
}

static void test_relative_and_empty(void **state)
{
    (void)state;
    expect("", "/");
    expect(".", "/");
    expect("..", "/");
    expect("a", "/a");
    expect("a/b/", "/a/b/");
    expect("api/x?q", "/api/x");
    expect("%2Fapi", "/api");
    expect("*", "/*");
}

/* A canonical path of n bytes: '/' and n - 1 copies of 'a'. */
static char *slash_a(size_t n)
{
    char *s = malloc(n + 1);

    assert_non_null(s);
    memset(s, 'a', n);
    s[0] = '/';
    s[n] = '\0';
    return s;
}

static void expect_too_long(const char *in, size_t len)
{
    char out[PATH_CANON_MAX + 1];
    size_t outlen;

    assert_int_equal(canon(in, len, out, &outlen), -1);
    assert_string_equal(out, "");
    assert_int_equal(outlen, 0);
}

static void test_length_bound_literal(void **state)
{
    char *s = slash_a(PATH_CANON_MAX + 1);
    char *w = slash_a(PATH_CANON_MAX + 2);

    (void)state;
    assert_int_equal(PATH_CANON_MAX, 2048);
    s[PATH_CANON_MAX] = '\0';
    expect(s, s); /* exactly 2048 */
    s[PATH_CANON_MAX] = 'a';
    expect_too_long(s, PATH_CANON_MAX + 1); /* 2049 */
    /* 2047 bytes, then a trailing '/' (2048) or "/." (also 2048). */
    w[PATH_CANON_MAX - 1] = '/';
    w[PATH_CANON_MAX] = '\0';
    expect(w, w);
    w[PATH_CANON_MAX] = '.';
    w[PATH_CANON_MAX + 1] = '\0';
    assert_int_equal(strlen(w), PATH_CANON_MAX + 1);
    {
        char want[PATH_CANON_MAX + 1];

        memcpy(want, w, PATH_CANON_MAX);
        want[PATH_CANON_MAX] = '\0';
        expect(w, want);
    }
    /* 2048 bytes, then a trailing '/': 2049. */
    s[PATH_CANON_MAX] = '/';
    expect_too_long(s, PATH_CANON_MAX + 1);
    free(w);
    free(s);
}

/* The bound is on the canonical form: escapes count three bytes each,
 * whether they were escapes or raw bytes in the input. */
static void test_length_bound_escapes(void **state)
{
    char *s = slash_a(PATH_CANON_MAX + 1);
    char *enc = malloc(3 * PATH_CANON_MAX + 4);
    size_t end = 1 + 3 * (size_t)(PATH_CANON_MAX - 1); /* "/" and 2047 "%41" */
    char out[PATH_CANON_MAX + 1];
    size_t outlen;

    (void)state;
    assert_non_null(enc);
    /* '/', 2044 'a', a space: 2045 + 3 = 2048. */
    s[PATH_CANON_MAX - 3] = ' ';
    s[PATH_CANON_MAX - 2] = '\0';
    assert_int_equal(canon(s, strlen(s), out, &outlen), 0);
    assert_int_equal(outlen, PATH_CANON_MAX);
    assert_string_equal(out + PATH_CANON_MAX - 3, "%20");
    /* '/', 2045 'a', a byte 0xff: 2046 + 3 = 2049. */
    s[PATH_CANON_MAX - 3] = 'a';
    s[PATH_CANON_MAX - 2] = (char)0xff;
    s[PATH_CANON_MAX - 1] = '\0';
    expect_too_long(s, strlen(s));
    /* A long input whose canonical form is short is fine: 2047 "%41". */
    enc[0] = '/';
    for (size_t i = 0; i < PATH_CANON_MAX - 1; i++) {
        memcpy(enc + 1 + 3 * i, "%41", 3);
    }
    enc[end] = '\0';
    assert_int_equal(canon(enc, strlen(enc), out, &outlen), 0);
    assert_int_equal(outlen, PATH_CANON_MAX);
    /* ...and one more "%41" is one byte too many. */
    memcpy(enc + end, "%41", 4);
    expect_too_long(enc, strlen(enc));
    free(enc);
    free(s);
}

static void test_uri_max(void **state)
{
    char *big = malloc(PATH_URI_MAX + 2);
    char out[PATH_CANON_MAX + 1];
    size_t outlen;

    (void)state;
    assert_non_null(big);
    /* PATH_URI_MAX bytes of "/a/.." repeats and slashes: canonical "/". */
    for (size_t i = 0; i < PATH_URI_MAX + 1; i++) {
        big[i] = "/a/.."[i % 5];
    }
    big[PATH_URI_MAX + 1] = '\0';
    for (size_t i = PATH_URI_MAX - PATH_URI_MAX % 5; i < PATH_URI_MAX + 1; i++) {
        big[i] = '/';
    }
    assert_int_equal(canon(big, PATH_URI_MAX, out, &outlen), 0);
    assert_string_equal(out, "/");
    /* One byte more is rejected unexamined, though its canonical form is
     * short. */
    expect_too_long(big, PATH_URI_MAX + 1);
    /* Also when the excess is after a '?'. */
    memset(big, '/', PATH_URI_MAX + 1);
    big[1] = '?';
    expect_too_long(big, PATH_URI_MAX + 1);
    free(big);
}

/* ---- random byte strings ------------------------------------------------ */

static uint64_t rng_state;

/* splitmix64: small, good enough, and the same on every platform. */
static uint64_t rng(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t seed_from_env(void)
{
    const char *s = getenv("REQSTATS_TEST_SEED");
    char *end = NULL;
    unsigned long long v;

    if (s == NULL || *s == '\0') {
        return DEFAULT_SEED;
    }
    errno = 0;
    v = strtoull(s, &end, 0);
    if (errno != 0 || *end != '\0') {
        fail_msg("REQSTATS_TEST_SEED=%s is not a number", s);
    }
    return v;
}

/* Append to buf one piece from an alphabet biased toward what decoding and
 * dot-segment removal act on. With `plain`, without '.', '?' and '#':
 * long inputs full of ".." collapse and long inputs with a '?' are cut, and
 * neither would reach the length bound. Returns the new length (<= cap). */
static size_t random_piece(unsigned char *buf, size_t n, size_t cap, int plain)
{
    static const char *const tokens[] = {"/",   "/",   "//",  ".",   "..",  "/./", "/../",
                                         "%",   "%2e", "%2E", "%2f", "%2F", "%25", "%00",
                                         "%c3", "%A9", "%3f", "%23", "%5C", "%%",  "%7e"};
    static const char hexdigits[] = "0123456789abcdefABCDEF";
    unsigned char piece[8];
    size_t k = 1;
    unsigned r = (unsigned)(rng() % 100);

    if (r < 30) {
        const char *t = tokens[rng() % (sizeof(tokens) / sizeof(tokens[0]))];

        k = strlen(t);
        memcpy(piece, t, k);
    } else if (r < 50) {
        piece[0] = (unsigned char)hexdigits[rng() % (sizeof(hexdigits) - 1)];
    } else if (r < 58) {
        piece[0] = '%';
    } else if (r < 66) {
        piece[0] = '/';
    } else if (r < 72) {
        piece[0] = '.';
    } else if (r < 77) {
        piece[0] = '\0';
    } else if (r < 87) {
        piece[0] = (unsigned char)(0x80 + rng() % 0x80);
    } else if (r < 92) {
        piece[0] = (unsigned char)("\"\\ <>\r\n\t"[rng() % 8]);
    } else if (r < 93) {
        piece[0] = (unsigned char)(rng() % 2 ? '?' : '#');
    } else {
        piece[0] = (unsigned char)(rng() % 256);
    }
    if (n + k > cap) {
        return n;
    }
    for (size_t j = 0; plain && j < k; j++) {
        if (piece[j] == '.' || piece[j] == '?' || piece[j] == '#') {
            piece[j] = 'x';
        }
    }
    memcpy(buf + n, piece, k);
    return n + k;
}

/* A random input of a random length: mostly short, sometimes around the
 * 2048-byte bound (raw or as escapes), rarely over PATH_URI_MAX. */
static size_t random_input(unsigned char *buf, size_t cap)
{
    size_t target, n = 0;
    unsigned r = (unsigned)(rng() % 100);
    int plain = 0;

    if (r < 65) {
        target = rng() % 64;
    } else if (r < 85) {
        target = rng() % 600;
    } else if (r < 99) {
        target = 600 + rng() % 3000; /* escapes push many over 2048 */
        plain = (int)(rng() % 2);
    } else {
        target = PATH_URI_MAX - 8 + rng() % 16;
    }
    if (target > cap) {
        target = cap;
    }
    if (rng() % 2) {
        buf[n++] = '/';
    }
    while (n < target) {
        size_t m = random_piece(buf, n, target, plain);

        if (m == n) {
            buf[n++] = '/';
        } else {
            n = m;
        }
    }
    return n;
}

static void report(uint64_t seed, int i, const unsigned char *in, size_t len, const char *what)
{
    char hex[2 * 64 + 1];
    size_t shown = len < 64 ? len : 64;

    for (size_t k = 0; k < shown; k++) {
        snprintf(hex + 2 * k, 3, "%02x", in[k]);
    }
    hex[2 * shown] = '\0';
    fail_msg("seed 0x%llx case %d (len %zu, first bytes %s): %s", (unsigned long long)seed, i, len,
             hex, what);
}

static void test_random_properties(void **state)
{
    static unsigned char in[PATH_URI_MAX + 16];
    static char want[3 * PATH_URI_MAX + 8];
    uint64_t seed = seed_from_env();
    char out[PATH_CANON_MAX + 1], again[PATH_CANON_MAX + 1];
    int ok = 0, rejected = 0, dots = 0, escapes = 0, near = 0;

    (void)state;
    rng_state = seed;
    print_message("# path properties: seed 0x%llx (set REQSTATS_TEST_SEED to change)\n",
                  (unsigned long long)seed);
    for (int i = 0; i < RANDOM_CASES; i++) {
        size_t len = random_input(in, sizeof(in));
        size_t outlen = 0, againlen = 0;
        size_t wantlen = model_canon(in, len, want, sizeof(want));
        const char *bad;
        int rc = canon((const char *)in, len, out, &outlen);

        assert_true(wantlen != (size_t)-1);
        if (rc != 0) {
            if (len <= PATH_URI_MAX && wantlen <= PATH_CANON_MAX) {
                report(seed, i, in, len, "rejected, yet short enough");
            }
            rejected++;
            continue;
        }
        if (len > PATH_URI_MAX) {
            report(seed, i, in, len, "accepted an input over PATH_URI_MAX");
        }
        bad = model_check(out, outlen);
        if (bad != NULL) {
            report(seed, i, in, len, bad);
        }
        if (strcmp(out, want) != 0) {
            report(seed, i, in, len, "differs from the model of docs/API.md");
        }
        if (canon(out, outlen, again, &againlen) != 0 || strcmp(again, out) != 0) {
            report(seed, i, in, len, "canon(canon(p)) != canon(p)");
        }
        ok++;
        dots += memchr(in, '.', len) != NULL && outlen < len;
        escapes += strchr(out, '%') != NULL;
        near += outlen > PATH_CANON_MAX - 256;
    }
    print_message("# path properties: %d accepted (%d within 256 bytes of the bound), "
                  "%d rejected, %d with dots, %d with escapes\n",
                  ok, near, rejected, dots, escapes);
    /* The generator must really reach every branch. */
    assert_true(ok > RANDOM_CASES / 2);
    assert_true(rejected > 200);
    assert_true(near > 20);
    assert_true(dots > 1000);
    assert_true(escapes > 1000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_api_examples),         cmocka_unit_test(test_query_and_fragment_cut),
        cmocka_unit_test(test_percent_edges),        cmocka_unit_test(test_reencoding),
        cmocka_unit_test(test_every_byte),           cmocka_unit_test(test_dot_segments),
        cmocka_unit_test(test_trailing_slash_rules), cmocka_unit_test(test_slash_merging),
        cmocka_unit_test(test_relative_and_empty),   cmocka_unit_test(test_length_bound_literal),
        cmocka_unit_test(test_length_bound_escapes), cmocka_unit_test(test_uri_max),
        cmocka_unit_test(test_random_properties),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
