"""The undo path an operator at 3 a.m. needs: restore by what they know
(a vmid, a guest's name, an op id in any case), nothing guessed."""

import json
import os
import re
import signal
import time

from conftest import check_invariants, guest, journal_records, wait_until
from test_reap import IDLE, healthy, ops_by_vmid, reap_config, sim_of, wait_op


def creates(sim):
    return [r for r in sim.requests() if r["method"] == "POST" and r["path"] == "/nodes/pve1/qemu"]


def reap_two_namesakes(lab):
    sim = sim_of(lab, [guest(104, "thesis-2023", **IDLE), guest(105, "Thesis-2023", **IDLE),
                       guest(106, "web", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    ops = {v: wait_op(lab, cfg, v, {"reaped"}) for v in (104, 105, 106)}
    assert d.stop() == 0
    return sim, cfg, ops


def test_restore_by_vmid_name_or_id_in_any_case(lab):
    sim, cfg, ops = reap_two_namesakes(lab)
    # A name two reaped guests had: both listed, nothing restored.
    r = lab.cli("restore", "THESIS-2023", "--yes", config=cfg)
    assert r.returncode == 1, r
    assert "'THESIS-2023' names 2 reaped guests; restore one by its id:" in r.stderr, r.stderr
    for v in (104, 105):
        assert "%s  guest %d (" % (ops[v]["id"], v) in r.stderr, r.stderr
    assert creates(sim) == []
    # A vmid: the one reaped guest that had it.
    r = lab.cli("restore", "104", "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 104 on 'pve1'" % ops[104]["id"] in r.stdout, r
    # Now the name names one reaped guest only.
    r = lab.cli("restore", "thesis-2023", "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 105" % ops[105]["id"] in r.stdout, r
    # An id in lower case.
    r = lab.cli("restore", ops[106]["id"].lower(), "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 106" % ops[106]["id"] in r.stdout, r
    # Again by vmid: the guest's op is restored, and it says so.
    r = lab.cli("restore", "104", "--yes", config=cfg)
    assert r.returncode == 0 and "already restored as guest 104" in r.stdout, r
    assert len(creates(sim)) == 3
    r = lab.cli("restore", "no-such-guest", "--yes", config=cfg)
    assert r.returncode == 1
    assert "no op, vmid or guest name 'no-such-guest' in the journal" in r.stderr, r.stderr
    check_invariants(lab, sim, cfg)


def test_journal_list_filters_by_vmid_and_name(lab):
    sim, cfg, ops = reap_two_namesakes(lab)
    r = lab.cli("journal", "list", "--vmid", "105", config=cfg)
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]
    assert [x.split()[0] for x in rows] == [ops[105]["id"]], r.stdout
    # The why of each op: the evidence it was reaped on.
    assert rows[0].rstrip().endswith("(coverage 90%)") or "mean cpu" in rows[0], r.stdout
    r = lab.cli("journal", "list", "--name", "THESIS-2023", config=cfg)
    assert sorted(x.split()[0] for x in r.stdout.splitlines()[1:]) == sorted(
        [ops[104]["id"], ops[105]["id"]]), r.stdout
    r = lab.cli("journal", "list", "--name", "nobody", config=cfg)
    assert r.stdout.splitlines()[1:] == ["(no op of that guest)"], r.stdout
    r = lab.cli("journal", "list", "--vmid", "12", config=cfg)
    assert r.returncode == 2 and "--vmid '12' is not a vmid" in r.stderr, r


def flip_in_record(path, n):
    """Flips one byte inside the payload of record n (1-based); its line."""
    data = bytearray(open(path, "rb").read())
    starts = [0] + [i + 1 for i, b in enumerate(data) if b == ord("\n")]
    at = starts[n - 1] + 45
    data[at] ^= 0x01
    open(path, "wb").write(bytes(data))
    return bytes(data)


def test_damage_never_blocks_an_intact_op(lab):
    sim = sim_of(lab, [guest(104, "a", **IDLE), guest(105, "b", **IDLE)])
    cfg = reap_config(lab, sim, max_per_cycle=1)
    d = lab.daemon(cfg)
    a, b = wait_op(lab, cfg, 104, {"reaped"}), wait_op(lab, cfg, 105, {"reaped"})
    assert d.stop() == 0
    path = os.path.join(lab.dir, "journal")
    first = [i for i, r in enumerate(journal_records(path), 1) if r["op"] == a["id"]][0]
    damaged = flip_in_record(path, first)
    warning = "journal '%s': 1 damaged line(s) skipped (line %d; first: %s:%d (byte " % (
        path, first, path, first)
    # Read-only commands and restore: the intact op, with a warning.
    r = lab.cli("journal", "list", config=cfg)
    assert r.returncode == 0 and b["id"] in r.stdout, r
    assert warning in r.stderr, r.stderr
    r = lab.cli("journal", "show", b["id"], config=cfg)
    assert r.returncode == 0 and warning in r.stderr, r
    r = lab.cli("restore", b["id"], "--yes", config=cfg)
    assert r.returncode == 0 and "restored as guest 105" in r.stdout, r
    assert warning in r.stderr
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 1 and "1 damaged line(s): line %d" % first in r.stderr, r
    # The daemon observes and reaps nothing more: the restored guest, idle,
    # is left alone (and not because of cooldown: none is set here).
    assert sim.guest(105) is not None
    d = lab.daemon(cfg)
    d.wait_log(r"is damaged: 1 line\(s\) skipped")
    healthy(d, more=20)
    r = lab.cli("journal", "repair", config=cfg)
    assert r.returncode == 1 and "stop proxreapd first" in r.stderr, r
    assert d.stop() == 0
    # Repair: a clean journal of every intact record, the original kept.
    r = lab.cli("journal", "repair", config=cfg)
    assert r.returncode == 0, r
    # The op whose first record was damaged goes with it (its other records
    # make no sense alone); every record of the intact op stays.
    m = re.search(r"repaired: (\d+) intact record\(s\) kept, 1 damaged line\(s\) left out, and "
                  r"\d+ record\(s\) of ops whose earlier records were lost; "
                  r"the original is kept as '([^']+)'", r.stdout)
    assert m, r.stdout
    assert open(m.group(2), "rb").read().startswith(damaged)
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 0 and "OK" in r.stdout, r
    assert lab.cli("journal", "repair", config=cfg).stdout.startswith(
        "journal '%s' has no damage: nothing to repair" % path)
    st = os.stat(path)
    assert (st.st_mode & 0o777) == 0o640
    # (No invariant check against the simulator here: the repaired journal
    # no longer holds the damaged op, whose records are in the copy.)
    ops = {o["id"]: o["state"] for o in json.loads(lab.cli("journal", "list", "--json",
                                                              config=cfg).stdout)}
    assert ops == {b["id"]: "restored"}, ops


def test_a_line_removed_by_hand_is_repaired(lab):
    sim = sim_of(lab, [guest(104, "a", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 104, {"reaped"})
    assert d.stop() == 0
    path = os.path.join(lab.dir, "journal")
    lines = open(path, "rb").read().splitlines(keepends=True)
    open(path, "wb").write(b"".join(lines[:1] + lines[2:]))   # the first intent gone
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 1 and "seq 3 where 2 was expected: records are missing" in r.stderr, r
    r = lab.cli("journal", "repair", config=cfg)
    assert r.returncode == 0 and "record(s) of ops whose earlier records were lost" in r.stdout, r
    assert lab.cli("journal", "verify", config=cfg).returncode == 0
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 0, r


SLOW_ARCHIVE = {"qmshutdown": 0.3, "qmsnapshot": 0.2, "vzdump": 30.0, "qmdestroy": 0.2,
                "qmstart": 0.2, "qmrestore": 0.3}


def mid_archive(lab):
    """A reap stopped in the middle of its archive (the daemon stopped, the
    vzdump task still running): the guest is stopped."""
    sim = sim_of(lab, [guest(104, "thesis", tags="web", **IDLE)], task_durations=SLOW_ARCHIVE)
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    path = os.path.join(lab.dir, "journal")
    wait_until(lambda: any(r.get("ev") == "task" and r.get("step") == "archive"
                           for r in journal_records(path)), timeout=60)
    return sim, cfg, d


def test_abort_without_a_daemon_puts_the_guest_back(lab):
    sim, cfg, d = mid_archive(lab)
    assert d.stop() == 0
    assert sim.guest(104)["status"] != "running"   # stopped (vzdump runs it "prelaunch")
    r = lab.cli("abort", "thesis", config=cfg)
    assert r.returncode == 0, r
    op = [o for o in json.loads(lab.cli("journal", "list", "--json", config=cfg).stdout)][0]
    assert "%s aborted: called off by the operator (proxreap abort)" % op["id"] in r.stdout, r.stdout
    assert op["state"] == "aborted", op
    g = sim.guest(104)
    assert g["status"] == "running", g
    assert "proxreap" not in (g.get("tags") or ""), g      # no proxreap-idle, no proxreap-failed
    assert "web" in g["tags"]
    assert [x for x in sim.requests() if x["method"] == "DELETE" and "/tasks/" not in x["path"]] == []
    # A daemon started now destroys nothing, and does not take it again at once.
    d = lab.daemon(cfg)
    healthy(d, more=20)
    assert d.stop() == 0
    assert sim.guest(104)["status"] == "running"
    assert [o["state"] for o in json.loads(lab.cli("journal", "list", "--json", config=cfg).stdout)] == ["aborted"]
    # Again: nothing to abort.
    r = lab.cli("abort", op["id"], config=cfg)
    assert r.returncode == 1 and "is 'aborted', not a reap under way" in r.stderr, r


def test_abort_while_the_daemon_runs(lab):
    sim, cfg, d = mid_archive(lab)
    r = lab.cli("abort", "104", config=cfg)
    assert r.returncode == 0, r
    assert "the running proxreapd puts guest 104 back" in r.stdout, r.stdout
    assert "aborted: called off by the operator (proxreap abort)" in r.stdout, r.stdout
    assert sim.guest(104)["status"] == "running"
    healthy(d, more=10)
    assert d.stop() == 0
    assert [x for x in sim.requests() if x["method"] == "DELETE" and "/tasks/" not in x["path"]] == []
    check_invariants(lab, sim, cfg)


def test_abort_after_the_destroy_says_restore(lab):
    sim, cfg, ops = reap_two_namesakes(lab)
    r = lab.cli("abort", ops[104]["id"], config=cfg)
    assert r.returncode == 1
    assert "%s is reaped already: bring the guest back with 'proxreap restore %s'" % (
        ops[104]["id"], ops[104]["id"]) in r.stderr, r.stderr


def test_journal_show_is_a_readable_timeline(lab):
    sim, cfg, ops = reap_two_namesakes(lab)
    op = ops[106]
    r = lab.cli("journal", "show", op["id"].lower(), config=cfg)
    assert r.returncode == 0, r
    lines = r.stdout.splitlines()
    assert lines[0] == "%s: guest 106 ('web', qemu on 'pve1'): reaped" % op["id"], r.stdout
    assert lines[1].startswith("evidence:  mean cpu "), r.stdout
    body = "\n".join(lines)
    for step in ("shutdown", "snapshot", "archive", "destroy"):
        assert re.search(r"^  \d{4}-\d\d-\d\d \d\d:\d\d:\d\dZ  %s +task +task UPID:pve1:" % step,
                         body, re.M), body
        assert re.search(r"^  \S+ \S+  %s +done +OK after \d+s$" % step, body, re.M), body
    assert re.search(r"^  \S+ \S+  verify +done +archive 'local:backup/vzdump-qemu-106-.*' "
                     r"\(\d+\.\d MiB\) holds the guest$", body, re.M), body
    assert re.search(r"^  \S+ \S+  +reaped +freed 2048 MiB memory, 32 GiB disk$", body, re.M), body
    assert lines[-2] == "archive:   %s" % op["volid"], body
    assert lines[-1] == "undo:      proxreap restore %s" % op["id"], body
    # --json stays as it was: the records.
    recs = json.loads(lab.cli("journal", "show", op["id"], "--json", config=cfg).stdout)
    assert recs[0]["ev"] == "selected" and recs[0]["seq"] >= 1


def test_three_a_m_a_guest_known_by_name_from_a_node_whose_journal_is_gone(lab):
    """thesis-2023 was reaped by pve1's daemon onto the shared backup
    storage; pve1's journal is gone. From pve2, by its name."""
    from test_one_writer import STORAGES, node_config
    sim = sim_of(lab, [guest(104, "thesis-2023", tags="uni", **IDLE)], storages=STORAGES)
    cfg1, cfg2 = node_config(lab, sim, "pve1"), node_config(lab, sim, "pve2")
    d = lab.daemon(cfg1)
    op = wait_op(lab, cfg1, 104, {"reaped"})
    assert d.stop() == 0
    os.unlink(os.path.join(lab.dir, "journal-pve1"))
    r = lab.cli("archives", config=cfg2)
    assert r.returncode == 0, r
    row = [x for x in r.stdout.splitlines() if x.startswith(op["id"])]
    assert row and "thesis-2023" in row[0] and " qemu " in row[0] and " pve1 " in row[0], r.stdout
    a = json.loads(lab.cli("archives", "--json", config=cfg2).stdout)
    assert [(x["id"], x["vmid"], x["name"], x["type"], x["node"], x["volid"], x["protected"],
             x["journal_state"]) for x in a] == [
        (op["id"], 104, "thesis-2023", "qemu", "pve1", op["volid"], True, "-")], a
    assert a[0]["storage"] == "local-lvm"
    r = lab.cli("restore", "thesis-2023", "--yes", config=cfg2)
    assert r.returncode == 0, r
    assert "%s restored as guest 104 on 'pve2'" % op["id"] in r.stdout, r.stdout
    g = sim.guest(104)
    assert g["node"] == "pve2" and "proxreap-restored" in g["tags"] and "uni" in g["tags"], g
    mine = json.loads(lab.cli("journal", "list", "--json", config=cfg2).stdout)
    assert [(x["id"], x["state"]) for x in mine] == [(op["id"], "restored")]
    # Again: already restored, by this node's journal now.
    r = lab.cli("restore", "104", "--yes", config=cfg2)
    assert r.returncode == 0 and "already restored" in r.stdout, r
    assert len([x for x in sim.requests() if x["method"] == "POST" and x["path"].endswith("/qemu")]) == 1


def test_a_failed_restore_cleans_up_after_itself(lab):
    sim, cfg, ops = reap_two_namesakes(lab)
    sim.fault(kind="task_fail", type="^qmrestore$", error="unable to restore VM 104 - disk full",
              count=1)
    r = lab.cli("restore", "104", "--yes", config=cfg)
    assert r.returncode == 1, r
    assert ("restore of %s failed: unable to restore VM 104 - disk full; the empty guest 104 it "
            "left behind was removed" % ops[104]["id"]) in r.stderr, r.stderr
    assert sim.guest(104) is None
    op = [o for o in json.loads(lab.cli("journal", "list", "--json", config=cfg).stdout)
          if o["id"] == ops[104]["id"]][0]
    assert op["state"] == "reaped" and "disk full" in op["reason"], op
    # The next try gets the original vmid back.
    r = lab.cli("restore", "104", "--yes", config=cfg)
    assert r.returncode == 0 and "restored as guest 104 on 'pve1'" in r.stdout, r
    # (No invariant check: it counts the empty guest's removal as a second
    # destroy of vmid 104.) That removal was of an empty configuration:
    assert [h.get("vmid") for h in sim.history(event="destroy")].count(104) == 2


def test_vmid_advice_skips_vmids_other_reaped_guests_had(lab):
    busy = [guest(v, "busy%d" % v, cpu=0.5, mem_mb=3000) for v in (100, 101, 102, 103)]
    sim = sim_of(lab, busy + [guest(104, "a", **IDLE), guest(105, "b", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    a, b = wait_op(lab, cfg, 104, {"reaped"}), wait_op(lab, cfg, 105, {"reaped"})
    assert d.stop() == 0
    sim.create_guest({"vmid": 104, "type": "qemu", "node": "pve1", "name": "newcomer",
                      "status": "stopped"})
    r = lab.cli("restore", a["id"], "--yes", config=cfg)
    assert r.returncode == 1
    # 105 is free, but it is b's: 106 is proposed.
    assert "the original vmid 104 is taken now; restore with --vmid N (106 is free, and no other " \
           "reaped guest had it)" in r.stderr, r.stderr


def status_of(lab, cfg):
    r = lab.cli("status", config=cfg)
    return r.returncode, r.stdout, r.stderr


def test_status_says_what_the_reaper_does_and_when_the_daemon_is_gone(lab):
    """status shows a reap under way (not 'excluded: not running'), a guest
    held after its reap was called off, marks with the end of their grace,
    and, once the daemon is gone, says so and exits 1."""
    sim, cfg, d = mid_archive(lab)
    wait_until(lambda: "reaping  guest 104 ('thesis') on 'pve1': R-pve1-000001, at archive" in
               status_of(lab, cfg)[1], timeout=30)
    rc, out, err = status_of(lab, cfg)
    assert rc == 0, err
    op = json.loads(lab.cli("journal", "list", "--json", config=cfg).stdout)[0]
    assert re.search(r"^  reaping  guest 104 \('thesis'\) on 'pve1': %s, at archive since "
                     r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$" % op["id"], out, re.M), out
    row = [x for x in out.splitlines() if x.startswith("104 ") or x.startswith("  104 ")]
    assert row and "reaping (archive)" in row[0] and "excluded" not in row[0], out
    assert re.search(r"^reaper: breaker closed; \d+ of \d+ reaps in the last hour", out, re.M), out
    # Called off: held for reap.retry_after, and the table says so.
    assert lab.cli("abort", "104", config=cfg).returncode == 0
    d.wait_status(lambda s: (s.get("reaper") or {}).get("holds"), what="a hold")
    rc, out, err = status_of(lab, cfg)
    assert re.search(r"^  held     guest 104: retry_after until \S+ \(%s\)$" % op["id"], out, re.M), out
    assert "(held)" in [x for x in out.splitlines() if " thesis " in x][0], out
    doc = json.loads(lab.cli("status", "--json", config=cfg).stdout)
    assert doc["reaper"]["in_flight"] == [] and doc["reaper"]["holds"][0]["vmid"] == 104, doc
    assert abs(doc["updated_epoch"] - time.time()) < 60, doc
    # The daemon dies without a word: its status file stays, and lies no more.
    d.signal(signal.SIGKILL)
    assert d.stop() == -signal.SIGKILL
    rc, out, err = status_of(lab, cfg)
    assert rc == 1, out
    assert re.match(r"proxreapd is NOT RUNNING: pid %d is gone; below is its last status, of \S+ "
                    r"\(\d+s ago\)\n" % d.proc.pid, out), out
    assert "API: not polled (the daemon is not running)" in out and "API: ok" not in out, out
    assert lab.cli("status", "--json", config=cfg).returncode == 1


def test_status_shows_marks_and_the_end_of_their_grace(lab):
    sim = sim_of(lab, [guest(501, "a", **IDLE), guest(502, "busy", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim, grace="2h")
    d = lab.daemon(cfg)
    d.wait_status(lambda s: (s.get("reaper") or {}).get("marks"), what="a mark")
    rc, out, err = status_of(lab, cfg)
    assert rc == 0, err
    m = re.search(r"^  marked   guest 501 since (\S+), grace ends (\S+)$", out, re.M)
    assert m, out
    since, ends = (time.mktime(time.strptime(x, "%Y-%m-%dT%H:%M:%SZ")) for x in m.groups())
    assert ends - since == 7200, out
    assert d.stop() == 0
    assert ops_by_vmid(lab, cfg, 501) == []


def test_an_unnamed_guest_is_restored_from_its_archive(lab):
    """A guest without a name (Proxmox VE shows 'VM 108' and 'CT109'): its
    archive's notes say so, its configuration has no name; it is still
    found and restored when the journal is lost."""
    sim = sim_of(lab, [guest(108, None, **IDLE), guest(109, None, type="lxc", **IDLE)])
    cfg = reap_config(lab, sim, max_per_cycle=2)
    d = lab.daemon(cfg)
    ops = {v: wait_op(lab, cfg, v, {"reaped"}) for v in (108, 109)}
    assert d.stop() == 0
    os.unlink(os.path.join(lab.dir, "journal"))
    r = lab.cli("restore", "108", "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 108" % ops[108]["id"] in r.stdout, r
    r = lab.cli("restore", "CT109", "--storage", "local-lvm", "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 109" % ops[109]["id"] in r.stdout, r
