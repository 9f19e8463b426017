"""Process lifecycle: Redis going away and coming back, a worker killed, a
graceful stop (issue 2; API.md 1 and 6).

Each class stops or kills processes, so each has its own stack and every
test needs one started by the suite (require_stack).
"""

import http.client
import json
import os
import re
import signal
import threading
import time

from corehelp import HEX32, CoreMixin, token
from support import StackTestCase

PREFIX = "reqstats:"  # the app's default REDIS_PREFIX


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(") ")[-1][:1] != "Z"
    except OSError:
        return False


def wait_for(cond, timeout, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    return cond()


class RedisOutage(CoreMixin, StackTestCase):

    def test_stats_503_while_redis_down_then_200_without_restart(self):
        stack = self.require_stack()
        self.assertJson(self.get("/stats/"), 200)
        master, workers = stack.app.pid, sorted(stack.workers())
        stack.stop_redis()
        try:
            for i in range(5):
                started = time.monotonic()
                r = self.get("/stats/?limit=5")
                took = time.monotonic() - started
                with self.subTest(attempt=i):
                    err = self.assertError(r, 503, "service_unavailable")
                    self.assertEqual(r.headers.get("x-request-id"), err["request_id"])
                    self.assertRegex(r.headers.get("retry-after", ""), r"^[1-9][0-9]*$")
                    self.assertLess(took, 1.0, "a 503 must come quickly")
            t = token()
            for i in range(20):
                started = time.monotonic()
                r = self.get("/api/outage-%s/%d/" % (t, i))
                self.assertEqual(self.assertJson(r, 200)["path"], "/api/outage-%s/%d/" % (t, i))
                self.assertLess(time.monotonic() - started, 1.0)
        finally:
            stack.start_redis()  # same port

        def back():
            r = self.get("/stats/")
            return r if r.status == 200 else None
        r = wait_for(back, 10, 0.05)
        self.assertIsNotNone(r, "/stats/ did not come back within 10 s of Redis")
        body = self.assertJson(r, 200)
        self.assertIsInstance(body["urls"], list)
        # Nobody restarted: the same master and the same workers.
        self.assertIsNone(stack.app.poll())
        self.assertEqual(stack.app.pid, master)
        self.assertEqual(sorted(stack.workers()), workers)


class WorkerRespawn(CoreMixin, StackTestCase):

    def test_sigkill_worker_is_replaced(self):
        stack = self.require_stack()
        before = sorted(stack.workers())
        self.assertGreaterEqual(len(before), 1)
        victim = before[0]
        self.settle()
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()

        # The service keeps answering while the worker is replaced.
        t = token()
        statuses, errors = self.run_load([[("GET", "/api/kill-%s/%d/" % (t, c))] * 25
                                          for c in range(4)])
        self.assertEqual(errors, [])
        self.assertEqual({s for v in statuses.values() for s in v}, {200})

        def replaced():
            now = sorted(stack.workers())
            return now if victim not in now and len(now) == len(before) else None
        now = wait_for(replaced, 5)
        self.assertIsNotNone(now, "worker %d not replaced within 5 s: %s"
                             % (victim, stack.children()))
        self.assertFalse(alive(victim))
        new = set(now) - set(before)
        self.assertEqual(len(new), 1)
        self.assertLess(time.monotonic() - killed, 5)
        with open(stack.app_log, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        self.assertRegex(log, r"worker (\d+) \(pid %d\) killed by signal 9\b.*respawn" % victim)
        self.assertRegex(log, r"worker \d+ started as pid %d\b" % new.pop())
        self.assertIsNone(stack.app.poll())

        # And counts exactly afterwards.
        self.settle()
        total0 = self.total()
        statuses, errors = self.run_load([[("GET", "/api/after-%s/%d/" % (t, c))] * 100
                                          for c in range(8)])
        self.assertEqual(errors, [])
        self.assertEqual({s for v in statuses.values() for s in v}, {200})
        self.settle()
        self.assertEqual(self.total() - total0, 800 + 1)
        counts = self.counts()
        for c in range(8):
            self.assertEqual(counts.get("/api/after-%s/%d/" % (t, c)), 100)


class GracefulStop(CoreMixin, StackTestCase):
    """SIGTERM to the master while traffic is flowing."""

    app_env = {"SHUTDOWN_TIMEOUT_MS": "4000"}
    shutdown_s = 4.0

    def redis_int(self, *args):
        v = self.stack.redis_cmd(*args)
        return int(float(v)) if v is not None else 0

    def test_sigterm_exits_0_and_every_answered_hit_is_written(self):
        stack = self.require_stack()
        t = token()
        self.settle()
        total0 = self.redis_int("GET", PREFIX + "total")
        workers = stack.workers()

        # A burst answered just before the signal: exact.
        pre = ["/api/pre-%s/%d/" % (t, c) for c in range(8)]
        statuses, errors = self.run_load([[("GET", p)] * 150 for p in pre])
        self.assertEqual(errors, [])
        self.assertEqual({s for v in statuses.values() for s in v}, {200})

        # Traffic that is still flowing when the signal arrives.
        stop = threading.Event()
        host, port = self.host_port()
        answered = {}   # path -> 200 answers
        attempted = {}  # path -> requests sent
        other = []      # (status, body) of every non-200 answer
        lock = threading.Lock()

        def load(c):
            path = "/api/during-%s/%d/" % (t, c)
            conn = http.client.HTTPConnection(host, port, timeout=10)
            try:
                while not stop.is_set():
                    with lock:
                        attempted[path] = attempted.get(path, 0) + 1
                    try:
                        conn.request("GET", path)
                        r = conn.getresponse()
                        body = r.read()
                    except (OSError, http.client.HTTPException):
                        conn.close()
                        conn = http.client.HTTPConnection(host, port, timeout=10)
                        continue
                    with lock:
                        if r.status == 200:
                            answered[path] = answered.get(path, 0) + 1
                        else:
                            other.append((r.status, r.getheader("content-type"), body))
            finally:
                conn.close()

        threads = [threading.Thread(target=load, args=(c,), daemon=True) for c in range(6)]
        for th in threads:
            th.start()
        time.sleep(0.3)
        signalled = time.monotonic()
        stack.app.send_signal(signal.SIGTERM)
        try:
            code = stack.app.wait(self.shutdown_s + 5)
        finally:
            took = time.monotonic() - signalled
            time.sleep(0.1)
            stop.set()
            for th in threads:
                th.join(15)
        self.assertEqual(code, 0)
        self.assertLess(took, self.shutdown_s, "exit took %.2f s" % took)
        for pid in workers:
            self.assertFalse(alive(pid), "worker %d outlived the master" % pid)

        # Everything answered was written to Redis (read directly: the app
        # is gone).
        for p in pre:
            self.assertEqual(self.redis_int("ZSCORE", PREFIX + "hits", p), 150, p)
        self.assertTrue(answered, "no request was answered during the stop")
        written = 0
        for path, n in attempted.items():
            got = self.redis_int("ZSCORE", PREFIX + "hits", path)
            written += got
            self.assertGreaterEqual(got, answered.get(path, 0), path)
            self.assertLessEqual(got, n, path)
        total1 = self.redis_int("GET", PREFIX + "total")
        self.assertEqual(total1 - total0, 8 * 150 + written)

        # While the app was going away nginx answered JSON errors only.
        for status, ctype, body in other:
            self.assertIn(status, (502, 503, 504), body[:200])
            self.assertTrue((ctype or "").startswith("application/json"), (status, ctype, body))
            err = json.loads(body.decode("utf-8"))["error"]
            self.assertEqual(err["status"], status)
            self.assertRegex(err["request_id"], HEX32)

        with open(stack.app_log, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        self.assertNotRegex(log, r"they are lost|killing them")
        self.assertTrue(re.search(r" master info stopped$", log, re.M), log[-2000:])
