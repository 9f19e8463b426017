#!/usr/bin/env python3
"""browser.py -- drive Debian's headless Chromium through chromedriver (WebDriver).

The dashboard test (tests/integration/test_dashboard.py) and the screenshot
command below use it. Python standard library only: chromedriver speaks
WebDriver, JSON over HTTP on a loopback port, which urllib talks directly;
no Selenium, no browser download.

  Browser(out_dir)     starts chromedriver on a free loopback port and one
                       headless Chromium session with a fresh, empty
                       profile under out_dir; close() ends both.
  .execute(js, *args)  runs a script in the page and returns its value.
  .wait_for(js, ...)   polls a script until it returns something truthy,
                       with a deadline.
  .console()           the browser's console and error log since the last
                       call (goog:loggingPrefs).
  .screenshot(path, width, height, mobile)
                       a PNG of the whole page laid out at that viewport
                       width (Chrome DevTools Protocol through chromedriver).

As a program it takes the dashboard screenshots of a running service:

  python3 tests/browser.py --url http://127.0.0.1:5000/ --out DIR

writes DIR/dashboard-desktop.png (1280 px wide) and DIR/dashboard-phone.png
(390 px, at twice the pixel density).

Chromium runs with the flags a root user in a container needs
(--no-sandbox) and without anything that talks to the network on its own.
Only loopback is ever contacted.
"""

import argparse
import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import stack  # tests/stack.py: stop_process

CHROME_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
    "--disable-extensions", "--disable-default-apps", "--no-default-browser-check",
    "--lang=en-US",
]


class BrowserError(RuntimeError):
    pass


def find_chromium():
    """(chromium, chromedriver) paths, or None for a missing one. CHROMIUM
    and CHROMEDRIVER override the search."""
    chrome = os.environ.get("CHROMIUM") or shutil.which("chromium") or \
        shutil.which("chromium-browser")
    driver = os.environ.get("CHROMEDRIVER") or shutil.which("chromedriver")
    return chrome, driver


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Browser:
    def __init__(self, out_dir, width=1280, height=900, timeout=30):
        chrome, driver = find_chromium()
        if not chrome or not driver:
            raise BrowserError("chromium or chromedriver not found (apt-get install chromium "
                               "chromium-driver)")
        os.makedirs(out_dir, exist_ok=True)
        self.out_dir = out_dir
        self.profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=out_dir)
        self.port = _free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        self.session = None
        self._log = open(os.path.join(out_dir, "chromedriver.log"), "ab")
        # Without --allowed-ips chromedriver listens on loopback only.
        self.driver = subprocess.Popen(
            [driver, "--port=%d" % self.port],
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            self._wait_driver(timeout)
            caps = {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": chrome,
                    "args": CHROME_FLAGS + ["--user-data-dir=" + self.profile,
                                            "--window-size=%d,%d" % (width, height)],
                },
                "goog:loggingPrefs": {"browser": "ALL"},
                "pageLoadStrategy": "eager",
                "timeouts": {"pageLoad": timeout * 1000, "script": timeout * 1000},
            }
            value = self._call("POST", "/session", {"capabilities": {"alwaysMatch": caps}},
                               timeout=timeout + 30)
            self.session = value["sessionId"]
        except Exception:
            self.close()
            raise

    # ---- WebDriver over HTTP ----------------------------------------------

    def _wait_driver(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.driver.poll() is not None:
                raise BrowserError("chromedriver exited with %s; see %s/chromedriver.log"
                                   % (self.driver.returncode, self.out_dir))
            try:
                if self._call("GET", "/status", timeout=2).get("ready"):
                    return
            except (OSError, BrowserError):
                pass
            time.sleep(0.1)
        raise BrowserError("chromedriver did not get ready in %d s" % timeout)

    def _call(self, method, path, body=None, timeout=60):
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                payload = json.loads(r.read().decode() or "{}")
        except urllib.error.HTTPError as e:
            try:
                payload = json.loads(e.read().decode() or "{}")
            except ValueError:
                payload = {}
            v = payload.get("value") or {}
            raise BrowserError("%s %s: %s: %s" % (method, path, v.get("error", e.code),
                                                  (v.get("message") or "").split("\n")[0]))
        return payload.get("value")

    def _s(self, path):
        return "/session/%s%s" % (self.session, path)

    # ---- what the tests use ------------------------------------------------------

    def get(self, url):
        self._call("POST", self._s("/url"), {"url": url})

    def execute(self, script, *args):
        """Run script (a function body; arguments in `arguments`) in the page."""
        return self._call("POST", self._s("/execute/sync"), {"script": script, "args": list(args)})

    def wait_for(self, script, timeout, what, *args, interval=0.1):
        """Poll script until it returns something truthy; returns that value."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            last = self.execute(script, *args)
            if last:
                return last
            time.sleep(interval)
        raise BrowserError("timed out after %.0f s waiting for %s (last value %r)"
                           % (timeout, what, last))

    def find(self, css):
        """The element matching a CSS selector, as a WebDriver reference."""
        return self._call("POST", self._s("/element"), {"using": "css selector", "value": css})

    def click(self, css):
        ref = self.find(css)
        self._call("POST", self._s("/element/%s/click" % _ref_id(ref)), {})

    def type_into(self, css, text):
        """Clear the field and type text into it, key by key."""
        eid = _ref_id(self.find(css))
        self._call("POST", self._s("/element/%s/clear" % eid), {})
        self._call("POST", self._s("/element/%s/value" % eid), {"text": text})

    def window(self):
        """The handle of the current tab."""
        return self._call("GET", self._s("/window"))

    def new_tab(self):
        """Open a blank tab in front (the current one goes to the
        background: hidden, for the Page Visibility API) and switch to it;
        returns its handle."""
        handle = self._call("POST", self._s("/window/new"), {"type": "tab"})["handle"]
        self._call("POST", self._s("/window"), {"handle": handle})
        return handle

    def close_tab(self, handle, back_to):
        """Close tab handle (the current one) and switch to back_to."""
        self._call("POST", self._s("/window"), {"handle": handle})
        self._call("DELETE", self._s("/window"))
        self._call("POST", self._s("/window"), {"handle": back_to})

    def console(self):
        """Browser log entries since the last call: [{level, source, message}]."""
        return self._call("POST", self._s("/se/log"), {"type": "browser"}) or []

    def cdp(self, cmd, params=None):
        return self._call("POST", self._s("/goog/cdp/execute"), {"cmd": cmd, "params": params or {}})

    def screenshot(self, path, width, height, mobile=False, scale=1):
        """The whole page laid out at a viewport of width x height, as a PNG
        at path (height grows to the page's full height)."""
        self.cdp("Emulation.setDeviceMetricsOverride",
                 {"width": width, "height": height, "deviceScaleFactor": scale,
                  "mobile": mobile})
        try:
            # Two frames: resize observers (the dashboard's chart) run and
            # their redraw is painted.
            self.execute("return new Promise(r => requestAnimationFrame("
                         "() => requestAnimationFrame(() => r(true))));")
            full = self.execute("return Math.ceil(document.documentElement.scrollHeight);")
            shot = self.cdp("Page.captureScreenshot",
                            {"format": "png", "captureBeyondViewport": True,
                             "clip": {"x": 0, "y": 0, "width": width,
                                      "height": max(height, int(full)), "scale": 1}})
        finally:
            self.cdp("Emulation.clearDeviceMetricsOverride")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))
        return path

    def close(self):
        if self.session is not None:
            try:
                self._call("DELETE", self._s(""), timeout=20)
            except (OSError, BrowserError):
                pass
            self.session = None
        stack.stop_process(self.driver)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _ref_id(ref):
    """The id of a W3C element reference."""
    for k, v in ref.items():
        if k.startswith("element-6066"):
            return v
    return ref["ELEMENT"]


# The two screenshots: (file, width, height, mobile, device pixel ratio).
SHOTS = (("dashboard-desktop.png", 1280, 900, False, 1),
         ("dashboard-phone.png", 390, 844, True, 2))

# Wait until the dashboard has drawn its first /stats/ answer.
DASHBOARD_READY = "return document.querySelector('#urls-body tr') !== null;"


def shoot(browser, url, out_dir):
    """Load the dashboard (url None: the page already open) and save the
    desktop and phone screenshots."""
    if url is not None:
        browser.get(url)
    browser.wait_for(DASHBOARD_READY, 20, "the dashboard's URL table")
    return [browser.screenshot(os.path.join(out_dir, name), w, h, mobile, scale)
            for name, w, h, mobile, scale in SHOTS]


def main():
    ap = argparse.ArgumentParser(description="Screenshots of the reqstats dashboard.")
    ap.add_argument("--url", required=True, help="the dashboard, e.g. http://127.0.0.1:5000/")
    ap.add_argument("--out", required=True, help="directory for the PNG files")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    with Browser(args.out) as b:
        for p in shoot(b, args.url, args.out):
            print(p)
    return 0


if __name__ == "__main__":
    sys.exit(main())
