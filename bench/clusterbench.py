"""clusterbench.py -- the benchmark's cluster phase (bench/run, BENCH_PHASES=cluster).

What routing over a Redis Cluster costs, measured against the standalone
stack of the same run (docs/API.md section 7). A second stack (its own
nginx and app, STATS_CACHE_MS=0) runs on a local 3-master cluster
(tests/cluster.py) beside the standalone one, once per layout of
BENCH_CLUSTER_REPLICAS (default "0,1"), each compared like for like:

  * 0: 3 masters alone against the standalone Redis alone: routing and
    sharding only;
  * 1: 3 masters with a replica each against the standalone Redis with a
    replica of its own (started for these runs): routing with replication
    on both sides. Every replica's CPU lands on the same 2 cores here, so
    comparing a replicated cluster with an unreplicated Redis would charge
    routing with the replicas' work.

On each layout:

  1. hot path: the same wrk driver as the hot phase (hotpath.lua, the same
     distinct paths, the same connection count), alternated run by run
     between the standalone stack and the cluster stack; ratio of the
     medians, target >= 0.85;
  2. counting: every cluster run's growth of the cluster-wide total (the sum
     of every shard's total key, read on the masters) against what nginx
     passed upstream (its access log), as for the standalone runs;
  3. spread: each master's share of the hits (the growth of the totals of
     the shards it serves), target within +-15 % of a third; and Redis CPU
     per hit on each node (utime + stime from /proc/<pid>/stat over the
     runs, divided by the hits its shards took), replicas included;

and on the last layout only:

  4. report: BENCH_FILL_URLS URLs with the standalone fill's paths and counts,
     written in the app's cluster layout (docs/API.md section 7: shard =
     FNV-1a(path) mod S, shard i's keys under the hash tag found for it) by
     one `redis-cli --pipe` per master; checked through the app (unique_urls,
     total, the top URL, a hit on a loaded path landing on its member);
     then /stats/?limit=100 at offset 0 and at offset 0.9 x URLs (900,000
     at 1M), with no page cache, against the standalone first page with no
     page cache either (the standalone app is restarted with
     STATS_CACHE_MS=0 if needed, and filled if the report phase did not
     run); target each <= 3 x. The deep page is compared with the model
     (count desc, shard asc, path desc) built from what was loaded;
  5. memory: used_memory growth summed over the masters and MEMORY USAGE of
     the shard sorted sets, per URL (docs/capacity.md uses them).
"""

import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import benchlib as B
import cluster as clustermod  # tests/cluster.py (benchlib puts tests/ on sys.path)
import stack as stackmod

T_CLUSTER_HOT = 0.85     # cluster hot path >= 0.85 x standalone
T_MASTER_SPREAD = 0.15   # each master within +-15 % of 1/masters of the hits
T_CLUSTER_PAGE = 3.0     # pages at offset 0 and 0.9 x URLs <= 3 x standalone first page

shard_of = clustermod.shard_of     # the app's placement, FNV-1a 64 mod n
shard_tag = clustermod.shard_tag   # shard i's hash tag


def eval_stats(text):
    """{calls, usec} of EVAL and EVALSHA from INFO commandstats."""
    out = {"calls": 0, "usec": 0}
    for line in text.splitlines():
        if line.startswith(("cmdstat_eval:", "cmdstat_evalsha:")):
            for kv in line.split(":", 1)[1].split(","):
                name, _, v = kv.partition("=")
                if name in out:
                    out[name] += int(v)
    return out


def order(model):
    """Sort [(count, shard, path bytes)] in the cluster's report order:
    count descending, then shard ascending, then path descending (byte
    order; docs/API.md section 7). Two stable sorts."""
    model.sort(key=lambda m: m[2], reverse=True)
    model.sort(key=lambda m: (-m[0], m[1]))


def layout_name(replicas):
    return ("3 masters alone" if replicas == 0 else
            "3 masters with %d replica%s each" % (replicas, "" if replicas == 1 else "s"))


class StandaloneReplica:
    """A redis-server replicating the standalone stack's Redis while the
    replicated layout is measured, so both sides of the comparison pay for
    a replica. Persistence as the cluster nodes'. A context manager: ready
    (link up, initial sync done, offsets equal) on entry, stopped on exit."""

    def __init__(self, run_dir, master_port, persist):
        self.run_dir = run_dir
        self.master_port = master_port
        self.persist = persist
        self.port = stackmod.free_port()
        self.proc = None

    @property
    def pid(self):
        return self.proc.pid

    def info(self, port):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(stackmod._resp("INFO", "replication"))
            text = stackmod._read_resp(s.makefile("rb"))
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def synced(self):
        if self.proc.poll() is not None:
            raise B.BenchError("the standalone replica exited with %s; see %s"
                               % (self.proc.returncode, self.log))
        try:
            mine, theirs = self.info(self.port), self.info(self.master_port)
        except OSError:
            return False
        return (mine.get("master_link_status") == "up" and
                mine.get("master_sync_in_progress") == "0" and
                mine.get("slave_repl_offset") == theirs.get("master_repl_offset"))

    def __enter__(self):
        os.makedirs(self.run_dir, exist_ok=True)
        self.log = os.path.join(self.run_dir, "redis.log")
        B.log("bench: cluster: a replica of the standalone Redis on port %d" % self.port)
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", self.run_dir, "--save", "", "--daemonize", "no",
             "--appendonly", "yes" if self.persist else "no", "--appendfsync", "everysec",
             "--logfile", self.log, "--replicaof", "127.0.0.1", str(self.master_port)],
            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            stackmod.wait_until(self.synced, 300, "the standalone replica to sync")
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc):
        stackmod.stop_process(self.proc)
        return False


class ClusterPhase:
    def __init__(self, bench):
        self.b = bench
        self.k = bench.k
        self.cl = self.st = None
        self.out = {}

    # ---- the cluster stack --------------------------------------------------------

    def start(self, replicas):
        k, b = self.k, self.b
        B.log("bench: cluster: starting %s" % layout_name(replicas))
        self.cl = clustermod.LocalCluster(os.path.join(b.run_dir, "cluster-r%d" % replicas),
                                          persist=bool(k.redis_aof), node_timeout_ms=5000,
                                          replicas=replicas)
        try:
            self.cl.start(timeout=120)
        except Exception as e:
            raise B.BenchError("the cluster did not start: %s" % e)
        env = dict(k.app_env, STATS_CACHE_MS="0")
        kwargs = {"binary": b.private_bin, "app_env": env, "extra_nginx_conf": B.CEILING_CONF,
                  "fcgi": k.fcgi, "redis_cluster": self.cl}
        if k.nginx_workers is not None:
            kwargs["nginx_workers"] = k.nginx_workers
        if k.keepalive is not None:
            kwargs["nginx_keepalive"] = k.keepalive
        self.st = stackmod.Stack(os.path.join(b.run_dir, "cluster-stack-r%d" % replicas),
                                 **kwargs)
        try:
            self.st.start()
        except Exception as e:
            raise B.BenchError("the cluster stack did not start: %s (logs in %s)"
                               % (e, self.st.logs))
        facts = B.nginx_conf_facts(self.st)
        self.al = B.AccessLog(self.st.access_log, facts["log_flush_s"])
        self.pids0 = B.app_pids(self.st)
        self.masters = self.cl.masters()
        self.replica_of = {r: s["master"] for s in self.cl.shards() for r in s["replicas"]}
        self.out.setdefault("layouts", {})[str(replicas)] = {
            "shards": [{"slots": s["slots"], "master": s["master"], "replicas": s["replicas"]}
                       for s in self.cl.shards()],
            "cluster_start_s": round(self.cl.start_seconds, 2)}

    def stop(self):
        if self.st is not None:
            self.st.stop()
            rc = self.st.app.returncode if self.st.app else None
            self.out["app_exit_code"] = rc
            if rc not in (0, None):
                self.b.fail("cluster: the app exited with %s on SIGTERM" % rc)
            self.st = None
        if self.cl is not None:
            self.cl.stop()
            self.cl = None

    # ---- totals per master ------------------------------------------------------------

    def total_keys(self):
        """{shard total key: master port}, found by SCAN on every master."""
        found = {}
        for port in self.masters:
            cursor = "0"
            while True:
                cursor, keys = self.cl.cmd(port, "SCAN", cursor, "MATCH", "reqstats:{*}total",
                                           "COUNT", 1000)
                for key in keys:
                    found[key] = port
                if cursor == "0":
                    break
        return found

    def totals(self):
        """{master port: sum of the totals of the shards it serves}."""
        out = {p: 0 for p in self.masters}
        for key, port in self.keys.items():
            v = self.cl.cmd(port, "GET", key)
            out[port] += int(v) if v is not None else 0
        return out

    def stable_totals(self, quiet=0.15, patience=3.0):
        deadline = time.monotonic() + patience
        cur = self.totals()
        while True:
            time.sleep(quiet)
            nxt = self.totals()
            if nxt == cur or time.monotonic() > deadline:
                return nxt
            cur = nxt

    def node_groups(self):
        g = {"nginx": B.nginx_worker_pids(self.st) + [self.st.nginx.pid],
             "app_workers": B.app_pids(self.st)["workers"]}
        for port in self.cl.ports:
            pid = self.cl.pid(port)
            if pid:
                g["node:%d" % port] = [pid]
        return g

    def counted(self, label, path, conns, duration, script, env=None, threads=None):
        """A wrk run on the cluster stack, counted like Bench.counted_wrk:
        cluster-wide total growth vs the requests nginx passed upstream."""
        k, al = self.k, self.al
        tag = "reqstats-bench/" + label
        off = al.size()
        before = self.stable_totals()
        meter = B.CpuMeter(self.node_groups())
        meter.start()
        r = B.wrk(self.st.base_url + path, conns, duration, threads or k.threads,
                  script=script, tag=tag, env=env)
        r["cpu"] = meter.stop(r["wrk_cpu_s"])
        time.sleep(0.2)
        after = self.totals()
        growth = sum(after.values()) - sum(before.values())
        end = al.settle(already_waited=0.2)
        t = al.tally(off, end, tag)
        expected = t["upstream"]
        c = {"wrk_completed": r["requests"], "nginx_lines": t["lines"],
             "nginx_upstream": expected, "nginx_499": t["status"].get("499", 0),
             "redis_growth_200ms": growth, "redis_settled": growth, "statuses": t["status"],
             "unparsed_lines": t["unparsed"], "in_flight": expected - r["requests"]}
        if growth == expected:
            c["result"] = "exact"
        else:
            deadline = time.monotonic() + k.count_patience
            settled = growth
            while time.monotonic() < deadline and settled != expected:
                time.sleep(0.1)
                after = self.totals()
                settled = sum(after.values()) - sum(before.values())
            c["redis_settled"] = settled
            c["result"] = ("late" if settled == expected else
                           "lost" if settled < expected else "extra")
            self.b.fail("%s: cluster total grew by %d within 200 ms and %d within %.1f s; "
                        "nginx passed %d upstream: %s"
                        % (label, growth, settled, k.count_patience, expected, c["result"]))
        if t["lines"] == 0:
            self.b.fail("%s: no access-log line carries the run's tag" % label)
        bad = {s: n for s, n in t["status"].items() if s not in ("200", "499")}
        if bad or B.wrk_errors(r):
            self.b.fail("%s: errors: nginx statuses %s, wrk errors %s"
                        % (label, bad or "{}", r["errors"]))
        r["count"] = c
        r["per_master"] = {str(p): after[p] - before[p] for p in self.masters}
        n = max(1, t["lines"])
        r["per_request_cpu_us"] = {g: round(v * 1e6 / n, 1) for g, v in r["cpu"].items()
                                   if isinstance(v, float) and g not in (
                                       "machine_busy_s", "others_s", "wall_s", "others_share")}
        return r

    # ---- 1-3: hot path, counting, spread, CPU per hit ---------------------------------

    def hot(self, replicas):
        """Figures 1-3 on the running cluster, against the standalone stack
        with as many replicas (docs of this module)."""
        k, b = self.k, self.b
        if replicas:
            with StandaloneReplica(os.path.join(b.run_dir, "standalone-replica"),
                                   b.st.redis_port, bool(k.redis_aof)) as rep:
                groups = dict(b.cpu_groups(), redis_replica=[rep.pid])
                self.out["hot_r1"] = self.hot_runs("r1-", groups)
        else:
            self.out["hot_r0"] = self.hot_runs("r0-", None)

    def hot_runs(self, label, sa_groups):
        k, b = self.k, self.b
        conns = 32 if 32 in k.connections else k.connections[0]
        env = {"BENCH_PATHS": str(k.paths), "BENCH_PATH_PREFIX": "/api/bench/"}
        # Shard total keys exist once every shard has been written once.
        B.log("bench: cluster: warm-up and the shards' total keys")
        self.keys = {}
        self.counted_warmup(conns, env)
        sa, cl = [], []
        ev_sa = {"calls": 0, "usec": 0}
        ev_cl = {p: {"calls": 0, "usec": 0} for p in self.masters}
        for i in range(1, k.repeat + 1):
            B.log("bench: cluster c=%d run %d/%d: standalone hot path" % (conns, i, k.repeat))
            e0 = eval_stats(b.st.redis_cmd("INFO", "commandstats"))
            sa.append(b.counted_wrk("cl-%sstandalone-r%d" % (label, i), "/api/", conns, k.duration,
                                    "hotpath.lua", env, groups=sa_groups))
            e1 = eval_stats(b.st.redis_cmd("INFO", "commandstats"))
            for f in ev_sa:
                ev_sa[f] += e1[f] - e0[f]
            B.log("bench: cluster c=%d run %d/%d: cluster hot path" % (conns, i, k.repeat))
            e0 = {p: eval_stats(self.cl.cmd(p, "INFO", "commandstats")) for p in self.masters}
            cl.append(self.counted("cl-%scluster-r%d" % (label, i), "/api/", conns, k.duration,
                                   "hotpath.lua", env))
            e1 = {p: eval_stats(self.cl.cmd(p, "INFO", "commandstats")) for p in self.masters}
            for p in self.masters:
                for f in ev_cl[p]:
                    ev_cl[p][f] += e1[p][f] - e0[p][f]
        sa_rps = B.median([r["rps"] for r in sa])
        cl_rps = B.median([r["rps"] for r in cl])
        hits = {p: sum(r["per_master"][str(p)] for r in cl) for p in self.masters}
        all_hits = sum(hits.values())
        share = {str(p): round(h / float(all_hits), 4) if all_hits else None
                 for p, h in hits.items()}
        third = 1.0 / len(self.masters)
        spread_ok = all(v is not None and abs(v - third) <= T_MASTER_SPREAD * third
                        for v in share.values())
        # CPU per hit per node: a master's own hits; a replica's, its master's.
        cpu = {}
        for port in self.cl.ports:
            secs = sum(r["cpu"].get("node:%d" % port, 0.0) for r in cl)
            master = port if port in hits else self.replica_of.get(port)
            n = hits.get(master, 0)
            cpu[str(port)] = {"role": "master" if port in hits else "replica of %s" % master,
                              "cpu_s": round(secs, 3), "hits": n,
                              "us_per_hit": round(secs * 1e6 / n, 2) if n else None}
        # Each node's CPU with no load (cluster bus, cron, replication
        # pings), to read the per-hit figures with: subtracted in "net".
        idle = self.idle_cpu(k.duration)
        for port in self.cl.ports:
            v = cpu[str(port)]
            wall = sum(r["cpu"]["wall_s"] for r in cl)
            net = v["cpu_s"] - idle[port] * wall
            v["idle_cpu_s_per_s"] = round(idle[port], 4)
            v["net_us_per_hit"] = round(net * 1e6 / v["hits"], 2) if v["hits"] else None
        sa_redis = B.median([r["per_request_cpu_us"]["redis"] for r in sa])
        sa_replica = None
        if sa_groups and "redis_replica" in sa_groups:
            sa_replica = B.median([r["cpu"]["redis_replica"] * 1e6 /
                                   max(1, r["count"]["nginx_upstream"]) for r in sa])
        # Batching: hits per EVAL and the time Redis spent inside EVAL
        # (INFO commandstats), standalone and per master.
        sa_hits = sum(r["count"]["nginx_upstream"] for r in sa)
        batching = {"standalone": {
            "evals": ev_sa["calls"], "hits": sa_hits,
            "hits_per_eval": round(sa_hits / float(ev_sa["calls"]), 2) if ev_sa["calls"] else None,
            "eval_usec_per_call": round(ev_sa["usec"] / float(ev_sa["calls"]), 2)
            if ev_sa["calls"] else None}}
        for p in self.masters:
            e, n = ev_cl[p], hits[p]
            batching[str(p)] = {
                "evals": e["calls"], "hits": n,
                "hits_per_eval": round(n / float(e["calls"]), 2) if e["calls"] else None,
                "eval_usec_per_call": round(e["usec"] / float(e["calls"]), 2)
                if e["calls"] else None,
                "cpu_us_per_eval": round(cpu[str(p)]["cpu_s"] * 1e6 / e["calls"], 2)
                if e["calls"] else None}
        return {
            "replicas": len(self.replica_of) // max(1, len(self.masters)),
            "connections": conns, "paths": k.paths,
            "standalone_rps": sa_rps, "cluster_rps": cl_rps,
            "ratio": round(cl_rps / sa_rps, 3) if sa_rps else None,
            "pair_ratios": [round(c["rps"] / s["rps"], 3) if s["rps"] else None
                            for s, c in zip(sa, cl)],
            "standalone_p99_ms": B.median([r["latency_ms"]["p99"] for r in sa]),
            "cluster_p99_ms": B.median([r["latency_ms"]["p99"] for r in cl]),
            "hits_per_master": {str(p): h for p, h in hits.items()},
            "share_per_master": share, "spread_ok": spread_ok,
            "redis_cpu_per_node": cpu, "batching": batching,
            "standalone_redis_us_per_hit": sa_redis,
            "standalone_replica_us_per_hit": round(sa_replica, 2) if sa_replica else None,
            "cluster_app_workers_us_per_request":
                B.median([r["per_request_cpu_us"].get("app_workers") for r in cl]),
            "standalone_app_workers_us_per_request":
                B.median([r["per_request_cpu_us"]["app_workers"] for r in sa]),
            "runs": {"standalone": sa, "cluster": cl},
        }

    def idle_cpu(self, seconds):
        """{port: CPU seconds per second} of each node with no load."""
        B.log("bench: cluster: %d s of idle node CPU" % seconds)
        pids = {p: self.cl.pid(p) for p in self.cl.ports}
        t0 = {p: B.proc_cpu_s(pid) for p, pid in pids.items()}
        w0 = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - w0
        return {p: (B.proc_cpu_s(pid) - t0[p]) / wall for p, pid in pids.items()}

    def counted_warmup(self, conns, env):
        k = self.k
        B.wrk(self.st.base_url + "/api/", conns, max(2, k.warmup), k.threads,
              script="hotpath.lua", tag="reqstats-bench/cl-warmup", env=env)

        def all_keys():
            self.keys = self.total_keys()
            return len(self.keys) >= self.shards
        self.shards = int(self.layout_shards())
        try:
            stackmod.wait_until(all_keys, 10, "a total key for each of %d shards" % self.shards)
        except RuntimeError as e:
            raise B.BenchError("cluster: %s (found %d)" % (e, len(self.keys)))

    def layout_shards(self):
        v = self.cl.call("GET", "reqstats:{meta}shards")
        if v is None:
            raise B.BenchError("cluster: no reqstats:{meta}shards key: is the app in cluster mode?")
        return v

    # ---- 4-5: report and memory at BENCH_FILL_URLS -------------------------------------

    def fill(self):
        """The standalone fill's paths and counts, in the cluster layout: per
        master one redis-cli --pipe with ZADD batches on each shard's hits
        key and a SET of each shard's total. Returns the model."""
        b, cl = self.b, self.cl
        n = self.shards
        tags = [shard_tag(i, n) for i in range(n)]
        owner = [cl.slot_owner(clustermod.key_slot(t)) for t in tags]
        for i, t in enumerate(tags):
            key = "reqstats:{%s}total" % t
            if key not in self.keys:
                raise B.BenchError("cluster: shard %d's tag %s does not match the app's keys "
                                   "(layout changed?)" % (i, t))
        for t, port in zip(tags, owner):
            cl.cmd(port, "DEL", "reqstats:{%s}hits" % t)
        mem0 = {p: int(cl.info(p, "memory")["used_memory"]) for p in self.masters}
        procs, t0 = {}, time.monotonic()
        for port in self.masters:
            procs[port] = subprocess.Popen(["redis-cli", "-h", "127.0.0.1", "-p", str(port),
                                            "--pipe"], stdin=subprocess.PIPE,
                                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        model = []
        chunks = [[] for _ in range(n)]
        sums = [0] * n
        total_len = 0

        def resp(*args):
            out = [b"*%d\r\n" % len(args)]
            for a in args:
                out.append(b"$%d\r\n%s\r\n" % (len(a), a))
            return b"".join(out)

        def flush(i):
            args = [b"ZADD", b"reqstats:{%s}hits" % tags[i].encode()]
            for p, c in chunks[i]:
                args += [b"%d" % c, p]
            procs[owner[i]].stdin.write(resp(*args))
            chunks[i] = []
        try:
            for path, count in b.fill_paths():
                p = path.encode()
                i = shard_of(p, n)
                chunks[i].append((p, count))
                sums[i] += count
                total_len += len(p)
                model.append((count, i, p))
                if len(chunks[i]) == 1000:
                    flush(i)
            for i in range(n):
                if chunks[i]:
                    flush(i)
                procs[owner[i]].stdin.write(resp(b"SET", b"reqstats:{%s}total" % tags[i].encode(),
                                                 b"%d" % sums[i]))
            outs = {}
            for port, proc in procs.items():
                proc.stdin.close()
                outs[port] = proc.stdout.read().decode("utf-8", "replace")
                proc.wait(timeout=300)
        except BaseException:
            for proc in procs.values():
                proc.kill()
                proc.wait()
            raise
        secs = time.monotonic() - t0
        for port, text in outs.items():
            if procs[port].returncode != 0 or "errors: 0," not in text:
                raise B.BenchError("cluster fill: redis-cli --pipe on %d: %s" % (port, text))
        time.sleep(0.2)
        mem1 = {p: int(cl.info(p, "memory")["used_memory"]) for p in self.masters}
        usage = 0
        for t, port in zip(tags, owner):
            usage += int(cl.cmd(port, "MEMORY", "USAGE", "reqstats:{%s}hits" % t, "SAMPLES", "0",
                                timeout=60))
        enc = {cl.cmd(port, "OBJECT", "ENCODING", "reqstats:{%s}hits" % t)
               for t, port in zip(tags, owner)}
        urls = len(model)
        self.out["memory"] = {
            "urls": urls, "fill_seconds": round(secs, 2),
            "used_memory_growth": sum(mem1[p] - mem0[p] for p in self.masters),
            "bytes_per_url": round(sum(mem1[p] - mem0[p] for p in self.masters) / float(urls), 1),
            "memory_usage_per_url": round(usage / float(urls), 1),
            "mean_path_len": round(total_len / float(urls), 1),
            "encoding": sorted(enc),
            "per_master_used_memory_growth": {str(p): mem1[p] - mem0[p] for p in self.masters},
        }
        return model, sum(sums)

    def http_json(self, path):
        req = urllib.request.Request(self.st.base_url + path,
                                     headers={"User-Agent": "reqstats-bench/control"})
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                return resp.status, json.loads(resp.read().decode("utf-8"))
        except urllib.error.HTTPError as e:
            return e.code, {}

    def report(self):
        k, b = self.k, self.b
        n_urls = k.fill_urls
        B.log("bench: cluster: filling %d URLs in the cluster layout (%d shards)"
              % (n_urls, self.shards))
        model, total = self.fill()
        # Through the app: every URL there, the total, the top URL.
        code, page = self.http_json("/stats/?limit=1")
        order(model)
        ok = (code == 200 and page.get("unique_urls") == len(model) and
              total <= page.get("total_requests", -1) <= total + 10 and
              page["urls"][0]["url"] == model[0][2].decode())
        if not ok:
            b.fail("cluster fill: /stats/ does not show what was loaded: %s unique_urls %s "
                   "(want %d), total %s (want %d), top %s (want %s)"
                   % (code, page.get("unique_urls"), len(model), page.get("total_requests"),
                      total, page.get("urls"), model[0][2]))
        # A hit on a loaded path lands on its member: placement as the app's.
        probe_count, probe_shard, probe_path = model[len(model) // 2]
        code, _ = self.http_json(probe_path.decode())
        want = probe_count + 1
        got = None
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            key = "reqstats:{%s}hits" % shard_tag(probe_shard, self.shards)
            v = self.cl.call("ZSCORE", key, probe_path.decode())
            got = int(float(v)) if v is not None else None
            if got == want:
                break
            time.sleep(0.05)
        if got != want:
            b.fail("cluster fill: a hit on %s made its member %s, want %d: the loader's "
                   "layout is not the app's" % (probe_path.decode(), got, want))
        _, page = self.http_json("/stats/?limit=1")
        # Loaded URLs plus "/stats/" (the control requests), nothing else.
        if page.get("unique_urls") not in (len(model), len(model) + 1):
            b.fail("cluster fill: a hit on a loaded path added a URL (%s, want %d + /stats/)"
                   % (page.get("unique_urls"), len(model)))
        # The model after that hit: its count moved up by one.
        model = [(c + 1, i, p) if p == probe_path else (c, i, p) for c, i, p in model]
        order(model)
        self.out["fill_check"] = {"app_view_ok": ok, "probe_path": probe_path.decode(),
                                  "probe_count": got, "probe_want": want}

        # The standalone first page with no page cache, at the same number of URLs.
        if b.app_setting("STATS_CACHE_MS") != "0":
            B.log("bench: cluster: restarting the standalone app with STATS_CACHE_MS=0")
            b.restart_app({"STATS_CACHE_MS": "0"})
        if int(b.st.redis_cmd("ZCARD", B.K_HITS)) != n_urls:
            B.log("bench: cluster: filling the standalone Redis with the same %d URLs" % n_urls)
            b.st.redis_cmd("DEL", B.K_HITS)
            b.fill()
        deep = int(n_urls * 0.9)
        sa_runs, first_runs, deep_runs = [], [], []
        for i in (1, 2):
            B.log("bench: cluster: /stats/?limit=100 standalone, uncached (%d/2)" % i)
            sa_runs.append(b.counted_wrk("cl-stats-standalone-r%d" % i, "/stats/?limit=100",
                                         k.stats_connections, k.stats_duration, "static.lua",
                                         threads=1))
            B.log("bench: cluster: /stats/?limit=100 cluster, uncached (%d/2)" % i)
            first_runs.append(self.counted("cl-stats-first-r%d" % i, "/stats/?limit=100",
                                           k.stats_connections, k.stats_duration, "static.lua",
                                           threads=1))
            B.log("bench: cluster: /stats/?limit=100&offset=%d cluster, uncached (%d/2)"
                  % (deep, i))
            deep_runs.append(self.counted("cl-stats-deep-r%d" % i,
                                          "/stats/?limit=100&offset=%d" % deep,
                                          k.stats_connections, k.stats_duration, "static.lua",
                                          threads=1))
        # The deep page against the model: "/stats/" is one more entry, far
        # above (it counts every page request), so the model's rows shift by one.
        code, page = self.http_json("/stats/?limit=100&offset=%d" % deep)
        v = self.cl.call("ZSCORE", "reqstats:{%s}hits" % shard_tag(shard_of(b"/stats/",
                                                                          self.shards),
                                                                 self.shards), "/stats/")
        stats_count = int(float(v)) if v is not None else None
        want_rows = [{"url": p.decode(), "count": c} for c, _, p in model[deep - 1:deep + 99]]
        got_rows = [{"url": u["url"], "count": u["count"]} for u in page.get("urls", [])]
        deep_ok = (code == 200 and stats_count is not None and
                   stats_count > model[deep - 1][0] and got_rows == want_rows)
        if not deep_ok:
            b.fail("cluster: /stats/?offset=%d differs from the model (status %s, /stats/ count "
                   "%s): first rows %s, want %s" % (deep, code, stats_count, got_rows[:3],
                                                   want_rows[:3]))
        sa50 = B.median([r["latency_ms"]["p50"] for r in sa_runs])
        f50 = B.median([r["latency_ms"]["p50"] for r in first_runs])
        d50 = B.median([r["latency_ms"]["p50"] for r in deep_runs])
        self.out["report"] = {
            "urls": len(model), "offset_deep": deep, "connections": k.stats_connections,
            "standalone_first_p50_ms": sa50,
            "standalone_first_p99_ms": B.median([r["latency_ms"]["p99"] for r in sa_runs]),
            "cluster_first_p50_ms": f50,
            "cluster_first_p99_ms": B.median([r["latency_ms"]["p99"] for r in first_runs]),
            "cluster_deep_p50_ms": d50,
            "cluster_deep_p99_ms": B.median([r["latency_ms"]["p99"] for r in deep_runs]),
            "ratio_first": round(f50 / sa50, 2) if sa50 else None,
            "ratio_deep": round(d50 / sa50, 2) if sa50 else None,
            "deep_page_matches_model": deep_ok,
            "runs": {"standalone": sa_runs, "first": first_runs, "deep": deep_runs},
        }

    def health(self):
        now = B.app_pids(self.st)
        if sorted(now["workers"]) != sorted(self.pids0["workers"]):
            self.b.fail("cluster: app workers changed during the run (crash?): %s -> %s"
                        % (self.pids0["workers"], now["workers"]))
        bad = self.st.bad_log_lines()
        if bad:
            self.b.fail("cluster: %d sanitizer/alert lines in the logs, e.g. %s"
                        % (len(bad), bad[0]))
        if sorted(self.cl.masters()) != sorted(self.masters):
            self.b.fail("cluster: the masters changed during the run (a failover?)")

    def run(self):
        layouts = self.k.cluster_replicas
        try:
            for n, replicas in enumerate(layouts):
                self.start(replicas)
                self.hot(replicas)
                if self.k.cluster_report and n == len(layouts) - 1:
                    self.report()
                self.health()
                if n < len(layouts) - 1:
                    self.stop()
        except (OSError, RuntimeError, ValueError, KeyError) as e:
            raise B.BenchError("cluster phase: %s: %s" % (type(e).__name__, e))
        finally:
            self.b.res["phases"]["cluster"] = self.out
            self.stop()


# ---- for bench/run's table and targets ----------------------------------------------------

def hot_results(c):
    """[(replicas, hot figures)] in the order measured."""
    return [(int(key[-1]), c[key]) for key in ("hot_r0", "hot_r1") if c.get(key)]


def targets(c):
    out = []
    for n, h in hot_results(c):
        side = "alone" if n == 0 else "+ replicas"
        out.append(("cluster hot path >= %.2f x standalone (%s)" % (T_CLUSTER_HOT, side),
                    "%.3f (%s)" % (h["ratio"] or 0, " ".join("%.2f" % x for x in h["pair_ratios"]
                                                            if x is not None)),
                    "PASS" if h["ratio"] and h["ratio"] >= T_CLUSTER_HOT else "FAIL"))
        runs = h["runs"]["cluster"]
        exact = sum(1 for r in runs if r["count"]["result"] == "exact")
        out.append(("cluster counting exact (%s)" % side, "%d/%d runs" % (exact, len(runs)),
                    "PASS" if exact == len(runs) else "FAIL"))
        out.append(("each master within +-%.0f%% of 1/%d of hits (%s)"
                    % (100 * T_MASTER_SPREAD, len(h["share_per_master"]), side),
                    " ".join("%.3f" % v for v in h["share_per_master"].values()),
                    "PASS" if h["spread_ok"] else "FAIL"))
    r = c.get("report")
    if r:
        out.append(("cluster /stats/ first page <= %.0f x standalone" % T_CLUSTER_PAGE,
                    "%s x" % r["ratio_first"],
                    "PASS" if r["ratio_first"] is not None and r["ratio_first"] <= T_CLUSTER_PAGE
                    else "FAIL"))
        out.append(("cluster /stats/ offset %d <= %.0f x standalone first"
                    % (r["offset_deep"], T_CLUSTER_PAGE), "%s x" % r["ratio_deep"],
                    "PASS" if r["ratio_deep"] is not None and r["ratio_deep"] <= T_CLUSTER_PAGE
                    else "FAIL"))
    return out


def table(c):
    L = [""]
    L.append("6. cluster on loopback (tests/cluster.py), its own nginx and app beside the "
             "standalone stack")
    for n, h in hot_results(c):
        L.append("   %s (started in %s s) against the standalone Redis %s:"
                 % (layout_name(n), c["layouts"][str(n)]["cluster_start_s"],
                    "alone" if n == 0 else "with a replica"))
        L.append("   hot path at %d conns, alternated: standalone %s req/s (p99 %.2f ms), "
                 "cluster %s req/s (p99 %.2f ms)  ->  ratio %s (pairs %s)"
                 % (h["connections"], B_fmt(h["standalone_rps"]), h["standalone_p99_ms"],
                    B_fmt(h["cluster_rps"]), h["cluster_p99_ms"], h["ratio"],
                    " ".join("%.2f" % x for x in h["pair_ratios"] if x is not None)))
        L.append("   app workers' CPU per request: standalone %.1f us, cluster %.1f us"
                 % (h["standalone_app_workers_us_per_request"] or 0,
                    h["cluster_app_workers_us_per_request"] or 0))
        L.append("   hits per master: %s" % "  ".join(
            "%s: %d (%.1f%%)" % (p, hits, 100 * h["share_per_master"][p])
            for p, hits in h["hits_per_master"].items()))
        L.append("   Redis CPU per hit (us): standalone %.2f%s; cluster nodes (net of idle CPU "
                 "in brackets): %s"
                 % (h["standalone_redis_us_per_hit"] or 0,
                    ", its replica %.2f" % h["standalone_replica_us_per_hit"]
                    if h.get("standalone_replica_us_per_hit") else "", "  ".join(
                     "%s %s %s (%s)" % (p, v["role"], v["us_per_hit"], v["net_us_per_hit"])
                     for p, v in h["redis_cpu_per_node"].items())))
        L.append("   batching: %s" % "  ".join(
            "%s %s hits/EVAL, %s us in EVAL/call%s" % (
                p, v["hits_per_eval"], v["eval_usec_per_call"],
                ", %s us CPU/EVAL" % v["cpu_us_per_eval"] if "cpu_us_per_eval" in v else "")
            for p, v in h["batching"].items()))
        L.append("   counting: %s" % ", ".join(
            "%s %s (%d)" % (r["tag"].split("/")[-1], r["count"]["result"],
                            r["count"]["nginx_upstream"]) for r in h["runs"]["cluster"]))
    if c.get("hot_r0") and c.get("hot_r1") and c["hot_r0"]["standalone_rps"]:
        L.append("   not like for like (information): the replicated cluster against the "
                 "standalone Redis alone, runs minutes apart: %.3f"
                 % (c["hot_r1"]["cluster_rps"] / c["hot_r0"]["standalone_rps"]))
    r = c.get("report")
    if r:
        L.append("   /stats/?limit=100 at %d URLs, uncached, %d conn: standalone first page p50 "
                 "%.3f ms; cluster first page p50 %.3f ms (%s x), offset %d p50 %.3f ms (%s x); "
                 "deep page = model: %s"
                 % (r["urls"], r["connections"], r["standalone_first_p50_ms"],
                    r["cluster_first_p50_ms"], r["ratio_first"], r["offset_deep"],
                    r["cluster_deep_p50_ms"], r["ratio_deep"], r["deep_page_matches_model"]))
    m = c.get("memory")
    if m:
        L.append("   memory: %d URLs in %.1f s: used_memory +%d B over the masters = %.1f B/URL; "
                 "MEMORY USAGE %.1f B/URL; mean path %.1f B; %s"
                 % (m["urls"], m["fill_seconds"], m["used_memory_growth"], m["bytes_per_url"],
                    m["memory_usage_per_url"], m["mean_path_len"], ",".join(m["encoding"])))
    return L


def B_fmt(v):
    return "-" if v is None else "%.0f" % v
