/* param.c -- request parameters: query-string lookup, strict numbers
 *
 * Numbers that arrive in a request (limit, offset, n) are accepted only as
 * plain decimal digits within a stated range: "+5", "-0", "1e3", "0x10",
 * " 5" and anything that overflows are rejected rather than guessed at, so
 * every caller can answer 400 with the range in its message. No allocation,
 * no locale, no global state.
 */

#include "param.h"

#include <string.h>

const char *param_find(const char *qs, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    const char *p = qs;

    if (qs == NULL) {
        return NULL;
    }
    while (*p != '\0') {
        const char *end = strchr(p, '&');
        size_t plen = end != NULL ? (size_t)(end - p) : strlen(p);

        if (plen >= nlen && memcmp(p, name, nlen) == 0 && (plen == nlen || p[nlen] == '=')) {
            *vlen = plen == nlen ? 0 : plen - nlen - 1;
            return plen == nlen ? p + nlen : p + nlen + 1;
        }
        if (end == NULL) {
            break;
        }
        p = end + 1;
    }
    return NULL;
}

int param_uint(const char *s, size_t len, unsigned long long min, unsigned long long max,
               unsigned long long *out)
{
    unsigned long long v = 0;

    if (len == 0) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned d;

        if (s[i] < '0' || s[i] > '9') {
            return -1;
        }
        d = (unsigned)(s[i] - '0');
        if (d > max || v > (max - d) / 10) { /* v * 10 + d > max, no overflow */
            return -1;
        }
        v = v * 10 + d;
    }
    if (v < min) {
        return -1;
    }
    *out = v;
    return 0;
}
