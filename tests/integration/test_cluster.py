"""test_cluster.py -- the app in cluster mode: layout, counting, every page.

docs/API.md section 7. One 6-node cluster (tests/cluster.py, 3 masters and
3 replicas) and one stack on it for the whole class; the faults (failover,
resharding, a crashed master, CLUSTERDOWN) are test_cluster_faults.py's.

* the start-up log names the mode, the masters and the shard layout, and
  every shard key the app computed hashes, by the server's own CLUSTER
  KEYSLOT, to the slot the app says (the C slot function against Redis);
* counting is exact over the cluster, each path lands in the shard the
  layout says (FNV-1a 64 of the path mod REDIS_SHARDS) and every master
  holds counts;
* every page of /stats/ equals a brute-force model of the data read back
  from every shard: global order by count desc, then shard asc, then path
  in descending byte order; nothing repeated or missing; deep offsets and
  odd limits; a dataset of many ties and skewed counts written straight
  into the shards in the app's layout;
* cluster-wide total_requests, unique_urls and dropped_hits;
* a process started with another REDIS_SHARDS refuses to start (exit 78,
  a clear message) and changes nothing;
* test runs (records under {runs}) work in cluster mode;
* /stats/history/ sums the shards' history hashes, and DELETE /stats/
  empties every shard (one script per shard) and keeps the writer keys
  (ClusterHistoryAndReset, on a cluster of its own).

The standalone upgrade test (a dataset written in the one-set layout keeps
its counts) is StandaloneUpgrade at the end.
"""

import http.client
import os
import random
import re
import subprocess
import tempfile
import threading
import time

import cluster  # tests/cluster.py
from cluster_support import ClusterStackTestCase, wait_for
from support import StackTestCase

SHARDS = 12
PREFIX = "reqstats:"


def shard_of(path):
    """The layout's placement (tests/cluster.py) with this suite's SHARDS."""
    return cluster.shard_of(path, SHARDS)


def target_slot(i, n=SHARDS):
    return cluster.target_slot(i, n)


def shard_tag(i, n=SHARDS):
    return cluster.shard_tag(i, n)


def send_hits(host, port, plan, threads=4):
    """GET every path of plan ({path: n}) n times over keep-alive
    connections from a few threads; returns how many were not 200."""
    work = [p for p, n in plan.items() for _ in range(n)]
    random.Random(7).shuffle(work)
    bad = []

    def run(part):
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            for p in part:
                conn.request("GET", p)
                r = conn.getresponse()
                r.read()
                if r.status != 200:
                    bad.append((p, r.status))
        finally:
            conn.close()

    ts = [threading.Thread(target=run, args=(work[i::threads],)) for i in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(120)
    return bad


class ClusterLayoutAndPages(ClusterStackTestCase):

    # Exact reads: every /stats/ goes to Redis (the page cache is the same
    # code in both modes; test_stats.py covers it).
    app_env = {"LOG_LEVEL": "debug", "STATS_CACHE_MS": "0"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tags = [shard_tag(i) for i in range(SHARDS)]

    def key(self, i, name):
        return "%s{%s}%s" % (PREFIX, self.tags[i], name)

    def log_text(self):
        with open(self.stack.app_log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def shard_members(self, i):
        flat = self.cluster.call("ZRANGE", self.key(i, "hits"), 0, -1, "WITHSCORES")
        return [(flat[j], int(float(flat[j + 1]))) for j in range(0, len(flat), 2)]

    def model(self):
        """Every member of every shard in global order: count desc, shard
        asc, path in descending byte order. /stats/ (whose count every read
        changes) shows as (path, None)."""
        rows = []
        for i in range(SHARDS):
            for path, count in self.shard_members(i):
                rows.append((count, i, path.encode("utf-8", "surrogateescape"), path))
        rows.sort(key=lambda r: r[2], reverse=True)  # path desc, then stable:
        rows.sort(key=lambda r: (-r[0], r[1]))       # count desc, shard asc
        return [(r[3], None if r[3] == "/stats/" else r[0]) for r in rows]

    def shard_sum(self, name):
        return sum(int(self.cluster.call("GET", self.key(i, name)) or 0) for i in range(SHARDS))

    def totals_between(self):
        """/stats/'s total_requests is the sum of the shards' totals: read
        between two sums (the read's own hit lands a moment after it), it
        lies between them. Returns the page."""
        before = self.shard_sum("total")
        page = self.stats(limit=1)
        wait_for(lambda: self.shard_sum("total") > before, 5, "the /stats/ read counted")
        after = self.shard_sum("total")
        self.assertLessEqual(before, page["total_requests"])
        self.assertLessEqual(page["total_requests"], after)
        self.assertEqual(after, before + 1)  # nothing else is counting
        return page

    # ---- start-up ----------------------------------------------------------------

    def test_startup_log_and_key_slots(self):
        text = self.log_text()
        masters = self.cluster.masters()
        self.assertEqual(len(masters), 3)
        self.assertRegex(text, r"Redis Cluster: 3 masters found from REDIS_CLUSTER=")
        for port in masters:
            self.assertRegex(text, r"Redis Cluster: master 127\.0\.0\.1:%d: \d+ slots, 1 replicas, "
                             r"4 of 12 shards" % port)
        self.assertIn('shard layout: 12 shards under prefix "reqstats:" (recorded in '
                      'reqstats:{meta}shards), 4/4/4 per master', text)
        self.assertEqual(self.cluster.call("GET", PREFIX + "{meta}shards"), "12")
        # Every shard key: the app's slot is the server's CLUSTER KEYSLOT,
        # the tag the layout's, and the node the one serving the slot.
        logged = re.findall(r"shard (\d+): key (\S+), slot (\d+), on 127\.0\.0\.1:(\d+)", text)
        self.assertEqual(sorted(int(s) for s, _, _, _ in logged), list(range(SHARDS)))
        for s, key, slot, port in logged:
            i = int(s)
            self.assertEqual(key, self.key(i, "hits"))
            self.assertEqual(self.cluster.cmd(masters[0], "CLUSTER", "KEYSLOT", key), int(slot))
            self.assertEqual(int(slot), target_slot(i))
            self.assertEqual(self.cluster.slot_owner(int(slot)), int(port))
        # And more keys of every shape through the server: the Python
        # model of the slot function agrees with Redis (it is the one the
        # page model relies on).
        rng = random.Random(3)
        for _ in range(200):
            k = "".join(rng.choice("ab{}.:x1") for _ in range(rng.randrange(0, 12)))
            self.assertEqual(self.cluster.cmd(masters[0], "CLUSTER", "KEYSLOT", k),
                             cluster.key_slot(k), k)

    # ---- counting ----------------------------------------------------------------

    def test_counting_exact_on_every_master(self):
        prefix = "/api/count/"
        plan = {"%s%d/" % (prefix, i): 1 + (i * 7) % 13 for i in range(240)}
        before = self.stats(limit=1)["total_requests"]
        host, port = self.host_port()
        self.assertEqual(send_hits(host, port, plan), [])
        want = sum(plan.values())
        got = self.wait_counts(prefix, plan, timeout=20)
        self.assertEqual(got, plan)
        # Each path sits in the shard the layout says.
        for path, n in list(plan.items())[:60]:
            i = shard_of(path)
            self.assertEqual(self.cluster.call("ZSCORE", self.key(i, "hits"), path), str(n), path)
        # Every master holds counts: the totals of its shards.
        per_master = {}
        for i in range(SHARDS):
            owner = self.cluster.slot_owner(target_slot(i))
            per_master[owner] = per_master.get(owner, 0) + \
                int(self.cluster.call("GET", self.key(i, "total")) or 0)
        self.assertEqual(len(per_master), 3, per_master)
        self.assertTrue(all(v > 0 for v in per_master.values()), per_master)
        # Cluster-wide totals (this test's hits plus the /stats/ reads).
        page = self.totals_between()
        self.assertGreaterEqual(page["total_requests"], before + want)

    # ---- every page against a model ----------------------------------------------

    def fill(self):
        """Write a dataset straight into the shards, in the app's layout:
        skewed counts (a few large, many small), many ties, paths whose
        byte order matters."""
        rng = random.Random(11)
        per_shard = [[] for _ in range(SHARDS)]
        added = 0
        for n in range(6000):
            r = rng.random()
            count = (1 + rng.randrange(3) if r < 0.7 else
                     10 + rng.randrange(5) if r < 0.9 else
                     int(rng.paretovariate(1.1) * 100))
            path = "/api/fill/%s%d/" % (rng.choice(["a", "b", "B", "z", "~", "a/b"]), n)
            per_shard[shard_of(path)].append((count, path))
            added += count
        for i, members in enumerate(per_shard):
            for j in range(0, len(members), 500):
                args = []
                for count, path in members[j:j + 500]:
                    args += [count, path]
                self.cluster.call("ZADD", self.key(i, "hits"), *args)
            self.cluster.call("INCRBY", self.key(i, "total"), sum(c for c, _ in members))
        # /stats/ itself is counted by every read of this test: far above
        # everything, it stays the first row whatever its count.
        big = 10 ** 9
        self.cluster.call("ZINCRBY", self.key(shard_of("/stats/"), "hits"), big, "/stats/")
        self.cluster.call("INCRBY", self.key(shard_of("/stats/"), "total"), big)
        self.cluster.call("INCRBY", self.key(5, "dropped"), 17)
        self.cluster.call("INCRBY", self.key(11, "dropped"), 4)
        return added

    def test_every_page_against_model(self):
        self.fill()
        # Quiet: the app's own hits stop once nothing is sent (the reads
        # below are counted too, so the model is read after each page).
        model = self.model()
        unique = len(model)

        def page(offset, limit):
            return self.stats(offset=offset, limit=limit)

        def rows(body):
            return [(u["url"], None if u["url"] == "/stats/" else u["count"])
                    for u in body["urls"]]

        wait_for(lambda: page(0, 1)["unique_urls"] >= unique, 10, "the filled shards in /stats/")
        # Whole walks with several page sizes: nothing repeated or missing.
        for limit in (1000, 337):
            seen, offset = [], 0
            while True:
                body = page(offset, limit)
                model = self.model()  # the walk's own /stats/ hits change counts
                got = rows(body)
                self.assertEqual(got, model[offset:offset + limit],
                                 "page offset=%d limit=%d" % (offset, limit))
                self.assertEqual(body["unique_urls"], len(model))
                seen += [u for u, _ in got]
                if body["next"] is None:
                    break
                offset += limit
            self.assertEqual(len(seen), len(set(seen)), "a path on two pages")
            self.assertEqual(len(seen), len(self.model()))
        # Deep and odd pages, the first and the last rows, past the end.
        rng = random.Random(5)
        cases = [(0, 1), (0, 100), (len(model) - 1, 1), (len(model) - 7, 100),
                 (len(model), 10), (len(model) + 1000, 5), (len(model) // 2, 1)]
        cases += [(rng.randrange(len(model)), rng.choice([1, 2, 3, 50, 99, 500]))
                  for _ in range(40)]
        for offset, limit in cases:
            body = page(offset, limit)
            model = self.model()
            self.assertEqual(rows(body), model[offset:offset + limit],
                             "offset=%d limit=%d" % (offset, limit))
        # The same pages again after counts moved under them: the brackets
        # the app remembered for these ranks no longer hold and it must
        # notice (docs/API.md section 7: exact on a quiet dataset).
        rng = random.Random(9)
        for path, _ in rng.sample(self.model()[1:], 300):
            self.cluster.call("ZINCRBY", self.key(shard_of(path), "hits"), rng.randrange(1, 40),
                              path)
        for offset, limit in cases:
            body = page(offset, limit)
            model = self.model()
            self.assertEqual(rows(body), model[offset:offset + limit],
                             "after the change: offset=%d limit=%d" % (offset, limit))
        # Cluster-wide totals.
        body = self.totals_between()
        self.assertEqual(body["unique_urls"], len(self.model()))
        self.assertEqual(body["dropped_hits"], self.shard_sum("dropped"))
        self.assertGreaterEqual(body["dropped_hits"], 21)

    # ---- the recorded layout ------------------------------------------------------

    def test_other_shard_count_refused(self):
        env = self.stack.app_environment()
        tmp = tempfile.mkdtemp(prefix="reqstats-shards-")
        env.update({"REDIS_SHARDS": "24", "FCGI_LISTEN": os.path.join(tmp, "app.sock")})
        before = self.cluster.call("GET", PREFIX + "{meta}shards")
        proc = subprocess.run([self.stack.binary], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, timeout=30)
        out = proc.stdout.decode("utf-8", "replace")
        self.assertEqual(proc.returncode, 78, out)
        self.assertIn('REDIS_SHARDS=24, but the dataset under prefix "reqstats:" was created with '
                      '12 shards', out)
        self.assertIn("refusing to start", out)
        self.assertNotIn("worker 0 started", out)
        self.assertEqual(self.cluster.call("GET", PREFIX + "{meta}shards"), before)
        self.assertFalse(os.path.exists(os.path.join(tmp, "app.sock")))
        # The running app is unaffected.
        self.assertEqual(self.get("/api/after-refusal/").status, 200)

    # ---- test runs ----------------------------------------------------------------

    def test_run_records_in_cluster_mode(self):
        r = self.post("/test/40/")
        body = self.assertJson(r, 202)
        url = body["status_url"]
        deadline = time.monotonic() + 60
        while True:
            rec = self.assertJson(self.get(url), 200)
            if rec["status"] in ("done", "failed"):
                break
            self.assertLess(time.monotonic(), deadline, rec)
            time.sleep(0.1)
        self.assertEqual(rec["status"], "done", rec)
        self.assertEqual(rec["succeeded"], 40, rec)
        # The records live under {runs}: one slot.
        self.assertEqual(self.cluster.call("HGET", PREFIX + "{runs}run:" + body["id"], "status"),
                         "done")
        runs = self.assertJson(self.get("/test/runs/"), 200)
        self.assertIn(body["id"], [x["id"] for x in runs["runs"]])


class ClusterHistoryAndReset(ClusterStackTestCase):
    """docs/API.md sections 10 and 11 on the shard layout."""

    TOKEN = "cluster-reset-token"
    app_env = {"ADMIN_TOKEN": TOKEN, "STATS_CACHE_MS": "0", "TEST_ENABLED": "0"}

    def key(self, i, name):
        return "%s{%s}%s" % (PREFIX, shard_tag(i), name)

    def history_sum(self):
        """Every history point in Redis, over the shards' hour hashes."""
        total = 0
        for port in self.cluster.masters():
            for k in self.cluster.cmd(port, "KEYS", PREFIX + "{*}history:*"):
                flat = self.cluster.cmd(port, "HGETALL", k)
                total += sum(int(v) for v in flat[1::2])
        return total

    def shard_totals(self):
        return sum(int(self.cluster.call("GET", self.key(i, "total")) or 0)
                   for i in range(SHARDS))

    def quiet(self):
        """The shards' total once it stops moving."""
        last = None
        for _ in range(100):
            cur = self.shard_totals()
            if cur == last:
                return cur
            last = cur
            time.sleep(0.15)
        self.fail("the shards' totals kept moving")

    def test_history_summed_then_reset_everywhere(self):
        plan = {"/api/hr/%d/" % i: 1 + i % 4 for i in range(150)}
        host, port = self.host_port()
        self.assertEqual(send_hits(host, port, plan), [])
        self.assertEqual(self.wait_counts("/api/hr/", plan), plan)
        before = self.quiet()
        # History: the points sum to every request counted, over shards
        # (each batch's tallies ride on one of its parts).
        body = self.assertJson(self.get("/stats/history/?minutes=10"), 200)
        shown = sum(p["requests"] for p in body["points"])
        self.assertIn(shown, (before, before + 1))  # + maybe this read's own hit
        # (read twice: the history read's own hit may land in between)
        wait_for(lambda: self.history_sum() == self.quiet(), 10,
                 "the history points to add up to the shards' totals")
        holders = {shard_of(p) for p in plan}
        self.assertEqual(len(holders), SHARDS)  # the paths cover every shard
        # Reset: every shard emptied, one script each.
        self.cluster.call("INCRBY", self.key(3, "dropped"), 5)
        before = self.quiet()
        r = self.request("DELETE", "/stats/",
                         headers={"Authorization": "Bearer " + self.TOKEN})
        body = self.assertJson(r, 200)
        self.assertIs(body["reset"], True)
        self.assertIn(body["removed"]["total_requests"], (before, before + 1))
        self.assertEqual(body["removed"]["dropped_hits"], 5)
        self.assertGreaterEqual(body["removed"]["unique_urls"], 150)
        for i in range(SHARDS):
            self.assertIsNone(self.cluster.call("ZSCORE", self.key(i, "hits"), "/api/hr/1/"))
            self.assertIn(self.cluster.call("GET", self.key(i, "dropped")), (None, "0"))
        left = self.quiet()
        self.assertLessEqual(left, 2)  # the DELETE and maybe one read since
        wait_for(lambda: self.history_sum() == self.quiet(), 10,
                 "the history points to add up to the shards' totals")
        # Writer keys stay (retried parts remain recognised as applied).
        writers = sum(len(self.cluster.cmd(p, "KEYS", PREFIX + "{*}writer:*"))
                      for p in self.cluster.masters())
        self.assertGreater(writers, 0)
        # Counting goes on.
        self.assertEqual(send_hits(host, port, {"/api/hr/after/": 3}), [])
        self.assertEqual(self.wait_counts("/api/hr/after/", {"/api/hr/after/": 3}),
                         {"/api/hr/after/": 3})


    def test_metrics_redis_up_per_node(self):
        """docs/API.md section 8: in cluster mode reqstats_redis_up has one
        sample per node the app knows (the seeds and every master it has
        routed to), labelled node="host:port"; every master is there and
        up; promtool accepts it."""
        r = self.get("/metrics")
        self.assertEqual(r.status, 200)
        text = r.body.decode()
        ups = {int(n.rsplit(":", 1)[1]): v for n, v in
               re.findall(r'^reqstats_redis_up\{node="([^"]+)"\} (\d)$', text, re.M)}
        self.assertNotRegex(text, r"(?m)^reqstats_redis_up ")  # no unlabelled sample
        self.assertLessEqual(set(self.cluster.masters()), set(ups), text)
        self.assertLessEqual(set(ups), set(self.cluster.ports), text)
        self.assertEqual(set(ups.values()), {"1"}, text)
        self.assertRegex(text, r"(?m)^reqstats_requests_total \d+$")
        p = subprocess.run(["promtool", "check", "metrics"], input=r.body,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(p.returncode, 0, p.stdout.decode())


class StandaloneUpgrade(StackTestCase):
    """A dataset in the one-set layout every standalone release wrote keeps
    its counts: the app reads P hits, P total and P dropped and keeps
    counting into them (docs/API.md section 7)."""

    def test_existing_dataset_kept(self):
        st = self.require_stack()
        self.assertEqual(st.stop_app(), 0)
        st.redis_cmd("ZADD", PREFIX + "hits", 41, "/api/old/a/", 7, "/api/old/b/", 7, "/api/old/c/")
        st.redis_cmd("SET", PREFIX + "total", 55)
        st.redis_cmd("SET", PREFIX + "dropped", 3)
        st.redis_cmd("SET", PREFIX + "writer:0123456789abcdef0123456789abcdef", 99, "EX", 3600)
        st.start_app()
        st.wait_ready()
        page = self.stats(limit=10)
        urls = [(u["url"], u["count"]) for u in page["urls"]]
        self.assertEqual(urls[0], ("/api/old/a/", 41))
        self.assertEqual(urls[1:3], [("/api/old/c/", 7), ("/api/old/b/", 7)])
        self.assertGreaterEqual(page["total_requests"], 55)
        self.assertEqual(page["dropped_hits"], 3)
        # Counting continues in the same keys.
        for _ in range(3):
            self.assertEqual(self.get("/api/old/b/").status, 200)
        wait_for(lambda: self.counts().get("/api/old/b/") == 10, 5, "/api/old/b/ at 10")
        self.assertEqual(int(st.redis_cmd("ZSCORE", PREFIX + "hits", "/api/old/b/")), 10)
        self.assertEqual(st.redis_cmd("EXISTS", PREFIX + "{meta}shards"), 0)
        # total_requests is P total, which kept counting from 55: every
        # request since (3 hits, the /stats/ reads) is in it.
        before = int(st.redis_cmd("GET", PREFIX + "total"))
        self.assertGreaterEqual(before, 55 + 3)
        shown = self.stats(limit=2)["total_requests"]
        wait_for(lambda: int(st.redis_cmd("GET", PREFIX + "total")) > before, 5,
                 "the /stats/ read counted")
        after = int(st.redis_cmd("GET", PREFIX + "total"))
        self.assertLessEqual(before, shown)
        self.assertLessEqual(shown, after)
