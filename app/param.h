/* param.h -- request parameters: query-string lookup, strict numbers */

#ifndef REQSTATS_PARAM_H
#define REQSTATS_PARAM_H

#include <stddef.h>

/* Find the first "name=value" pair of the raw query string qs (may be NULL)
 * whose name is exactly `name` (no decoding). Returns a borrowed pointer to
 * the raw value inside qs, its length in *vlen (0 for "name=" or a bare
 * "name"), or NULL when the parameter is absent. */
const char *param_find(const char *qs, const char *name, size_t *vlen);

/* Parse s[0..len) as a decimal integer made of digits only (no sign, no
 * space, no exponent, leading zeros allowed) within [min, max]. Returns 0
 * and stores it in *out, or -1 when the text is empty, malformed, overflows
 * or is out of range. */
int param_uint(const char *s, size_t len, unsigned long long min, unsigned long long max,
               unsigned long long *out);

#endif
