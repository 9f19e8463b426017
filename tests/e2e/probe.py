#!/usr/bin/env python3
"""probe.py -- the HTTP and JSON half of tests/e2e/run (standard library only).

Each subcommand makes its requests against BASE (http://127.0.0.1:PORT),
prints one result on stdout and exits 0, or prints why on stderr and exits
1. Every request here is counted by the service like any other; the e2e
checks only compare counters of paths that no probe request touches.

  stats BASE               GET /stats/: 200, application/json, the report's
                           shape; prints "total_requests unique_urls"
  count BASE PATH          the count of PATH in /stats/ (0 if absent)
  pool-sum BASE A B C      sum of the counts of /api/ paths of 1 to 6
                           segments drawn from the pool A B C
  start-run BASE N         POST /test/N/: 202 and a status_url; prints it
  wait-run BASE URL SECS   poll URL until the run is done or failed (at
                           most SECS); prints "status succeeded failed
                           requests pool0 pool1 pool2 elapsed_seconds"
  run BASE URL             GET a run record once; prints like wait-run
"""

import json
import re
import sys
import time
import urllib.error
import urllib.request

TIMEOUT = 10
PAGE = 1000


class ProbeError(Exception):
    pass


def request(base, path, method="GET"):
    req = urllib.request.Request(base + path, method=method)
    try:
        with urllib.request.urlopen(req, timeout=TIMEOUT) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()
    except (urllib.error.URLError, OSError) as e:
        raise ProbeError("%s %s: %s" % (method, path, e))


def get_json(base, path, method="GET", want=200):
    status, headers, body = request(base, path, method)
    if status != want:
        raise ProbeError("%s %s: status %d, expected %d: %r"
                         % (method, path, status, want, body[:300]))
    ctype = headers.get("Content-Type", "")
    if not ctype.startswith("application/json"):
        raise ProbeError("%s %s: Content-Type %r" % (method, path, ctype))
    try:
        return json.loads(body.decode("utf-8", "strict"))
    except ValueError as e:
        raise ProbeError("%s %s: invalid JSON (%s): %r" % (method, path, e, body[:300]))


def check_report(d):
    for key in ("total_requests", "unique_urls", "offset", "limit"):
        if not isinstance(d.get(key), int) or isinstance(d.get(key), bool):
            raise ProbeError("/stats/: %s is not an integer: %r" % (key, d.get(key)))
    if not isinstance(d.get("urls"), list):
        raise ProbeError("/stats/: urls is not a list")
    for u in d["urls"]:
        if not isinstance(u.get("url"), str) or not isinstance(u.get("count"), int):
            raise ProbeError("/stats/: bad entry %r" % (u,))
    if d.get("next") is not None and not isinstance(d["next"], str):
        raise ProbeError("/stats/: next is neither a link nor null")


def all_counts(base):
    """Every (url, count) of the report, following `next` page by page."""
    path = "/stats/?limit=%d" % PAGE
    counts = {}
    for _ in range(10000):
        d = get_json(base, path)
        check_report(d)
        for u in d["urls"]:
            counts[u["url"]] = u["count"]
        if d["next"] is None:
            return counts
        path = d["next"]
    raise ProbeError("/stats/: more pages than expected")


def run_fields(d):
    pool = d.get("pool") or ["-", "-", "-"]
    return "%s %s %s %s %s %s" % (d.get("status"), d.get("succeeded"), d.get("failed"),
                                  d.get("requests"), " ".join(pool), d.get("elapsed_seconds"))


def main(argv):
    cmd, base = argv[1], argv[2].rstrip("/")
    if cmd == "stats":
        d = get_json(base, "/stats/")
        check_report(d)
        print(d["total_requests"], d["unique_urls"])
    elif cmd == "count":
        print(all_counts(base).get(argv[3], 0))
    elif cmd == "pool-sum":
        seg = "(?:%s)" % "|".join(re.escape(p) for p in argv[3:6])
        shape = re.compile(r"/api/%s(?:/%s){0,5}/\Z" % (seg, seg))
        print(sum(c for u, c in all_counts(base).items() if shape.match(u)))
    elif cmd == "start-run":
        d = get_json(base, "/test/%s/" % argv[3], method="POST", want=202)
        if d.get("requests") != int(argv[3]) or not isinstance(d.get("status_url"), str):
            raise ProbeError("POST /test/%s/: unexpected body %r" % (argv[3], d))
        print(d["status_url"])
    elif cmd in ("wait-run", "run"):
        url = argv[3]
        deadline = time.monotonic() + (float(argv[4]) if cmd == "wait-run" else 0)
        while True:
            d = get_json(base, url)
            if d.get("status") in ("done", "failed") or time.monotonic() >= deadline:
                break
            time.sleep(0.2)
        print(run_fields(d))
    else:
        raise ProbeError("unknown subcommand %s" % cmd)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ProbeError as e:
        print("probe: %s" % e, file=sys.stderr)
        sys.exit(1)
