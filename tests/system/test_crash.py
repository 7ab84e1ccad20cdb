"""Crash consistency: proxreapd and `proxreap restore` killed with SIGKILL
at every crash point of the reap saga and of journal writes, restarted,
and the invariants checked after every crash and at the end
(invariants.py: no destroy without the verify record and the destroy
intent in the journal file when the DELETE reached the server, at most one
destroy per guest and one restore per reap, a valid journal whose torn
tail the next writer cuts after saving it, every op terminal or resumable;
at the end every op terminal and every guest alive or archived).

test_crash_at_every_point   each crash point once, in a small fixed scenario
test_seeded_crashes[seedN]  a fleet, faults and a chain of 1-3 crashes
                            (crash points with hit numbers, external
                            SIGKILLs) drawn from a PRNG seeded with N, then
                            a crashed and re-run restore;
                            PROXREAP_CRASH_SEEDS (default 8) seeds;
                            reproduce one with -k seed17
test_every_crash_point_is_tested
                            every crash point in src/*.c (grepped, and
                            traced in a run without crashes) is in
                            ALL_POINTS, so the first test crashes there

Crash points (util.h): PROXREAP_CRASH_AT=NAME[#N][:ARG] kills the process
at the Nth pass of NAME; PROXREAP_CRASH_TRACE=FILE lists the points passed.
PROXREAP_CRASH_REPORT=FILE appends one JSON line per seeded test with its
crash chain (for the record of a long run).
"""

import glob
import json
import os
import random
import re
import signal
import time

import pytest

from conftest import REPO, guest, wait_until
from invariants import JournalTap, check_final, check_invariants, journal_path, read_journal

FAST = {"qmshutdown": 0.3, "vzshutdown": 0.3, "qmsnapshot": 0.2, "vzsnapshot": 0.2,
        "vzdump": 0.4, "qmdestroy": 0.2, "vzdestroy": 0.2, "qmstart": 0.2, "vzstart": 0.2,
        "qmrestore": 0.3, "vzrestore": 0.3, "hastop": 0.2, "hastart": 0.2}
OBSERVE = {"interval": "100ms", "window": "500ms", "nodes": "all", "node_name": "pve1"}
REAP = {"mode": "reap", "archive_storage": "local", "breaker_jump": 100, "max_per_cycle": 4,
        "max_per_hour": 1000, "retry_after": "1h"}
IDLE = dict(cpu=0.01, mem_mb=200)
BUSY = dict(cpu=0.5, mem_mb=3000)
# One daemon run or restore: generous, the ASan build on a loaded box is slow.
RUN_TIMEOUT = float(os.environ.get("PROXREAP_CRASH_RUN_TIMEOUT", "120"))
SEEDS = int(os.environ.get("PROXREAP_CRASH_SEEDS", "8"))

SAGA = ["selected", "shutdown-intent", "shutdown-sent", "shutdown-task", "shutdown-done",
        "snapshot-intent", "snapshot-sent", "snapshot-task", "snapshot-done", "archive-intent",
        "archive-sent", "archive-task", "archive-done", "verify-done", "destroy-intent",
        "destroy-sent", "destroy-task", "destroy-done", "reaped"]
COMPENSATION = ["failing", "start-intent", "start-sent", "start-task", "start-done", "aborted"]
# The guest migrated while stopped: compensation follows it to its node.
MOVED = ["moved"]
JOURNAL_WRITE = ["journal-torn", "journal-written", "journal-synced"]
JOURNAL_OPEN = ["journal-created", "journal-copy-partial", "journal-copy-saved", "journal-cut"]
RESTORE = ["restore-intent", "restore-sent", "restore-task", "restore-done", "restore-failed",
           "restore-resume"]
# A restore from an archive's notes, its journal lost: the op journaled here.
ADOPT = ["adopted"]
ALL_POINTS = SAGA + COMPENSATION + MOVED + JOURNAL_WRITE + JOURNAL_OPEN + RESTORE + ADOPT

VZDUMP_FAILS = {"kind": "task_fail", "type": "^vzdump$",
                "error": "command 'vma create' failed: exit code 1"}
# Migrated to pve2 right after its archive: verify finds it gone from its
# node, and compensation finds it on pve2.
MIGRATES = {"kind": "after_task", "type": "^vzdump$", "events": [{"action": "migrate", "node": "pve2"}]}
# Containers only: a failed qemu restore leaves the vmid taken (its config
# stays, as on Proxmox), so a second attempt needs --vmid.
RESTORE_FAILS = {"kind": "task_fail", "type": "^vzrestore$",
                 "error": "unable to restore CT - disk full"}


def spec_name(spec):
    return re.split(r"[#:]", spec)[0]


def spec_nth(spec):
    m = re.search(r"#([0-9]+)", spec)
    return int(m.group(1)) if m else 1


def fold(jr):
    """{op: {"vmid", "state", "vetoed"}} from journal records; state is
    "busy" while the daemon drives the op."""
    ops = {}
    for _, r in jr.records:
        op, ev, step = r.get("op"), r.get("ev"), r.get("step")
        if ev in ("selected", "adopted"):
            ops[op] = {"id": op, "vmid": r.get("vmid"), "type": r.get("type"),
                       "state": "busy" if ev == "selected" else "reaped", "vetoed": False}
            continue
        o = ops.get(op)
        if o is None:
            continue
        if ev in ("reaped", "aborted"):
            o["state"] = ev
            o["vetoed"] = bool(r.get("vetoed"))
        elif ev == "intent" and step == "restore":
            o["state"] = "restoring"
        elif ev == "done" and step == "restore":
            o["state"] = "restored"
        elif ev == "failed":
            o["state"] = "reaped"
    return ops


class Scenario:
    """A fleet on a simulator behind a JournalTap, its config, and every
    daemon run and restore with its outcome (the crash chain)."""

    def __init__(self, lab, idle, busy=(), faults=(), label=""):
        self.lab = lab
        self.label = label
        guests = []
        for vmid, gtype, node, extra in idle:
            guests.append(guest(vmid, "idle-%d" % vmid, type=gtype, node=node, **dict(IDLE, **extra)))
        for vmid, gtype, node in busy:
            guests.append(guest(vmid, "busy-%d" % vmid, type=gtype, node=node, **BUSY))
        self.idle = [g[0] for g in idle]
        self.busy = [g[0] for g in busy]
        self.faults = list(faults)
        self.sim = lab.sim(guests, task_durations=FAST)
        for f in self.faults:
            self.sim.fault(**f)
        self.jpath = os.path.join(lab.dir, "journal")
        self.tap = JournalTap(self.sim, self.jpath)
        self.lost = []   # journals lost (renamed away) so far
        # api.timeout 3s: a restore whose create got no answer is looked
        # for 2 x 3 + 5 s before it is called failed.
        self.cfg = lab.config(self.sim, url=self.tap.url, observe=OBSERVE, api={"timeout": "3s"},
                              reap=dict(REAP, journal=self.jpath))
        assert journal_path(lab, self.cfg) == self.jpath
        self.events = []
        self.runs = 0
        self.prefix = b""
        self.last_daemon = None

    # -- state
    def journal(self):
        return read_journal(self.jpath)

    def settled(self):
        """Nothing left for the daemon: every op ended, every idle guest
        reaped or failed for good (a vetoed op is selected again)."""
        ops = fold(self.journal()).values()
        if any(o["state"] == "busy" for o in ops):
            return False
        return all(any(o["vmid"] == vmid and (o["state"] != "aborted" or not o["vetoed"])
                       for o in ops) for vmid in self.idle)

    def describe(self):
        out = ["scenario %s" % self.label,
               "idle guests %s, busy guests %s" % (self.idle, self.busy),
               "faults %s" % json.dumps(self.faults),
               "crash chain:"]
        out += ["  %s" % json.dumps(e) for e in self.events]
        out.append("journal:")
        out.append(self.journal().text())
        if self.last_daemon is not None:
            out.append("last proxreapd log (tail):")
            out += self.last_daemon.lines()[-40:]
        return "\n".join(out)

    def _trace(self, what):
        path = os.path.join(self.lab.dir, "trace-%d-%s" % (self.runs, what))
        self.runs += 1
        return path

    @staticmethod
    def _points(trace):
        try:
            with open(trace) as fh:
                return fh.read().split()
        except FileNotFoundError:
            return []

    def _fired(self, spec, points):
        """Did the crash point of spec kill it (rather than something else)?"""
        if not spec or not points:
            return False
        name = spec_name(spec)
        return points[-1] == name and points.count(name) == spec_nth(spec)

    def _after_crash(self, event, before):
        """The invariants after any crash; the journal only grew. A torn
        tail is expected after a crash in the middle of a write (the
        journal-torn point, or a SIGKILL from outside, which can cut a
        write() short between two pages), or when the one found at the
        start was not cut yet."""
        torn_ok = bool(event.get("fired") and spec_name(event["spec"]) == "journal-torn" or
                       event.get("result") == "killed" or
                       before.tail and self.journal().tail == before.tail)
        jr = check_invariants(self.lab, self.sim, self.cfg, tap=self.tap, torn_ok=torn_ok,
                              earlier=self.lost)
        assert jr.prefix.startswith(self.prefix), \
            "the journal's valid records changed since the last crash"
        self.prefix = jr.prefix
        event["records"] = len(jr.records)
        event["torn"] = len(jr.tail)
        return jr

    # -- the daemon
    def run_daemon(self, spec=None, kill_after=None, expect_fire=False):
        """Runs proxreapd until the crash point of spec kills it, or kill_after
        seconds pass (SIGKILL), or it has nothing left to do (SIGTERM, exit 0)."""
        trace = self._trace("daemon")
        env = {"PROXREAP_CRASH_TRACE": trace}
        if spec:
            env["PROXREAP_CRASH_AT"] = spec
        before = self.journal()
        resume = sorted(o["id"] for o in fold(before).values() if o["state"] == "busy")
        event = {"run": "proxreapd", "spec": spec, "kill_after": kill_after}
        self.events.append(event)
        d = self.lab.daemon(self.cfg, env=env)
        self.last_daemon = d
        t0 = time.monotonic()

        def over():
            if not d.running():
                return "exited"
            if kill_after is not None and time.monotonic() - t0 >= kill_after:
                d.signal(signal.SIGKILL)
                d.proc.wait(30)
                return "killed"
            # Settled only once it is up and has looked at the fleet.
            if self.settled() and d.count("first poll done") > 0:
                return "settled"
            return None
        how = wait_until(over, timeout=RUN_TIMEOUT, interval=0.05,
                         message=lambda: "proxreapd to crash or settle\n" + self.describe())
        if how == "settled":
            rc = d.stop()
            if rc == -signal.SIGKILL and spec:
                # Its crash point came right after the record that settled
                # it, before (or while) SIGTERM was handled.
                how = "exited"
            else:
                assert rc == 0, "proxreapd exited with %s on SIGTERM:\n%s" % (rc, d.log())
        else:
            d.returncode = d.proc.wait(30)
            d._err.close()
            assert d.returncode == -signal.SIGKILL, \
                "proxreapd exited with %s, not by SIGKILL:\n%s" % (d.returncode, d.log())
        points = self._points(trace)
        event["result"] = "finished" if how == "settled" else "crashed"
        event["fired"] = self._fired(spec, points) if how != "settled" else False
        event["last_point"] = points[-1] if points else None
        if how == "killed" and not event["fired"]:
            event["result"] = "killed"
        if expect_fire:
            assert event["fired"], "the crash point %s was not reached: %s" % (spec, event)
        log = d.log()
        if "started in reap mode" in log:
            # It read the journal and took up every op the last one left.
            for op in resume:
                assert re.search(r"reap %s of guest [0-9]+ was interrupted at" % op, log), \
                    "op %s was not resumed:\n%s" % (op, log)
            if before.tail:
                self.assert_tail_saved(before.tail, log)
        self.check_tail_kept(before)
        if how == "settled":
            check_invariants(self.lab, self.sim, self.cfg, tap=self.tap, earlier=self.lost)
            self.prefix = self.journal().prefix
        else:
            self._after_crash(event, before)
        return event

    def assert_tail_saved(self, tail, log=None):
        if log is not None:
            assert "cut a torn last record of %d bytes" % len(tail) in log, log
        copies = [open(p, "rb").read() for p in glob.glob(self.jpath + ".torn-*")]
        assert tail in copies, "the torn tail %r was not saved: copies %r" % (tail, copies)

    def check_tail_kept(self, before):
        """A torn tail is cut only after it was saved."""
        if before.tail and self.journal().tail != before.tail:
            self.assert_tail_saved(before.tail)

    def lose_journal(self):
        """The journal is lost: renamed away, kept for the invariants."""
        lost = "%s.lost-%d" % (self.jpath, len(self.lost))
        os.rename(self.jpath, lost)
        self.lost.append(lost)
        self.prefix = b""

    def finish(self):
        """A run without crashes to the end; then the final invariants."""
        ev = self.run_daemon()
        assert ev["result"] == "finished", ev
        check_final(self.lab, self.sim, self.cfg, self.idle, self.busy)
        check_no_poll_burst(self.sim)

    # -- restore
    def reaped_ops(self):
        return [o for o in fold(self.journal()).values() if o["state"] == "reaped"]

    def restore(self, op, spec=None):
        trace = self._trace("restore")
        env = {"PROXREAP_CRASH_TRACE": trace}
        if spec:
            env["PROXREAP_CRASH_AT"] = spec
        before = self.journal()
        event = {"run": "restore %s" % op, "spec": spec}
        self.events.append(event)
        r = self.lab.cli("restore", op, "--yes", config=self.cfg, env=env, timeout=RUN_TIMEOUT)
        points = self._points(trace)
        event["rc"] = r.returncode
        event["last_point"] = points[-1] if points else None
        event["fired"] = r.returncode == -signal.SIGKILL and self._fired(spec, points)
        event["result"] = "crashed" if r.returncode == -signal.SIGKILL else "finished"
        self.check_tail_kept(before)
        if r.returncode == -signal.SIGKILL:
            assert spec, r.stderr
            self._after_crash(event, before)
        else:
            assert r.returncode in (0, 1), r.stdout + r.stderr
            event["out"] = (r.stdout + r.stderr).strip()[-200:]
            check_invariants(self.lab, self.sim, self.cfg, tap=self.tap, earlier=self.lost)
            self.prefix = self.journal().prefix
        return r

    def restore_until_done(self, op, first_spec=None, more_specs=()):
        """restore op, crashing at first_spec (then at more_specs), then
        again without crashes until it is restored: at most one guest made."""
        specs = [first_spec] + list(more_specs)
        for spec in specs:
            self.restore(op, spec)
        for _ in range(4):
            r = self.restore(op)
            if r.returncode == 0:
                break
            # The only reasons to try again: an attempt that provably made
            # nothing, or a restore task that failed (a fault).
            assert ("run restore again" in r.stderr or
                    "restore of %s failed: " % op in r.stderr), r.stderr
        assert r.returncode == 0, r.stdout + r.stderr
        assert "restored as guest" in r.stdout or "already restored" in r.stdout, r.stdout
        o = fold(self.journal())[op]
        assert o["state"] == "restored", o
        listed = json.loads(self.lab.cli("journal", "list", "--json", config=self.cfg).stdout)
        mine = [x for x in listed if x["id"] == op][0]
        made = [x for x in self.sim.history(event="restore") if x["volid"] == mine["volid"]]
        assert len(made) == 1, "restore of %s made %d guests: %s" % (op, len(made), made)
        g = self.sim.guest(mine["restored_vmid"])
        assert g is not None and "proxreap-restored" in (g.get("tags") or ""), g
        return mine

    def close(self):
        self.tap.close()


@pytest.fixture
def scenarios(lab):
    made = []

    def make(*a, **kw):
        s = Scenario(lab, *a, **kw)
        made.append(s)
        return s
    try:
        yield make
    finally:
        for s in made:
            s.close()


def run_checked(s, body):
    """body(s); a failure names the scenario, the crash chain and the journal."""
    try:
        body(s)
    except (AssertionError, pytest.fail.Exception) as e:
        pytest.fail("%s\n\n%s" % (e, s.describe()), pytrace=True)


# ---------------------------------------------------------------- every point once

def _point_cases():
    cases = []
    for i, p in enumerate(SAGA):
        cases.append(pytest.param("saga", p, "qemu" if i % 2 == 0 else "lxc", id=p))
    for p in COMPENSATION:
        cases.append(pytest.param("compensate", p, "qemu", id=p))
    for p in MOVED:
        cases.append(pytest.param("moved", p, "lxc", id=p))
    # Records of a reap: 1 selected, 2-4 shutdown, 5-7 snapshot, 8-10
    # archive, 11 verify, 12-14 destroy, 15 reaped.
    for spec in ("journal-torn#1:0", "journal-torn#7:123456", "journal-torn#12:99999999",
                 "journal-written#11", "journal-synced#12"):
        cases.append(pytest.param("saga", spec, "qemu", id=re.sub(r"[#:]", "-", spec)))
    cases.append(pytest.param("created", "journal-created", "qemu", id="journal-created"))
    for p in ("journal-copy-partial", "journal-copy-saved", "journal-cut"):
        cases.append(pytest.param("reopen", p, "lxc", id=p))
    for p in ("restore-intent", "restore-sent", "restore-task", "restore-done"):
        cases.append(pytest.param("restore", p, "qemu", id=p))
    cases.append(pytest.param("restore-resumed", "restore-resume", "qemu", id="restore-resume"))
    cases.append(pytest.param("restore-fails", "restore-failed", "lxc", id="restore-failed"))
    cases.append(pytest.param("restore", "journal-torn#2:40", "lxc", id="restore-journal-torn"))
    cases.append(pytest.param("restore", "journal-synced#1", "qemu", id="restore-journal-synced"))
    cases.append(pytest.param("restore-reopen", "journal-cut", "qemu", id="restore-journal-cut"))
    for p in ADOPT:
        cases.append(pytest.param("restore-adopted", p, "lxc", id=p))
    return cases


@pytest.mark.parametrize("kind,spec,gtype", _point_cases())
def test_crash_at_every_point(lab, scenarios, kind, spec, gtype):
    faults = []
    if kind == "compensate":
        faults.append(dict(VZDUMP_FAILS, count=1))
    if kind == "moved":
        faults.append(dict(MIGRATES, count=1))
    if kind == "restore-fails":
        faults.append(dict(RESTORE_FAILS, count=1))
    s = scenarios([(901, gtype, "pve1", {})], label="%s at %s (%s)" % (kind, spec, gtype),
                  faults=faults)

    def body(s):
        if kind in ("saga", "compensate", "created", "moved"):
            if kind == "created":
                assert not os.path.exists(s.jpath)
            s.run_daemon(spec, expect_fire=True)
        elif kind == "reopen":
            s.run_daemon("journal-torn#3:25", expect_fire=True)
            s.run_daemon(spec, expect_fire=True)
        s.finish()
        ops = fold(s.journal())
        if kind in ("compensate", "moved"):
            assert [o["state"] for o in ops.values()] == ["aborted"], ops
        if kind.startswith("restore"):
            op = s.reaped_ops()[0]["id"]
            if kind == "restore-reopen":
                # A restore died in the middle of its intent record; the
                # next one saves and cuts the torn end, and dies there.
                s.restore_until_done(op, "journal-torn#1:30", [spec])
            elif kind == "restore-adopted":
                # The journal is lost; the restore finds the op by its
                # archive's notes, journals it, and dies there.
                s.lose_journal()
                s.restore_until_done(op, spec)
            elif kind == "restore-resumed":
                # One dies with its task running; the next takes it over
                # on record, and dies there.
                s.restore_until_done(op, "restore-task", [spec])
            else:
                s.restore_until_done(op, spec)
            fired = [e for e in s.events if e.get("spec") == spec and e.get("fired")]
            assert fired, "the crash point %s was not reached" % spec
        destroys = s.sim.history(event="destroy")
        assert len(destroys) <= 1
    run_checked(s, body)


# ---------------------------------------------------------------- seeded chains

def lost_reply(rng, vmid, gtype, node):
    path, method = rng.choice([
        (r"/%s/%d/status/shutdown$" % (gtype, vmid), "POST"),
        (r"/%s/%d/snapshot$" % (gtype, vmid), "POST"),
        (r"^/nodes/%s/vzdump$" % node, "POST"),
        (r"^/nodes/%s/%s/%d$" % (node, gtype, vmid), "DELETE"),
    ])
    return {"kind": "lost_reply", "path": path, "method": method, "count": 1}


def plan(seed):
    """The whole scenario of a seed, drawn from random.Random(seed): the
    fleet, the faults, the crash chain of the daemon, the restore."""
    rng = random.Random(seed)
    n_idle = rng.randint(2, 4)
    types = ["qemu", "lxc"] + [rng.choice(("qemu", "lxc")) for _ in range(n_idle - 2)]
    rng.shuffle(types)
    first = rng.randrange(2)
    idle = []
    for i, t in enumerate(types):
        extra = {}
        if rng.random() < 0.15:
            extra["can_snapshot"] = False
        idle.append((100 + 10 * i, t, ("pve1", "pve2")[(first + i) % 2], extra))
    busy = [(200 + i, rng.choice(("qemu", "lxc")), ("pve1", "pve2")[i % 2])
            for i in range(rng.randint(1, 2))]
    faults, failing = [], False
    if rng.random() < 0.3:
        v = rng.choice(idle)
        faults.append(dict(VZDUMP_FAILS, vmid=v[0], count=1))
        failing = True
    if rng.random() < 0.15:
        v = rng.choice(idle)
        faults.append({"kind": "task_fail", "type": "shutdown$", "vmid": v[0], "count": 1,
                       "error": "VM quit/powerdown failed - got timeout"})
        failing = True
    if rng.random() < 0.3:
        v = rng.choice(idle)
        faults.append(lost_reply(rng, v[0], v[1], v[2]))
    chain = []
    prev = None
    for i in range(rng.choice((1, 2, 2, 3, 3))):
        r = rng.random()
        spec, kill_after = None, None
        if i == 0 and r < 0.05:
            spec = "journal-created"
        elif prev and spec_name(prev) == "journal-torn" and r < 0.5:
            spec = rng.choice(JOURNAL_OPEN[1:])
        else:
            k = rng.random()
            if k < 0.12:
                kill_after = round(rng.uniform(0.3, 6.0), 2)
            else:
                g = rng.random()
                if g < 0.15 and failing:
                    spec = rng.choice(COMPENSATION)
                elif g < 0.5:
                    point = rng.choice(JOURNAL_WRITE)
                    spec = "%s#%d" % (point, rng.randint(1, 12 * n_idle))
                    if point == "journal-torn":
                        spec += ":%d" % rng.randrange(1 << 20)
                else:
                    nth = min(rng.randint(1, n_idle), rng.randint(1, n_idle))
                    spec = "%s#%d" % (rng.choice(SAGA), nth)
                if k > 0.92:
                    kill_after = round(rng.uniform(0.3, 6.0), 2)
        chain.append((spec, kill_after))
        prev = spec
    restore = None
    if rng.random() < 0.6:
        if rng.random() < 0.2:
            faults.append(dict(RESTORE_FAILS, count=1))
            first_spec = "restore-failed"
        else:
            p = rng.choice(RESTORE[:4] + JOURNAL_WRITE)
            first_spec = p if p in RESTORE else "%s#%d" % (p, rng.randint(1, 3))
            if p == "journal-torn":
                first_spec += ":%d" % rng.randrange(1 << 20)
        more = []
        if spec_name(first_spec) == "journal-torn" and rng.random() < 0.5:
            more.append(rng.choice(JOURNAL_OPEN[1:]))
        restore = {"spec": first_spec, "more": more, "daemon_running": rng.random() < 0.5}
    return {"idle": idle, "busy": busy, "faults": faults, "chain": chain, "restore": restore}


def report(seed, s):
    path = os.environ.get("PROXREAP_CRASH_REPORT")
    if not path:
        return
    line = json.dumps({"seed": seed, "events": s.events}) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def check_no_poll_burst(sim):
    """Task polls back off: no task's status asked for in a burst."""
    polls = {}
    for x in sim.requests():
        if x["method"] == "GET" and x["path"].endswith("/status") and "/tasks/" in x["path"]:
            polls.setdefault(x["path"], []).append(x["t"])
    for path, ts in polls.items():
        for i in range(len(ts) - 5):
            assert ts[i + 5] - ts[i] > 0.2, \
                "6 status polls of one task within 0.2s (%s): %s" % (path, ts[i:i + 6])


@pytest.mark.parametrize("seed", range(1, SEEDS + 1), ids=lambda n: "seed%d" % n)
def test_seeded_crashes(lab, scenarios, seed):
    p = plan(seed)
    s = scenarios(p["idle"], p["busy"], p["faults"], label="seed %d: %s" % (seed, json.dumps(p)))

    def body(s):
        for spec, kill_after in p["chain"]:
            s.run_daemon(spec, kill_after)
            if s.settled():
                break
        s.finish()
        rs = p["restore"]
        reaped = s.reaped_ops()
        if rs and rs["spec"] == "restore-failed":
            reaped = [o for o in reaped if o["type"] == "lxc"]
        if rs and reaped:
            op = reaped[seed % len(reaped)]["id"]
            d = None
            if rs["daemon_running"]:
                d = s.lab.daemon(s.cfg)
                d.wait_log("first poll done")
            s.restore_until_done(op, rs["spec"], rs["more"])
            if d is not None:
                d.wait_polls(5)
                assert d.stop() == 0, d.log()
                assert s.journal().tail == b""
            check_invariants(s.lab, s.sim, s.cfg, tap=s.tap)
            check_final(s.lab, s.sim, s.cfg, s.idle, s.busy)
        check_no_poll_burst(s.sim)
    try:
        run_checked(s, body)
    finally:
        report(seed, s)


# ---------------------------------------------------------------- coverage

CALL = re.compile(r'\b(?:crash_point|crash_armed)\(\s*"([a-z-]+)"|'
                  r'\bappend(?:_rec)?\([^;]*?,\s*"([a-z-]+)"\s*\)', re.S)


def points_in_source():
    """Crash point names spelled out in src/*.c: crash_point("x"),
    crash_armed("x", ...) and the last argument of the journal appends of
    saga.c (the point after the record; a step's points, "restore-intent"
    say, are composed from its name and traced instead)."""
    found = {}
    for path in sorted(glob.glob(os.path.join(REPO, "src", "*.c"))):
        with open(path) as fh:
            text = fh.read()
        for m in CALL.finditer(text):
            found.setdefault(m.group(1) or m.group(2), os.path.basename(path))
    return found


def test_every_crash_point_is_tested(lab, scenarios):
    """Every crash point the code has, spelled out (grep) or composed at
    run time (traced in a run that passes them all: a reap, a failed reap
    with compensation, a torn tail cut, a failed and a good restore), is
    in ALL_POINTS, which test_crash_at_every_point crashes at one by one."""
    static = points_in_source()
    assert {"journal-torn", "journal-written", "journal-synced", "selected", "reaped",
            "aborted"} <= set(static), static
    s = scenarios([(901, "lxc", "pve1", {}), (902, "qemu", "pve2", {}), (903, "lxc", "pve1", {}),
                   (904, "lxc", "pve2", {})],
                  faults=[dict(VZDUMP_FAILS, vmid=902, count=1), dict(RESTORE_FAILS, count=1),
                          dict(MIGRATES, vmid=903, count=1)],
                  label="coverage")
    traced = set()

    def body(s):
        s.run_daemon()
        with open(s.jpath, "ab") as fh:
            fh.write(b'{"seq":99,"crc32c":"00')
        s.run_daemon()
        op, other = [o["id"] for o in s.reaped_ops()]
        assert s.restore(op).returncode == 1
        s.restore(op, "restore-task")         # dies; the next one takes it over
        assert s.restore(op).returncode == 0
        s.lose_journal()                      # found again by its archive's notes
        assert s.restore(other).returncode == 0
        for t in glob.glob(os.path.join(s.lab.dir, "trace-*")):
            traced.update(s._points(t))
    run_checked(s, body)
    unknown = (set(static) | traced) - set(ALL_POINTS)
    assert not unknown, "crash points no test crashes at (add them to ALL_POINTS): %s" % sorted(
        unknown)
    missing = set(ALL_POINTS) - traced
    assert not missing, "points in ALL_POINTS that no run passes: %s" % sorted(missing)
