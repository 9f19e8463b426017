"""corehelp.py -- helpers shared by the core-contract tests (API.md 1, 2, 3, 6).

Kept apart from support.py (the suite's base class) so the contract test
files stay short: raw HTTP requests for bytes http.client refuses to send
(raw UTF-8, '#', oversized lines), a keep-alive load generator for exact
counting, and before/after snapshots of the report.

Counting arithmetic used throughout: every /stats/ read is itself counted.
Whether a read sees its own hit or not, the difference between two reads
of total_requests is the number of counted requests made between them plus
one (the earlier read, or the later one). So

    total(after) - total(before) == requests in between + 1

holds for any implementation that counts each request exactly once,
provided both reads come after settle() (every earlier hit is visible).
The same holds for the count of /stats/ itself.
"""

import http.client
import os
import threading
import urllib.parse

from support import parse_http

HEX32 = r"^[0-9a-f]{32}$"


def token():
    """A short random tag that makes a test's paths its own."""
    return os.urandom(6).hex()


class CoreMixin:
    """Mixed into StackTestCase subclasses."""

    def send_raw(self, method, target, headers=None, body=None, timeout=10):
        """One request whose request line is sent byte for byte.

        target: bytes (or str, encoded as UTF-8). Returns the parsed answer.
        """
        if isinstance(target, str):
            target = target.encode("utf-8")
        host, port = self.host_port()
        req = method.encode("ascii") + b" " + target + b" HTTP/1.1\r\n"
        req += b"Host: %s:%d\r\nConnection: close\r\n" % (host.encode(), port)
        for k, v in (headers or {}).items():
            req += ("%s: %s\r\n" % (k, v)).encode("latin-1")
        if body is not None:
            req += b"Content-Length: %d\r\n" % len(body)
        req += b"\r\n" + (body or b"")
        return parse_http(self.raw(req, timeout=timeout), head_request=method == "HEAD")

    # ---- the report -------------------------------------------------------

    def page(self, query=""):
        """GET /stats/?query as parsed JSON (must be 200)."""
        return self.assertJson(self.get("/stats/" + ("?" + query if query else "")), 200)

    def entries(self):
        """The whole report as [(url, count)] in report order, page by page.

        Only /stats/ itself moves between pages (each read is counted), so
        the order of every other entry is exact."""
        out, link = [], "/stats/?limit=10000"
        while link is not None:
            body = self.assertJson(self.get(link), 200)
            out += [(u["url"], u["count"]) for u in body["urls"]]
            link = body["next"]
        return out

    # ---- load ---------------------------------------------------------------

    def run_load(self, plans, timeout=30):
        """Send requests concurrently, one keep-alive connection per plan.

        plans: a list of lists of (method, path); each inner list runs in
        order on its own connection, all connections start together.
        Returns {(method, path): [statuses]} and the list of errors.
        """
        host, port = self.host_port()
        results = [None] * len(plans)
        errors = []
        barrier = threading.Barrier(len(plans))

        def worker(i, plan):
            got = []
            conn = http.client.HTTPConnection(host, port, timeout=timeout)
            try:
                barrier.wait(timeout)
                for method, path in plan:
                    conn.request(method, path)
                    r = conn.getresponse()
                    r.read()
                    got.append((method, path, r.status))
            except Exception as e:  # reported by the caller's assertion
                errors.append("connection %d after %d requests: %r" % (i, len(got), e))
            finally:
                conn.close()
                results[i] = got

        threads = [threading.Thread(target=worker, args=(i, p), daemon=True)
                   for i, p in enumerate(plans)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout + 30)
        statuses = {}
        for got in results:
            for method, path, status in got or []:
                statuses.setdefault((method, path), []).append(status)
        return statuses, errors


def query_of(url):
    """The query parameters of a relative URL as a dict of single values."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query,
                                       keep_blank_values=True))
