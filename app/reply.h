/* reply.h -- writing an HTTP answer as a FastCGI response */

#ifndef REQSTATS_REPLY_H
#define REQSTATS_REPLY_H

#include <fcgiapp.h>
#include <jansson.h>

/* Where an answer goes and what it must carry. */
struct reply {
    FCGX_Stream *out;
    int head;               /* HEAD request: headers only */
    const char *request_id; /* nginx's $request_id, NULL if absent */
};

/* Write status, headers and the JSON body (Content-Type application/json,
 * Content-Length, Cache-Control: no-store). extra_headers is NULL or a
 * block of complete "Name: value\r\n" lines built by the caller from
 * trusted values only. body is borrowed. Returns 0, or -1 when the body
 * could not be encoded (nothing was written then) or the stream failed. */
int reply_json(const struct reply *rp, int status, const char *extra_headers, const json_t *body);

/* Like reply_json() for a body already encoded as JSON (len bytes; the
 * caller ends it with a newline). Returns 0, or -1 if the stream failed. */
int reply_body(const struct reply *rp, int status, const char *extra_headers, const char *body,
               size_t len);

/* Write the docs/API.md 6 error object {"error": {status, code, message,
 * request_id}}. message must be UTF-8 (it is JSON-escaped). Returns as
 * reply_json(). */
int reply_error(const struct reply *rp, int status, const char *code, const char *message,
                const char *extra_headers);

/* Like reply_body() with another Content-Type (a trusted constant, e.g.
 * Prometheus's text format) and no extra headers. Returns 0 or -1. */
int reply_typed(const struct reply *rp, int status, const char *content_type, const char *body,
                size_t len);

#endif
