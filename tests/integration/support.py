"""support.py -- what every integration test class shares.

StackTestCase starts a real stack (redis-server, the app binary named by
REQSTATS_BIN, nginx with the project's template) on free loopback ports in
a temporary directory, once per test class, and stops it afterwards. The
class fails in tearDownClass if any log holds a sanitizer report or an
nginx [alert]/[emerg] line.

parse_responses()/parse_http() read raw HTTP answers strictly (status
line, header names and bytes, Content-Length, nothing left over), for tests
that talk to nginx over raw sockets.

Point the suite at a stack that is already running (make run,
docker-compose) with REQSTATS_BASE_URL=http://host:port; tests that need to
control processes (stop Redis, kill workers) or their own settings are then
skipped, and the stack should be otherwise idle (exact-count tests compare
totals).
"""

import http.client
import json
import os
import re
import shutil
import socket
import sys
import tempfile
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import stack  # noqa: E402  (tests/stack.py)

# API.md 1: a counted request is visible in /stats/ within 100 ms.
VISIBILITY_S = 0.1


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # lower-case name -> value (last one wins)
        self.header_list = []   # [(name, value)] as received
        self.body = body        # bytes

    def json(self):
        """The body as strict JSON: UTF-8 only, no NaN/Infinity."""
        text = self.body.decode("utf-8", "strict")

        def no_constants(name):
            raise ValueError("non-standard JSON constant %s" % name)
        return json.loads(text, parse_constant=no_constants)

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


# ---- raw HTTP answers ---------------------------------------------------------

# The status of an HTTP/0.9 answer (no status line at all).
HTTP09 = "http09"

# An HTTP header name (RFC 9110 token).
TOKEN = re.compile(rb"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class Http09Response(Response):
    """An HTTP/0.9 answer: a bare body without status line or headers."""

    def __init__(self, body):
        super().__init__(0, {}, body)
        self.status = HTTP09

    def __repr__(self):
        return "<HTTP/0.9 answer %r>" % self.body[:200]


def parse_responses(data, head_request):
    """Split the bytes of one connection into Response objects.

    A stream that does not start with 'HTTP/' is an HTTP/0.9 answer: status
    HTTP09, no headers, the rest is the body. Raises ValueError on anything
    malformed (a header line without a colon, a short body, ...)."""
    out = []
    while data:
        if not data.startswith(b"HTTP/"):
            if out:
                raise ValueError("bytes after the last response: %r" % data[:80])
            out.append(Http09Response(data))
            break
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            raise ValueError("incomplete header block: %r" % data[:200])
        lines = head.split(b"\r\n")
        m = re.match(rb"^HTTP/1\.[01] (\d{3}) [\x20-\x7e]*$", lines[0])
        if not m:
            raise ValueError("bad status line %r" % lines[0])
        header_list = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon or not TOKEN.match(name):
                raise ValueError("bad header line %r" % line)
            if re.search(rb"[\x00-\x08\x0a-\x1f\x7f]", value):
                raise ValueError("control byte in header %r" % line)
            header_list.append((name.decode("ascii"), value.strip().decode("latin-1")))
        headers = {k.lower(): v for k, v in header_list}
        if head_request:
            body = b""
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size_line, sep, rest = rest.partition(b"\r\n")
                if not sep:
                    raise ValueError("truncated chunk size")
                size = int(size_line.split(b";")[0], 16)
                if size == 0:
                    _, sep, rest = rest.partition(b"\r\n")
                    break
                body += rest[:size]
                rest = rest[size + 2:]
        elif "content-length" in headers:
            n = int(headers["content-length"])
            if len(rest) < n:
                raise ValueError("body of %d bytes, Content-Length %d" % (len(rest), n))
            body, rest = rest[:n], rest[n:]
        else:
            body, rest = rest, b""
        resp = Response(int(m.group(1)), headers, body)
        resp.header_list = header_list
        out.append(resp)
        data = rest
    return out



def parse_http(data, head_request=False):
    """Exactly one strictly parsed answer: the bytes of one connection that
    carried one request with Connection: close."""
    out = parse_responses(data, head_request)
    if len(out) != 1:
        raise AssertionError("expected one HTTP answer, got %d in %r" % (len(out), data[:300]))
    return out[0]


class StackTestCase(unittest.TestCase):
    """Base class: one stack per test class.

    Subclasses may set app_env (extra configuration for the app) and
    persist (Redis append-only file).
    """

    app_env = {}
    persist = False
    redis_password = None
    stack = None
    base_url = None

    @classmethod
    def setUpClass(cls):
        external = os.environ.get("REQSTATS_BASE_URL")
        if external:
            if cls.app_env or cls.persist or cls.redis_password:
                # Its settings cannot be applied to a stack we did not start.
                raise unittest.SkipTest("needs a stack with its own settings")
            cls.base_url = external.rstrip("/")
            cls.stack = None
            return
        cls.tmpdir = tempfile.mkdtemp(prefix="reqstats-test-")
        cls.stack = stack.Stack(cls.tmpdir, binary=os.environ.get("REQSTATS_BIN"),
                                app_env=cls.app_env, persist=cls.persist,
                                redis_password=cls.redis_password)
        cls.stack.start()
        cls.base_url = cls.stack.base_url

    @classmethod
    def tearDownClass(cls):
        if cls.stack is None:
            return
        code = cls.stack.stop_app()
        cls.stack.stop()
        bad = cls.stack.bad_log_lines()
        keep = os.environ.get("REQSTATS_KEEP_LOGS")
        if not keep and not bad:
            shutil.rmtree(cls.tmpdir, ignore_errors=True)
        if bad:
            raise AssertionError("logs in %s hold %d bad lines:\n%s"
                                 % (cls.tmpdir, len(bad), "\n".join(bad[:20])))
        if code not in (0, None):
            raise AssertionError("the app exited with %s on SIGTERM" % code)

    # ---- process control ----------------------------------------------------

    def require_stack(self):
        """Skip a test that must control the processes of the stack."""
        if self.stack is None:
            self.skipTest("needs a stack started by the test suite")
        return self.stack

    # ---- HTTP -----------------------------------------------------------------

    @classmethod
    def host_port(cls):
        u = urllib.parse.urlsplit(cls.base_url)
        return u.hostname, u.port or 80

    def request(self, method, path, body=None, headers=None, timeout=10):
        """One request on a fresh connection; path is sent exactly as given."""
        host, port = self.host_port()
        conn = http.client.HTTPConnection(host, port, timeout=timeout)
        try:
            conn.putrequest(method, path, skip_accept_encoding=True)
            for k, v in (headers or {}).items():
                conn.putheader(k, v)
            if body is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            r = conn.getresponse()
            data = r.read()
            resp = Response(r.status, {k.lower(): v for k, v in r.getheaders()}, data)
            resp.header_list = r.getheaders()
            return resp
        finally:
            conn.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, **kw):
        return self.request("POST", path, **kw)

    def raw(self, data, timeout=10):
        """Send raw bytes, return every byte the server answers until it closes."""
        host, port = self.host_port()
        with socket.create_connection((host, port), timeout=timeout) as s:
            s.sendall(data)
            chunks = []
            while True:
                try:
                    b = s.recv(65536)
                except socket.timeout:
                    break
                if not b:
                    break
                chunks.append(b)
            return b"".join(chunks)

    # ---- assertions -------------------------------------------------------------

    def assertJson(self, resp, status=None):
        """The response is application/json with a strict JSON body; returns it."""
        if status is not None:
            self.assertEqual(resp.status, status, resp)
        self.assertTrue(resp.headers.get("content-type", "").startswith("application/json"),
                        resp.headers)
        return resp.json()

    def assertError(self, resp, status, code=None):
        """API.md 6 error object with status, code, message and request_id."""
        body = self.assertJson(resp, status)
        err = body["error"]
        self.assertEqual(err["status"], status)
        self.assertIsInstance(err["message"], str)
        self.assertTrue(err["message"])
        self.assertIn("request_id", err)
        self.assertRegex(err["request_id"] or "", r"^[0-9a-f]{32}$")
        if code is not None:
            self.assertEqual(err["code"], code)
        return err

    # ---- the report ----------------------------------------------------------------

    def settle(self):
        """Wait out the batching window so every answered hit is visible."""
        time.sleep(VISIBILITY_S + 0.05)

    def stats(self, **params):
        q = urllib.parse.urlencode(params)
        return self.assertJson(self.get("/stats/" + ("?" + q if q else "")), 200)

    def counts(self):
        """Every counted path -> count, read page by page through /stats/."""
        out, offset = {}, 0
        while True:
            page = self.stats(limit=10000, offset=offset)
            for item in page["urls"]:
                out[item["url"]] = item["count"]
            if page["next"] is None:
                return out
            offset += page["limit"]

    def total(self):
        return self.stats(limit=1)["total_requests"]
