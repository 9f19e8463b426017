"""Hostile input: raw requests from a corpus, sent over sockets (docs/API.md sections 1 and 6).

The corpus is hostile_corpus.txt next to this file; its header documents the
format (one case per line: name, acceptable statuses, the request in an
escaped form). For every case, and for every answer it gets:

  * the status is one of the case's statuses, and one the API documents;
  * the body is strict UTF-8 JSON (support.Response.json()) with
    Content-Type application/json, an error of the docs/API.md 6 shape for every
    4xx/5xx, no body for HEAD, and a Content-Length that matches;
  * no injected header appears: every response header name is one the
    service sends, and none is Set-Cookie or X-Evil;
  * an /api/ answer names the canonical path that docs/API.md 1 computes from the
    request target (reference implementation below), which is printable
    ASCII, at most 2048 bytes and a fixed point of the canonicalisation;
  * a 308 has a printable Location equal to its body's "location".

After the corpus: /stats/ is strict JSON and every url key is printable
ASCII starting with '/', at most 2048 bytes, and canonical; total_requests
grew by exactly the number of answers that came from the app (they carry
Cache-Control: no-store; nginx's own errors do not and are not counted; the
app's 414 is not counted either); the app's workers and runner are the same
processes as before (no crash) and the app log reports no child death.
support.StackTestCase also fails the class on sanitizer reports.

Local helpers (not in support.py): the corpus parser, an HTTP/1.x response
parser for the raw bytes (several answers per connection, HTTP/0.9), and the
reference canonicaliser.
"""

import os
import re
import time
import unittest

import stack as stackmod
from support import HTTP09, StackTestCase, parse_responses

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "hostile_corpus.txt")

# What the API documents (docs/API.md 6 and the endpoints), nginx-level JSON errors
# included: 505 is nginx's answer to a request line with an HTTP version it
# does not speak (README, "The API", error codes).
DOCUMENTED = {200, 202, 308, 400, 401, 403, 404, 405, 408, 409, 413, 414, 429, 503, 505}

# Every header name the service (app or nginx) sends; anything else is injected.
KNOWN_HEADERS = {"server", "date", "content-type", "content-length", "connection",
                 "cache-control", "location", "allow", "x-request-id", "retry-after",
                 "www-authenticate", "transfer-encoding", "keep-alive"}
INJECTED = {"set-cookie", "x-evil"}

STD_HEADERS = b"Host: 127.0.0.1\r\nConnection: close\r\n"

# ---- the corpus ---------------------------------------------------------------


class CorpusError(ValueError):
    pass


def _decode(text, pos, stop):
    """Decode escapes and macros in text[pos:] up to the unmatched char stop
    (None: the end). Returns (bytes, index after it)."""
    out = bytearray()
    i = pos
    while i < len(text):
        c = text[i]
        if stop is not None and c == stop:
            return bytes(out), i + 1
        if c == "\\":
            nxt = text[i + 1:i + 2]
            simple = {"r": b"\r", "n": b"\n", "t": b"\t", "0": b"\0", "\\": b"\\"}
            if nxt in simple:
                out += simple[nxt]
                i += 2
            elif nxt == "x" and re.match(r"[0-9a-fA-F]{2}$", text[i + 2:i + 4]):
                out.append(int(text[i + 2:i + 4], 16))
                i += 4
            else:
                raise CorpusError("bad escape at column %d" % i)
            continue
        if c == "{":
            m = re.match(r"\{(end\}|hdrs\}|body:|(\d+)\*)", text[i:])
            if not m:
                raise CorpusError("unknown macro at column %d" % i)
            tag = m.group(1)
            i += len(m.group(0))
            if tag == "end}":
                out += b"\r\n" + STD_HEADERS + b"\r\n"
            elif tag == "hdrs}":
                out += STD_HEADERS
            elif tag == "body:":
                inner, i = _decode(text, i, "}")
                out += b"Content-Length: %d\r\n\r\n" % len(inner) + inner
            else:
                inner, i = _decode(text, i, "}")
                out += inner * int(m.group(2))
            continue
        if c == "}" or not (" " <= c <= "~"):
            raise CorpusError("unescaped %r at column %d" % (c, i))
        out.append(ord(c))
        i += 1
    if stop is not None:
        raise CorpusError("unclosed macro")
    return bytes(out), i


def decode_request(text):
    data, _ = _decode(text, 0, None)
    return data


def load_corpus(path=CORPUS):
    """[(name, set of statuses, request bytes)] from the corpus file."""
    cases, names = [], set()
    with open(path, "rb") as f:
        raw = f.read()
    for lineno, line in enumerate(raw.decode("ascii").split("\n"), 1):
        if not line.strip() or line.startswith("#"):
            continue
        m = re.match(r"^([a-z0-9_]+)\s+([0-9a-z,]+)\s+(.+)$", line)
        if not m:
            raise CorpusError("%s:%d: not NAME STATUSES REQUEST" % (path, lineno))
        name, statuses, text = m.groups()
        if name in names:
            raise CorpusError("%s:%d: duplicate name %s" % (path, lineno, name))
        names.add(name)
        expect = set()
        for s in statuses.split(","):
            if s == HTTP09:
                expect.add(HTTP09)
            elif re.match(r"^[1-5]\d\d$", s):
                expect.add(int(s))
            else:
                raise CorpusError("%s:%d: bad status %r" % (path, lineno, s))
        try:
            data = decode_request(text)
        except CorpusError as e:
            raise CorpusError("%s:%d: %s" % (path, lineno, e))
        cases.append((name, expect, data))
    return cases


# ---- raw responses --------------------------------------------------------------



# ---- docs/API.md 1: the reference canonical path -------------------------------------------

KEEP = set(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@/")
HEX = set(b"0123456789abcdefABCDEF")


def canon(target):
    """docs/API.md 1 applied to a request target (bytes); returns the canonical str."""
    for i, c in enumerate(target):
        if c in b"?#":
            target = target[:i]
            break
    dec = bytearray()
    i = 0
    while i < len(target):
        c = target[i]
        if c == 0x25 and i + 2 < len(target) and target[i + 1] in HEX and target[i + 2] in HEX:
            dec.append(int(target[i + 1:i + 3], 16))
            i += 3
        else:
            dec.append(c)
            i += 1
    segs, trailing = [], False
    for seg in bytes(dec).split(b"/"):
        if seg in (b"", b"."):
            trailing = True
        elif seg == b"..":
            if segs:
                segs.pop()
            trailing = True
        else:
            segs.append(seg)
            trailing = False
    path = b"/" + b"/".join(segs)
    if segs and trailing:
        path += b"/"
    return "".join(chr(c) if c in KEEP else "%%%02X" % c for c in path)


def request_target(data):
    """The target of the first request line (as nginx reads lines: up to LF)."""
    line = data.split(b"\n", 1)[0].rstrip(b"\r")
    parts = line.split(b" ")
    if len(parts) < 2:
        return None
    target = parts[1]
    m = re.match(rb"^https?://[^/]*(/.*)?$", target)
    if m:
        target = m.group(1) or b"/"
    return target


def printable(s):
    return all(" " < ch <= "~" for ch in s)


# ---- the test ---------------------------------------------------------------------


class Outcome:
    """What one corpus case got back."""

    def __init__(self, name, expect, data):
        self.name, self.expect, self.data = name, expect, data
        self.head = data.startswith(b"HEAD ")
        self.raw = b""
        self.responses = []
        self.error = None  # why the answer could not be parsed


class Hostile(StackTestCase):
    """The corpus is sent once, in setUpClass; each test checks one property of all answers."""

    # Any run a hostile request might start sends its traffic to a closed port,
    # so the count of this stack's hits stays exact. One worker: the corpus
    # is bracketed by barriers (support.py), so "counted once" is exact.
    app_env = {"TEST_TARGET_URL": "http://127.0.0.1:%d" % stackmod.free_port(),
               "TEST_TARGET_SOCKET": "", "WORKERS": "1"}

    outcomes = []

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        try:
            cls.send_corpus()
        except BaseException:
            try:
                cls.tearDownClass()   # unittest does not when setUpClass fails
            except Exception:
                pass
            raise

    @classmethod
    def send_corpus(cls):
        cls.cases = load_corpus()
        st = cls.stack
        probe = cls("test_corpus_format")
        if st is not None:
            probe.barrier()   # everything before the corpus is in Redis
            cls.children_before = cls.children()
            cls.total_before = cls.redis_total()
        t0 = time.monotonic()
        cls.outcomes = []
        for name, expect, data in cls.cases:
            out = Outcome(name, expect, data)
            try:
                out.raw = probe.raw(data, timeout=5)
                if not out.raw:
                    raise ValueError("no answer at all")
                out.responses = parse_responses(out.raw, out.head)
            except (OSError, ValueError) as e:
                out.error = "%s: %s" % (type(e).__name__, e)
            cls.outcomes.append(out)
        cls.corpus_seconds = time.monotonic() - t0
        if st is not None:
            probe.barrier()   # every hit the corpus caused is in Redis
            cls.total_after = cls.redis_total() - 1   # the marker
            cls.children_after = cls.children()

    @classmethod
    def redis_total(cls):
        return int(cls.stack.redis_cmd("GET", "reqstats:total") or 0)

    @classmethod
    def children(cls):
        st = cls.stack
        return sorted((st.role_of(p) or "?", p) for p in st.children())

    def each_answer(self, check):
        """Run check(outcome, index, response) on every answer; fail once with every problem."""
        problems = []
        for out in self.outcomes:
            if out.error is not None:
                problems.append("%s: %s; raw %r" % (out.name, out.error, out.raw[:300]))
                continue
            for i, resp in enumerate(out.responses):
                try:
                    check(out, i, resp)
                except (AssertionError, ValueError, KeyError, TypeError) as e:
                    problems.append("%s: answer %d: %s" % (out.name, i, str(e)[:600]))
        if problems:
            self.fail("%d problem(s) in %d cases:\n  %s"
                      % (len(problems), len(self.outcomes), "\n  ".join(problems)))

    # ---- properties of every answer -------------------------------------------------

    def test_corpus_format(self):
        """The corpus format itself: escapes, macros, errors; the reference canonicaliser."""
        self.assertGreater(len(self.cases), 100)
        self.assertEqual(decode_request(r"a\r\n\x41\\\0{3*b\x7d}"), b"a\r\nA\\\0b}b}b}")
        self.assertEqual(decode_request("{body:{2*ab}}"), b"Content-Length: 4\r\n\r\nabab")
        self.assertEqual(decode_request("X{end}"), b"X\r\n" + STD_HEADERS + b"\r\n")
        for bad in (r"\q", r"\x4", "{2*a", "}", "{nope}", "\u00e9"):
            with self.assertRaises(CorpusError):
                decode_request(bad)
        self.assertEqual(canon(b"/api//a/./b/../c/?x=1"), "/api/a/c/")
        self.assertEqual(canon(b"/api/caf\xc3\xa9/"), "/api/caf%C3%A9/")
        self.assertEqual(canon(b"/api/%7Euser/"), "/api/~user/")
        self.assertEqual(canon(b"/api/a%2Fb/"), "/api/a/b/")
        self.assertEqual(canon(b"/api/x%"), "/api/x%25")
        self.assertEqual(canon(b"/.."), "/")

    def test_status_documented_and_body_strict_json(self):
        def check(out, i, resp):
            self.assertIn(resp.status, out.expect, "body %r" % resp.body[:100])
            if resp.status == HTTP09:
                self.assertIsInstance(resp.json(), dict)
                return
            self.assertIn(resp.status, DOCUMENTED, "undocumented status: %r" % resp)
            ctype = resp.headers.get("content-type", "")
            self.assertTrue(ctype.startswith("application/json"), "Content-Type %r" % ctype)
            if out.head:
                self.assertEqual(resp.body, b"")
                return
            body = resp.json()
            self.assertIsInstance(body, dict)
            if resp.status >= 400:
                err = body.get("error")
                self.assertIsInstance(err, dict, body)
                self.assertEqual(err.get("status"), resp.status, body)
                self.assertIsInstance(err.get("code"), str, body)
                self.assertIsInstance(err.get("message"), str, body)
                self.assertRegex(err.get("request_id") or "", r"^[0-9a-f]{32}$")
            if resp.status == 405:   # docs/API.md sections 2-5: a 405 names what is allowed
                self.assertIn(resp.headers.get("allow"), ("GET, HEAD", "GET, HEAD, DELETE", "POST"))
        self.each_answer(check)

    def test_no_header_injection(self):
        def check(out, i, resp):
            if resp.status == HTTP09:
                return
            names = {k.lower() for k, _ in resp.header_list}
            self.assertFalse(names & INJECTED, "injected header in %r" % resp.header_list)
            self.assertTrue(names <= KNOWN_HEADERS,
                            "unexpected header(s) %s" % sorted(names - KNOWN_HEADERS))
            if resp.status == 308:
                loc = resp.headers.get("location", "")
                self.assertTrue(loc.startswith("/") and printable(loc), "Location %r" % loc)
                if not out.head:
                    self.assertEqual(resp.json().get("location"), loc)
        self.each_answer(check)

    def test_api_paths_canonical(self):
        seen = []

        def check(out, i, resp):
            if resp.status not in (200, HTTP09) or out.head:
                return
            body = resp.json()
            if "path" not in body:
                return
            path = body["path"]
            seen.append(path)
            self.assertIsInstance(path, str)
            self.assertTrue(path.startswith("/api/") or path == "/api", path)
            self.assertTrue(printable(path), "not printable ASCII: %r" % path)
            self.assertLessEqual(len(path), 2048)
            self.assertEqual(canon(path.encode()), path, "not a fixed point")
            if i == 0:
                target = request_target(out.data)
                self.assertEqual(path, canon(target), "canonical path of %r" % target[:80])
        self.each_answer(check)
        self.assertGreater(len(seen), 50)
        self.assertIn(2048, {len(p) for p in seen}, "the 2048-byte cases answered 200")

    def test_stats_pages_after_corpus(self):
        def check_page(where, body):
            for field in ("total_requests", "unique_urls", "offset", "limit"):
                self.assertIsInstance(body.get(field), int, "%s: %s" % (where, field))
            self.assertIsInstance(body["urls"], list, where)
            for item in body["urls"]:
                url = item["url"]
                self.assertIsInstance(item["count"], int, where)
                self.assertTrue(isinstance(url, str) and url.startswith("/") and printable(url),
                                "%s: url key %r" % (where, url))
                self.assertLessEqual(len(url), 2048, where)
                self.assertEqual(canon(url.encode()), url, "%s: key %r not canonical" % (where, url))

        def check(out, i, resp):
            if resp.status == 200 and not out.head:
                body = resp.json()
                if "urls" in body:
                    check_page("the answer itself", body)
        self.each_answer(check)
        offset, keys = 0, 0
        while True:
            page = self.stats(limit=10000, offset=offset)   # strict JSON
            check_page("/stats/?offset=%d" % offset, page)
            keys += len(page["urls"])
            if page["next"] is None:
                break
            offset += page["limit"]
        self.assertGreater(keys, 50)

    # ---- the service afterwards -------------------------------------------------------------

    def test_every_app_answer_counted_once(self):
        self.require_stack()
        counted = 0
        for out in self.outcomes:
            for resp in out.responses:
                if resp.status == HTTP09:
                    body = resp.json() if resp.body.startswith(b"{") else {}
                    counted += 1 if "path" in body else 0
                elif resp.headers.get("cache-control") == "no-store" and resp.status != 414:
                    counted += 1   # from the app (nginx's own errors carry no Cache-Control)
        print("\n  %d cases in %.1f s; %d answers from the app, counted"
              % (len(self.outcomes), self.corpus_seconds, counted))
        self.assertEqual(self.total_after - self.total_before, counted,
                         "total_requests grows by the app's answers, each once")

    def test_no_worker_crashed(self):
        st = self.require_stack()
        self.assertEqual(self.children_after, self.children_before, "workers/runner replaced")
        self.assertEqual(sorted(st.children()), sorted(p for _, p in self.children_before))
        with open(st.app_log, "rb") as f:
            log = f.read().decode("utf-8", "replace")
        deaths = [line for line in log.splitlines()
                  if re.search(r"killed by signal|respawning|core dumped|exited with", line)]
        self.assertEqual(deaths, [])


if __name__ == "__main__":
    unittest.main()
