"""docs/API.md section 6: error bodies, and which errors are counted (section 1).

Errors the app answers (400, 404, 405, 414) and errors nginx answers itself
(a request line over 16 KiB, a body over 4 KiB, headers over 16 KiB, an
unparsable request) all have the same JSON shape with nginx's request id.
The app counts 400/404/405 like any request; a 414 for a canonical path
over 2048 bytes and every error nginx answers itself are not counted.

"Not counted" is shown behind barriers (support.py): one worker, and Redis
read directly, so the total must move by the marker alone.
"""

from corehelp import HEX32, CoreMixin, token
from support import parse_http
from support import StackTestCase

CANON_MAX = 2048


class Errors(CoreMixin, StackTestCase):

    # One worker for barrier(); no /stats/ cache, so a page read after a
    # barrier shows Redis as it is.
    app_env = {"WORKERS": "1", "STATS_CACHE_MS": "0"}

    def check_error(self, r, status, code):
        err = self.assertError(r, status, code)
        self.assertRegex(err["request_id"], HEX32)
        self.assertEqual(r.headers.get("x-request-id"), err["request_id"])
        self.assertEqual(set(r.json()), {"error"})
        return err

    def test_app_errors_shape_and_counted(self):
        t = token()
        cases = [
            ("GET", "/nope-%s/" % t, None, 404, "not_found", "/nope-%s/" % t),
            ("GET", "/nope-%s" % t, None, 404, "not_found", "/nope-%s" % t),
            ("POST", "/api/err-%s/" % t, b"{}", 405, "method_not_allowed", "/api/err-%s/" % t),
            ("DELETE", "/api/err-%s/x/" % t, None, 405, "method_not_allowed",
             "/api/err-%s/x/" % t),
        ]
        for method, path, body, status, code, _ in cases:
            with self.subTest(method=method, path=path):
                r = self.request(method, path, body=body)
                self.check_error(r, status, code)
                if status == 405:
                    self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        self.wait_counts({key: 1 for _, _, _, _, _, key in cases})

    def test_400_shape_and_counted(self):
        self.barrier()
        total0, reads0 = self.redis_total(), self.zscore("/stats/")
        for q in ("limit=0", "offset=-1", "limit=abc"):
            with self.subTest(q=q):
                err = self.check_error(self.get("/stats/?" + q), 400, "bad_request")
                self.assertIn(q.split("=")[0], err["message"])
        self.barrier()
        self.assertEqual(self.zscore("/stats/") - reads0, 3, "the 400s counted under /stats/")
        self.assertEqual(self.redis_total() - total0, 3 + 1)   # + the marker

    def test_414_canonical_over_2048_not_counted(self):
        t = token()
        base = "/api/long-%s/" % t
        long_paths = [
            base + "x" * 3000,                                  # a 3 KB path
            base + "y" * (CANON_MAX + 1 - len(base)),           # 2049 bytes
            (base + "\u00e9" * 700).encode("utf-8"),            # 1.4 KB raw, 4.2 KB canonical
            base + "%c3%a9" * 400,                              # escapes stay 6 bytes each
        ]
        self.barrier()
        before_total = self.redis_total()
        for p in long_paths:
            with self.subTest(path=p[:60]):
                r = self.send_raw("GET", p)
                self.check_error(r, 414, "uri_too_long")
                self.assertIn("2048", r.json()["error"]["message"])
        self.barrier()
        self.assertEqual(self.redis_total() - before_total, 1, "a 414 was counted")
        self.assertEqual([k for k in self.counts() if k.startswith(base)], [])

    def test_2048_byte_canonical_path_counted(self):
        t = token()
        base = "/api/edge-%s/" % t
        exact = base + "z" * (CANON_MAX - len(base))
        self.assertEqual(len(exact), CANON_MAX)
        # Longer than 2048 on the wire, exactly 2048 once canonical: dot
        # segments, doubled slashes and a long query do not count.
        spelled = (base + "./" * 300 + "q/../" + "/" * 50 + "z" * (CANON_MAX - len(base)) +
                   "?" + "p" * 3000)
        escaped = base + "%7A" * (CANON_MAX - len(base))
        for p in (exact, spelled, escaped):
            with self.subTest(path=p[:60]):
                body = self.assertJson(self.send_raw("GET", p), 200)
                self.assertEqual(body["path"], exact)
        self.wait_counts({exact: 3})

    def test_nginx_errors_json_and_not_counted(self):
        t = token()
        port_host = "Host: %s:%d\r\n" % self.host_port()
        cases = [
            # (what, raw request, status, code)
            ("request line over 16 KiB",
             b"GET /api/nx-" + t.encode() + b"/" + b"a" * 17000 + b" HTTP/1.1\r\n" +
             port_host.encode() + b"Connection: close\r\n\r\n", 414, "uri_too_long"),
            ("body over 4 KiB",
             b"POST /api/nx-" + t.encode() + b"/body/ HTTP/1.1\r\n" + port_host.encode() +
             b"Content-Length: 5000\r\nConnection: close\r\n\r\n" + b"b" * 5000,
             413, "payload_too_large"),
            ("header over 16 KiB",
             b"GET /api/nx-" + t.encode() + b"/hdr/ HTTP/1.1\r\n" + port_host.encode() +
             b"X-Big: " + b"h" * 17000 + b"\r\nConnection: close\r\n\r\n", 400, None),
            ("unparsable request line",
             b"GARBAGE\r\n\r\n", 400, None),
            ("no Host header",
             b"GET /api/nx-" + t.encode() + b"/host/ HTTP/1.1\r\nConnection: close\r\n\r\n",
             400, None),
            ("invalid Host header",
             b"GET /api/nx-" + t.encode() + b"/host2/ HTTP/1.1\r\nHost: a b\r\n"
             b"Connection: close\r\n\r\n", 400, None),
            ("unsupported HTTP version",
             b"GET /api/nx-" + t.encode() + b"/ver/ HTTP/3.0\r\n\r\n", 505, None),
        ]
        self.barrier()
        before_total = self.redis_total()
        for what, data, status, code in cases:
            with self.subTest(what=what):
                r = parse_http(self.raw(data))
                self.check_error(r, status, code)
        self.barrier()
        self.assertEqual(self.redis_total() - before_total, 1, "an nginx error was counted")
        self.assertEqual([k for k in self.counts() if ("nx-" + t) in k], [])
