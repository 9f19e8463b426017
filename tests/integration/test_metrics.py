"""GET /metrics -- Prometheus text format (docs/API.md section 8).

  Metrics          content type, HELP and TYPE for every series, naming, no
                   URL label, `promtool check metrics` clean; runs by status;
                   worker restarts counted by the master
  MetricsExact     (one worker) the Redis series equal Redis's own figures
                   behind a barrier; the histogram's buckets; /metrics is
                   counted like any other request
  MetricsRedisDown while Redis is down: 200, reqstats_redis_up 0, no
                   Redis-derived series, buffered hits equal to the hits held,
                   promtool clean; back to 0 once Redis is back, every held
                   hit and scrape written once
  RealPrometheus   (one worker) Debian's prometheus on loopback scrapes the
                   app through nginx every second: up is 1, and
                   reqstats_requests_total of a scrape after a barrier equals
                   /stats/ exactly (accounting for the scrapes themselves,
                   which are counted)

Exact figures are read behind a barrier (support.py): barrier() on the
one-worker classes, a graceful restart of the app (fresh_app) where the
class keeps several workers.

promtool and prometheus come from the Debian package `prometheus` (make
deps installs it).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest
import urllib.parse
import urllib.request

from support import StackTestCase, wait_for

import stack as stackmod

PREFIX = "reqstats:"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
REDIS_SERIES = ("reqstats_requests_total", "reqstats_unique_urls",
                "reqstats_dropped_hits_total", "reqstats_test_runs")
PROCESS_SERIES = ("reqstats_build_info", "reqstats_buffered_hits", "reqstats_workers",
                  "reqstats_worker_restarts_total",
                  "reqstats_redis_batch_duration_seconds", "reqstats_process_start_time_seconds")
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')


def parse(text):
    """{name: {labels or "": value}}, and {family: (type, help)}."""
    samples, families = {}, {}
    for line in text.splitlines():
        if line.startswith("# HELP "):
            name, _, help_text = line[7:].partition(" ")
            families.setdefault(name, [None, None])[1] = help_text
        elif line.startswith("# TYPE "):
            name, _, kind = line[7:].partition(" ")
            families.setdefault(name, [None, None])[0] = kind
        elif line and not line.startswith("#"):
            m = SAMPLE.match(line)
            if not m:
                raise AssertionError("bad sample line %r" % line)
            samples.setdefault(m.group(1), {})[m.group(2) or ""] = float(m.group(3))
    return samples, {k: tuple(v) for k, v in families.items()}


def promtool_check(text):
    """(exit code, output) of `promtool check metrics` on text."""
    p = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


class MetricsMixin:
    def scrape(self):
        r = self.get("/metrics")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), CONTENT_TYPE)
        self.assertEqual(r.headers.get("cache-control"), "no-store")
        text = r.body.decode("utf-8", "strict")
        samples, families = parse(text)
        for name, (kind, help_text) in families.items():
            self.assertTrue(name.startswith("reqstats_"), name)
            self.assertIn(kind, ("counter", "gauge", "histogram"), name)
            self.assertTrue(help_text, name)
            if kind == "counter":
                self.assertTrue(name.endswith("_total"), name)
        for name in samples:
            family = re.sub(r"_(bucket|sum|count)$", "", name)
            self.assertTrue(name in families or family in families, "no HELP/TYPE for " + name)
        # Never a label that takes a URL (unbounded cardinality).
        self.assertNotRegex(text, r'(url|path)="')
        return text, samples, families

    def promtool_ok(self, text):
        if shutil.which("promtool") is None:
            self.fail("promtool missing: make deps installs the prometheus package")
        code, out = promtool_check(text)
        self.assertEqual((code, out), (0, ""), text)


class Metrics(MetricsMixin, StackTestCase):
    def test_format_and_promtool(self):
        text, samples, families = self.scrape()
        self.promtool_ok(text)
        for name in REDIS_SERIES + PROCESS_SERIES + ("reqstats_redis_up",):
            self.assertIn(name, families)
        self.assertEqual(samples["reqstats_redis_up"], {"": 1.0})
        with open(os.path.join(stackmod.ROOT, "app", "version.h")) as f:
            version = re.search(r'^#define REQSTATS_VERSION "([^"]+)"', f.read(), re.M).group(1)
        self.assertEqual(samples["reqstats_build_info"], {'{version="%s"}' % version: 1.0})
        self.assertEqual(families["reqstats_redis_batch_duration_seconds"][0], "histogram")
        self.assertEqual(set(samples["reqstats_test_runs"]),
                         {'{status="%s"}' % s for s in
                          ("queued", "running", "done", "failed", "cancelled")})
        r = self.request("HEAD", "/metrics")
        self.assertEqual((r.status, r.body), (200, b""))
        r = self.post("/metrics")
        self.assertError(r, 405, "method_not_allowed")
        self.assertEqual(r.headers.get("allow"), "GET, HEAD")

    def test_runs_by_status(self):
        self.require_stack()
        run = self.assertJson(self.post("/test/4/"), 202)
        wait_for(lambda: self.assertJson(self.get(run["status_url"]), 200)["status"] == "done",
                 "run %s done" % run["id"])
        runs = self.assertJson(self.get("/test/runs/?limit=100"), 200)["runs"]
        want = {}
        for rec in runs:
            want[rec["status"]] = want.get(rec["status"], 0) + 1
        _, samples, _ = self.scrape()
        got = samples["reqstats_test_runs"]
        for status in ("queued", "running", "done", "failed", "cancelled"):
            self.assertEqual(got['{status="%s"}' % status], want.get(status, 0), (got, runs))

    def test_worker_restart_counted(self):
        st = self.require_stack()
        _, samples, _ = self.scrape()
        workers = samples["reqstats_workers"][""]
        restarts = samples["reqstats_worker_restarts_total"][""]
        self.assertEqual(workers, 4)  # WORKERS' default
        os.kill(st.workers()[0], signal.SIGKILL)
        def counted():
            _, samples, _ = self.scrape()
            return (samples["reqstats_worker_restarts_total"][""] == restarts + 1 and
                    samples["reqstats_workers"][""] == workers)
        wait_for(counted, "the restart counted")


class MetricsExact(MetricsMixin, StackTestCase):
    """One worker, so barrier() is sound (support.py)."""

    app_env = {"WORKERS": "1"}

    def test_redis_series_match_redis(self):
        st = self.require_stack()
        for i in range(20):
            self.assertEqual(self.get("/api/m/%d/" % (i % 4)).status, 200)
        self.barrier()
        # Redis holds every hit so far and nothing moves it until the
        # scrape, whose own hit stays in its worker until after its answer
        # (worker.c writes batches between requests).
        total = self.redis_total()
        before = self.zscore("/metrics")
        unique = st.redis_cmd("ZCARD", PREFIX + "hits")
        dropped = int(st.redis_cmd("GET", PREFIX + "dropped") or 0)
        _, samples, _ = self.scrape()
        self.assertEqual(samples["reqstats_requests_total"][""], total)
        self.assertEqual(samples["reqstats_unique_urls"][""], unique)
        self.assertEqual(samples["reqstats_dropped_hits_total"][""], dropped)
        # Counted like any other: the scrape, then the marker.
        self.barrier()
        self.assertEqual(self.redis_total(), total + 2)
        self.assertEqual(self.zscore("/metrics"), before + 1)
        # The batch histogram saw the batches that wrote these hits.
        hist = samples["reqstats_redis_batch_duration_seconds_bucket"]
        buckets = sorted(((float("inf") if k == '{le="+Inf"}' else
                           float(re.match(r'\{le="([^"]+)"\}', k).group(1)), v)
                          for k, v in hist.items()))
        counts = [v for _, v in buckets]
        self.assertEqual(counts, sorted(counts))
        self.assertEqual(counts[-1], samples["reqstats_redis_batch_duration_seconds_count"][""])
        self.assertGreater(counts[-1], 0)
        self.assertGreater(samples["reqstats_redis_batch_duration_seconds_sum"][""], 0)
        start = samples["reqstats_process_start_time_seconds"][""]
        self.assertLessEqual(start, time.time())
        self.assertGreater(start, time.time() - 3600)


class MetricsRedisDown(MetricsMixin, StackTestCase):
    app_env = {"TEST_ENABLED": "0", "REDIS_BACKOFF_MAX_MS": "200"}

    def test_redis_down_then_back(self):
        st = self.require_stack()
        # A fresh app holds no hit, so what it holds below is exactly ours.
        self.fresh_app()
        st.stop_redis()
        held = 17
        for i in range(held):
            self.assertEqual(self.get("/api/held/%d/" % i).status, 200)
        scrapes = 0
        seen = {}

        def all_held():
            # Every earlier scrape is held too; this one is not yet published.
            nonlocal scrapes
            text, samples, families = self.scrape()
            scrapes += 1
            seen.update(text=text, samples=samples, families=families)
            return samples.get("reqstats_buffered_hits", {}).get("") == held + scrapes - 1
        wait_for(all_held, "%d held hits in reqstats_buffered_hits" % held)
        text, samples, families = seen["text"], seen["samples"], seen["families"]
        self.assertEqual(samples["reqstats_redis_up"], {"": 0.0})
        for name in REDIS_SERIES:
            self.assertNotIn(name, families)
            self.assertNotIn(name, samples)
        for name in PROCESS_SERIES:
            self.assertIn(name, families)
        self.promtool_ok(text)

        st.start_redis()

        def written():
            nonlocal scrapes
            text, samples, _ = self.scrape()
            scrapes += 1
            seen.update(text=text, samples=samples)
            return (samples["reqstats_redis_up"][""] == 1 and
                    samples["reqstats_buffered_hits"][""] == 0)
        wait_for(written, "reqstats_redis_up 1 and no buffered hit")
        text, samples = seen["text"], seen["samples"]
        self.promtool_ok(text)
        # Redis came back empty (no persistence here): it holds only the
        # held hits and the scrapes, and the last scrape's own hit was not
        # written when it read Redis.
        self.assertGreaterEqual(samples["reqstats_requests_total"][""], held)
        self.assertLessEqual(samples["reqstats_requests_total"][""], held + scrapes - 1)
        # All written once: after a graceful stop (every held hit written)
        # Redis holds exactly the held hits and every scrape.
        self.assertEqual(st.stop_app(), 0, "the app's exit status on SIGTERM")
        self.assertEqual(self.redis_total(), held + scrapes)
        self.assertEqual(self.zscore("/metrics"), scrapes)


class RealPrometheus(MetricsMixin, StackTestCase):
    """A real Prometheus scraping the app through nginx every second; one
    worker, so barrier() is sound (support.py)."""
    app_env = {"TEST_ENABLED": "0", "WORKERS": "1"}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.prom = None
        if cls.stack is None:
            return
        if shutil.which("prometheus") is None:
            raise AssertionError("prometheus missing: make deps installs it")
        cls.prom_dir = tempfile.mkdtemp(prefix="reqstats-prom-")
        cls.prom_port = stackmod.free_port()
        target = "127.0.0.1:%d" % cls.stack.http_port
        conf = os.path.join(cls.prom_dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "scrape_configs:\n  - job_name: reqstats\n    metrics_path: /metrics\n"
                    "    static_configs:\n      - targets: ['%s']\n" % target)
        cls.prom_log = open(os.path.join(cls.prom_dir, "prometheus.log"), "ab")
        cls.prom = subprocess.Popen(
            ["prometheus", "--config.file=" + conf,
             "--storage.tsdb.path=" + os.path.join(cls.prom_dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % cls.prom_port, "--log.level=warn"],
            stdout=cls.prom_log, stderr=subprocess.STDOUT, start_new_session=True)

    @classmethod
    def tearDownClass(cls):
        if getattr(cls, "prom", None) is not None:
            stackmod.stop_process(cls.prom, timeout=20)
            cls.prom_log.close()
            shutil.rmtree(cls.prom_dir, ignore_errors=True)
        super().tearDownClass()

    def prom_query(self, expr, at=None):
        q = {"query": expr}
        if at is not None:
            q["time"] = "%.3f" % at
        url = "http://127.0.0.1:%d/api/v1/query?%s" % (self.prom_port, urllib.parse.urlencode(q))
        with urllib.request.urlopen(url, timeout=5) as r:
            body = json.loads(r.read().decode())
        self.assertEqual(body["status"], "success", body)
        return body["data"]["result"]

    def wait_query(self, expr, cond, timeout=60):
        def matched():
            if self.prom.poll() is not None:
                self.fail("prometheus exited with %s" % self.prom.returncode)
            try:
                result = self.prom_query(expr)
            except OSError:
                result = None  # not listening yet
            return result if result and cond(result) else None
        return wait_for(matched, "%s: a matching answer" % expr, timeout, interval=0.2)

    def others(self):
        """Hits outside /metrics in Redis, read in one atomic script (only
        Prometheus's scrapes move Redis while the test waits)."""
        script = ("return tonumber(redis.call('GET', KEYS[1]) or 0) - "
                  "tonumber(redis.call('ZSCORE', KEYS[2], ARGV[1]) or 0)")
        return int(self.stack.redis_cmd("EVAL", script, 2, PREFIX + "total", PREFIX + "hits",
                                        "/metrics"))

    def test_scrape_matches_stats(self):
        self.require_stack()
        self.wait_query('up{job="reqstats"}', lambda r: float(r[0]["value"][1]) == 1)
        for i in range(40):
            self.assertEqual(self.get("/api/prom/%d/" % (i % 7)).status, 200)
        self.barrier()
        # Every hit but the scrapes is in Redis now, and only scrapes
        # come in until the page read below.
        others = self.others()
        after_barrier = time.time()
        # A scrape that began after the barrier, once its Redis read saw
        # every scrape before it: wait for it like wait_counts() does for a
        # count, and fail at once on an overshoot (a hit written twice).
        found = {}

        def scrape_seen_all():
            res = self.prom_query('timestamp(reqstats_requests_total{job="reqstats"})')
            if not res or float(res[0]["value"][1]) <= after_barrier:
                return False
            scrape_t = float(res[0]["value"][1])
            value = float(self.prom_query('reqstats_requests_total{job="reqstats"}',
                                          at=scrape_t)[0]["value"][1])
            scrapes = float(self.prom_query('count_over_time(up{job="reqstats"}[1h])',
                                            at=scrape_t)[0]["value"][1])
            found.update(scrape_t=scrape_t, value=value, scrapes=scrapes)
            return value >= others + scrapes - 1
        wait_for(scrape_seen_all, "a scrape after the barrier that saw every earlier scrape",
                 60, interval=0.2)
        scrape_t, value, scrapes = found["scrape_t"], found["value"], found["scrapes"]
        self.assertEqual(value, others + scrapes - 1, found)
        failed = self.prom_query('count_over_time((up{job="reqstats"} == 0)[1h:1s])', at=scrape_t)
        self.assertEqual(failed, [], "a scrape failed")
        # /stats/ counts everything, the scrapes too: the scrape at scrape_t
        # saw every other hit and the scrapes before it.
        page = self.stats(limit=10000)
        metrics_hits = {u["url"]: u["count"] for u in page["urls"]}.get("/metrics", 0)
        self.assertEqual(page["total_requests"] - metrics_hits, others)
        self.assertEqual(value, page["total_requests"] - metrics_hits + scrapes - 1,
                         (value, page["total_requests"], metrics_hits, scrapes))


if __name__ == "__main__":
    unittest.main()
