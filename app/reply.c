/* reply.c -- writing an HTTP answer as a FastCGI response
 *
 * Every answer of the service is JSON and goes through reply_json(): the
 * body is encoded first (into a stack buffer when it fits, the heap when it
 * does not), so Content-Length is always exact and a body that cannot be
 * encoded turns into a 500 error instead of half a response. Header values
 * come only from the program's own constants and validated values; nothing
 * from the request is copied into a header unescaped.
 */

#include "reply.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 202:
        return "Accepted";
    case 308:
        return "Permanent Redirect";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 414:
        return "URI Too Long";
    case 429:
        return "Too Many Requests";
    case 503:
        return "Service Unavailable";
    default:
        return "Internal Server Error";
    }
}

int reply_body(const struct reply *rp, int status, const char *extra, const char *body, size_t len)
{
    char head[256];
    int n, elen = extra != NULL ? (int)strlen(extra) : 0;

    n = snprintf(head, sizeof(head),
                 "Status: %d %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %zu\r\nCache-Control: no-store\r\n",
                 status, reason(status), len);
    if (n < 0 || (size_t)n >= sizeof(head)) {
        return -1;
    }
    /* Extra headers (a Location can be several KiB) go out as they are. */
    if (FCGX_PutStr(head, n, rp->out) != n ||
        (elen > 0 && FCGX_PutStr(extra, elen, rp->out) != elen) ||
        FCGX_PutStr("\r\n", 2, rp->out) != 2) {
        return -1;
    }
    if (!rp->head && len > 0 && FCGX_PutStr(body, (int)len, rp->out) != (int)len) {
        return -1;
    }
    return 0;
}

/* Reals in answers (a run's rate and elapsed time) are already rounded;
 * 12 significant digits print them as rounded (1561.2, not
 * 1561.2000000000001) and still hold every value they can take. */
#define DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(12))

int reply_json(const struct reply *rp, int status, const char *extra_headers, const json_t *body)
{
    char stackbuf[4096];
    char *buf = stackbuf;
    size_t len;
    int rc;

    len = json_dumpb(body, stackbuf, sizeof(stackbuf) - 1, DUMP_FLAGS);
    if (len == 0) {
        return -1;
    }
    if (len > sizeof(stackbuf) - 1) {
        size_t need = len;

        buf = malloc(need + 1);
        if (buf == NULL || (len = json_dumpb(body, buf, need, DUMP_FLAGS)) != need) {
            free(buf);
            return -1;
        }
    }
    buf[len++] = '\n';
    rc = reply_body(rp, status, extra_headers, buf, len);
    if (buf != stackbuf) {
        free(buf);
    }
    return rc;
}

int reply_error(const struct reply *rp, int status, const char *code, const char *message,
                const char *extra_headers)
{
    json_t *body;
    int rc;

    body = json_pack("{s:{s:i, s:s, s:s, s:s?}}", "error", "status", status, "code", code,
                     "message", message, "request_id", rp->request_id);
    if (body == NULL) {
        static const char fallback[] = "{\"error\":{\"status\":500,\"code\":\"internal_error\","
                                       "\"message\":\"could not encode the error\","
                                       "\"request_id\":null}}\n";
        return reply_body(rp, 500, NULL, fallback, sizeof(fallback) - 1);
    }
    rc = reply_json(rp, status, extra_headers, body);
    json_decref(body);
    return rc;
}

/* ---- a body that is not JSON (GET /metrics, docs/API.md section 8) ---- */

int reply_typed(const struct reply *rp, int status, const char *content_type, const char *body,
                size_t len)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "Status: %d %s\r\nContent-Type: %s\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n\r\n",
                     status, reason(status), content_type, len);

    if (n < 0 || (size_t)n >= sizeof(head) || FCGX_PutStr(head, n, rp->out) != n) {
        return -1;
    }
    if (!rp->head && len > 0 && FCGX_PutStr(body, (int)len, rp->out) != (int)len) {
        return -1;
    }
    return 0;
}
