"""The nemesis: a seeded schedule of faults, one at a time, with a pause between them.

The schedule (which fault, whom it targets by role, how long it lasts, the pause after
it) is drawn from the seed alone, so the same seed replays the same schedule; which node
holds a role when a fault starts is the cluster's doing and is logged with the fault.

Kinds:
  kill-leader / kill-follower     kill -9, restart after 0.3-4 s
  pause-leader / pause-follower   SIGSTOP for 1-5 s, then SIGCONT
  isolate-leader / isolate-follower  cut one node from every other for 1-5 s
  split                           a random minority (with or without the leader) cut from
                                  the majority for 1-5 s
  oneway                          bytes from one node to another cut (leader->follower
                                  or follower->leader) for 1-5 s
Every cut is "drop" (bytes discarded, connections reset at heal) or "stall" (bytes held,
delivered late at heal, as TCP does): see netproxy.py.
  disk-full-leader / disk-full-follower
                                  the node's files may no longer grow (its soft
                                  RLIMIT_FSIZE drops to 1 byte, set from outside with
                                  prlimit), so its next log write fails as on a full disk
                                  (EFBIG in place of ENOSPC): it must hand over if it leads
                                  and stop with status 3; restarted 0.3-4 s later, as
                                  systemd would once space is freed
  transfer                        leadership transfer to a random other voter
  member-cycle                    remove a follower, wipe it, restart it empty, add it as
                                  a learner, wait for it to catch up, promote it
"""

import random
import subprocess
import time

KINDS = ["kill-leader", "kill-follower", "pause-leader", "pause-follower", "isolate-leader",
         "isolate-follower", "split", "oneway", "transfer", "member-cycle", "disk-full-leader",
         "disk-full-follower"]
# How often each kind is drawn (member changes are slow: fewer of them).
WEIGHTS = [3, 3, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1]
# A node whose storage refused a write stops with this status (rlr-node's kExitStorage).
EXIT_STORAGE = 3


def schedule(seed, seconds, kinds=None, gap=(1.5, 3.5)):
    """[(start_offset_s, kind, params)] covering `seconds` of faults."""
    rng = random.Random(seed)
    kinds = kinds or KINDS
    weights = [WEIGHTS[KINDS.index(k)] for k in kinds]
    t = rng.uniform(*gap)
    out = []
    while t < seconds:
        kind = rng.choices(kinds, weights)[0]
        params = {"hold": round(rng.uniform(1.0, 5.0), 2), "restart_after": round(rng.uniform(0.3, 4.0), 2),
                  "pick": rng.random(), "with_leader": rng.random() < 0.5,
                  "mode": "stall" if rng.random() < 0.5 else "drop"}
        out.append((round(t, 2), kind, params))
        t += params["hold"] + rng.uniform(*gap)
    return out


class Nemesis:
    def __init__(self, cluster, log, voters):
        self.c = cluster
        self.log = log
        self.voters = voters        # ids of the current voters (the nemesis keeps it)
        self.counts = {}
        self.events = []            # (monotonic time, text)
        self.skipped = 0
        self.disk_exits = []        # (node, exit status or None if it kept running) per disk-full fault

    def _note(self, text):
        self.events.append((time.monotonic(), text))
        self.log("nemesis: " + text)

    def _pick(self, ids, x):
        ids = sorted(ids)
        return ids[int(x * len(ids)) % len(ids)] if ids else None

    def run(self, plan, start, stop_event):
        for offset, kind, p in plan:
            while time.monotonic() < start + offset:
                if stop_event.is_set():
                    return
                time.sleep(0.05)
            if stop_event.is_set():
                return
            try:
                done = self.inject(kind, p)
            except Exception as e:  # noqa: BLE001 - a fault that cannot be made is logged and skipped
                self._note("%s failed to run: %s" % (kind, e))
                self.c.net.heal()
                done = False
            if done:
                self.counts[kind] = self.counts.get(kind, 0) + 1
            else:
                self.skipped += 1

    def inject(self, kind, p):
        c = self.c
        leader = c.leader(timeout_ms=1500)
        if leader is None or leader not in self.voters:
            self._note("%s skipped: no leader known" % kind)
            return False
        followers = [v for v in self.voters if v != leader and c.nodes[v].alive()]
        hold = p["hold"]
        if kind.endswith("-leader"):
            target = leader
        elif kind.endswith("-follower"):
            target = self._pick(followers, p["pick"])
        else:
            target = None
        if kind.endswith("-follower") and target is None:
            self._note("%s skipped: no live follower" % kind)
            return False
        if kind.startswith("kill-"):
            self._note("kill -9 node %d (%s), restart in %.2f s" % (target, kind[5:], p["restart_after"]))
            c.kill9(target)
            time.sleep(p["restart_after"])
            c.start(target)
            self._note("restarted node %d" % target)
        elif kind.startswith("pause-"):
            self._note("SIGSTOP node %d (%s) for %.2f s" % (target, kind[6:], hold))
            c.pause(target)
            time.sleep(hold)
            c.resume(target)
            self._note("SIGCONT node %d" % target)
        elif kind.startswith("isolate-"):
            others = [i for i in c.nodes if i != target]
            self._note("isolate node %d (%s) for %.2f s (%s)" % (target, kind[8:], hold, p["mode"]))
            c.net.block({(target, o) for o in others} | {(o, target) for o in others}, p["mode"])
            time.sleep(hold)
            c.net.heal()
            self._note("healed")
        elif kind == "split":
            members = sorted(self.voters)
            size = (len(members) - 1) // 2
            pool = members if p["with_leader"] else [m for m in members if m != leader]
            rng = random.Random(p["pick"])  # seeded by the schedule: the same minority on replay
            minority = set(rng.sample(pool, min(size, len(pool))))
            majority = set(c.nodes) - minority
            self._note("split %s | %s for %.2f s (%s)" % (sorted(minority), sorted(majority), hold, p["mode"]))
            c.net.block({(a, b) for a in minority for b in majority} | {(b, a) for a in minority for b in majority},
                        p["mode"])
            time.sleep(hold)
            c.net.heal()
            self._note("healed")
        elif kind == "oneway":
            f = self._pick(followers, p["pick"])
            if f is None:
                self._note("oneway skipped: no live follower")
                return False
            a, b = (leader, f) if p["with_leader"] else (f, leader)
            self._note("cut bytes from node %d to node %d for %.2f s (%s)" % (a, b, hold, p["mode"]))
            c.net.block({(a, b)}, p["mode"])
            time.sleep(hold)
            c.net.heal()
            self._note("healed")
        elif kind.startswith("disk-full-"):
            return self._disk_full(target, kind[10:], p)
        elif kind == "transfer":
            to = self._pick([v for v in self.voters if v != leader], p["pick"])
            code, out, err = c.ctl("transfer-leader", to, timeout_ms=3000)
            self._note("transfer leadership %d -> %d: %s" % (leader, to, (out or err).strip().splitlines()[-1:]))
        elif kind == "member-cycle":
            return self._member_cycle(leader, followers, p)
        return True

    def _disk_full(self, target, role, p):
        c = self.c
        node = c.nodes[target]
        pid = node.proc.pid
        self._note("disk full on node %d (%s): its files may no longer grow" % (target, role))
        subprocess.run(["prlimit", "--pid", str(pid), "--fsize=1:"], check=True, capture_output=True)
        deadline = time.monotonic() + 15
        while node.alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        if node.alive():
            # The load keeps every member writing: a node still running 15 s after its disk
            # filled did not stop on the failed write. Recorded as a failure (no status).
            subprocess.run(["prlimit", "--pid", str(pid), "--fsize=unlimited:"], capture_output=True)
            self.disk_exits.append((target, None))
            self._note("node %d still runs 15 s after its disk filled; limit lifted" % target)
            return True
        code = node.proc.returncode
        self.disk_exits.append((target, code))
        c.kill9(target)  # reaped already; forgets its pid
        self._note("node %d stopped with status %s; space freed, restart in %.2f s" % (target, code, p["restart_after"]))
        time.sleep(p["restart_after"])
        c.start(target)
        self._note("restarted node %d" % target)
        return True

    def _member_cycle(self, leader, followers, p):
        c = self.c
        k = self._pick(followers, p["pick"])
        if k is None or len(self.voters) < 3:
            self._note("member-cycle skipped: no follower to cycle")
            return False
        self._note("member-cycle: remove node %d" % k)
        code, out, err = c.ctl("remove", k, timeout_ms=5000)
        if code != 0:
            self._note("member-cycle: remove %d failed (%s); left as is" % (k, (out + err).strip()[-200:]))
            return False
        self.voters.remove(k)
        c.nodes[k].member = False
        c.stop(k)
        c.wipe(k)
        c.nodes[k].role = "join"
        c.start(k)
        for attempt in range(20):
            code, out, err = c.ctl("add-learner", k, c.nodes[k].peer_addr, timeout_ms=5000)
            if code == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("could not add node %d back as a learner: %s" % (k, (out + err).strip()[-200:]))
        c.nodes[k].member = True
        self._note("member-cycle: node %d added as a learner" % k)
        # Caught up when its match is within 100 entries of the leader's last index.
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            st = c.status()
            m = [x for x in (st or {}).get("members", []) if x.get("id") == k]
            if st and st.get("leader") and m and m[0].get("match", 0) + 100 >= st.get("last_index", 0):
                break
            time.sleep(0.3)
        for attempt in range(20):
            code, out, err = c.ctl("promote", k, timeout_ms=5000)
            if code == 0:
                break
            time.sleep(0.5)
        else:
            raise RuntimeError("could not promote node %d: %s" % (k, (out + err).strip()[-200:]))
        self.voters.append(k)
        self._note("member-cycle: node %d promoted to voter" % k)
        return True
