"""One writer per journal and ids unique in a cluster: a second proxreapd
on one journal, two restores of one op at once, and two nodes whose
daemons archive to one shared storage."""

import os
import re

from conftest import check_invariants, guest, journal_ops, wait_until
from test_reap import IDLE, OBSERVE, healthy, reap_config, sim_of, wait_op

SLOW_RESTORE = {"qmshutdown": 0.3, "qmsnapshot": 0.2, "vzdump": 0.4, "qmdestroy": 0.2,
                "qmstart": 0.2, "qmrestore": 3.0}
GIB = 1024 ** 3
STORAGES = [
    {"storage": "local", "plugintype": "dir", "content": "iso,vztmpl,backup",
     "maxdisk": 100 * GIB, "disk": 8 * GIB},
    {"storage": "local-lvm", "plugintype": "lvmthin", "content": "images,rootdir",
     "maxdisk": 800 * GIB, "disk": 100 * GIB},
    {"storage": "nfs-bk", "plugintype": "nfs", "content": "backup", "shared": 1,
     "maxdisk": 2000 * GIB, "disk": 100 * GIB},
]


def creates(sim, node="pve1"):
    return [r for r in sim.requests() if r["method"] == "POST" and r["path"] == "/nodes/%s/qemu" % node]


def deletes(sim):
    return [r for r in sim.requests() if r["method"] == "DELETE"]


def test_second_daemon_on_one_journal_refuses_and_names_the_first(lab):
    sim = sim_of(lab, [guest(1001, "victim", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    healthy(d, more=1)
    d2 = lab.daemon(cfg)
    d2.returncode = d2.proc.wait(timeout=30)
    # Final: a restart would not help while the first one runs.
    assert d2.returncode == 2, d2.log()
    assert "journal '%s' is used by another proxreapd (pid %d)" % (
        os.path.join(lab.dir, "journal"), d.pid) in d2.log(), d2.log()
    # The first reaps the guest, once.
    op = wait_op(lab, cfg, 1001, {"reaped"})
    assert op["id"] == "R-pve1-000001"
    assert len(deletes(sim)) == 1
    healthy(d)
    assert d.stop() == 0
    check_invariants(lab, sim, cfg)


def test_two_restores_at_once_create_one_guest(lab):
    sim = sim_of(lab, [guest(1001, "victim", **IDLE)], task_durations=SLOW_RESTORE)
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 1001, {"reaped"})
    assert d.stop() == 0
    a = lab.cli_async("restore", op["id"], "--yes", config=cfg)
    b = lab.cli_async("restore", op["id"], "--yes", config=cfg)
    ra, rb = lab.finish(a), lab.finish(b)
    assert len(creates(sim)) == 1, creates(sim)
    done = [r for r in (ra, rb) if "restored as guest 1001" in r.stdout]
    other = [r for r in (ra, rb) if r not in done]
    assert len(done) == 1 and done[0].returncode == 0, (ra, rb)
    o = other[0]
    busy = re.search(r"%s is being restored right now by proxreap \(pid \d+\), as guest 1001 on 'pve1'"
                     % op["id"], o.stderr)
    assert (o.returncode == 1 and busy) or (o.returncode == 0 and "already restored" in o.stdout), o
    wait_until(lambda: sim.guest(1001), timeout=10)
    assert journal_ops(lab, cfg)[op["id"]]["state"] == "restored"
    check_invariants(lab, sim, cfg)


def node_config(lab, sim, node):
    observe = dict(OBSERVE, nodes="local", node_name=node)
    return lab.config(sim, name="%s.conf" % node, observe=observe,
                      reap={"mode": "reap", "archive_storage": "nfs-bk", "breaker_jump": 100,
                            "journal": os.path.join(lab.dir, "journal-%s" % node)})


def test_two_nodes_sharing_a_storage_never_share_an_id(lab):
    sim = sim_of(lab, [guest(1001, "one", **IDLE), guest(2001, "two", node="pve2", **IDLE)],
                 storages=STORAGES)
    cfg1, cfg2 = node_config(lab, sim, "pve1"), node_config(lab, sim, "pve2")
    d1, d2 = lab.daemon(cfg1), lab.daemon(cfg2)
    op1 = wait_op(lab, cfg1, 1001, {"reaped"})
    op2 = wait_op(lab, cfg2, 2001, {"reaped"})
    assert d1.stop() == 0 and d2.stop() == 0
    assert (op1["id"], op2["id"]) == ("R-pve1-000001", "R-pve2-000001")
    # The archives' notes, in the Proxmox UI, name the op and its node.
    notes = {v["vmid"]: v["notes"] for st in sim.storages(storage="nfs-bk") for v in st["volumes"]}
    assert notes[1001].startswith("proxreap R-pve1-000001: ") and "node pve1" in notes[1001], notes
    assert notes[2001].startswith("proxreap R-pve2-000001: ") and "node pve2" in notes[2001], notes
    assert "restore on node pve2: proxreap restore R-pve2-000001" in notes[2001], notes
    # pve2's id on pve1: pve1's journal does not hold it, but the shared
    # archive's notes do: it is that guest, never another.
    r = lab.cli("restore", op2["id"], "--yes", config=cfg1)
    assert r.returncode == 0, r
    assert "R-pve2-000001 is in no journal here; its archive 'nfs-bk:backup/vzdump-qemu-2001-" in r.stdout
    assert "R-pve2-000001 restored as guest 2001 on 'pve1'" in r.stdout, r.stdout
    assert len(creates(sim, "pve1")) == 1 and creates(sim, "pve2") == []
    assert sim.guest(2001)["name"] == "two"
    # An id no journal and no archive holds: refused, naming the node.
    r = lab.cli("restore", "R-pve2-000007", "--yes", config=cfg1)
    assert r.returncode == 1
    assert ("R-pve2-000007 was reaped by the proxreapd on 'pve2', and neither this node's journal "
            "nor an archive on 'nfs-bk' as 'pve1' sees it holds it: run 'proxreap restore "
            "R-pve2-000007' on 'pve2'") in r.stderr, r.stderr
    # pve1's own op on its own node.
    r = lab.cli("restore", op1["id"], "--yes", config=cfg1)
    assert r.returncode == 0 and "restored as guest 1001 on 'pve1'" in r.stdout, r.stderr
