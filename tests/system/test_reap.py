"""Reap mode end to end: the saga against the simulator, selection limits,
mark mode and grace, faults at every step, and the operator's journal and
restore commands (kill -9 at every crash point: test_crash.py).

The invariant every test checks at the end (check_invariants): no guest
was destroyed without a protected archive of it on the archive storage,
no guest was destroyed twice, the journal verifies, and every op is
terminal or resumable.
"""

import json
import os
import re
import subprocess

import pytest

from conftest import PROXREAPD, check_invariants, guest, journal_ops, wait_until  # noqa: F401

FAST = {"qmshutdown": 0.3, "vzshutdown": 0.3, "qmsnapshot": 0.2, "vzsnapshot": 0.2,
        "vzdump": 0.4, "qmdestroy": 0.2, "vzdestroy": 0.2, "qmstart": 0.2, "vzstart": 0.2,
        "qmrestore": 0.3, "vzrestore": 0.3, "hastop": 0.2, "hastart": 0.2}

REAP = {"mode": "reap", "archive_storage": "local", "breaker_jump": 100}
OBSERVE = {"interval": "100ms", "window": "1s", "nodes": "all", "node_name": "pve1"}

IDLE = dict(cpu=0.01, mem_mb=200)


def sim_of(lab, guests, **over):
    over.setdefault("task_durations", FAST)
    return lab.sim(guests, **over)


def reap_config(lab, sim, name="proxreap.conf", **reap):
    r = dict(REAP)
    r.update(reap)
    return lab.config(sim, name=name, observe=OBSERVE, reap=r)


def journal_of(lab):
    return os.path.join(lab.dir, "journal")


def ops(lab, config):
    return journal_ops(lab, config)


def ops_by_vmid(lab, config, vmid):
    return [o for o in ops(lab, config).values() if o["vmid"] == vmid]


def wait_op(lab, config, vmid, states, timeout=60):
    def done():
        found = [o for o in ops_by_vmid(lab, config, vmid) if o["state"] in states]
        return found[-1] if found else None
    return wait_until(done, timeout=timeout, interval=0.2,
                      message=lambda: "op of %d in %s; ops: %s" % (vmid, states, ops(lab, config)))


def healthy(d, more=5):
    """The daemon still runs and completes polls: `more` successful ones
    from now."""
    d.assert_running()
    n = d.wait_polls(1)["api"]["polls_ok"]
    d.wait_status(lambda s: s["api"]["ok"] and s["api"]["polls_ok"] >= n + more,
                  what="%d more successful polls" % more)


def writes(sim, vmid=None):
    """Non-GET API calls, in order, as 'METHOD path'."""
    out = []
    for r in sim.requests():
        if r["method"] == "GET":
            continue
        body = r.get("body") or {}
        if vmid is not None and "/%d" % vmid not in r["path"] and str(body.get("vmid")) != str(vmid):
            continue
        out.append("%s %s" % (r["method"], r["path"]))
    return out


# check_invariants (conftest.py): no destroy without a protected archive,
# at most one destroy per guest, no saga call without its journaled intent,
# the journal verifies, every op terminal or resumable.


# ---------------------------------------------------------------- the saga

def test_reap_qemu_and_lxc_end_to_end(lab):
    sim = sim_of(lab, [guest(101, "vm-idle", **IDLE),
                       guest(102, "ct-idle", type="lxc", **IDLE),
                       guest(103, "busy", cpu=0.5, mem_mb=4000)])
    cfg = reap_config(lab, sim, max_per_cycle=2)
    d = lab.daemon(cfg)
    vm = wait_op(lab, cfg, 101, {"reaped"})
    ct = wait_op(lab, cfg, 102, {"reaped"})
    d.stop()
    # The exact sequence of changes per guest.
    assert writes(sim, 101) == [
        "POST /nodes/pve1/qemu/101/status/shutdown",
        "POST /nodes/pve1/qemu/101/snapshot",
        "POST /nodes/pve1/vzdump",
        "DELETE /nodes/pve1/qemu/101",
    ]
    assert writes(sim, 102) == [
        "POST /nodes/pve1/lxc/102/status/shutdown",
        "POST /nodes/pve1/lxc/102/snapshot",
        "POST /nodes/pve1/vzdump",
        "DELETE /nodes/pve1/lxc/102",
    ]
    assert writes(sim, 103) == []
    # vzdump: protected, never prunes, stop mode, zstd, our notes.
    dumps = [r for r in sim.requests() if r["path"] == "/nodes/pve1/vzdump"]
    for r in dumps:
        body = r["body"]
        for k, v in (("protected", "1"), ("remove", "0"), ("mode", "stop"), ("compress", "zstd"),
                     ("storage", "local")):
            assert body.get(k) == v, body
        assert "proxreap R-" in body["notes-template"]
    assert vm["volid"].startswith("local:backup/vzdump-qemu-101-") and vm["volid"].endswith(".vma.zst")
    assert ct["volid"].startswith("local:backup/vzdump-lxc-102-") and ct["volid"].endswith(".tar.zst")
    assert vm["freed_mem"] > 0 and vm["freed_disk"] > 0
    # Destroy with purge; guests gone; the archive is protected.
    dels = [r for r in sim.requests() if r["method"] == "DELETE"]
    assert dels and all((r.get("body") or r.get("query") or {}).get("purge") == "1" for r in dels)
    assert {g["vmid"] for g in sim.guests()} == {103}
    # journal show: every record of the op, the evidence included.
    r = lab.cli("journal", "show", vm["id"], "--json", config=cfg)
    recs = json.loads(r.stdout)
    evs = [(x["ev"], x.get("step")) for x in recs]
    assert evs[0] == ("selected", None) and evs[-1] == ("reaped", None)
    assert ("done", "verify") in evs
    assert "mean cpu" in recs[0]["evidence"]
    verify = [x for x in recs if x["ev"] == "done" and x.get("step") == "verify"][0]
    assert verify["config"] and verify["size"] > 0
    check_invariants(lab, sim, cfg)


def test_nothing_sent_for_guests_that_must_not_be_touched(lab):
    sim = sim_of(lab, [
        guest(201, "protected", protection=1, **IDLE),
        guest(202, "locked", lock="backup", **IDLE),
        guest(203, "ha", ha=True, **IDLE),
        guest(204, "template", template=1, **IDLE),
        guest(205, "keep", tags="proxreap-keep", **IDLE),
        guest(206, "busy", cpu=0.6, mem_mb=3000),
    ])
    cfg = reap_config(lab, sim, max_per_cycle=10)
    d = lab.daemon(cfg)
    d.wait_polls(30)
    d.stop()
    assert writes(sim) == []
    assert ops(lab, cfg) == {}


def test_breaker_opens_on_broken_data_not_on_an_idle_fleet(lab):
    """Most guests idle is normal (the end of a semester): reaped, within
    the limits. Running guests whose CPU reads exactly zero for a whole
    window are broken data: no reap, said why; marking goes on."""
    zero = [guest(300 + i, "zero%d" % i, cpu=0.0, mem_mb=200) for i in range(4)]
    sim = sim_of(lab, zero + [guest(310, "busy", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim, breaker_jump=30, grace="1h")
    d = lab.daemon(cfg)
    d.wait_log(re.escape("circuit breaker open: 4 of 5 running guests show frozen data or no CPU at all (more than 20%), reaping none"))
    # the marks of the grace period go on: only reaping stops
    wait_until(lambda: all("proxreap-idle" in (sim.guest(300 + i).get("tags") or "") for i in range(4)),
               timeout=30)
    r = lab.cli("status", config=cfg)
    assert "\nreaper: BREAKER OPEN: 4 of 5 running guests show frozen data" in r.stdout, r.stdout
    d.stop()
    assert [w for w in writes(sim) if "/config" not in w] == [], writes(sim)
    # 4 of 5 idle, by real numbers: reaped, one per cycle, max_per_hour.
    sim2 = sim_of(lab, [guest(320 + i, "idle%d" % i, **IDLE) for i in range(4)]
                  + [guest(330, "busy", cpu=0.5, mem_mb=3000)])
    cfg2 = reap_config(lab, sim2, name="p2.conf", breaker_jump=30, max_per_cycle=1, max_per_hour=2)
    d2 = lab.daemon(cfg2)
    wait_until(lambda: len([o for o in ops(lab, cfg2).values() if o["state"] == "reaped"]) == 2,
               timeout=60, interval=0.2)
    healthy(d2, more=20)                    # room for a third one, which must not come
    d2.stop()
    assert "circuit breaker open" not in d2.log()
    assert len(ops(lab, cfg2)) == 2, "max_per_hour = 2"
    check_invariants(lab, sim2, cfg2)


def test_breaker_opens_on_a_jump_of_the_idle_share(lab):
    """Four guests turn idle at once (their numbers broke, say): the idle
    share jumps from none of 6 to 4 of 6 within the hour: no reap."""
    busy = {"kind": "constant", "cpu": 0.5, "mem_mb": 3000}
    sim = sim_of(lab, [guest(340 + i, "turns%d" % i, history=[{"until": 4, "workload": busy}], **IDLE)
                       for i in range(4)]
                 + [guest(350 + i, "busy%d" % i, cpu=0.5, mem_mb=3000) for i in range(2)])
    cfg = reap_config(lab, sim, breaker_jump=30, history="0")
    d = lab.daemon(cfg)
    d.wait_log(re.escape("circuit breaker open: the idle share jumped from 0% to 67% (4 of 6 eligible guests) within the hour (more than 30 points), reaping none"))
    healthy(d, more=10)
    d.stop()
    assert ops(lab, cfg) == {}
    assert [w for w in writes(sim) if "/config" not in w] == [], writes(sim)


def test_mark_mode_tags_and_untags(lab):
    sim = sim_of(lab, [guest(401, "idle", tags="web;prod", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE, reap={"mode": "mark", "breaker_jump": 100, "history": "1h"})
    d = lab.daemon(cfg)
    wait_until(lambda: "proxreap-idle" in (sim.guest(401).get("tags") or ""), timeout=30)
    # Every other tag kept (Proxmox itself sorts the list by default).
    assert set(sim.guest(401)["tags"].split(";")) == {"web", "prod", "proxreap-idle"}
    puts = [r for r in sim.requests() if r["method"] == "PUT"]
    assert puts and all(r["body"].get("digest") for r in puts)
    # It turns busy: one active window is not evidence enough while its
    # history (the RRD, whose newest row is a minute old) still says idle.
    sim.event(401, "set", field="workload", value={"kind": "constant", "cpu": 0.5, "mem_mb": 3000})
    d.wait_log(r"guest 401 \('idle', qemu on 'pve1'\) is now active")
    healthy(d, more=20)
    assert "proxreap-idle" in sim.guest(401)["tags"]
    # Busy for minutes, by its history too: unmarked, other tags kept.
    sim.advance(180)
    d.wait_log(r"unmarked \(active again: busy in the last 1h by its history \(cpu average up to 50\.00% >= 5%")
    wait_until(lambda: "proxreap-idle" not in (sim.guest(401).get("tags") or ""), timeout=30)
    assert set(sim.guest(401)["tags"].split(";")) == {"web", "prod"}
    d.stop()
    assert not [r for r in sim.requests() if r["method"] in ("POST", "DELETE")]


def test_grace_marks_first_and_operator_can_cancel(lab):
    sim = sim_of(lab, [guest(501, "a", **IDLE), guest(502, "b", **IDLE), guest(503, "busy", cpu=0.5, mem_mb=3000),
                       guest(504, "busy2", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim, grace="3s", max_per_cycle=2)
    d = lab.daemon(cfg)
    wait_until(lambda: all("proxreap-idle" in (sim.guest(v).get("tags") or "") for v in (501, 502)), timeout=30)
    assert ops(lab, cfg) == {}
    # The operator removes the tag of 502 in the UI: cancelled.
    sim.event(502, "set", field="tags", value="")
    wait_op(lab, cfg, 501, {"reaped"})
    healthy(d, more=20)                     # 20 polls after the reap, not since the start
    d.stop()
    assert ops_by_vmid(lab, cfg, 502) == []
    assert sim.guest(502) is not None and sim.guest(502)["status"] == "running"
    check_invariants(lab, sim, cfg)


# ---------------------------------------------------------------- faults

@pytest.mark.parametrize("step,fault", [
    ("shutdown", {"kind": "task_fail", "type": "shutdown", "error": "VM quit/powerdown failed - got timeout"}),
    ("snapshot", {"kind": "task_fail", "type": "snapshot", "error": "snapshot failed"}),
    ("archive", {"kind": "task_fail", "type": "vzdump", "error": "command 'vma create' failed: exit code 1"}),
    ("archive-full", {"kind": "storage_full", "storage": "local"}),
    ("archive-hang", {"kind": "task_hang", "type": "vzdump"}),
    ("archive-5xx", {"kind": "status", "path": "^/nodes/pve1/vzdump$", "method": "POST", "code": 500,
                     "message": "got unexpected error"}),
    ("destroy", {"kind": "task_fail", "type": "qmdestroy", "error": "unable to remove disk"}),
])
def test_failure_leaves_guest_alive_or_archived(lab, step, fault):
    sim = sim_of(lab, [guest(601, "victim", **IDLE)])
    sim.fault(count=1, **fault)
    cfg = reap_config(lab, sim, task_timeout="2s", retry_after="1h")
    d = lab.daemon(cfg)
    if step == "archive-full":
        # Free space is checked before anything is changed: nothing starts.
        d.wait_log("archive storage 'local' has 0 MiB free")
        healthy(d)
        assert d.stop() == 0
        assert ops(lab, cfg) == {} and writes(sim) == []
        return
    op = wait_op(lab, cfg, 601, {"aborted", "reaped"}, timeout=90)
    healthy(d)
    assert d.stop() == 0
    assert op["state"] == "aborted", op
    g = sim.guest(601)
    assert g is not None, "the guest was lost"
    assert g["status"] == "running", "compensation starts the guest again"
    assert "proxreap-failed" in (g.get("tags") or "")
    assert op["reason"]
    # retry_after: not tried again.
    assert len(ops_by_vmid(lab, cfg, 601)) == 1
    check_invariants(lab, sim, cfg)


@pytest.mark.parametrize("path,method", [
    (r"/status/shutdown$", "POST"),
    (r"/snapshot$", "POST"),
    (r"^/nodes/pve1/vzdump$", "POST"),
    (r"^/nodes/pve1/qemu/701$", "DELETE"),
])
def test_lost_reply_after_the_server_acted(lab, path, method):
    sim = sim_of(lab, [guest(701, "victim", **IDLE)])
    sim.fault(kind="lost_reply", path=path, method=method, count=1)
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 701, {"reaped", "aborted"}, timeout=90)
    healthy(d)
    assert d.stop() == 0
    assert op["state"] == "reaped", op
    # The lost call was not sent twice.
    sent = [r for r in sim.requests() if r["method"] == method and __import__("re").search(path, r["path"])]
    assert len(sent) == 1, sent
    assert "found the" in d.log()
    check_invariants(lab, sim, cfg)


def test_guest_started_by_a_user_before_destroy_is_kept(lab):
    """Stop the daemon right after verify (a crash point), let a user start
    the guest, restart: the destroy re-check refuses, nothing is destroyed."""
    sim = sim_of(lab, [guest(801, "victim", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg, env={"PROXREAP_CRASH_AT": "verify-done"})
    wait_until(lambda: not d.running(), timeout=60, message="the crash after verify")
    d.returncode = d.proc.returncode
    sim.event(801, "start")
    wait_until(lambda: sim.guest(801)["status"] == "running", timeout=10)
    d2 = lab.daemon(cfg)
    op = wait_op(lab, cfg, 801, {"aborted", "reaped"}, timeout=60)
    healthy(d2)
    assert d2.stop() == 0
    assert op["state"] == "aborted" and op["reason"].startswith(
        "the guest is running again (started after proxreap stopped it): not destroying it"), op
    assert sim.guest(801)["status"] == "running"
    assert not sim.history(event="destroy")
    assert not [r for r in sim.requests() if r["method"] == "DELETE"]
    check_invariants(lab, sim, cfg)


# ---------------------------------------------------------------- crashes

# kill -9 at every crash point, and seeded chains of crashes: test_crash.py.


# ---------------------------------------------------------------- restore

def reap_one(lab, vmid=1001, gtype="qemu", **reap):
    sim = sim_of(lab, [guest(vmid, "victim", type=gtype, tags="web", **IDLE)])
    cfg = reap_config(lab, sim, **reap)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, vmid, {"reaped"})
    return sim, cfg, d, op


def test_restore_while_daemon_runs_then_cooldown(lab):
    sim, cfg, d, op = reap_one(lab)
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 0, r.stderr
    assert "restored as guest 1001" in r.stdout
    g = wait_until(lambda: sim.guest(1001), timeout=10)
    assert "proxreap-restored" in g["tags"] and "web" in g["tags"]
    # Idempotent: a second run creates nothing.
    n = len([x for x in sim.requests() if x["method"] == "POST" and x["path"] == "/nodes/pve1/qemu"])
    r2 = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r2.returncode == 0 and "already restored" in r2.stdout
    assert len([x for x in sim.requests() if x["method"] == "POST" and x["path"] == "/nodes/pve1/qemu"]) == n
    # The running daemon sees it: started and idle, but in cooldown.
    lab.cli("journal", "list", config=cfg)
    sim.event(1001, "start")
    healthy(d, more=40)                     # 40 polls with it running, not since the start
    d.stop()
    assert [o["state"] for o in ops_by_vmid(lab, cfg, 1001)] == ["restored"]
    check_invariants(lab, sim, cfg)


def test_restore_lxc_needs_storage_and_vmid_collision(lab):
    sim, cfg, d, op = reap_one(lab, vmid=1101, gtype="lxc")
    d.stop()
    # Someone took the vmid in the meantime.
    sim.create_guest(guest(1101, "squatter", **IDLE))
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 1
    assert "vmid 1101 is taken" in r.stderr and "--vmid" in r.stderr
    r = lab.cli("restore", op["id"], "--yes", "--vmid", "1101", config=cfg)
    assert r.returncode == 1 and "taken" in r.stderr
    r = lab.cli("restore", op["id"], "--yes", "--vmid", "1150", "--storage", "local-lvm", config=cfg)
    assert r.returncode == 0, r.stderr
    posts = [x for x in sim.requests() if x["method"] == "POST" and x["path"] == "/nodes/pve1/lxc"]
    assert len(posts) == 1 and posts[0]["body"]["restore"] == "1" and posts[0]["body"]["storage"] == "local-lvm"
    assert sim.guest(1150) is not None


def test_restore_refuses_when_archive_is_gone(lab):
    sim, cfg, d, op = reap_one(lab, vmid=1201)
    d.stop()
    sim.remove_volume(op["volid"])
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 1 and "is gone" in r.stderr
    assert not [x for x in sim.requests() if x["method"] == "POST" and x["path"] == "/nodes/pve1/qemu"]


def test_restore_needs_yes_off_a_terminal(lab):
    sim, cfg, d, op = reap_one(lab, vmid=1301)
    d.stop()
    r = lab.cli("restore", op["id"], config=cfg)
    assert r.returncode == 2 and "--yes" in r.stderr


# ---------------------------------------------------------------- journal damage

def test_journal_verify_and_damaged_journal_stops_daemon(lab):
    sim, cfg, d, op = reap_one(lab, vmid=1401)
    d.stop()
    path = journal_of(lab)
    data = bytearray(open(path, "rb").read())
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 0 and "OK" in r.stdout
    # A torn tail: verify reports it, the daemon cuts it (keeping a copy).
    with open(path, "ab") as fh:
        fh.write(b'{"seq":99,"crc32c":"0000')
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 1 and "torn" in r.stderr
    d2 = lab.daemon(cfg)
    d2.wait_log("cut a torn last record")
    d2.stop()
    assert open(path, "rb").read() == bytes(data)
    assert [f for f in os.listdir(lab.dir) if f.startswith("journal.torn-")]
    # A flipped bit in the middle: verify fails and names it; the daemon
    # starts, observes, reaps nothing, and says why; the file stays as it is.
    mid = data.index(b'"ev":"done"') + 3
    line = data[:mid].count(b"\n") + 1
    data[mid] ^= 0x01
    open(path, "wb").write(bytes(data))
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 1, r
    assert "%s:%d (byte " % (path, line) in r.stderr and "CRC mismatch" in r.stderr, r.stderr
    assert "1 damaged line(s): line %d" % line in r.stderr, r.stderr
    d3 = lab.daemon(cfg)
    d3.wait_log(r"^proxreapd: error: journal '.*' is damaged: 1 line\(s\) skipped \(line %d; first: .*CRC "
                r"mismatch.*\); reaping has stopped, observing goes on: stop proxreapd and run "
                r"'proxreap journal repair'$" % line)
    healthy(d3)
    assert d3.stop() == 0
    assert open(path, "rb").read() == bytes(data), "a damaged journal is never truncated"


def test_history_veto_by_every_idle_rule(lab):
    """reap.history reads the RRD over the horizon and refuses a guest that
    was busy then by any idle rule: network and disk too where those rules
    are set, not only CPU and memory; and one whose history covers too
    little of the horizon. An idle history passes."""
    quiet = {"kind": "constant", "cpu": 0.01, "mem_mb": 200}
    guests = [
        guest(601, "replica", history=[{"until": -1200, "workload": dict(quiet, net_kbps=5000)}],
              **IDLE),
        guest(602, "backup-target", history=[{"until": -1200, "workload": dict(quiet, disk_kbps=90000)}],
              **IDLE),
        guest(603, "nightly", history=[{"until": -1200, "workload": dict(quiet, cpu=0.5)}], **IDLE),
        guest(604, "young", uptime=1200, **IDLE),
        guest(605, "abandoned", **IDLE),
    ]
    sim = sim_of(lab, guests)
    cfg = lab.config(sim, observe=OBSERVE, idle={"net_kbps": 100, "disk_kbps": 8000},
                     reap=dict(REAP, history="1h", max_per_cycle=5))
    d = lab.daemon(cfg)
    wait_op(lab, cfg, 605, {"reaped"})
    # (net_kbps and disk_kbps of the simulator apply to in and out, read
    # and write each: the RRD's sums are twice them)
    for vmid, why in ((601, r"network up to 10000\.0 kbit/s >= 100 kbit/s"),
                      (602, r"disk up to 180000\.0 kbit/s >= 8000 kbit/s"),
                      (603, r"cpu average up to 50\.00% >= 5%"),
                      (604, r"its history covers too little of the last 1h \(\d+ of \d+ rows")):
        d.wait_log(r"idle guest %d \('[a-z-]+'\) not reaped: (busy in the last 1h by its history \()?%s"
                   % (vmid, why))
    healthy(d, more=5)
    assert d.stop() == 0
    assert [v for v in (601, 602, 603, 604) if ops_by_vmid(lab, cfg, v)] == []
    check_invariants(lab, sim, cfg)


def test_mark_mode_marks_only_what_the_history_allows(lab):
    """Mark mode tags only what the reaper would take: a guest whose
    history refuses it is never tagged, and its RRD is read once, not at
    every poll."""
    busy_past = [{"until": -1200, "workload": {"kind": "constant", "cpu": 0.5, "mem_mb": 200}}]
    sim = sim_of(lab, [guest(701, "nightly", history=busy_past, **IDLE), guest(702, "abandoned", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE, reap={"mode": "mark", "breaker_jump": 100, "history": "1h"})
    d = lab.daemon(cfg)
    wait_until(lambda: "proxreap-idle" in (sim.guest(702).get("tags") or ""), timeout=30)
    d.wait_log(r"idle guest 701 \('nightly'\) not marked: busy in the last 1h by its history "
               r"\(cpu average up to 50\.00% >= 5%\)")
    healthy(d, more=20)
    assert d.stop() == 0
    assert "proxreap-idle" not in (sim.guest(701).get("tags") or "")
    rrd = [r for r in sim.requests() if r["path"].endswith("/701/rrddata")]
    assert len(rrd) == 1, rrd
