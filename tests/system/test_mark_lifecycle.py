"""A mark means 'reaped after the grace period': it is taken off whatever
the reaper will not take, kept on what it may still take, never reaped
once an operator cancelled it, and a steady refusal costs a line and a few
calls per rest, not per poll (polls are every 10 s on a real node).

Found by an adversarial review of the history gate (dfa9e28)."""

import json
import os
import re
import signal
import time

import pytest

from conftest import guest, wait_until
from test_history_attacks import OBSERVE, REAP, healthy, ops_of, sim_of

QUIET = {"cpu": 0.01, "mem_mb": 200}
REST_POLLS_FAILED = 6      # reaper.c FAILED_REST_POLLS
REST_POLLS_REFUSED = 30    # reaper.c REFUSED_REST_POLLS


def tags_of(sim, vmid):
    return sim.guest(vmid).get("tags") or ""


def kept_json(lab):
    with open(os.path.join(lab.dir, "kept.json")) as fh:
        return json.load(fh)


def log_of(d, vmid):
    return "\n".join(x for x in d.lines() if str(vmid) in x)


def start_marked(lab, vmid, name, grace="1h"):
    """A quiet guest, and proxreapd in reap mode (history 1h) that has
    marked it: (sim, cfg, daemon)."""
    sim = sim_of(lab, [guest(vmid, name, **QUIET)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, grace=grace, history="1h"))
    d = lab.daemon(cfg)
    wait_until(lambda: "proxreap-idle" in tags_of(sim, vmid), timeout=30,
               message="guest %d marked" % vmid)
    return sim, cfg, d


def test_cancelled_mark_is_kept_after_a_reload_to_grace_0(lab):
    """The operator removes the tag ('remove the tag to keep it'); a reload
    to grace 0 must not reap the guest the operator kept."""
    sim, cfg, d = start_marked(lab, 910, "kept")
    sim.event(910, "set", field="tags", value="")
    d.wait_log(r"guest 910: tag 'proxreap-idle' removed by someone, not reaping it", timeout=30)
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, grace="0", history="1h"))
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    healthy(d, more=30)
    assert d.stop() == 0
    assert ops_of(lab, cfg, 910) == [], "kept by its operator, reaped after a reload:\n" + log_of(d, 910)
    assert "proxreap-idle" not in tags_of(sim, 910)


def test_cancelled_mark_survives_restarts_and_a_reboot(lab):
    """Removing the tag cancels the reap until the guest is in use again; a
    restart of proxreapd in observe mode (an admin pausing reaping), a
    reboot (/run emptied) and a restart in reap mode must not mark and reap
    it again: the cancellation is kept in kept.json beside the journal."""
    sim, cfg, d = start_marked(lab, 970, "kept", grace="5s")
    sim.event(970, "set", field="tags", value="")
    d.wait_log(r"guest 970: tag 'proxreap-idle' removed by someone", timeout=30)
    assert d.stop() == 0
    assert kept_json(lab) == {"kept": [{"vmid": 970, "type": "qemu"}]}
    obs = lab.config(sim, name="observe.conf", observe=OBSERVE,
                     reap=dict(REAP, mode="observe", history="1h"),
                     status={"file": lab.status_file_of(cfg)})
    d1 = lab.daemon(obs)
    healthy(d1, more=5)                # rewrites the status file, no reaper in it
    assert d1.stop() == 0
    os.unlink(lab.status_file_of(cfg))  # a reboot empties /run
    d2 = lab.daemon(cfg)
    d2.wait_log(r"1 guest\(s\) an operator kept by removing tag 'proxreap-idle' stay kept "
                r"\(from '.*/kept\.json'\)")
    healthy(d2, more=20)
    time.sleep(7)                      # past the grace period
    healthy(d2, more=20)
    assert d2.stop() == 0
    assert ops_of(lab, cfg, 970) == [], log_of(d2, 970)
    assert "proxreap-idle" not in tags_of(sim, 970), log_of(d2, 970)


# Someone logs in to look: CPU for a few seconds, nothing a 1h history of
# minute rows calls busy, no network, no disk.
GLANCE = {"kind": "constant", "cpu": 0.5, "mem_mb": 200}
QUIET_WL = {"kind": "constant", "cpu": 0.01, "mem_mb": 200}
BUSY_WL = {"kind": "constant", "cpu": 0.5, "mem_mb": 3000, "net_kbps": 2000, "disk_kbps": 20000}


def test_tag_removed_while_in_use_is_a_cancellation(lab):
    """The owner logs in to check the guest (its window turns active for a
    moment) and removes the tag: that is a keep, whatever the window says,
    and the glance does not undo it."""
    sim, cfg, d = start_marked(lab, 990, "checked", grace="15s")
    sim.event(990, "set", field="workload", value=GLANCE)
    d.wait_log(r"guest 990 .* is now active", timeout=30)
    sim.event(990, "set", field="tags", value="")     # the owner keeps it
    d.wait_log(r"guest 990: tag 'proxreap-idle' removed by someone", timeout=30)
    sim.event(990, "set", field="workload", value=QUIET_WL)
    d.wait_log(r"guest 990 .* is now idle", count=2, timeout=30)
    time.sleep(17)                                     # past the grace period
    healthy(d, more=20)
    assert d.stop() == 0
    assert ops_of(lab, cfg, 990) == [], "kept by its owner, reaped:\n" + log_of(d, 990)
    assert "proxreap-idle" not in tags_of(sim, 990), "kept by its owner, marked again:\n" + log_of(d, 990)


def test_cancellation_outlives_a_glance_and_ends_with_use(lab):
    """Kept by its owner, then a glance (one active window its history does
    not call busy): still kept. Then real use its history shows: kept no
    longer, and marked again once idle by its history."""
    sim, cfg, d = start_marked(lab, 991, "kept", grace="1h")
    sim.event(991, "set", field="tags", value="")
    d.wait_log(r"guest 991: tag 'proxreap-idle' removed by someone", timeout=30)
    sim.event(991, "set", field="workload", value=GLANCE)
    d.wait_log(r"guest 991 .* is now active", timeout=30)
    sim.event(991, "set", field="workload", value=QUIET_WL)
    d.wait_log(r"guest 991 .* is now idle", count=2, timeout=30)
    healthy(d, more=20)
    assert "proxreap-idle" not in tags_of(sim, 991), "a glance undid the keep:\n" + log_of(d, 991)
    sim.event(991, "set", field="workload", value=BUSY_WL)
    d.wait_log(r"guest 991 .* is now active", count=2, timeout=30)
    sim.advance(120)                   # the minute rows that hold the use end
    d.wait_log(r"guest 991 \('kept'\) is in use again \(busy in the last 1h by its history .*\): "
               r"kept no longer", timeout=60)
    assert d.stop() == 0
    assert kept_json(lab) == {"kept": []}


def test_tag_put_back_marks_again_with_a_new_grace(lab):
    """Kept by its owner, who changes their mind and puts the tag back: it
    is marked again, its grace period from then on."""
    sim, cfg, d = start_marked(lab, 992, "again", grace="1h")
    sim.event(992, "set", field="tags", value="")
    d.wait_log(r"guest 992: tag 'proxreap-idle' removed by someone", timeout=30)
    sim.event(992, "set", field="tags", value="proxreap-idle")
    d.wait_log(r"guest 992: tag 'proxreap-idle' put back by someone: marked again", timeout=30)
    healthy(d, more=5)
    st = d.status()["reaper"]["marks"]
    assert [(m["vmid"], m["cancelled"]) for m in st] == [(992, False)], st
    assert d.stop() == 0


def test_a_kept_guest_gone_for_good_is_forgotten_not_for_one_answer(lab):
    """One complete answer of /cluster/resources without the kept guest
    (a proxy glitch) does not forget the keep; a guest deleted for good
    is forgotten after 60 polls without it, and kept.json with it."""
    sim, cfg, d = start_marked(lab, 993, "old", grace="2s")
    sim.event(993, "set", field="tags", value="")
    d.wait_log(r"guest 993: tag 'proxreap-idle' removed by someone", timeout=30)
    sim.fault(kind="rewrite", path="/cluster/resources", count=1,
              pattern=r'\{[^{}]*"id":"qemu/993"[^{}]*\},?', repl="")
    d.wait_log(r"guest 993 \('old'\) left the cluster", timeout=30)
    healthy(d, more=10)
    time.sleep(3)                      # past the grace period
    healthy(d, more=10)
    assert ops_of(lab, cfg, 993) == [], "kept, forgotten for one answer, reaped:\n" + log_of(d, 993)
    assert "proxreap-idle" not in tags_of(sim, 993), log_of(d, 993)
    assert kept_json(lab) == {"kept": [{"vmid": 993, "type": "qemu"}]}
    sim.event(993, "delete")
    d.wait_log(r"guest 993 \('old'\) left the cluster", count=2, timeout=30)
    wait_until(lambda: kept_json(lab) == {"kept": []}, timeout=30, message=lambda: kept_json(lab))
    assert d.stop() == 0


@pytest.mark.parametrize("kept", [True, False], ids=["kept", "marked"])
def test_another_guest_on_the_vmid_is_not_kept(lab, kept):
    """The guest kept (or marked) is replaced, between two polls, by a new
    guest of the other type on its vmid: its keep or mark is not the new
    one's, which is judged (and marked) on its own."""
    sim = sim_of(lab, [guest(997, "old", **QUIET)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, mode="mark", history="0"))
    d = lab.daemon(cfg)
    wait_until(lambda: "proxreap-idle" in tags_of(sim, 997), timeout=30)
    if kept:
        sim.event(997, "set", field="tags", value="")
        d.wait_log(r"guest 997: tag 'proxreap-idle' removed by someone", timeout=30)
    sim.create_guest(dict(guest(997, "brand-new", **QUIET), type="lxc"), replace=True)
    d.wait_log(r"guest 997 is a lxc now, the one %s was a qemu: forgotten"
               % ("an operator kept" if kept else "marked"), timeout=30)
    wait_until(lambda: "proxreap-idle" in tags_of(sim, 997), timeout=30,
               message=lambda: log_of(d, 997))
    healthy(d, more=5)
    assert d.stop() == 0
    assert not os.path.exists(os.path.join(lab.dir, "kept.json")) or kept_json(lab) == {"kept": []}


@pytest.mark.parametrize("text,says", [
    ('{"kept": [{"vmid": 994,\n', r"'.*/kept\.json' line 2: "),
    ('{"kept": "994"}\n', r"'.*/kept\.json': no \"kept\" array \(expected .*\)"),
    ('{"kept": [{"vmid": 994, "type": "vm"}]}\n', r"'.*/kept\.json': entry 1 is not "),
], ids=["truncated", "no-array", "bad-entry"])
def test_a_damaged_kept_file_stops_selection_until_fixed(lab, text, says):
    """kept.json damaged (a crash of the disk, a hand edit): who was kept is
    not known. proxreapd names the file, where and what, observes, but
    marks and selects nothing, with grace 0 too, until the file is fixed
    or removed and the configuration reloaded; it never overwrites it."""
    sim = sim_of(lab, [guest(994, "was-kept", **QUIET)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, grace="0", history="1h"))
    path = os.path.join(lab.dir, "kept.json")
    with open(path, "w") as fh:
        fh.write(text)
    d = lab.daemon(cfg)
    d.wait_log(r"error: " + says + r".*: who an operator kept by removing tag 'proxreap-idle' is "
               r"not known, so no guest is marked or selected for reaping; fix or remove the file, "
               r"then reload")
    d.wait_log(r"guest 994 .* is now idle", timeout=30)
    healthy(d, more=30)
    assert ops_of(lab, cfg, 994) == [], log_of(d, 994)
    assert "proxreap-idle" not in tags_of(sim, 994), log_of(d, 994)
    r = lab.cli("status", config=cfg)
    assert re.search(r"kept guests: UNKNOWN \(" + says + r".*\): no guest is marked or selected",
                     r.stdout), r.stdout
    with open(path) as fh:
        assert fh.read() == text, "a damaged kept.json was overwritten"
    os.unlink(path)
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    wait_until(lambda: ops_of(lab, cfg, 994), timeout=60, interval=0.2,
               message=lambda: log_of(d, 994))
    assert d.stop() == 0


def test_a_keep_survives_a_damaged_kept_file_fixed_and_reloaded(lab):
    """Kept, then kept.json damaged and proxreapd restarted: the kept guest
    is not marked meanwhile (our tag on it would read as the operator
    putting it back once the file is fixed); a keep made while the file is
    damaged is written once it is fixed and the configuration reloaded;
    nothing kept is reaped."""
    sim = sim_of(lab, [guest(981, "kept", **QUIET), guest(982, "kept-later", **QUIET)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, grace="3s", history="1h"))
    d = lab.daemon(cfg)
    wait_until(lambda: "proxreap-idle" in tags_of(sim, 981) and "proxreap-idle" in tags_of(sim, 982),
               timeout=30)
    sim.event(981, "set", field="tags", value="")
    d.wait_log(r"guest 981: tag 'proxreap-idle' removed by someone", timeout=30)
    assert d.stop() == 0
    path = os.path.join(lab.dir, "kept.json")
    with open(path) as fh:
        good = fh.read()
    with open(path, "w") as fh:
        fh.write('{"kept": [')
    d = lab.daemon(cfg)
    d.wait_log(r"error: .*kept\.json.*no guest is marked or selected")
    d.wait_log(r"guest 981 .* is now idle", timeout=30)
    healthy(d, more=20)
    assert "proxreap-idle" not in tags_of(sim, 981), log_of(d, 981)
    sim.event(982, "set", field="tags", value="")   # marked by the run before
    d.wait_log(r"guest 982: tag 'proxreap-idle' removed by someone", timeout=30)
    d.wait_log(r"'.*/kept\.json' is damaged and left as it is")
    with open(path) as fh:
        assert fh.read() == '{"kept": ['
    with open(path, "w") as fh:
        fh.write(good)
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    d.wait_log(r"1 guest\(s\) an operator kept by removing tag 'proxreap-idle' stay kept")
    healthy(d, more=20)
    time.sleep(4)                    # past the grace period
    healthy(d, more=10)
    assert d.stop() == 0
    for vmid in (981, 982):
        assert ops_of(lab, cfg, vmid) == [], "kept, reaped:\n" + log_of(d, vmid)
        assert "proxreap-idle" not in tags_of(sim, vmid), log_of(d, vmid)
    assert sorted(x["vmid"] for x in kept_json(lab)["kept"]) == [981, 982]


GIB = 1 << 30
SHARED = [{"storage": "local", "plugintype": "dir", "content": "iso,vztmpl,backup",
           "maxdisk": 100 * GIB, "disk": 8 * GIB},
          {"storage": "local-lvm", "plugintype": "lvmthin", "content": "images,rootdir",
           "maxdisk": 800 * GIB, "disk": 120 * GIB},
          {"storage": "nfs", "plugintype": "nfs", "content": "backup", "shared": 1,
           "maxdisk": 1000 * GIB, "disk": 8 * GIB}]


def test_restored_guest_held_while_its_node_is_busy(lab):
    """A guest restored (--start) onto a node where another reap is under
    way: no tag write of ours while the restore runs, and not marked again
    in its cooldown (hold_of() looked at the busy node first)."""
    sim = sim_of(lab, [guest(700, "slow", **QUIET), guest(701, "fast", node="pve2", **QUIET)],
                 storages=SHARED)
    # 700's archive on pve1 never ends: its reap stays under way
    sim.fault(kind="task_hang", type="vzdump", path="^/nodes/pve1/vzdump$", count=1)
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, archive_storage="nfs", grace="2s",
                                                     history="1h", max_per_cycle=2))
    d = lab.daemon(cfg)
    wait_until(lambda: any(o["state"] == "reaped" for o in ops_of(lab, cfg, 701)), timeout=60,
               interval=0.2)
    ops700 = ops_of(lab, cfg, 700)
    assert len(ops700) == 1 and ops700[0]["state"] not in ("reaped", "aborted"), ops700
    r = lab.cli("restore", ops_of(lab, cfg, 701)[0]["id"], "--node", "pve1", "--start", "--yes",
                config=cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    d.wait_log(r"guest 701 .* is now idle", count=2, timeout=30)
    healthy(d, more=30)
    assert d.stop() == 0
    marked = [x for x in d.lines() if "marked idle guest 701" in x]
    assert len(marked) == 1, "restored (cooldown), marked again at once:\n" + log_of(d, 701)
    assert not [x for x in d.lines() if "unmarked" in x and "guest 701" in x], log_of(d, 701)
    assert "proxreap-restored" in tags_of(sim, 701), tags_of(sim, 701)


def test_archive_room_refusal_rests(lab):
    """A steady refusal at selection (archive storage too small): one line
    per rest of 30 polls, and no RRD read for it."""
    sim = sim_of(lab, [guest(920, "idle", **QUIET)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, history="1h"))
    sim.set_storage("local", avail=1000)
    line = r"idle guest 920 \('idle'\) not reaped: archive storage 'local' has 0 MiB free"
    d = lab.daemon(cfg)
    d.wait_log(line + r".* \(tried again in 30 polls\)", timeout=30)
    sim.clear_requests()
    n0, p0 = d.count(line), d.wait_polls(1)["api"]["polls_ok"]
    healthy(d, more=2 * REST_POLLS_REFUSED)
    n1, p1 = d.count(line), d.wait_polls(1)["api"]["polls_ok"]
    rrd = [r for r in sim.requests() if r["path"].endswith("/rrddata")]
    assert d.stop() == 0
    assert ops_of(lab, cfg, 920) == []
    assert 1 <= n1 - n0 <= (p1 - p0) // REST_POLLS_REFUSED + 1 and rrd == [], (
        "%d polls: %d refusal lines, %d rrddata reads" % (p1 - p0, n1 - n0, len(rrd)))


def test_unreadable_history_keeps_the_mark(lab):
    """A marked guest whose history cannot be read for a while (pvestatd
    stalled): not reaped, and its mark (and grace period) kept; the log
    says so."""
    sim, cfg, d = start_marked(lab, 930, "marked")
    sim.fault(kind="status", path="/rrddata$", code=500, message="rrd error")
    d.signal(signal.SIGHUP)            # forgets what its history said
    d.wait_log("configuration reloaded")
    d.wait_log(r"idle guest 930 \('marked'\) stays marked, not reaped for now: its history cannot be "
               r"read", timeout=30)
    healthy(d, more=10)
    assert d.stop() == 0
    assert "proxreap-idle" in tags_of(sim, 930), log_of(d, 930)
    assert ops_of(lab, cfg, 930) == []


def test_failed_unmark_rests(lab):
    """Its history turns busy while its window is idle, and the tag cannot
    be removed (the guest is locked by a backup): the mark goes, a write
    is tried once per rest, not at every poll; and it is never reaped."""
    sim, cfg, d = start_marked(lab, 940, "locked")
    sim.fault(kind="rewrite", path="/rrddata$", pattern=r'"cpu":[0-9.e+-]+', repl='"cpu":0.9')
    sim.fault(kind="status", path="/config$", method="PUT", code=500, message="VM is locked (backup)")
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    line = (r"cannot unmark guest 940 \(busy in the last 1h by its history \(cpu average up to 90\.00% "
            r">= 5%\)\): .*HTTP 500 VM is locked \(backup\) \(tried again in 6 polls\)")
    d.wait_log(line, timeout=30)
    n0, p0 = d.count(line), d.wait_polls(1)["api"]["polls_ok"]
    healthy(d, more=4 * REST_POLLS_FAILED)
    n1, p1 = d.count(line), d.wait_polls(1)["api"]["polls_ok"]
    assert d.stop() == 0
    assert n1 - n0 <= (p1 - p0) // REST_POLLS_FAILED + 1, (
        "%d failed unmark attempts in %d polls" % (n1 - n0, p1 - p0))
    assert ops_of(lab, cfg, 940) == []


def test_keep_tag_takes_the_mark_off(lab):
    """The operator opts a marked guest out for good (proxreap-keep): the
    reaper will never take it, so its proxreap-idle tag goes, the other
    tag stays."""
    sim, cfg, d = start_marked(lab, 950, "kept-for-good")
    sim.event(950, "set", field="tags", value="proxreap-idle;proxreap-keep")
    d.wait_log(r"unmarked \(excluded: opt-out tag 'proxreap-keep'\) guest 950", timeout=30)
    healthy(d, more=10)
    assert d.stop() == 0
    assert tags_of(sim, 950) == "proxreap-keep", log_of(d, 950)


def test_out_of_scope_takes_the_mark_off(lab):
    """A reload takes a marked guest out of scope (vmid range): it will
    never be reaped, so its mark goes."""
    sim, cfg, d = start_marked(lab, 960, "out-of-scope")
    lab.config(sim, observe=OBSERVE, select={"exclude_vmids": ["900-999"]},
                     reap=dict(REAP, grace="1h", history="1h"))
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    d.wait_log(r"unmarked \(excluded: vmid in excluded range 900-999\) guest 960", timeout=30)
    healthy(d, more=10)
    assert d.stop() == 0
    assert "proxreap-idle" not in tags_of(sim, 960), log_of(d, 960)
