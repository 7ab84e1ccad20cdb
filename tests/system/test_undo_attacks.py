"""The undo path attacked (restore, archives, adoption, journal damage,
abort, status), as an adversary found it could be: ids reused after a lost
journal, notes forged on another backup, damage in the one record that
names the archive, an abort racing a call, someone else's restore into the
same vmid, a node whose storage cannot be read, a pid reused. Nothing of
another guest is restored or destroyed, and every restore still has a
way."""

import json
import os
import re
import time

from conftest import check_invariants, guest, journal_records, wait_until
from test_reap import IDLE, healthy, reap_config, sim_of, wait_op
from test_undo import flip_in_record


def jpath(lab):
    return os.path.join(lab.dir, "journal")


def qcreates(sim, node=None):
    return [r for r in sim.requests() if r["method"] == "POST"
            and re.match(r"^/nodes/%s/(qemu|lxc)$" % (node or "[^/]+"), r["path"])]


def jlist(lab, cfg):
    return {o["id"]: o for o in json.loads(lab.cli("journal", "list", "--json", config=cfg).stdout)}


NOTES = ("proxreap %s: idle guest %s (%d, qemu, storage local-lvm) archived before removal by "
         "the proxreapd of node pve1\nrestore on node pve1: proxreap restore %s\nevidence: x")


# ------------------------------------------------------------ 1. id reuse

def test_lost_journal_reused_op_id_restores_the_wrong_guest(lab):
    """pve1's journal is lost (node reinstalled, disk swapped). The new
    journal numbers from R-pve1-000001 again. The operator restores the
    guest of the lost journal by its vmid: proxreap must restore THAT
    guest (or refuse), never the other one that happens to share the id."""
    sim = sim_of(lab, [guest(104, "alpha", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    a = wait_op(lab, cfg, 104, {"reaped"})
    assert d.stop() == 0
    os.unlink(jpath(lab))
    sim.create_guest(guest(105, "beta", **IDLE))
    d = lab.daemon(cfg)
    b = wait_op(lab, cfg, 105, {"reaped"})
    assert d.stop() == 0
    # The new journal counts past the ids in the archives' notes.
    assert a["id"] != b["id"], (a["id"], b["id"])
    arch = json.loads(lab.cli("archives", "--json", config=cfg).stdout)
    print("archives:", [(x["id"], x["vmid"], x["name"]) for x in arch])
    r = lab.cli("restore", "104", "--yes", config=cfg)
    print("restore 104 ->", r.returncode, r.stdout, r.stderr)
    restored = [g["vmid"] for g in sim.guests()]
    # What the operator asked for: guest 104 'alpha', or nothing.
    assert 105 not in restored, "asked for 104 ('alpha'), proxreap restored 105 ('beta'):\n" + r.stdout
    assert r.returncode == 0 and sim.guest(104) is not None, r


def test_forged_notes_reusing_a_local_op_id_redirect_a_restore(lab):
    """A user with Datastore.Audit+notes rights edits the notes of any old
    backup (of vmid 777) to read like proxreap's, with the id of a local
    op. 'proxreap restore web1' (a name no local op has) must not restore
    the local op's guest (vmid 104 'alpha')."""
    sim = sim_of(lab, [guest(104, "alpha", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    a = wait_op(lab, cfg, 104, {"reaped"})
    assert d.stop() == 0
    sim.add_backup("local", node="pve1", vmid=777, protected=1,
                   notes=NOTES % (a["id"], "web1", 777, a["id"]))
    r = lab.cli("restore", "web1", "--yes", config=cfg)
    print("restore web1 ->", r.returncode, r.stdout, r.stderr)
    assert sim.guest(104) is None, "asked for 'web1', proxreap restored 104 ('alpha'):\n" + r.stdout


# ------------------------------------------------------------ 2. forged archives

def test_forged_notes_on_an_unprotected_foreign_backup(lab):
    """An ordinary, unprotected backup of guest 777 'db-prod', its notes
    edited to claim it is proxreap's archive of 'web1'. It must not be
    taken for a reaped guest named web1."""
    sim = sim_of(lab, [guest(100, "busy", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim)
    sim.add_backup("local", node="pve1", vmid=777, protected=0,
                   config="name: db-prod\nmemory: 2048\nscsi0: local-lvm:vm-777-disk-0,size=32G\n",
                   notes=NOTES % ("R-pve1-000042", "web1", 777, "R-pve1-000042"))
    r = lab.cli("archives", "--json", config=cfg)
    print(r.stdout, r.stderr)
    r = lab.cli("restore", "web1", "--yes", config=cfg)
    print("restore web1 ->", r.returncode, r.stdout, r.stderr)
    g = sim.guest(777)
    assert g is None, "restored db-prod (unprotected, notes forged) for 'web1': %s" % g


def test_control_chars_in_forged_name(lab):
    sim = sim_of(lab, [guest(100, "busy", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim)
    sim.add_backup("local", node="pve1", vmid=778, protected=1,
                   notes=NOTES % ("R-pve1-000043", "x\x1b[2J\x07\rOK", 778, "R-pve1-000043"))
    r = lab.cli("archives", config=cfg)
    print(repr(r.stdout), repr(r.stderr))
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout and "\r" not in r.stdout
    r = lab.cli("restore", "778", "--yes", config=cfg)
    print(repr(r.stdout), repr(r.stderr))
    assert "\x1b" not in r.stdout + r.stderr
    r = lab.cli("journal", "list", config=cfg)
    assert "\x1b" not in r.stdout + r.stderr, repr(r.stdout)
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 0, r


def test_two_archives_same_op_id_restore_nothing(lab):
    sim = sim_of(lab, [guest(100, "busy", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim)
    for v in (801, 802):
        sim.add_backup("local", node="pve1", vmid=v, protected=1,
                       notes=NOTES % ("R-pve9-000001", "twin", v, "R-pve9-000001"))
    for what in ("R-pve9-000001", "r-PVE9-000001", "twin"):
        r = lab.cli("restore", what, "--yes", config=cfg)
        print(what, r.returncode, r.stdout, r.stderr)
        assert r.returncode == 1 and "names 2 archives" in r.stderr, r
    assert qcreates(sim) == []
    assert jlist(lab, cfg) == {}


def test_notes_naming_another_vmid_are_ignored(lab):
    sim = sim_of(lab, [guest(100, "busy", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim)
    sim.add_backup("local", node="pve1", vmid=803, protected=1,
                   notes=NOTES % ("R-pve9-000002", "victim", 100, "R-pve9-000002"))
    r = lab.cli("restore", "victim", "--yes", config=cfg)
    assert r.returncode == 1 and qcreates(sim) == [], r
    r = lab.cli("restore", "100", "--yes", config=cfg)
    assert r.returncode == 1 and qcreates(sim) == [], r


# ------------------------------------------------------------ 3. journal damage

# An administrator's own token (the web UI's root@pam alike).
ADMIN_ID, ADMIN_SECRET = "root@pam!admin", "0a0b0c0d-1111-2222-3333-444455556666"
ADMIN = "PVEAPIToken=%s=%s" % (ADMIN_ID, ADMIN_SECRET)


def reaped_one(lab, vmid=104, name="alpha"):
    from conftest import SECRET, TOKEN_ID
    sim = sim_of(lab, [guest(vmid, name, **IDLE)], tokens={TOKEN_ID: SECRET, ADMIN_ID: ADMIN_SECRET})
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, vmid, {"reaped"})
    assert d.stop() == 0
    return sim, cfg, op


def line_of(lab, pred):
    return [i for i, r in enumerate(journal_records(jpath(lab)), 1) if pred(r)][0]


def test_damaged_verify_record_blocks_restore_for_good(lab):
    """Bit rot in the one record that holds the archive's volid (done
    verify). The guest is destroyed, its archive is on the storage with
    proxreap's notes. restore must still find a way (the archive's notes
    name the op), before and after 'journal repair'."""
    sim, cfg, op = reaped_one(lab)
    n = line_of(lab, lambda r: r.get("ev") == "done" and r.get("step") == "verify")
    flip_in_record(jpath(lab), n)
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    print("before repair:", r.returncode, r.stdout, r.stderr)
    before = r
    assert lab.cli("journal", "repair", config=cfg).returncode == 0
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    print("after repair:", r.returncode, r.stdout, r.stderr)
    r2 = lab.cli("restore", "104", "--yes", config=cfg)
    print("by vmid after repair:", r2.returncode, r2.stdout, r2.stderr)
    assert sim.guest(104) is not None, "guest 104 cannot be restored: %s / %s / %s" % (
        before.stderr, r.stderr, r2.stderr)


def test_damaged_reaped_record(lab):
    """The 'reaped' record damaged: the guest is destroyed; restore should
    work (or say how), not claim there is nothing to restore."""
    sim, cfg, op = reaped_one(lab)
    n = line_of(lab, lambda r: r.get("ev") == "reaped")
    flip_in_record(jpath(lab), n)
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert "nothing to restore" not in r.stderr, r.stderr
    # Under way at its destroy as far as the journal knows: the way is said.
    assert r.returncode == 1 and "run 'proxreap journal repair' and start it" in r.stderr, r
    assert lab.cli("journal", "repair", config=cfg).returncode == 0
    d = lab.daemon(cfg)
    wait_op(lab, cfg, 104, {"reaped"})
    assert d.stop() == 0
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 0 and sim.guest(104) is not None, r


def test_damaged_restore_intent_then_repair_second_copy(lab):
    """The restore's intent record damaged after a successful restore:
    proxreap must not offer (or make) a second copy of the guest."""
    sim, cfg, op = reaped_one(lab)
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 0, r
    n = line_of(lab, lambda r: r.get("ev") == "intent" and r.get("step") == "restore")
    flip_in_record(jpath(lab), n)
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    print("damaged:", r.returncode, r.stdout, r.stderr)
    assert lab.cli("journal", "repair", config=cfg).returncode == 0
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    print("repaired:", r.returncode, r.stdout, r.stderr)
    r = lab.cli("restore", op["id"], "--yes", "--vmid", "555", config=cfg)
    print("repaired --vmid 555:", r.returncode, r.stdout, r.stderr)
    assert sim.guest(555) is None, "a second copy of guest 104 was made as 555"
    assert len(qcreates(sim)) == 1


# ------------------------------------------------------------ 4. abort

SLOW_VZDUMP = {"qmshutdown": 0.3, "qmsnapshot": 0.2, "vzdump": 8.0, "qmdestroy": 0.2,
               "qmstart": 0.2, "qmrestore": 0.3}


def test_abort_while_the_vzdump_call_is_unanswered(lab):
    """The operator aborts while the daemon's vzdump POST has not been
    answered yet (a slow API). The abort must stop the backup it starts,
    start the guest again, and leave no protected proxreap archive of a
    guest that was never reaped."""
    sim = sim_of(lab, [guest(104, "thesis", **IDLE)], task_durations=SLOW_VZDUMP)
    cfg = reap_config(lab, sim)
    sim.fault(kind="delay", path="^/nodes/pve1/vzdump$", method="POST", seconds=4, count=1)
    d = lab.daemon(cfg)
    wait_until(lambda: any(r.get("ev") == "intent" and r.get("step") == "archive"
                           for r in journal_records(jpath(lab))), timeout=60)
    t0 = time.time()
    r = lab.cli("abort", "104", config=cfg, timeout=200)
    print("abort:", r.returncode, time.time() - t0, r.stdout, r.stderr)
    time.sleep(10)   # the vzdump (8 s) ends
    g = sim.guest(104)
    vols = [v for st in sim.storages(storage="local") for v in st["volumes"] if v["vmid"] == 104]
    print("guest:", g["status"], g.get("lock"), g.get("tags"))
    print("archives:", [(v["volid"], v.get("protected"), (v.get("notes") or "")[:40]) for v in vols])
    print([x for x in d.lines() if "104" in x][-15:])
    recs = [(x["ev"], x.get("step")) for x in journal_records(jpath(lab))]
    print(recs)
    assert d.stop() == 0
    assert r.returncode == 0, r
    assert g["status"] == "running", "the aborted guest is left stopped: %s" % r.stdout
    assert not [v for v in vols if v.get("protected")], \
        "an aborted reap left a protected proxreap archive: %s" % vols


def test_orphan_archive_of_an_aborted_reap_is_adopted_elsewhere(lab):
    """A reap fails after its archive was written (the guest's config is
    changed during the backup): the guest is put back, running. Its
    protected archive keeps proxreap's notes. From another node, the
    guest must not be offered as reaped, nor restored as a second copy."""
    from test_one_writer import STORAGES, node_config
    sim = sim_of(lab, [guest(104, "thesis", **IDLE)], storages=STORAGES)
    sim.fault(kind="after_task", type="^vzdump$", count=1,
              events=[{"action": "set", "field": "config", "value": {"memory": "4096"}}])
    cfg1, cfg2 = node_config(lab, sim, "pve1"), node_config(lab, sim, "pve2")
    d = lab.daemon(cfg1)
    op = wait_op(lab, cfg1, 104, {"aborted"})
    assert d.stop() == 0
    print(op["reason"])
    assert sim.guest(104)["status"] == "running"
    r = lab.cli("archives", config=cfg2)
    print(r.stdout)
    r = lab.cli("restore", "thesis", "--yes", config=cfg2)
    print("restore thesis:", r.returncode, r.stdout, r.stderr)
    msg = r.stderr
    r = lab.cli("restore", "thesis", "--yes", "--vmid", "555", config=cfg2)
    print("restore thesis --vmid 555:", r.returncode, r.stdout, r.stderr)
    assert sim.guest(555) is None, "a second copy of the live guest 104 was made as 555"
    assert "is taken now; restore with --vmid" not in msg, msg


def test_abort_races_the_destroy(lab):
    """abort sent while the daemon is in act_destroy's re-check (slowed):
    either the abort wins (guest running, no destroy) or it says 'restore
    instead'; never both a destroy and an 'aborted'."""
    sim = sim_of(lab, [guest(104, "thesis", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    path = jpath(lab)
    wait_until(lambda: any(r.get("ev") == "done" and r.get("step") == "verify"
                           for r in journal_records(path)), timeout=60, interval=0.01)
    r = lab.cli("abort", "104", config=cfg, timeout=200)
    print(r.returncode, r.stdout, r.stderr)
    wait_until(lambda: [o for o in jlist(lab, cfg).values()
                        if o["state"] in ("aborted", "reaped")], timeout=60)
    assert d.stop() == 0
    state = list(jlist(lab, cfg).values())[0]["state"]
    destroyed = [h for h in sim.history(event="destroy") if h["vmid"] == 104]
    print(state, destroyed and "destroyed")
    if state == "aborted":
        assert not destroyed and sim.guest(104)["status"] == "running"
    else:
        assert destroyed and r.returncode == 1 and "restore" in r.stderr
    check_invariants(lab, sim, cfg)


# ------------------------------------------------------------ 5. restore's lost answer

def test_lost_create_then_someone_elses_restore_is_taken_for_ours(lab):
    """proxreap's create call is lost (connection closed before the server
    read it: nothing happened). Meanwhile someone restores ANOTHER backup
    (of 'db-prod', vmid 777) into the free vmid 104. proxreap must not
    take that task for its own: op R-...-1 marked 'restored' while guest
    104 'alpha' never came back means alpha is lost to proxreap."""
    sim, cfg, op = reaped_one(lab)
    foreign = sim.add_backup("local", node="pve1", vmid=777, protected=0,
                             config="name: db-prod\nmemory: 1024\nscsi0: local-lvm:vm-777-disk-0,size=8G\n")
    sim.fault(kind="close", path="^/nodes/pve1/qemu$", method="POST", count=1)
    p = lab.cli_async("restore", op["id"], "--yes", config=cfg)
    wait_until(lambda: any(r["method"] == "POST" and r["path"] == "/nodes/pve1/qemu"
                           for r in sim.requests()), timeout=30, interval=0.02)
    a = sim.api("POST", "/nodes/pve1/qemu", {"vmid": 104, "archive": foreign["volid"]},
                token=ADMIN)
    print("foreign restore:", a.status, a.body)
    r = lab.finish(p)
    print("proxreap restore:", r.returncode, r.stdout, r.stderr)
    wait_until(lambda: sim.guest(104) is not None, timeout=30)
    time.sleep(1)
    g = sim.guest(104)
    o = jlist(lab, cfg)[op["id"]]
    print("guest 104 now:", g["name"], g.get("tags"), "op:", o["state"], o["reason"])
    assert not (o["state"] == "restored" and g["name"] == "db-prod"), \
        "op marked restored, but guest 104 is db-prod (someone else's restore); alpha is lost"


def test_lost_create_then_someone_elses_failed_restore_is_cleaned_up_by_proxreap(lab):
    """As above, but the other restore fails and leaves its empty guest
    104 (qemu: 'VM state is NOT cleaned up'). proxreap must not destroy a
    guest it did not create."""
    sim, cfg, op = reaped_one(lab)
    foreign = sim.add_backup("local", node="pve1", vmid=777, protected=0,
                             config="name: db-prod\nmemory: 1024\nscsi0: local-lvm:vm-777-disk-0,size=8G\n")
    sim.fault(kind="close", path="^/nodes/pve1/qemu$", method="POST", count=1)
    before = len(sim.requests())
    p = lab.cli_async("restore", op["id"], "--yes", config=cfg)
    wait_until(lambda: any(r["method"] == "POST" and r["path"] == "/nodes/pve1/qemu"
                           for r in sim.requests()), timeout=30, interval=0.02)
    sim.fault(kind="task_fail", type="^qmrestore$", error="unable to restore VM 104 - admin's own error",
              count=1)
    a = sim.api("POST", "/nodes/pve1/qemu", {"vmid": 104, "archive": foreign["volid"]},
                token=ADMIN)
    print("foreign restore:", a.status, a.body)
    r = lab.finish(p)
    print("proxreap restore:", r.returncode, r.stdout, r.stderr)
    proxreap_deletes = [x for x in sim.requests()[before:] if x["method"] == "DELETE"
                        and x["path"] == "/nodes/pve1/qemu/104"]
    assert not proxreap_deletes, "proxreap destroyed guest 104, left by someone else's restore: " + r.stderr


# ------------------------------------------------------------ 6. archives on an offline node

def offline_pve3(lab):
    """pve3 is offline; its 'local' holds an archive of a reap of its own."""
    notes = NOTES.replace("node pve1", "node pve3") % ("R-pve3-000001", "far", 901, "R-pve3-000001")
    storages = [{"storage": "local", "plugintype": "dir", "content": "iso,vztmpl,backup",
                 "maxdisk": 100 * 2**30, "disk": 8 * 2**30,
                 "backups": [{"vmid": 901, "protected": 1, "notes": notes, "node": "pve3"}]},
                {"storage": "local-lvm", "plugintype": "lvmthin", "content": "images,rootdir",
                 "maxdisk": 800 * 2**30, "disk": 100 * 2**30}]
    return sim_of(lab, [guest(100, "busy", cpu=0.5, mem_mb=3000)],
                  nodes=["pve1", {"node": "pve3", "online": False}], storages=storages)


def test_archives_on_an_offline_node_are_not_silently_missing(lab):
    sim = offline_pve3(lab)
    cfg = reap_config(lab, sim)
    print(sim.api("GET", "/cluster/resources", {"type": "storage"}).json)
    r = lab.cli("archives", config=cfg)
    print("archives:", r.returncode, r.stdout, r.stderr)
    out = r.stdout + r.stderr
    r2 = lab.cli("restore", "far", "--yes", config=cfg)
    print("restore far:", r2.returncode, r2.stdout, r2.stderr)
    assert "pve3" in out, "archives says nothing of pve3, whose 'local' it could not read:\n" + out


def test_archives_on_a_node_whose_storage_status_is_unknown(lab):
    """Real PVE shows an offline node's storages with status 'unknown'
    (the sim says 'available'; rewritten here). The archives there must
    not vanish without a word."""
    sim = offline_pve3(lab)
    sim.fault(kind="rewrite", path="^/cluster/resources$",
              pattern=r'("id": ?"storage/pve3/local"[^}]*"status": ?")available', repl=r"\1unknown")
    cfg = reap_config(lab, sim)
    print([x.get("status") for x in sim.api("GET", "/cluster/resources", {"type": "storage"}).json["data"]])
    r = lab.cli("archives", config=cfg)
    print("archives:", r.returncode, r.stdout, r.stderr)
    out = r.stdout + r.stderr
    r2 = lab.cli("restore", "R-pve3-000001", "--yes", config=cfg)
    print("restore:", r2.returncode, r2.stdout, r2.stderr)
    assert "pve3" in out, "archives says nothing of pve3, whose 'local' it could not read:\n" + out


# ------------------------------------------------------------ 7. status

def test_status_of_a_dead_daemon_whose_pid_was_reused(lab):
    """The daemon died 30 s ago; its pid now belongs to another process
    (here: pytest). status must not say it runs."""
    import signal
    sim = sim_of(lab, [guest(100, "busy", cpu=0.5, mem_mb=3000)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    healthy(d, more=2)
    d.signal(signal.SIGKILL)
    d.stop()
    doc = json.load(open(d.status_file))
    doc["pid"] = os.getpid()
    doc["updated_epoch"] = int(time.time()) - 30
    json.dump(doc, open(d.status_file, "w"))
    r = lab.cli("status", config=cfg)
    print(r.returncode, r.stdout.splitlines()[:2])
    assert r.returncode == 1, r.stdout


# ------------------------------------------------------------ 8. name/vmid resolution

def test_an_old_aborted_op_here_hides_the_reap_another_node_did(lab):
    """Guest 104 lived on pve2, whose daemon's reap of it failed (aborted,
    guest put back). It migrated to pve1, whose daemon reaped it onto the
    shared storage. On pve2, 'proxreap restore 104' must find the reaped
    guest (its archive's notes), not answer 'never destroyed'."""
    from test_one_writer import STORAGES, node_config
    sim = sim_of(lab, [guest(104, "thesis", node="pve2", **IDLE)], storages=STORAGES)
    cfg1, cfg2 = node_config(lab, sim, "pve1"), node_config(lab, sim, "pve2")
    sim.fault(kind="task_fail", type="^vzdump$", count=1)
    d2 = lab.daemon(cfg2)
    wait_op(lab, cfg2, 104, {"aborted"})
    assert d2.stop() == 0
    sim.event(104, "migrate", node="pve1")
    wait_until(lambda: sim.guest(104)["node"] == "pve1" and sim.guest(104)["status"] == "running",
               timeout=30)
    d1 = lab.daemon(cfg1)
    op = wait_op(lab, cfg1, 104, {"reaped"})
    assert d1.stop() == 0
    r = lab.cli("restore", "104", "--yes", config=cfg2)
    print("restore 104 on pve2:", r.returncode, r.stdout, r.stderr)
    r2 = lab.cli("restore", "thesis", "--yes", config=cfg2)
    print("restore thesis on pve2:", r2.returncode, r2.stdout, r2.stderr)
    assert "never destroyed" not in r.stderr + r2.stderr, r.stderr
    assert sim.guest(104) is not None
