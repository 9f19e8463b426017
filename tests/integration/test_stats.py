"""docs/API.md section 3: GET /stats/ -- the report, its order, pagination and limits."""

import json
import re
import threading
import time
import urllib.parse
import urllib.request

from corehelp import CoreMixin, query_of, token
from support import StackTestCase, wait_for

MAX_LIMIT = 10000
DEFAULT_LIMIT = 100


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


class Stats(CoreMixin, StackTestCase):

    def hit(self, counts):
        """{path: n}: send n GETs to each path over one kept-alive connection,
        and wait until the report shows them all."""
        plan = [("GET", p) for p, n in counts.items() for _ in range(n)]
        statuses, errors = self.run_load([plan])
        self.assertEqual(errors, [])
        self.assertEqual({s for v in statuses.values() for s in v}, {200})
        self.wait_counts(counts)

    def test_body_shape_and_types(self):
        self.hit({"/api/shape-%s/" % token(): 2})
        r = self.get("/stats/")
        body = self.assertJson(r, 200)
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        for key in ("total_requests", "unique_urls", "offset", "limit", "urls", "next"):
            self.assertIn(key, body)
        for key in ("total_requests", "unique_urls", "offset", "limit"):
            self.assertTrue(is_int(body[key]), "%s is %r" % (key, body[key]))
        self.assertEqual(body["offset"], 0)
        self.assertEqual(body["limit"], DEFAULT_LIMIT)
        self.assertIsInstance(body["urls"], list)
        self.assertTrue(body["urls"])
        for item in body["urls"]:
            self.assertIsInstance(item, dict)
            self.assertLessEqual({"url", "count"}, set(item))
            self.assertIsInstance(item["url"], str)
            self.assertTrue(item["url"].startswith("/"), item)
            self.assertTrue(all(0x21 <= ord(c) < 0x7f for c in item["url"]), item)
            self.assertTrue(is_int(item["count"]), item)
            self.assertGreaterEqual(item["count"], 1)
        self.assertTrue(body["next"] is None or isinstance(body["next"], str))

    def test_head_stats(self):
        r = self.send_raw("HEAD", "/stats/")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.body, b"")
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        self.assertTrue(r.headers.get("content-type", "").startswith("application/json"))

    def test_ordering_most_to_least(self):
        t = token()
        # Counts 1..9, sent interleaved so arrival order says nothing.
        want = {"/api/ord-%s/%d/" % (t, n): n for n in range(1, 10)}
        plan = []
        for rnd in range(9):
            plan += [("GET", p) for p, n in sorted(want.items()) if n > rnd]
        statuses, errors = self.run_load([plan])
        self.assertEqual(errors, [])
        self.wait_counts(want)
        mine = [(url, n) for url, n in self.entries() if url in want]
        self.assertEqual(mine, sorted(want.items(), key=lambda kv: -kv[1]))
        # One page is one consistent snapshot: never increasing.
        counts = [u["count"] for u in self.page("limit=%d" % MAX_LIMIT)["urls"]]
        self.assertEqual(counts, sorted(counts, reverse=True), "urls not most to least")

    def test_ties_in_stable_order(self):
        t = token()
        tied = ["/api/tie-%s/%s/" % (t, c) for c in "qazwsxedc"]
        self.hit({p: 3 for p in tied})
        orders = []
        for _ in range(3):
            orders.append([url for url, _ in self.entries() if url in tied])
        self.assertEqual(sorted(orders[0]), sorted(tied))
        self.assertEqual(orders[0], orders[1])
        self.assertEqual(orders[1], orders[2])
        # The same order when read one entry at a time.
        start = [url for url, _ in self.entries()].index(orders[0][0])
        one_by_one = [self.page("limit=1&offset=%d" % (start + i))["urls"][0]["url"]
                      for i in range(len(tied))]
        self.assertEqual(one_by_one, orders[0])

    def test_total_is_sum_and_unique_is_entries(self):
        t = token()
        self.hit({"/api/sum-%s/%d/" % (t, i): i + 1 for i in range(12)})
        body = self.page("limit=%d" % MAX_LIMIT)
        # One page is one consistent snapshot (pages read apart differ by
        # the reads themselves), so this needs a report of <= 10000 paths.
        self.assertIsNone(body["next"], "precondition: the report fits on one page")
        self.assertEqual(body["total_requests"], sum(u["count"] for u in body["urls"]))
        self.assertEqual(body["unique_urls"], len(body["urls"]))
        self.assertEqual(len({u["url"] for u in body["urls"]}), len(body["urls"]))

    def test_default_limit_and_next(self):
        t = token()
        self.hit({"/api/many-%s/%03d/" % (t, i): 1 for i in range(DEFAULT_LIMIT + 5)})
        body = self.page()
        self.assertGreater(body["unique_urls"], DEFAULT_LIMIT)
        self.assertEqual(body["limit"], DEFAULT_LIMIT)
        self.assertEqual(len(body["urls"]), DEFAULT_LIMIT)
        self.assertEqual(query_of(body["next"]), {"offset": str(DEFAULT_LIMIT),
                                                  "limit": str(DEFAULT_LIMIT)})
        self.assertEqual(urllib.parse.urlsplit(body["next"]).path, "/stats/")

    def test_max_limit(self):
        body = self.page("limit=%d" % MAX_LIMIT)
        self.assertEqual(body["limit"], MAX_LIMIT)
        self.assertEqual(len(body["urls"]), min(MAX_LIMIT, body["unique_urls"]))

    def test_page_edges(self):
        u = self.page("limit=1")["unique_urls"]
        self.assertGreater(u, 2)
        # Exactly to the end: no next.
        self.assertIsNone(self.page("limit=%d" % u)["next"])
        last = self.page("limit=1&offset=%d" % (u - 1))
        self.assertEqual(len(last["urls"]), 1)
        self.assertIsNone(last["next"])
        self.assertEqual(last["offset"], u - 1)
        # One short of the end: next points at the last entry.
        body = self.page("limit=%d" % (u - 1))
        self.assertEqual(query_of(body["next"]), {"offset": str(u - 1), "limit": str(u - 1)})
        # Past the end: an empty page, still 200.
        for off in (u, u + 7, 10 ** 9):
            with self.subTest(offset=off):
                body = self.page("offset=%d&limit=5" % off)
                self.assertEqual(body["urls"], [])
                self.assertIsNone(body["next"])
                self.assertEqual(body["offset"], off)
                self.assertEqual(body["unique_urls"], u)

    def test_bad_limit_and_offset_400(self):
        for q in ("limit=%d" % (MAX_LIMIT + 1), "limit=0", "limit=abc", "limit=-1",
                  "limit=1.5", "limit=", "limit", "limit=99999999999999999999",
                  "limit=+5", "limit=1e3", "limit=%2010", "limit=0x10",
                  "limit=18446744073709551617"):
            with self.subTest(q=q):
                err = self.assertError(self.get("/stats/?" + q), 400, "bad_request")
                self.assertIn("limit", err["message"])
                self.assertRegex(err["message"], r"\b1\b.*\b%d\b" % MAX_LIMIT)
        for q in ("offset=-1", "offset=abc", "offset=99999999999999999999", "offset=",
                  "offset=1.5", "offset=18446744073709551616", "limit=5&offset=x"):
            with self.subTest(q=q):
                err = self.assertError(self.get("/stats/?" + q), 400, "bad_request")
                self.assertIn("offset", err["message"])
                self.assertRegex(err["message"], r"\b0\b")

    def test_unknown_params_ignored(self):
        body = self.page("foo=bar&limit=3&x&offset=1&limits=9&offsets=abc&%00=1")
        self.assertEqual(body["limit"], 3)
        self.assertEqual(body["offset"], 1)
        self.assertLessEqual(len(body["urls"]), 3)

    def test_cache_control_no_store(self):
        for path in ("/stats/", "/stats/?limit=2", "/stats/?limit=0"):
            with self.subTest(path=path):
                self.assertEqual(self.get(path).headers.get("cache-control"), "no-store")

    def test_no_slash_redirects_keeping_query(self):
        before = self.counts().get("/stats", 0)
        for sent, location in (("/stats", "/stats/"),
                               ("/stats?limit=3&offset=1", "/stats/?limit=3&offset=1"),
                               ("/stats?foo=bar", "/stats/?foo=bar")):
            with self.subTest(sent=sent):
                r = self.get(sent)
                self.assertJson(r, 308)
                self.assertEqual(r.headers.get("location"), location)
        # Following the redirect gives the report with the kept parameters.
        body = self.assertJson(self.get(self.get("/stats?limit=3&offset=1").headers["location"]),
                               200)
        self.assertEqual((body["limit"], body["offset"]), (3, 1))
        # The app answers the 308s and counts them under their own path;
        # waited for, so later tests of the class see a report that holds
        # still (support.py's header).
        self.wait_counts({"/stats": before + 4})

    def test_other_methods_405(self):
        for method in ("POST", "PUT", "PATCH"):
            with self.subTest(method=method):
                r = self.request(method, "/stats/", body=b"")
                err = self.assertError(r, 405, "method_not_allowed")
                self.assertEqual(r.headers.get("allow"), "GET, HEAD, DELETE")
                self.assertEqual(r.headers.get("x-request-id"), err["request_id"])


class StatsPagination(CoreMixin, StackTestCase):
    """Its own stack: following next must see a report that does not move.

    Only /stats/ changes while the pages are read (each read is counted),
    so it is first made the most requested path; after that no entry
    changes rank and the pages must tile the report exactly."""

    def test_follow_next_to_the_end(self):
        t = token()
        # 40 paths, counts 1..3: plenty of ties across page boundaries.
        want = {"/api/pg-%s/%02d/" % (t, i): 1 + i % 3 for i in range(40)}
        plan = [("GET", p) for p, n in want.items() for _ in range(n)]
        statuses, errors = self.run_load([plan])
        self.assertEqual(errors, [])
        self.wait_counts(want)

        # Reads of the report (each counted) until /stats/ leads it.
        def stats_leads():
            whole = self.page("limit=%d" % MAX_LIMIT)
            top = whole["urls"][:2]
            return whole if top[0]["url"] == "/stats/" and top[0]["count"] > top[1]["count"] \
                else None
        whole = wait_for(stats_leads, "/stats/ to lead the report")
        for limit in (7, 1, 13, whole["unique_urls"]):
            with self.subTest(limit=limit):
                seen, pages, link = [], 0, "/stats/?limit=%d" % limit
                while link is not None:
                    r = self.get(link)
                    body = self.assertJson(r, 200)
                    pages += 1
                    self.assertEqual(body["limit"], limit)
                    self.assertLessEqual(len(body["urls"]), limit)
                    seen += [u["url"] for u in body["urls"]]
                    link = body["next"]
                    if link is not None:
                        self.assertEqual(len(body["urls"]), limit)
                        self.assertEqual(query_of(link), {"offset": str(body["offset"] + limit),
                                                          "limit": str(limit)})
                    self.assertLess(pages, 1000)
                self.assertEqual(len(seen), len(set(seen)), "duplicates across pages")
                self.assertEqual(seen, [u["url"] for u in whole["urls"]])
                self.assertEqual(pages, -(-whole["unique_urls"] // limit))
        counts = {u["url"]: u["count"] for u in whole["urls"]}
        for p, n in want.items():
            self.assertEqual(counts.get(p), n, p)


class StatsCacheCase(StackTestCase):
    """Many clients reading one page while hits arrive (no tests of its own)."""

    THREADS, EACH = 8, 50
    PAGE = "/stats/?limit=7"

    def zrevrange_calls(self):
        info = self.require_stack().redis_cmd("INFO", "commandstats")
        m = re.search(r"^cmdstat_zrevrange:calls=(\d+),", info, re.M)
        return int(m.group(1)) if m else 0

    def hammer(self):
        """THREADS clients, EACH sequential reads of PAGE each, while hits
        arrive; returns each client's bodies in order, the number of
        ZREVRANGE calls Redis executed meanwhile and the seconds it took."""
        st = self.require_stack()
        st.redis_cmd("CONFIG", "RESETSTAT")
        results = [[] for _ in range(self.THREADS)]
        errors = []

        def client(i):
            try:
                for _ in range(self.EACH):
                    with urllib.request.urlopen(self.base_url + self.PAGE, timeout=10) as r:
                        results[i].append(json.loads(r.read()))
                    with urllib.request.urlopen(self.base_url + "/api/cache-%d/" % i,
                                                timeout=10) as r:
                        r.read()
            except Exception as e:  # reported below, in the test's thread
                errors.append(repr(e))

        threads = [threading.Thread(target=client, args=(i,)) for i in range(self.THREADS)]
        started = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        took = time.monotonic() - started
        self.assertEqual(errors, [])
        self.assertEqual([len(r) for r in results], [self.EACH] * self.THREADS)
        return results, self.zrevrange_calls(), took

    def check_never_back(self, results):
        for bodies in results:
            totals = [b["total_requests"] for b in bodies]
            self.assertEqual(totals, sorted(totals), "a client saw total_requests go back")
            for b in bodies:
                self.assertEqual((b["offset"], b["limit"]), (0, 7))


class StatsCache(StatsCacheCase):
    """STATS_CACHE_MS: all workers answer a page from one Redis read for
    that long; a client reading again and again never sees a count go
    back. Visibility through the cache is test_counting's Visibility.

    The class sets STATS_CACHE_MS to its largest value, so that one read
    serving many is plain even on a slow machine."""

    CACHE_MS = 80
    WORKERS = 4
    app_env = {"STATS_CACHE_MS": str(CACHE_MS), "FLUSH_INTERVAL_MS": "10",
               "WORKERS": str(WORKERS)}

    def test_one_read_serves_many(self):
        results, calls, took = self.hammer()
        self.check_never_back(results)
        n = self.THREADS * self.EACH
        # A worker that finds the page older than CACHE_MS reads Redis; the
        # others (and it, until the page is old again) answer from the
        # cache. So at most one read per worker per CACHE_MS window began
        # while the clients ran: a bound from the time it took, not a
        # timing assertion.
        bound = self.WORKERS * (int(took * 1000 / self.CACHE_MS) + 2)
        print("\n  %d /stats/ requests in %.2f s: %d Redis reads (bound %d)"
              % (n, took, calls, bound))
        self.assertGreater(calls, 0)
        self.assertLessEqual(calls, bound, "ZREVRANGE calls for %d /stats/ requests" % n)
        self.assertLess(calls, n, "every request read Redis")


class StatsNoCache(StatsCacheCase):
    """STATS_CACHE_MS=0: every /stats/ request reads Redis."""

    app_env = {"STATS_CACHE_MS": "0"}

    def test_every_read_goes_to_redis(self):
        results, calls, _ = self.hammer()
        self.check_never_back(results)
        self.assertEqual(calls, self.THREADS * self.EACH)
