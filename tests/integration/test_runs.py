"""Test runs: POST /test/{n}/, GET /test/runs/{id}/, GET /test/runs/ (docs/API.md sections 4, 5).

Every class that changes the configuration or disturbs the processes has a
stack of its own, so no test sees another's runs or traffic:

  Runs               the contract: record fields, bad n, wrong methods,
                     unknown ids, the newest-first list
  RunCounting        a 500-request run, counted exactly in /stats/, sent
                     through nginx's unix socket (TEST_TARGET_SOCKET)
  RunCountingTcp     the same over TCP (TEST_TARGET_SOCKET empty)
  RunsQueueFull      TEST_MAX_ACTIVE=2: the third run gets 429
  RunsRefusedTarget  the target refuses connections: the run still ends
  RunsStoppedMidRun  SIGTERM to the app while a run is running
  RunsRunnerKilled   SIGKILL to the runner while a run is running
  RunsToken          TEST_TOKEN set: POST needs the bearer token
  RunsDisabled       TEST_ENABLED=0: every test endpoint answers 403

Local helpers (not in support.py): poll_run() waits for a run's record with
a deadline; check_record() checks every docs/API.md section 5 field and its JSON type;
runner_pid() finds the runner among the master's children.
"""

import calendar
import os
import re
import signal
import time
import unittest

from support import StackTestCase, wait_for

import stack as stackmod

ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")
RUN_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
STATUSES = ("queued", "running", "done", "failed", "cancelled")
RECORD_FIELDS = ("id", "requests", "status", "sent", "succeeded", "failed", "pool",
                 "created_at", "started_at", "finished_at", "elapsed_seconds",
                 "requests_per_second")


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def iso_ms(text):
    """Milliseconds since the epoch of an ISO 8601 UTC time as the API writes it."""
    m = re.match(r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?Z$", text)
    if not m:
        raise ValueError("not ISO 8601 UTC: %r" % text)
    fields = tuple(int(g) for g in m.groups()[:6])
    frac = m.group(7) or "0"
    return calendar.timegm(fields + (0, 0, 0)) * 1000 + int((frac + "000")[:3])


class RunTestCase(StackTestCase):
    """Helpers shared by the classes of this file."""

    def start_run(self, n, headers=None):
        """POST /test/n/; checks the 202 answer and returns the run id."""
        r = self.post("/test/%s/" % n, headers=headers)
        body = self.assertJson(r, 202)
        run_id = body.get("id")
        self.assertIsInstance(run_id, str, body)
        self.assertRegex(run_id, RUN_ID)
        url = "/test/runs/%s/" % run_id
        self.assertEqual(r.headers.get("location"), url, r.header_list)
        self.assertEqual(body, {"id": run_id, "requests": int(n), "status": "queued",
                                "status_url": url})
        return run_id

    def get_run(self, run_id):
        return self.assertJson(self.get("/test/runs/%s/" % run_id), 200)

    def poll_run(self, run_id, until, timeout, interval=0.1):
        """GET the run until until(record) holds or timeout passes.

        Returns (record, number of GETs sent). Fails with the last record on
        timeout."""
        deadline = time.monotonic() + timeout
        polls = 0
        while True:
            rec = self.get_run(run_id)
            polls += 1
            if until(rec):
                return rec, polls
            if time.monotonic() > deadline:
                self.fail("run %s: condition not reached within %.0f s; last record %r"
                          % (run_id, timeout, rec))
            time.sleep(interval)

    def check_record(self, rec, run_id=None, n=None):
        """Every docs/API.md section 5 field with its JSON type and the invariants between them."""
        for field in RECORD_FIELDS:
            self.assertIn(field, rec, rec)
        if run_id is not None:
            self.assertEqual(rec["id"], run_id)
        if n is not None:
            self.assertEqual(rec["requests"], n)
        self.assertIsInstance(rec["id"], str)
        self.assertIn(rec["status"], STATUSES, rec)
        for field in ("requests", "sent", "succeeded", "failed"):
            self.assertTrue(is_int(rec[field]), (field, rec))
            self.assertGreaterEqual(rec[field], 0, (field, rec))
        self.assertLessEqual(rec["succeeded"] + rec["failed"], rec["sent"], rec)
        self.assertLessEqual(rec["sent"], rec["requests"], rec)
        for field in ("elapsed_seconds", "requests_per_second"):
            self.assertTrue(is_number(rec[field]), (field, rec))
            self.assertGreaterEqual(rec[field], 0, (field, rec))
        self.assertIsInstance(rec["pool"], list, rec)
        for s in rec["pool"]:
            self.assertIsInstance(s, str, rec)
        self.assertIsInstance(rec["created_at"], str, rec)
        self.assertRegex(rec["created_at"], ISO_UTC)
        for field in ("started_at", "finished_at"):
            if rec[field] is not None:
                self.assertIsInstance(rec[field], str, rec)
                self.assertRegex(rec[field], ISO_UTC)
        status = rec["status"]
        if status == "queued":
            self.assertIsNone(rec["finished_at"], rec)
        if status in ("running", "done"):
            self.assertIsNotNone(rec["started_at"], rec)
        if status in ("done", "failed"):
            self.assertIsNotNone(rec["finished_at"], rec)
        if status == "done":
            self.assertEqual(rec["succeeded"] + rec["failed"], rec["requests"], rec)
        if status != "queued" and rec["started_at"] is not None:
            self.assertLessEqual(iso_ms(rec["created_at"]), iso_ms(rec["started_at"]), rec)
        if rec["finished_at"] is not None and rec["started_at"] is not None:
            self.assertLessEqual(iso_ms(rec["started_at"]), iso_ms(rec["finished_at"]), rec)

    def check_all(self, items, check):
        """check(item) for every item; fails once, listing every item that failed."""
        problems = []
        for item in items:
            try:
                check(item)
            except AssertionError as e:
                problems.append("%r: %s" % (item, str(e)[:300]))
        if problems:
            self.fail("%d of %d failed:\n  %s" % (len(problems), len(items),
                                                  "\n  ".join(problems)))

    def runner_pid(self):
        st = self.require_stack()
        pids = [p for p in st.children() if st.role_of(p) == "runner"]
        self.assertEqual(len(pids), 1, "runner among %r" % st.children())
        return pids[0]


def url_rule(pool):
    """The docs/API.md section 4 rule for one run's URLs: /api/ then 1..6 pool segments, each with '/'."""
    alt = "|".join(re.escape(s) for s in pool)
    return re.compile(r"^/api/((?:%s)/){1,6}$" % alt)


class Runs(RunTestCase):
    """The contract of the endpoints, on a stack with a small TEST_MAX_REQUESTS."""

    MAX = 5000
    app_env = {"TEST_MAX_REQUESTS": str(MAX)}

    def test_record_fields_and_progress_to_done(self):
        run_id = self.start_run(40)
        first = self.get_run(run_id)
        self.check_record(first, run_id, 40)
        rec, _ = self.poll_run(run_id, lambda r: r["status"] in ("done", "failed"), 30)
        self.check_record(rec, run_id, 40)
        self.assertEqual(rec["status"], "done", rec)
        self.assertEqual((rec["sent"], rec["succeeded"], rec["failed"]), (40, 40, 0), rec)
        self.assertEqual(len(rec["pool"]), 3, rec)
        self.assertEqual(len(set(rec["pool"])), 3, rec)
        self.assertGreater(rec["elapsed_seconds"], 0, rec)
        self.assertGreater(rec["requests_per_second"], 0, rec)
        # printed as rounded: 1 decimal for the rate, ms for the time
        raw = self.get("/test/runs/%s/" % run_id).body.decode()
        self.assertRegex(raw, r'"requests_per_second":\d+\.\d[,}]', raw)
        self.assertRegex(raw, r'"elapsed_seconds":\d+\.\d{1,3}[,}]', raw)
        # rate == completed / elapsed, up to the rounding of both numbers
        expect = 40 / rec["elapsed_seconds"]
        self.assertLess(abs(rec["requests_per_second"] - expect), 0.05 * expect + 0.2, rec)
        # A finished record does not change any more: the runner takes runs
        # one at a time, so once a later run is done it has long left this one.
        later = self.start_run(1)
        self.poll_run(later, lambda r: r["status"] in ("done", "failed"), 30)
        self.assertEqual(self.get_run(run_id), rec)

    def test_bad_n_is_400_naming_the_range(self):
        bad = ["0", "00", "-1", "+5", "1e3", "abc", "0x10", "-0", "5.0", "1_000", "%205",
               "%D9%A5",  # ARABIC-INDIC DIGIT FIVE
               "99999999999999999999999", "18446744073709551617",
               str(self.MAX + 1)]
        listed = self.assertJson(self.get("/test/runs/?limit=100"), 200)["runs"]

        def check(n):
            err = self.assertError(self.post("/test/%s/" % n), 400, "bad_request")
            msg = err["message"]
            self.assertRegex(msg, r"(^|\D)1(\D|$)", msg)
            self.assertIn(str(self.MAX), msg)
        self.check_all(bad, check)
        # none of them queued a run
        runs = self.assertJson(self.get("/test/runs/?limit=100"), 200)["runs"]
        self.assertEqual([r["id"] for r in runs], [r["id"] for r in listed])

    def test_max_n_accepted_boundary(self):
        # n == TEST_MAX_REQUESTS is valid; it is accepted with 202 (the run
        # itself is short on this stack's limit).
        run_id = self.start_run(self.MAX)
        rec, _ = self.poll_run(run_id, lambda r: r["status"] in ("done", "failed"), 60)
        self.assertEqual(rec["status"], "done", rec)
        self.assertEqual(rec["succeeded"], self.MAX, rec)

    def test_wrong_methods_405(self):
        def check_method(method):
            r = self.request(method, "/test/5/")
            self.assertEqual(r.status, 405, r)
            self.assertEqual(r.headers.get("allow"), "POST", r.header_list)
            if method != "HEAD":
                self.assertError(r, 405, "method_not_allowed")
        self.check_all(("GET", "HEAD", "PUT", "DELETE", "PATCH"), check_method)

        def check_path(path, allow):
            r = self.post(path)
            self.assertError(r, 405, "method_not_allowed")
            self.assertEqual(r.headers.get("allow"), allow, r.header_list)
        check_path("/test/runs/", "GET, HEAD")
        check_path("/test/runs/0123456789abcdef/", "GET, HEAD, DELETE")

    def test_unknown_run_404(self):
        ids = ["0123456789abcdef", "ffffffffffffffff",        # well-formed, never issued
               "xyz", "0123456789ABCDEF", "0123456789abcdef0", "g123456789abcdef",
               "%27%22", "a" * 300, "0123456789abcde%66"]
        self.check_all(ids, lambda run_id: self.assertError(
            self.get("/test/runs/%s/" % run_id), 404, "not_found"))
        self.assertError(self.get("/test/runs/0123456789abcdef/extra/"), 404)

    def test_list_newest_first(self):
        a = self.start_run(3)
        b = self.start_run(4)
        body = self.assertJson(self.get("/test/runs/"), 200)
        runs = body["runs"]
        self.assertIsInstance(runs, list)
        self.assertGreaterEqual(len(runs), 2, body)
        self.assertEqual([r["id"] for r in runs[:2]], [b, a], body)
        for rec in runs:
            self.check_record(rec)
        created = [iso_ms(r["created_at"]) for r in runs]
        self.assertEqual(created, sorted(created, reverse=True), body)
        ids = [r["id"] for r in runs]
        self.assertEqual(len(ids), len(set(ids)), body)
        one = self.assertJson(self.get("/test/runs/?limit=1"), 200)["runs"]
        self.assertEqual([r["id"] for r in one], [b])
        for run_id in (a, b):
            self.poll_run(run_id, lambda r: r["status"] in ("done", "failed"), 30)


class RunCounting(RunTestCase):
    """POST /test/500/: exactly 500 new hits, all on URLs that follow the rule,
    sent through nginx's unix socket (the stack's TEST_TARGET_SOCKET)."""

    remote_addr = "unix:"   # what nginx logs as the client of a run's requests

    def run_access_lines(self, n):
        """The access log's lines of test-run requests, once there are n
        (nginx flushes its log buffer every second)."""
        lines = []

        def logged():
            with open(self.require_stack().access_log, encoding="utf-8",
                      errors="replace") as f:
                lines[:] = [ln for ln in f if ln.rstrip().endswith('"reqstats-testrun/1"')]
            return len(lines) >= n
        wait_for(logged, "%d test-run lines in nginx's access log" % n)
        return lines

    def test_500_hits_counted_exactly(self):
        before = self.counts()
        others0 = self.report_snapshot()["others"]
        run_id = self.start_run(500)
        rec, polls = self.poll_run(run_id, lambda r: r["status"] in ("done", "failed"), 60)
        self.check_record(rec, run_id, 500)
        self.assertEqual(rec["status"], "done", rec)
        self.assertEqual((rec["sent"], rec["succeeded"], rec["failed"]), (500, 500, 0), rec)
        pool = rec["pool"]
        self.assertEqual(len(pool), 3, rec)
        self.assertEqual(len(set(pool)), 3, rec)
        for s in pool:
            self.assertRegex(s, r"^[A-Za-z0-9._~-]+$", "pool string must be path-safe")

        # The run's 500 and our own requests outside /stats/ (the POST and
        # the polls of the record), all counted (support.py's header).
        self.wait_others(others0 + 500 + 1 + polls)
        after = self.counts()
        diff = {u: after.get(u, 0) - before.get(u, 0) for u in set(after) | set(before)}
        diff = {u: d for u, d in diff.items() if d != 0 and u != "/stats/"}

        mine = {"/test/500/": 1, "/test/runs/%s/" % run_id: polls}
        for u, d in mine.items():
            self.assertEqual(diff.pop(u, 0), d, "own requests on %s" % u)

        rule = url_rule(pool)
        bad = {u: d for u, d in diff.items() if not rule.match(u)}
        self.assertEqual(bad, {}, "hits outside the run's URL rule (pool %r)" % pool)
        self.assertTrue(all(d > 0 for d in diff.values()), diff)
        self.assertEqual(sum(diff.values()), 500, "new hits of the run")

        depths = {u.count("/") - 2 for u in diff}
        self.assertTrue(depths <= set(range(1, 7)), depths)
        # 500 uniform draws over 6 depths: a missing depth has p ~ 6 * (5/6)^500.
        self.assertEqual(depths, set(range(1, 7)), "depths covered")
        used = {seg for u in diff for seg in u.split("/")[2:-1]}
        self.assertEqual(used, set(pool), "every pool string used, no other")

        # total_requests agrees with the per-URL counts (one page: one snapshot)
        page = self.stats(limit=10000)
        self.assertIsNone(page["next"], "precondition: the report fits on one page")
        self.assertEqual(sum(u["count"] for u in page["urls"]), page["total_requests"])

        # All 500 went through nginx, over the transport configured.
        lines = self.run_access_lines(500)
        self.assertEqual(len(lines), 500, "test-run lines in nginx's access log")
        self.assertEqual({ln.split(" ")[2] for ln in lines}, {self.remote_addr})


class RunCountingTcp(RunCounting):
    """The same run with TEST_TARGET_SOCKET empty: over TCP to TEST_TARGET_URL."""

    app_env = {"TEST_TARGET_SOCKET": ""}
    remote_addr = "127.0.0.1"


class RunsQueueFull(RunTestCase):
    """TEST_MAX_ACTIVE=2: two big runs fill the bound, the third gets 429."""

    app_env = {"TEST_MAX_ACTIVE": "2", "TEST_CONCURRENCY": "4"}

    def test_queue_full_429(self):
        first = self.start_run(100000)
        second = self.start_run(100000)
        r = self.post("/test/1/")
        err = self.assertError(r, 429, "too_many_requests")
        self.assertTrue(err["message"])
        retry = r.headers.get("retry-after", "")
        self.assertRegex(retry, r"^[1-9][0-9]*$", r.header_list)
        # validation comes first: a bad n is still a 400 when the queue is full
        self.assertError(self.post("/test/0/"), 400)
        # both runs are active, the first one running, nothing else was queued
        rec, _ = self.poll_run(first, lambda x: x["status"] == "running", 10)
        self.check_record(rec, first, 100000)
        self.assertEqual(self.get_run(second)["status"], "queued")
        runs = self.assertJson(self.get("/test/runs/"), 200)["runs"]
        self.assertEqual([x["id"] for x in runs], [second, first])
        self.assertError(self.post("/test/1/"), 429)


class RunsRefusedTarget(RunTestCase):
    """The target refuses every connection: the run ends, every request failed."""

    app_env = {"TEST_TARGET_URL": "http://127.0.0.1:%d" % stackmod.free_port(),
               "TEST_TARGET_SOCKET": ""}

    def test_refused_target_ends_with_failures(self):
        n = 200
        run_id = self.start_run(n)
        rec, _ = self.poll_run(run_id, lambda r: r["status"] in ("done", "failed"), 30)
        self.check_record(rec, run_id, n)
        # docs/API.md section 5: a run is done when all n requests have
        # completed (succeeded + failed == requests), failed ones included.
        self.assertEqual(rec["status"], "done", rec)
        self.assertEqual(rec["failed"], n, rec)
        self.assertEqual(rec["succeeded"], 0, rec)
        self.assertEqual(rec["sent"], n, rec)


class RunsStoppedMidRun(RunTestCase):
    """SIGTERM to the app while a run is running: after a restart it is failed, not running."""

    app_env = {"TEST_CONCURRENCY": "8"}

    def test_sigterm_mid_run_not_left_running(self):
        st = self.require_stack()
        run_id = self.start_run(100000)
        self.poll_run(run_id, lambda r: r["status"] == "running" and r["sent"] > 0, 10)
        code = st.stop_app()
        self.assertEqual(code, 0, "the app's exit status on SIGTERM")
        st.start_app()
        st.wait_ready()
        rec, _ = self.poll_run(run_id, lambda r: r["status"] != "running", 15)
        self.check_record(rec, run_id, 100000)
        self.assertEqual(rec["status"], "failed", rec)
        self.assertIsInstance(rec.get("error"), str, rec)
        self.assertTrue(rec["error"], rec)
        self.assertLess(rec["succeeded"] + rec["failed"], 100000, rec)
        runs = self.assertJson(self.get("/test/runs/"), 200)["runs"]
        self.assertEqual([x["id"] for x in runs if x["status"] in ("running", "queued")], [])


class RunsRunnerKilled(RunTestCase):
    """SIGKILL to the runner mid-run: the sweep marks the run failed.

    The respawned runner sweeps every second and fails a running run whose
    heartbeat is 5 s old (SWEEP_MS, STALE_MS in runner.c), so about 5-6 s;
    the deadline is far above that and only catches a run left running."""

    app_env = {"TEST_CONCURRENCY": "8"}

    def test_runner_sigkill_swept(self):
        self.require_stack()
        run_id = self.start_run(100000)
        self.poll_run(run_id, lambda r: r["status"] == "running" and r["sent"] > 0, 10)
        pid = self.runner_pid()
        os.kill(pid, signal.SIGKILL)
        t0 = time.monotonic()
        rec, _ = self.poll_run(run_id, lambda r: r["status"] != "running", 30, interval=0.25)
        print("\n  runner SIGKILL: run marked %s after %.1f s"
              % (rec["status"], time.monotonic() - t0))
        self.check_record(rec, run_id, 100000)
        self.assertEqual(rec["status"], "failed", rec)
        self.assertIsInstance(rec.get("error"), str, rec)
        self.assertTrue(rec["error"], rec)
        # the master respawned the runner
        st = self.stack
        wait_for(lambda: any(p != pid and st.role_of(p) == "runner" for p in st.children()),
                 "a respawned runner")
        self.assertNotEqual(self.runner_pid(), pid)


class RunsToken(RunTestCase):
    """TEST_TOKEN set: POST /test/{n}/ needs 'Authorization: Bearer <token>'."""

    TOKEN = "s3cr3t-t0ken-for-tests"
    app_env = {"TEST_TOKEN": TOKEN}

    def test_token_required(self):
        wrong = [None, "", "Bearer", "Bearer ", "Bearer wrong", "bearer " + self.TOKEN,
                 "Basic " + self.TOKEN, "Bearer " + self.TOKEN + "x",
                 "Bearer " + self.TOKEN[:-1], "Bearer  " + self.TOKEN, self.TOKEN]
        def check(auth):
            headers = {} if auth is None else {"Authorization": auth}
            r = self.post("/test/3/", headers=headers)
            self.assertError(r, 401)
            self.assertIn("bearer", r.headers.get("www-authenticate", "").lower(),
                          r.header_list)
        self.check_all(wrong, check)
        run_id = self.start_run(3, headers={"Authorization": "Bearer " + self.TOKEN})
        rec, _ = self.poll_run(run_id, lambda r: r["status"] in ("done", "failed"), 20)
        self.assertEqual(rec["status"], "done", rec)
        # only the one authorised POST created a run
        runs = self.assertJson(self.get("/test/runs/"), 200)["runs"]
        self.assertEqual([x["id"] for x in runs], [run_id])


class RunsDisabled(RunTestCase):
    """TEST_ENABLED=0: the test endpoints answer 403; the rest of the API works."""

    app_env = {"TEST_ENABLED": "0"}

    def test_disabled_403(self):
        self.check_all((("POST", "/test/5/"), ("GET", "/test/runs/"),
                        ("GET", "/test/runs/0123456789abcdef/")),
                       lambda mp: self.assertError(self.request(*mp), 403))
        self.assertEqual(self.assertJson(self.get("/api/still-here/"), 200)["path"],
                         "/api/still-here/")


if __name__ == "__main__":
    unittest.main()
