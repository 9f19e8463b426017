"""DELETE /test/runs/{id}/ -- cancelling a test run (docs/API.md section 11).

  Cancel       a queued run cancelled never starts; a running run cancelled
               sends no new request a second after the answer (watched in
               Redis's total, which every request the run sends lands in);
               final counters recorded; 409 once ended; 404 unknown ids
  CancelToken  TEST_TOKEN set: the DELETE needs the bearer, like the POST

The Redis total is read directly (stack.redis_cmd), so watching it sends no
request of its own.
"""

import time
import unittest

from support import VISIBILITY_S
from test_runs import RunTestCase

PREFIX = "reqstats:"


class Cancel(RunTestCase):
    def cancel(self, run_id, headers=None):
        return self.request("DELETE", "/test/runs/%s/" % run_id, headers=headers)

    def redis_total(self):
        return int(self.stack.redis_cmd("GET", PREFIX + "total") or 0)

    def test_unknown_404(self):
        for run_id in ("0123456789abcdef", "ffffffffffffffff", "xyz", "0123456789ABCDEF"):
            with self.subTest(run_id=run_id):
                self.assertError(self.cancel(run_id), 404, "not_found")

    def test_cancel_queued_and_running(self):
        self.require_stack()
        big = self.start_run(100000)
        self.poll_run(big, lambda r: r["status"] == "running" and r["sent"] > 0, 30, 0.05)
        # The runner executes one run at a time: this one waits in the queue.
        queued = self.start_run(5)
        rec = self.get_run(queued)
        self.assertEqual(rec["status"], "queued", rec)

        r = self.cancel(queued)
        rec = self.assertJson(r, 200)
        self.check_record(rec, queued, 5)
        self.assertEqual(rec["status"], "cancelled", rec)
        self.assertIsNone(rec["started_at"], rec)
        self.assertIsNotNone(rec["finished_at"], rec)
        self.assertEqual(rec["sent"], 0, rec)
        self.assertError(self.cancel(queued), 409, "conflict")

        # Cancel the running one, then watch the Redis total: it takes the
        # run's requests in; it must stop moving within a second of the
        # answer (plus the visibility delay of the last ones).
        r = self.cancel(big)
        answered = time.monotonic()
        rec = self.assertJson(r, 200)
        self.check_record(rec, big, 100000)
        self.assertEqual(rec["status"], "cancelled", rec)
        sent_at_cancel = rec["sent"]
        last, last_change = self.redis_total(), answered
        while time.monotonic() < answered + 2.5:
            cur = self.redis_total()
            if cur != last:
                last, last_change = cur, time.monotonic()
            time.sleep(0.02)
        self.assertLessEqual(last_change - answered, 1.0 + VISIBILITY_S + 0.05,
                             "requests were still counted %.2f s after the cancel"
                             % (last_change - answered))

        # The final counters, written by the runner when it stopped.
        rec, _ = self.poll_run(big, lambda r: r["status"] == "cancelled" and
                               r["sent"] >= sent_at_cancel, 10)
        self.check_record(rec, big, 100000)
        self.assertLess(rec["sent"], 100000, rec)
        self.assertLessEqual(rec["succeeded"] + rec["failed"], rec["sent"], rec)
        self.assertError(self.cancel(big), 409, "conflict")

        # The queue goes on, and the cancelled queued run never starts:
        # a run queued after it runs to the end, while it stays untouched.
        after = self.start_run(3)
        rec, _ = self.poll_run(after, lambda r: r["status"] in ("done", "failed"), 30)
        self.assertEqual(rec["status"], "done", rec)
        rec = self.get_run(queued)
        self.assertEqual((rec["status"], rec["sent"], rec["started_at"]),
                         ("cancelled", 0, None), rec)
        with open(self.stack.app_log, encoding="utf-8", errors="replace") as f:
            log = f.read()
        self.assertNotIn("run %s started" % queued, log)
        self.assertIn("run %s cancelled" % big, log)
        # Ended runs: 409 whatever the way they ended.
        self.assertError(self.cancel(after), 409, "conflict")


class CancelToken(RunTestCase):
    TOKEN = "cancel-token-for-tests"
    app_env = {"TEST_TOKEN": TOKEN}

    def test_token_required(self):
        auth = {"Authorization": "Bearer " + self.TOKEN}
        run_id = self.start_run(100000, headers=auth)
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            with self.subTest(headers=headers):
                r = self.request("DELETE", "/test/runs/%s/" % run_id, headers=headers)
                self.assertError(r, 401, "unauthorized")
                self.assertEqual(r.headers.get("www-authenticate"), "Bearer")
        r = self.request("DELETE", "/test/runs/%s/" % run_id, headers=auth)
        self.assertEqual(self.assertJson(r, 200)["status"], "cancelled")


if __name__ == "__main__":
    unittest.main()
