/* path.h -- the canonical path a request is counted under (docs/API.md 1) */

#ifndef REQSTATS_PATH_H
#define REQSTATS_PATH_H

#include <stddef.h>

/* Longest canonical path, in bytes, that is counted; longer ones get 414. */
#define PATH_CANON_MAX 2048

/* Longest REQUEST_URI the module looks at. nginx's header buffers stop
 * longer request lines before they reach the app; anything longer that
 * arrives anyway is answered 414 without being examined. */
#define PATH_URI_MAX 16384

/* Compute the canonical path of a raw REQUEST_URI of len bytes (any bytes,
 * NUL included): cut at '?' or '#', decode %XX, remove dot-segments, merge
 * slashes, re-encode every byte outside A-Z a-z 0-9 -._~!$&'()*+,;=:@/ as
 * upper-case %XX. The result is printable ASCII, starts with '/', and never
 * contains '"', '\\', '%' other than in an escape, '?' or '#'.
 *
 * out must hold PATH_CANON_MAX + 1 bytes; on success it receives the
 * NUL-terminated path, *outlen its length, and 0 is returned. Returns -1 if
 * the canonical path would be longer than PATH_CANON_MAX bytes or len is
 * over PATH_URI_MAX (out is then an empty string). Pure: no allocation, no
 * I/O, no global state. */
int path_canon(const char *uri, size_t len, char *out, size_t *outlen);

#endif
