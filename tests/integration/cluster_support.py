"""cluster_support.py -- integration tests against the app in cluster mode.

ClusterStackTestCase is StackTestCase (support.py) on a Redis Cluster: once
per test class it starts a LocalCluster (tests/cluster.py: 6 redis-server,
3 masters and 3 replicas) and the real stack on it (tests/stack.py with
redis_cluster=, so the app gets REDIS_CLUSTER and no redis-server of its
own), and stops both afterwards. `self.cluster` drives the faults.

Load sends a bounded number of GET /api/... requests from a few client
threads to the stack on 127.0.0.1 (keep-alive connections), while a test
breaks something, and records every answer per path: how many 200s, how
many other statuses, how many requests got no answer at all.
"""

import http.client
import os
import shutil
import tempfile
import threading
import time
import unittest

import cluster  # tests/cluster.py
import stack  # tests/stack.py
import support


def wait_for(cond, timeout, what, interval=0.05):
    """Poll cond() until it returns a true value (returned) or raise."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = cond()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError("timed out after %.1f s waiting for %s (last: %r)"
                         % (timeout, what, last))


class ClusterStackTestCase(support.StackTestCase):
    """One cluster and one stack on it per test class.

    cluster_password: requirepass on every node (REDIS_PASSWORD for the
    app); node_timeout_ms: the cluster's cluster-node-timeout.
    """

    cluster = None
    cluster_password = None
    node_timeout_ms = 2000

    @classmethod
    def setUpClass(cls):
        if os.environ.get("REQSTATS_BASE_URL"):
            raise unittest.SkipTest("needs a cluster started by the test suite")
        if shutil.which("redis-cli") is None:
            raise unittest.SkipTest("needs redis-cli (redis-tools)")
        cls.tmpdir = tempfile.mkdtemp(prefix="reqstats-cluster-test-")
        cls.cluster = cluster.LocalCluster(os.path.join(cls.tmpdir, "cluster"),
                                           password=cls.cluster_password,
                                           node_timeout_ms=cls.node_timeout_ms)
        cls.stack = None
        try:
            cls.cluster.start()
            cls.stack = stack.Stack(os.path.join(cls.tmpdir, "stack"),
                                    binary=os.environ.get("REQSTATS_BIN"),
                                    app_env=cls.app_env, redis_cluster=cls.cluster)
            cls.stack.start()
        except Exception:
            cls.cluster.stop()
            shutil.rmtree(cls.tmpdir, ignore_errors=True)
            raise
        cls.base_url = cls.stack.base_url

    @classmethod
    def tearDownClass(cls):
        # The stack first (the app writes its held hits), then the cluster,
        # which is stopped even when stopping the stack fails; then the
        # checks of StackTestCase: no bad log line, exit 0 on SIGTERM.
        code, bad = None, []
        try:
            if cls.stack is not None:
                code = cls.stack.stop_app()
                cls.stack.stop()
                bad = cls.stack.bad_log_lines()
        finally:
            if cls.cluster is not None:
                cls.cluster.stop()
        support.finish_class(cls.tmpdir, bad, code)

    # ---- reading the counts ----------------------------------------------------

    def counts_under(self, prefix):
        """{path: count} of the counted paths starting with prefix."""
        return {u: c for u, c in self.counts().items() if u.startswith(prefix)}

    def _poll_counts(self, prefix):
        """counts_under(), or None while /stats/ answers 503 (the cluster
        settling after a fault; docs/API.md section 7)."""
        try:
            return self.counts_under(prefix)
        except AssertionError as e:
            if "503 != 200" in str(e):
                return None
            raise

    def wait_counts(self, prefix, want, timeout=20):
        """Until the counts under prefix equal want ({path: count}); returns
        them (the caller asserts, so a mismatch shows both sides)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self._poll_counts(prefix)
            if got == want:
                return got
            time.sleep(0.1)
        return self.counts_under(prefix)

    def wait_stable(self, prefix, upto=None, quiet=5.0, timeout=60):
        """Until the counts under prefix add up to `upto`, or stop changing
        for `quiet` seconds (longer than the app's longest reconnect backoff,
        so held hits waiting for it are not taken for lost ones)."""
        deadline = time.monotonic() + timeout
        last, since = None, time.monotonic()
        while time.monotonic() < deadline:
            got = self._poll_counts(prefix)
            if got is None:
                time.sleep(0.1)
                continue
            if upto is not None and sum(got.values()) == upto:
                return got
            if got != last:
                last, since = got, time.monotonic()
            elif time.monotonic() - since >= quiet:
                return got
            time.sleep(0.1)
        raise AssertionError("the counts under %s kept changing for %.0f s" % (prefix, timeout))

    def app_log_lines(self, pattern):
        with open(self.stack.app_log, "rb") as f:
            text = f.read().decode("utf-8", "replace")
        return [line for line in text.splitlines() if pattern.search(line)]


class Load:
    """GET prefix + "p<i>/" (i < paths) from `threads` client threads, each
    on its own keep-alive connection, until stop() or max_requests sent in
    all or max_seconds passed. Every answer is recorded per path.

    ok[path]: 200 answers; other[path]: any other status (with one example
    in examples); errors: requests without an answer (connection reset,
    timeout; counted or not, the test cannot know)."""

    def __init__(self, host, port, prefix, paths=60, threads=4, max_requests=40000,
                 max_seconds=120, timeout=15):
        self.host, self.port, self.prefix = host, port, prefix
        self.paths = paths
        self.nthreads = threads
        self.max_requests = max_requests
        self.max_seconds = max_seconds
        self.timeout = timeout
        self.lock = threading.Lock()
        self.sent = 0
        self.ok = {}
        self.other = {}
        self.examples = []
        self.errors = 0
        self._stop = threading.Event()
        self._threads = []

    def path(self, i):
        return "%sp%d/" % (self.prefix, i % self.paths)

    def start(self):
        self.t0 = time.monotonic()
        for t in range(self.nthreads):
            th = threading.Thread(target=self._run, args=(t,), daemon=True)
            th.start()
            self._threads.append(th)
        return self

    def _take(self):
        with self.lock:
            if (self._stop.is_set() or self.sent >= self.max_requests
                    or time.monotonic() - self.t0 > self.max_seconds):
                return None
            n = self.sent
            self.sent += 1
            return n

    def _run(self, t):
        conn = None
        while True:
            n = self._take()
            if n is None:
                break
            path = self.path(n)
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                conn.request("GET", path)
                r = conn.getresponse()
                body = r.read()
                status = r.status
                if r.getheader("connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException):
                if conn is not None:
                    conn.close()
                conn = None
                with self.lock:
                    self.errors += 1
                continue
            with self.lock:
                if status == 200:
                    self.ok[path] = self.ok.get(path, 0) + 1
                else:
                    self.other[path] = self.other.get(path, 0) + 1
                    if len(self.examples) < 5:
                        self.examples.append((path, status, body[:200]))
        if conn is not None:
            conn.close()

    def answered(self):
        with self.lock:
            return sum(self.ok.values()) + sum(self.other.values()) + self.errors

    def wait_answered(self, n, timeout=60):
        """Until at least n requests in all have been answered (or failed)."""
        wait_for(lambda: self.answered() >= n or not self.running(), timeout,
                 "%d answered requests" % n)
        if self.answered() < n:
            raise AssertionError("the load stopped after %d requests (max_requests %d)"
                                 % (self.answered(), self.max_requests))

    def running(self):
        return any(t.is_alive() for t in self._threads)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self

    def summary(self):
        return ("%d sent: %d answered 200, %d other statuses, %d without answer"
                % (self.sent, sum(self.ok.values()), sum(self.other.values()), self.errors))
