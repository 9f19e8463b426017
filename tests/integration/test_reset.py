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
counted themselves. Exact counts are read behind a barrier (support.py):
barrier() on the one-worker classes, a graceful restart (fresh_app) and a
graceful stop of the app under load, which needs several workers.
"""

import time
import unittest

from support import StackTestCase, wait_for

PREFIX = "reqstats:"
TOKEN = "reset-token-for-tests"


class ResetMixin:
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
    # default FLUSH_INTERVAL_MS (their sum is at most 90 ms). One worker,
    # so barrier() is sound (support.py); the cache is shared memory all
    # workers read alike.
    app_env = {"ADMIN_TOKEN": TOKEN, "STATS_CACHE_MS": "80", "WORKERS": "1"}

    def test_unauthorized_401(self):
        st = self.require_stack()
        self.assertEqual(self.get("/api/keep/").status, 200)
        self.barrier()
        before = self.redis_total()
        cases = [(None, "Bearer"), ("wrong", "Bearer"), (TOKEN + "x", "Bearer"),
                 (TOKEN[:-1], "Bearer"), (TOKEN, "bearer"), (TOKEN, "Basic"), ("", "Bearer")]
        for token, scheme in cases:
            with self.subTest(token=token, scheme=scheme):
                r = self.reset(token, scheme)
                self.assertError(r, 401, "unauthorized")
                self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        # Nothing removed: the total only grew by the refused requests
        # (and the marker).
        self.barrier()
        self.assertEqual(self.redis_total(), before + len(cases) + 1)
        self.assertGreaterEqual(int(float(st.redis_cmd("ZSCORE", PREFIX + "hits", "/api/keep/"))),
                                1)

    def test_reset_removes_everything(self):
        st = self.require_stack()
        for i in range(30):
            self.assertEqual(self.get("/api/before/%d/" % (i % 3)).status, 200)
        # A finished test run, which the reset must leave alone.
        r = self.post("/test/3/")
        run = self.assertJson(r, 202)
        wait_for(lambda: self.assertJson(self.get(run["status_url"]), 200)["status"] == "done",
                 "run %s done" % run["id"])
        st.redis_cmd("INCRBY", PREFIX + "dropped", 7)
        self.barrier()
        before = self.redis_total()
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

        # In Redis, behind a barrier: only what was counted after the reset
        # (the DELETE itself, the page read, the marker, and the earlier
        # page read unless the reset removed it).
        self.barrier()
        total = self.redis_total()
        self.assertEqual(total, 3 + (removed["total_requests"] == before))
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
        st = self.require_stack()
        # A fresh app holds no hit: Redis holds everything counted so far.
        self.fresh_app()
        base = self.redis_total()
        n = 3000
        load = self.load(lambda i: "/api/under-load/%d/" % (i % 20), threads=4,
                         count=n).start()
        load.wait_answered(n // 3, "the load before the reset")
        t_sent = time.monotonic()
        r = self.reset()
        t_answered = time.monotonic()
        removed = self.assertJson(r, 200)["removed"]["total_requests"]
        load.join()
        self.assertEqual(load.failures(), [])
        self.assertEqual(len(load.ok()), n)
        # A graceful stop writes every held hit (the barrier for several
        # workers); the class's teardown finds the app stopped.
        self.assertEqual(st.stop_app(), 0, "the app's exit status on SIGTERM")
        total = self.redis_total()

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
    # One worker, so barrier() is sound (support.py).
    app_env = {"TEST_ENABLED": "0", "WORKERS": "1"}

    def test_403_without_admin_token(self):
        self.require_stack()
        self.assertEqual(self.get("/api/stays/").status, 200)
        self.barrier()
        before = self.redis_total()
        for token in (None, "anything", ""):
            with self.subTest(token=token):
                self.assertError(self.reset(token), 403, "forbidden")
        # Nothing removed: the refused requests and the marker added.
        self.barrier()
        self.assertEqual(self.redis_total(), before + 3 + 1)
        self.assertEqual(self.zscore("/api/stays/"), 1)


if __name__ == "__main__":
    unittest.main()
