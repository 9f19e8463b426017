"""Hits taken while Redis is down: kept in a bounded buffer, dropped hits counted.

docs/API.md section 1: a count is never lost because Redis was briefly
unreachable; only an overflow of the worker's bound may drop hits, and
every dropped hit is logged and counted. With one worker and the smallest
HIT_BUFFER_BYTES, a Redis outage during which more distinct paths arrive
than fit must end with

    total_requests + dropped_hits == every request the app answered

and a log line naming the drop, while hits of paths already waiting in the
buffer keep aggregating (they cost no memory). Redis is read directly
behind barriers (support.py), so the reads are not counted.
"""

from support import StackTestCase, wait_for


class BufferOverflow(StackTestCase):
    # One worker, the smallest buffer (about 600 paths of this length), and
    # batches of 50 paths, so the batch that cannot be written while Redis
    # is down holds paths 0..49 at most and path 300 is surely still waiting.
    # No /stats/ cache: a page read after a barrier shows Redis as it is.
    app_env = {"WORKERS": "1", "HIT_BUFFER_BYTES": "65536", "FLUSH_BATCH_PATHS": "50",
               "TEST_ENABLED": "0", "STATS_CACHE_MS": "0"}
    persist = True

    def dropped(self):
        return self.redis_int("GET", "reqstats:dropped")

    def test_overflow_is_counted_and_logged(self):
        st = self.require_stack()
        n_paths, repeat_first = 1500, 50
        self.barrier()
        total0, dropped0 = self.redis_total(), self.dropped()
        st.stop_redis()
        try:
            for i in range(n_paths):
                r = self.get("/api/ovf/%d/" % i)
                self.assertEqual(r.status, 200, r)
            # A path already waiting keeps aggregating when the buffer is full.
            for _ in range(repeat_first):
                self.assertEqual(self.get("/api/ovf/300/").status, 200)
        finally:
            st.start_redis()
        # /stats/ answers again (503 while the app has not reconnected);
        # every poll is counted.
        polls = [0]

        def stats_back():
            r = self.get("/stats/?limit=1")
            polls[0] += 1
            if r.status != 200:
                self.assertError(r, 503, "service_unavailable")
            return r.status == 200
        wait_for(stats_back, "/stats/ 200 after Redis came back")
        self.barrier()  # every held hit and the dropped tally are in Redis
        answered = n_paths + repeat_first + polls[0] + 1   # + the marker
        dropped = self.dropped() - dropped0
        grown = (self.redis_total() - total0) + dropped
        self.assertGreater(dropped, 0, "nothing overflowed: raise n_paths")
        self.assertLess(dropped, n_paths, "nothing was buffered")
        self.assertEqual(grown, answered,
                         "every answered hit is either counted or counted as dropped")
        self.assertEqual(self.zscore("/api/ovf/300/"), 1 + repeat_first)
        self.assertIsNone(st.redis_cmd("ZSCORE", "reqstats:hits", "/api/ovf/1499/"),
                          "the last paths cannot have fit")
        # /stats/ reports the same dropped tally.
        self.assertEqual(self.stats(limit=1)["dropped_hits"], self.dropped())
        with open(st.app_log, encoding="utf-8", errors="replace") as f:
            self.assertRegex(f.read(), r"hit buffer full .*dropped \d+ hits")
