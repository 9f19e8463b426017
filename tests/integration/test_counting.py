"""API.md 1: every request that reaches the app is counted exactly once.

Exact arithmetic (see corehelp's header): between two reads of the report
taken after the batching window, total_requests grows by the requests made
in between plus one. Per-path counts of a test's own paths are exact.
"""

import time

from corehelp import CoreMixin, token
from support import VISIBILITY_S, StackTestCase

CONNECTIONS = 32


class Counting(CoreMixin, StackTestCase):

    def test_concurrent_12800_exact(self):
        t = token()
        paths = ["/api/load-%s/%d/" % (t, k) for k in range(8)]
        per_conn = 12800 // CONNECTIONS
        plans, want = [], {p: 0 for p in paths}
        for c in range(CONNECTIONS):
            plan = []
            for i in range(per_conn):
                p = paths[(c + i * (c % 5 + 1)) % len(paths)]
                plan.append(("HEAD" if i % 10 == 9 else "GET", p))
                want[p] += 1
            plans.append(plan)
        self.assertEqual(sum(want.values()), 12800)
        self.settle()
        total0 = self.total()
        started = time.monotonic()
        statuses, errors = self.run_load(plans, timeout=60)
        elapsed = time.monotonic() - started
        self.assertEqual(errors, [])
        answered = [s for v in statuses.values() for s in v]
        self.assertEqual(len(answered), 12800)
        self.assertEqual(set(answered), {200})
        self.settle()
        total1 = self.total()
        counts = self.counts()
        self.assertEqual(total1 - total0, 12800 + 1,
                         "total off after 12800 requests in %.1f s" % elapsed)
        self.assertEqual({p: counts.get(p, 0) for p in paths}, want)

    def test_concurrent_distinct_paths_exact(self):
        t = token()
        per_conn = 320  # 10,240 distinct paths
        plans = [[("GET", "/api/d-%s/%02d/%03d/" % (t, c, i)) for i in range(per_conn)]
                 for c in range(CONNECTIONS)]
        want = {p for plan in plans for _, p in plan}
        self.assertEqual(len(want), CONNECTIONS * per_conn)
        self.settle()
        first = self.stats(limit=1)
        statuses, errors = self.run_load(plans, timeout=60)
        self.assertEqual(errors, [])
        self.assertEqual(sorted(statuses), sorted(("GET", p) for p in want))
        self.assertEqual({s for v in statuses.values() for s in v}, {200})
        self.settle()
        last = self.stats(limit=1)
        self.assertEqual(last["total_requests"] - first["total_requests"], len(want) + 1)
        self.assertEqual(last["unique_urls"] - first["unique_urls"], len(want))
        counts = self.counts()
        mine = {p: n for p, n in counts.items() if p.startswith("/api/d-%s/" % t)}
        self.assertEqual(set(mine), want)
        self.assertEqual(set(mine.values()), {1})


class QuietCounting(CoreMixin, StackTestCase):
    """Its own small stack: the whole report fits on one cheap page."""

    def snapshot(self):
        """Every count and whether they came from one read (one page)."""
        body = self.page("limit=10000")
        counts = {u["url"]: u["count"] for u in body["urls"]}
        if body["next"] is None:
            return counts, True
        counts.update(self.counts())
        return counts, False

    def test_every_kind_counted_once(self):
        t = token()
        api, missing, wrong = "/api/kind-%s/" % t, "/kind-%s/" % t, "/api/kind-%s/w/" % t
        self.settle()
        before, one_page = self.snapshot()                             # read A
        self.settle()
        total0 = self.total()                                          # read B
        sent = [
            self.assertJson(self.get(api), 200),                       # API GET
            self.send_raw("HEAD", api).status,                         # API HEAD
            self.assertJson(self.get("/stats/?limit=1"), 200),         # report
            self.send_raw("HEAD", "/stats/").status,                   # report HEAD
            self.assertError(self.get(missing), 404),                  # unknown path
            self.assertError(self.request("PUT", wrong, body=b"x"), 405),  # wrong method
            self.assertError(self.get("/stats/?limit=0"), 400),        # bad parameter
        ]
        self.settle()
        total1 = self.total()                                          # read C
        self.settle()
        after, _ = self.snapshot()                                     # read D
        self.assertEqual(total1 - total0, len(sent) + 1)
        self.assertEqual(after.get(api, 0) - before.get(api, 0), 2)
        self.assertEqual(after.get(missing, 0) - before.get(missing, 0), 1)
        self.assertEqual(after.get(wrong, 0) - before.get(wrong, 0), 1)
        if one_page:  # always on the suite's own stack
            # /stats/ between reads A and D: B, the two report requests,
            # the 400 and C, + 1 for the reads themselves.
            self.assertEqual(after["/stats/"] - before["/stats/"], 5 + 1)
            self.assertEqual({k for k in after if after[k] != before.get(k, 0)},
                             {api, missing, wrong, "/stats/"})

    def test_visible_within_100ms(self):
        worst = 0.0
        for i in range(10):
            path = "/api/vis-%s/" % token()
            self.assertJson(self.get(path), 200)
            answered = time.monotonic()
            seen = None
            while seen is None:
                started = time.monotonic()
                body = self.page("limit=10000")
                if any(u["url"] == path and u["count"] == 1 for u in body["urls"]):
                    seen = started - answered
                elif started - answered > VISIBILITY_S:
                    self.fail("%s not in /stats/ %.0f ms after its answer (sample %d)"
                              % (path, (started - answered) * 1000, i))
                else:
                    time.sleep(0.005)
            worst = max(worst, seen)
        self.assertLessEqual(worst, VISIBILITY_S)
