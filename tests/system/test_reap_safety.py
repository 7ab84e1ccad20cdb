"""Reap safety: nothing is destroyed that the archive does not hold, and
never another guest (issue 13).

Each test makes the simulator misbehave the way a real cluster can (a disk
vzdump skips, a guest changed or replaced between two steps, an archive
that holds another guest, a listing that names another vmid) and asserts:
  - no DELETE of the guest was sent;
  - the guest ends untouched or running again (a guest that took over the
    vmid is left exactly as its creator left it);
  - the journal records why (the reason proxreap printed);
  - the invariants of conftest.check_invariants.
"""

import json

import pytest

from conftest import check_invariants, guest, wait_until
from test_reap import FAST, IDLE, OBSERVE, REAP, healthy, ops_by_vmid, sim_of, wait_op, writes

VM = 201


def destroys(sim, vmid=VM):
    return [w for w in writes(sim, vmid) if w.startswith("DELETE")]


def config_of(sim, gtype, vmid, node="pve1", current=True):
    r = sim.api("GET", "/nodes/%s/%s/%d/config" % (node, gtype, vmid),
                {"current": 1} if current else None)
    assert r.status == 200, (r.status, r.reason)
    return r.json["data"]


def start(lab, guests, faults=None, **reap):
    sim = sim_of(lab, guests, faults=faults or [])
    r = dict(REAP)
    r.update(reap)
    cfg = lab.config(sim, observe=OBSERVE, reap=r)
    return sim, cfg, lab.daemon(cfg)


def finish(lab, sim, cfg, d, removed=()):
    assert d.stop() == 0, d.log()
    check_invariants(lab, sim, cfg, removed=removed)


# ---------------------------------------------------------------- what no archive holds

UNREAPABLE = [
    ("backup0", dict(config={"scsi1": "local-lvm:vm-201-disk-1,backup=0,size=500G"}),
     "disk scsi1 (local-lvm:vm-201-disk-1, 500G) is excluded from backup (backup=0)"),
    ("unused", dict(config={"unused0": "local-lvm:vm-201-disk-2"}),
     "unused volume unused0 (local-lvm:vm-201-disk-2) is not in any archive: "
     "vzdump never archives unused volumes"),
    ("lxc-mp", dict(type="lxc", config={"mp0": "local-lvm:vm-201-disk-1,mp=/data,size=100G"}),
     "mount point mp0 (local-lvm:vm-201-disk-1, 100G) is excluded from backup "
     "(backup=1 is not set)"),
    ("snapshot", dict(snapshots=[{"name": "before-upgrade", "description": "a user's own"}]),
     "1 snapshot of its own (before-upgrade), which no archive keeps (reap.discard_snapshots)"),
    ("pending", dict(pending={"memory": "4096"}),
     "pending configuration changes, which no archive keeps"),
]


@pytest.mark.parametrize("kind,spec,reason", UNREAPABLE, ids=[u[0] for u in UNREAPABLE])
def test_guest_an_archive_would_not_hold_is_never_reaped(lab, kind, spec, reason):
    """The guest is idle, but an archive would not hold all of it: never
    selected, and plan, status and the log say which volume and why."""
    g = guest(VM, "data-vm", **IDLE, **spec)
    sim, cfg, d = start(lab, [g, guest(202, "plain", **IDLE)], max_per_cycle=2)
    # The plain guest is reaped: the daemon did select what it could.
    wait_op(lab, cfg, 202, {"reaped"})
    d.wait_log(r"guest %d \('data-vm'.*is now excluded: %s" % (VM, reason.replace("(", r"\(")
                                                                 .replace(")", r"\)")))
    st = d.wait_status(lambda s: any(x["vmid"] == VM and x["verdict"] == "excluded"
                                     for x in s["guests"]), what="the guest excluded")
    mine = [x for x in st["guests"] if x["vmid"] == VM][0]
    assert reason in mine["reasons"], mine
    healthy(d, more=3)
    assert ops_by_vmid(lab, cfg, VM) == []
    assert writes(sim, VM) == [], "nothing sent for the guest"
    assert sim.guest(VM)["status"] == "running"
    finish(lab, sim, cfg, d)
    # plan judges it the same way (observe mode, one window).
    plan = lab.plan(lab.config(sim, name="plan.conf", observe=OBSERVE))
    assert plan[VM]["verdict"] == "excluded", plan[VM]
    assert reason in plan[VM]["reasons"], plan[VM]


def test_snapshots_reaped_when_the_admin_accepts_losing_them(lab):
    g = guest(VM, "snappy", **IDLE, snapshots=[{"name": "old", "description": "mine"}])
    sim, cfg, d = start(lab, [g], discard_snapshots=True)
    op = wait_op(lab, cfg, VM, {"reaped"})
    assert op["state"] == "reaped"
    # Sent without destroy-unreferenced-disks: a disk its configuration does
    # not name is in no archive.
    dels = [r for r in sim.requests() if r["method"] == "DELETE" and r["path"].endswith("/%d" % VM)]
    assert len(dels) == 1 and dict(dels[0]["body"] or {}, **dels[0]["query"]) == {"purge": "1"}, dels
    gone = sim.history(event="destroy", vmid=VM)[0]
    assert gone["unreferenced"] in (False, 0, None)
    finish(lab, sim, cfg, d)


def test_mark_mode_marks_only_what_would_be_reaped(lab):
    """Mark mode tags the guest an archive can hold, not the one with a
    backup=0 disk, and takes its tag off once its configuration rules it
    out."""
    bad = guest(VM, "half", **IDLE, config={"scsi1": "local-lvm:vm-201-disk-1,backup=0,size=8G"})
    ok = guest(202, "whole", **IDLE)
    tagged = guest(203, "was-marked", **IDLE, tags="proxreap-idle",
                   config={"unused0": "local-lvm:vm-203-disk-7"})
    sim = sim_of(lab, [bad, ok, tagged])
    cfg = lab.config(sim, observe=OBSERVE, reap={"mode": "mark", "breaker_jump": 100})
    d = lab.daemon(cfg)
    wait_until(lambda: "proxreap-idle" in (sim.guest(202)["tags"] or ""), message="202 marked")
    d.wait_log(r"unmarked \(excluded: unused volume unused0 .*\) guest 203")
    healthy(d, more=3)
    assert "proxreap-idle" not in (sim.guest(VM)["tags"] or "")
    assert "proxreap-idle" not in (sim.guest(203)["tags"] or "")
    assert writes(sim, VM) == []
    assert d.stop() == 0


# ---------------------------------------------------------------- the guest changes after vzdump

def test_config_changed_right_after_vzdump(lab):
    """Memory changed between the archive and its verification: the archive
    no longer holds the guest as it is. Called off, the guest runs again."""
    after = {"kind": "after_task", "type": "^vzdump$", "vmid": VM, "count": 1,
             "events": [{"action": "set", "field": "config", "value": {"memory": "4096"}}]}
    sim, cfg, d = start(lab, [guest(VM, "edited", **IDLE)], faults=[after])
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert op["reason"].startswith("its configuration changed since it was selected: "
                                   "'memory' is '2048' when selected and '4096' now"), op
    assert destroys(sim) == []
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again")
    assert "proxreap-failed" in sim.guest(VM)["tags"]
    finish(lab, sim, cfg, d)


def test_vmid_recreated_as_a_new_guest_right_after_vzdump(lab):
    """The guest is deleted and a new one created under its vmid right
    after vzdump: the new guest is not destroyed, not started, not tagged."""
    new = {"vmid": VM, "type": "qemu", "node": "pve1", "name": "someone-elses", "status": "stopped",
           "workload": {"kind": "constant", "cpu": 0.01, "mem_mb": 100}}
    after = {"kind": "after_task", "type": "^vzdump$", "vmid": VM, "count": 1,
             "events": [{"action": "delete"}, {"action": "create", "guest": new, "replace": True}]}
    sim, cfg, d = start(lab, [guest(VM, "original", **IDLE)], faults=[after])
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert "vmid %d now holds another guest" % VM in op["reason"], op
    assert op["reason"].endswith("holds another guest (deleted and created again since it was selected); proxreap left that guest alone"), op
    assert "snapshot is kept" not in op["reason"], op  # it went with the guest
    assert destroys(sim) == []
    g = sim.guest(VM)
    assert g["name"] == "someone-elses" and g["status"] == "stopped" and not g["tags"], g
    # Nothing written to the new guest after it appeared.
    assert [w for w in writes(sim, VM) if "/status/start" in w or w.startswith("PUT")] == []
    healthy(d)
    finish(lab, sim, cfg, d)


def test_exclusion_added_mid_saga_stops_it(lab):
    """An operator tags the guest proxreap-keep (in another case) while it is
    archived: the re-check at verify sees it; nothing is destroyed and the
    guest runs again."""
    after = {"kind": "after_task", "type": "^vzdump$", "vmid": VM, "count": 1,
             "events": [{"action": "set", "field": "tags", "value": "Proxreap-Keep"}]}
    sim, cfg, d = start(lab, [guest(VM, "keep-me", **IDLE)], faults=[after])
    op = wait_op(lab, cfg, VM, {"aborted"})
    # The tag changed the digest too: either reason names the change.
    assert "'tags'" in op["reason"] or "opt-out tag" in op["reason"], op
    assert destroys(sim) == []
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again")
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("field,value,select,reason", [
    ("pool", "infra", {"exclude_pools": ["infra"]}, "it is excluded now: excluded pool 'infra'"),
    ("ha", True, {}, "it is excluded now: HA-managed (state 'started'; set select.allow_ha to include)"),
], ids=["pool", "ha"])
def test_rule_that_leaves_the_config_alone_added_mid_saga(lab, field, value, select, reason):
    """A pool or an HA resource does not change the guest's configuration
    digest: the policy's own rules, checked again at verify, stop the reap."""
    after = {"kind": "after_task", "type": "^vzdump$", "vmid": VM, "count": 1,
             "events": [{"action": "set", "field": field, "value": value}]}
    sim = sim_of(lab, [guest(VM, "moved", **IDLE)], faults=[after])
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP, select=select)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert op["reason"].startswith(reason), op
    assert destroys(sim) == []
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- the archive is not this guest's

def test_extractconfig_answers_another_guests_config(lab):
    other = {"kind": "rewrite", "path": "/vzdump/extractconfig$",
             "pattern": r"name: victim", "repl": "name: another-guest"}
    sim, cfg, d = start(lab, [guest(VM, "victim", **IDLE)], faults=[other])
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert op["reason"].startswith("the archive holds another configuration: 'name' is 'victim' "
                                   "in the guest and 'another-guest' in the archive"), op
    assert destroys(sim) == []
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again")
    finish(lab, sim, cfg, d)


def test_archive_without_a_disk_of_the_guest(lab):
    """An archive whose configuration names the disk but does not hold it
    (no #qmdump#map line)."""
    drop = {"kind": "rewrite", "path": "/vzdump/extractconfig$",
            "pattern": r"#qmdump#map:scsi1:[^\\]*\\n", "repl": ""}
    g = guest(VM, "two-disks", **IDLE, config={"scsi1": "local-lvm:vm-201-disk-1,size=8G"})
    sim, cfg, d = start(lab, [g], faults=[drop])
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert op["reason"].startswith("the archive does not hold disk scsi1 (local-lvm:vm-201-disk-1)"), op
    assert destroys(sim) == []
    finish(lab, sim, cfg, d)


def test_listing_names_another_vmids_volume(lab):
    """The listing names another vmid's volume where the archive should be:
    verify looks for the very archive the vzdump task created, by name."""
    other = {"kind": "rewrite", "path": "/storage/local/content$",
             "pattern": r"vzdump-qemu-%d-" % VM, "repl": "vzdump-qemu-999-"}
    sim, cfg, d = start(lab, [guest(VM, "victim", **IDLE)], faults=[other])
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert op["reason"].startswith("no backup 'vzdump-qemu-%d-" % VM), op
    assert "of %d made by %s in 'local'" % (VM, op["id"]) in op["reason"], op
    assert destroys(sim) == []
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again")
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- tags

def test_opt_out_tags_in_any_case(lab):
    """Proxmox compares tags without regard to case; exclude_tags adds to
    proxreap-keep."""
    sim = sim_of(lab, [guest(VM, "a", **IDLE, tags="Proxreap-Keep"),
                       guest(202, "b", **IDLE, tags="web;KEEP"),
                       guest(203, "c", **IDLE, tags="web")])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, max_per_cycle=3),
                     select={"exclude_tags": ["keep"]})
    d = lab.daemon(cfg)
    wait_op(lab, cfg, 203, {"reaped"})
    healthy(d, more=3)
    st = d.status()
    by = {x["vmid"]: x for x in st["guests"]}
    assert by[VM]["verdict"] == "excluded" and by[202]["verdict"] == "excluded", by
    assert by[VM]["reasons"] == ["opt-out tag 'proxreap-keep'"]
    assert by[202]["reasons"] == ["opt-out tag 'keep'"]
    assert writes(sim, VM) == [] and writes(sim, 202) == []
    finish(lab, sim, cfg, d)


def test_check_config_reports_bad_tags(lab):
    cfg = lab.config(None, select={"exclude_tags": ["ok", "-bad"]})
    r = lab.cli("check-config", config=cfg)
    assert r.returncode == 2
    assert "'select.exclude_tags': '-bad' is not a Proxmox tag" in r.stderr, r.stderr


# ---------------------------------------------------------------- found by an adversary

def test_snapshot_without_a_parent_line_is_seen(lab):
    """Snapshots a -> b, roll back to a, delete a: b remains, and the
    configuration has no 'parent' line. The snapshot list is read anyway."""
    g = guest(VM, "snappy", **IDLE, snapshots=[{"name": "snapa", "description": "user"},
                                                {"name": "snapb", "description": "user", "vmstate": 1}])
    sim = sim_of(lab, [g])
    r = sim.api("POST", "/nodes/pve1/qemu/%d/snapshot/snapa/rollback" % VM, {"start": 1})
    sim.wait_task(r.json["data"])
    r = sim.api("DELETE", "/nodes/pve1/qemu/%d/snapshot/snapa" % VM)
    sim.wait_task(r.json["data"])
    assert "parent" not in config_of(sim, "qemu", VM)
    sim.clear_requests()
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP)
    d = lab.daemon(cfg)
    d.wait_log(r"guest %d \('snappy'.*is now excluded: 1 snapshot of its own \(snapb\)" % VM)
    healthy(d)
    assert ops_by_vmid(lab, cfg, VM) == [] and writes(sim, VM) == []
    finish(lab, sim, cfg, d)


def test_vmid_taken_the_moment_the_destroy_ends(lab):
    """Provisioning takes the freed vmid at once: the destroy is done, the op
    is reaped, the next guest is reaped too, and the new guest is left alone."""
    new = {"vmid": VM, "type": "qemu", "node": "pve1", "name": "fresh", "status": "running",
           "workload": {"kind": "constant", "cpu": 0.5, "mem_mb": 3000}}
    after = {"kind": "after_task", "type": "^qmdestroy$", "vmid": VM, "count": 1,
             "events": [{"action": "create", "guest": new}]}
    sim, cfg, d = start(lab, [guest(VM, "old", **IDLE), guest(202, "next-idle", **IDLE)],
                        faults=[after])
    op = wait_op(lab, cfg, VM, {"reaped"})
    wait_op(lab, cfg, 202, {"reaped"})
    assert sim.guest(VM)["name"] == "fresh" and sim.guest(VM)["status"] == "running"
    assert len(destroys(sim)) == 1
    r = lab.cli("restore", op["id"], "--yes", "--vmid", "301", config=cfg)
    assert r.returncode == 0, r.stderr
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("how", ["no-net", "same-hwaddr"])
def test_container_that_took_over_the_vmid_is_not_started(lab, how):
    """A new container under the vmid after vzdump, with nothing to tell it
    apart by but its name (a MAC can be copied): neither started nor
    tagged, and the reason says to start it by hand if it is the same."""
    sim = sim_of(lab, [guest(VM, "original", type="lxc", **IDLE)])
    orig = config_of(sim, "lxc", VM)
    newcfg = {"net0": None} if how == "no-net" else {"net0": orig["net0"]}
    new = {"vmid": VM, "type": "lxc", "node": "pve1", "name": "someone-elses", "status": "stopped",
           "workload": {"kind": "constant", "cpu": 0.01, "mem_mb": 100}, "config": newcfg}
    sim.fault(kind="after_task", type="^vzdump$", vmid=VM, count=1,
              events=[{"action": "delete"}, {"action": "create", "guest": new, "replace": True}])
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert op["reason"].endswith("proxreap cannot tell whether it is still the guest it stopped, "
                                 "so it left it as it is (start it with 'pct start 201' if it is)"), op
    g = sim.guest(VM)
    assert g["status"] == "stopped" and not g["tags"], g
    assert destroys(sim) == []
    finish(lab, sim, cfg, d)


def test_guest_migrated_after_verify_and_a_restart(lab):
    """Killed right after verify; the stopped guest is migrated meanwhile. The
    destroy's re-check does not find it on its node: it is found on pve2 and
    started again there, never called reaped."""
    sim = sim_of(lab, [guest(VM, "mover", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP)
    d = lab.daemon(cfg, env={"PROXREAP_CRASH_AT": "verify-done"})
    wait_until(lambda: not d.running(), message="the crash after verify")
    d.returncode = d.proc.returncode
    sim.event(VM, "migrate", node="pve2")
    d2 = lab.daemon(cfg)
    op = wait_op(lab, cfg, VM, {"aborted"})
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again on pve2")
    assert sim.guest(VM)["node"] == "pve2" and destroys(sim) == []
    recs = json.loads(lab.cli("journal", "show", op["id"], "--json", config=cfg).stdout)
    assert {"ev": "moved", "node": "pve2"}.items() <= [r for r in recs if r["ev"] == "moved"][0].items()
    healthy(d2)
    finish(lab, sim, cfg, d2)


def test_unreadable_configuration_mid_saga_puts_the_guest_back(lab):
    """A mount point proxreap cannot read (a path longer than it holds)
    appears after vzdump: the reap is called off and the guest runs again."""
    path = "/srv/" + "d" * 300
    after = {"kind": "after_task", "type": "^vzdump$", "vmid": VM, "count": 1,
             "events": [{"action": "set", "field": "config",
                         "value": {"mp1": "local-lvm:vm-201-disk-5,mp=%s,backup=1,size=1G" % path}}]}
    sim, cfg, d = start(lab, [guest(VM, "ct", type="lxc", **IDLE)], faults=[after])
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert "'mp1'" in op["reason"], op
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again")
    assert destroys(sim) == []
    finish(lab, sim, cfg, d)


def test_a_copy_with_our_notes_is_not_taken_for_the_archive(lab):
    """A newer protected archive with proxreap's notes appears while verify
    runs: verify takes the one the vzdump task says it created. (Every
    listing waits a second: the copy is there when verify's is answered.)"""
    sim, cfg, d = start(lab, [guest(VM, "v", **IDLE)],
                        faults=[{"kind": "delay", "seconds": 1.0, "method": "GET",
                                 "path": r"/storage/local/content$"}])
    b = wait_until(lambda: (sim.history(event="backup", vmid=VM) or [None])[0], interval=0.01)
    sim.add_backup("local", vmid=VM, type="qemu", time=sim.time()["t"] + 5, compress="zstd",
                   protected=1, notes=b["notes"], size=1000)
    op = wait_op(lab, cfg, VM, {"reaped"})
    assert op["volid"] == b["volid"], op
    finish(lab, sim, cfg, d)


def test_compensating_start_is_tried_again(lab):
    """vzdump fails, and the first start again hits a transient lock: it is
    tried again, and the guest runs."""
    faults = [{"kind": "task_fail", "type": "^vzdump$", "count": 1},
              {"kind": "task_fail", "type": "^qmstart$", "count": 1, "error": "VM is locked (backup)"}]
    sim, cfg, d = start(lab, [guest(VM, "v", **IDLE)], faults=faults, retry_after="1h")
    op = wait_op(lab, cfg, VM, {"aborted"}, timeout=90)
    assert sim.guest(VM)["status"] == "running"
    starts = [w for w in writes(sim, VM) if w.endswith("/status/start")]
    assert len(starts) == 2, starts
    assert "could not start" not in op["reason"], op
    finish(lab, sim, cfg, d)


def test_restore_into_a_pool_that_is_gone(lab):
    """The guest's pool was removed after the reap: Proxmox's own refusal is
    shown, and --pool '' restores it into none."""
    sim, cfg, d = start(lab, [guest(VM, "pooled", pool="proj", **IDLE)])
    op = wait_op(lab, cfg, VM, {"reaped"})
    assert d.stop() == 0
    sim.fault(kind="status", code=500, message="pool 'proj' does not exist", method="POST",
              path=r"^/nodes/pve1/qemu$", count=1)
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 1
    assert "pool 'proj' does not exist" in r.stderr, r.stderr
    assert "never reached the server" not in r.stderr, r.stderr
    r = lab.cli("restore", op["id"], "--yes", "--pool", "", config=cfg)
    assert r.returncode == 0, r.stderr
    post = [x for x in sim.requests() if x["method"] == "POST" and x["path"] == "/nodes/pve1/qemu"]
    assert "pool" not in (post[-1]["body"] or {}), post[-1]
    check_invariants(lab, sim, cfg)


# ------------------------------------------------------- moved, renamed, destroyed halfway

def after(task, events, vmid=VM):
    return {"kind": "after_task", "type": task, "vmid": vmid, "count": 1, "events": events}


def records(lab, cfg, opid):
    r = lab.cli("journal", "show", opid, "--json", config=cfg)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_guest_migrated_during_its_shutdown(lab):
    """HA or an admin migrates the guest the moment its shutdown ends: the
    reap follows it to pve2, calls itself off and starts it there."""
    sim, cfg, d = start(lab, [guest(VM, "mover", **IDLE)],
                        faults=[after("^qmshutdown$", [{"action": "migrate", "node": "pve2"}])])
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert "the guest moved to another node during its shutdown" in op["reason"], op
    wait_until(lambda: (sim.guest(VM) or {}).get("status") == "running", message="started on pve2")
    assert sim.guest(VM)["node"] == "pve2" and destroys(sim) == []
    assert [r["node"] for r in records(lab, cfg, op["id"]) if r["ev"] == "moved"] == ["pve2"]
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("gtype", ["qemu", "lxc"])
def test_guest_renamed_while_stopped_is_started_again(lab, gtype):
    """The operator renames the stopped guest after vzdump: the reap is
    called off (the config changed), and the guest is still the one
    proxreap stopped (it holds proxreap's snapshot): it runs again."""
    sim, cfg, d = start(lab, [guest(VM, "web", type=gtype, **IDLE)],
                        faults=[after("^vzdump$", [{"action": "set", "field": "name", "value": "web-old"}])])
    op = wait_op(lab, cfg, VM, {"aborted"})
    key = "hostname" if gtype == "lxc" else "name"
    assert "'%s' is 'web' when selected and 'web-old' now" % key in op["reason"], op
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again")
    assert "proxreap-failed" in sim.guest(VM)["tags"] and destroys(sim) == []
    finish(lab, sim, cfg, d)


NEW_GUEST = {"vmid": VM, "type": "qemu", "node": "pve1", "name": "fresh", "status": "running",
             "workload": {"kind": "constant", "cpu": 0.5, "mem_mb": 3000}}
JOBS_LOCK = "can't lock file '/var/lock/pve-manager/pve-jobs.lck' - got timeout"


def destroy_task_fails_after_its_work():
    """qemu-server's destroy frees the disks and the config, then fails in
    its purge tail (backup jobs, replication, HA): the task says error."""
    return {"kind": "rewrite", "method": "GET",
            "path": r"^/nodes/pve1/tasks/.*:qmdestroy:%d:.*/status$" % VM,
            "pattern": '"exitstatus": ?"OK"', "repl": '"exitstatus":"%s"' % JOBS_LOCK}


@pytest.mark.parametrize("left", ["new-guest", "locked-destroyed"])
def test_destroy_that_fails_after_its_work_is_a_reap(lab, left):
    """The destroy task ends in error after it removed the guest, and the
    vmid then holds a new guest (provisioning), or the config destroy_vm
    leaves behind locked 'destroyed': the guest is gone and its verified
    archive holds it, so the op is reaped and restores; the new guest is
    left alone."""
    if left == "new-guest":
        occupant = NEW_GUEST
    else:
        occupant = {"vmid": VM, "type": "qemu", "node": "pve1", "status": "stopped", "lock": "destroyed",
                    "workload": {"kind": "constant", "cpu": 0.0, "mem_mb": 0},
                    "config": {k: None for k in ("smbios1", "vmgenid", "meta", "net0", "scsi0", "name",
                                                 "ostype", "boot")}}
    sim, cfg, d = start(lab, [guest(VM, "old", **IDLE)],
                        faults=[after("^qmdestroy$", [{"action": "create", "guest": occupant}]),
                                destroy_task_fails_after_its_work()])
    op = wait_op(lab, cfg, VM, {"reaped"})
    assert len(destroys(sim)) == 1 and op["volid"], op
    if left == "new-guest":
        g = sim.guest(VM)
        assert g["name"] == "fresh" and g["status"] == "running" and not g["tags"], g
    finish(lab, sim, cfg, d)
    r = lab.cli("restore", op["id"], "--yes", "--vmid", "301", config=cfg)
    assert r.returncode == 0, r.stderr
    assert sim.guest(301)["name"] == "old"


def test_guest_moved_then_deleted_is_reaped_and_restores_from_its_node(lab):
    """Killed after verify; the stopped guest is migrated to pve2, proxreap
    journals the move and is killed again; the guest is then deleted. The
    verified archive holds it: reaped. The archive is on pve1's node-local
    storage, and restore goes there without --node."""
    sim = sim_of(lab, [guest(VM, "mover", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP)

    def crash_at(point):
        d = lab.daemon(cfg, env={"PROXREAP_CRASH_AT": point})
        wait_until(lambda: not d.running(), message="the crash at " + point)
        d.returncode = d.proc.returncode

    crash_at("verify-done")
    sim.event(VM, "migrate", node="pve2")
    crash_at("moved")
    sim.event(VM, "delete")
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, VM, {"reaped"})
    assert destroys(sim) == []
    finish(lab, sim, cfg, d, removed=[VM])
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 0, r.stderr
    g = sim.guest(VM)
    assert g["node"] == "pve1" and g["name"] == "mover", g


def test_mount_point_path_cannot_plant_the_archive_name(lab):
    """A mount point path holds "creating vzdump archive '<planted>'", which
    vzdump's log echoes before its real line; a protected archive with
    proxreap's notes waits under that name. Verify takes vzdump's own
    line: the op holds the real archive."""
    import time
    sim = sim_of(lab, [guest(VM, "ct", type="lxc", **IDLE)])
    epoch = int(sim.time()["epoch"]) + 3 * 86400
    name = "vzdump-lxc-%d-%s.tar.zst" % (VM, time.strftime("%Y_%m_%d-%H_%M_%S", time.gmtime(epoch)))
    sim.event(VM, "set", field="config", value={
        "mp0": "local-lvm:vm-%d-disk-1,mp=/srv/x creating vzdump archive '/var/lib/vz/dump/%s' y,"
               "backup=1,size=1G" % (VM, name)})
    planted = sim.add_backup("local", vmid=VM, type="lxc", ctime=epoch, compress="zstd", protected=1,
                             notes="proxreap R-pve1-000001: idle guest ct (%d) archived before removal" % VM,
                             size=4096)
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, VM, {"reaped"})
    real = sim.history(event="backup", vmid=VM)[0]["volid"]
    assert op["volid"] == real != planted["volid"], op
    finish(lab, sim, cfg, d)


def test_start_after_a_long_lock_is_tried_until_it_works(lab):
    """A backup job locks the stopped guest after its shutdown, long enough
    for the first compensating starts to fail: proxreap keeps trying,
    further apart, and the guest runs once the lock is gone."""
    sim, cfg, d = start(lab, [guest(VM, "v", **IDLE)], retry_after="1h",
                        faults=[after("^qmshutdown$", [{"action": "lock", "value": "backup"}])])
    wait_until(lambda: any(w.endswith("/status/start") for w in writes(sim, VM)), timeout=60,
               message="the first start")
    assert sim.guest(VM)["status"] == "stopped"
    sim.event(VM, "unlock")
    op = wait_op(lab, cfg, VM, {"aborted"}, timeout=90)
    assert sim.guest(VM)["status"] == "running" and destroys(sim) == []
    assert "could not start" not in op["reason"], op
    finish(lab, sim, cfg, d)


def test_destroy_of_a_previous_op_is_not_taken_for_this_ones(lab):
    """Op A reaps 201; provisioning reuses 201 for a guest that goes idle;
    op B's DELETE is cut before it reaches the server. B must not adopt A's
    destroy task as its own: the new guest is never called reaped while it
    exists. (No history: with it, a vmid reaped within the horizon is
    held, test_history_attacks.py.)"""
    sim, cfg, d = start(lab, [guest(VM, "first", **IDLE)], task_timeout="20s", history="0")
    a = wait_op(lab, cfg, VM, {"reaped"})
    sim.fault(kind="close", method="DELETE", path=r"^/nodes/pve1/qemu/%d$" % VM, count=1)
    sim.create_guest(dict(guest(VM, "second", **IDLE)))

    def b_done():
        b = [o for o in ops_by_vmid(lab, cfg, VM) if o["id"] != a["id"]]
        return b[0] if b and b[0]["state"] in ("aborted", "reaped") else None
    b = wait_until(b_done, timeout=90, message="the second op to end")
    g = sim.guest(VM)
    if b["state"] == "reaped":
        assert g is None, (b, g)
    else:
        assert g["name"] == "second" and g["status"] == "running", (b, g)
    finish(lab, sim, cfg, d)
