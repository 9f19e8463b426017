"""benchlib.py -- what bench/run and bench/soak share.

Python 3 standard library only. The stack itself comes from tests/stack.py
(the one launcher of every native use); this module adds what measuring
needs on top of it:

  * tool checks with the install hint (wrk is not in `make deps`);
  * running wrk with one of the Lua scripts of this directory and reading
    the machine-readable summary line their done() prints;
  * counting what nginx passed upstream, from its access log, per run tag
    (every wrk run sends its own User-Agent, which the log format records);
  * reading reqstats:total and other Redis values, per-process CPU time,
    RSS and open fds from /proc.

Nothing here starts a process that is not waited for or bounded in time.
"""

import collections
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time

BENCH_DIR = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(BENCH_DIR)
sys.path.insert(0, os.path.join(ROOT, "tests"))

import stack as stackmod  # noqa: E402  (tests/stack.py)

# The store's schema (app/counters.c, app/runs.c): every key under this prefix.
KEY_PREFIX = "reqstats:"
K_HITS = KEY_PREFIX + "hits"
K_TOTAL = KEY_PREFIX + "total"

CLK_TCK = os.sysconf("SC_CLK_TCK")

# Debian package that provides each tool the benchmark runs.
TOOLS = {
    "wrk": "wrk",
    "nginx": "nginx",
    "redis-server": "redis-server",
    "redis-cli": "redis-tools",
    "redis-benchmark": "redis-tools",
}


class BenchError(Exception):
    """A failure of the benchmark itself (not a missed target)."""


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def env_int(name, default, lo=None, hi=None):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        v = int(raw)
    except ValueError:
        raise BenchError("%s=%r is not an integer" % (name, raw))
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise BenchError("%s=%d is out of range [%s, %s]" % (name, v, lo, hi))
    return v


def env_float(name, default, lo=None):
    raw = os.environ.get(name, "")
    if raw == "":
        return default
    try:
        v = float(raw)
    except ValueError:
        raise BenchError("%s=%r is not a number" % (name, raw))
    if lo is not None and v < lo:
        raise BenchError("%s=%s is below %s" % (name, raw, lo))
    return v


def env_list_int(name, default):
    raw = os.environ.get(name, "")
    if raw == "":
        return list(default)
    try:
        vals = [int(x) for x in raw.replace(" ", ",").split(",") if x]
    except ValueError:
        raise BenchError("%s=%r: expected comma-separated integers" % (name, raw))
    if not vals or any(v < 1 or v > 10000 for v in vals):
        raise BenchError("%s=%r: values must be 1..10000" % (name, raw))
    return vals


def env_app(name="BENCH_APP_ENV"):
    """Extra app environment for experiments: 'K=V,K=V'."""
    out = {}
    raw = os.environ.get(name, "").strip()
    for item in filter(None, (x.strip() for x in raw.split(","))):
        if "=" not in item or not re.match(r"^[A-Z][A-Z0-9_]*=", item):
            raise BenchError("%s: bad item %r (expected NAME=value)" % (name, item))
        k, v = item.split("=", 1)
        out[k] = v
    return out


def check_tools(names):
    """Every tool present, or a BenchError saying how to install the missing."""
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        pkgs = sorted({TOOLS.get(n, n) for n in missing})
        raise BenchError("missing %s; install with: apt-get install -y %s"
                         % (", ".join(missing), " ".join(pkgs)))


def tool_versions():
    def first_line(cmd):
        try:
            p = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
            out = (p.stdout + p.stderr).strip().splitlines()
            return out[0] if out else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""
    return {
        "wrk": first_line(["wrk", "-v"]),
        "nginx": first_line(["nginx", "-v"]),
        "redis": first_line(["redis-server", "--version"]),
        "kernel": os.uname().release,
    }


def machine_info():
    nproc = None
    try:
        nproc = int(subprocess.run(["nproc"], capture_output=True, text=True,
                                   timeout=5).stdout.strip())
    except (OSError, ValueError, subprocess.TimeoutExpired):
        pass
    model = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu_count": os.cpu_count(), "nproc": nproc, "cpu_model": model,
            "loadavg": list(os.getloadavg())}


def file_sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def git_state():
    def git(*args):
        try:
            p = subprocess.run(["git", "-C", ROOT] + list(args), capture_output=True,
                               text=True, timeout=10)
            return p.stdout.strip() if p.returncode == 0 else ""
        except (OSError, subprocess.TimeoutExpired):
            return ""
    rev = git("rev-parse", "--short", "HEAD")
    dirty = bool(git("status", "--porcelain", "--untracked-files=no", "--", "app", "nginx"))
    return {"rev": rev, "app_or_nginx_dirty": dirty}


def private_binary(binary, run_dir):
    """Copy the binary into the run dir, so a rebuild in the work tree during
    the run (other developers share it) cannot change what is measured."""
    if not os.path.isfile(binary):
        raise BenchError("no app binary at %s (run make)" % binary)
    dst = os.path.join(run_dir, "reqstats")
    shutil.copy2(binary, dst)
    return dst


# ---- the stack ---------------------------------------------------------------

CEILING_CONF = (
    "# bench: the ceiling, nginx answering by itself (no upstream).\n"
    "location = /ceiling { default_type application/json; "
    "return 200 '{\"path\":\"/ceiling\"}\\n'; }\n"
    "location ^~ /ceiling/ { default_type application/json; "
    "return 200 '{\"path\":\"/ceiling/\"}\\n'; }\n"
)


def start_stack(run_dir, binary, app_env, nginx_workers, keepalive, extra_conf=None,
                fcgi="unix", redis_aof=False):
    kwargs = {"binary": binary, "app_env": app_env, "extra_nginx_conf": extra_conf,
              "fcgi": fcgi, "persist": bool(redis_aof)}
    if nginx_workers is not None:
        kwargs["nginx_workers"] = nginx_workers
    if keepalive is not None:
        kwargs["nginx_keepalive"] = keepalive
    st = stackmod.Stack(run_dir, **kwargs)
    try:
        st.start()
    except Exception as e:
        raise BenchError("the stack did not start: %s (logs in %s)" % (e, st.logs))
    return st


def nginx_conf_facts(st):
    """Effective nginx settings and the access log's flush time, read from
    the rendered configuration (not assumed from the template)."""
    conf = os.path.join(st.run_dir, "nginx", "nginx.conf")
    with open(conf) as f:
        text = f.read()
    facts = {"worker_processes": None, "keepalive": None, "log_flush_s": 0.0,
             "log_buffered": False}
    m = re.search(r"^\s*worker_processes\s+(\S+);", text, re.M)
    if m:
        facts["worker_processes"] = m.group(1)
    m = re.search(r"upstream\s+reqstats_app\s*\{[^}]*?\bkeepalive\s+(\d+);", text, re.S)
    if m:
        facts["keepalive"] = int(m.group(1))
    else:
        facts["keepalive"] = "off"
    m = re.search(r"^\s*access_log\s+[^;]*;", text, re.M)
    if m:
        line = m.group(0)
        facts["log_buffered"] = "buffer=" in line
        fm = re.search(r"flush=(\d+)(ms|s|m)?", line)
        if fm:
            unit = {"ms": 0.001, "s": 1.0, "m": 60.0, None: 1.0}[fm.group(2)]
            facts["log_flush_s"] = int(fm.group(1)) * unit
        elif facts["log_buffered"]:
            # Buffered without flush=: written when the buffer fills or at
            # exit only; a run could then not be counted until the end.
            facts["log_flush_s"] = None
    return facts


def nginx_worker_pids(st):
    return st.children(st.nginx.pid) if st.nginx else []


def app_pids(st):
    """{'master': pid, 'workers': [...], 'runner': [...]}"""
    out = {"master": st.app.pid, "workers": [], "runner": []}
    for pid in st.children():
        role = st.role_of(pid)
        if role == "worker":
            out["workers"].append(pid)
        elif role == "runner":
            out["runner"].append(pid)
    return out


def redis_int(st, key):
    v = st.redis_cmd("GET", key)
    return int(v) if v is not None else 0


def redis_info(st, section):
    text = st.redis_cmd("INFO", section)
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k.strip()] = v.strip()
    return out


# ---- wrk -----------------------------------------------------------------------

def wrk(url, conns, duration, threads=2, script="static.lua", tag=None, env=None,
        timeout_s=None, latency=True):
    """Run wrk once; returns its summary (requests, rps, latency in ms, errors).

    Every script of this directory prints one 'BENCH-JSON {...}' line from
    done(); that is what is read, not wrk's human table (kept in 'raw').
    """
    threads = max(1, min(threads, conns))
    cmd = ["wrk", "-t%d" % threads, "-c%d" % conns, "-d%ds" % duration]
    if latency:
        cmd.append("--latency")
    if script:
        cmd += ["-s", os.path.join(BENCH_DIR, script)]
    if tag:
        cmd += ["-H", "User-Agent: %s" % tag]
    cmd.append(url)
    penv = dict(os.environ)
    penv["BENCH_WRK_THREADS"] = str(threads)
    penv.update(env or {})
    t_before = os.times()
    t0 = time.monotonic()
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=penv,
                           timeout=timeout_s or duration + 60)
    except subprocess.TimeoutExpired:
        raise BenchError("wrk did not finish within %s s: %s"
                         % (timeout_s or duration + 60, " ".join(cmd)))
    wall = time.monotonic() - t0
    t_after = os.times()
    if p.returncode != 0:
        raise BenchError("wrk exited with %d: %s\n%s" % (p.returncode, " ".join(cmd),
                                                           p.stderr.strip()))
    m = re.search(r"^BENCH-JSON (\{.*\})\s*$", p.stdout, re.M)
    if not m:
        raise BenchError("wrk printed no BENCH-JSON line (script %s):\n%s"
                         % (script, p.stdout + p.stderr))
    s = json.loads(m.group(1))
    dur = s["duration_us"] / 1e6
    lat = s["latency_us"]
    res = {
        "url": url, "connections": conns, "threads": threads, "duration_s": round(dur, 3),
        "tag": tag, "requests": s["requests"],
        "rps": round(s["requests"] / dur, 1) if dur > 0 else 0.0,
        "latency_ms": {k: round(v / 1000.0, 3) for k, v in lat.items()},
        "errors": s["errors"],
        "wrk_cpu_s": round((t_after.children_user - t_before.children_user) +
                           (t_after.children_system - t_before.children_system), 3),
        "wall_s": round(wall, 3),
        "raw": p.stdout.strip(),
    }
    return res


def wrk_errors(res):
    e = res["errors"]
    return e["connect"] + e["read"] + e["write"] + e["status"] + e["timeout"]


# ---- nginx's access log ------------------------------------------------------

# The reqstats log_format: time id addr "METHOD URI PROTO" status bytes
# request_time upstream_response_time "user agent". Parsed from the quoted
# request on, so a change in the leading fields does not break it.
LOG_LINE = re.compile(
    rb'"(?P<method>[A-Z]+) (?P<uri>\S+) [^"]*" (?P<status>\d{3}) \S+ \S+ '
    rb'(?P<upstream>\S+) "(?P<ua>[^"]*)"\s*$')


class AccessLog:
    """Counts the lines nginx wrote between two offsets of its access log."""

    def __init__(self, path, flush_s):
        self.path = path
        self.flush_s = flush_s

    def size(self):
        try:
            return os.path.getsize(self.path)
        except OSError:
            return 0

    def settle(self, already_waited=0.0):
        """Wait until everything logged so far has reached the file: nginx
        writes a buffered log at most flush_s after a line is logged."""
        if self.flush_s is None:
            raise BenchError("nginx's access_log is buffered without flush=: runs cannot "
                             "be counted from it")
        rest = self.flush_s + 0.3 - already_waited if self.flush_s > 0 else 0.05
        if rest > 0:
            time.sleep(rest)
        # The file must have stopped growing (nothing still in flight).
        prev = self.size()
        for _ in range(50):
            time.sleep(0.1)
            cur = self.size()
            if cur == prev:
                return cur
            prev = cur
        return prev

    def tally(self, start, end, tag=None):
        """Lines in [start, end) of the log, optionally only those with
        User-Agent == tag. Returns counts: lines, api (GET/HEAD /api/...),
        api_upstream (of those, passed upstream: upstream time not '-'),
        upstream (any path passed upstream), statuses, foreign (other tags),
        unparsed."""
        t = {"lines": 0, "api": 0, "api_upstream": 0, "upstream": 0,
             "status": collections.Counter(), "api_499": 0, "api_499_not_upstream": 0,
             "foreign": 0, "unparsed": 0}
        btag = tag.encode() if tag else None
        with open(self.path, "rb") as f:
            f.seek(start)
            data = f.read(max(0, end - start))
        for line in data.splitlines():
            if not line:
                continue
            m = LOG_LINE.search(line)
            if not m:
                t["unparsed"] += 1
                continue
            if btag is not None and m.group("ua") != btag:
                t["foreign"] += 1
                continue
            t["lines"] += 1
            status = int(m.group("status"))
            t["status"][status] += 1
            passed = m.group("upstream") != b"-"
            if passed:
                t["upstream"] += 1
            if m.group("method") in (b"GET", b"HEAD") and m.group("uri").startswith(b"/api/"):
                t["api"] += 1
                if passed:
                    t["api_upstream"] += 1
                if status == 499:
                    t["api_499"] += 1
                    if not passed:
                        t["api_499_not_upstream"] += 1
        t["status"] = {str(k): v for k, v in sorted(t["status"].items())}
        return t


def stable_total(st, quiet=0.15, patience=3.0):
    """reqstats:total once it has stopped moving for `quiet` seconds (hits of
    earlier requests, e.g. control requests, may still be in a worker's
    buffer for up to FLUSH_INTERVAL_MS)."""
    deadline = time.monotonic() + patience
    cur = redis_int(st, K_TOTAL)
    while True:
        time.sleep(quiet)
        nxt = redis_int(st, K_TOTAL)
        if nxt == cur or time.monotonic() > deadline:
            return nxt
        cur = nxt


def wait_total(st, before, expected, first_wait=0.2, patience=3.0):
    """Redis's total growth first_wait seconds after the load stopped, and,
    when that differs from expected, where it settles within patience
    seconds (tells a late write from a lost one)."""
    time.sleep(first_wait)
    at_first = redis_int(st, K_TOTAL) - before
    res = {"growth": at_first, "after_s": first_wait, "settled": at_first,
           "settled_after_s": first_wait}
    if at_first == expected:
        return res
    t0 = time.monotonic()
    last = at_first
    while time.monotonic() - t0 < patience:
        time.sleep(0.1)
        cur = redis_int(st, K_TOTAL) - before
        if cur != last:
            last = cur
            res["settled_after_s"] = round(first_wait + time.monotonic() - t0, 2)
        if cur == expected:
            break
    res["settled"] = last
    return res


# ---- /proc -----------------------------------------------------------------------

def proc_cpu_s(pid):
    """utime + stime of a process in seconds, or None if it is gone."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return (int(rest[11]) + int(rest[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return None


def machine_cpu():
    """(busy, total) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)
    total = sum(vals[:8])
    return total - idle, total


class CpuMeter:
    """CPU seconds per group of processes over a span, and the machine's
    busy time that none of them (nor wrk) accounts for: the other load."""

    def __init__(self, groups):
        self.groups = groups  # name -> list of pids

    def start(self):
        self.t0 = {g: {p: proc_cpu_s(p) for p in pids} for g, pids in self.groups.items()}
        self.m0 = machine_cpu()
        self.w0 = time.monotonic()

    def stop(self, wrk_cpu_s=0.0):
        out = {}
        per_pid = {}
        for g, pids in self.groups.items():
            s = 0.0
            for p in pids:
                a, b = self.t0[g].get(p), proc_cpu_s(p)
                if a is not None and b is not None:
                    s += b - a
                    per_pid[p] = round(b - a, 3)
            out[g] = round(s, 3)
        out["wrk"] = round(wrk_cpu_s, 3)
        busy = (machine_cpu()[0] - self.m0[0]) / CLK_TCK
        wall = time.monotonic() - self.w0
        ncpu = os.cpu_count() or 1
        ours = sum(out.values())
        out["machine_busy_s"] = round(busy, 3)
        out["others_s"] = round(max(0.0, busy - ours), 3)
        out["wall_s"] = round(wall, 3)
        out["others_share"] = round(max(0.0, busy - ours) / (wall * ncpu), 3) if wall else 0
        # Each app worker's CPU seconds, busiest first: how evenly the kept
        # FastCGI connections (and so the load) spread over the workers.
        out["app_worker_split"] = sorted((per_pid.get(p, 0.0)
                                          for p in self.groups.get("app_workers", [])),
                                         reverse=True)
        return out


def proc_rss_kib(pid):
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def proc_fds(pid):
    """(count, {kind: count}) of a process's open fds, or (None, {})."""
    targets = stackmod.fd_targets(pid)
    if targets is None:
        return None, {}
    kinds = collections.Counter()
    for target in targets.values():
        if target is None:
            continue
        if target.startswith("socket:"):
            kinds["socket"] += 1
        elif target.startswith("anon_inode:"):
            kinds[target[len("anon_inode:"):].strip("[]")] += 1
        elif target.startswith("pipe:"):
            kinds["pipe"] += 1
        else:
            kinds["file"] += 1
    return len(targets), dict(sorted(kinds.items()))


def fastcgi_fds(worker_pids, sock_path, nginx_pids):
    """Per worker: its FastCGI connections and the dead ones among them
    (stack.fastcgi_connections), and its own fds (everything else: listen
    socket, epoll, Redis, files)."""
    conns = stackmod.fastcgi_connections(worker_pids, sock_path, nginx_pids)
    out = {}
    for pid in worker_pids:
        total, kinds = proc_fds(pid)
        c = conns[pid]
        out[pid] = {"fds": total, "kinds": kinds, "conns": c["conns"],
                    "own": None if total is None else total - c["conns"], "dead": c["dead"]}
    return out


def median(vals):
    vals = sorted(v for v in vals if v is not None)
    if not vals:
        return None
    n = len(vals)
    return vals[n // 2] if n % 2 else (vals[n // 2 - 1] + vals[n // 2]) / 2.0
