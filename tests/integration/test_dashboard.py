"""The dashboard at / (docs/API.md section 9): nginx's answers, and the page in a
real headless Chromium.

  DashboardServing  what nginx answers for / and the assets under
                    /__reqstats/dashboard/: content types, the
                    Content-Security-Policy, nosniff, caching; page and
                    asset loads are not counted; other methods and unknown
                    assets get the JSON errors of docs/API.md section 6.
  DashboardBrowser  Debian's chromium driven through chromedriver
                    (tests/browser.py): the top URLs of /stats/ rendered in
                    order with their counts, counted paths holding ' and &
                    shown as text (never markup), a long path wrapped and
                    whole, paging, a run started from the form followed to
                    `done`, every request same-origin, no horizontal scroll
                    at a phone's width, and no console error at any point.
                    Screenshots at a desktop and a phone width are written
                    to build/test-output/dashboard/ (REQSTATS_TEST_OUTPUT
                    overrides); the paths are printed.
  DashboardStates   the page polling every second (/?refresh=1): a run
                    cancelled with its button, no request from a background
                    tab and a poll at once when shown again, Redis stopped
                    (banner, numbers kept and marked stale) and back.

One Chromium serves every class (tests/browser.py; its chromedriver log is
kept beside the screenshots).

Without chromium and chromedriver the browser class fails under CI (CI set)
and is skipped, loudly, elsewhere.
"""

import http.client
import os
import re
import sys
import time
import unittest
import urllib.parse

from support import StackTestCase

import stack as stackmod

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import browser  # noqa: E402  (tests/browser.py)

ASSETS = {
    "/__reqstats/dashboard/dashboard.js": "text/javascript; charset=utf-8",
    "/__reqstats/dashboard/dashboard.css": "text/css; charset=utf-8",
    "/__reqstats/dashboard/favicon.svg": "image/svg+xml; charset=utf-8",
}

# Counted paths for the browser test, most requested first, each with its
# own count so their order is fixed; nothing else in the test comes near
# 38 hits. Canonicalization (docs/API.md section 1) keeps ' and & as they
# are, so the second and fourth reach the page with them; HOSTILE holds
# "&amp;", which a page that parsed paths as HTML would show as "&". The
# third is a tag that canonicalization has already encoded (< > and space
# become %XX): its %-escapes must reach the screen unchanged.
HOSTILE = "/api/o'brien&amp;sons/orders/"
SEEDED = [
    ("/api/dash/users/42/", 60),
    (HOSTILE, 58),
    ("/api/%3Cimg%20src=x%20onerror=alert(1)%3E/", 56),
    ("/api/it's&co/", 54),
    ("/api/caf%C3%A9/", 52),
    ("/api/dash/" + "long-segment-" * 24 + "end/", 50),
    ("/api/dash/a/", 48),
    ("/api/dash/b/", 46),
    ("/api/dash/c/", 44),
    ("/api/dash/d/", 42),
    ("/api/dash/e/", 40),
    ("/api/dash/f/", 38),
]

# Every row of the URL table: [rank, url, count, share] as text, and the
# number of elements inside the URL cell.
READ_ROWS = """
return [...document.querySelectorAll('#urls-body tr')].map(tr => ({
  cells: [...tr.cells].map(td => td.textContent),
  urlElements: tr.querySelector('td.url').childElementCount,
  urlHtml: tr.querySelector('td.url').innerHTML,
  overflow: tr.querySelector('td.url').scrollWidth - tr.querySelector('td.url').clientWidth,
}));
"""


def output_dir():
    d = os.environ.get("REQSTATS_TEST_OUTPUT") or os.path.join(stackmod.ROOT, "build",
                                                               "test-output")
    return os.path.join(d, "dashboard")


def number(text):
    """The integer a formatted count shows ("1,234" -> 1234)."""
    digits = re.sub(r"[^0-9]", "", text)
    if not digits:
        raise ValueError("no number in %r" % text)
    return int(digits)


class DashboardServing(StackTestCase):
    # One worker: barrier() is sound only there (support.py).
    app_env = {"WORKERS": "1"}

    def test_page(self):
        r = self.get("/")
        self.assertEqual(r.status, 200, r)
        self.assertEqual(r.headers.get("content-type"), "text/html; charset=utf-8")
        self.assertIn(b'<script src="/__reqstats/dashboard/dashboard.js" defer></script>', r.body)
        self.assertNotIn(b"<style", r.body)
        # Every <script> has a src: nothing inline for the policy to allow.
        self.assertEqual(len(re.findall(rb"<script\b", r.body)),
                         len(re.findall(rb"<script src=\"/__reqstats/dashboard/", r.body)))
        self.check_headers(r)
        head = self.request("HEAD", "/")
        self.assertEqual(head.status, 200)
        self.assertEqual(head.body, b"")

    def check_headers(self, r):
        csp = r.headers.get("content-security-policy", "")
        directives = {d.split()[0]: d.split()[1:] for d in csp.split(";") if d.strip()}
        self.assertEqual(directives.get("default-src"), ["'self'"], csp)
        for name in ("script-src", "style-src", "connect-src", "img-src"):
            self.assertEqual(directives.get(name), ["'self'"], csp)
        self.assertEqual(directives.get("object-src"), ["'none'"], csp)
        self.assertEqual(directives.get("frame-ancestors"), ["'none'"], csp)
        self.assertNotIn("unsafe", csp)
        self.assertEqual(r.headers.get("x-content-type-options"), "nosniff")
        self.assertEqual(r.headers.get("cache-control"), "no-cache")
        self.assertRegex(r.headers.get("x-request-id", ""), r"^[0-9a-f]{32}$")

    def test_assets(self):
        for path, ctype in ASSETS.items():
            with self.subTest(path=path):
                r = self.get(path)
                self.assertEqual(r.status, 200, r)
                self.assertEqual(r.headers.get("content-type"), ctype)
                self.assertTrue(r.body)
                self.check_headers(r)
                # Revalidation: an unchanged file is a 304 without a body.
                etag = r.headers.get("etag")
                self.assertTrue(etag)
                again = self.get(path, headers={"If-None-Match": etag})
                self.assertEqual(again.status, 304, again)
                self.assertEqual(again.body, b"")

    def test_errors_are_json(self):
        for method in ("POST", "PUT", "DELETE"):
            with self.subTest(method=method):
                r = self.request(method, "/")
                self.assertError(r, 405)
                self.assertEqual(r.headers.get("allow"), "GET, HEAD")
        for path in ("/__reqstats/dashboard/nope.js", "/__reqstats/dashboard/../../etc/passwd",
                     "/__reqstats/dashboard/..%2f..%2f..%2fetc%2fpasswd",
                     "/__reqstats/dashboard/%2e%2e/%2e%2e/%2e%2e/etc/passwd"):
            with self.subTest(path=path):
                r = self.get(path)
                # nginx refuses a path that climbs above / (400); the rest
                # is a 404; either way JSON and no file from outside.
                self.assertError(r, 400 if "%" in path else 404)
                self.assertNotIn(b"root:", r.body)

    def test_page_loads_not_counted(self):
        """nginx serves the page and its assets itself: they never reach the
        app, so they are not counted (the JSON the page reads is)."""
        self.barrier()  # hits of earlier tests in this class are in Redis
        before = self.counts()
        for _ in range(3):
            self.assertEqual(self.get("/").status, 200)
            for path in ASSETS:
                self.assertEqual(self.get(path).status, 200)
        self.assertEqual(self.get("/__reqstats/dashboard/nope.js").status, 404)
        marker = self.barrier()  # every hit taken before it is in Redis
        after = self.counts()
        self.assertNotIn("/", after)
        self.assertEqual([u for u in after if u.startswith("/__reqstats/")], [])
        # Only /stats/ (read by counts() itself) and the marker moved.
        self.assertEqual({u: c for u, c in after.items() if u not in ("/stats/", marker)},
                         {u: c for u, c in before.items() if u != "/stats/"})


# One Chromium for every class of this file (starting one takes seconds).
_shared = {}


def shared_browser():
    if "browser" not in _shared:
        _shared["browser"] = browser.Browser(output_dir())
    return _shared["browser"]


def tearDownModule():
    b = _shared.pop("browser", None)
    if b is not None:
        b.close()


class BrowserTestCase(StackTestCase):
    """A stack with SEEDED traffic and one headless Chromium on its page."""

    browser = None
    history_absent = False
    page = "/"

    @classmethod
    def setUpClass(cls):
        chrome, driver = browser.find_chromium()
        if not chrome or not driver:
            msg = ("chromium and chromedriver are needed for the dashboard test "
                   "(apt-get install chromium chromium-driver)")
            if os.environ.get("CI"):
                raise RuntimeError(msg)
            print("\nSKIPPING the browser test: " + msg, file=sys.stderr)
            raise unittest.SkipTest(msg)
        super().setUpClass()
        try:
            cls.seed()
            cls.out = output_dir()
            cls.browser = shared_browser()
            cls.browser.get(cls.base_url + cls.page)
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        # Leave the page before its stack stops, so the next class's
        # console holds nothing of this one.
        errors = []
        if cls.browser is not None:
            cls.browser.get("about:blank")
            errors = [e for e in cls.browser.console() if e.get("level") == "SEVERE"]
            cls.browser = None
        super().tearDownClass()
        if errors:
            raise AssertionError("browser console errors after the last test: %r" % errors)

    @classmethod
    def history_status(cls):
        """A server without docs/API.md section 10 answers 404: the page
        says so instead of drawing a chart."""
        host, port = cls.host_port()
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("GET", "/stats/history/")
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    @classmethod
    def seed(cls):
        host, port = cls.host_port()
        conn = http.client.HTTPConnection(host, port, timeout=10)
        cls.history_absent = cls.history_status() == 404
        try:
            for path, n in SEEDED:
                for _ in range(n):
                    conn.request("GET", path)
                    r = conn.getresponse()
                    r.read()
                    if r.status != 200:
                        raise AssertionError("GET %s: %d" % (path, r.status))
        finally:
            conn.close()

    def setUp(self):
        self.b = self.browser
        self.b.wait_for(browser.DASHBOARD_READY, 20, "the URL table")

    def tearDown(self):
        self.assertNoConsoleErrors()

    def assertNoConsoleErrors(self, expected_statuses=()):
        """Nothing at error level in the console since the last check.
        Chromium logs every 4xx/5xx answer to fetch() as a network error;
        expected_statuses are the ones a test provokes on purpose."""
        bad = []
        for e in self.b.console():
            if e.get("level") not in ("SEVERE", "ERROR"):
                continue
            msg = e.get("message", "")
            if e.get("source") == "network":
                # On a server without /stats/history/, the page's reads of it.
                if self.history_absent and "/stats/history/" in msg and "status of 404" in msg:
                    continue
                if any("status of %d " % s in msg for s in expected_statuses):
                    continue
            bad.append(e)
        self.assertEqual(bad, [], "browser console errors")


class DashboardBrowser(BrowserTestCase):

    def seeded_top(self):
        """The first len(SEEDED) entries of /stats/: exactly the seeded paths."""
        self.wait_counts(dict(SEEDED), "the seeded paths in /stats/")
        top = self.stats(limit=len(SEEDED))["urls"]
        self.assertEqual([u["count"] for u in top], [n for _, n in SEEDED], top)
        return [(u["url"], u["count"]) for u in top]

    def rows(self):
        return self.b.execute(READ_ROWS)

    def wait_rows(self, cond, what, timeout=15):
        """Poll the table until cond(rows) holds; returns the rows."""
        deadline = time.monotonic() + timeout
        rows = []
        while time.monotonic() < deadline:
            rows = self.rows()
            if rows and cond(rows):
                return rows
            time.sleep(0.1)
        self.fail("timed out waiting for %s; rows: %r" % (what, [r["cells"] for r in rows]))

    def test_top_urls_rendered(self):
        top = self.seeded_top()
        # The table is drawn from a poll; wait for one taken after seeding.
        rows = self.wait_rows(lambda rows: len(rows) >= len(top) and
                              number(rows[len(top) - 1]["cells"][2]) == top[-1][1],
                              "the seeded counts")
        for i, (url, count) in enumerate(top):
            rank, shown, shown_count, share = rows[i]["cells"]
            self.assertEqual(number(rank), i + 1)
            self.assertEqual(shown, url)
            self.assertEqual(number(shown_count), count)
            self.assertRegex(share, r"^\d+(\.\d)?%$")
        cards = self.b.execute(
            "return ['total', 'unique', 'dropped', 'redis-state']"
            ".map(id => document.getElementById(id).textContent);")
        self.assertGreaterEqual(number(cards[0]), sum(n for _, n in SEEDED))
        self.assertGreaterEqual(number(cards[1]), len(SEEDED))
        self.assertEqual(cards[2], "0")
        self.assertEqual(cards[3], "Up")
        # Every request the page made went to this origin.
        foreign = self.b.execute(
            "return performance.getEntriesByType('resource').map(e => e.name)"
            ".filter(n => !n.startsWith(location.origin + '/'));")
        self.assertEqual(foreign, [])

    def test_paths_are_text(self):
        top = dict(self.seeded_top())
        # Every seeded path on screen (a page size set back by test_paging
        # may still be re-rendering).
        rows = self.wait_rows(lambda rows: set(top) <= {r["cells"][1] for r in rows},
                              "every seeded path, the hostile one included")
        self.assertIn(HOSTILE, top)
        by_url = {r["cells"][1]: r for r in rows}
        for url in top:
            with self.subTest(url=url):
                self.assertIn(url, by_url)
                row = by_url[url]
                # The cell holds exactly the canonical path as one text
                # node: no element was made from it.
                self.assertEqual(row["urlElements"], 0)
                escaped = url.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
                self.assertEqual(row["urlHtml"], escaped)
                # Long paths wrap: nothing is cut off or scrolled away.
                self.assertLessEqual(row["overflow"], 0, url)
        self.assertEqual(by_url[HOSTILE]["urlHtml"], "/api/o'brien&amp;amp;sons/orders/")
        injected = self.b.execute(
            "return document.querySelectorAll('main img, #urls-body script, #urls-body b').length;")
        self.assertEqual(injected, 0)

    def test_paging(self):
        top = self.seeded_top()
        self.b.click('#page-size option[value="10"]')
        try:
            rows = self.wait_rows(lambda rows: len(rows) == 10 and rows[0]["cells"][0] == "1",
                                  "a page of 10 rows")
            self.assertEqual([r["cells"][1] for r in rows], [u for u, _ in top[:10]])
            self.b.click("#next")
            rows = self.wait_rows(lambda rows: rows[0]["cells"][0] == "11", "the second page")
            self.assertEqual([r["cells"][1] for r in rows[:2]], [u for u, _ in top[10:12]])
            self.assertRegex(self.b.execute("return document.getElementById('range').textContent;"),
                             r"^11–\d+ of \d+$")
            self.b.click("#prev")
            self.wait_rows(lambda rows: rows[0]["cells"][0] == "1", "the first page again")
            self.assertTrue(self.b.execute("return document.getElementById('prev').disabled;"))
        finally:
            self.b.click('#page-size option[value="25"]')

    def test_history_chart(self):
        if self.history_absent:
            text = self.b.wait_for(
                "const m = document.querySelector('#chart .chart-msg');"
                "return m && m.textContent;", 15, "the chart's message")
            self.assertIn("not available", text)
            return
        summary = self.b.wait_for(
            "return document.querySelector('#chart svg path.series-line')"
            " && document.getElementById('chart-summary').textContent;", 15, "the chart")
        self.assertRegex(summary, r"^[\d,]+ requests in the last 1 h · peak ")

    def test_controls_have_labels(self):
        unlabelled = self.b.execute(
            "return [...document.querySelectorAll('input, select')]"
            ".filter(e => e.labels.length === 0).map(e => e.id);")
        self.assertEqual(unlabelled, [])
        # Everything clickable is a real button (keyboard-reachable).
        fake = self.b.execute(
            "return [...document.querySelectorAll('[onclick], [role=button], a:not([href])')].length;")
        self.assertEqual(fake, 0)

    def test_run_from_form(self):
        n = 40
        self.b.type_into("#run-n", str(n))
        self.b.click("#run-start")
        status = self.b.wait_for(
            "const s = document.getElementById('current-status');"
            "return s && ['done', 'failed', 'cancelled'].includes(s.textContent)"
            " ? s.textContent : null;", 30, "the run started from the form to end")
        self.assertEqual(status, "done")
        shown = self.b.execute(
            "const p = document.getElementById('current-progress');"
            "return {id: document.getElementById('current-id').textContent,"
            " value: p.value, max: p.max,"
            " line: document.getElementById('current-line').textContent};")
        self.assertEqual((shown["value"], shown["max"]), (n, n), shown)
        run_id = shown["id"].split(" ", 1)[1]
        record = self.assertJson(self.get("/test/runs/%s/" % urllib.parse.quote(run_id)), 200)
        self.assertEqual((record["status"], record["succeeded"], record["failed"]), ("done", n, 0))
        self.assertTrue(shown["line"].startswith("%d of %d completed" % (n, n)), shown)
        # The recent-runs list shows it as done too.
        self.b.wait_for(
            "const li = [...document.querySelectorAll('#runs li')]"
            ".find(li => li.dataset.runId === arguments[0]);"
            "return li && li.querySelector('.badge').textContent === 'done';",
            15, "the run in the recent-runs list", run_id)

        # With real traffic and a finished run on the page: the screenshots,
        # and no horizontal scrolling at a phone's width.
        paths = browser.shoot(self.b, None, self.out)
        for p in paths:
            self.assertGreater(os.path.getsize(p), 10000, p)
        print("\n  screenshots: %s ... " % " ".join(paths), end="", flush=True)
        self.b.cdp("Emulation.setDeviceMetricsOverride",
                   {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True})
        try:
            self.b.execute("return new Promise(r => requestAnimationFrame("
                           "() => requestAnimationFrame(() => r(true))));")
            widths = self.b.execute("return [document.documentElement.scrollWidth, innerWidth];")
        finally:
            self.b.cdp("Emulation.clearDeviceMetricsOverride")
        self.assertLessEqual(widths[0], widths[1], "horizontal scroll at 390 px")


class DashboardStates(BrowserTestCase):
    """The page in a background tab, and with Redis stopped and back. Its
    page polls every second (`/?refresh=1`), so the waits stay short."""

    page = "/?refresh=1"
    # One transfer at a time: a run lasts long enough to be cancelled.
    app_env = {"TEST_CONCURRENCY": "1"}

    @classmethod
    def seed(cls):
        cls.history_absent = cls.history_status() == 404

    def test_cancel_from_the_list(self):
        """A running run started from the form, cancelled with its button in
        the recent-runs list (docs/API.md section 11)."""
        n = 100000
        self.b.type_into("#run-n", str(n))
        self.b.click("#run-start")
        run_id = self.b.wait_for(
            "const s = document.getElementById('current-status');"
            "return s && s.textContent === 'running' &&"
            " document.getElementById('current-id').textContent.slice(4);",
            20, "the run to be running")
        button = "#runs li[data-run-id='%s'] .run-actions button" % run_id
        self.b.wait_for("const b = document.querySelector(arguments[0]);"
                        "return b && b.offsetParent !== null;", 15, "its Cancel button", button)
        self.b.click(button)
        self.b.wait_for(
            "return document.getElementById('current-status').textContent === 'cancelled' &&"
            " document.getElementById('run-msg').textContent === 'Run cancelled.';",
            15, "the run to show cancelled")
        record = self.assertJson(self.get("/test/runs/%s/" % run_id), 200)
        self.assertEqual(record["status"], "cancelled")
        self.assertLess(record["sent"], n)
        # The list no longer offers to cancel it.
        self.b.wait_for("const b = document.querySelector(arguments[0]);"
                        "return b && b.offsetParent === null;", 15, "the button to go", button)

    def page_requests(self, pattern=rb'"GET /(?:stats|test)/'):
        """How many of the page's requests nginx has logged (not the /api/
        traffic of a test run that may still be ending); nginx writes its
        access log at least every second."""
        with open(self.stack.access_log, "rb") as f:
            return len(re.findall(pattern, f.read()))

    def wait_page_request(self, after, what, timeout=10, pattern=rb'"GET /(?:stats|test)/'):
        """Until nginx has logged more than `after` of the page's requests."""
        deadline = time.monotonic() + timeout
        while self.page_requests(pattern) <= after:
            if time.monotonic() > deadline:
                self.fail("no request from the page logged: " + what)
            time.sleep(0.1)

    def test_polls_only_while_visible(self):
        """A tab in the background sends nothing; shown again, it polls at
        once (this class's page polls every second)."""
        self.require_stack()
        logged = self.page_requests
        b = self.b
        page = b.window()
        other = b.new_tab()
        try:
            # nginx writes its access log at least every second.
            time.sleep(1.2)
            before = logged()
            self.assertEqual(b.execute("return document.visibilityState;"), "visible")
            time.sleep(2.5 + 1.2)
            self.assertEqual(logged(), before, "requests from a hidden tab")
        finally:
            b.close_tab(other, page)
        self.wait_page_request(before, "when the tab was shown again", timeout=3)

    def test_redis_down_and_back(self):
        """Redis stops: a calm banner, the last numbers kept (marked
        stale); Redis is back: back to normal."""

        st = self.require_stack()
        self.b.wait_for("return /^[0-9,]+$/.test(document.getElementById('total').textContent);",
                        15, "the total")
        st.stop_redis()
        try:
            banner = self.b.wait_for(
                "const b = document.getElementById('banner');"
                "return !b.hidden && document.getElementById('redis-state').textContent"
                " === 'Unreachable' && b.textContent;", 20, "the Redis banner")
            self.assertTrue(banner.startswith("Redis is unreachable."), banner)
            # The last numbers stay on screen, marked stale, through the
            # next polls.
            read_total = ("const t = document.getElementById('total');"
                          "return [t.textContent, t.classList.contains('stale')];")
            shown = self.b.execute(read_total)
            self.assertRegex(shown[0], r"^[0-9,]+$")
            self.assertTrue(shown[1], "numbers not marked stale")
            # Two more reads of /stats/ logged: at least one is a poll that
            # began after the banner was read (the log may lag a second).
            polls = rb'"GET /stats/\?offset='
            self.wait_page_request(self.page_requests(polls) + 1, "while Redis is down",
                                   pattern=polls)
            self.assertEqual(self.b.execute(read_total), shown)
        finally:
            st.start_redis()
        self.b.wait_for(
            "return document.getElementById('banner').hidden &&"
            " document.getElementById('redis-state').textContent === 'Up' &&"
            " !document.getElementById('total').classList.contains('stale');",
            20, "the page to recover")
        # The 503s the page read while Redis was down are expected.
        self.assertNoConsoleErrors(expected_statuses=(503,))

    def tearDown(self):
        if self._testMethodName != "test_redis_down_and_back":
            super().tearDown()  # that one checks the console itself


if __name__ == "__main__":
    unittest.main()
