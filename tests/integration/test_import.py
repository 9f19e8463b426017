"""test_import.py -- reqstats --import: a standalone dataset into a cluster.

docs/API.md section 7 ("Moving a standalone dataset to a cluster"). One
standalone stack (the source) and one 3-master cluster without replicas
(the destination) for the class:

* an import copies every count into its shard, each shard's total is the
  sum of its counts, the dropped count and every history hour come along,
  and an app started on the cluster serves the same URLs, totals and
  history as the standalone app did;
* a second run finds the import done and changes nothing; a dataset with
  counts of its own is refused (exit 78); another REDIS_SHARDS is refused;
  without REDIS_CLUSTER it refuses;
* an interrupted import (marker "running", wrong partial values) is
  finished by running it again, with exactly the source's values.
"""

import json
import os
import random
import subprocess
import urllib.request

import cluster  # tests/cluster.py
import stack  # tests/stack.py
from support import StackTestCase

PREFIX = "reqstats:"
SHARDS = 12
CONFIG_EXIT_FATAL = 78


class Import(StackTestCase):

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.cl = None
        if cls.stack is not None:
            try:
                cls.cl = cluster.LocalCluster(os.path.join(cls.tmpdir, "cluster"), replicas=0)
                cls.cl.start()
            except Exception:
                super().tearDownClass()
                raise

    @classmethod
    def tearDownClass(cls):
        try:
            if cls.cl is not None:
                cls.cl.stop()
        finally:
            super().tearDownClass()

    # ---- helpers -------------------------------------------------------------------

    def run_import(self, prefix=PREFIX, **env):
        st = self.stack
        e = st.app_environment()
        e.update({"REDIS_CLUSTER": self.cl.seeds, "REDIS_PREFIX": prefix})
        e.update(env)
        p = subprocess.run([st.binary, "--import"], env=e, capture_output=True, text=True,
                           timeout=120)
        return p.returncode, p.stderr

    def source(self, prefix=PREFIX):
        """{path: count}, total, dropped and {history key: {field: value}}
        of the standalone dataset under prefix."""
        st = self.stack
        flat = st.redis_cmd("ZRANGE", prefix + "hits", 0, -1, "WITHSCORES")
        counts = {flat[i]: int(float(flat[i + 1])) for i in range(0, len(flat), 2)}
        hist = {}
        for key in st.redis_cmd("KEYS", prefix + "history:*"):
            flat = st.redis_cmd("HGETALL", key)
            hist[key[len(prefix + "history:"):]] = {flat[i]: int(flat[i + 1])
                                                    for i in range(0, len(flat), 2)}
        return (counts, int(st.redis_cmd("GET", prefix + "total") or 0),
                int(st.redis_cmd("GET", prefix + "dropped") or 0), hist)

    def destination(self, prefix=PREFIX):
        """The same read from the cluster's shards, with the shard each
        member was found in checked against the layout."""
        counts, total, dropped, hist = {}, 0, 0, {}
        for i in range(SHARDS):
            tag = "{%s}" % cluster.shard_tag(i, SHARDS)
            flat = self.cl.call("ZRANGE", prefix + tag + "hits", 0, -1, "WITHSCORES")
            for j in range(0, len(flat), 2):
                self.assertEqual(cluster.shard_of(flat[j], SHARDS), i, flat[j])
                counts[flat[j]] = int(float(flat[j + 1]))
            total += int(self.cl.call("GET", prefix + tag + "total") or 0)
            dropped += int(self.cl.call("GET", prefix + tag + "dropped") or 0)
        for port in self.cl.masters():
            for key in self.cl.cmd(port, "KEYS", prefix + "{*}history:*"):
                flat = self.cl.cmd(port, "HGETALL", key)
                hour = key.rsplit(":", 1)[1]
                for j in range(0, len(flat), 2):
                    h = hist.setdefault(hour, {})
                    h[flat[j]] = h.get(flat[j], 0) + int(flat[j + 1])
        return counts, total, dropped, hist

    def seed_source(self, prefix, n, seed):
        """n paths with skewed, often tied counts written straight into the
        standalone layout under prefix; returns their sum."""
        rng = random.Random(seed)
        st = self.stack
        args, added = [], 0
        for i in range(n):
            c = rng.choice((1, 1, 2, 3, 5, 8)) * rng.choice((1, 1, 1, 10, 100))
            args += [c, "/api/imported/%d/%s/" % (i, "x" * rng.randrange(0, 40))]
            added += c
            if len(args) >= 1000:
                st.redis_cmd("ZADD", prefix + "hits", *args)
                args = []
        if args:
            st.redis_cmd("ZADD", prefix + "hits", *args)
        st.redis_cmd("INCRBY", prefix + "total", added)
        return added

    # ---- tests ---------------------------------------------------------------------

    def test_import_then_serve_from_the_cluster(self):
        st = self.require_stack()
        # History and counts written by the app, then 2,500 more URLs.
        for i in range(30):
            self.assertEqual(self.get("/api/own/%d/" % (i % 5)).status, 200)
        self.wait_zscores({"/api/own/%d/" % i: 6 for i in range(5)})
        self.seed_source(PREFIX, 2500, 11)
        st.redis_cmd("INCRBY", PREFIX + "dropped", 4)
        before_stats = self.stats(limit=1)
        self.assertEqual(st.stop_app(), 0)
        src = self.source()
        self.assertGreater(len(src[0]), 2500)
        self.assertTrue(src[3], "the app wrote no history")

        code, log = self.run_import()
        self.assertEqual(code, 0, log)
        self.assertIn("import done: %d URLs" % len(src[0]), log)
        dst = self.destination()
        self.assertEqual(dst[0], src[0])
        self.assertEqual(dst[1], sum(src[0].values()))
        self.assertEqual(dst[1], src[1])
        self.assertEqual(dst[2], src[2])
        self.assertEqual(dst[3], src[3])
        # Every shard's total is its own counts' sum.
        for i in range(SHARDS):
            tag = "{%s}" % cluster.shard_tag(i, SHARDS)
            flat = self.cl.call("ZRANGE", PREFIX + tag + "hits", 0, -1, "WITHSCORES")
            self.assertEqual(int(self.cl.call("GET", PREFIX + tag + "total") or 0),
                             sum(int(float(v)) for v in flat[1::2]))
        # The standalone dataset is untouched.
        self.assertEqual(self.source(), src)

        # An app on the cluster serves what the standalone one did.
        on = stack.Stack(os.path.join(self.tmpdir, "on-cluster"), binary=st.binary,
                         redis_cluster=self.cl, app_env={"STATS_CACHE_MS": "0"})
        on.start()
        try:
            # Its own reads are counted too: "/stats/" and the total may
            # be one ahead (the page read's hit may land before the read).
            page = _get_json(on, "/stats/?limit=10000")
            got = {u["url"]: u["count"] for u in page["urls"]}
            self.assertIn(got.pop("/stats/") - src[0]["/stats/"], (0, 1))
            self.assertEqual(got, {p: c for p, c in src[0].items() if p != "/stats/"})
            self.assertEqual(page["unique_urls"], len(src[0]))
            self.assertIn(page["total_requests"] - src[1], (0, 1))
            self.assertEqual(page["dropped_hits"], src[2])
            self.assertEqual(page["dropped_hits"], before_stats["dropped_hits"])
            hist = _get_json(on, "/stats/history/?minutes=60")
            served = sum(p["requests"] for p in hist["points"])
            want = sum(sum(h.values()) for h in src[3].values())
            self.assertGreaterEqual(served, want)
            self.assertLessEqual(served, want + 2)
        finally:
            on.stop()
        after = self.destination()

        # Again: done before, nothing changes (the app's own /stats/ reads
        # above are counted in the cluster now).
        code, log = self.run_import()
        self.assertEqual(code, 0, log)
        self.assertIn("finished before", log)
        self.assertEqual(self.destination(), after)
        # A cluster dataset with counts of its own is refused.
        code, log = self.run_import(prefix="other:")
        self.assertEqual(code, 0, log)  # empty source, empty destination: nothing to copy
        self.cl.call("ZADD", "other:{%s}hits" % cluster.shard_tag(0, SHARDS), 1, "/x/")
        self.cl.call("DEL", "other:{meta}import")
        code, log = self.run_import(prefix="other:")
        self.assertEqual(code, CONFIG_EXIT_FATAL, log)
        self.assertIn("has counts of its own", log)
        # Another shard count than the dataset's is refused.
        code, log = self.run_import(REDIS_SHARDS="6")
        self.assertEqual(code, CONFIG_EXIT_FATAL, log)
        self.assertIn("REDIS_SHARDS=6", log)
        self.assertEqual(self.destination(), after)
        st.start_app()
        st.wait_ready()

    def test_interrupted_import_finished_by_running_again(self):
        st = self.require_stack()
        prefix = "resume:"
        self.seed_source(prefix, 1500, 23)
        st.redis_cmd("SET", prefix + "dropped", 2)
        src = self.source(prefix)
        # What an import stopped half-way leaves: the marker, some counts
        # (one of them not yet the source's), no totals.
        self.assertEqual(self.run_import(prefix, REDIS_HOST="127.0.0.2")[0], 1)
        self.assertIsNone(self.cl.call("GET", prefix + "{meta}import"))
        self.cl.call("SET", prefix + "{meta}shards", SHARDS)
        self.cl.call("SET", prefix + "{meta}import", "running")
        some = sorted(src[0])[:50]
        for path in some:
            key = prefix + "{%s}hits" % cluster.shard_tag(cluster.shard_of(path, SHARDS), SHARDS)
            self.cl.call("ZADD", key, src[0][path] + (1000 if path == some[0] else 0), path)
        code, log = self.run_import(prefix)
        self.assertEqual(code, 0, log)
        dst = self.destination(prefix)
        self.assertEqual(dst[:3], src[:3])
        self.assertEqual(self.cl.call("GET", prefix + "{meta}import"), "done")

    def test_refused_without_cluster(self):
        st = self.require_stack()
        e = st.app_environment()
        e.pop("REDIS_CLUSTER", None)
        p = subprocess.run([st.binary, "--import"], env=e, capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(p.returncode, CONFIG_EXIT_FATAL, p.stderr)
        self.assertIn("set REDIS_CLUSTER", p.stderr)


def _get_json(st, path):
    with urllib.request.urlopen(st.base_url + path, timeout=10) as r:
        return json.loads(r.read().decode())
