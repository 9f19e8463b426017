/* path_model.h -- an independent model of the canonical path, for tests
 *
 * A second, deliberately plain implementation of docs/API.md section 1, written
 * from the contract and not from app/path.c, used by tests/unit/test_path.c
 * and tests/fuzz/fuzz_path.c to check path_canon() differentially:
 *
 *   1. cut at the first '?' or '#';
 *   2. decode each %XX whose two hex digits come before the cut;
 *   3. split the decoded bytes on '/' (so runs of '/' merge and "%2F"
 *      separates), push plain segments on a stack, drop ".", pop on ".."
 *      (never below the root); the result ends with '/' when the decoded
 *      path did, or when its last non-empty segment was "." or ".." (RFC
 *      3986 5.2.4);
 *   4. encode every byte outside the docs/API.md set as upper-case %XX.
 *
 * It computes the length without any bound, so a caller can tell a correct
 * -1 (canonical form over PATH_CANON_MAX) from a wrong one. It allocates:
 * tests only. Also here: model_check(), the properties docs/API.md promises of
 * every canonical path, shared by both callers so they check the same thing.
 */

#ifndef REQSTATS_PATH_MODEL_H
#define REQSTATS_PATH_MODEL_H

#include <stdlib.h>
#include <string.h>

#include "path.h"

static int model_hex(unsigned char c)
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

/* 1 if docs/API.md step 4 leaves byte c as it is. */
static int model_literal(unsigned char c)
{
    static const char keep[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                               "0123456789-._~!$&'()*+,;=:@/";

    return c != '\0' && memchr(keep, c, sizeof(keep) - 1) != NULL;
}

/* Append the encoding of seg[0..len) to out (at most cap bytes kept, the
 * length always counted) at *pos. */
static void model_put(const unsigned char *seg, size_t len, char *out, size_t cap, size_t *pos)
{
    static const char hex[] = "0123456789ABCDEF";

    for (size_t i = 0; i < len; i++) {
        char enc[3] = {(char)seg[i], 0, 0};
        size_t k = 1;

        if (!model_literal(seg[i])) {
            enc[0] = '%';
            enc[1] = hex[seg[i] >> 4];
            enc[2] = hex[seg[i] & 0x0f];
            k = 3;
        }
        for (size_t j = 0; j < k; j++, (*pos)++) {
            if (*pos < cap) {
                out[*pos] = enc[j];
            }
        }
    }
}

/* The canonical path of uri[0..len), as docs/API.md defines it and without the
 * length bound. Writes up to cap - 1 bytes and a NUL into out (cap >= 1)
 * and returns the full length, or (size_t)-1 when out of memory. */
static size_t model_canon(const unsigned char *uri, size_t len, char *out, size_t cap)
{
    unsigned char *dec = NULL;
    size_t *segs = NULL; /* start, length pairs of the kept segments */
    size_t cut = 0, n = 0, nsegs = 0, pos = 0, result = (size_t)-1;
    int trailing = 0;

    while (cut < len && uri[cut] != '?' && uri[cut] != '#') {
        cut++;
    }
    dec = malloc(cut + 1);
    segs = malloc((cut / 2 + 1) * 2 * sizeof(*segs));
    if (dec == NULL || segs == NULL) {
        goto out;
    }
    for (size_t i = 0; i < cut; i++) {
        if (uri[i] == '%' && i + 2 < cut && model_hex(uri[i + 1]) >= 0 &&
            model_hex(uri[i + 2]) >= 0) {
            dec[n++] = (unsigned char)(model_hex(uri[i + 1]) * 16 + model_hex(uri[i + 2]));
            i += 2;
        } else {
            dec[n++] = uri[i];
        }
    }

    for (size_t i = 0; i < n;) {
        size_t start = i;

        while (i < n && dec[i] != '/') {
            i++;
        }
        if (i > start) {
            size_t slen = i - start;

            if (slen == 1 && dec[start] == '.') {
                trailing = 1;
            } else if (slen == 2 && dec[start] == '.' && dec[start + 1] == '.') {
                nsegs -= nsegs > 0;
                trailing = 1;
            } else {
                segs[2 * nsegs] = start;
                segs[2 * nsegs + 1] = slen;
                nsegs++;
                trailing = 0;
            }
        }
        if (i < n) {
            i++; /* the '/'; a segment after it sets trailing again */
            trailing = 1;
        }
    }

    for (size_t s = 0; s < nsegs; s++) {
        model_put((const unsigned char *)"/", 1, out, cap, &pos);
        model_put(dec + segs[2 * s], segs[2 * s + 1], out, cap, &pos);
    }
    if (nsegs == 0 || trailing) {
        model_put((const unsigned char *)"/", 1, out, cap, &pos);
    }
    out[pos < cap ? pos : cap - 1] = '\0';
    result = pos;

out:
    free(segs);
    free(dec);
    return result;
}

/* NULL if out[0..len) has every property docs/API.md promises of a canonical
 * path, else what is wrong. */
static const char *model_check(const char *out, size_t len)
{
    if (len == 0 || len > PATH_CANON_MAX) {
        return "length outside 1..PATH_CANON_MAX";
    }
    if (strlen(out) != len) {
        return "length differs from strlen (missing NUL or NUL inside)";
    }
    if (out[0] != '/') {
        return "does not start with '/'";
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];

        if (c <= 0x20 || c >= 0x7f) {
            return "byte outside printable ASCII (or a space)";
        }
        if (c == '"' || c == '\\' || c == '?' || c == '#') {
            return "contains '\"', '\\\\', '?' or '#'";
        }
        if (c == '%') {
            for (size_t k = 1; k <= 2; k++) {
                unsigned char h = (unsigned char)(i + k < len ? out[i + k] : '\0');

                if (!((h >= '0' && h <= '9') || (h >= 'A' && h <= 'F'))) {
                    return "'%' not followed by two upper-case hex digits";
                }
            }
        }
        if (c == '/' && i + 1 < len && out[i + 1] == '/') {
            return "contains \"//\"";
        }
        if (c == '/' && i + 1 < len && out[i + 1] == '.') {
            size_t dots = 1;

            while (i + 1 + dots < len && out[i + 1 + dots] == '.') {
                dots++;
            }
            if (dots <= 2 && (i + 1 + dots == len || out[i + 1 + dots] == '/')) {
                return "contains a \".\" or \"..\" segment";
            }
        }
    }
    return NULL;
}

#endif
