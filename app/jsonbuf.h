/* jsonbuf.h -- JSON written straight into a buffer, for the hot answers */

#ifndef REQSTATS_JSONBUF_H
#define REQSTATS_JSONBUF_H

#include <stddef.h>

/* A buffer that starts in caller storage and moves to the heap when it
 * outgrows it. After any allocation failure every call is a no-op and
 * jsonbuf_failed() is true, so a writer checks once at the end. */
struct jsonbuf {
    char *data;
    size_t len, cap;
    int heap;   /* data was allocated (and must be freed) */
    int failed; /* an allocation failed: the content is incomplete */
};

/* Start writing into storage[0..size). */
void jsonbuf_init(struct jsonbuf *jb, char *storage, size_t size);

/* Free heap storage, if any. */
void jsonbuf_free(struct jsonbuf *jb);

/* Append bytes as they are (caller guarantees they are valid JSON text). */
void jsonbuf_raw(struct jsonbuf *jb, const char *s, size_t len);

/* Append a string literal as it is. */
#define jsonbuf_lit(jb, literal) jsonbuf_raw((jb), (literal), sizeof(literal) - 1)

/* Append a decimal integer. */
void jsonbuf_int(struct jsonbuf *jb, long long v);

/* Append a JSON string for a stored path: printable ASCII is written with
 * '"' and '\\' escaped; a path holding any other byte (never one this
 * service stored, whose paths are canonical) is written with every byte
 * outside printable ASCII, and '%', as %XX, so the answer stays valid
 * UTF-8 JSON whatever is in Redis. */
void jsonbuf_path(struct jsonbuf *jb, const char *p, size_t len);

/* 1 if an allocation failed since jsonbuf_init(). */
int jsonbuf_failed(const struct jsonbuf *jb);

#endif
