"""Hits taken while Redis is down: kept in a bounded buffer, dropped hits counted.

API.md 1: a count is never lost because Redis was briefly unreachable; only
an overflow of the worker's bound may drop hits, and every dropped hit is
logged and counted. With one worker and the smallest HIT_BUFFER_BYTES, a
Redis outage during which more distinct paths arrive than fit must end with

    total_requests + dropped_hits == every request the app answered

and a log line naming the drop, while hits of paths already waiting in the
buffer keep aggregating (they cost no memory).
"""

import time

from support import StackTestCase


class BufferOverflow(StackTestCase):
    # One worker, the smallest buffer (about 600 paths of this length), and
    # batches of 50 paths, so the batch that cannot be written while Redis
    # is down holds paths 0..49 at most and path 300 is surely still waiting.
    app_env = {"WORKERS": "1", "HIT_BUFFER_BYTES": "65536", "FLUSH_BATCH_PATHS": "50",
               "TEST_ENABLED": "0"}
    persist = True

    def wait_stable(self, polls):
        """Poll /stats/ until Redis answers again (503 meanwhile) and the
        buffer has drained; every poll is counted, so count them."""
        last, deadline = None, time.monotonic() + 20
        while time.monotonic() < deadline:
            r = self.get("/stats/?limit=1")
            polls[0] += 1
            if r.status == 200:
                page = self.assertJson(r, 200)
                now = (page["total_requests"], page["dropped_hits"])
                # Settled: nothing moved but the previous poll's own hit.
                if last is not None and now == (last[0] + 1, last[1]):
                    return page
                last = now
            else:
                self.assertError(r, 503, "service_unavailable")
            time.sleep(0.3)
        self.fail("/stats/ never settled: %r" % (last,))

    def test_overflow_is_counted_and_logged(self):
        st = self.require_stack()
        n_paths, repeat_first = 1500, 50
        self.settle()
        before = self.stats(limit=1)  # this read is itself counted
        self.settle()
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
        polls = [0]
        page = self.wait_stable(polls)
        self.settle()
        final = self.stats(limit=1)
        answered = 1 + n_paths + repeat_first + polls[0]
        grown = (final["total_requests"] - before["total_requests"]) + \
            (final["dropped_hits"] - before["dropped_hits"])
        self.assertGreater(page["dropped_hits"], 0, "nothing overflowed: raise n_paths")
        self.assertLess(page["dropped_hits"], n_paths, "nothing was buffered")
        self.assertEqual(grown, answered,
                         "every answered hit is either counted or counted as dropped")
        counts = self.counts()
        self.assertEqual(counts.get("/api/ovf/300/"), 1 + repeat_first)
        self.assertNotIn("/api/ovf/1499/", counts, "the last paths cannot have fit")
        with open(st.app_log, encoding="utf-8", errors="replace") as f:
            self.assertRegex(f.read(), r"hit buffer full .*dropped \d+ hits")
