#!/usr/bin/env python3
"""stack.py -- start the real reqstats stack natively: redis-server, the app, nginx.

One launcher for every native use, so they cannot drift apart:

  * `make run` runs it as a program (foreground; SIGINT/SIGTERM stops all);
  * the integration tests import it and start a throwaway stack on free
    loopback ports in a temporary directory;
  * the benchmark imports it with its own ports and settings.

All state lives under one run directory: redis data, logs, the FastCGI
socket, pid files and the rendered nginx config. Python standard library only.
"""

import argparse
import os
import re
import shutil
import signal
import stat
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_BIN = os.path.join(ROOT, "build", "reqstats")

# What makes a log line a failure for the test suite: sanitizer reports and
# nginx's most severe levels.
BAD_LOG = re.compile(
    r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:|"
    r"UndefinedBehaviorSanitizer|\[alert\]|\[emerg\]"
)


def stop_process(proc, sig=signal.SIGTERM, timeout=10):
    """Signal a process this suite started (by its PID) and wait; SIGKILL
    after timeout. Returns its exit code (None for no process)."""
    if proc is None or proc.poll() is not None:
        return None if proc is None else proc.returncode
    proc.send_signal(sig)
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        return proc.returncode


def free_port():
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_until(cond, timeout, what, interval=0.05):
    """Poll cond() until it returns something true (returned) or timeout
    seconds pass (RuntimeError)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = cond()
        if value:
            return value
        time.sleep(interval)
    raise RuntimeError("timed out after %.1f s waiting for %s" % (timeout, what))


# ---- sockets, for inspecting connections ------------------------------------

def fd_targets(pid):
    """{fd: what /proc/<pid>/fd/<fd> links to} of a process (None for an
    fd closed while being read), or None when the process is gone."""
    d = "/proc/%d/fd" % pid
    try:
        names = os.listdir(d)
    except OSError:
        return None
    out = {}
    for n in names:
        try:
            out[int(n)] = os.readlink(os.path.join(d, n))
        except OSError:
            out[int(n)] = None
    return out


def socket_inodes(pid):
    """{fd: inode} of a process's sockets."""
    return {fd: int(t[8:-1]) for fd, t in (fd_targets(pid) or {}).items()
            if t is not None and t.startswith("socket:[")}


def unix_peers():
    """{inode: peer inode} of every connected unix stream socket (from `ss -xn`),
    or None when ss is not available."""
    if shutil.which("ss") is None:
        return None
    try:
        p = subprocess.run(["ss", "-xn"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return None
    peers = {}
    for line in p.stdout.splitlines()[1:]:
        f = line.split()
        # Netid State Recv-Q Send-Q Local Port Peer Port (a local path may be
        # absent: then Local is '*').
        if len(f) >= 8 and f[0] == "u_str":
            try:
                peers[int(f[-3])] = int(f[-1])
            except ValueError:
                continue
    return peers


def unix_connected_inodes():
    """Inodes of connected (state 03) unix sockets, with their bound path
    (an accepted socket shows its listener's path), from /proc/net/unix."""
    out = {}
    try:
        with open("/proc/net/unix") as f:
            next(f)
            for line in f:
                fld = line.split()
                if len(fld) >= 7 and fld[5] == "03":
                    out[int(fld[6])] = fld[7] if len(fld) > 7 else ""
    except OSError:
        pass
    return out


def fastcgi_connections(worker_pids, sock_path, nginx_pids):
    """Per worker: how many FastCGI connections (unix sockets accepted on
    sock_path) it holds, and how many of them nginx no longer holds (the
    peer socket is open in none of nginx_pids: nginx closed it and the
    worker has not; a leak if it lasts). 'dead' is None when `ss` is not
    available to tell."""
    connected = unix_connected_inodes()
    peers = unix_peers()
    nginx_inodes = set()
    for p in nginx_pids:
        nginx_inodes.update(socket_inodes(p).values())
    out = {}
    for pid in worker_pids:
        conns = [ino for ino in socket_inodes(pid).values() if connected.get(ino) == sock_path]
        dead = None if peers is None else sum(1 for ino in conns
                                               if peers.get(ino) not in nginx_inodes)
        out[pid] = {"conns": len(conns), "dead": dead}
    return out


class Stack:
    """redis-server + reqstats + nginx under run_dir.

    Each process gets its own session, so a terminal's Ctrl-C reaches only
    the caller, which stops them in order: nginx, then the app (which writes
    its held hits to Redis), then Redis.

    app_env: extra environment for the app (configuration variables).
    persist: Redis append-only persistence (on for `make run`).

    nginx also listens on the unix socket http.sock, and the app's test runs
    go through it (TEST_TARGET_SOCKET), as in docker-compose.yml; an app_env
    with TEST_TARGET_SOCKET="" sends them over TCP to TEST_TARGET_URL.

    redis_cluster: run on a Redis Cluster instead (docs/API.md section 7):
    a cluster.LocalCluster, or a REDIS_CLUSTER seed string for a cluster
    started elsewhere. No redis-server is started or stopped then; the app
    gets REDIS_CLUSTER, and redis_cmd() routes by key (LocalCluster only).
    """

    def __init__(self, run_dir, http_port=None, redis_port=None, binary=None,
                 app_env=None, nginx_workers=1, nginx_keepalive=64, persist=False,
                 foreground=False, extra_nginx_conf=None, fcgi="unix",
                 redis_password=None, redis_cluster=None):
        self.run_dir = os.path.abspath(run_dir)
        self.http_port = http_port or free_port()
        self.redis_port = redis_port or free_port()
        self.binary = os.path.abspath(binary or DEFAULT_BIN)
        self.app_env = dict(app_env or {})
        self.nginx_workers = nginx_workers
        self.nginx_keepalive = nginx_keepalive
        self.persist = persist
        self.foreground = foreground
        self.extra_nginx_conf = extra_nginx_conf
        self.logs = os.path.join(self.run_dir, "logs")
        self.sock = os.path.join(self.run_dir, "app.sock")
        self.http_sock = os.path.join(self.run_dir, "http.sock")
        # FastCGI between nginx and the app: a unix socket (the default and
        # the faster), or TCP on loopback (for comparison).
        self.fcgi = fcgi
        self.fcgi_port = free_port() if fcgi == "tcp" else None
        self.redis_password = redis_password
        self.redis_cluster = redis_cluster
        if redis_cluster is not None and redis_password is None:
            self.redis_password = getattr(redis_cluster, "password", None)
        self.redis = self.app = self.nginx = None
        self.app_log = os.path.join(self.logs, "app.log")
        self.access_log = os.path.join(self.logs, "access.log")
        self.nginx_error_log = os.path.join(self.logs, "nginx-error.log")
        self.redis_log = os.path.join(self.logs, "redis.log")
        self._files = []

    @property
    def base_url(self):
        return "http://127.0.0.1:%d" % self.http_port

    # ---- processes --------------------------------------------------------

    def _log(self, path):
        f = open(path, "ab")
        self._files.append(f)
        return f

    def start(self):
        os.makedirs(self.logs, exist_ok=True)
        for what, port in (("HTTP_PORT", self.http_port), ("REDIS_PORT", self.redis_port)):
            if port_open(port) and not (what == "REDIS_PORT" and self.redis_cluster):
                raise RuntimeError("%s %d is already in use" % (what, port))
        try:
            if self.redis_cluster is None:
                self.start_redis()
            self.start_app()
            self.start_nginx()
            self.wait_ready()
        except Exception:
            self.stop()
            raise
        return self

    def start_redis(self):
        data = os.path.join(self.run_dir, "redis")
        os.makedirs(data, exist_ok=True)
        cmd = ["redis-server", "--port", str(self.redis_port), "--bind", "127.0.0.1",
               "--dir", data, "--save", "", "--daemonize", "no",
               "--appendonly", "yes" if self.persist else "no",
               "--appendfsync", "everysec", "--logfile", self.redis_log,
               "--pidfile", os.path.join(self.run_dir, "redis.pid")]
        if self.redis_password:
            cmd += ["--requirepass", self.redis_password]
        self.redis = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                      start_new_session=True)
        # A large append-only file (make run keeps one) takes a while to load.
        wait_until(lambda: self._redis_ping(), 120 if self.persist else 10,
                   "redis-server on port %d" % self.redis_port)

    def _redis_ping(self):
        if self.redis.poll() is not None:
            raise RuntimeError("redis-server exited with %s; see %s"
                               % (self.redis.returncode, self.redis_log))
        try:
            return self.redis_cmd("PING") == "PONG"
        except OSError:
            return False
        except RuntimeError as e:
            if str(e).startswith("LOADING"):
                return False  # still reading its append-only file
            raise

    def app_environment(self):
        env = dict(os.environ)
        env.update({
            "FCGI_LISTEN": self.fcgi_address(),
            "REDIS_HOST": "127.0.0.1",
            "REDIS_PORT": str(self.redis_port),
            "TEST_TARGET_URL": self.base_url,
            "TEST_TARGET_SOCKET": self.http_sock,
        })
        if self.redis_password:
            env["REDIS_PASSWORD"] = self.redis_password
        if self.redis_cluster is not None:
            env["REDIS_CLUSTER"] = getattr(self.redis_cluster, "seeds", self.redis_cluster)
        env.update(self.app_env)
        # Sanitizer builds: report everything, fail loudly, no leak noise
        # from libraries beyond our control is expected.
        env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        return env

    def fcgi_address(self):
        if self.fcgi == "tcp":
            return "127.0.0.1:%d" % self.fcgi_port
        return "unix:" + self.sock

    def start_app(self):
        if not os.path.exists(self.binary):
            raise RuntimeError("no app binary at %s (run make)" % self.binary)
        out = None if self.foreground else self._log(self.app_log)
        self.app = subprocess.Popen([self.binary], env=self.app_environment(),
                                    stdout=out, stderr=out, start_new_session=True)
        wait_until(lambda: self._app_up(), 15, "the app's socket %s" % self.sock)

    def _app_up(self):
        if self.app.poll() is not None:
            raise RuntimeError("the app exited with %s; see %s" % (self.app.returncode,
                                                                   self.app_log))
        if self.fcgi == "tcp":
            return port_open(self.fcgi_port)
        return os.path.exists(self.sock)

    def render_nginx(self):
        prefix = os.path.join(self.run_dir, "nginx")
        os.makedirs(prefix, exist_ok=True)
        extra_dir = os.path.join(prefix, "conf.d")
        os.makedirs(extra_dir, exist_ok=True)
        for name in os.listdir(extra_dir):
            os.unlink(os.path.join(extra_dir, name))
        if self.extra_nginx_conf:
            with open(os.path.join(extra_dir, "extra.conf"), "w") as f:
                f.write(self.extra_nginx_conf)
        env = dict(os.environ)
        env.update({
            "NGINX_LISTEN": "127.0.0.1:%d" % self.http_port,
            "NGINX_LISTEN_UNIX": self.http_sock,
            "NGINX_UPSTREAM": self.fcgi_address(),
            "NGINX_PREFIX": prefix,
            "NGINX_ACCESS_LOG": self.access_log,
            "NGINX_ERROR_LOG": self.nginx_error_log,
            "NGINX_WORKERS": str(self.nginx_workers),
            "NGINX_KEEPALIVE": str(self.nginx_keepalive),
            "NGINX_EXTRA_DIR": extra_dir,
        })
        if os.geteuid() == 0:
            env["NGINX_USER"] = "root"
        conf = os.path.join(prefix, "nginx.conf")
        subprocess.run([os.path.join(ROOT, "nginx", "render"), conf], env=env, check=True)
        return prefix, conf

    def start_nginx(self):
        prefix, conf = self.render_nginx()
        # nginx removes its unix socket only when it exits cleanly; one left
        # by a killed nginx would make bind() fail.
        if os.path.exists(self.http_sock) and stat.S_ISSOCK(os.lstat(self.http_sock).st_mode):
            os.unlink(self.http_sock)
        subprocess.run(["nginx", "-t", "-q", "-p", prefix, "-c", conf], check=True,
                       stdout=subprocess.DEVNULL, stderr=self._log(self.nginx_error_log))
        self.nginx = subprocess.Popen(["nginx", "-p", prefix, "-c", conf],
                                      stdout=subprocess.DEVNULL,
                                      stderr=self._log(self.nginx_error_log),
                                      start_new_session=True)
        wait_until(lambda: self._nginx_up(), 10, "nginx on port %d" % self.http_port)

    def _nginx_up(self):
        if self.nginx.poll() is not None:
            raise RuntimeError("nginx exited with %s; see %s" % (self.nginx.returncode,
                                                                 self.nginx_error_log))
        return port_open(self.http_port)

    def wait_ready(self, timeout=15):
        """Until a request through nginx reaches a worker: any answer but
        nginx's 502/504 (a 503 is the app's own, e.g. Redis refusing AUTH)."""
        def ready():
            try:
                req = urllib.request.Request(self.base_url + "/stats/?limit=1", method="HEAD")
                with urllib.request.urlopen(req, timeout=2) as r:
                    return r.status == 200
            except urllib.error.HTTPError as e:
                return e.code not in (502, 504)
            except OSError:
                return False
        wait_until(ready, timeout, "the stack to answer on port %d" % self.http_port, 0.1)


    def stop_app(self, timeout=20):
        code = stop_process(self.app, signal.SIGTERM, timeout)
        return code

    def stop_redis(self):
        """Stop Redis the way an operator does: SHUTDOWN writes the AOF.
        (A cluster is its owner's to stop.)"""
        return stop_process(self.redis, signal.SIGTERM, 10)

    def stop(self):
        stop_process(self.nginx, signal.SIGQUIT, 10)
        self.stop_app()
        self.stop_redis()
        for f in self._files:
            f.close()
        self._files = []

    def restart_redis(self):
        self.stop_redis()
        self.start_redis()

    # ---- inspection ---------------------------------------------------------

    def children(self, pid=None):
        """PIDs of the app master's children (workers and runner)."""
        pid = pid or self.app.pid
        try:
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                return [int(p) for p in f.read().split()]
        except OSError:
            return []

    def fastcgi_connections(self):
        """fastcgi_connections() of this stack's app workers."""
        return fastcgi_connections(self.children(), self.sock,
                                   [self.nginx.pid] + self.children(self.nginx.pid))

    def role_of(self, pid):
        """'worker' or 'runner', from the app log line that announced pid."""
        with open(self.app_log, "rb") as f:
            for line in f.read().decode("utf-8", "replace").splitlines():
                m = re.search(r" (worker|runner) \d+ started as pid (\d+)$", line)
                if m and int(m.group(2)) == pid:
                    return m.group(1)
        return None

    def workers(self):
        return [p for p in self.children() if self.role_of(p) == "worker"]

    def bad_log_lines(self):
        """Sanitizer reports and nginx [alert]/[emerg] lines in any log."""
        bad = []
        for path in (self.app_log, self.nginx_error_log, self.redis_log):
            if not os.path.exists(path):
                continue
            with open(path, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    if BAD_LOG.search(line):
                        bad.append("%s: %s" % (os.path.basename(path), line))
        return bad

    def redis_cmd(self, *args):
        """One Redis command over a raw RESP connection; returns the decoded reply."""
        if self.redis_cluster is not None:
            if not hasattr(self.redis_cluster, "call"):
                raise RuntimeError("redis_cmd: the cluster was started elsewhere")
            return self.redis_cluster.call(*args)
        with socket.create_connection(("127.0.0.1", self.redis_port), timeout=5) as s:
            f = s.makefile("rb")
            if self.redis_password:
                s.sendall(_resp("AUTH", self.redis_password))
                _read_resp(f)
            s.sendall(_resp(*args))
            return _read_resp(f)


def _resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def _read_resp(f):
    line = f.readline()
    if not line:
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode("utf-8", "surrogateescape")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [_read_resp(f) for _ in range(n)]
    raise RuntimeError("bad RESP line %r" % line)


def main():
    ap = argparse.ArgumentParser(description="Run redis-server, reqstats and nginx in the "
                                 "foreground (make run).")
    ap.add_argument("--bin", default=DEFAULT_BIN)
    ap.add_argument("--cluster", action="store_true",
                    help="a local Redis Cluster of 6 redis-server on REDIS_PORT..REDIS_PORT+5 "
                    "instead of one redis-server (make run-cluster)")
    args = ap.parse_args()
    run_dir = os.environ.get("RUN_DIR", "./run")
    http_port = int(os.environ.get("HTTP_PORT", "5000"))
    redis_port = int(os.environ.get("REDIS_PORT", "6379"))
    # make run with REDIS_CLUSTER: the app on that cluster, no Redis of ours.
    redis_cluster = os.environ.get("REDIS_CLUSTER") or None
    local = None
    if args.cluster:
        import cluster  # tests/cluster.py
        local = cluster.LocalCluster(os.path.join(run_dir, "cluster"), base_port=redis_port,
                                     password=os.environ.get("REDIS_PASSWORD") or None,
                                     node_timeout_ms=5000)
        redis_cluster = local
    stack = Stack(run_dir, http_port=http_port, redis_port=redis_port, binary=args.bin,
                  persist=True, foreground=True, redis_cluster=redis_cluster)
    stopping = []

    def on_signal(sig, frame):
        stopping.append(sig)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        if local is not None:
            print("make run: starting a Redis Cluster on ports %d..%d (state in %s)"
                  % (redis_port, redis_port + 5, local.run_dir), file=sys.stderr, flush=True)
            local.start(timeout=120)
            for s in local.shards():
                print("make run: slots %s on master %d, replicas %s"
                      % (" ".join("%d-%d" % r for r in s["slots"]), s["master"], s["replicas"]),
                      file=sys.stderr, flush=True)
        stack.start()
    except Exception as e:
        print("make run: %s" % e, file=sys.stderr)
        if local is not None:
            local.stop()
        return 1
    print("reqstats is up: %s/ (dashboard), %s/stats/  (state in %s, access log %s; "
          "Ctrl-C stops)" % (stack.base_url, stack.base_url, stack.run_dir, stack.access_log),
          file=sys.stderr, flush=True)
    while not stopping:
        for name, proc in (("redis-server", stack.redis), ("reqstats", stack.app),
                           ("nginx", stack.nginx)):
            if proc is not None and proc.poll() is not None:
                print("make run: %s exited with %s; stopping" % (name, proc.returncode),
                      file=sys.stderr)
                stopping.append(0)
        time.sleep(0.5)
    print("make run: stopping", file=sys.stderr, flush=True)
    stack.stop()
    if local is not None:
        local.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
