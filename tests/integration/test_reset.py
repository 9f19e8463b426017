"""DELETE /stats/ -- reset every count (docs/API.md section 11).

  Reset           the bearer check (missing, wrong, other scheme: 401 with
                  WWW-Authenticate), the answer and what it removed, nothing
                  left behind (counts, total, dropped hits, history), writer
                  seq keys and test runs untouched, no cached /stats/ page
                  from before the reset served after its answer
  ResetUnderLoad  a reset in the middle of bounded load: no hit lost, none
                  counted twice, none half-applied (exact accounting below)
  ResetDisabled   ADMIN_TOKEN unset (the default): 403, nothing removed

Counts are read from Redis directly (stack.redis_cmd), so the checks are not
counted themselves.
"""

import time
import unittest

from support import StackTestCase
from test_faults import Load

PREFIX = "reqstats:"
TOKEN = "reset-token-for-tests"


class ResetMixin:
    def redis_total(self):
        return int(self.stack.redis_cmd("GET", PREFIX + "total") or 0)

    def quiet_total(self):
        """The Redis total once it stops moving (every held hit written)."""
        last = None
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            cur = self.redis_total()
            if cur == last:
                return cur
            last = cur
            self.settle()
        self.fail("the Redis total kept moving")

    def zset_sum(self):
        flat = self.stack.redis_cmd("ZRANGE", PREFIX + "hits", 0, -1, "WITHSCORES")
        return sum(int(float(v)) for v in flat[1::2])

    def history_sum(self):
        total = 0
        for key in self.stack.redis_cmd("KEYS", PREFIX + "history:*"):
            flat = self.stack.redis_cmd("HGETALL", key)
            total += sum(int(v) for v in flat[1::2])
        return total

    def reset(self, token=TOKEN, scheme="Bearer"):
        headers = {} if token is None else {"Authorization": "%s %s" % (scheme, token)}
        return self.request("DELETE", "/stats/", headers=headers)


class Reset(ResetMixin, StackTestCase):
    # The widest /stats/ cache window the configuration allows with the
    # default FLUSH_INTERVAL_MS (their sum is at most 90 ms).
    app_env = {"ADMIN_TOKEN": TOKEN, "STATS_CACHE_MS": "80"}

    def test_unauthorized_401(self):
        st = self.require_stack()
        self.assertEqual(self.get("/api/keep/").status, 200)
        before = self.quiet_total()
        cases = [(None, "Bearer"), ("wrong", "Bearer"), (TOKEN + "x", "Bearer"),
                 (TOKEN[:-1], "Bearer"), (TOKEN, "bearer"), (TOKEN, "Basic"), ("", "Bearer")]
        for token, scheme in cases:
            with self.subTest(token=token, scheme=scheme):
                r = self.reset(token, scheme)
                self.assertError(r, 401, "unauthorized")
                self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        # Nothing removed: the total only grew by the refused requests.
        self.assertEqual(self.quiet_total(), before + len(cases))
        self.assertGreaterEqual(int(float(st.redis_cmd("ZSCORE", PREFIX + "hits", "/api/keep/"))),
                                1)

    def test_reset_removes_everything(self):
        st = self.require_stack()
        for i in range(30):
            self.assertEqual(self.get("/api/before/%d/" % (i % 3)).status, 200)
        # A finished test run, which the reset must leave alone.
        r = self.post("/test/3/")
        run = self.assertJson(r, 202)
        deadline = time.monotonic() + 30
        while self.assertJson(self.get(run["status_url"]), 200)["status"] != "done":
            self.assertLess(time.monotonic(), deadline, "run not done")
            time.sleep(0.05)
        st.redis_cmd("INCRBY", PREFIX + "dropped", 7)
        before = self.quiet_total()
        self.assertGreater(self.history_sum(), 0)
        # A page in the shared cache, just before the reset.
        page = self.stats(limit=5)
        self.assertGreaterEqual(page["total_requests"], before)

        r = self.reset()
        body = self.assertJson(r, 200)
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        self.assertIs(body["reset"], True)
        removed = body["removed"]
        # Removed: everything counted before it (the page read above too,
        # unless its hit was still held in its worker).
        self.assertIn(removed["total_requests"], (before, before + 1))
        self.assertEqual(removed["dropped_hits"], 7)
        self.assertGreaterEqual(removed["unique_urls"], 5)

        # Right after the answer: no page from before the reset.
        after = self.stats(limit=5)
        self.assertLessEqual(after["total_requests"], 2, after)
        self.assertEqual(after["dropped_hits"], 0, after)
        self.assertNotIn("/api/before/0/", [u["url"] for u in after["urls"]])

        # In Redis, once settled: only what was counted after the reset
        # (the DELETE itself, the page read, maybe the earlier page read).
        total = self.quiet_total()
        self.assertLessEqual(total, 3)
        self.assertEqual(self.zset_sum(), total)
        self.assertEqual(self.history_sum(), total)
        self.assertIsNone(st.redis_cmd("ZSCORE", PREFIX + "hits", "/api/before/0/"))
        self.assertIn(st.redis_cmd("GET", PREFIX + "dropped"), (None, "0"))
        # Batch retries stay idempotent: the writers' seq keys are kept.
        self.assertNotEqual(st.redis_cmd("KEYS", PREFIX + "writer:*"), [])
        # Test runs are untouched.
        rec = self.assertJson(self.get(run["status_url"]), 200)
        self.assertEqual(rec["status"], "done")
        self.assertEqual(rec["succeeded"], 3)

    def test_allow_lists_delete(self):
        r = self.request("PUT", "/stats/", body=b"")
        self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(r.headers.get("allow"), "GET, HEAD, DELETE")


class ResetUnderLoad(ResetMixin, StackTestCase):
    app_env = {"ADMIN_TOKEN": TOKEN, "TEST_ENABLED": "0"}

    def test_reset_during_load_is_exact(self):
        self.require_stack()
        base = self.quiet_total()
        host, port = self.host_port()
        n = 3000
        load = Load(host, port, lambda i: "/api/under-load/%d/" % (i % 20), threads=4,
                    count=n).start()
        deadline = time.monotonic() + 60
        while load._next < n // 3:
            self.assertLess(time.monotonic(), deadline, "load did not progress")
            time.sleep(0.01)
        t_sent = time.monotonic()
        r = self.reset()
        t_answered = time.monotonic()
        removed = self.assertJson(r, 200)["removed"]["total_requests"]
        load.join()
        self.assertEqual(load.failures(), [])
        self.assertEqual(len(load.ok()), n)
        total = self.quiet_total()

        # Every hit lands wholly on one side: what the reset removed plus
        # what is there now is everything ever counted (the load, the
        # DELETE itself, and what was there before).
        self.assertEqual(removed + total, base + n + 1)
        # None half-applied: the total is the sum of the counts and of the
        # history, as the batch script writes them together.
        self.assertEqual(self.zset_sum(), total)
        self.assertEqual(self.history_sum(), total)
        # Requests sent after the reset's answer are all in the new counts;
        # requests answered before the DELETE was sent may be on either
        # side (a worker holds a hit up to FLUSH_INTERVAL_MS after its
        # answer), so they bound nothing.
        after = sum(1 for rec in load.ok() if rec[2] > t_answered)
        self.assertGreater(after, 0, "the reset came after the whole load")
        self.assertGreater(sum(1 for rec in load.ok() if rec[3] < t_sent), 0,
                           "the reset came before the load")
        self.assertGreaterEqual(total, after + 1)
        self.assertGreaterEqual(removed, base)


class ResetDisabled(ResetMixin, StackTestCase):
    app_env = {"TEST_ENABLED": "0"}

    def test_403_without_admin_token(self):
        self.require_stack()
        self.assertEqual(self.get("/api/stays/").status, 200)
        before = self.quiet_total()
        for token in (None, "anything", ""):
            with self.subTest(token=token):
                self.assertError(self.reset(token), 403, "forbidden")
        self.assertEqual(self.quiet_total(), before + 3)


if __name__ == "__main__":
    unittest.main()
