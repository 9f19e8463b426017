/* path.c -- the canonical path a request is counted under (docs/API.md 1)
 *
 * The same resource must always land on the same counter, however a client
 * spelled it, and whatever lands in Redis must be safe to show anywhere.
 * The steps are docs/API.md's, in its order:
 *
 *   1. cut at the first '?' or '#';
 *   2. decode every %XX (a '%' without two hex digits stays literal);
 *   3. remove "." and ".." segments and merge runs of '/' ("..", never
 *      above the root), working on the decoded bytes, so "%2F" separates
 *      segments and "%2E%2E" climbs;
 *   4. re-encode: the RFC 3986 unreserved and sub-delim characters, ':',
 *      '@' and '/' stay, every other byte becomes %XX (upper-case hex).
 *
 * Decoding happens once, so the output is a fixed point: decoding it gives
 * back exactly the bytes step 3 produced, which are already free of dot
 * segments and double slashes. Work is O(len) with a stack buffer bounded
 * by PATH_URI_MAX; steps 2 and 3 run in place in that buffer because
 * removing segments only ever shrinks it.
 */

#include "path.h"

#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static int keep_literal(unsigned char c)
{
    if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')) {
        return 1;
    }
    return c != '\0' && strchr("-._~!$&'()*+,;=:@/", c) != NULL;
}

/* Steps 1 and 2: decode uri[0..len) up to '?' or '#' into buf after a
 * leading '/', so every segment is preceded by a separator. Returns the
 * number of bytes in buf. */
static size_t decode(const char *uri, size_t len, unsigned char *buf)
{
    size_t n = 0;

    buf[n++] = '/';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)uri[i];
        int hi, lo;

        if (c == '?' || c == '#') {
            break;
        }
        if (c == '%' && i + 2 < len && (hi = hexval((unsigned char)uri[i + 1])) >= 0 &&
            (lo = hexval((unsigned char)uri[i + 2])) >= 0) {
            buf[n++] = (unsigned char)(hi << 4 | lo);
            i += 2;
            continue;
        }
        buf[n++] = c;
    }
    return n;
}

/* Step 3, in place: buf[0..n) starts with '/'. Returns the new length; the
 * result starts with '/', has no empty, "." or ".." segment, and ends with
 * '/' when the input did or its last segment was "." or "..". */
static size_t remove_dots(unsigned char *buf, size_t n)
{
    size_t r = 0, w = 0;
    int trailing = 0;

    while (r < n) {
        size_t start, seglen;

        while (r < n && buf[r] == '/') {
            r++;
        }
        if (r == n) {
            trailing = 1;
            break;
        }
        start = r;
        while (r < n && buf[r] != '/') {
            r++;
        }
        seglen = r - start;
        trailing = 0;
        if (seglen == 1 && buf[start] == '.') {
            trailing = 1;
            continue;
        }
        if (seglen == 2 && buf[start] == '.' && buf[start + 1] == '.') {
            while (w > 0 && buf[w - 1] != '/') {
                w--;
            }
            if (w > 0) {
                w--; /* drop the separator before the removed segment */
            }
            trailing = 1;
            continue;
        }
        /* w < start always holds: each kept segment was preceded by at
         * least one '/' in the input, which pays for the one written. */
        buf[w++] = '/';
        memmove(buf + w, buf + start, seglen);
        w += seglen;
    }
    if (w == 0 || trailing) {
        buf[w++] = '/';
    }
    return w;
}

int path_canon(const char *uri, size_t len, char *out, size_t *outlen)
{
    static const char hex[] = "0123456789ABCDEF";
    unsigned char buf[PATH_URI_MAX + 1];
    size_t n, o = 0;

    out[0] = '\0';
    *outlen = 0;
    if (len > PATH_URI_MAX) {
        return -1;
    }
    n = remove_dots(buf, decode(uri, len, buf));

    for (size_t i = 0; i < n; i++) {
        unsigned char c = buf[i];

        if (keep_literal(c)) {
            if (o + 1 > PATH_CANON_MAX) {
                goto toolong;
            }
            out[o++] = (char)c;
        } else {
            if (o + 3 > PATH_CANON_MAX) {
                goto toolong;
            }
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0x0f];
        }
    }
    out[o] = '\0';
    *outlen = o;
    return 0;

toolong:
    out[0] = '\0';
    return -1;
}
