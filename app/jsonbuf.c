/* jsonbuf.c -- JSON written straight into a buffer, for the hot answers
 *
 * jansson builds a tree of allocated values before it prints one; for the
 * two answers on the hot path, {"path": ...} of /api/... and the
 * /stats/ page, that tree cost more than everything else the worker does (a
 * profile of /stats/?limit=100 showed two thirds of the worker's CPU in
 * jansson and malloc). Their shape is fixed and their only strings are
 * paths, so they are written directly here; every other answer (errors,
 * test runs) still goes through jansson. Unit tests parse what this writes
 * back with jansson.
 */

#include "jsonbuf.h"

#include <stdlib.h>
#include <string.h>

void jsonbuf_init(struct jsonbuf *jb, char *storage, size_t size)
{
    jb->data = storage;
    jb->len = 0;
    jb->cap = size;
    jb->heap = 0;
    jb->failed = 0;
}

void jsonbuf_free(struct jsonbuf *jb)
{
    if (jb->heap) {
        free(jb->data);
    }
    jb->data = NULL;
    jb->heap = 0;
    jb->len = jb->cap = 0;
}

int jsonbuf_failed(const struct jsonbuf *jb)
{
    return jb->failed;
}

/* Make room for n more bytes. Returns 0, or -1 (and marks failure). */
static int reserve(struct jsonbuf *jb, size_t n)
{
    size_t cap;
    char *p;

    if (jb->failed) {
        return -1;
    }
    if (jb->cap - jb->len >= n) {
        return 0;
    }
    cap = jb->cap * 2 > jb->len + n ? jb->cap * 2 : jb->len + n;
    p = jb->heap ? realloc(jb->data, cap) : malloc(cap);
    if (p == NULL) {
        jb->failed = 1;
        return -1;
    }
    if (!jb->heap) {
        memcpy(p, jb->data, jb->len);
    }
    jb->data = p;
    jb->cap = cap;
    jb->heap = 1;
    return 0;
}

void jsonbuf_raw(struct jsonbuf *jb, const char *s, size_t len)
{
    if (reserve(jb, len) == 0) {
        memcpy(jb->data + jb->len, s, len);
        jb->len += len;
    }
}

void jsonbuf_int(struct jsonbuf *jb, long long v)
{
    char tmp[24];
    size_t n = sizeof(tmp);
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;

    do {
        tmp[--n] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0) {
        tmp[--n] = '-';
    }
    jsonbuf_raw(jb, tmp + n, sizeof(tmp) - n);
}

void jsonbuf_path(struct jsonbuf *jb, const char *p, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    int printable = 1;
    char *o;

    for (size_t i = 0; i < len && printable; i++) {
        printable = (unsigned char)p[i] >= 0x20 && (unsigned char)p[i] < 0x7f;
    }
    /* Worst case: every byte becomes %XX or a two-byte escape, plus quotes. */
    if (reserve(jb, 3 * len + 2) != 0) {
        return;
    }
    o = jb->data + jb->len;
    *o++ = '"';
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)p[i];

        if (printable) {
            if (c == '"' || c == '\\') {
                *o++ = '\\';
            }
            *o++ = (char)c;
        } else if (c < 0x20 || c >= 0x7f || c == '%') {
            *o++ = '%';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 0x0f];
        } else if (c == '"' || c == '\\') {
            *o++ = '\\';
            *o++ = (char)c;
        } else {
            *o++ = (char)c;
        }
    }
    *o++ = '"';
    jb->len = (size_t)(o - jb->data);
}
