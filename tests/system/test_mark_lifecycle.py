"""A mark means 'reaped after the grace period': it is taken off whatever
the reaper will not take, kept on what it may still take, never reaped
once an operator cancelled it, and a steady refusal costs a line and a few
calls per rest, not per poll (polls are every 10 s on a real node).

Found by an adversarial review of the history gate (dfa9e28)."""

import signal
import time

from conftest import guest, wait_until
from test_history_attacks import OBSERVE, REAP, healthy, ops_of, sim_of

QUIET = {"cpu": 0.01, "mem_mb": 200}
REST_POLLS_FAILED = 6      # reaper.c FAILED_REST_POLLS
REST_POLLS_REFUSED = 30    # reaper.c REFUSED_REST_POLLS


def tags_of(sim, vmid):
    return sim.guest(vmid).get("tags") or ""


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


def test_cancelled_mark_survives_a_restart(lab):
    """Removing the tag cancels the reap until the guest turns active again;
    a restart of proxreapd (a package upgrade) must not mark and reap it
    again: the cancellation is carried over in the status file."""
    sim, cfg, d = start_marked(lab, 970, "kept", grace="5s")
    sim.event(970, "set", field="tags", value="")
    d.wait_log(r"guest 970: tag 'proxreap-idle' removed by someone", timeout=30)
    healthy(d, more=3)  # a status file written since
    assert d.stop() == 0
    d2 = lab.daemon(cfg)
    d2.wait_log(r"1 guest\(s\) an operator kept by removing tag 'proxreap-idle' stay kept")
    healthy(d2, more=20)
    time.sleep(7)                      # past the grace period
    healthy(d2, more=20)
    assert d2.stop() == 0
    assert ops_of(lab, cfg, 970) == [], log_of(d2, 970)
    assert "proxreap-idle" not in tags_of(sim, 970), log_of(d2, 970)


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
