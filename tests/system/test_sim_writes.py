"""System tests for the write calls of the Proxmox VE API simulator
(tests/pve-sim): tasks, power, snapshots, vzdump, storage, destroy,
restore, config, HA, rrddata, nextid, and the task/storage/lost-reply
faults.

Run: /usr/bin/python3 -m pytest -q -p no:cacheprovider tests/system/test_sim_writes.py
"""

import json
import os
import re
import sys
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM_DIR = os.path.normpath(os.path.join(HERE, "..", "pve-sim"))
CONTRACT = os.path.normpath(os.path.join(HERE, "..", "data", "pve-api", "endpoints.json"))
sys.path.insert(0, SIM_DIR)

from simctl import Sim  # noqa: E402

MIB = 1048576
GIB = 1024 * MIB
TOKEN_ID = "proxreap@pve!reaper"
SECRET = "5a0c1f2e-8d3b-4c6a-9e7f-112233445566"
PASSWORD = "r00t-passw0rd"

with open(CONTRACT) as _fh:
    UPID_RE = re.compile(json.load(_fh)["upid"]["regex"])

FAST = {"qmstart": 0.2, "vzstart": 0.2, "qmstop": 0.1, "vzstop": 0.1, "qmshutdown": 0.2,
        "vzshutdown": 0.2, "hastart": 0.1, "hastop": 0.1, "qmsnapshot": 0.2, "vzsnapshot": 0.2,
        "qmdelsnapshot": 0.2, "vzdelsnapshot": 0.2, "qmrollback": 0.2, "vzrollback": 0.2,
        "vzdump": 0.3, "qmdestroy": 0.2, "vzdestroy": 0.2, "qmrestore": 0.3, "vzrestore": 0.3,
        "qmconfig": 0.1, "imgdel": 0.1}

STORAGES = [
    {"storage": "local", "plugintype": "dir", "content": "iso,vztmpl,backup",
     "maxdisk": 100 * GIB, "disk": 8 * GIB},
    {"storage": "local-lvm", "plugintype": "lvmthin", "content": "images,rootdir",
     "maxdisk": 800 * GIB, "disk": 100 * GIB},
    {"storage": "thick", "plugintype": "lvm", "content": "images,rootdir", "maxdisk": 500 * GIB},
    {"storage": "nfs-bk", "plugintype": "nfs", "content": "backup", "shared": 1,
     "maxdisk": 2000 * GIB, "disk": 100 * GIB, "prune-backups": "keep-last=1"},
    {"storage": "pbs", "plugintype": "pbs", "content": "backup", "shared": 1,
     "maxdisk": 4000 * GIB, "disk": 1000 * GIB},
]


def guests():
    return [
        {"vmid": 100, "type": "qemu", "node": "pve1", "name": "web1", "tags": "prod",
         "maxdisk": 32 * GIB, "disk": 4 * GIB,
         "workload": {"kind": "constant", "cpu": 0.02, "mem_mb": 300}},
        {"vmid": 101, "type": "lxc", "node": "pve1", "name": "ct1", "status": "stopped",
         "maxdisk": 8 * GIB, "disk": GIB},
        {"vmid": 102, "type": "qemu", "node": "pve1", "name": "deaf", "acpi": False},
        {"vmid": 103, "type": "lxc", "node": "pve1", "name": "ct-deaf", "shutdown": "ignore"},
        {"vmid": 104, "type": "qemu", "node": "pve1", "name": "ha1", "ha": True},
        {"vmid": 105, "type": "qemu", "node": "pve1", "name": "prot", "protection": 1,
         "status": "stopped"},
        {"vmid": 106, "type": "qemu", "node": "pve1", "name": "locked", "lock": "backup",
         "status": "stopped"},
        {"vmid": 107, "type": "qemu", "node": "pve1", "name": "tmpl", "template": 1,
         "status": "stopped"},
        {"vmid": 108, "type": "qemu", "node": "pve1", "name": "thickvm", "disk_storage": "thick",
         "status": "stopped"},
        {"vmid": 109, "type": "qemu", "node": "pve1", "name": "paused", "status": "paused"},
        {"vmid": 110, "type": "qemu", "node": "pve1", "name": "warny", "status": "stopped",
         "start_warnings": 2, "snapshots": [{"name": "base", "snaptime": 1700000000},
                                            {"name": "daily", "snaptime": 1700086400,
                                             "description": "cron"}]},
        {"vmid": 200, "type": "qemu", "node": "pve2", "name": "remote"},
        {"vmid": 201, "type": "lxc", "node": "pve2", "name": "ct-remote", "status": "stopped"},
    ]


def scenario(**over):
    sc = {"nodes": ["pve1", "pve2"], "tokens": {TOKEN_ID: SECRET},
          "users": {"root@pam": PASSWORD}, "auth_fail_delay": 0.0, "stats_period": 0.1,
          "clustername": "lab", "task_durations": dict(FAST), "ha_delay": 0.3,
          "storages": STORAGES, "guests": guests()}
    sc.update(over)
    return sc


@pytest.fixture
def sim():
    with Sim(scenario()) as s:
        yield s


def ok(r):
    assert r.status == 200, r
    return r.json["data"]


def upid_of(r):
    u = ok(r)
    assert isinstance(u, str) and UPID_RE.match(u), u
    return u


def task_of(sim, r):
    """Run a task-starting response to its end; the task view (with log)."""
    return sim.wait_task(upid_of(r))


def run_task(sim, upid, step=1.0):
    """Drive a (long) task to its end by advancing the sim clock."""
    for _ in range(600):
        t = sim.task(upid)
        if t["status"] == "stopped":
            return t
        sim.advance(step)
    raise AssertionError("task %s did not end" % upid)


def tstatus(sim, upid, node=None):
    node = node or UPID_RE.match(upid).group(1)
    return sim.api("GET", "/nodes/%s/tasks/%s/status" % (node, urllib.parse.quote(upid, safe="")))


def tlog(sim, upid, **params):
    node = UPID_RE.match(upid).group(1)
    return sim.api("GET", "/nodes/%s/tasks/%s/log" % (node, urllib.parse.quote(upid, safe="")), params)


def err500(r, msg):
    assert r.status == 500, r
    assert r.reason == msg.split("\n")[0]
    assert r.json == {"data": None, "message": msg + "\n"}


def err400(r, errors):
    assert r.status == 400, r
    assert r.json["errors"] == errors, r.json


def cfg(sim, vmid, gtype="qemu", node="pve1"):
    return ok(sim.api("GET", "/nodes/%s/%s/%d/config" % (node, gtype, vmid)))


def wait_for(pred, timeout=10, interval=0.02):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        assert time.monotonic() < deadline, "condition not met in %ss" % timeout
        time.sleep(interval)


def vm_entry(sim, vmid):
    return [x for x in ok(sim.api("GET", "/cluster/resources", {"type": "vm"})) if x["vmid"] == vmid][0]


def backups(sim, storage, vmid=None, node="pve1"):
    params = {"content": "backup"}
    if vmid is not None:
        params["vmid"] = vmid
    return ok(sim.api("GET", "/nodes/%s/storage/%s/content" % (node, storage), params))


def vzdump(sim, vmid, node="pve1", **kw):
    params = {"vmid": str(vmid)}
    params.update({k.replace("_", "-"): v for k, v in kw.items()})
    return sim.api("POST", "/nodes/%s/vzdump" % node, params)


# ----------------------------------------------------------------- tasks

def test_task_status_log_list_and_unknown_upids():
    with Sim(scenario(task_durations=dict(FAST, qmshutdown=20))) as sim:
        _task_status_log_list(sim)


def _task_status_log_list(sim):
    r = sim.api("POST", "/nodes/pve1/qemu/100/status/shutdown", {"timeout": 30})
    upid = upid_of(r)
    m = UPID_RE.match(upid)
    assert m.group(1) == "pve1" and m.group(6) == "qmshutdown" and m.group(7) == "100"
    assert m.group(8) == TOKEN_ID                      # user@realm!tokenid in the UPID
    st = ok(tstatus(sim, upid))
    assert st["status"] == "running" and "exitstatus" not in st
    assert st["user"] == "proxreap@pve" and st["tokenid"] == "reaper"
    assert st["upid"] == upid and st["type"] == "qmshutdown" and st["id"] == "100"
    assert st["pid"] == int(m.group(3), 16) and st["starttime"] == int(m.group(5), 16)
    active = ok(sim.api("GET", "/nodes/pve1/tasks", {"source": "active"}))
    assert [t["upid"] for t in active] == [upid]
    assert ok(sim.api("GET", "/nodes/pve1/tasks")) == []          # archive: finished only
    view = run_task(sim, upid)
    st = ok(tstatus(sim, upid))
    assert st["status"] == "stopped" and st["exitstatus"] == "OK"
    r = tlog(sim, upid)
    assert r.json["total"] == 1 and r.json["data"] == [{"n": 1, "t": "TASK OK"}]
    lst = sim.api("GET", "/nodes/pve1/tasks", {"typefilter": "qmshutdown", "vmid": 100})
    assert lst.json["total"] == 1
    item = lst.json["data"][0]
    assert item["status"] == "OK" and item["endtime"] >= item["starttime"]
    assert item["user"] == "proxreap@pve" and item["tokenid"] == "reaper"
    assert view["exitstatus"] == "OK" and sim.guest(100)["status"] == "stopped"
    # the UPID names pve1: asking pve2 for it finds no task file there
    err400(tstatus(sim, upid, node="pve2"), {"upid": "no such task"})
    other = upid.replace(":%s:" % m.group(3), ":0000FFFF:")
    err400(tstatus(sim, other), {"upid": "no such task"})
    err400(sim.api("DELETE", "/nodes/pve1/tasks/%s" % urllib.parse.quote(other, safe="")),
           {"upid": "no such task"})
    err400(sim.api("GET", "/nodes/pve1/tasks/UPID:garbage/status"),
           {"upid": "unable to parse worker upid"})
    r = tlog(sim, other)
    assert r.status == 200 and r.json["total"] == 1
    assert r.json["data"] == [{"n": 1, "t": "unable to open file - No such file or directory"}]
    # stopping a finished task is a no-op
    assert sim.api("DELETE", "/nodes/pve1/tasks/%s" % urllib.parse.quote(upid, safe="")).json == {"data": None}
    # the request log carries the UPID for correlation
    post = [e for e in sim.requests() if e["method"] == "POST"][0]
    assert post["data"] == upid and post["status"] == 200


def test_task_abort_and_hang(sim):
    sim.fault(kind="task_hang", type="qmsnapshot", count=1)
    upid = upid_of(sim.api("POST", "/nodes/pve1/qemu/100/snapshot", {"snapname": "s1"}))
    sim.advance(5)                          # far past its 0.2 s: it hangs
    assert ok(tstatus(sim, upid))["status"] == "running"
    assert cfg(sim, 100)["lock"] == "snapshot"
    snaps = ok(sim.api("GET", "/nodes/pve1/qemu/100/snapshot"))
    assert snaps[0]["name"] == "s1" and snaps[0]["snapstate"] == "prepare"
    assert ok(sim.api("DELETE", "/nodes/pve1/tasks/%s" % urllib.parse.quote(upid, safe=""))) is None
    st = ok(tstatus(sim, upid))
    assert st["status"] == "stopped" and st["exitstatus"] == "received interrupt"
    assert "lock" not in cfg(sim, 100)
    assert [s["name"] for s in ok(sim.api("GET", "/nodes/pve1/qemu/100/snapshot"))] == ["current"]
    # count=1: the next snapshot works
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/snapshot", {"snapname": "s2"}))
    assert t["exitstatus"] == "OK"
    # aborting a vzdump: vzdump's own signal handler message, guest unlocked
    sim.fault(kind="task_hang", type="vzdump", count=1)
    upid = upid_of(vzdump(sim, 101, storage="local"))
    wait_for(lambda: cfg(sim, 101, "lxc").get("lock") == "backup")
    sim.api("DELETE", "/nodes/pve1/tasks/%s" % urllib.parse.quote(upid, safe=""))
    t = sim.wait_task(upid)
    assert t["exitstatus"] == "interrupted by signal"
    assert "ERROR: Backup of VM 101 failed - interrupted by signal" in t["log"]
    assert "lock" not in cfg(sim, 101, "lxc") and backups(sim, "local", 101) == []


# ----------------------------------------------------------------- power

def test_qemu_power(sim):
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/status/start"))
    assert t["exitstatus"] == "VM 100 already running"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/105/status/stop"))
    assert t["exitstatus"] == "OK"                                 # already stopped: no-op
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/110/status/start"))
    assert t["exitstatus"] == "WARNINGS: 2" and t["log"][-1] == "TASK WARNINGS: 2"
    assert sim.guest(110)["status"] == "running"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/107/status/start"))
    assert t["exitstatus"] == "you can't start a vm if it's a template"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/106/status/start"))
    assert t["exitstatus"] == "VM is locked (backup)"
    # a guest ignoring ACPI: timeout, then with forceStop a hard stop
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/102/status/shutdown", {"timeout": 1}))
    assert t["exitstatus"] == "VM quit/powerdown failed - got timeout"
    assert sim.guest(102)["status"] == "running"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/102/status/shutdown",
                             {"timeout": 1, "forceStop": 1}))
    assert t["exitstatus"] == "OK" and "VM still running - terminating now with SIGTERM" in t["log"]
    assert sim.guest(102)["status"] == "stopped"
    # paused guests refuse a graceful shutdown (synchronously)
    err500(sim.api("POST", "/nodes/pve1/qemu/109/status/shutdown"), "VM is paused - cannot shutdown")
    # only root@pam may skiplock - an API token is not root@pam
    err400(sim.api("POST", "/nodes/pve1/qemu/100/status/stop", {"skiplock": 1}),
           {"skiplock": "Only root may use this option."})
    # the path node is node-local: a guest on pve2 addressed on pve1
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/200/status/start"))
    assert t["exitstatus"] == "Configuration file 'nodes/pve1/qemu-server/200.conf' does not exist"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/200/status/stop"))
    assert t["exitstatus"] == "unable to find configuration file for VM 200 on node 'pve1'"
    # a normal shutdown/start cycle; the lock is not touched
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/status/shutdown"))
    assert t["exitstatus"] == "OK" and sim.guest(100)["status"] == "stopped"
    # /cluster/resources follows with the next pvestatd sample
    wait_for(lambda: vm_entry(sim, 100)["status"] == "stopped")
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/status/start"))
    assert t["exitstatus"] == "OK" and sim.guest(100)["status"] == "running"
    ev = [(h["event"], h.get("how")) for h in sim.history(vmid=100)]
    assert ev == [("stop", "shutdown"), ("start", "start")]


def test_lxc_power(sim):
    err500(sim.api("POST", "/nodes/pve1/lxc/103/status/start"), "CT 103 already running")
    err500(sim.api("POST", "/nodes/pve1/lxc/101/status/stop"), "CT 101 not running")
    err500(sim.api("POST", "/nodes/pve1/lxc/101/status/shutdown"), "CT 101 not running")
    err500(sim.api("POST", "/nodes/pve1/lxc/201/status/stop"), "CT 201 not running")   # node-local
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/103/status/shutdown", {"timeout": 1}))
    assert t["exitstatus"] == "command 'lxc-stop -n 103 --nokill --timeout 1' failed: exit code 1"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/103/status/shutdown",
                             {"timeout": 1, "forceStop": 1}))
    assert t["exitstatus"] == "OK" and sim.guest(103)["status"] == "stopped"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/101/status/start"))
    assert t["exitstatus"] == "OK" and sim.guest(101)["status"] == "running"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/101/status/stop"))
    assert t["exitstatus"] == "OK" and sim.guest(101)["status"] == "stopped"
    sim.event(101, "lock", value="backup")
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/101/status/start"))
    assert t["exitstatus"] == "CT is locked (backup)"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/201/status/start"))
    assert t["exitstatus"] == "Configuration file 'nodes/pve1/lxc/201.conf' does not exist"


def test_ha_managed_power_and_resources():
    with Sim(scenario(ha_delay=30)) as sim:
        _ha_managed(sim)


def _ha_managed(sim):
    r = sim.api("POST", "/nodes/pve1/qemu/104/status/shutdown", {"timeout": 30})
    upid = upid_of(r)
    assert UPID_RE.match(upid).group(6) == "hastop"
    t = sim.wait_task(upid)
    assert t["exitstatus"] == "OK" and t["log"] == ["Requesting HA stop for VM 104", "TASK OK"]
    # the hastop task only queued the request: the guest is still running
    assert sim.guest(104)["status"] == "running"
    st = ok(sim.api("GET", "/nodes/pve1/qemu/104/status/current"))
    assert st["ha"] == {"managed": 1, "state": "request_stop"}
    sim.advance(31)                                   # ha-manager acts (LRM qmshutdown)
    wait_for(lambda: sim.guest(104)["status"] == "stopped")
    lrm = sim.tasks(type="qmshutdown", vmid="104")
    assert lrm and lrm[0]["user"] == "root@pam"
    assert ok(sim.api("GET", "/cluster/ha/resources/vm:104")) == {
        "sid": "vm:104", "state": "stopped", "type": "vm",
        "digest": ok(sim.api("GET", "/cluster/ha/resources/104"))["digest"]}
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/104/status/start"))
    assert t["type"] == "hastart" and t["log"][0] == "Requesting HA start for VM 104"
    assert sim.guest(104)["status"] == "stopped" and sim.guest(104)["hastate"] == "starting"
    sim.advance(31)
    wait_for(lambda: sim.guest(104)["status"] == "running")
    assert sim.guest(104)["hastate"] == "started"
    # vzdump mode=stop is refused while the requested state is 'started'
    t = task_of(sim, vzdump(sim, 104, storage="local", mode="stop"))
    assert t["exitstatus"] == "job errors"
    assert ("ERROR: Backup of VM 104 failed - Cannot execute a backup with stop mode on a HA "
            "managed and enabled Service. Use snapshot mode or disable the Service.") in t["log"]
    # destroy needs purge (and a stopped guest)
    err500(sim.api("DELETE", "/nodes/pve1/qemu/104"),
           "unable to remove VM 104 - used in HA resources and purge parameter not set.")
    err500(sim.api("DELETE", "/nodes/pve1/qemu/104", {"purge": 1}), "VM 104 is running - destroy failed")
    err500(sim.api("GET", "/cluster/ha/resources/vm:100"), "no such resource 'vm:100'")
    err500(sim.api("GET", "/cluster/ha/resources/999"),
           "unable to detect SID from VMID - VM/CT 999 does not exist")
    err500(sim.api("DELETE", "/cluster/ha/resources/vm:100"),
           "cannot delete service 'vm:100', not HA managed!")
    assert ok(sim.api("DELETE", "/cluster/ha/resources/vm:104")) is None
    assert ok(sim.api("GET", "/nodes/pve1/qemu/104/status/current"))["ha"] == {"managed": 0}
    assert [h["event"] for h in sim.history(vmid=104)][-1] == "ha-remove"


# ----------------------------------------------------------------- snapshots

def test_snapshots(sim):
    err500(sim.api("POST", "/nodes/pve1/qemu/100/snapshot", {"snapname": "current"}),
           "unable to use snapshot name 'current' (reserved name)")
    err500(sim.api("POST", "/nodes/pve1/qemu/100/snapshot", {"snapname": "Pending"}),
           "unable to use snapshot name 'pending' (reserved name)")
    err500(sim.api("POST", "/nodes/pve1/lxc/101/snapshot", {"snapname": "vzdump"}),
           "unable to use snapshot name 'vzdump' (reserved name)")
    err500(sim.api("POST", "/nodes/pve1/qemu/200/snapshot", {"snapname": "x1"}),
           "Configuration file 'nodes/pve1/qemu-server/200.conf' does not exist")
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/snapshot",
                             {"snapname": "proxreap-1", "description": "before reap"}))
    assert t["type"] == "qmsnapshot" and t["exitstatus"] == "OK"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/snapshot", {"snapname": "proxreap-1"}))
    assert t["exitstatus"] == "snapshot name 'proxreap-1' already used"
    for vmid, msg in ((107, "you can't take a snapshot if it's a template"),
                      (106, "VM is locked (backup)"),
                      (108, "snapshot feature is not available")):
        t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/%d/snapshot" % vmid, {"snapname": "x1"}))
        assert t["exitstatus"] == msg
    # lxc on a dir storage (subvol) cannot snapshot either
    sim.create_guest({"vmid": 120, "type": "lxc", "node": "pve1", "disk_storage": "local",
                      "status": "stopped"})
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/120/snapshot", {"snapname": "x1"}))
    assert t["type"] == "vzsnapshot" and t["exitstatus"] == "snapshot feature is not available"
    pre = ok(sim.api("GET", "/nodes/pve1/qemu/110/snapshot"))
    assert [(s["name"], s.get("parent")) for s in pre] == [("base", None), ("daily", "base"),
                                                           ("current", "daily")]
    assert pre[1]["description"] == "cron" and pre[2]["running"] == 0
    lst = ok(sim.api("GET", "/nodes/pve1/qemu/100/snapshot"))
    assert [s["name"] for s in lst] == ["proxreap-1", "current"]
    assert lst[0]["description"] == "before reap" and lst[0]["vmstate"] == 0 and lst[0]["snaptime"] > 0
    assert lst[1]["description"] == "You are here!" and lst[1]["running"] == 1
    assert lst[1]["parent"] == "proxreap-1" and lst[1]["digest"] == cfg(sim, 100)["digest"]
    snapconf = ok(sim.api("GET", "/nodes/pve1/qemu/100/config", {"snapshot": "proxreap-1"}))
    assert snapconf["name"] == "web1" and snapconf["description"] == "before reap"
    assert cfg(sim, 100)["parent"] == "proxreap-1"
    # lock=snapshot while a (longer) snapshot task runs
    sim.fault(kind="task_hang", path="/snapshot$", count=1)
    upid = upid_of(sim.api("POST", "/nodes/pve1/lxc/101/snapshot", {"snapname": "a1"}))
    assert cfg(sim, 101, "lxc")["lock"] == "snapshot"
    assert ok(sim.api("GET", "/nodes/pve1/lxc/101/status/current"))["lock"] == "snapshot"
    assert vm_entry(sim, 101)["lock"] == "snapshot"          # lock is live, not sampled
    sim.api("DELETE", "/nodes/pve1/tasks/%s" % urllib.parse.quote(upid, safe=""))
    # rollback (stops the running VM, restores the config), then delete
    sim.api("PUT", "/nodes/pve1/qemu/100/config", {"tags": "changed"})
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/snapshot/proxreap-1/rollback"))
    assert t["type"] == "qmrollback" and t["exitstatus"] == "OK"
    assert cfg(sim, 100)["tags"] == "prod" and sim.guest(100)["status"] == "stopped"
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/snapshot/nope/rollback"))
    assert t["exitstatus"] == "snapshot 'nope' does not exist"
    t = task_of(sim, sim.api("DELETE", "/nodes/pve1/qemu/100/snapshot/proxreap-1"))
    assert t["type"] == "qmdelsnapshot" and t["exitstatus"] == "OK"
    assert "parent" not in cfg(sim, 100)
    t = task_of(sim, sim.api("DELETE", "/nodes/pve1/qemu/100/snapshot/proxreap-1"))
    assert t["exitstatus"] == "snapshot 'proxreap-1' does not exist"
    assert [h["event"] for h in sim.history(vmid=100) if "snap" in h["event"] or h["event"] == "rollback"] \
        == ["snapshot", "rollback", "delsnapshot"]


# ----------------------------------------------------------------- vzdump

def test_vzdump_archive_naming_content_and_extractconfig():
    sc = scenario(utc_offset=3600, start_epoch=1767225600,    # 2026-01-01T00:00:00Z
                  task_durations=dict(FAST, vzdump=20))
    with Sim(sc) as sim:
        def task_of(sim, r):
            return run_task(sim, upid_of(r), step=5)

        r = vzdump(sim, 100, storage="local", mode="stop", compress="zstd", protected=1,
                   notes_template="proxreap R-1\\n{{guestname}} ({{vmid}}) {{node}}/{{cluster}}")
        upid = upid_of(r)
        assert UPID_RE.match(upid).group(6) == "vzdump" and UPID_RE.match(upid).group(7) == "100"
        assert cfg(sim, 100)["lock"] == "backup"                     # lock during the task
        assert ok(sim.api("GET", "/nodes/pve1/qemu/100/status/current"))["lock"] == "backup"
        t = run_task(sim, upid, step=5)
        assert t["exitstatus"] == "OK", t["log"]
        assert "lock" not in cfg(sim, 100)
        assert "INFO: Backup job finished successfully" in t["log"]
        assert any(ln.startswith("INFO: creating vzdump archive '/var/lib/vz/dump/vzdump-qemu-100-")
                   for ln in t["log"])
        items = backups(sim, "local", 100)
        assert len(items) == 1
        b = items[0]
        # local time of the start (utc_offset 1 h): 01:00:xx on 2026-01-01
        assert re.fullmatch(r"local:backup/vzdump-qemu-100-2026_01_01-01_00_0\d\.vma\.zst", b["volid"]), b
        assert b["format"] == "vma.zst" and b["subtype"] == "qemu" and b["content"] == "backup"
        assert b["protected"] == 1 and b["notes"] == "proxreap R-1" and b["size"] > 0
        assert b["vmid"] == 100 and 1767225600 <= b["ctime"] <= 1767225600 + 60
        info = ok(sim.api("GET", "/nodes/pve1/storage/local/content/" + b["volid"]))
        assert info["notes"] == "proxreap R-1\nweb1 (100) pve1/lab" and info["protected"] == 1
        assert info["path"] == "/var/lib/vz/dump/" + b["volid"].split("/", 1)[1]
        assert info["size"] == b["size"] and info["format"] == "vma.zst"
        conf = ok(sim.api("GET", "/nodes/pve1/vzdump/extractconfig", {"volume": b["volid"]}))
        assert "name: web1\n" in conf and "tags: prod\n" in conf and "lock:" not in conf
        assert conf.endswith("#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:\n")
        # lxc archives, other compressors, PBS naming
        t = task_of(sim, vzdump(sim, 101, storage="local", compress="gzip"))
        assert t["exitstatus"] == "OK"
        assert backups(sim, "local", 101)[0]["volid"].endswith(".tar.gz")
        t = task_of(sim, vzdump(sim, 101, storage="local"))
        vols = [x["volid"] for x in backups(sim, "local", 101)]
        assert any(v.endswith(".tar") for v in vols)
        t = task_of(sim, vzdump(sim, 100, storage="pbs", mode="snapshot"))
        assert t["exitstatus"] == "OK"
        pb = backups(sim, "pbs", 100)[0]
        assert re.fullmatch(r"pbs:backup/vm/100/2026-01-01T00:0\d:\d\dZ", pb["volid"]), pb
        assert pb["format"] == "pbs-vm" and pb["subtype"] == "qemu"
        assert any(ln.startswith("INFO: creating Proxmox Backup Server archive 'vm/100/")
                   for ln in t["log"])
        # shared storage: visible from pve2 as well
        assert backups(sim, "pbs", 100, node="pve2")[0]["volid"] == pb["volid"]
        # guests elsewhere: literal "OK", no task
        assert ok(vzdump(sim, 200, storage="local")) == "OK"
        # storage without 'backup' content: the worker dies in VZDump->new
        t = task_of(sim, vzdump(sim, 100, storage="local-lvm"))
        assert t["exitstatus"] == ("could not get storage information for 'local-lvm': can't use "
                                   "storage 'local-lvm' for backups - wrong content type")
        err400(sim.api("POST", "/nodes/pve1/vzdump", {"storage": "local"}),
               {"vmid": "property is missing"})
        err400(sim.api("POST", "/nodes/pve1/vzdump", {"vmid": "100", "storage": "local", "ionice": "3"}),
               {"ionice": "Only root may set this option."})
        hist = sim.history(event="backup")
        assert [h["volid"] for h in hist][:1] == [b["volid"]] and hist[0]["protected"] == 1


def test_vzdump_prune_protected_and_limits():
    sc = scenario()
    sc["storages"] = [dict(s) for s in STORAGES]
    sc["storages"][3]["backups"] = [
        {"vmid": 100, "time": -3 * 86400, "protected": 1, "notes": "old protected"},
        {"vmid": 100, "time": -2 * 86400},
        {"vmid": 100, "time": -86400},
        {"vmid": 101, "type": "lxc", "time": -86400},
    ]
    sc["storages"][3]["max-protected-backups"] = 2
    with Sim(sc) as sim:
        before = backups(sim, "nfs-bk", 100)
        assert len(before) == 3 and sum(b.get("protected", 0) for b in before) == 1
        # remove=1 (default) and keep-last=1: older UNPROTECTED backups go
        t = task_of(sim, vzdump(sim, 100, storage="nfs-bk", protected=1))
        assert t["exitstatus"] == "OK", t["log"]
        assert "INFO: prune older backups with retention: keep-last=1" in t["log"]
        after = backups(sim, "nfs-bk", 100)
        assert len(after) == 3                     # 2 protected + the newest unprotected
        assert [b.get("notes") for b in after if b.get("protected")].count("old protected") == 1
        pruned = [h["volid"] for h in sim.history(event="prune")]
        assert len(pruned) == 1 and pruned[0] == before[1]["volid"]
        assert len(backups(sim, "nfs-bk", 101)) == 1        # other guests untouched
        # the protected cap (max-protected-backups 2)
        t = task_of(sim, vzdump(sim, 100, storage="nfs-bk", protected=1))
        assert t["exitstatus"] == "job errors"
        assert ("ERROR: Backup of VM 100 failed - The number of protected backups per guest is "
                "limited to 2 on storage 'nfs-bk'") in t["log"]
        # remove=0 with a retention limit refuses to run
        t = task_of(sim, vzdump(sim, 100, storage="nfs-bk", remove=0))
        assert ("ERROR: Backup of VM 100 failed - There is a max backup limit of 1 enforced by the "
                "target storage or the vzdump parameters. Either increase the limit or delete old "
                "backups.") in t["log"]
        # protected backups cannot be deleted; unprotect first
        prot = [b for b in after if b.get("protected")][0]["volid"]
        t = task_of(sim, sim.api("DELETE", "/nodes/pve1/storage/nfs-bk/content/" + prot))
        assert t["type"] == "imgdel" and t["id"] == "100@nfs-bk"
        assert t["exitstatus"] == "cannot remove protected volume '%s' on 'nfs-bk'" % prot.split(":", 1)[1]
        assert ok(sim.api("PUT", "/nodes/pve1/storage/nfs-bk/content/" + prot, {"protected": 0})) is None
        assert ok(sim.api("DELETE", "/nodes/pve1/storage/nfs-bk/content/" + prot, {"delay": 5})) is None
        assert prot not in [b["volid"] for b in backups(sim, "nfs-bk", 100)]


def test_vzdump_node_lock_and_storage_full():
    with Sim(scenario(task_durations=dict(FAST, vzdump=20))) as sim:
        def task_of(sim, r):
            return run_task(sim, upid_of(r), step=5)
        u1 = upid_of(vzdump(sim, 100, storage="local"))
        u2 = upid_of(vzdump(sim, 101, storage="local"))
        u3 = upid_of(vzdump(sim, 103, storage="local", lockwait=0))
        t3 = sim.wait_task(u3)
        assert t3["exitstatus"] == "unexpected status"
        assert t3["log"] == ["ERROR: can't acquire lock '/var/run/vzdump.lock' (wait = 0)"]
        t2 = run_task(sim, u2, step=5)
        t1 = sim.task(u1)
        assert t1["exitstatus"] == t2["exitstatus"] == "OK"
        assert t2["log"][:2] == ["INFO: trying to get global lock - waiting...", "INFO: got global lock"]
        assert t2["end"] >= t1["end"] + 20 - 0.002           # after the first one (times are rounded to ms)
        # a storage without space: ENOSPC, 'job errors', status shows it
        sim.set_storage("local", avail=1000)
        st = ok(sim.api("GET", "/nodes/pve1/storage/local/status"))
        assert st["avail"] == 1000 and st["total"] == 100 * GIB and st["active"] == 1
        t = task_of(sim, vzdump(sim, 100, storage="local"))
        assert t["exitstatus"] == "job errors"
        assert "ERROR: Backup of VM 100 failed - job failed with err -28 - No space left on device" in t["log"]
        t = task_of(sim, vzdump(sim, 101, storage="local"))
        assert any("No space left on device" in ln for ln in t["log"])
        assert "lock" not in cfg(sim, 100)
        sim.set_storage("local", avail=50 * GIB)
        # the storage_full fault: avail 0 while active, count = backups hit
        sim.fault(kind="storage_full", storage="nfs-bk", count=1)
        lst = ok(sim.api("GET", "/nodes/pve1/storage", {"content": "backup"}))
        assert [s["storage"] for s in lst] == ["local", "nfs-bk", "pbs"]
        nfs = [s for s in lst if s["storage"] == "nfs-bk"][0]
        assert nfs["avail"] == 0 and nfs["shared"] == 1 and nfs["type"] == "nfs"
        assert task_of(sim, vzdump(sim, 100, storage="nfs-bk"))["exitstatus"] == "job errors"
        assert task_of(sim, vzdump(sim, 100, storage="nfs-bk"))["exitstatus"] == "OK"


# ----------------------------------------------------------------- storage

def test_storage_calls(sim):
    lst = ok(sim.api("GET", "/nodes/pve1/storage"))
    assert [s["storage"] for s in lst] == ["local", "local-lvm", "nfs-bk", "pbs", "thick"]
    loc = lst[0]
    assert loc == {"content": "backup,iso,vztmpl", "type": "dir", "shared": 0, "enabled": 1,
                   "active": 1, "total": 100 * GIB, "used": 8 * GIB, "avail": 92 * GIB,
                   "used_fraction": 0.08, "storage": "local"}
    assert [s["storage"] for s in ok(sim.api("GET", "/nodes/pve1/storage",
                                             {"content": "rootdir"}))] == ["local-lvm", "thick"]
    err400(sim.api("GET", "/nodes/pve1/storage", {"storage": "nosuch"}), {"storage": "No such storage."})
    err400(sim.api("GET", "/nodes/pve1/storage/nosuch/status"), {"storage": "No such storage."})
    err500(sim.api("GET", "/nodes/pve1/storage/nosuch/content"), "storage 'nosuch' does not exist")
    assert backups(sim, "local") == []
    t = task_of(sim, vzdump(sim, 101, storage="local"))
    vol = backups(sim, "local", 101)[0]["volid"]
    assert ok(sim.api("GET", "/nodes/pve1/storage/local/status"))["used"] > 8 * GIB
    name = vol.split(":", 1)[1]
    # volume given without the storage prefix; storage mismatch
    info = ok(sim.api("GET", "/nodes/pve1/storage/local/content/" + name))
    assert info["protected"] == 0 and "notes" not in info
    err400(sim.api("GET", "/nodes/pve1/storage/pbs/content/" + vol),
           {"volume": "storage ID mismatch (local != pbs)\n"})
    assert ok(sim.api("PUT", "/nodes/pve1/storage/local/content/" + vol,
                      {"notes": "first\nsecond", "protected": 1})) is None
    item = backups(sim, "local", 101)[0]
    assert item["notes"] == "first" and item["protected"] == 1
    assert [h["event"] for h in sim.history()][-1] == "volume-update"
    r = sim.api("DELETE", "/nodes/pve1/storage/local/content/" + vol, {"delay": 5})
    err500(r, "cannot remove protected volume '%s' on 'local'" % name)
    sim.api("PUT", "/nodes/pve1/storage/local/content/" + vol, {"protected": 0})
    t = task_of(sim, sim.api("DELETE", "/nodes/pve1/storage/local/content/" + vol))
    assert t["exitstatus"] == "OK" and "Removed volume '%s'" % vol in t["log"]
    assert backups(sim, "local", 101) == []
    err500(sim.api("GET", "/nodes/pve1/storage/local/content/" + vol), "volume '%s' does not exist" % vol)
    err500(sim.api("GET", "/nodes/pve1/vzdump/extractconfig", {"volume": vol}), "can't find file '%s'" % vol)


# ----------------------------------------------------------------- destroy

def test_destroy_checks_and_history(sim):
    err500(sim.api("DELETE", "/nodes/pve1/qemu/105"), "can't remove VM 105 - protection mode enabled")
    err500(sim.api("DELETE", "/nodes/pve1/qemu/100"), "VM 100 is running - destroy failed")
    err500(sim.api("DELETE", "/nodes/pve1/qemu/999"),
           "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist")
    err500(sim.api("DELETE", "/nodes/pve1/qemu/200"),
           "Configuration file 'nodes/pve1/qemu-server/200.conf' does not exist")
    err400(sim.api("DELETE", "/nodes/pve1/qemu/106", {"skiplock": 1}),
           {"skiplock": "Only root may use this option."})
    t = task_of(sim, sim.api("DELETE", "/nodes/pve1/qemu/106"))
    assert t["type"] == "qmdestroy" and t["exitstatus"] == "VM is locked (backup)"
    assert sim.guest(106) is not None
    err500(sim.api("DELETE", "/nodes/pve1/lxc/103"), "unable to destroy CT 103 - container is running")
    sim.event(101, "lock", value="backup")
    err500(sim.api("DELETE", "/nodes/pve1/lxc/101"), "CT is locked (backup)")
    sim.event(101, "unlock")
    # a destroy with an archive on disk: history lists it
    task_of(sim, vzdump(sim, 101, storage="local", protected=1))
    t = task_of(sim, sim.api("DELETE", "/nodes/pve1/lxc/101",
                             {"purge": 1, "destroy-unreferenced-disks": 1}))
    assert t["type"] == "vzdestroy" and t["exitstatus"] == "OK"
    assert "purging CT 101 from related configurations.." in t["log"]
    assert sim.guest(101) is None
    err500(sim.api("GET", "/nodes/pve1/lxc/101/config"),
           "Configuration file 'nodes/pve1/lxc/101.conf' does not exist")
    d = sim.history(event="destroy")[-1]
    assert d["vmid"] == 101 and d["type"] == "lxc" and len(d["archives"]) == 1
    assert d["archives"][0]["protected"] == 1 and d["archives"][0]["size"] > 0
    # force destroys a running CT (stopping it first)
    t = task_of(sim, sim.api("DELETE", "/nodes/pve1/lxc/103", {"force": 1}))
    assert t["exitstatus"] == "OK" and "forced to stop CT 103 before destroying!" in t["log"]
    assert sim.history(event="destroy")[-1]["archives"] == []


# ----------------------------------------------------------------- restore / nextid

def test_restore_and_nextid():
    with Sim(scenario(task_durations=dict(FAST, qmrestore=20))) as sim:
        _restore_and_nextid(sim)


def _restore_and_nextid(sim):
    assert ok(sim.api("GET", "/cluster/nextid")) == 111
    assert ok(sim.api("GET", "/cluster/nextid", {"vmid": "150"})) == "150"
    err400(sim.api("GET", "/cluster/nextid", {"vmid": "100"}), {"vmid": "VM 100 already exists"})
    t = task_of(sim, vzdump(sim, 100, storage="local", mode="stop"))
    assert sim.guest(100)["status"] == "running"           # stop mode restarts it afterwards
    assert "INFO: restarting vm" in t["log"]
    vol = backups(sim, "local", 100)[0]["volid"]
    orig = cfg(sim, 100)
    err500(sim.api("POST", "/nodes/pve1/qemu", {"vmid": 100, "archive": vol}),
           "unable to restore VM 100 - VM 100 already exists on node 'pve1'")
    err500(sim.api("POST", "/nodes/pve1/qemu", {"vmid": 101, "archive": vol}),
           "unable to restore VM 101 - CT 101 already exists on node 'pve1'")
    err500(sim.api("POST", "/nodes/pve1/qemu", {"vmid": 150, "archive": "local:backup/nope.vma.zst"}),
           "can't find file 'local:backup/nope.vma.zst'")
    err500(sim.api("POST", "/nodes/pve1/qemu", {"vmid": 150, "archive": "nosuch:backup/x.vma"}),
           "storage 'nosuch' does not exist")
    # restore as a new VMID: lock=create while it runs, then the archived config
    upid = upid_of(sim.api("POST", "/nodes/pve1/qemu", {"vmid": 150, "archive": vol,
                                                        "storage": "local-lvm", "unique": 1}))
    assert UPID_RE.match(upid).group(6) == "qmrestore"
    assert cfg(sim, 150) == {"lock": "create", "digest": cfg(sim, 150)["digest"]}
    err400(sim.api("GET", "/cluster/nextid", {"vmid": "150"}), {"vmid": "VM 150 already exists"})
    t = run_task(sim, upid, step=5)
    assert t["exitstatus"] == "OK"
    new = cfg(sim, 150)
    assert new["name"] == "web1" and new["tags"] == "prod" and new["memory"] == orig["memory"]
    assert new["scsi0"].startswith("local-lvm:vm-150-disk-0,") and new["net0"] != orig["net0"]
    assert sim.guest(150)["status"] == "stopped"
    # force: overwrite 150 again, and start it
    t = run_task(sim, upid_of(sim.api("POST", "/nodes/pve1/qemu", {"vmid": 150, "archive": vol,
                                                                 "force": 1, "start": 1})), step=5)
    assert t["exitstatus"] == "OK" and "Execute autostart" in t["log"]
    wait_for(lambda: sim.guest(150)["status"] == "running")
    # the reap round trip: destroy then restore under the original VMID -> the same config
    # but for the vmgenid (restore_update_config_line always draws a new one) and the digest
    task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/status/stop"))
    task_of(sim, sim.api("DELETE", "/nodes/pve1/qemu/100", {"purge": 1}))
    t = run_task(sim, upid_of(sim.api("POST", "/nodes/pve1/qemu", {"vmid": 100, "archive": vol})), step=5)
    assert t["exitstatus"] == "OK"
    back = cfg(sim, 100)
    assert back["vmgenid"] != orig["vmgenid"] and back["digest"] != orig["digest"]
    assert {k: v for k, v in back.items() if k not in ("vmgenid", "digest")} == \
        {k: v for k, v in orig.items() if k not in ("vmgenid", "digest")}
    # lxc: storage defaults to 'local' (no rootdir content) -> parameter error
    task_of(sim, vzdump(sim, 101, storage="local"))
    cvol = backups(sim, "local", 101)[0]["volid"]
    err500(sim.api("POST", "/nodes/pve1/lxc", {"vmid": 101, "ostemplate": cvol, "restore": 1}),
           "CT 101 already exists on node 'pve1'")
    err400(sim.api("POST", "/nodes/pve1/lxc", {"vmid": 160, "ostemplate": cvol, "restore": 1}),
           {"storage": "storage 'local' does not support container directories"})
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc", {"vmid": 160, "ostemplate": cvol, "restore": 1,
                                                       "storage": "local-lvm", "start": 1}))
    assert t["type"] == "vzrestore" and t["exitstatus"] == "OK"
    assert cfg(sim, 160, "lxc")["hostname"] == "ct1"
    wait_for(lambda: sim.guest(160)["status"] == "running")
    t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc", {"vmid": 161, "ostemplate": "local:backup/x.tar",
                                                       "restore": 1, "storage": "local-lvm"}))
    assert t["exitstatus"] == "unable to restore CT 161 - can't find file 'local:backup/x.tar'"
    assert sim.guest(161) is None                      # lxc cleans up the new config
    assert [h["event"] for h in sim.history() if h["event"].startswith("restore")][-1] == "restore-failed"


# ----------------------------------------------------------------- config

def test_config_updates(sim):
    d0 = cfg(sim, 100)["digest"]
    assert ok(sim.api("PUT", "/nodes/pve1/qemu/100/config",
                      {"tags": "zeta;Alpha;beta,alpha", "digest": d0})) is None
    c = cfg(sim, 100)
    assert c["tags"] == "alpha;beta;zeta" and c["digest"] != d0      # get_unique_tags
    err500(sim.api("PUT", "/nodes/pve1/qemu/100/config", {"tags": "x", "digest": d0}),
           "checksum mismatch (file change by other user?)")
    err500(sim.api("PUT", "/nodes/pve1/lxc/101/config", {"tags": "x", "digest": "0" * 40}),
           "detected modified configuration - file changed by other user? Try again.")
    err400(sim.api("PUT", "/nodes/pve1/qemu/100/config", {"tags": "bad tag!"}),
           {"tags": "invalid format - invalid characters in tag\n"})
    err500(sim.api("PUT", "/nodes/pve1/qemu/106/config", {"tags": "x"}), "VM is locked (backup)")
    err500(sim.api("PUT", "/nodes/pve1/qemu/100/config", {}), "no options specified")
    err500(sim.api("PUT", "/nodes/pve1/qemu/100/config", {"lock": "backup"}),
           "only root can set 'lock' config")
    err400(sim.api("PUT", "/nodes/pve1/qemu/100/config", {"tags": "a", "delete": "tags"}),
           {"delete": "you can't use '-tags' and -delete tags' at the same time"})
    sim.api("PUT", "/nodes/pve1/qemu/100/config", {"protection": 1, "description": "keep\nme"})
    c = cfg(sim, 100)
    assert c["protection"] == 1 and c["description"] == "keep\nme"
    sim.api("PUT", "/nodes/pve1/qemu/100/config", {"delete": "protection,tags"})
    c = cfg(sim, 100)
    assert "protection" not in c and "tags" not in c
    sim.api("PUT", "/nodes/pve1/lxc/101/config", {"tags": "x;proxreap-idle"})
    assert cfg(sim, 101, "lxc")["tags"] == "proxreap-idle;x"
    # POST: a qmconfig task, or null with background_delay
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/config", {"tags": "via-post"}))
    assert t["type"] == "qmconfig" and t["exitstatus"] == "OK"
    assert t["log"][0] == "update VM 100: -tags via-post"
    assert cfg(sim, 100)["tags"] == "via-post"
    assert ok(sim.api("POST", "/nodes/pve1/qemu/100/config", {"tags": "bg", "background_delay": 5})) is None
    assert cfg(sim, 100)["tags"] == "bg"
    changes = [h["changes"] for h in sim.history(event="config", vmid=100)]
    assert changes[0] == ["tags"] and ["description", "protection"] in changes
    with Sim(scenario(tag_style={"ordering": "config", "case-sensitive": 1})) as s2:
        s2.api("PUT", "/nodes/pve1/qemu/100/config", {"tags": "web;Prod;proxreap-idle;web"})
        assert cfg(s2, 100)["tags"] == "web;Prod;proxreap-idle"


# ----------------------------------------------------------------- rrddata

def test_rrddata():
    sc = scenario()
    sc["guests"] = guests() + [
        {"vmid": 130, "type": "qemu", "node": "pve1", "name": "dayjob", "uptime": 10 * 86400,
         "workload": {"kind": "constant", "cpu": 0.01, "mem_mb": 100},
         "history": [{"until": -6 * 3600,
                      "workload": {"kind": "constant", "cpu": 0.8, "mem_mb": 3000, "net_kbps": 800}}]},
        {"vmid": 131, "type": "lxc", "node": "pve2", "name": "ct-stopped", "status": "stopped"},
    ]
    with Sim(sc) as sim:
        rows = ok(sim.api("GET", "/nodes/pve1/qemu/130/rrddata", {"timeframe": "hour"}))
        assert len(rows) == 60
        assert all(rows[i + 1]["time"] - rows[i]["time"] == 60 for i in range(59))
        assert set(rows[-2]) == {"time", "maxcpu", "cpu", "maxmem", "mem", "maxdisk", "disk", "netin",
                                 "netout", "diskread", "diskwrite", "memhost", "pressurecpusome",
                                 "pressurecpufull", "pressureiosome", "pressureiofull",
                                 "pressurememorysome", "pressurememoryfull"}
        assert abs(rows[-2]["cpu"] - 0.01) < 1e-9 and rows[-2]["mem"] == 100 * MIB
        day = ok(sim.api("GET", "/nodes/pve1/qemu/130/rrddata", {"timeframe": "day"}))
        assert len(day) == 1440
        busy = [r for r in day if r.get("cpu", 0) > 0.5]
        assert busy and max(r["netin"] for r in busy) == pytest.approx(800 * 125)  # bytes/s
        assert day[-1].get("cpu", 0) < 0.05
        week_max = ok(sim.api("GET", "/nodes/pve1/qemu/130/rrddata",
                              {"timeframe": "week", "cf": "MAX"}))
        assert len(week_max) == 336 and max(r.get("cpu", 0) for r in week_max) == pytest.approx(0.8)
        stopped = ok(sim.api("GET", "/nodes/pve2/lxc/131/rrddata", {"timeframe": "hour"}))
        assert set(stopped[-1]) == {"time", "maxcpu", "maxmem", "disk", "maxdisk"}
        # no proxyto: served for any guest from any node
        assert len(ok(sim.api("GET", "/nodes/pve2/qemu/130/rrddata", {"timeframe": "month"}))) == 1440
        assert len(ok(sim.api("GET", "/nodes/pve1/qemu/130/rrddata", {"timeframe": "year"}))) == 1440
        err500(sim.api("GET", "/nodes/pve1/qemu/999/rrddata", {"timeframe": "hour"}),
               "RRD error: opening '/var/lib/rrdcached/db/pve-vm-9.0/999': No such file or directory")
    with Sim(scenario(rrd_format="pve2-vm")) as sim:
        rows = ok(sim.api("GET", "/nodes/pve1/qemu/100/rrddata", {"timeframe": "day"}))
        assert len(rows) == 70 and rows[1]["time"] - rows[0]["time"] == 1800
        assert "memhost" not in rows[-2] and "cpu" in rows[-2]


# ----------------------------------------------------------------- faults

def test_task_fail_and_lost_reply_faults(sim):
    sim.fault(kind="task_fail", type="vzdump", error="command 'vma create' failed: exit code 1", count=1)
    t = task_of(sim, vzdump(sim, 101, storage="local"))
    assert t["exitstatus"] == "job errors"
    assert "ERROR: Backup of VM 101 failed - command 'vma create' failed: exit code 1" in t["log"]
    assert backups(sim, "local", 101) == [] and "lock" not in cfg(sim, 101, "lxc")
    assert task_of(sim, vzdump(sim, 101, storage="local"))["exitstatus"] == "OK"     # count 1
    sim.fault(kind="task_fail", path="/status/shutdown$", error="got timeout", count=1)
    t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/100/status/shutdown"))
    assert t["exitstatus"] == "got timeout" and sim.guest(100)["status"] == "running"
    faults = {f["kind"]: f for f in sim.faults()}
    assert faults["task_fail"]["hits"] == 1 and faults["task_fail"]["remaining"] == 0
    # lost_reply: the destroy happens, the answer never arrives
    sim.fault(kind="lost_reply", method="DELETE", path="^/nodes/pve1/qemu/105$", count=1)
    sim.api("PUT", "/nodes/pve1/qemu/105/config", {"delete": "protection"})
    with pytest.raises(ConnectionError):          # http.client.RemoteDisconnected
        sim.api("DELETE", "/nodes/pve1/qemu/105", {"purge": 1})
    entry = [e for e in sim.requests() if e["method"] == "DELETE"][-1]
    assert entry["fault"] == "lost_reply" and entry["status"] == 0
    assert UPID_RE.match(entry["data"]) and sim.wait_task(entry["data"])["exitstatus"] == "OK"
    assert sim.guest(105) is None
    # a second DELETE (the client retrying) gets the real "does not exist"
    err500(sim.api("DELETE", "/nodes/pve1/qemu/105", {"purge": 1}),
           "Configuration file 'nodes/pve1/qemu-server/105.conf' does not exist")


def test_ticket_auth_write_call_and_request_log():
    with Sim(scenario()) as sim:
        r = sim.api("POST", "/access/ticket", {"username": "root@pam", "password": PASSWORD}, token=None)
        d = r.json["data"]
        r = sim.api("POST", "/nodes/pve1/qemu/106/status/start",
                    {"skiplock": 1}, ticket=d["ticket"], csrf=d["CSRFPreventionToken"])
        upid = upid_of(r)
        assert UPID_RE.match(upid).group(8) == "root@pam"
        st = ok(tstatus(sim, upid))
        assert st["user"] == "root@pam" and "tokenid" not in st
        assert sim.wait_task(upid)["exitstatus"] == "OK"         # root@pam may skiplock
        log = sim.requests()
        assert log[0]["path"] == "/access/ticket" and "data" not in log[0]   # no ticket in the log
        assert log[1]["data"] == upid
        assert d["ticket"] not in json.dumps(log)


# ----------------------------------------------------------------- guest volumes, vzdump, restore

MULTI_QEMU = {
    "vmid": 211, "type": "qemu", "node": "pve1", "name": "multi", "status": "stopped",
    "maxdisk": 32 * GIB, "disk": 8 * GIB, "onboot": 1,
    "config": {"scsi1": "local-lvm:vm-211-disk-1,backup=0,size=500G",
               "unused0": "local-lvm:vm-211-disk-2",
               "efidisk0": "local-lvm:vm-211-disk-3,size=4M",
               "ide2": "local:iso/debian-12.iso,media=cdrom",
               "virtio1": "volume=local-lvm:vm-211-disk-4,iothread=on,size=20G"},
    "volume_used": {"virtio1": 2 * GIB},
}
OVMF_QEMU = {
    "vmid": 212, "type": "qemu", "node": "pve1", "name": "uefi", "status": "stopped",
    "maxdisk": 16 * GIB, "disk": 4 * GIB,
    "config": {"bios": "ovmf", "efidisk0": "local-lvm:vm-212-disk-1,efitype=4m,size=4M",
               "tpmstate0": "local-lvm:vm-212-disk-2,size=4M,version=v2.0"},
}
MULTI_LXC = {
    "vmid": 301, "type": "lxc", "node": "pve1", "name": "ctm", "status": "stopped",
    "maxdisk": 8 * GIB, "disk": 2 * GIB,
    "config": {"mp0": "local-lvm:vm-301-disk-1,mp=/data,size=100G",
               "mp1": "local-lvm:vm-301-disk-2,mp=/srv,backup=1,size=10G",
               "mp2": "/mnt/host,mp=/host",
               "unused0": "local-lvm:vm-301-disk-3"},
    "volume_used": {"mp1": GIB},
}
BIND_FREE_LXC = {
    "vmid": 302, "type": "lxc", "node": "pve1", "name": "ctv", "status": "stopped",
    "maxdisk": 8 * GIB, "disk": GIB,
    "config": {"mp0": "local-lvm:vm-302-disk-1,mp=/data,size=100G",
               "mp1": "local-lvm:vm-302-disk-2,mp=/srv,backup=1,size=10G",
               "unused0": "local-lvm:vm-302-disk-3"},
}


def volume_scenario(**over):
    return scenario(guests=guests() + [dict(MULTI_QEMU), dict(OVMF_QEMU), dict(MULTI_LXC),
                                       dict(BIND_FREE_LXC)], **over)


def extractconfig(sim, volid):
    return ok(sim.api("GET", "/nodes/pve1/vzdump/extractconfig", {"volume": volid}))


def root_ticket(sim):
    d = sim.api("POST", "/access/ticket", {"username": "root@pam", "password": PASSWORD},
                token=None).json["data"]
    return {"ticket": d["ticket"], "csrf": d["CSRFPreventionToken"]}


def info_lines(log):
    return [ln[len("INFO: "):] for ln in log if ln.startswith("INFO: ")]


def test_vzdump_qemu_backs_up_the_configured_disks():
    with Sim(volume_scenario()) as sim:
        t = task_of(sim, vzdump(sim, 211, storage="local"))
        assert t["exitstatus"] == "OK", t["log"]
        lines = info_lines(t["log"])
        # stop mode (stopped guest): prepare() after the ionice line; get_backup_volumes
        # order ide0-3, scsi0-30, virtio0-15, sata0-5, efidisk0; the cdrom is left out
        i = lines.index("ionice priority: 7")
        assert lines[i - 1] == "backup mode: stop"
        assert lines[i + 1:i + 6] == [
            "VM Name: multi",
            "include disk 'scsi0' 'local-lvm:vm-211-disk-0' 32G",
            "exclude disk 'scsi1' 'local-lvm:vm-211-disk-1' (backup=no)",
            "include disk 'virtio1' 'local-lvm:vm-211-disk-4' 20G",
            "exclude disk 'efidisk0' 'local-lvm:vm-211-disk-3' (efidisk but no OVMF BIOS)"]
        assert lines[i + 6] == "skip unused drive 'local-lvm:vm-211-disk-2' (not included into backup)"
        assert lines[i + 7].startswith("creating vzdump archive ")
        assert lines[i + 8] == "starting kvm to execute backup task"
        b = backups(sim, "local", 211)[0]
        conf = extractconfig(sim, b["volid"])
        text_lines = conf.splitlines()
        assert "unused0" not in conf and "lock:" not in conf
        assert "scsi1: local-lvm:vm-211-disk-1,backup=0,size=500G" in text_lines
        assert "efidisk0: local-lvm:vm-211-disk-3,size=4M" in text_lines
        assert "ide2: local:iso/debian-12.iso,media=cdrom" in text_lines
        assert text_lines[-2:] == ["#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:",
                                   "#qmdump#map:virtio1:drive-virtio1:local-lvm:raw:"]
        # the archive holds the included disks' data only: 8 GiB + 2 GiB (compress=0: ratio 1)
        assert b["size"] == 10 * GIB + len(conf.encode())
        h = sim.history(event="backup", vmid=211)[-1]
        assert h["volumes"] == [{"key": "scsi0", "volid": "local-lvm:vm-211-disk-0", "size": 32 * GIB},
                                {"key": "virtio1", "volid": "local-lvm:vm-211-disk-4", "size": 20 * GIB}]
        # bios: ovmf -> the efidisk is included; the TPM state too (device drive-tpmstate0-backup)
        t = task_of(sim, vzdump(sim, 212, storage="local"))
        lines = info_lines(t["log"])
        assert "include disk 'efidisk0' 'local-lvm:vm-212-disk-1' 4M" in lines
        assert "include disk 'tpmstate0' 'local-lvm:vm-212-disk-2' 4M" in lines
        conf = extractconfig(sim, backups(sim, "local", 212)[0]["volid"])
        assert conf.splitlines()[-3:] == ["#qmdump#map:efidisk0:drive-efidisk0:local-lvm:raw:",
                                          "#qmdump#map:scsi0:drive-scsi0:local-lvm:raw:",
                                          "#qmdump#map:tpmstate0:drive-tpmstate0-backup:local-lvm:raw:"]
        # snapshot mode of a running VM: prepare() runs before the 'backup mode' line
        t = task_of(sim, vzdump(sim, 100, storage="local", mode="snapshot"))
        lines = info_lines(t["log"])
        i = lines.index("backup mode: snapshot")
        assert lines[i - 2:i] == ["VM Name: web1", "include disk 'scsi0' 'local-lvm:vm-100-disk-0' 32G"]


def test_vzdump_lxc_mount_points():
    with Sim(volume_scenario()) as sim:
        t = task_of(sim, vzdump(sim, 301, storage="local"))
        assert t["exitstatus"] == "OK", t["log"]
        lines = info_lines(t["log"])
        i = lines.index("CT Name: ctm")
        assert lines[i + 1:i + 5] == [
            "including mount point rootfs ('/') in backup",
            "excluding volume mount point mp0 ('/data') from backup (disabled)",
            "including mount point mp1 ('/srv') in backup",
            "excluding bind mount point mp2 ('/host') from backup (not a volume)"]
        # rootfs 2 GiB + mp1 1 GiB of data
        assert "Total bytes written: %d (3.00 GiB, 3.00 GiB/s)" % (3 * GIB) in lines
        b = backups(sim, "local", 301)[0]
        conf = extractconfig(sim, b["volid"])
        assert b["size"] == 3 * GIB + len(conf.encode())
        # pct.conf keeps unused and every mount point line, drops lock/parent/pending/snapshots
        assert "unused0: local-lvm:vm-301-disk-3\n" in conf and "mp2: /mnt/host,mp=/host\n" in conf
        assert "lock:" not in conf and "[" not in conf
        assert [v["key"] for v in sim.history(event="backup", vmid=301)[-1]["volumes"]] == ["rootfs", "mp1"]


def test_restore_qemu_replays_the_archive():
    with Sim(volume_scenario()) as sim:
        task_of(sim, vzdump(sim, 211, storage="local"))
        vol = backups(sim, "local", 211)[0]["volid"]
        orig = cfg(sim, 211)
        t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu", {"vmid": 250, "archive": vol}))
        assert t["exitstatus"] == "OK", t["log"]
        assert "DEV: dev_id=1 size: %d devname: drive-scsi0" % (32 * GIB) in t["log"]
        assert "DEV: dev_id=2 size: %d devname: drive-virtio1" % (20 * GIB) in t["log"]
        assert [ln for ln in t["log"] if ln.startswith("new volume ID")] == [
            "new volume ID is 'local-lvm:vm-250-disk-0'", "new volume ID is 'local-lvm:vm-250-disk-1'"]
        new = cfg(sim, 250)
        # mapped drives on new volumes (print_drive: normalised booleans, sorted options)
        assert new["scsi0"] == "local-lvm:vm-250-disk-0,iothread=1,size=32G"
        assert new["virtio1"] == "local-lvm:vm-250-disk-1,iothread=1,size=20G"
        # backup=0: the line became a comment, i.e. part of the description
        assert "scsi1" not in new and new["description"] == \
            "scsi1: local-lvm:vm-211-disk-1,backup=0,size=500G"
        # not in the archive, not excluded: kept as it was (the old VM's volume)
        assert new["efidisk0"] == "local-lvm:vm-211-disk-3,size=4M"
        assert new["ide2"] == orig["ide2"]
        # unused and parent lines are dropped; a new vmgenid; without unique the MAC stays
        assert not [k for k in new if k.startswith("unused")] and "parent" not in new
        assert new["vmgenid"] != orig["vmgenid"] and new["net0"] == orig["net0"]
        assert new["smbios1"] == orig["smbios1"] and new["meta"] == orig["meta"]
        h = sim.history(event="restore", vmid=250)[-1]
        assert h["volumes"] == [{"key": "scsi0", "volid": "local-lvm:vm-250-disk-0", "size": 32 * GIB},
                                {"key": "virtio1", "volid": "local-lvm:vm-250-disk-1", "size": 20 * GIB}]
        # unique=1: new MAC and smbios uuid (other smbios1 properties kept)
        t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu",
                                 {"vmid": 251, "archive": vol, "unique": 1, "storage": "thick"}))
        assert t["exitstatus"] == "OK", t["log"]
        u = cfg(sim, 251)
        assert u["net0"] != orig["net0"] and re.fullmatch(
            r"virtio=BC:24:11:[0-9A-F]{2}:[0-9A-F]{2}:[0-9A-F]{2},bridge=vmbr0,firewall=1", u["net0"])
        assert re.fullmatch(r"uuid=[0-9a-f-]{36}", u["smbios1"]) and u["smbios1"] != orig["smbios1"]
        assert u["scsi0"] == "thick:vm-251-disk-0,iothread=1,size=32G"
        assert u["virtio1"] == "thick:vm-251-disk-1,iothread=1,size=20G"
        # force over the running original's VMID (stopped first): its disks that are not in the
        # archive and its unused volumes stay and come back as unusedN (rescan)
        task_of(sim, vzdump(sim, 212, storage="local"))
        vol2 = backups(sim, "local", 212)[0]["volid"]
        sim.event(212, "set", field="config", value={"scsi3": "local-lvm:vm-212-disk-7,size=1G",
                                                     "unused0": "local-lvm:vm-212-disk-9"})
        t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu", {"vmid": 212, "archive": vol2, "force": 1}))
        assert t["exitstatus"] == "OK", t["log"]
        c = cfg(sim, 212)
        # allocation in sorted device order: efidisk0, scsi0, tpmstate0
        assert (c["efidisk0"], c["scsi0"], c["tpmstate0"]) == (
            "local-lvm:vm-212-disk-0,efitype=4m,size=4M", "local-lvm:vm-212-disk-1,iothread=1,size=16G",
            "local-lvm:vm-212-disk-2,size=4M,version=v2.0")
        assert (c["unused0"], c["unused1"]) == ("local-lvm:vm-212-disk-7", "local-lvm:vm-212-disk-9")
        assert "scsi3" not in c


def test_restore_lxc_mount_points():
    with Sim(volume_scenario()) as sim:
        task_of(sim, vzdump(sim, 301, storage="local"))
        vol = backups(sim, "local", 301)[0]["volid"]
        # a bind mount point in the archive: only root may restore it
        t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc", {"vmid": 350, "ostemplate": vol, "restore": 1,
                                                           "storage": "local-lvm"}))
        assert t["exitstatus"] == ("unable to restore CT 350 - restoring 'mp2' to bind mount is only "
                                   "possible for root")
        assert sim.guest(350) is None
        tk = root_ticket(sim)
        t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc", {"vmid": 350, "ostemplate": vol, "restore": 1,
                                                           "storage": "local-lvm"}, **tk))
        assert t["exitstatus"] == "OK", t["log"]
        c = cfg(sim, 350, "lxc")
        # every volume mount point gets a new volume of its size on the target storage, backed
        # up or not (mp0's is empty); bind mounts come back as they were; unused do not
        assert c["rootfs"] == "local-lvm:vm-350-disk-0,size=8G"
        assert c["mp0"] == "local-lvm:vm-350-disk-1,mp=/data,size=100G"
        assert c["mp1"] == "local-lvm:vm-350-disk-2,mp=/srv,backup=1,size=10G"
        assert c["mp2"] == "/mnt/host,mp=/host"
        assert not [k for k in c if k.startswith("unused")]
        assert "Total bytes read: %d (3.00 GiB)" % (3 * GIB) in t["log"]
        # without bind mounts a token can restore; rootfs given: the archived mount points are
        # not recovered (the whole archive lands in the new rootfs)
        task_of(sim, vzdump(sim, 302, storage="local"))
        vol2 = backups(sim, "local", 302)[0]["volid"]
        t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc", {"vmid": 360, "ostemplate": vol2, "restore": 1,
                                                           "storage": "local-lvm"}))
        assert t["exitstatus"] == "OK", t["log"]
        assert sorted(k for k in cfg(sim, 360, "lxc") if k.startswith(("mp", "rootfs"))) == \
            ["mp0", "mp1", "rootfs"]
        t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc", {"vmid": 361, "ostemplate": vol2, "restore": 1,
                                                           "rootfs": "local-lvm:4"}))
        assert t["exitstatus"] == "OK", t["log"]
        c = cfg(sim, 361, "lxc")
        assert c["rootfs"] == "local-lvm:vm-361-disk-0,size=4G"
        assert not [k for k in c if k.startswith("mp")]
        # force over the CT itself: the new volumes are allocated before the old ones are freed
        t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc", {"vmid": 302, "ostemplate": vol2, "restore": 1,
                                                           "storage": "local-lvm", "force": 1}))
        assert t["exitstatus"] == "OK", t["log"]
        c = cfg(sim, 302, "lxc")
        assert (c["rootfs"], c["mp0"], c["mp1"]) == (
            "local-lvm:vm-302-disk-4,size=8G", "local-lvm:vm-302-disk-5,mp=/data,size=100G",
            "local-lvm:vm-302-disk-6,mp=/srv,backup=1,size=10G")


# ----------------------------------------------------------------- pending changes

def test_pending_changes():
    sc = volume_scenario()
    sc["guests"] = sc["guests"] + [
        {"vmid": 220, "type": "qemu", "node": "pve1", "name": "pend", "status": "stopped", "onboot": 1,
         "pending": {"memory": "4096", "scsi2": "local-lvm:vm-220-disk-5,size=10G", "delete": "onboot"}},
        {"vmid": 221, "type": "qemu", "node": "pve1", "name": "pend2", "onboot": 1,
         "pending": {"memory": "8192", "tags": "later", "delete": "onboot"}},
        {"vmid": 320, "type": "lxc", "node": "pve1", "name": "ctp", "status": "stopped",
         "pending": {"memory": "1024", "mp0": "local-lvm:vm-320-disk-1,mp=/x,size=1G"}}]
    with Sim(sc) as sim:
        pend = cfg(sim, 220)
        cur = ok(sim.api("GET", "/nodes/pve1/qemu/220/config", {"current": 1}))
        assert pend["memory"] == "4096" and pend["scsi2"] == "local-lvm:vm-220-disk-5,size=10G"
        assert "onboot" not in pend and pend["digest"] == cur["digest"]
        assert cur["memory"] == "2048" and "scsi2" not in cur and cur["onboot"] == 1
        err400(sim.api("GET", "/nodes/pve1/qemu/220/config", {"current": 1, "snapshot": "snap1"}),
               {"snapshot": "cannot use 'snapshot' parameter with 'current'",
                "current": "cannot use 'snapshot' parameter with 'current'"})
        lc = cfg(sim, 320, "lxc")
        assert lc["memory"] == 1024 and lc["mp0"] == "local-lvm:vm-320-disk-1,mp=/x,size=1G"
        assert ok(sim.api("GET", "/nodes/pve1/lxc/320/config", {"current": 1}))["memory"] == 512
        # the pending section is part of the file, so of the digest
        d0 = pend["digest"]
        sim.event(220, "set", field="pending", value={"memory": "4096", "scsi2": "local-lvm:vm-220-disk-5,size=10G"})
        d1 = cfg(sim, 220)["digest"]
        assert d1 != d0 and cfg(sim, 220)["onboot"] == 1
        sim.event(220, "set", field="pending", value={"memory": "4096", "delete": "onboot",
                                                      "scsi2": "local-lvm:vm-220-disk-5,size=10G"})
        assert cfg(sim, 220)["digest"] == d0
        # vzdump leaves pending out and says so
        t = task_of(sim, vzdump(sim, 220, storage="local"))
        assert "INFO: pending configuration changes found (not included into backup)" in t["log"]
        conf = extractconfig(sim, backups(sim, "local", 220)[0]["volid"])
        assert "memory: 2048\n" in conf and "scsi2" not in conf and "[PENDING]" not in conf
        assert "onboot: 1\n" in conf
        t = task_of(sim, vzdump(sim, 320, storage="local"))
        conf = extractconfig(sim, backups(sim, "local", 320)[0]["volid"])
        assert "memory: 512\n" in conf and "mp0" not in conf and "pending" not in conf
        # a config update of a stopped VM applies every pending change (vmconfig_apply_pending)
        assert ok(sim.api("PUT", "/nodes/pve1/qemu/220/config", {"tags": "x"})) is None
        c = ok(sim.api("GET", "/nodes/pve1/qemu/220/config", {"current": 1}))
        assert c["memory"] == "4096" and c["scsi2"] == "local-lvm:vm-220-disk-5,size=10G"
        assert "onboot" not in c and sim.guest(220)["pending"] == {}
        assert sim.history(event="config", vmid=220)[-1]["pending_applied"] == ["onboot", "memory", "scsi2"]
        # a running VM: only the fast-plug options (tags, name, ...) leave the pending section
        assert ok(sim.api("PUT", "/nodes/pve1/qemu/221/config", {"description": "d"})) is None
        c = ok(sim.api("GET", "/nodes/pve1/qemu/221/config", {"current": 1}))
        assert c["tags"] == "later" and c["memory"] == "2048" and c["onboot"] == 1
        assert sim.guest(221)["pending"] == {"memory": "8192", "delete": "onboot"}


def test_pending_raw_sections_in_the_digest():
    """The file text behind the digest: [PENDING] (qemu) / [pve:pending] (lxc), its 'delete:'
    line as print_pending_delete writes it, between the main section and the snapshots."""
    import hashlib
    sc = scenario(guests=[
        {"vmid": 100, "type": "qemu", "node": "pve1", "name": "p", "status": "stopped",
         "pending": {"delete": "onboot;!net1, tags", "memory": "4096"},
         "snapshots": [{"name": "s1", "snaptime": 1700000000}]},
        {"vmid": 101, "type": "lxc", "node": "pve1", "name": "c", "status": "stopped",
         "pending": {"swap": "0"}}])
    with Sim(sc) as sim:
        cur = ok(sim.api("GET", "/nodes/pve1/qemu/100/config", {"current": 1}))
        snap = ok(sim.api("GET", "/nodes/pve1/qemu/100/config", {"snapshot": "s1"}))
        assert snap["digest"] == cur["digest"] and snap["snaptime"] == 1700000000

        def section(conf, skip=("digest",)):
            return "".join("%s: %s\n" % (k, conf[k]) for k in sorted(conf) if k not in skip)
        text = section(cur) + "\n[PENDING]\ndelete: !net1,onboot,tags\nmemory: 4096\n" + \
            "\n[s1]\n" + section(snap)
        assert hashlib.sha1(text.encode()).hexdigest() == cur["digest"]
        lcur = ok(sim.api("GET", "/nodes/pve1/lxc/101/config", {"current": 1}))
        text = section(lcur) + "\n[pve:pending]\nswap: 0\n"
        assert hashlib.sha1(text.encode()).hexdigest() == lcur["digest"]
        assert cfg(sim, 101, "lxc")["swap"] == 0


# ----------------------------------------------------------------- snapshots

def test_snapshot_list_and_vzdump_leaves_snapshots_out():
    with Sim(volume_scenario()) as sim:
        t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/110/snapshot",
                                 {"snapname": "api1", "description": "taken by the API"}))
        assert t["exitstatus"] == "OK"
        lst = ok(sim.api("GET", "/nodes/pve1/qemu/110/snapshot"))
        assert [(s["name"], s.get("parent"), s["description"]) for s in lst] == [
            ("base", None, ""), ("daily", "base", "cron"), ("api1", "daily", "taken by the API"),
            ("current", "api1", "You are here!")]
        assert lst[-1]["digest"] == cfg(sim, 110)["digest"] and lst[-1]["running"] == 0
        assert all(s["vmstate"] == 0 for s in lst[:-1]) and "vmstate" not in lst[-1]
        t = task_of(sim, vzdump(sim, 110, storage="local"))
        assert "INFO: snapshots found (not included into backup)" in t["log"]
        conf = extractconfig(sim, backups(sim, "local", 110)[0]["volid"])
        assert "[" not in conf and "parent:" not in conf and "snaptime" not in conf
        # lxc: the list has no vmstate; pct.conf has no snapshot sections either
        task_of(sim, sim.api("POST", "/nodes/pve1/lxc/101/snapshot", {"snapname": "c1", "description": "ct"}))
        lst = ok(sim.api("GET", "/nodes/pve1/lxc/101/snapshot"))
        assert [(s["name"], s["description"]) for s in lst] == [("c1", "ct"), ("current", "You are here!")]
        assert "vmstate" not in lst[0]
        task_of(sim, vzdump(sim, 101, storage="local"))
        conf = extractconfig(sim, backups(sim, "local", 101)[0]["volid"])
        assert "[" not in conf and "parent" not in conf
        # has_feature('snapshot') covers every volume: a bind mount point blocks CT snapshots
        t = task_of(sim, sim.api("POST", "/nodes/pve1/lxc/301/snapshot", {"snapname": "s1"}))
        assert t["exitstatus"] == "snapshot feature is not available"
        # every drive is snapshotted; a rollback brings the snapshot's drives back
        t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/211/snapshot", {"snapname": "two"}))
        assert t["exitstatus"] == "OK"
        assert [ln for ln in t["log"] if ln.startswith("snapshotting")] == [
            "snapshotting 'drive-scsi0' (local-lvm:vm-211-disk-0)",
            "snapshotting 'drive-scsi1' (local-lvm:vm-211-disk-1)",
            "snapshotting 'drive-virtio1' (local-lvm:vm-211-disk-4)",
            "snapshotting 'drive-efidisk0' (local-lvm:vm-211-disk-3)"]
        snap = ok(sim.api("GET", "/nodes/pve1/qemu/211/config", {"snapshot": "two"}))
        assert "unused0" not in snap and snap["virtio1"] == cfg(sim, 211)["virtio1"]
        sim.event(211, "set", field="config", value={"virtio1": None, "sata3": "local-lvm:vm-211-disk-9,size=1G"})
        t = task_of(sim, sim.api("POST", "/nodes/pve1/qemu/211/snapshot/two/rollback"))
        assert t["exitstatus"] == "OK"
        c = cfg(sim, 211)
        assert c["virtio1"] == snap["virtio1"] and "sata3" not in c and c["parent"] == "two"
        assert c["unused0"] == "local-lvm:vm-211-disk-2"


# ----------------------------------------------------------------- destroy

def test_destroy_records_the_freed_volumes():
    sc = volume_scenario()
    sc["guests"] = sc["guests"] + [
        {"vmid": 230, "type": "qemu", "node": "pve1", "name": "d", "status": "stopped",
         "config": {"ide0": "local-lvm:vm-230-cloudinit,media=cdrom",
                    "ide2": "local:iso/x.iso,media=cdrom",
                    "scsi1": "local-lvm:vm-999-disk-0,size=2G",
                    "sata0": "/dev/disk/by-id/ata-disk1,size=100G",
                    "scsi2": "local-lvm:vm-230-disk-1,backup=0,size=5G",
                    "unused0": "local-lvm:vm-230-disk-2",
                    "unused1": "local-lvm:vm-230-disk-1"},
         "pending": {"virtio0": "local-lvm:vm-230-disk-3,size=1G"},
         "snapshots": [{"name": "s1", "snaptime": 1700000000, "vmstate": True}]},
        {"vmid": 330, "type": "lxc", "node": "pve1", "name": "dc", "status": "stopped",
         "config": {"mp0": "local-lvm:vm-331-disk-0,mp=/other,size=1G",
                    "mp1": "/srv/bind,mp=/bind", "unused0": "local-lvm:vm-330-disk-1"},
         "pending": {"mp2": "local-lvm:vm-330-disk-2,mp=/p,size=2G"}}]
    with Sim(sc) as sim:
        t = task_of(sim, sim.api("DELETE", "/nodes/pve1/qemu/230"))
        assert t["exitstatus"] == "OK", t["log"]
        d = sim.history(event="destroy", vmid=230)[-1]
        # cdroms kept except cloud-init, other owners' volumes and paths kept, each volume once;
        # config order, then unused, then the snapshots' vmstate, then pending
        assert d["volumes"] == [
            {"key": "ide0", "volid": "local-lvm:vm-230-cloudinit", "size": None},
            {"key": "scsi0", "volid": "local-lvm:vm-230-disk-0", "size": 32 * GIB},
            {"key": "scsi2", "volid": "local-lvm:vm-230-disk-1", "size": 5 * GIB},
            {"key": "unused0", "volid": "local-lvm:vm-230-disk-2", "size": None},
            {"key": "vmstate", "volid": "local-lvm:vm-230-state-s1", "size": None},
            {"key": "virtio0", "volid": "local-lvm:vm-230-disk-3", "size": GIB}]
        assert d["unreferenced"] == 0 and d["archives"] == [] and d["purge"] == 0
        assert '  Logical volume "vm-230-disk-0" successfully removed.' in t["log"]
        t = task_of(sim, sim.api("DELETE", "/nodes/pve1/lxc/330", {"destroy-unreferenced-disks": 1}))
        assert t["exitstatus"] == "OK", t["log"]
        assert "ignore deletion of 'local-lvm:vm-331-disk-0', CT 330 isn't the owner!" in t["log"]
        d = sim.history(event="destroy", vmid=330)[-1]
        assert [v["key"] for v in d["volumes"]] == ["rootfs", "unused0", "mp2"]
        assert d["unreferenced"] == 1


# ----------------------------------------------------------------- after_task / rewrite faults

def test_after_task_fault_changes_the_guest_as_the_task_ends():
    with Sim(volume_scenario()) as sim:
        before = cfg(sim, 211)
        sim.fault(kind="after_task", type="^vzdump$", vmid=211, count=1, events=[
            {"action": "set", "field": "config",
             "value": {"memory": "4096", "scsi1": None, "sata1": "local-lvm:vm-211-disk-8,size=1G"}}])
        upid = upid_of(vzdump(sim, 211, storage="local"))
        t = sim.wait_task(upid)
        assert t["exitstatus"] == "OK"
        # the first answer that shows the task stopped already sees the change
        c = cfg(sim, 211)
        assert c["memory"] == "4096" and "scsi1" not in c
        assert c["sata1"] == "local-lvm:vm-211-disk-8,size=1G" and c["digest"] != before["digest"]
        # the archive has the config of the backup time
        conf = extractconfig(sim, backups(sim, "local", 211)[0]["volid"])
        assert "memory: 2048\n" in conf and "scsi1:" in conf
        f = [x for x in sim.faults() if x["kind"] == "after_task"][0]
        assert f["hits"] == 1 and f["remaining"] == 0 and "errors" not in f
        # a failed task does not trigger it; delete + create under the same VMID
        sim.fault(kind="after_task", type="vzdump", count=1, events=[
            {"action": "delete"},
            {"action": "create", "guest": {"type": "qemu", "node": "pve1", "name": "imposter",
                                           "status": "stopped"}}])
        sim.fault(kind="task_fail", type="vzdump", count=1)
        assert task_of(sim, vzdump(sim, 100, storage="local"))["exitstatus"] == "job errors"
        assert cfg(sim, 100)["name"] == "web1"
        old = cfg(sim, 100)
        t = task_of(sim, vzdump(sim, 100, storage="local"))
        assert t["exitstatus"] == "OK"
        new = cfg(sim, 100)
        assert new["name"] == "imposter" and sim.guest(100)["generation"] == 1
        # a re-created guest has its own identity (MAC, smbios uuid, vmgenid, meta ctime)
        for k in ("net0", "smbios1", "vmgenid", "meta"):
            assert new[k] != old[k], k
        assert sim.guest(100)["status"] == "stopped"


def test_recreated_guest_identity_and_first_generation_unchanged():
    import hashlib
    with Sim(scenario()) as sim:
        c = cfg(sim, 100)
        h = hashlib.sha1(b"mac100/0").digest()
        assert c["net0"] == "virtio=BC:24:11:%02X:%02X:%02X,bridge=vmbr0,firewall=1" % (h[0], h[1], h[2])
        assert c["meta"] == "creation-qemu=9.2.0,ctime=1700000100"
        assert sim.guest(100)["generation"] == 0
        sim.event(101, "delete")
        sim.create_guest({"vmid": 101, "type": "lxc", "node": "pve1", "name": "ct1"})
        assert sim.guest(101)["generation"] == 1
        assert cfg(sim, 101, "lxc")["net0"] != "name=eth0,bridge=vmbr0,firewall=1,hwaddr=BC:24:11:%02X:%02X:%02X," \
            "ip=dhcp,type=veth" % tuple(hashlib.sha1(b"mac101/0").digest()[:3])
        # replace: a live guest swapped for a new one
        sim.create_guest({"vmid": 100, "name": "web1", "node": "pve1"}, replace=True)
        c2 = cfg(sim, 100)
        assert sim.guest(100)["generation"] == 1 and c2["vmgenid"] != c["vmgenid"]
        assert c2["smbios1"] != c["smbios1"] and c2["net0"] != c["net0"]


def test_rewrite_fault():
    with Sim(volume_scenario()) as sim:
        task_of(sim, vzdump(sim, 211, storage="local"))
        task_of(sim, vzdump(sim, 212, storage="local"))
        vol = backups(sim, "local", 211)[0]["volid"]
        # extractconfig answers another guest's config
        other = extractconfig(sim, backups(sim, "local", 212)[0]["volid"])
        sim.fault(kind="rewrite", path="/vzdump/extractconfig$", count=1, pattern=r'^\{"data":".*"\}$',
                  repl=json.dumps({"data": other}).replace("\\", "\\\\"))
        assert extractconfig(sim, vol) == other
        assert "name: multi" in extractconfig(sim, vol)              # count 1
        # the content listing names another VMID's volume
        sim.fault(kind="rewrite", path="/storage/local/content$", pattern="vzdump-qemu-211-",
                  repl="vzdump-qemu-212-", max=1, count=1)
        items = backups(sim, "local", 211)
        assert items[0]["volid"].startswith("local:backup/vzdump-qemu-212-") and items[0]["vmid"] == 211
        entry = [e for e in sim.requests() if e["path"].endswith("/content")][-1]
        assert entry["fault"] == "rewrite"
        # only 2xx answers are rewritten (and counted)
        sim.fault(kind="rewrite", path="/config$", pattern="x", repl="y", count=1)
        err500(sim.api("GET", "/nodes/pve1/qemu/999/config"),
               "Configuration file 'nodes/pve1/qemu-server/999.conf' does not exist")
        f = [x for x in sim.faults() if x["kind"] == "rewrite" and x.get("path") == "/config$"][0]
        assert f["remaining"] == 1 and f["hits"] == 0
        assert cfg(sim, 211)["cpu"] == "y86-64-v2-AES"                # the next 2xx answer
        assert cfg(sim, 211)["cpu"] == "x86-64-v2-AES"
