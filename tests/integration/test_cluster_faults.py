"""test_cluster_faults.py -- counting on a Redis Cluster while it breaks (docs/API.md section 7).

Each class starts its own 6-node cluster (tests/cluster.py) with the real
stack on it, puts bounded load on /api/ from a few client threads, breaks
the cluster, and then checks what the contract promises:

* a planned failover (CLUSTER FAILOVER) of every master in turn: every
  /api/ answer is 200 and the counts are exact afterwards;
* slot migration (single slots holding shard keys moved with
  MIGRATING/IMPORTING, and a range holding a shard moved by `redis-cli
  --cluster reshard`): every answer 200, exact counts;
* a master SIGKILLed: /api/ stays 200, counting resumes once its replica
  is promoted, nothing is counted twice (no path above its 200 answers), and
  what was lost (acknowledged by the dead master, never replicated) is at
  most what the app logged as lost; the test prints the loss;
* CLUSTERDOWN (one shard with neither master nor replica): /api/ stays 200
  and its hits are held, /stats/ and POST /test/ answer 503 with
  Retry-After, and the counts are exact once the shard is back.

Every wait polls with a deadline; the load is bounded in requests and time.
"""

import re
import secrets
import sys
import time

from cluster_support import ClusterStackTestCase, Load, wait_for

LOST = re.compile(r"hits lost: (\d+) hits")


def tag(what):
    return "/api/cf-%s-%s/" % (what, secrets.token_hex(4))


def report(msg):
    # Figures the suite reports (the loss of a crash, fault timings).
    print("\n    [cluster] " + msg, file=sys.stderr, flush=True)


class ClusterFaultCase(ClusterStackTestCase):

    def load(self, prefix, **kw):
        host, port = self.host_port()
        return Load(host, port, prefix, **kw).start()

    def assert_all_200(self, load):
        self.assertEqual(load.errors, 0, "requests without an answer: " + load.summary())
        self.assertEqual(load.other, {}, "non-200 answers: %s; e.g. %r"
                         % (load.summary(), load.examples))

    def assert_exact(self, prefix, load):
        want = dict(load.ok)
        got = self.wait_counts(prefix, want)
        self.assertEqual(sum(got.values()), sum(want.values()),
                         "total under %s after %s" % (prefix, load.summary()))
        self.assertEqual(got, want)

    def sequential_hits(self, prefix, n, paths=10):
        """n GETs on fresh connections; returns {path: 200 answers}."""
        ok = {}
        for i in range(n):
            p = "%sq%d/" % (prefix, i % paths)
            r = self.get(p)
            self.assertEqual(r.status, 200, r)
            ok[p] = ok.get(p, 0) + 1
        return ok

    def shard_keys(self):
        """{slot: (master port, [keys])} of the app's sorted sets (its shards)
        that hold members, found by SCAN on every master."""
        out = {}
        for port in self.cluster.masters():
            cursor = "0"
            while True:
                cursor, keys = self.cluster.cmd(port, "SCAN", cursor, "MATCH", "reqstats:*",
                                                "COUNT", 1000)
                for k in keys:
                    if self.cluster.cmd(port, "TYPE", k) == "zset":
                        slot = self.cluster.cmd(port, "CLUSTER", "KEYSLOT", k)
                        out.setdefault(slot, (port, []))[1].append(k)
                if cursor == "0":
                    break
        return out


class TestPlannedFailover(ClusterFaultCase):

    def test_failover_of_every_master_under_load(self):
        prefix = tag("failover")
        load = self.load(prefix)
        try:
            load.wait_answered(300)
            for master in list(self.cluster.masters()):
                before = load.answered()
                new = self.cluster.failover(master)
                report("planned failover %d -> %d in %.2f s" % (master, new,
                                                               self.cluster.last_seconds))
                # Traffic keeps flowing with the new master in place.
                load.wait_answered(before + 200)
        finally:
            load.stop()
        report("failover load: " + load.summary())
        self.assert_all_200(load)
        self.assert_exact(prefix, load)
        # The roles did swap: none of the first masters is a master now.
        self.assertEqual(len(self.cluster.masters()), 3)


class TestReshard(ClusterFaultCase):

    def test_slot_migration_under_load(self):
        prefix = tag("reshard")
        load = self.load(prefix)
        try:
            load.wait_answered(300)
            masters = self.cluster.masters()
            # Every master holds shards once hits have been counted.
            keys = wait_for(lambda: (lambda k: k if {p for p, _ in k.values()} >= set(masters)
                                     else None)(self.shard_keys()),
                            20, "shard keys on every master")
            moved_keys = 0
            for i, src in enumerate(masters):
                slot = min(s for s, (p, _) in keys.items() if p == src)
                dst = masters[(i + 1) % len(masters)]
                before = load.answered()
                n = self.cluster.move_slot(slot, dst)
                report("slot %d (%s) moved %d -> %d with %d keys in %.2f s"
                       % (slot, keys[slot][1][0], src, dst, n, self.cluster.last_seconds))
                self.assertGreater(n, 0, "slot %d held no key when it moved" % slot)
                moved_keys += n
                load.wait_answered(before + 200)
            # A range with redis-cli, as an operator reshards: it takes the
            # source's slots in ascending order, so the range is made long
            # enough to reach the source's first shard slot.
            src, dst = masters[0], masters[1]
            owned_before = self.shard_keys()
            first = min(s for s, (p, _) in owned_before.items() if p == src)
            ranges = [r for sh in self.cluster.shards() if sh["master"] == src
                      for r in sh["slots"]]
            nslots = sum(min(b, first) - a + 1 for a, b in ranges if a <= first) + 100
            before = load.answered()
            self.cluster.reshard(src, dst, nslots)
            owned_after = self.shard_keys()
            moved = sorted(s for s, (p, _) in owned_before.items()
                           if p == src and owned_after.get(s, (None,))[0] == dst)
            report("redis-cli reshard of %d slots %d -> %d in %.2f s moved shard slots %s"
                   % (nslots, src, dst, self.cluster.last_seconds, moved))
            self.assertIn(first, moved, "the reshard did not move shard slot %d" % first)
            load.wait_answered(before + 200)
        finally:
            load.stop()
        report("reshard load: " + load.summary())
        self.assertGreater(moved_keys, 0)
        self.assert_all_200(load)
        self.assert_exact(prefix, load)


class TestMasterCrash(ClusterFaultCase):

    def test_master_killed_under_load(self):
        prefix = tag("crash")
        load = self.load(prefix)
        victim = self.cluster.masters()[0]
        try:
            load.wait_answered(300)
            at_kill = load.answered()
            new = self.cluster.kill(victim)
            report("master %d SIGKILLed; replica %d promoted after %.2f s"
                   % (victim, new, self.cluster.last_seconds))
            self.assertIsNotNone(new)
            # Counting goes on after the promotion.
            load.wait_answered(load.answered() + 300)
        finally:
            load.stop()
        report("crash load: %s (%d before the kill)" % (load.summary(), at_kill))
        self.assert_all_200(load)

        counted = self.wait_stable(prefix, upto=sum(load.ok.values()))
        # Nothing counted twice: no path above its 200 answers.
        over = {p: (c, load.ok.get(p, 0)) for p, c in counted.items()
                if c > load.ok.get(p, 0)}
        self.assertEqual(over, {}, "paths counted more often than answered")
        answered, total = sum(load.ok.values()), sum(counted.values())
        self.assertLessEqual(total, answered)
        lost = answered - total
        logged = sum(int(m.group(1)) for m in
                     (LOST.search(line) for line in self.app_log_lines(LOST)))
        report("master crash: %d hits answered 200, %d counted, %d lost; the app logged "
               "%d hits lost (all paths)" % (answered, total, lost, logged))
        # Every lost hit of this test's paths is among those the app logged.
        self.assertLessEqual(lost, logged, "hits lost without a log line")

        # Counting resumed: new hits after the promotion are exact.
        prefix2 = tag("after-crash")
        want = self.sequential_hits(prefix2, 100)
        self.assertEqual(self.wait_counts(prefix2, want), want)

        # The killed node comes back as a replica of its successor.
        self.cluster.restart(victim)
        report("node %d restarted and rejoined as a replica in %.2f s"
               % (victim, self.cluster.last_seconds))
        self.assertEqual(self.cluster.role(victim), "slave")
        self.assertIn(victim, self.cluster.replicas_of(new))


    def test_unreplicated_writes_lost_and_logged(self):
        # The crash the contract allows to lose hits: the master acknowledges
        # writes its replica never gets (the replica is paused), then dies.
        prefix = tag("unreplicated")
        load = self.load(prefix)
        victim = self.cluster.masters()[0]
        try:
            load.wait_answered(300)
            at_pause = load.answered()
            new = self.cluster.crash_unreplicated(
                victim, lambda: load.wait_answered(load.answered() + 500))
            report("master %d SIGKILLed with its replica paused; replica %d promoted after "
                   "%.2f s" % (victim, new, self.cluster.last_seconds))
            load.wait_answered(load.answered() + 500)
        finally:
            load.stop()
        report("unreplicated load: %s (%d before the pause)" % (load.summary(), at_pause))
        self.assert_all_200(load)
        # Hits on every path after the promotion: each worker writes to each
        # shard again, which is when it finds its acknowledged batches gone.
        after = self.sequential_hits(tag("after-unreplicated"), 300, paths=60)
        counted = self.wait_stable(prefix, upto=sum(load.ok.values()))
        over = {p: (c, load.ok.get(p, 0)) for p, c in counted.items()
                if c > load.ok.get(p, 0)}
        self.assertEqual(over, {}, "paths counted more often than answered")
        answered, total = sum(load.ok.values()), sum(counted.values())
        lost = answered - total

        def logged():
            return sum(int(m.group(1)) for m in
                       (LOST.search(line) for line in self.app_log_lines(LOST)))
        # The loss is logged once the workers have written to those shards.
        try:
            wait_for(lambda: logged() >= lost, 10, "a loss of %d hits in the app log" % lost)
        except AssertionError:
            pass
        report("unreplicated crash: %d hits answered 200, %d counted, %d lost; the app logged "
               "%d hits lost (all paths, this class)" % (answered, total, lost, logged()))
        # Writes acknowledged while the only replica was paused are gone.
        self.assertGreater(lost, 0, "nothing lost: the replica was not behind")
        self.assertLessEqual(lost, logged(), "hits lost without a log line")
        self.assertEqual(self.wait_counts(tag_prefix(after), after), after)
        self.cluster.restart(victim)


def tag_prefix(counts):
    """The common /api/cf-.../ prefix of a sequential_hits() result."""
    first = next(iter(counts))
    return first[:first.index("/", len("/api/")) + 1]


class TestClusterDown(ClusterFaultCase):

    def test_hits_held_while_a_shard_has_no_master(self):
        prefix = tag("down")
        want = self.sequential_hits(prefix, 50)
        self.assertEqual(self.wait_counts(prefix, want), want)

        paused = self.cluster.outage(self.cluster.masters()[1])
        report("shard of %d down (master and replica paused): cluster_state fail after %.2f s"
               % (paused[-1], self.cluster.last_seconds))
        try:
            # /stats/ answers 503 with Retry-After (its page cache may
            # serve the last page for a few ms first).
            def stats_503():
                r = self.get("/stats/", timeout=30)
                return r if r.status == 503 else None
            r = wait_for(stats_503, 30, "/stats/ 503 while the cluster is down", 0.1)
            self.assertError(r, 503)
            self.assertRegex(r.headers.get("retry-after", ""), r"^[1-9][0-9]*$", r.headers)
            r = self.post("/test/5/", timeout=30)
            self.assertError(r, 503)
            self.assertRegex(r.headers.get("retry-after", ""), r"^[1-9][0-9]*$", r.headers)
            # /metrics still answers (docs/API.md section 8): the paused
            # master is 0 by its node label, and no Redis-derived series.
            r = self.get("/metrics", timeout=30)
            self.assertEqual(r.status, 200)
            text = r.body.decode()
            ups = {int(n.rsplit(":", 1)[1]): v for n, v in
                   re.findall(r'^reqstats_redis_up\{node="([^"]+)"\} (\d)$', text, re.M)}
            self.assertEqual(ups.get(paused[-1]), "0", text)
            self.assertNotRegex(text, r"(?m)^reqstats_requests_total ")

            # /api/ stays 200; its hits are held by the workers.
            t0 = time.monotonic()
            held = self.sequential_hits(prefix, 100)
            report("100 /api/ hits answered 200 in %.2f s while the cluster was down"
                   % (time.monotonic() - t0))
            # Still down: nothing could be written meanwhile.
            self.assertEqual(self.get("/stats/", timeout=30).status, 503)
        finally:
            self.cluster.end_outage(paused)
        report("shard back and cluster ok after %.2f s" % self.cluster.last_seconds)
        for p, n in held.items():
            want[p] = want.get(p, 0) + n
        got = self.wait_counts(prefix, want, timeout=30)
        self.assertEqual(got, want)
        self.stats(limit=1)  # 200 again
