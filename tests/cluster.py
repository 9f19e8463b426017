#!/usr/bin/env python3
"""cluster.py -- a throwaway Redis Cluster of real redis-server processes on loopback.

LocalCluster starts 6 redis-server (cluster-enabled) on ports base..base+5
(cluster bus on +10000), joins them with `redis-cli --cluster create
--cluster-replicas 1` (3 masters, 3 replicas; or 3 masters alone with
replicas=0, as the benchmark's routing figure uses) and waits until every node says
`cluster_state:ok` and every node sees the same slot map. It is what the
integration tests, `make run-cluster` (tests/stack.py) and the benchmark use,
so they share one way of starting a cluster. Python standard library only.

It also drives the faults the tests need, each waiting (with a deadline) until
the cluster has settled again: a planned failover, a crashed master, a
restarted node, a slot migration, and an outage of a whole slot range
(CLUSTERDOWN). The topology is always read back from the nodes (`CLUSTER
SHARDS`, `ROLE`): after `--cluster create` replicas are not paired with
masters in port order, and after a failover the roles are swapped.

All state (nodes.conf, append-only files, logs, pid files) lives under one
directory. A cluster whose nodes.conf files all exist already is restarted
from them instead of created again (make run-cluster keeps its counts).

Timing: cluster-node-timeout is small (2000 ms by default) so a crashed master
is replaced within a few seconds; on a machine starved of CPU for longer than
that a node can be voted out spuriously, so do not go lower.
"""

import os
import random
import signal
import socket
import subprocess
import time

from stack import _read_resp, _resp, wait_until

MASTERS = 3
NODES = 6  # MASTERS with one replica each: the default layout
SLOTS = 16384
BUS_OFFSET = 10000


# ---- key slots (the cluster's CRC16, hash tags) --------------------------------

def _crc16_table():
    table = []
    for i in range(256):
        crc = i << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def crc16(data):
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFF00) ^ _CRC16[((crc >> 8) ^ b) & 0xFF]
    return crc


def key_slot(key):
    """The cluster slot of key (str or bytes): CRC16 of the hash tag if the
    key has a non-empty {...}, else of the whole key, mod 16384."""
    k = key.encode() if isinstance(key, str) else key
    s = k.find(b"{")
    if s >= 0:
        e = k.find(b"}", s + 1)
        if e > s + 1:
            k = k[s + 1:e]
    return crc16(k) % SLOTS


# ---- the app's shard layout (docs/API.md section 7) ------------------------------

FNV_OFFSET = 14695981039346656037
FNV_PRIME = 1099511628211


def shard_of(path, n):
    """The shard of a canonical path (str or bytes) among n: FNV-1a 64 of
    its bytes, mod n."""
    h = FNV_OFFSET
    for b in path.encode() if isinstance(path, str) else path:
        h = ((h ^ b) * FNV_PRIME) & 0xFFFFFFFFFFFFFFFF
    return h % n


def target_slot(i, n):
    """The slot shard i of n is placed on: the middle of the i-th of n
    equal parts of the slot space."""
    return (2 * i + 1) * SLOTS // (2 * n)


def shard_tag(i, n):
    """Shard i's hash tag as shards.c finds it: "<i>.<k>" for the smallest
    k whose slot is target_slot(i, n)."""
    k = 0
    while crc16(("%d.%d" % (i, k)).encode()) % SLOTS != target_slot(i, n):
        k += 1
    return "%d.%d" % (i, k)


# ---- ports ---------------------------------------------------------------------

def _bindable(port):
    """Whether a listener could bind port now (SO_REUSEADDR like
    redis-server: connections of a stopped node in TIME_WAIT do not count)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_base(count=NODES, low=10000):
    """A base port where base..base+count-1 and their bus ports (+10000) are
    all free, picked at random so parallel suites rarely collide. Bus ports
    stay below the kernel's ephemeral range when it leaves room, so no
    outgoing connection can take one between this check and the bind."""
    high = _ephemeral_low()
    if high - BUS_OFFSET - count <= low + 1000:
        high = 55535
    for _ in range(200):
        base = random.randrange(low, high - BUS_OFFSET - count)
        ports = [base + i for i in range(count)]
        if all(_bindable(p) and _bindable(p + BUS_OFFSET) for p in ports):
            return base
    raise RuntimeError("no free range of %d ports (and bus ports) found" % count)


def _info(text):
    out = {}
    for line in text.splitlines():
        k, sep, v = line.partition(":")
        if sep:
            out[k.strip()] = v.strip()
    return out


class ClusterError(RuntimeError):
    pass


class LocalCluster:
    """Six redis-server in cluster mode under run_dir: 3 masters, 3 replicas.

    base_port: first client port (None: a free range); replicas: per master
    (1, or 0 for 3 masters alone: no fault that needs a replica works then);
    persist: append-only
    files (fsync every second), so a node stopped and started keeps its data;
    node_timeout_ms: cluster-node-timeout.
    """

    def __init__(self, run_dir, base_port=None, password=None, persist=True,
                 node_timeout_ms=2000, replicas=1):
        if replicas not in (0, 1):
            raise ValueError("replicas: 0 or 1 per master")
        self.run_dir = os.path.abspath(run_dir)
        self.replicas = replicas
        self.nodes = MASTERS * (1 + replicas)
        self.base_port = base_port
        self.password = password
        self.persist = persist
        self.node_timeout_ms = node_timeout_ms
        self.procs = {}       # port -> Popen of the running redis-server
        self.paused = set()   # ports stopped with SIGSTOP by outage()
        self._logs = []

    # ---- layout ------------------------------------------------------------------

    @property
    def ports(self):
        return [self.base_port + i for i in range(self.nodes)]

    @property
    def seeds(self):
        """The REDIS_CLUSTER value for the app: every node as a seed."""
        return ",".join("127.0.0.1:%d" % p for p in self.ports)

    def node_dir(self, port):
        return os.path.join(self.run_dir, "node-%d" % port)

    def log_path(self, port):
        return os.path.join(self.node_dir(port), "redis.log")

    def pid(self, port):
        p = self.procs.get(port)
        return p.pid if p is not None and p.poll() is None else None

    def alive(self):
        """Ports whose redis-server process runs (and is not paused)."""
        return [p for p in self.ports if self.pid(p) is not None and p not in self.paused]

    # ---- processes -------------------------------------------------------------------

    def start(self, timeout=60):
        """Start (or restart from their nodes.conf) every node; create the
        cluster if it is new; return once it is ok everywhere."""
        t0 = time.monotonic()
        os.makedirs(self.run_dir, exist_ok=True)
        if self.base_port is None:
            self.base_port = free_base(self.nodes)
        if self.base_port + self.nodes - 1 + BUS_OFFSET > 65535:
            raise ClusterError("base port %d: bus ports would pass 65535" % self.base_port)
        fresh = not all(os.path.exists(os.path.join(self.node_dir(p), "nodes.conf"))
                        for p in self.ports)
        try:
            for p in self.ports:
                if not _bindable(p) or not _bindable(p + BUS_OFFSET):
                    raise ClusterError("port %d or its bus port %d is in use"
                                       % (p, p + BUS_OFFSET))
            for p in self.ports:
                self._spawn(p)
            for p in self.ports:
                self._wait_ping(p, timeout)
            if fresh:
                self._create()
            self.wait_settled(timeout)
        except Exception:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - t0
        return self

    def _spawn(self, port):
        d = self.node_dir(port)
        os.makedirs(d, exist_ok=True)
        cmd = ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
               "--dir", d, "--daemonize", "no", "--save", "",
               "--logfile", self.log_path(port),
               "--pidfile", os.path.join(d, "redis.pid"),
               "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
               "--cluster-node-timeout", str(self.node_timeout_ms),
               # A replica may always take over (no data-age veto), and stays
               # with its master: the tests want a predictable topology.
               "--cluster-replica-validity-factor", "0",
               "--cluster-allow-replica-migration", "no",
               # CLUSTER SLOTS lists a replica only once its replication offset
               # left 0: the master's replication ping does it within 1 s
               # (not 10 s) of a new replica's sync.
               "--repl-ping-replica-period", "1",
               # A restarted node resyncs at once instead of after 5 s.
               "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
               # SIGTERM: write the append-only file and exit, without
               # waiting up to 10 s for replicas to catch up.
               "--shutdown-timeout", "0",
               "--appendonly", "yes" if self.persist else "no",
               "--appendfsync", "everysec"]
        if self.password:
            cmd += ["--requirepass", self.password, "--masterauth", self.password]
        self.procs[port] = subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def _wait_ping(self, port, timeout):
        def up():
            if self.pid(port) is None:
                raise ClusterError("redis-server on port %d exited; see %s"
                                   % (port, self.log_path(port)))
            try:
                return self.cmd(port, "PING") == "PONG"
            except OSError:
                return False
            except RuntimeError as e:
                if str(e).startswith("LOADING"):
                    return False
                raise
        wait_until(up, timeout, "redis-server on port %d" % port)

    def _cli(self, *args, timeout=120):
        cmd = ["redis-cli"]
        env = dict(os.environ)
        if self.password:
            # REDISCLI_AUTH keeps the password off the command line.
            env["REDISCLI_AUTH"] = self.password
        cmd += list(args)
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
        if p.returncode != 0 or "[ERR]" in p.stdout:
            raise ClusterError("%s failed (%d):\n%s%s" % (" ".join(cmd), p.returncode,
                                                        p.stdout[-2000:], p.stderr[-2000:]))
        return p.stdout

    def _create(self):
        self._cli("--cluster", "create", *["127.0.0.1:%d" % p for p in self.ports],
                  "--cluster-replicas", str(self.replicas), "--cluster-yes")

    def stop(self, timeout=10):
        """Stop every node this object started (SIGTERM, then SIGKILL), by PID."""
        for port, proc in list(self.procs.items()):
            if proc.poll() is None:
                try:
                    os.kill(proc.pid, signal.SIGCONT)  # a paused node cannot exit
                except OSError:
                    pass
                proc.terminate()
        for port, proc in list(self.procs.items()):
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # ---- commands ------------------------------------------------------------------------

    def cmd(self, port, *args, timeout=5):
        """One command to the node on port; returns the decoded reply, raises
        RuntimeError on a Redis error reply and OSError when unreachable."""
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            f = s.makefile("rb")
            if self.password:
                s.sendall(_resp("AUTH", self.password))
                _read_resp(f)
            s.sendall(_resp(*args))
            return _read_resp(f)

    def call(self, *args):
        """A command routed like a cluster client: to the master of args[1]'s
        slot (any master for a command without a key), following MOVED and
        ASK. For tests that read the app's keys."""
        masters = self.masters()
        if len(args) >= 2:
            slot = key_slot(str(args[1]))
            port = self.slot_owner(slot)
        else:
            port = masters[0]
        asking = False
        for _ in range(5):
            try:
                if asking:
                    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                        f = s.makefile("rb")
                        if self.password:
                            s.sendall(_resp("AUTH", self.password))
                            _read_resp(f)
                        s.sendall(_resp("ASKING") + _resp(*args))
                        _read_resp(f)
                        return _read_resp(f)
                return self.cmd(port, *args)
            except RuntimeError as e:
                words = str(e).split()
                if words and words[0] in ("MOVED", "ASK"):
                    port = int(words[2].rsplit(":", 1)[1])
                    asking = words[0] == "ASK"
                    continue
                raise
        raise ClusterError("too many redirects for %r" % (args,))

    def info(self, port, section):
        return _info(self.cmd(port, "INFO", section))

    def cluster_info(self, port):
        return _info(self.cmd(port, "CLUSTER", "INFO"))

    def node_id(self, port):
        return self.cmd(port, "CLUSTER", "MYID")

    def role(self, port):
        """'master' or 'slave', as the node itself says."""
        return self.cmd(port, "ROLE")[0]

    # ---- topology -------------------------------------------------------------------------

    def shards(self, port=None):
        """The shards as one live node sees them (CLUSTER SHARDS): a list of
        {"slots": [(first, last), ...], "master": port or None,
         "replicas": [port, ...], "nodes": [{"port", "id", "role", "health"}]},
        sorted by first slot. Failed nodes are listed in "nodes" but are not
        "master"/"replicas". (A replica's health stays "loading" until its
        master's replication offset leaves 0, i.e. until the first write or
        replication ping: it counts as present.)"""
        port = port or self._any_alive()
        out = []
        for shard in self.cmd(port, "CLUSTER", "SHARDS"):
            d = dict(zip(shard[0::2], shard[1::2]))
            flat = [int(x) for x in d["slots"]]
            ranges = list(zip(flat[0::2], flat[1::2]))
            nodes = []
            for n in d["nodes"]:
                nd = dict(zip(n[0::2], n[1::2]))
                nodes.append({"port": int(nd["port"]), "id": nd["id"], "role": nd["role"],
                              "health": nd["health"]})
            online = [n for n in nodes if n["health"] != "fail"]
            masters = [n["port"] for n in online if n["role"] == "master"]
            out.append({"slots": ranges, "master": masters[0] if masters else None,
                        "replicas": sorted(n["port"] for n in online if n["role"] == "replica"),
                        "nodes": nodes})
        out.sort(key=lambda s: s["slots"][0][0] if s["slots"] else SLOTS)
        return out

    def masters(self):
        """Ports of the masters that serve slots, by first slot."""
        return [s["master"] for s in self.shards() if s["slots"] and s["master"]]

    def replicas_of(self, master_port):
        for s in self.shards():
            if s["master"] == master_port:
                return s["replicas"]
        raise ClusterError("port %d is not a master" % master_port)

    def slot_owner(self, slot, port=None):
        for s in self.shards(port):
            for a, b in s["slots"]:
                if a <= slot <= b:
                    return s["master"]
        return None

    def _any_alive(self):
        for p in self.alive():
            try:
                self.cmd(p, "PING", timeout=1)
                return p
            except (OSError, RuntimeError):
                continue
        raise ClusterError("no node answers")

    def _slot_map(self, port):
        """((first, last, master port, (replica ports)), ...) from CLUSTER
        SLOTS on one node (failed replicas are not listed)."""
        return tuple(sorted((int(r[0]), int(r[1]), int(r[2][1]),
                             tuple(sorted(int(n[1]) for n in r[3:])))
                            for r in self.cmd(port, "CLUSTER", "SLOTS", timeout=2)))

    def settled(self):
        """True when every running node is reachable, says cluster_state:ok,
        sees the same slot map covering all 16384 slots, with every running
        node in it as a master or a replica, every replica's link to its
        master is up and every master serving slots is running."""
        maps = set()
        try:
            for p in self.alive():
                if self.cluster_info(p).get("cluster_state") != "ok":
                    return False
                maps.add(self._slot_map(p))
                if self.role(p) == "slave":
                    if self.info(p, "replication").get("master_link_status") != "up":
                        return False
        except (OSError, RuntimeError):
            return False
        if len(maps) != 1:
            return False
        (m,) = maps
        if sum(r[1] - r[0] + 1 for r in m) != SLOTS:
            return False
        alive = set(self.alive())
        mapped = {r[2] for r in m} | {p for r in m for p in r[3]}
        return all(r[2] in alive for r in m) and alive <= mapped

    def wait_settled(self, timeout=60):
        wait_until(self.settled, timeout, "the cluster to settle (state ok, one slot map)", 0.1)

    # ---- faults ---------------------------------------------------------------------------

    def failover(self, master_port, timeout=60):
        """A planned failover: CLUSTER FAILOVER on one of master_port's
        replicas. Waits until the roles have swapped and the cluster settled;
        returns the new master's port."""
        t0 = time.monotonic()
        replicas = self.replicas_of(master_port)
        if not replicas:
            raise ClusterError("master %d has no online replica" % master_port)
        new = replicas[0]
        self.cmd(new, "CLUSTER", "FAILOVER")
        wait_until(lambda: self._role_is(new, "master") and self._role_is(master_port, "slave"),
                   timeout, "replica %d to take over from %d" % (new, master_port), 0.05)
        self.wait_settled(timeout)
        self.last_seconds = time.monotonic() - t0
        return new

    def _role_is(self, port, role):
        try:
            return self.role(port) == role
        except (OSError, RuntimeError):
            return False

    def kill(self, port, timeout=60):
        """SIGKILL the node on port. A master's replica is promoted by the
        cluster (after cluster-node-timeout); waits until that happened and
        the cluster settled. Returns the new master's port (None when a
        replica was killed)."""
        t0 = time.monotonic()
        was_master = self.role(port) == "master"
        replicas = self.replicas_of(port) if was_master else []
        proc = self.procs[port]
        proc.kill()
        proc.wait()
        new = None
        if was_master:
            if not replicas:
                raise ClusterError("killed master %d had no replica: slots lost" % port)
            new = self._wait_promoted(port, replicas, timeout)
        self.wait_settled(timeout)
        self.last_seconds = time.monotonic() - t0
        return new

    def _wait_promoted(self, master_port, replicas, timeout):
        """Wait until one of a lost master's replicas is a master; its port."""
        def promoted():
            for r in replicas:
                if self._role_is(r, "master"):
                    return r
            return None
        wait_until(lambda: promoted() is not None, timeout,
                   "a replica of %d to be promoted" % master_port, 0.05)
        return promoted()

    def crash_unreplicated(self, master_port, meanwhile, timeout=60):
        """A crash that loses acknowledged writes: pause (SIGSTOP) the
        master's replicas and cut their replication links (CLIENT KILL TYPE
        replica: what the master writes from then on reaches no replica;
        a paused replica alone would still find it in its socket buffer),
        call meanwhile() (the caller's writes, which the master
        acknowledges), SIGKILL the master, then resume the replicas; one of
        them is promoted without those writes. Waits until it is and the
        cluster settled; returns its port."""
        t0 = time.monotonic()
        replicas = self.replicas_of(master_port)
        if not replicas:
            raise ClusterError("master %d has no replica" % master_port)
        for p in replicas:
            os.kill(self.pid(p), signal.SIGSTOP)
            self.paused.add(p)
        try:
            self.cmd(master_port, "CLIENT", "KILL", "TYPE", "replica")
            meanwhile()
        finally:
            proc = self.procs[master_port]
            proc.kill()
            proc.wait()
            for p in replicas:
                os.kill(self.pid(p), signal.SIGCONT)
                self.paused.discard(p)
        new = self._wait_promoted(master_port, replicas, timeout)
        self.wait_settled(timeout)
        self.last_seconds = time.monotonic() - t0
        return new

    def restart(self, port, timeout=60):
        """Start a stopped or killed node again from its nodes.conf (and
        append-only file). A master that was replaced rejoins as a replica of
        its successor. Waits until it answers and the cluster settled."""
        t0 = time.monotonic()
        if self.pid(port) is not None:
            raise ClusterError("node %d is running" % port)
        self._spawn(port)
        self._wait_ping(port, timeout)
        self.wait_settled(timeout)
        self.last_seconds = time.monotonic() - t0

    def reshard(self, src, dst, nslots, timeout=300):
        """Move nslots slots (with their keys) from master src to master dst
        with `redis-cli --cluster reshard`; waits until settled."""
        t0 = time.monotonic()
        self._cli("--cluster", "reshard", "127.0.0.1:%d" % src,
                  "--cluster-from", self.node_id(src), "--cluster-to", self.node_id(dst),
                  "--cluster-slots", str(nslots), "--cluster-yes", timeout=timeout)
        self.wait_settled(timeout)
        self.last_seconds = time.monotonic() - t0

    def move_slot(self, slot, dst, batch=10, timeout=120):
        """Migrate one slot to master dst the way redis-cli does (IMPORTING /
        MIGRATING, MIGRATE in batches of keys, SETSLOT NODE everywhere), for
        a test that must move the slot of a given key. Returns the number of
        keys moved."""
        t0 = time.monotonic()
        src = self.slot_owner(slot)
        if src == dst:
            return 0
        src_id, dst_id = self.node_id(src), self.node_id(dst)
        self.cmd(dst, "CLUSTER", "SETSLOT", slot, "IMPORTING", src_id)
        self.cmd(src, "CLUSTER", "SETSLOT", slot, "MIGRATING", dst_id)
        moved = 0
        while True:
            keys = self.cmd(src, "CLUSTER", "GETKEYSINSLOT", slot, batch)
            if not keys:
                break
            args = ["MIGRATE", "127.0.0.1", dst, "", 0, 10000]
            if self.password:
                args += ["AUTH", self.password]
            self.cmd(src, *(args + ["KEYS"] + keys), timeout=15)
            moved += len(keys)
        # The destination first, then the source, then every other node.
        self.cmd(dst, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.cmd(src, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        for p in self.masters():
            if p not in (src, dst):
                self.cmd(p, "CLUSTER", "SETSLOT", slot, "NODE", dst_id)
        self.wait_settled(timeout)
        self.last_seconds = time.monotonic() - t0
        return moved

    def outage(self, master_port, timeout=60):
        """Take a whole shard away: pause (SIGSTOP) master_port's replicas,
        then the master itself. No replica can take over, so once the other
        nodes mark the master failed (cluster-node-timeout) the cluster is
        down: every node answers CLUSTERDOWN. Data stays in the paused
        processes. Waits until a running node reports cluster_state:fail;
        returns the paused ports for end_outage()."""
        t0 = time.monotonic()
        paused = self.replicas_of(master_port) + [master_port]
        for p in paused:
            os.kill(self.pid(p), signal.SIGSTOP)
            self.paused.add(p)
        others = [p for p in self.alive() if p not in paused]

        def down():
            try:
                return all(self.cluster_info(p).get("cluster_state") == "fail" for p in others)
            except (OSError, RuntimeError):
                return False
        wait_until(down, timeout, "the cluster to go down", 0.05)
        self.last_seconds = time.monotonic() - t0
        return paused

    def end_outage(self, paused, timeout=60):
        """Resume the shard paused by outage(): the master first, and only
        once every node has cleared its failure flag (state ok) the replicas,
        so no replica sees a failed master and starts an election; waits
        until settled."""
        t0 = time.monotonic()
        master, replicas = paused[-1], paused[:-1]
        os.kill(self.pid(master), signal.SIGCONT)
        self.paused.discard(master)
        self.wait_settled(timeout)
        for p in replicas:
            os.kill(self.pid(p), signal.SIGCONT)
            self.paused.discard(p)
        self.wait_settled(timeout)
        self.last_seconds = time.monotonic() - t0


def main():
    """By hand: start a cluster under a temporary directory, print it, stop it."""
    import tempfile
    d = tempfile.mkdtemp(prefix="reqstats-cluster-")
    c = LocalCluster(d).start()
    try:
        print("seeds", c.seeds, "started in %.2f s" % c.start_seconds)
        for s in c.shards():
            print(s["slots"], "master", s["master"], "replicas", s["replicas"])
    finally:
        c.stop()


if __name__ == "__main__":
    main()
