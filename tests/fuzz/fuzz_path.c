/* fuzz_path.c -- libFuzzer target for path.c
 *
 * Feeds arbitrary bytes to path_canon() under ASan and UBSan and checks
 * what docs/API.md 1 promises of the result: printable ASCII starting with '/',
 * no '"', '\\', '?', '#', '%' only in upper-case escapes, no empty or dot
 * segment, at most PATH_CANON_MAX bytes, canon(canon(p)) == canon(p), the
 * same bytes as the independent model in path_model.h, and -1 only when
 * the input is over PATH_URI_MAX or the canonical form would be over
 * PATH_CANON_MAX. Any violation aborts, which libFuzzer reports as a crash
 * and saves as an artifact. Built and run by tests/fuzz/run.
 */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "path.h"
#include "path_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room for the model's canonical form of any input path_canon() examines. */
static char model_out[3 * PATH_URI_MAX + 8];

static void violated(const char *what, size_t size)
{
    fprintf(stderr, "fuzz_path: property violated: %s (input of %zu bytes)\n", what, size);
    abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char out[PATH_CANON_MAX + 1], again[PATH_CANON_MAX + 1];
    size_t outlen = 0, againlen = 0, wantlen = 0;
    const char *bad;
    int rc;

    memset(out, 'Z', sizeof(out));
    rc = path_canon((const char *)data, size, out, &outlen);
    if (size <= PATH_URI_MAX) {
        wantlen = model_canon(data, size, model_out, sizeof(model_out));
        if (wantlen == (size_t)-1) {
            return 0; /* the model ran out of memory: nothing to compare */
        }
    }
    if (rc != 0) {
        if (rc != -1) {
            violated("returned neither 0 nor -1", size);
        }
        if (out[0] != '\0') {
            violated("-1 left a non-empty out", size);
        }
        if (size <= PATH_URI_MAX && wantlen <= PATH_CANON_MAX) {
            violated("-1 for an input and a canonical form within their bounds", size);
        }
        return 0;
    }
    if (size > PATH_URI_MAX) {
        violated("accepted an input over PATH_URI_MAX", size);
    }
    bad = model_check(out, outlen);
    if (bad != NULL) {
        violated(bad, size);
    }
    if (wantlen != outlen || memcmp(out, model_out, outlen) != 0) {
        violated("differs from the model of docs/API.md 1", size);
    }
    if (path_canon(out, outlen, again, &againlen) != 0 || againlen != outlen ||
        memcmp(again, out, outlen + 1) != 0) {
        violated("canon(canon(p)) != canon(p)", size);
    }
    return 0;
}
