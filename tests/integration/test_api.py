"""docs/API.md 2 (GET /api/*) and the headers every answer carries (docs/API.md 6)."""

from corehelp import HEX32, CoreMixin, token
from support import StackTestCase

WRONG_METHODS = ("POST", "PUT", "DELETE", "PATCH", "OPTIONS", "FOO")


class Api(CoreMixin, StackTestCase):

    def test_get_answers_path(self):
        t = token()
        cases = {
            "/api/": "/api/",
            "/api/%s/" % t: "/api/%s/" % t,
            "/api/%s/b/c/d/e/f/" % t: "/api/%s/b/c/d/e/f/" % t,
            "/api/%s" % t: "/api/%s" % t,  # no trailing slash: still an endpoint
            "/api/%s/x?q=1&r" % t: "/api/%s/x" % t,
        }
        for sent, canonical in cases.items():
            with self.subTest(path=sent):
                r = self.get(sent)
                body = self.assertJson(r, 200)
                self.assertIsInstance(body, dict)
                self.assertEqual(body["path"], canonical)
                self.assertEqual(r.headers.get("content-length"), str(len(r.body)))

    def test_head_has_headers_and_no_body(self):
        t = token()
        get = self.get("/api/%s/" % t)
        self.assertJson(get, 200)
        # A raw socket sees every byte: a body sent after a HEAD answer
        # would corrupt the next answer on a kept-alive connection.
        head = self.send_raw("HEAD", "/api/%s/" % t)
        self.assertEqual(head.status, 200)
        self.assertTrue(head.headers.get("content-type", "").startswith("application/json"),
                        head.headers)
        self.assertEqual(head.body, b"")
        self.assertRegex(head.headers.get("x-request-id", ""), HEX32)

    def test_head_then_get_on_one_connection(self):
        # HEAD followed by GET on one kept-alive connection: if the HEAD
        # answer carried a body the GET would read garbage.
        t = token()
        statuses, errors = self.run_load([[("HEAD", "/api/%s/1/" % t),
                                           ("GET", "/api/%s/2/" % t),
                                           ("HEAD", "/api/%s/3/" % t),
                                           ("GET", "/api/%s/4/" % t)]])
        self.assertEqual(errors, [])
        self.assertEqual(sorted(s for v in statuses.values() for s in v), [200] * 4)

    def test_wrong_methods_405(self):
        t = token()
        for method in WRONG_METHODS:
            with self.subTest(method=method):
                body = b"x=1" if method in ("POST", "PUT", "PATCH") else None
                r = self.request(method, "/api/%s/" % t, body=body)
                err = self.assertError(r, 405, "method_not_allowed")
                self.assertEqual(r.headers.get("allow"), "GET, HEAD")
                self.assertEqual(r.headers.get("x-request-id"), err["request_id"])

    def test_trace_405_has_allow(self):
        # nginx answers TRACE itself; it is still a wrong method and a 405
        # must say what is allowed (docs/API.md 2, RFC 9110 15.5.6).
        r = self.send_raw("TRACE", "/api/%s/" % token())
        err = self.assertError(r, 405)
        self.assertEqual(r.headers.get("x-request-id"), err["request_id"])
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")

    def test_every_answer_is_json(self):
        t = token()
        cases = [
            ("GET", "/api/%s/" % t, 200),
            ("HEAD", "/api/%s/" % t, 200),
            ("GET", "/stats/?limit=1", 200),
            ("HEAD", "/stats/", 200),
            ("GET", "/stats", 308),
            ("GET", "/stats/?limit=0", 400),
            ("GET", "/nope-%s/" % t, 404),
            ("HEAD", "/nope-%s/" % t, 404),
            ("DELETE", "/api/%s/" % t, 405),
            ("GET", "/api/" + "x" * 3000, 414),
        ]
        for method, path, status in cases:
            with self.subTest(method=method, path=path[:40]):
                r = self.send_raw(method, path)
                self.assertEqual(r.status, status, r)
                self.assertEqual(r.headers.get("content-type", "").split(";")[0].strip(),
                                 "application/json")
                self.assertRegex(r.headers.get("x-request-id", ""), HEX32)
                if method == "HEAD":
                    self.assertEqual(r.body, b"")
                else:
                    r.json()

    def test_error_request_id_matches_header(self):
        t = token()
        seen = set()
        for method, path, status in (("GET", "/nope-%s/" % t, 404),
                                     ("PUT", "/api/%s/" % t, 405),
                                     ("GET", "/stats/?offset=x", 400),
                                     ("GET", "/api/" + "y" * 2100, 414)):
            with self.subTest(status=status):
                r = self.request(method, path, body=b"" if method == "PUT" else None)
                err = self.assertError(r, status)
                self.assertRegex(err["request_id"], HEX32)
                self.assertEqual(r.headers.get("x-request-id"), err["request_id"])
                seen.add(err["request_id"])
        self.assertEqual(len(seen), 4, "request ids must differ between requests")
