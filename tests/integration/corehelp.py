"""corehelp.py -- helpers shared by the core-contract tests (docs/API.md 1, 2, 3, 6).

Kept apart from support.py (the suite's base class, its waits and load
drivers) so the contract test files stay short: raw HTTP requests for bytes
http.client refuses to send (raw UTF-8, '#', oversized lines) and reads of
the whole report.

Every /stats/ read is itself counted, and whether a read sees its own hit
is not defined, so tests never do arithmetic with a total they read
themselves unless the reads are accounted for: they wait for the counts of
their own paths (support.wait_counts), compare hits outside /stats/
(support.others), or read Redis behind a barrier (support.barrier).
"""

import os
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


def query_of(url):
    """The query parameters of a relative URL as a dict of single values."""
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query,
                                       keep_blank_values=True))
