"""support.py -- what every integration test class shares.

StackTestCase starts a real stack (redis-server, the app binary named by
REQSTATS_BIN, nginx with the project's template) on free loopback ports in
a temporary directory, once per test class, and stops it afterwards. The
class fails in tearDownClass if any log holds a sanitizer report or an
nginx [alert]/[emerg] line.

parse_responses()/parse_http() read raw HTTP answers strictly (status
line, header names and bytes, Content-Length, nothing left over), for tests
that talk to nginx over raw sockets.

Waiting. No test sleeps to synchronise: it waits for a condition with a
deadline (wait_for), and the deadline is generous because the machine
may be busy; a test that passes returns as soon as the condition holds.
docs/API.md section 1 promises that a counted request is visible in
/stats/ within 100 ms of its response; the tests rely on "eventually"
and never on the 100 ms (bench/run measures it). Hence:

  * wait_counts({path: n}) polls /stats/ until each path has reached its
    count, then asserts the counts are exact. Paths a test makes its own
    (corehelp.token()) start at 0, so no "before" snapshot is needed.
  * Every test waits until its own hits, other than reads of /stats/,
    are visible before it ends. So at the start of the next test of the
    class only /stats/ hits can still be on their way: totals are
    compared as "hits outside /stats/" (report_snapshot()).
  * Absence ("this request was not counted", "nothing was applied
    twice") cannot be shown by waiting for a count. barrier() sends a
    new marker request and waits until Redis has it; on a stack with one
    worker (WORKERS=1) hits reach Redis in the order the worker took
    them (its buffer sends the oldest first), so every hit taken before
    the marker is then in Redis too, and a count that did not move by
    then will not move later. Where a class needs several workers, a
    graceful stop of the app is the barrier (it writes every held hit);
    fresh_app() stops it that way and starts it again, so the test goes
    on with an app that holds nothing.

Helpers every test file shares: Load (a bounded multi-threaded load on
keep-alive connections that records each request), run_load() (exact
request plans on concurrent connections), gone() (a process has exited),
redis_total()/zscore() (counts read from Redis directly, not counted).

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
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import stack  # noqa: E402  (tests/stack.py)

# The deadline of every wait: far above what any condition needs on an idle
# machine (milliseconds), so only a real failure reaches it.
WAIT_S = 30.0

# The app's default REDIS_PREFIX.
PREFIX = "reqstats:"


def wait_for(cond, what, timeout=WAIT_S, interval=0.02):
    """Poll cond() until it returns something true, and return that; fail
    the test (AssertionError) after timeout seconds."""
    try:
        return stack.wait_until(cond, timeout, what, interval)
    except RuntimeError as e:
        raise AssertionError(str(e)) from None


def gone(pid):
    """True if pid has exited (no such process, or a zombie nobody reaped yet)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            state = f.read()
    except OSError:
        return True
    return state.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def percentile(sorted_values, p):
    if not sorted_values:
        return float("nan")
    k = min(len(sorted_values) - 1, int(round(p / 100.0 * (len(sorted_values) - 1))))
    return sorted_values[k]


class Load:
    """Bounded HTTP load: `threads` threads, each on its own keep-alive connection.

    Sends GET path_of(i) for i = 0, 1, ... until `count` requests were sent or
    stop() was called, whichever first; with `spread` seconds given, request i
    is not sent before start + i * spread / count (an even pace). Every
    request is recorded as (i, path, t_start, t_end, status or None, error or
    None) with time.monotonic() times; answered() is the number of answers
    so far, for waiting until the load has made progress.

    retry_idle: a request on a reused connection that the server had closed
    (no byte of an answer received) is sent again once on a new connection,
    as HTTP clients do (RFC 9112 9.3.1); such retries are counted.
    """

    def __init__(self, host, port, path_of, threads=8, count=None, spread=None,
                 retry_idle=False, timeout=10):
        self.host, self.port = host, port
        self.path_of = path_of
        self.threads = threads
        self.count = count
        self.spread = spread
        self.retry_idle = retry_idle
        self.timeout = timeout
        self.records = []
        self.other_answers = []  # (status, Content-Type, body) of each non-200 answer
        self.idle_retries = 0
        self._answers = 0
        self._next = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._workers = []
        self.t0 = None

    def _take(self):
        with self._lock:
            if self._stop.is_set() or (self.count is not None and self._next >= self.count):
                return None
            i = self._next
            self._next += 1
            return i

    def _one(self, conn, path):
        conn.request("GET", path)
        r = conn.getresponse()
        body = r.read()
        if r.status != 200:
            with self._lock:
                self.other_answers.append((r.status, r.getheader("content-type"), body[:500]))
        return r.status

    def _run(self):
        conn = None
        used = False
        out = []
        while True:
            i = self._take()
            if i is None:
                break
            if self.spread:
                due = self.t0 + i * self.spread / self.count
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)  # pacing the load, not synchronising
            path = self.path_of(i)
            t_start = time.monotonic()
            status = error = None
            for attempt in (0, 1):
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                    used = False
                try:
                    status = self._one(conn, path)
                    used = True
                    error = None
                    break
                except (http.client.RemoteDisconnected, ConnectionResetError,
                        BrokenPipeError) as e:
                    conn.close()
                    conn = None
                    error = "%s: %s" % (type(e).__name__, e)
                    if not (self.retry_idle and used and attempt == 0):
                        break
                    with self._lock:
                        self.idle_retries += 1
                except (OSError, http.client.HTTPException) as e:
                    conn.close()
                    conn = None
                    error = "%s: %s" % (type(e).__name__, e)
                    break
            out.append((i, path, t_start, time.monotonic(), status, error))
            if status is not None:
                with self._lock:
                    self._answers += 1
        if conn is not None:
            conn.close()
        with self._lock:
            self.records.extend(out)

    def start(self):
        self.t0 = time.monotonic()
        for _ in range(self.threads):
            t = threading.Thread(target=self._run, daemon=True)
            t.start()
            self._workers.append(t)
        return self

    def stop(self):
        self._stop.set()

    def join(self, timeout=60):
        deadline = time.monotonic() + timeout
        for t in self._workers:
            t.join(max(0.1, deadline - time.monotonic()))
        if any(t.is_alive() for t in self._workers):
            raise AssertionError("load threads still running after %.0f s" % timeout)
        return self

    def answered(self):
        """Answers (any status) received so far; safe while the load runs."""
        with self._lock:
            return self._answers

    def wait_answered(self, n, what="the load"):
        """Wait until n more answers than now have arrived (the load is
        flowing); returns the new total."""
        want = self.answered() + n
        return wait_for(lambda: self.answered() >= want and self.answered(),
                        "%s to get %d more answers" % (what, n))

    # ---- results ----

    def ok(self):
        return [r for r in self.records if r[4] == 200]

    def failures(self):
        return [r for r in self.records if r[4] != 200]

    def ok_by_path(self):
        out = {}
        for r in self.ok():
            out[r[1]] = out.get(r[1], 0) + 1
        return out

    def latencies(self):
        return sorted(r[3] - r[2] for r in self.ok())


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


def finish_class(tmpdir, bad, code):
    """The end of a test class's stack: its directory removed unless a log
    holds bad lines (or REQSTATS_KEEP_LOGS is set); those lines, or an app
    exit status other than 0 on SIGTERM, fail the class."""
    if not os.environ.get("REQSTATS_KEEP_LOGS") and not bad:
        shutil.rmtree(tmpdir, ignore_errors=True)
    if bad:
        raise AssertionError("logs in %s hold %d bad lines:\n%s"
                             % (tmpdir, len(bad), "\n".join(bad[:20])))
    if code not in (0, None):
        raise AssertionError("the app exited with %s on SIGTERM" % code)


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
        finish_class(cls.tmpdir, cls.stack.bad_log_lines(), code)

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
        """docs/API.md 6 error object with status, code, message and request_id."""
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

    # ---- load ---------------------------------------------------------------

    def load(self, path_of, **kw):
        """A Load (not started) against this class's stack."""
        host, port = self.host_port()
        return Load(host, port, path_of, **kw)

    def run_load(self, plans, timeout=30):
        """Send requests concurrently, one keep-alive connection per plan.

        plans: a list of lists of (method, path); each inner list runs in
        order on its own connection, all connections start together.
        Returns {(method, path): [statuses]} and the list of errors.
        """
        host, port = self.host_port()
        results = [None] * len(plans)
        errors = []
        barrier = threading.Barrier(len(plans))

        def worker(i, plan):
            got = []
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                barrier.wait(timeout)
                for method, path in plan:
                    conn.request(method, path)
                    r = conn.getresponse()
                    r.read()
                    got.append((method, path, r.status))
            except Exception as e:  # reported by the caller's assertion
                errors.append("connection %d after %d requests: %r" % (i, len(got), e))
            finally:
                conn.close()
                results[i] = got

        threads = [threading.Thread(target=worker, args=(i, p), daemon=True)
                   for i, p in enumerate(plans)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 30)
        statuses = {}
        for got in results:
            for method, path, status in got or []:
                statuses.setdefault((method, path), []).append(status)
        return statuses, errors

    # ---- Redis, read directly (these reads are not counted) -------------------

    def redis_int(self, *args):
        v = self.require_stack().redis_cmd(*args)
        return int(float(v)) if v is not None else 0

    def redis_total(self):
        return self.redis_int("GET", PREFIX + "total")

    def zscore(self, path):
        return self.redis_int("ZSCORE", PREFIX + "hits", path)

    def zscores(self, paths):
        return {p: self.zscore(p) for p in paths}

    def wait_zscores(self, want, what="counts in Redis", timeout=WAIT_S):
        """Wait until Redis holds at least want[path] for each path, then
        assert it holds exactly that (fails at once on an overshoot)."""
        got = {}

        def reached():
            got.update(self.zscores(want))
            if any(got[p] > n for p, n in want.items()):
                return True
            return all(got[p] >= n for p, n in want.items())
        wait_for(reached, what, timeout)
        self.assertEqual(got, want, what)
        return got

    # ---- barriers --------------------------------------------------------------

    def barrier(self):
        """Return once every hit the app took before this call is in Redis.

        Sends a request to a new path (the marker) and waits until Redis
        has counted it. Sound only with one worker (see the header), so
        the class must set WORKERS=1; returns the marker's path (one more
        hit and one more distinct path in the report)."""
        self.require_stack()
        if self.app_env.get("WORKERS") != "1":
            raise AssertionError("barrier() needs a class with WORKERS=1")
        path = "/api/barrier-%s/" % os.urandom(6).hex()
        self.assertEqual(self.get(path).status, 200)
        wait_for(lambda: self.zscore(path) == 1, "the marker %s in Redis" % path)
        return path

    def fresh_app(self):
        """Stop the app gracefully and start it again: a barrier for any
        number of workers. The stop writes every hit the app held
        (docs/API.md section 1, Durable), and the new app has counted
        nothing yet, so Redis holds every hit counted so far until the
        test sends its next request. Returns once the app's socket accepts
        connections (a bare connect: no request, nothing counted)."""
        st = self.require_stack()
        self.assertEqual(st.stop_app(), 0, "the app's exit status on SIGTERM")
        with open(st.app_log, "rb") as f:
            self.assertNotIn(b"they are lost", f.read())
        st.start_app()

        def accepts():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                try:
                    s.connect(st.sock)
                except OSError:
                    return False
                return True
        wait_for(accepts, "the restarted app's socket to accept connections")

    # ---- the report ----------------------------------------------------------------

    def wait_counts(self, want, what="counts in /stats/", timeout=WAIT_S):
        """Poll /stats/ until each path of want has reached its count, then
        assert the counts are exact (fails at once on an overshoot).
        Returns every count of the last read."""
        seen = {}

        def reached():
            seen.clear()
            seen.update(self.counts())
            mine = {p: seen.get(p, 0) for p in want}
            if any(mine[p] > n for p, n in want.items()):
                return True
            return all(mine[p] >= n for p, n in want.items())
        wait_for(reached, what, timeout)
        self.assertEqual({p: seen.get(p, 0) for p in want}, want, what)
        return dict(seen)

    def report_snapshot(self):
        """One read of the report's first page, one consistent snapshot:
        {"total", "reads" (the count of /stats/), "others" (total - reads:
        hits outside the report, which only the test's own requests move;
        see the header), "unique_others" (distinct paths but /stats/)}."""
        page = self.stats(limit=10000)
        counts = {u["url"]: u["count"] for u in page["urls"]}
        if "/stats/" not in counts and page["next"] is not None:
            raise AssertionError("/stats/ is not on the first page of the report")
        reads = counts.get("/stats/", 0)
        return {"total": page["total_requests"], "reads": reads,
                "others": page["total_requests"] - reads,
                "unique_others": page["unique_urls"] - (1 if "/stats/" in counts else 0)}

    def wait_others(self, want, what="hits outside /stats/"):
        """Wait until the report shows want hits outside /stats/, then assert
        exactly that; returns the snapshot."""
        snap = {}

        def reached():
            snap.clear()
            snap.update(self.report_snapshot())
            return snap["others"] >= want
        wait_for(reached, what)
        self.assertEqual(snap["others"], want, what)
        return dict(snap)

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
