"""System tests for the Proxmox VE API simulator (tests/pve-sim).

Run: /usr/bin/python3 -m pytest tests/system/test_sim.py
"""

import http.client
import json
import os
import re
import socket
import ssl
import sys
import time
import urllib.error
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM_DIR = os.path.normpath(os.path.join(HERE, "..", "pve-sim"))
CONTRACT = os.path.normpath(os.path.join(HERE, "..", "data", "pve-api", "endpoints.json"))
sys.path.insert(0, SIM_DIR)

from simctl import Sim, SimError, make_test_ca  # noqa: E402
from pvesim.model import make_upid  # noqa: E402
from pvesim.workload import make_workload  # noqa: E402

MIB = 1048576
TOKEN_ID = "proxreap@pve!reaper"
SECRET = "3f1c8a52-6a0e-4e43-9d61-2c0bb1f0a9d7"
PASSWORD = "s3cret-passw0rd"


def scenario(**over):
    sc = {
        "nodes": ["pve1", "pve2"],
        "tokens": {TOKEN_ID: SECRET},
        "users": {"root@pam": PASSWORD},
        "auth_fail_delay": 0.0,
        "stats_period": 0.1,
        "guests": [
            {"vmid": 100, "type": "qemu", "node": "pve1", "name": "web1", "maxcpu": 2,
             "maxmem": 2 * 1024 * MIB, "maxdisk": 32 * 1024 * MIB, "tags": "prod;web",
             "uptime": 1000,
             "workload": {"kind": "constant", "cpu": 0.02, "mem_mb": 300, "net_kbps": 8.0,
                          "disk_kbps": 16.0}},
            {"vmid": 101, "type": "lxc", "node": "pve2", "name": "ct1", "status": "stopped",
             "pool": "lab", "maxmem": 512 * MIB},
            {"vmid": 102, "type": "qemu", "node": "pve1", "name": "db1", "ha": True, "lock": "backup",
             "protection": 1, "workload": {"kind": "constant", "cpu": 0.5, "mem_mb": 1500}},
            {"vmid": 103, "type": "lxc", "node": "pve2", "name": "ct2", "maxcpu": 1,
             "workload": {"kind": "bursts", "base": {"cpu": 0.01, "mem_mb": 100},
                          "burst": {"cpu": 0.9, "mem_mb": 400}, "every": 10, "length": 5}},
        ],
    }
    sc.update(over)
    return sc


@pytest.fixture(scope="module")
def sim():
    with Sim(scenario()) as s:
        yield s


@pytest.fixture
def fresh():
    with Sim(scenario()) as s:
        yield s


def vm_entry(sim, vmid):
    r = sim.api("GET", "/cluster/resources", {"type": "vm"})
    assert r.status == 200, r
    for e in r.json["data"]:
        if e["vmid"] == vmid:
            return e
    return None


def next_sample(sim, vmid, prev=None):
    """Wait for the next pvestatd-style sample of vmid (stats_period 0.1)."""
    for _ in range(50):
        e = vm_entry(sim, vmid)
        if prev is None or e != prev:
            return e
        time.sleep(0.05)
    return e


# ----------------------------------------------------------------- basics

def test_valid_request_and_headers(sim):
    r = sim.api("GET", "/version")
    assert r.status == 200
    assert r.reason == "OK"
    assert r.headers["Server"] == "pve-api-daemon/3.0"
    assert r.headers["Content-Type"] == "application/json;charset=UTF-8"
    assert r.headers["Cache-Control"] == "max-age=0"
    assert r.headers["Pragma"] == "no-cache"
    assert r.headers["Expires"]
    assert r.headers["Connection"] == "Keep-Alive"
    assert int(r.headers["Content-Length"]) == len(r.body)
    data = r.json["data"]
    assert data["release"] == "9.1"
    assert data["version"].startswith("9.1")
    assert re.fullmatch(r"[0-9a-fA-F]{8,64}", data["repoid"])


def test_keepalive_reuses_connection(sim):
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    try:
        for _ in range(3):
            conn.request("GET", "/api2/json/version", headers={"Authorization": sim.token_header()})
            r = conn.getresponse()
            assert r.status == 200
            r.read()
            assert r.getheader("Connection") == "Keep-Alive"
        sock = conn.sock
        conn.request("GET", "/api2/json/version", headers={"Authorization": sim.token_header()})
        conn.getresponse().read()
        assert conn.sock is sock
    finally:
        conn.close()


def test_cluster_resources_shapes(sim):
    r = sim.api("GET", "/cluster/resources")
    assert r.status == 200
    data = r.json["data"]
    types = [e["type"] for e in data]
    assert types[0] == "pool"                       # pools first, like Cluster.pm
    assert {"qemu", "lxc", "node", "storage"} <= set(types)
    web = next(e for e in data if e.get("vmid") == 100)
    assert web["id"] == "qemu/100" and web["type"] == "qemu" and web["node"] == "pve1"
    assert web["name"] == "web1" and web["status"] == "running"
    assert isinstance(web["template"], int) and web["template"] == 0
    assert web["maxcpu"] == 2 and web["maxmem"] == 2048 * MIB
    assert web["disk"] == 0                         # qemu: no disk usage info
    assert web["tags"] == "prod;web"
    assert "lock" not in web and "pool" not in web and "hastate" not in web
    db = next(e for e in data if e.get("vmid") == 102)
    assert db["lock"] == "backup" and db["hastate"] == "started"
    ct = next(e for e in data if e.get("vmid") == 101)
    assert ct["status"] == "stopped" and ct["pool"] == "lab"
    for k in ("uptime", "cpu", "mem", "netin", "netout", "diskread", "diskwrite", "disk"):
        assert ct[k] == 0 and isinstance(ct[k], int), k
    assert ct["maxmem"] == 512 * MIB
    node = next(e for e in data if e["type"] == "node")
    assert node["id"] == "node/pve1" and node["status"] == "online"
    st = next(e for e in data if e["type"] == "storage")
    assert set(st) >= {"content", "disk", "id", "maxdisk", "node", "plugintype", "shared",
                       "status", "storage", "type"}
    assert st["id"] == "storage/%s/%s" % (st["node"], st["storage"])

    r = sim.api("GET", "/cluster/resources", {"type": "vm"})
    assert {e["type"] for e in r.json["data"]} == {"qemu", "lxc"}
    r = sim.api("GET", "/cluster/resources", {"type": "storage"})
    assert {e["type"] for e in r.json["data"]} == {"storage"}
    r = sim.api("GET", "/cluster/resources", {"type": "node"})
    assert [e["node"] for e in r.json["data"]] == ["pve1", "pve2"]


def test_status_current_and_config(sim):
    r = sim.api("GET", "/nodes/pve1/qemu/100/status/current")
    assert r.status == 200
    d = r.json["data"]
    assert d["status"] == "running" and d["qmpstatus"] == "running" and d["vmid"] == 100
    assert d["ha"] == {"managed": 0} and d["cpus"] == 2 and d["pid"] > 0
    r = sim.api("GET", "/nodes/pve2/lxc/101/status/current")
    assert r.json["data"]["status"] == "stopped"
    r = sim.api("GET", "/nodes/pve1/qemu/102/config")
    c = r.json["data"]
    assert re.fullmatch(r"[0-9a-f]{40}", c["digest"])
    assert c["lock"] == "backup" and c["protection"] == 1 and c["name"] == "db1"
    r = sim.api("GET", "/nodes/pve2/lxc/103/config")
    assert r.json["data"]["hostname"] == "ct2"
    # wrong node / wrong type: what load_config dies with
    r = sim.api("GET", "/nodes/pve2/qemu/100/config")
    assert r.status == 500
    assert r.reason == "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist"
    assert r.json == {"data": None,
                      "message": "Configuration file 'nodes/pve2/qemu-server/100.conf' does not exist\n"}
    r = sim.api("GET", "/nodes/nosuch/qemu/100/status/current")
    assert r.status == 500 and r.reason.startswith("hostname lookup 'nosuch' failed")


# ----------------------------------------------------------------- validation

def test_unknown_param_and_bad_enum(sim):
    r = sim.api("GET", "/cluster/resources", {"type": "vms", "full": "1"})
    assert r.status == 400
    assert r.reason == "Parameter verification failed."
    assert r.headers["Connection"] == "close"
    assert r.json == {
        "data": None,
        "errors": {
            "type": "value 'vms' does not have a value in the enumeration 'vm, storage, node, sdn'",
            "full": "property is not defined in schema and the schema does not allow additional properties",
        },
        "message": "Parameter verification failed.\n",
    }


def test_type_format_and_range_messages(sim):
    r = sim.api("GET", "/nodes/pve1/qemu/abc/status/current")
    assert r.json["errors"] == {"vmid": "type check ('integer') failed - got 'abc'"}
    r = sim.api("GET", "/nodes/pve1/qemu/99/status/current")
    assert r.json["errors"] == {"vmid": "invalid format - value does not look like a valid VM ID\n"}
    r = sim.api("GET", "/nodes/pve1/qemu/100/config", {"current": "true"})
    assert r.json["errors"] == {"current": "type check ('boolean') failed - got 'true'"}
    r = sim.api("GET", "/nodes/pve1/qemu/100/config", {"current": "1", "snapshot": "1bad"})
    assert r.json["errors"] == {"snapshot": "invalid format - invalid configuration ID '1bad'\n"}
    # POST body (form) validated the same way; 'requires' and minimum
    r = sim.api("POST", "/nodes/pve1/vzdump", {"vmid": "100", "protected": "1", "ionice": "9",
                                                "mode": "fast"})
    assert r.status == 400
    assert r.json["errors"] == {
        "storage": "missing property - 'protected' requires this property",
        "ionice": "value must have a maximum value of 8",
        "mode": "value 'fast' does not have a value in the enumeration 'snapshot, suspend, stop'",
    }
    r = sim.api("POST", "/access/ticket", {"password": "x"}, token=None)
    assert r.json["errors"] == {"username": "property is missing and it is not optional"}
    # JSON bodies: JSON booleans are accepted for booleans
    r = sim.api("POST", "/nodes/pve1/qemu/100/status/shutdown", json_body={"forceStop": True,
                                                                           "timeout": "x"})
    assert r.json["errors"] == {"timeout": "type check ('integer') failed - got 'x'"}
    # a URI parameter repeated with another value
    r = sim.api("GET", "/nodes/pve1/qemu/100/config", {"vmid": "101"})
    assert r.json["errors"] == {
        "vmid": "duplicate parameter (already defined in URI) with conflicting values!"}


def test_unknown_path_and_unimplemented(sim):
    r = sim.api("GET", "/nodes/pve1/nosuch")
    assert r.status == 501
    assert r.reason == "Method 'GET /nodes/pve1/nosuch' not implemented"
    assert r.json == {"data": None, "message": "Method 'GET /nodes/pve1/nosuch' not implemented"}
    r = sim.api("PUT", "/cluster/resources", {})
    assert r.status == 501 and r.reason == "Method 'PUT /cluster/resources' not implemented"
    # in the contract, valid, but no handler yet -> 501 after verification
    r = sim.api("GET", "/nodes/pve1/qemu")
    assert r.status == 501 and r.reason == "Method 'GET /nodes/pve1/qemu' not implemented"
    r = sim.api("GET", "/cluster/nextid", {"vmid": "5"})
    assert r.status == 400


def test_every_contract_endpoint_is_routed(sim):
    """Each endpoint in endpoints.json is recognised (no 'not implemented'
    for an unknown path; params are verified)."""
    with open(CONTRACT) as fh:
        eps = json.load(fh)["endpoints"]
    fill = {"node": "pve1", "vmid": "100", "snapname": "snap1", "sid": "vm:100",
            "storage": "local", "volume": "local:backup/vzdump-qemu-100-2026_01_01-00_00_00.vma.zst",
            "upid": "UPID:pve1:00001234:0000ABCD:6419CAF8:qmstart:100:root@pam:"}
    for ep in eps:
        if ep["path"] == "/access/ticket":
            continue
        path = re.sub(r"\{(\w+)\}", lambda m: fill[m.group(1)], ep["path"])
        r = sim.api(ep["method"], path, {"bogus_param": "1"})
        assert r.status == 400, (ep["method"], ep["path"], r)
        assert "bogus_param" in r.json["errors"]


# ----------------------------------------------------------------- auth

def test_bad_token_and_missing_auth(sim):
    r = sim.api("GET", "/version", token="PVEAPIToken=%s=wrong" % TOKEN_ID)
    assert r.status == 401 and r.reason == "Authentication failed!"
    assert r.body == b"" and r.headers["Connection"] == "close"
    r = sim.api("GET", "/version", token="PVEAPIToken=nobody@pve!x=%s" % SECRET)
    assert r.status == 401
    r = sim.api("GET", "/version", token=None)
    assert r.status == 401 and r.reason == "No ticket"
    # a space instead of the first '=' and a URI-escaped value are accepted
    r = sim.api("GET", "/version", token="PVEAPIToken %s=%s" % (TOKEN_ID, SECRET))
    assert r.status == 200
    r = sim.api("GET", "/version", token="PVEAPIToken=proxreap%40pve%21reaper=" + SECRET)
    assert r.status == 200


def test_auth_fail_delay():
    with Sim(scenario(auth_fail_delay=0.5)) as s:
        t0 = time.monotonic()
        r = s.api("GET", "/version", token="PVEAPIToken=%s=nope" % TOKEN_ID)
        assert r.status == 401 and time.monotonic() - t0 >= 0.45


def test_ticket_auth_and_csrf(fresh):
    sim = fresh
    r = sim.api("POST", "/access/ticket", {"username": "root@pam", "password": PASSWORD}, token=None)
    assert r.status == 200
    d = r.json["data"]
    assert d["username"] == "root@pam" and d["clustername"]
    ticket, csrf = d["ticket"], d["CSRFPreventionToken"]
    assert re.fullmatch(r"PVE:root@pam:[0-9A-F]{8}::[A-Za-z0-9+/=]+", ticket)
    assert re.fullmatch(r"[0-9A-F]{8}:\S+", csrf)
    r = sim.api("GET", "/cluster/resources", {"type": "vm"}, ticket=ticket)
    assert r.status == 200
    # non-GET needs the CSRF token
    r = sim.api("POST", "/nodes/pve1/qemu/100/status/shutdown", {}, ticket=ticket)
    assert r.status == 401 and r.reason == "Permission denied - invalid csrf token"
    r = sim.api("POST", "/nodes/pve1/qemu/100/status/shutdown", {}, ticket=ticket, csrf=csrf)
    assert r.status == 200 and r.json["data"].startswith("UPID:pve1:")   # authenticated
    # wrong password
    r = sim.api("POST", "/access/ticket", {"username": "root@pam", "password": "nope"}, token=None)
    assert r.status == 401 and r.reason == "authentication failure"
    assert r.json == {"data": None, "message": "authentication failure\n"}
    # /access/ticket is not available with API tokens
    r = sim.api("POST", "/access/ticket", {"username": "root@pam", "password": PASSWORD})
    assert r.status == 403
    assert r.reason == ("Permission check failed (URI '/access/ticket' not available with API "
                        "token, need proper ticket.")
    # renewal: POST the ticket as password
    sim.advance(10)
    r = sim.api("POST", "/access/ticket", {"username": "root@pam", "password": ticket}, token=None)
    assert r.status == 200 and r.json["data"]["ticket"] != ticket
    new_ticket = r.json["data"]["ticket"]
    # tickets expire after ticket_lifetime (7200 s)
    sim.advance(7195)
    assert sim.api("GET", "/version", ticket=ticket).status == 401
    r = sim.api("GET", "/version", ticket=new_ticket)
    assert r.status == 200
    sim.advance(10)
    r = sim.api("GET", "/version", ticket=new_ticket)
    assert r.status == 401 and r.reason == "permission denied - invalid PVE ticket"


# ----------------------------------------------------------------- workloads

def test_constant_workload_numbers(fresh):
    sim = fresh
    e = next_sample(sim, 100)
    assert e["cpu"] == 0.02
    assert e["mem"] == 300 * MIB
    # counters are bytes since start: 8 kbps = 1000 B/s, 16 kbps = 2000 B/s
    assert abs(e["netin"] - 1000 * e["uptime"]) <= 1000
    assert abs(e["diskwrite"] - 2000 * e["uptime"]) <= 2000
    assert e["uptime"] >= 1000
    sim.advance(300)
    e2 = next_sample(sim, 100, e)
    assert 299 <= e2["uptime"] - e["uptime"] <= 302
    assert abs((e2["netin"] - e["netin"]) - 1000 * (e2["uptime"] - e["uptime"])) <= 2000
    assert e2["netout"] > e["netout"] and e2["diskread"] > e["diskread"]
    assert e2["cpu"] == 0.02


def test_bursts_and_stats_period(fresh):
    sim = fresh
    seen = set()
    for _ in range(30):
        sim.advance(1.0)
        e = vm_entry(sim, 103)
        seen.add(e["cpu"])
        if {0.01, 0.9} <= seen:
            break
    assert {0.01, 0.9} <= seen


def test_restart_resets_counters(fresh):
    sim = fresh
    before = next_sample(sim, 100)
    assert before["netin"] >= 1000000
    sim.event(100, "restart")
    after = next_sample(sim, 100, before)
    assert after["uptime"] <= 1
    assert after["netin"] < 5000
    assert after["cpu"] == 0              # first sample after a restart
    later = after
    for _ in range(20):
        later = next_sample(sim, 100, later)
        if later["cpu"]:
            break
    assert later["cpu"] == 0.02


def test_stop_start_migrate_and_live_fields(fresh):
    sim = fresh
    sim.event(100, "stop")
    e = next_sample(sim, 100)
    for _ in range(20):
        if e["status"] == "stopped":
            break
        e = next_sample(sim, 100, e)
    assert e["status"] == "stopped" and e["netin"] == 0 and e["uptime"] == 0 and e["cpu"] == 0
    sim.event(100, "start")
    sim.event(100, "migrate", node="pve2")
    sim.event(100, "lock", value="snapshot")
    sim.event(100, "set", field="tags", value="proxreap-idle")
    e = vm_entry(sim, 100)
    assert e["node"] == "pve2" and e["lock"] == "snapshot" and e["tags"] == "proxreap-idle"
    g = sim.guest(100)
    assert g["node"] == "pve2" and g["status"] == "running"
    assert sim.api("GET", "/nodes/pve2/qemu/100/config").json["data"]["lock"] == "snapshot"
    sim.event(100, "delete")
    assert vm_entry(sim, 100) is None


def test_unknown_entries_have_no_stats(fresh):
    sim = fresh
    sim.event(102, "unknown", duration=3600)
    e = vm_entry(sim, 102)
    assert e == {"id": "qemu/102", "vmid": 102, "node": "pve1", "type": "qemu", "status": "unknown",
                 "lock": "backup", "hastate": "started"}
    sim.advance(3601)
    e = vm_entry(sim, 102)
    assert e["status"] == "running" and "cpu" in e


def test_scheduled_events_from_scenario():
    sc = scenario()
    sc["guests"][0]["events"] = [{"at": 50, "action": "stop"}, {"at": 80, "action": "start"}]
    with Sim(sc) as sim:
        assert vm_entry(sim, 100)["status"] == "running"
        sim.advance(60)
        assert next_sample(sim, 100)["status"] == "stopped"
        sim.advance(30)
        e = next_sample(sim, 100)
        assert e["status"] == "running" and e["uptime"] <= 12


# ----------------------------------------------------------------- request log

def test_request_log_records_and_never_leaks(fresh):
    sim = fresh
    sim.clear_requests()
    sim.api("GET", "/cluster/resources", {"type": "vm"})
    r = sim.api("POST", "/access/ticket", {"username": "root@pam", "password": PASSWORD}, token=None)
    ticket = r.json["data"]["ticket"]
    sim.api("GET", "/version", ticket=ticket)
    sim.api("GET", "/version", token="PVEAPIToken=%s=wrong" % TOKEN_ID)
    log = sim.requests()
    assert [e["path"] for e in log] == ["/cluster/resources", "/access/ticket", "/version", "/version"]
    first = log[0]
    assert first["method"] == "GET" and first["query"] == {"type": "vm"} and first["body"] == {}
    assert first["auth"] == "token" and first["status"] == 200 and isinstance(first["t"], float)
    assert log[1]["body"]["username"] == "root@pam" and log[1]["auth"] == "none"
    assert log[2]["auth"] == "ticket" and log[3]["status"] == 401
    with open(sim.log_file) as fh:
        text = fh.read()
    assert len(text.splitlines()) == 4
    for blob in (json.dumps(log), text):
        assert SECRET not in blob and PASSWORD not in blob and ticket not in blob
        assert "PVEAPIToken" not in blob


# ----------------------------------------------------------------- faults

def test_fault_status_and_count(fresh):
    sim = fresh
    sim.fault(kind="status", code=503, message="Service Unavailable - backend down",
              path="^/cluster/resources$", count=1)
    r = sim.api("GET", "/cluster/resources")
    assert r.status == 503 and r.reason == "Service Unavailable - backend down"
    assert sim.api("GET", "/cluster/resources").status == 200
    assert sim.requests()[-2]["fault"] == "status"


def test_fault_delay(fresh):
    sim = fresh
    sim.fault(kind="delay", seconds=0.4, path="^/version$")
    t0 = time.monotonic()
    assert sim.api("GET", "/version").status == 200
    assert time.monotonic() - t0 >= 0.38
    t0 = time.monotonic()
    assert sim.api("GET", "/cluster/resources").status == 200
    assert time.monotonic() - t0 < 0.38


def test_fault_hang_does_not_block_others(fresh):
    sim = fresh
    sim.fault(kind="hang", path="^/cluster/resources$", count=1)
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError)):
        sim.api("GET", "/cluster/resources", timeout=0.5)
    assert time.monotonic() - t0 < 2
    assert sim.api("GET", "/version").status == 200


def test_fault_truncate(fresh):
    sim = fresh
    sim.fault(kind="truncate", bytes=40, path="^/cluster/resources$", count=1)
    conn = http.client.HTTPConnection("127.0.0.1", sim.port, timeout=5)
    conn.request("GET", "/api2/json/cluster/resources", headers={"Authorization": sim.token_header()})
    r = conn.getresponse()
    assert r.status == 200 and int(r.getheader("Content-Length")) > 40
    with pytest.raises(http.client.IncompleteRead) as exc:
        r.read()
    assert len(exc.value.partial) == 40
    conn.close()


def test_fault_malformed(fresh):
    sim = fresh
    sim.fault(kind="malformed", path="^/cluster/resources$", count=1)
    r = sim.api("GET", "/cluster/resources", {"type": "vm"})
    assert r.status == 200
    with pytest.raises(ValueError):
        json.loads(r.body)


def test_fault_oversize(fresh):
    sim = fresh
    sim.fault(kind="oversize", size_mb=3, path="^/cluster/resources$", count=1)
    r = sim.api("GET", "/cluster/resources", {"type": "vm"}, timeout=20)
    assert r.status == 200 and len(r.body) == 3 * MIB
    assert int(r.headers["Content-Length"]) == 3 * MIB
    assert len(r.json["data"]) > 100


def test_fault_revoke(fresh):
    sim = fresh
    assert sim.api("GET", "/version").status == 200
    sim.fault(kind="revoke")
    r = sim.api("GET", "/version")
    assert r.status == 401 and r.reason == "Authentication failed!"
    sim.clear_faults()
    assert sim.api("GET", "/version").status == 200


def test_fault_close(fresh):
    sim = fresh
    sim.fault(kind="close", path="^/version$", count=1)
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        sim.api("GET", "/version")
    assert sim.api("GET", "/version").status == 200


def test_fault_duplicate_keys_and_wrong_type(fresh):
    sim = fresh
    sim.fault(kind="duplicate_keys", key="cpu", value=7, path="^/cluster/resources$", count=1)
    r = sim.api("GET", "/cluster/resources", {"type": "vm"})
    text = r.body.decode()
    obj = text[text.index("{", 1):text.index("}") + 1]
    assert obj.count('"cpu":') == 2 and obj.startswith('{"cpu":7,')
    assert json.loads(text)["data"][0]["cpu"] != 7    # last one wins for Python's parser
    sim.fault(kind="wrong_type", key="mem", path="^/cluster/resources$", count=1)
    r = sim.api("GET", "/cluster/resources", {"type": "vm"})
    mems = [e["mem"] for e in r.json["data"]]
    assert all(isinstance(m, str) for m in mems)
    r = sim.api("GET", "/cluster/resources", {"type": "vm"})
    assert all(isinstance(e["mem"], int) for e in r.json["data"])


def test_fault_time_window(fresh):
    sim = fresh
    now = sim.time()["t"]
    sim.fault(kind="status", code=502, at=now + 100, until=now + 200)
    assert sim.api("GET", "/version").status == 200
    sim.advance(150)
    assert sim.api("GET", "/version").status == 502
    sim.advance(100)
    assert sim.api("GET", "/version").status == 200


def test_fault_trickle(fresh):
    """The response goes out at `rate` bytes per second: complete and
    valid in the end, but only a rate's worth arrives per second; a client
    that gives up does not hold up anyone else."""
    sim = fresh
    sim.fault(kind="trickle", rate=1000, path="^/version$", count=1)
    s = socket.create_connection(("127.0.0.1", sim.port), timeout=10)
    s.sendall(b"GET /api2/json/version HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n\r\n"
              % sim.token_header().encode())
    t0 = time.monotonic()
    data = b""
    early = None
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
        if early is None and time.monotonic() - t0 >= 0.15:
            early = len(data)
    took = time.monotonic() - t0
    s.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"Connection: close" in head
    assert json.loads(body)["data"]["version"]
    assert took >= len(data) / 1000 * 0.8, (took, len(data))
    assert early is not None and early <= 0.5 * 1000, early
    assert sim.requests()[-1]["fault"] == "trickle" and sim.requests()[-1]["status"] == 200
    # 1 byte/s: the client gives up after a second; the sim serves others.
    sim.fault(kind="trickle", rate=1, path="^/cluster/resources$", count=1)
    with pytest.raises((socket.timeout, TimeoutError)):
        sim.api("GET", "/cluster/resources", timeout=1.0)
    t0 = time.monotonic()
    assert sim.api("GET", "/version").status == 200
    assert time.monotonic() - t0 < 1


# ----------------------------------------------------------------- TLS

def test_https_with_test_ca(tmp_path):
    ca, cert, key = make_test_ca(str(tmp_path / "ca1"))
    other_ca, _, _ = make_test_ca(str(tmp_path / "ca2"))
    with Sim(scenario(), cert=cert, key=key, ca=ca) as sim:
        assert sim.url.startswith("https://127.0.0.1:")
        req = urllib.request.Request(sim.api_url + "/version",
                                     headers={"Authorization": sim.token_header()})
        ctx = ssl.create_default_context(cafile=ca)
        with urllib.request.urlopen(req, context=ctx, timeout=5) as resp:
            assert resp.status == 200
            assert json.load(resp)["data"]["release"] == "9.1"
        # also by name (SAN DNS:localhost)
        req2 = urllib.request.Request("https://localhost:%d/api2/json/version" % sim.port,
                                      headers={"Authorization": sim.token_header()})
        with urllib.request.urlopen(req2, context=ctx, timeout=5) as resp:
            assert resp.status == 200
        bad = ssl.create_default_context(cafile=other_ca)
        with pytest.raises(urllib.error.URLError) as exc:
            urllib.request.urlopen(req, context=bad, timeout=5)
        assert isinstance(exc.value.reason, ssl.SSLCertVerificationError)
        # a client that fails the handshake does not hurt the server
        assert sim.api("GET", "/version").status == 200


# ----------------------------------------------------------------- scale + misc

def test_generated_fleet_10k_fast():
    sc = {"nodes": ["pve1", "pve2", "pve3"], "tokens": {TOKEN_ID: SECRET}, "auth_fail_delay": 0,
          "stats_period": 0.1, "generate": {"count": 10000, "seed": 1, "first_vmid": 1000,
                                            "idle_share": 0.3}}
    with Sim(sc) as sim:
        timings = []
        for _ in range(3):
            t0 = time.monotonic()
            r = sim.api("GET", "/cluster/resources", {"type": "vm"}, timeout=30)
            timings.append(time.monotonic() - t0)
            assert r.status == 200
            time.sleep(0.12)
        data = r.json["data"]
        print("\n10,000 guests: /cluster/resources?type=vm in %s s, %d bytes"
              % (", ".join("%.3f" % t for t in timings), len(r.body)))
        assert len(data) == 10000
        statuses = {e["status"] for e in data}
        assert {"running", "stopped"} <= statuses
        assert any(e.get("template") == 1 for e in data)
        assert any("lock" in e for e in data) and any("hastate" in e for e in data)
        assert any("tags" in e for e in data) and any("pool" in e for e in data)
        assert min(timings) < 1.0
    # deterministic from the seed
    with Sim(sc) as sim2:
        names = [e["name"] for e in sim2.api("GET", "/cluster/resources", {"type": "vm"},
                                             timeout=30).json["data"] if "name" in e]
        assert names[:50] == [e["name"] for e in data if "name" in e][:50]


def test_workload_math():
    kb = 125.0
    c = make_workload({"kind": "constant", "cpu": 0.1, "mem_mb": 10, "net_kbps": 8, "disk_kbps": 16,
                       "netout_kbps": 80})
    assert c.cpu_avg(0, 10) == 0.1 and c.mem(5) == 10 * MIB
    assert c.counters(-100, 100) == (int(8 * kb * 200), int(80 * kb * 200), int(16 * kb * 200),
                                     int(16 * kb * 200))
    b = make_workload({"kind": "bursts", "base": {"cpu": 0.0, "net_kbps": 0},
                       "burst": {"cpu": 1.0, "mem_mb": 1, "net_kbps": 8}, "every": 60, "length": 15})
    assert b.cpu_avg(0, 60) == pytest.approx(0.25) and b.cpu_avg(-600, 0) == pytest.approx(0.25)
    assert b.cpu_avg(0, 15) == pytest.approx(1.0) and b.cpu_avg(15, 60) == pytest.approx(0.0)
    assert b.cpu_avg(10, 20) == pytest.approx(0.5)
    assert b.mem(5) == MIB and b.mem(30) == 0
    assert b.counters(-60, 60)[0] == int(2 * 15 * 1000)      # two bursts of 15 s at 1000 B/s
    d = make_workload({"kind": "daynight", "period": 100, "day": {"cpu": 0.8}, "night": {"cpu": 0.1}})
    assert d.cpu_avg(0, 50) == pytest.approx(0.8) and d.cpu_avg(50, 100) == pytest.approx(0.1)
    assert d.cpu_avg(0, 100) == pytest.approx(0.45)
    r1 = make_workload({"kind": "random", "seed": 7, "cpu_max": 0.5, "mem_mb_max": 4096})
    r2 = make_workload({"kind": "random", "seed": 7, "cpu_max": 0.5, "mem_mb_max": 4096})
    vals = [r1.cpu_avg(t, t + 10) for t in range(0, 1000, 10)]
    assert vals == [r2.cpu_avg(t, t + 10) for t in range(0, 1000, 10)]
    assert all(0 <= v < 0.5 for v in vals) and len(set(vals)) > 50
    assert all(0 <= r1.mem(t) < 4096 * MIB for t in range(0, 1000, 7))


def test_upid_format_matches_contract():
    with open(CONTRACT) as fh:
        rx = json.load(fh)["upid"]["regex"]
    upid = make_upid("pve1", 0x1234, 0x1036A5, 1679411960, "qmstart", "100", "proxreap@pve!reaper")
    assert upid == "UPID:pve1:00001234:001036A5:6419CAF8:qmstart:100:proxreap@pve!reaper:"
    assert re.match(rx, upid)


def test_control_api_and_clean_exit():
    sim = Sim(scenario())
    sim.start()
    try:
        t = sim.time()
        assert t["period"] == 0.1 and t["t"] >= 0
        assert sim.advance(10)["t"] >= t["t"] + 10
        views = {g["vmid"]: g for g in sim.guests()}
        assert views[101]["status"] == "stopped" and views[100]["workload"] == "constant"
        v = sim.create_guest({"vmid": 200, "type": "lxc", "node": "pve1", "name": "new"})
        assert v["vmid"] == 200 and vm_entry(sim, 200)["name"] == "new"
        with pytest.raises(SimError):
            sim.control("GET", "/nosuch")
    finally:
        assert sim.stop() == 0
