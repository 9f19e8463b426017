"""The master keeps its pool full when fork() fails at start-up.

A fork that fails is retried like a child that died at once (backoff from
100 ms, doubling): the pool reaches WORKERS workers without a restart.
fork() is made to fail by failfork.c, an LD_PRELOAD shim this test builds;
the app binary is the one under test, unchanged.
"""

import os
import re
import shutil
import subprocess
import tempfile
import time

from support import StackTestCase

HERE = os.path.dirname(os.path.abspath(__file__))
WORKERS = 3
FAIL_FORKS = 2  # the first two workers' forks fail


def build_shim(out_dir):
    cc = os.environ.get("CC") or shutil.which("cc") or "cc"
    so = os.path.join(out_dir, "failfork.so")
    subprocess.run([cc, "-shared", "-fPIC", "-O1", "-D_GNU_SOURCE", "-o", so,
                    os.path.join(HERE, "failfork.c"), "-ldl"], check=True)
    return so


class ForkFailureAtStart(StackTestCase):

    @classmethod
    def setUpClass(cls):
        if os.environ.get("REQSTATS_BASE_URL"):
            super().setUpClass()  # skips: this class needs its own stack
            return
        cls.shim_dir = tempfile.mkdtemp(prefix="reqstats-failfork-")
        cls.app_env = {
            "WORKERS": str(WORKERS),
            "LD_PRELOAD": build_shim(cls.shim_dir),
            "REQSTATS_TEST_FAIL_FORKS": str(FAIL_FORKS),
            # The ASan build wants its runtime first among preloads.
            "ASAN_OPTIONS": "abort_on_error=0:detect_leaks=1:verify_asan_link_order=0",
        }
        super().setUpClass()

    @classmethod
    def tearDownClass(cls):
        try:
            super().tearDownClass()
        finally:
            if getattr(cls, "shim_dir", None):
                shutil.rmtree(cls.shim_dir, ignore_errors=True)

    def log(self):
        with open(self.stack.app_log, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def test_failed_forks_are_retried_until_the_pool_is_full(self):
        stack = self.require_stack()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and len(stack.workers()) < WORKERS:
            time.sleep(0.05)
        log = self.log()
        # Every worker index runs, each in its own live process.
        started = {int(i) for i in re.findall(r" worker (\d+) started as pid \d+$", log, re.M)}
        self.assertEqual(started, set(range(WORKERS)), log)
        self.assertEqual(len(stack.workers()), WORKERS, "%s\n%s" % (stack.children(), log))
        self.assertIsNone(stack.app.poll())
        # The injected failures happened, and each one scheduled a retry.
        failed = re.findall(r"fork worker (\d+): .*; retrying in (\d+) ms", log)
        self.assertEqual(sorted(int(i) for i, _ in failed), list(range(FAIL_FORKS)), log)
        # And the full pool serves.
        resp = self.get("/api/spawn-check/")
        self.assertEqual(resp.status, 200)
