"""GET /stats/history/ -- requests per 10-s interval (docs/API.md section 10).

  History              shape (contiguous 10-s points, oldest first, the last
                       one the current interval, zeros included), minutes
                       bounds, counts in the interval they were counted in,
                       history total == total_requests, the hour-hash layout
                       and its expiry
  HistoryRedisOutage   hits held while Redis is down land in the interval
                       they were counted in, not the one they were written in
  HistoryDisabled      HISTORY_ENABLED=0: 403, and nothing written

Totals are read from Redis directly (stack.redis_cmd), so reading them is
not counted; every HTTP request the tests make is counted and accounted for.
Exact totals are read behind a barrier (support.py): barrier() on the
one-worker classes, a graceful restart of the app (fresh_app) for the
outage, which keeps several workers.
"""

import calendar
import time
import unittest

from support import StackTestCase, wait_for

PREFIX = "reqstats:"
INTERVAL = 10


def t_of(point):
    """Epoch seconds of a point's "t" (strict "YYYY-MM-DDTHH:MM:SSZ")."""
    return calendar.timegm(time.strptime(point["t"], "%Y-%m-%dT%H:%M:%SZ"))


class HistoryMixin:
    def wait_redis_total(self, want):
        """Wait until the Redis total reaches want, then assert it is
        exactly that (fails at once on an overshoot)."""
        got = []

        def reached():
            got[:] = [self.redis_total()]
            return got[0] >= want
        wait_for(reached, "the Redis total to reach %d" % want)
        self.assertEqual(got[0], want, "the Redis total")

    def history(self, minutes=None):
        path = "/stats/history/" + ("" if minutes is None else "?minutes=%s" % minutes)
        r = self.get(path)
        body = self.assertJson(r, 200)
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        return body

    def check_shape(self, body, minutes, before, after):
        """Contiguous points, oldest first; the last one holds a moment
        between `before` and `after` (epoch seconds around the request)."""
        self.assertEqual(body["interval_seconds"], INTERVAL)
        points = body["points"]
        self.assertEqual(len(points), minutes * 60 // INTERVAL)
        ts = [t_of(p) for p in points]
        for a, b in zip(ts, ts[1:]):
            self.assertEqual(b - a, INTERVAL)
        self.assertEqual(ts[0] % INTERVAL, 0)
        self.assertLessEqual(ts[-1], after)
        self.assertGreater(ts[-1] + INTERVAL, before)
        for p in points:
            self.assertEqual(set(p), {"t", "requests"})
            self.assertIsInstance(p["requests"], int)
            self.assertGreaterEqual(p["requests"], 0)


class History(HistoryMixin, StackTestCase):
    # One worker, so barrier() is sound (support.py).
    app_env = {"WORKERS": "1"}

    def test_shape_and_default(self):
        self.require_stack()
        before = time.time()
        body = self.history()
        self.check_shape(body, 60, before, time.time())
        for minutes in (1, 1440):
            with self.subTest(minutes=minutes):
                before = time.time()
                body = self.history(minutes)
                self.check_shape(body, minutes, before, time.time())

    def test_minutes_bounds_400(self):
        for bad in ("0", "1441", "-1", "abc", "1.5", "+5", "1e3", "", "99999999999999999999"):
            with self.subTest(minutes=bad):
                err = self.assertError(self.get("/stats/history/?minutes=" + bad), 400,
                                       "bad_request")
                self.assertIn("minutes", err["message"])
                self.assertIn("1 to 1440", err["message"])

    def test_counts_in_their_interval_and_sum(self):
        st = self.require_stack()
        self.barrier()  # every earlier hit (the stack's readiness probe too) is in Redis
        start = self.redis_total()
        t0 = time.time()
        n = 37
        for i in range(n):
            self.assertEqual(self.get("/api/hist/%d/" % (i % 5)).status, 200)
        t1 = time.time()
        self.wait_redis_total(start + n)
        body = self.history(5)
        # This class's stack started less than 5 minutes ago, and the read's
        # own hit is written after its answer (worker.c writes batches
        # between requests): the history holds every hit.
        self.assertEqual(sum(p["requests"] for p in body["points"]), start + n)
        # Our n hits sit in the intervals of [t0, t1]: the points from t0's
        # interval on hold exactly them (nothing else ran since `start`).
        lo = int(t0) // INTERVAL * INTERVAL
        hi = int(t1) // INTERVAL * INTERVAL
        ours = [p for p in body["points"] if lo <= t_of(p) <= hi]
        later = [p for p in body["points"] if t_of(p) > hi]
        self.assertEqual(sum(p["requests"] for p in later), 0, later)
        self.assertGreaterEqual(sum(p["requests"] for p in ours), n)
        # The layout: one hash per hour, expiring more than 24 h from now.
        key = PREFIX + "history:%d" % (int(t1) // 3600)
        ttl = st.redis_cmd("TTL", key)
        self.assertGreater(ttl, 24 * 3600, key)
        self.assertLessEqual(ttl, 26 * 3600, key)
        field = str(int(t1) // INTERVAL % 360)
        self.assertGreaterEqual(int(st.redis_cmd("HGET", key, field) or 0), 1)

    def test_head_and_methods(self):
        r = self.request("HEAD", "/stats/history/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        r = self.request("DELETE", "/stats/history/")
        self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        r = self.get("/stats/history?minutes=2")
        self.assertJson(r, 308)
        self.assertEqual(r.headers.get("location"), "/stats/history/?minutes=2")


class HistoryRedisOutage(HistoryMixin, StackTestCase):
    app_env = {"TEST_ENABLED": "0", "REDIS_BACKOFF_MAX_MS": "200"}

    def test_held_hits_land_in_their_interval(self):
        st = self.require_stack()
        # A fresh app holds no hit: once Redis (empty, no persistence) is
        # back, it holds exactly the hits below.
        self.fresh_app()
        st.stop_redis()
        # Start right after an interval boundary, so the hits below are
        # most likely all counted in one interval (waiting for the wall
        # clock, not for the app).
        wait_for(lambda: time.time() % INTERVAL <= 2, "the start of an interval",
                 INTERVAL + 5)
        n = 25
        want, unsure = {}, []
        for i in range(n):
            t0 = time.time()
            self.assertEqual(self.get("/api/held/%d/" % i).status, 200)
            t1 = time.time()
            # A hit is counted between the request's send and its answer;
            # one that spans a boundary may be in either interval.
            a, b = int(t0) // INTERVAL * INTERVAL, int(t1) // INTERVAL * INTERVAL
            if a == b:
                want[a] = want.get(a, 0) + 1
            else:
                unsure.append((a, b))
        last = max(list(want) + [b for _, b in unsure])
        # Redis comes back in a later interval than any they were counted in.
        wait_for(lambda: time.time() >= last + INTERVAL, "the next interval", INTERVAL + 5)
        st.start_redis()
        self.wait_redis_total(n)
        body = self.history(2)
        by_t = {t_of(p): p["requests"] for p in body["points"]}
        for t, count in sorted(want.items()):
            spans = sum(1 for a, b in unsure if t in (a, b))
            self.assertGreaterEqual(by_t.get(t, 0), count, body)
            self.assertLessEqual(by_t.get(t, 0), count + spans, body)
        self.assertEqual(sum(by_t.values()), n, body)
        self.assertEqual(sum(by_t.get(t, 0) for t in set(want) | {x for ab in unsure for x in ab}),
                         n, body)


class HistoryDisabled(HistoryMixin, StackTestCase):
    # One worker, so barrier() is sound (support.py).
    app_env = {"HISTORY_ENABLED": "0", "TEST_ENABLED": "0", "WORKERS": "1"}

    def test_403_and_nothing_written(self):
        st = self.require_stack()
        self.barrier()
        start = self.redis_total()
        for i in range(5):
            self.assertEqual(self.get("/api/nohist/%d/" % i).status, 200)
        self.assertError(self.get("/stats/history/"), 403, "forbidden")
        # Written in the same batches as a history point would be.
        self.wait_redis_total(start + 6)
        keys = st.redis_cmd("KEYS", PREFIX + "history:*")
        self.assertEqual(keys, [])


if __name__ == "__main__":
    unittest.main()
