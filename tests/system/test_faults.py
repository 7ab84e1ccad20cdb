"""The fault matrix of docs/reliability.md: one test per row (parametrized
where a row says "each write call" or "each saga step").

Every test asserts three things once the fault has passed:
  fate     the guest is alive and running as before, or it was reaped: one
           destroy, after a protected archive of size > 0 (check_invariants)
  journal  `proxreap journal verify` exits 0, the op's state and reason are
           the expected ones, and no saga call was sent without its intent
           on record (check_invariants)
  health   the daemon is still running and completing polls (or reaps the
           next guest), and stops with status 0 on SIGTERM (finish)

Rows already covered by a test elsewhere are listed in the matrix with
that test's name instead of being repeated here.
"""

import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time

import pytest

from conftest import (BUILD, PROXREAP, REPO, check_invariants, guest, journal_records,
                      wait_until)
from test_reap import FAST, IDLE, OBSERVE, REAP, healthy, ops, ops_by_vmid, sim_of, wait_op, writes

VM = 101
SAGA = ["POST /nodes/pve1/qemu/101/status/shutdown",
        "POST /nodes/pve1/qemu/101/snapshot",
        "POST /nodes/pve1/vzdump",
        "DELETE /nodes/pve1/qemu/101"]

# The saga's write calls: (method, path regex). "tag" is the PUT of the
# config that marks a guest (reap.grace > 0).
WRITE_CALLS = {
    "shutdown": ("POST", r"/qemu/101/status/shutdown$"),
    "snapshot": ("POST", r"/qemu/101/snapshot$"),
    "vzdump": ("POST", r"^/nodes/pve1/vzdump$"),
    "destroy": ("DELETE", r"^/nodes/pve1/qemu/101$"),
    "tag": ("PUT", r"^/nodes/pve1/qemu/101/config$"),
}
CALLS = list(WRITE_CALLS)


# ---------------------------------------------------------------- helpers

def start(lab, api=None, faults=None, guests=None, env=None, wrap=None, **reap):
    """A sim with the victim (and `guests`), a reap config, a daemon."""
    sim = sim_of(lab, [guest(VM, "victim", **IDLE)] + list(guests or []), faults=faults or [])
    r = dict(REAP)
    r.update(reap)
    cfg = lab.config(sim, observe=OBSERVE, reap=r, api=api)
    d = lab.daemon(cfg, env=env, wrap=wrap)
    return sim, cfg, d


def call(name, **fault):
    method, path = WRITE_CALLS[name]
    return dict(fault, method=method, path=path)


def wait_state(lab, cfg, states, timeout=60):
    """Until an op of the victim is in one of `states`."""
    states = {states} if isinstance(states, str) else set(states)
    return wait_until(lambda: next((o for o in ops_by_vmid(lab, cfg, VM) if o["state"] in states), None),
                      timeout=timeout, interval=0.03,
                      message=lambda: "an op in %s; ops: %s" % (states, ops(lab, cfg)))


def finish(lab, sim, cfg, d, **kw):
    """A clean stop on SIGTERM, then the invariants."""
    assert d.stop() == 0, d.log()
    assert d.lines()[-1] == "proxreapd: received Terminated, stopping", d.log()
    check_invariants(lab, sim, cfg, **kw)


def reaped(lab, sim, cfg, vmid=VM):
    """The victim's fate: reaped, exactly one destroy after an archive."""
    op = wait_op(lab, cfg, vmid, {"reaped"}, timeout=90)
    assert sim.guest(vmid) is None
    assert [x["vmid"] for x in sim.history(event="destroy")].count(vmid) == 1
    assert op["volid"] and op["archive_size"] > 0
    return op


def kept(lab, sim, cfg, reason=None, tagged=True, vmid=VM):
    """The victim's fate: alive and running, its op aborted (reason matches
    the regex), tagged proxreap-failed."""
    op = wait_op(lab, cfg, vmid, {"aborted"}, timeout=90)
    g = sim.guest(vmid)
    assert g is not None and g["status"] == "running", g
    assert not [x for x in sim.history(event="destroy") if x["vmid"] == vmid]
    if reason:
        assert re.search(reason, op["reason"]), op
    if tagged:
        wait_until(lambda: "proxreap-failed" in (sim.guest(vmid).get("tags") or ""), timeout=10)
    return op


def untouched(sim, vmid=VM):
    g = sim.guest(vmid)
    assert g is not None and g["status"] == "running", g
    assert writes(sim, vmid) == [] or all(w.startswith("PUT ") for w in writes(sim, vmid))


# ---------------------------------------------------------------- connection refused

class Gate:
    """A TCP forwarder in front of the sim that can refuse connections: while
    shut, nothing listens on its port (connect() gets ECONNREFUSED). shut()
    also cuts the connections it carries; arm(request, nth) shuts the port
    for new connections only, as the answer to the nth request whose line
    starts with `request` comes back (before the client has it)."""

    def __init__(self, port):
        self.target = port
        self.lock = threading.Lock()
        self.conns = []
        self.listener = None
        self.port = 0
        self.trigger = None
        self.tripped = threading.Event()
        self.open()

    def open(self):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", self.port))
        s.listen(16)
        self.port = s.getsockname()[1]
        with self.lock:
            self.listener = s
        threading.Thread(target=self._accept, args=(s,), daemon=True).start()

    def refuse(self):
        with self.lock:
            # shutdown() first: close() alone leaves the socket listening
            # while the accept thread sits in accept(2).
            try:
                self.listener.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self.listener.close()

    def shut(self):
        self.refuse()
        with self.lock:
            for c in self.conns:
                try:
                    c.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                c.close()
            self.conns = []

    def arm(self, request, nth=1):
        self.seen = 0
        self.nth = nth
        self.trigger = request.encode()

    def _accept(self, s):
        while True:
            try:
                a, _ = s.accept()
            except OSError:
                return
            try:
                b = socket.create_connection(("127.0.0.1", self.target))
            except OSError:
                a.close()
                continue
            with self.lock:
                self.conns += [a, b]
            threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, a, b):
        marked = False
        try:
            while True:
                r, _, _ = select.select([a, b], [], [], 1.0)
                for s in r:
                    data = s.recv(65536)
                    if not data:
                        return
                    if s is a and self.trigger and data.startswith(self.trigger):
                        self.seen += 1
                        marked = self.seen == self.nth
                    elif s is b and marked:
                        self.trigger = None
                        marked = False
                        self.refuse()
                        self.tripped.set()
                    (b if s is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            for s in (a, b):
                try:
                    s.close()
                except OSError:
                    pass


def gated(lab, durations):
    sim = sim_of(lab, [guest(VM, "victim", **IDLE)], task_durations=dict(FAST, **durations))
    gate = Gate(sim.port)
    cfg = lab.config(url="http://127.0.0.1:%d" % gate.port, observe=OBSERVE, reap=REAP,
                     api={"retries": 0, "connect_timeout": "500ms", "timeout": "2s"})
    return sim, gate, cfg


def test_connection_refused_while_a_task_runs(lab):
    """Nothing listens on the API port for a while during the archive
    task: polls and task checks fail, the saga waits, then finishes."""
    sim, gate, cfg = gated(lab, {"vzdump": 2.0})
    d = lab.daemon(cfg)
    wait_state(lab, cfg, "archive")
    gate.shut()
    d.wait_log(r"cannot poll the Proxmox API: GET /cluster/resources\?type=vm: .*Couldn't connect")
    d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 5, what="5 failed polls")
    gate.open()
    d.wait_log(r"^proxreapd: Proxmox API reachable again after \d+ failed polls$")
    reaped(lab, sim, cfg)
    assert writes(sim, VM) == SAGA
    healthy(d)
    finish(lab, sim, cfg, d)


def test_connection_refused_on_the_destroy_call(lab):
    """The DELETE cannot connect: it provably never reached the server, so
    this process may send it again (checked like the first) once the port
    answers - one destroy in the end."""
    sim, gate, cfg = gated(lab, {"vzdump": 1.0})
    d = lab.daemon(cfg)
    wait_state(lab, cfg, "archive")
    # verify reads the config, then destroy's last check before the DELETE
    gate.arm("GET /api2/json/nodes/pve1/qemu/101/config", nth=2)
    d.wait_log(r"destroy of guest 101: no answer \(DELETE .*Couldn't connect.*\), checking the server")
    assert gate.tripped.is_set()
    gate.open()
    d.wait_log(r"the destroy call never reached the server \(no connection\), sending it again")
    reaped(lab, sim, cfg)
    assert writes(sim, VM) == SAGA
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- accepted but silent

def test_silent_server_mid_saga(lab):
    """Every request is accepted and never answered for a while, in the
    middle of the archive step: api.timeout ends each call, the saga waits
    and goes on when answers come back."""
    sim, cfg, d = start(lab, api={"retries": 0, "timeout": "300ms"})
    wait_state(lab, cfg, "archive")
    sim.fault(kind="hang")
    d.wait_log(r"cannot poll the Proxmox API: .*Operation timed out")
    d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 4, what="4 failed polls")
    sim.clear_faults()
    reaped(lab, sim, cfg)
    assert writes(sim, VM) == SAGA
    healthy(d)
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("name", ["shutdown", "snapshot", "vzdump", "destroy"])
def test_silent_server_on_a_write_call(lab, name):
    """The call is accepted and never answered (the server did not act):
    the daemon finds no task and sends it again under a new intent - except
    a destroy, which is never sent twice: the guest is started again and
    kept, with its archive."""
    sim, cfg, d = start(lab, api={"timeout": "300ms"}, faults=[call(name, kind="hang", count=1)])
    if name == "destroy":
        op = kept(lab, sim, cfg, reason="the destroy call got no answer and no destroy task exists")
        assert op["volid"]
        assert [w for w in writes(sim, VM) if w.startswith("DELETE")] == [SAGA[3]]
    else:
        reaped(lab, sim, cfg)
        method, path = WRITE_CALLS[name]
        sent = [w for w in writes(sim) if w.startswith(method) and re.search(path, w.split(" ")[1])]
        assert len(sent) == 2, writes(sim)
        d.wait_log(r"the %s call never reached the server, sending it again" %
                   {"vzdump": "archive"}.get(name, name))
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- 1 byte/s

def test_trickle_on_the_poll(lab):
    sim, cfg, d = start(lab, api={"retries": 0, "timeout": "500ms"}, mode="observe")
    d.wait_polls(3)
    sim.fault(kind="trickle", rate=1, path="^/cluster/resources$", count=3)
    d.wait_log(r"cannot poll the Proxmox API: GET /cluster/resources\?type=vm: Operation timed out")
    d.wait_log(r"^proxreapd: Proxmox API reachable again after 3 failed polls$")
    healthy(d)
    untouched(sim)
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("name", CALLS)
def test_trickle_on_a_write_call(lab, name):
    """The server acts, its answer comes at 1 byte/s: the call times out
    and is resolved like a lost answer - the task is found, nothing is sent
    twice."""
    grace = "1s" if name == "tag" else "0"
    sim, cfg, d = start(lab, api={"timeout": "500ms"}, grace=grace,
                        faults=[call(name, kind="trickle", rate=1, count=1)])
    reaped(lab, sim, cfg)
    method, path = WRITE_CALLS[name]
    sent = [w for w in writes(sim, VM) if w.startswith(method) and re.search(path, w.split(" ")[1])]
    assert len(sent) == 1, writes(sim, VM)
    if name == "tag":
        d.wait_log(r"cannot mark guest 101 idle: .*Operation timed out")
    else:
        d.wait_log(r"no answer \(.*Operation timed out.*\), checking the server")
        d.wait_log(r"found the \w+ task the server started")
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- 500 / 503

def test_503_on_every_get_mid_saga(lab):
    """pveproxy answers 503 to every GET for a while (task status, checks,
    storage content): the saga waits, nothing is decided on an error."""
    sim, cfg, d = start(lab, api={"retries": 0})
    wait_state(lab, cfg, "archive")
    sim.fault(kind="status", code=503, message="Service Unavailable", method="GET")
    d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 5, what="5 failed polls")
    sim.clear_faults()
    reaped(lab, sim, cfg)
    assert writes(sim, VM) == SAGA
    healthy(d)
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("name,code", [("shutdown", 500), ("snapshot", 500), ("vzdump", 500),
                                       ("destroy", 500), ("tag", 503)])
def test_server_error_on_a_write_call(lab, name, code):
    """An error status of Proxmox VE's own is a refusal (the server did not
    act): the step fails, the guest is started again and kept; a refused tag
    is retried at the next poll."""
    grace = "1s" if name == "tag" else "0"
    msg = "got unexpected error" if code == 500 else "Service Unavailable"
    sim, cfg, d = start(lab, grace=grace, retry_after="1h",
                        faults=[call(name, kind="status", code=code, message=msg, count=1)])
    if name == "tag":
        d.wait_log(r"cannot mark guest 101 idle: .*HTTP %d %s" % (code, msg))
        reaped(lab, sim, cfg)
    else:
        op = kept(lab, sim, cfg, reason="HTTP %d %s" % (code, msg))
        assert len(ops_by_vmid(lab, cfg, VM)) == 1, "retry_after: not tried again"
        if name == "destroy":
            assert op["volid"], "the verified archive stays on record"
    healthy(d)
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("code", [502, 596])
def test_proxy_error_on_a_write_call_is_no_refusal(lab, code):
    """A proxy's error instead of Proxmox's answer (pveproxy forwarding to
    another node: 596; api.proxy: 502) says nothing of whether the server
    acted: the archive call is resolved like a lost answer (its task looked
    for, then sent again), never taken for a refusal; the destroy call is
    never sent again."""
    sim, cfg, d = start(lab, retry_after="1h",
                        faults=[call("vzdump", kind="status", code=code, message="proxy: gone", count=1),
                                call("destroy", kind="status", code=code, message="proxy: gone", count=1)])
    op = wait_op(lab, cfg, VM, {"reaped", "aborted"})
    assert op["state"] == "aborted", op
    assert "not sending it again" in op["reason"], op
    assert d.count(r"archive of guest %d: no answer \(.*HTTP %d proxy: gone\), checking the server" % (VM, code)) == 1
    assert len([r for r in sim.requests() if r["method"] == "DELETE"]) == 1
    wait_until(lambda: (sim.guest(VM) or {}).get("status") == "running", timeout=30)
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- 401 / 403

def test_token_revoked_mid_saga(lab):
    """The token is revoked while the archive runs and restored later: no
    step is decided on a 401; the saga waits and finishes once the token
    works again."""
    sim, cfg, d = start(lab, api={"retries": 0})
    wait_state(lab, cfg, "archive")
    sim.fault(kind="revoke")
    d.wait_log(r"cannot poll the Proxmox API: .*authentication failed \(HTTP 401")
    d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 5, what="5 failed polls")
    sim.clear_faults()
    reaped(lab, sim, cfg)
    assert writes(sim, VM) == SAGA
    healthy(d)
    finish(lab, sim, cfg, d)


@pytest.mark.parametrize("name,perm", [("vzdump", "/storage/local, Datastore.AllocateSpace"),
                                       ("destroy", "/vms/101, VM.Allocate")])
def test_permission_denied_on_one_step(lab, name, perm):
    msg = "Permission check failed (%s)" % perm
    sim, cfg, d = start(lab, retry_after="1h", faults=[call(name, kind="status", code=403, message=msg)])
    op = kept(lab, sim, cfg, reason=re.escape("HTTP 403 " + msg))
    assert bool(op["volid"]) == (name == "destroy")
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- task hangs

def test_snapshot_task_hangs_past_its_timeout(lab):
    """A task that never ends is stopped at reap.task_timeout and the guest
    is kept (a hung vzdump: test_reap.py::
    test_failure_leaves_guest_alive_or_archived[archive-hang])."""
    sim, cfg, d = start(lab, task_timeout="2s", retry_after="1h",
                        faults=[{"kind": "task_hang", "type": "^qmsnapshot$", "count": 1}])
    op = kept(lab, sim, cfg, reason="the task ran longer than allowed")
    assert "its snapshot is kept" not in op["reason"] or op["reason"]
    assert len(sim.history(event="task-abort")) == 1
    healthy(d)
    finish(lab, sim, cfg, d)


def test_destroy_task_hang_is_followed_until_stopped(lab):
    """A destroy is never interrupted half-way: a hung one is followed past
    task_timeout (the daemon keeps polling) until someone stops it; then
    the guest is kept, its archive on record."""
    sim, cfg, d = start(lab, task_timeout="1s", retry_after="1h",
                        faults=[{"kind": "task_hang", "type": "^qmdestroy$", "count": 1}])
    wait_state(lab, cfg, "destroy")
    task = wait_until(lambda: next((t for t in sim.tasks(type="qmdestroy") if t["status"] == "running"),
                                   None))
    # Not a fixed sleep: wait until the daemon has judged the running task
    # past task_timeout (1 s, counted in whole seconds from the intent,
    # which came before `seen`). A status check of the task that reaches
    # the simulator 2.5 s after `seen` was sent past it; a few polls later
    # (they run on the saga's thread) its answer has been judged.
    seen = sim.time()["t"]
    status_path = "/nodes/pve1/tasks/%s/status" % task["upid"]
    wait_until(lambda: any(r["method"] == "GET" and r["path"] == status_path and r["t"] >= seen + 2.5
                           for r in sim.requests()),
               timeout=60, message=lambda: "a status check of the destroy task past task_timeout; "
               "log:\n" + d.log())
    healthy(d)
    assert ops_by_vmid(lab, cfg, VM)[0]["state"] == "destroy"
    assert not sim.history(event="task-abort"), "a destroy task was stopped by the daemon"
    assert sim.task(task["upid"])["status"] == "running"
    # The operator stops the task in the web UI.
    r = sim.api("DELETE", "/nodes/pve1/tasks/%s" % task["upid"])
    assert r.status == 200, r
    op = wait_op(lab, cfg, VM, {"aborted", "reaped"})
    assert op["state"] == "aborted" and op["volid"], op
    assert sim.guest(VM) is not None
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- lost reply

def test_lost_reply_on_the_tag_put(lab):
    """The other write calls: test_reap.py::test_lost_reply_after_the_server_acted."""
    sim, cfg, d = start(lab, grace="1s", faults=[call("tag", kind="lost_reply", count=1)])
    d.wait_log(r"cannot mark guest 101 idle: ")
    reaped(lab, sim, cfg)
    puts = [w for w in writes(sim, VM) if w.startswith("PUT")]
    assert len(puts) == 1, "the tag was set: not sent again"
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- bad JSON

BAD = [
    ("malformed", {}),
    ("truncate", {"bytes": 60}),
    ("duplicate_keys", {"key": "size", "value": 1}),
    # A number sent as a numeric string is the same number (Perl does
    # that); anything else is no size.
    ("wrong_type", {"key": "size", "value": "3.2 GiB"}),
    ("oversize", {"size_mb": 2}),
]


@pytest.mark.parametrize("kind,spec", BAD, ids=[b[0] for b in BAD])
def test_bad_answer_mid_saga(lab, kind, spec):
    """The answers the saga decides on (task status, storage content) come
    back broken a few times: never acted on, asked again."""
    sim, cfg, d = start(lab, api={"retries": 0, "max_response_mb": 1})
    wait_state(lab, cfg, "shutdown")
    path = r"/storage/local/content$" if kind in ("duplicate_keys", "wrong_type") \
        else r"/(storage/local/content|tasks/[^/]+/status)$"
    fid = sim.fault(kind=kind, path=path, method="GET", count=3, **spec)
    reaped(lab, sim, cfg)
    assert [f for f in sim.faults() if f["id"] == fid][0]["hits"] == 3
    assert writes(sim, VM) == SAGA
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- the guest changes

def test_config_changed_before_the_first_step(lab):
    """The configuration changes between selection and the shutdown: the
    re-check calls the reap off before anything is sent."""
    sim, cfg, d = start(lab)
    d.wait_polls(3)
    # Selection reads the archive storage's status last: hold that call and
    # change the guest's configuration meanwhile.
    fid = sim.fault(kind="delay", seconds=1.0, method="GET", path="/storage/local/status$", count=1)
    wait_until(lambda: sim.faults()[0]["hits"] == 1, message="selection in progress")
    assert sim.faults()[0]["id"] == fid
    sim.event(VM, "set", field="maxmem", value=4 << 30)
    op = wait_op(lab, cfg, VM, {"aborted"})
    assert op["reason"] == ("its configuration changed since it was selected: "
                            "'memory' is '2048' when selected and '4096' now"), op
    first = ops_by_vmid(lab, cfg, VM)[0]
    assert first["state"] == "aborted"
    r = lab.cli("journal", "show", first["id"], "--json", config=cfg)
    assert [x["ev"] for x in json.loads(r.stdout)] == ["selected", "aborted"]
    # Nothing changed, so no retry delay: selected again with the new
    # configuration, and reaped.
    reaped(lab, sim, cfg)
    healthy(d)
    finish(lab, sim, cfg, d)


def test_config_changed_before_destroy(lab):
    """The configuration changes after the archive was verified (a disk
    added, memory changed): the archive no longer holds the guest, so it is
    not destroyed."""
    sim = sim_of(lab, [guest(VM, "victim", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, retry_after="1h"))
    d = lab.daemon(cfg, env={"PROXREAP_CRASH_AT": "verify-done"})
    wait_until(lambda: not d.running(), timeout=60, message="the crash after verify")
    d.returncode = d.proc.returncode
    sim.event(VM, "set", field="maxmem", value=4 << 30)
    d2 = lab.daemon(cfg)
    op = wait_op(lab, cfg, VM, {"aborted", "reaped"})
    assert op["state"] == "aborted" and "configuration changed" in op["reason"], op
    assert sim.guest(VM) is not None and not sim.history(event="destroy")
    healthy(d2)
    finish(lab, sim, cfg, d2)


def test_guest_migrated_mid_saga(lab):
    """The guest moves to another node while its snapshot call is on the
    way: the call fails on the old node, the reap is abandoned, and the
    guest is started again where it is now."""
    sim, cfg, d = start(lab, retry_after="1h",
                        faults=[call("snapshot", kind="delay", seconds=1.0, count=1)])
    wait_until(lambda: [f for f in sim.faults() if f["kind"] == "delay"][0]["hits"] == 1,
               timeout=60, message="the snapshot call")
    sim.event(VM, "migrate", node="pve2")
    op = wait_op(lab, cfg, VM, {"aborted", "reaped"})
    assert op["state"] == "aborted", op
    wait_until(lambda: sim.guest(VM)["status"] == "running", message="started again on pve2")
    g = sim.guest(VM)
    assert g is not None and g["node"] == "pve2"
    assert "POST /nodes/pve2/qemu/%d/status/start" % VM in writes(sim, VM)
    assert not sim.history(event="destroy")
    healthy(d)
    finish(lab, sim, cfg, d)


def test_archive_storage_fills_mid_saga(lab):
    """The storage had room at selection and is full when vzdump writes
    (the check before selection: test_reap.py::
    test_failure_leaves_guest_alive_or_archived[archive-full])."""
    sim, cfg, d = start(lab, retry_after="1h")
    wait_state(lab, cfg, "shutdown")
    sim.fault(kind="storage_full", storage="local", count=1)
    op = kept(lab, sim, cfg, reason="job errors")
    assert not op["volid"]
    assert sim.history(event="backup-failed")
    healthy(d)
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- the journal's disk

class Namespace:
    """A private mount namespace (held by a sleeping process) with a small
    tmpfs: the daemon and the CLI run inside it, the test reaches its files
    through /proc/PID/root. Gone with the holder."""

    def __init__(self, lab, size_kb):
        self.dir = os.path.join(lab.dir, "jdir")
        os.mkdir(self.dir)
        self.holder = subprocess.Popen(["unshare", "-m", "--propagation", "private", "sleep", "3600"])
        wait_until(lambda: os.readlink("/proc/%d/ns/mnt" % self.holder.pid) !=
                   os.readlink("/proc/self/ns/mnt"), timeout=10)
        subprocess.run(self.enter() + ["mount", "-t", "tmpfs", "-o", "size=%dk" % size_kb, "tmpfs",
                                       self.dir], check=True)

    def enter(self):
        return ["nsenter", "-t", str(self.holder.pid), "-m", "--"]

    def path(self, *parts):
        return "/proc/%d/root%s" % (self.holder.pid, os.path.join(self.dir, *parts))

    def wrap(self, lab):
        w = self.enter()
        if os.environ.get("PROXREAP_SANDBOX") == "1":
            w += [os.path.join(REPO, "tests", "sandbox", "proxreap-sandbox"), "--rw", lab.dir,
                  "--rw", self.dir, "--ro", BUILD, "--"]
        return w

    def cli(self, *args, config=None):
        cmd = self.enter() + [PROXREAP] + (["-c", config] if config else []) + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)

    def fill(self):
        """Fill the tmpfs up to its last byte."""
        with open(self.path("filler"), "ab", buffering=0) as fh:
            for size in (65536, 4096, 1):
                try:
                    while True:
                        fh.write(b"\0" * size)
                except OSError:
                    pass

    def free(self):
        os.unlink(self.path("filler"))

    def close(self):
        self.holder.kill()
        self.holder.wait()


@pytest.fixture
def ns(lab):
    n = Namespace(lab, 256)
    yield n
    for d in lab.daemons:                   # stopped inside the namespace
        if d.returncode is None:
            d.stop()
    n.close()


def journal_failed(d):
    d.wait_log(r"^proxreapd: error: journal '.*' cannot be written: cannot append to journal "
               r"'.*': .*(No space left on device|Input/output error|short write).*; all "
               r"destructive work has stopped \(fix the disk, then restart proxreapd\)$")


@pytest.mark.parametrize("when", ["before-selection", "mid-saga"])
def test_journal_disk_full(lab, ns, when):
    """The journal's file system fills up: no step whose intent is not on
    record is taken, the daemon says so, keeps observing and reaps nothing
    more; after space is freed a restart finishes or compensates the
    op."""
    sim = sim_of(lab, [guest(VM, "victim", **IDLE), guest(102, "second", **IDLE)])
    journal = os.path.join(ns.dir, "journal")
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, journal=journal))
    ns.cli("journal", "list", config=cfg)              # creates the journal
    if when == "before-selection":
        ns.fill()
    d = lab.daemon(cfg, wrap=ns.wrap(lab))
    if when == "mid-saga":
        wait_until(lambda: any(r.get("ev") == "intent" and r.get("step") == "archive"
                               for r in journal_records(ns.path("journal"))),
                   timeout=60, interval=0.03, message="the archive step")
        ns.fill()
    journal_failed(d)
    calls = writes(sim)
    healthy(d)
    assert writes(sim) == calls, "nothing is sent once the journal cannot be written"
    assert sim.guest(102) is not None and sim.guest(102)["status"] == "running"
    r = ns.cli("journal", "verify", config=cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    if when == "before-selection":
        assert ns.cli("journal", "list", "--json", config=cfg).stdout.strip() == "[]"
        untouched(sim)
        untouched(sim, 102)
    assert d.stop() == 0
    # Space again: a restart goes on from the journal.
    ns.free()
    d2 = lab.daemon(cfg, wrap=ns.wrap(lab))
    wait_until(lambda: sim.guest(102) is None and sim.guest(VM) is None, timeout=90, interval=0.2,
               message=lambda: "both guests reaped; log:\n" + d2.log())
    healthy(d2)
    assert d2.stop() == 0
    check_invariants(lab, sim, cfg, cli=lambda *a, config=None: ns.cli(*a, config=config),
                     journal=ns.path("journal"))


# Journal records of a reap, in order (fdatasync calls of the daemon).
RECORDS = ["selected", "shutdown-intent", "shutdown-task", "shutdown-done", "snapshot-intent",
           "snapshot-task", "snapshot-done", "archive-intent", "archive-task", "archive-done",
           "verify-done", "destroy-intent", "destroy-task", "destroy-done", "reaped"]


@pytest.mark.parametrize("record", ["selected", "shutdown-intent", "snapshot-done", "archive-intent",
                                    "verify-done", "destroy-intent", "destroy-done"])
def test_journal_sync_fails(lab, record):
    """fdatasync of one journal record fails with EIO (strace --inject):
    the daemon stops all destructive work at once - the step whose record
    failed is not taken -, keeps observing, and a restart (disk fixed)
    resolves what the journal says."""
    n = RECORDS.index(record) + 1
    wrap = ["strace", "-D", "-f", "-qq", "-o", "/dev/null", "-e", "trace=fdatasync",
            "-e", "inject=fdatasync:error=EIO:when=%d" % n]
    if os.environ.get("PROXREAP_SANDBOX") == "1":
        wrap += [os.path.join(REPO, "tests", "sandbox", "proxreap-sandbox"), "--rw", lab.dir,
                 "--ro", BUILD, "--"]
    # LeakSanitizer cannot attach to a traced process.
    env = {"ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":detect_leaks=0"}
    sim, cfg, d = start(lab, env=env, wrap=wrap, guests=[guest(102, "second", **IDLE)])
    journal_failed(d)
    assert d.count("Input/output error") >= 1
    calls = writes(sim)
    healthy(d)
    assert writes(sim) == calls, "nothing is sent once the journal failed"
    assert sim.guest(102) is not None
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 0, r.stdout + r.stderr
    assert d.stop() == 0
    check_invariants(lab, sim, cfg)
    # The disk is fixed: a restart resolves the op and goes on.
    d2 = lab.daemon(cfg)
    op = wait_op(lab, cfg, VM, {"reaped", "aborted"})
    if op["state"] == "aborted":
        g = sim.guest(VM)
        assert g is not None and g["status"] == "running", (op, g)
    wait_until(lambda: sim.guest(102) is None, timeout=90, interval=0.2, message="the second guest reaped")
    healthy(d2)
    finish(lab, sim, cfg, d2)


# ---------------------------------------------------------------- the clock

# CLOCK_REALTIME of the daemon alone, moved by the number of seconds in a
# file, read at every call: what a step of the system clock (settimeofday,
# NTP) does to a process. CLOCK_MONOTONIC and timers are left alone.
# (libfaketime cannot do this: it shifts absolute CLOCK_MONOTONIC timerfd
# deadlines by its offset too, which makes timerfd_settime fail with EINVAL
# - no real clock step does that.)
CLOCK_SHIM = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static long shift(void)
{
        const char *f = getenv("PROXREAP_TEST_CLOCK_SHIFT_FILE");
        char buf[32];
        ssize_t n;
        int fd;

        if (!f || (fd = open(f, O_RDONLY | O_CLOEXEC)) < 0)
                return 0;
        n = read(fd, buf, sizeof(buf) - 1);
        close(fd);
        if (n <= 0)
                return 0;
        buf[n] = 0;
        return strtol(buf, NULL, 10);
}

int clock_gettime(clockid_t id, struct timespec *ts)
{
        static int (*real)(clockid_t, struct timespec *);
        int r;

        if (!real)
                real = (int (*)(clockid_t, struct timespec *))dlsym(RTLD_NEXT, "clock_gettime");
        r = real(id, ts);
        if (r == 0 && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE))
                ts->tv_sec += shift();
        return r;
}

time_t time(time_t *t)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        if (t)
                *t = ts.tv_sec;
        return ts.tv_sec;
}

int gettimeofday(struct timeval *tv, void *tz)
{
        struct timespec ts;

        (void)tz;
        clock_gettime(CLOCK_REALTIME, &ts);
        if (tv) {
                tv->tv_sec = ts.tv_sec;
                tv->tv_usec = ts.tv_nsec / 1000;
        }
        return 0;
}
"""
DAY = 86400


def clock_env(lab):
    """Build the shim; returns (shift file, daemon environment)."""
    src = os.path.join(lab.dir, "clockshift.c")
    so = os.path.join(lab.dir, "clockshift.so")
    with open(src, "w") as fh:
        fh.write(CLOCK_SHIM)
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", so, src, "-ldl"], check=True)
    shift = os.path.join(lab.dir, "clockshift")
    jump(shift, 0)
    env = {"LD_PRELOAD": so, "PROXREAP_TEST_CLOCK_SHIFT_FILE": shift,
           # ASan wants to be first; the shim only wraps three calls.
           "ASAN_OPTIONS": os.environ.get("ASAN_OPTIONS", "") + ":verify_asan_link_order=0"}
    return shift, env


def jump(shift, seconds):
    with open(shift + ".tmp", "w") as fh:
        fh.write("%d\n" % seconds)
    os.rename(shift + ".tmp", shift)


def daemon_clock_ahead(d, seconds):
    """Until the status file's time shows the daemon's clock `seconds` off."""
    def check(doc):
        t = time.mktime(time.strptime(doc["updated"], "%Y-%m-%dT%H:%M:%SZ")) - time.mktime(time.gmtime())
        return abs(t - seconds) < 600
    d.wait_status(check, what="the daemon's clock %+d s off" % seconds)


def poll_gaps(sim, since):
    ts = [r["t"] for r in sim.requests() if r["path"] == "/cluster/resources" and r["t"] >= since]
    return [b - a for a, b in zip(ts, ts[1:])]


def test_clock_jumps_a_day_forward_during_a_task(lab):
    """CLOCK_REALTIME jumps a day ahead while the archive task runs: no
    timer fires early - the task is not taken for overdue, polls keep their
    interval, the window keeps its samples."""
    shift, env = clock_env(lab)
    durations = dict(FAST, vzdump=2.0)
    sim = sim_of(lab, [guest(VM, "victim", **IDLE), guest(102, "busy", cpu=0.5, mem_mb=3000)],
                 task_durations=durations)
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, task_timeout="60s"))
    d = lab.daemon(cfg, env=env)
    wait_state(lab, cfg, "archive")
    t0 = sim.time()["t"]
    jump(shift, DAY)
    daemon_clock_ahead(d, DAY)
    op = reaped(lab, sim, cfg)
    jump(shift, 0)
    daemon_clock_ahead(d, 0)
    healthy(d, more=10)
    gaps = poll_gaps(sim, t0)
    assert len(gaps) >= 20 and max(gaps) < 2.0 and sum(gaps) / len(gaps) < 0.3, gaps
    doc = d.status()
    busy = [g for g in doc["guests"] if g["vmid"] == 102][0]
    assert busy["verdict"] == "active" and busy["coverage"] >= 0.9, busy
    assert "ran longer than allowed" not in d.log()
    assert op["state"] == "reaped"
    finish(lab, sim, cfg, d)


def test_clock_jumps_a_day_back_during_a_task(lab):
    """CLOCK_REALTIME jumps a day back while a task hangs: its
    reap.task_timeout still ends it on time, not a day later."""
    shift, env = clock_env(lab)
    sim = sim_of(lab, [guest(VM, "victim", **IDLE)],
                 faults=[{"kind": "task_hang", "type": "^vzdump$", "count": 1}])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, task_timeout="2s", retry_after="1h"))
    d = lab.daemon(cfg, env=env)
    wait_state(lab, cfg, "archive")
    t0 = sim.time()["t"]
    jump(shift, -DAY)
    daemon_clock_ahead(d, -DAY)
    op = kept(lab, sim, cfg, reason="the task ran longer than allowed")
    t1 = sim.time()["t"]
    assert t1 - t0 < 20, "the timeout took %.0f s" % (t1 - t0)
    jump(shift, 0)
    healthy(d, more=10)
    gaps = poll_gaps(sim, t0)
    assert len(gaps) >= 20 and max(gaps) < 2.0, gaps
    assert op["state"] == "aborted"
    finish(lab, sim, cfg, d)


# ---------------------------------------------------------------- signals during a step

# A step is "in progress" while one of its calls is held by a delay fault:
# (method, path of the held call, how to see the op got there).
STEP_CALLS = {
    "shutdown": ("POST", r"/qemu/101/status/shutdown$"),
    "snapshot": ("POST", r"/qemu/101/snapshot$"),
    "archive": ("POST", r"^/nodes/pve1/vzdump$"),
    "verify": ("GET", r"/storage/local/content$"),
    "destroy": ("DELETE", r"^/nodes/pve1/qemu/101$"),
}
SIGNAL_CASES = [(s, step) for s in ("SIGHUP", "SIGTERM") for step in STEP_CALLS
                # SIGTERM during shutdown, archive and destroy:
                # test_service.py::test_stop_during_a_step_finishes_and_records_it
                if not (s == "SIGTERM" and step in ("shutdown", "archive", "destroy"))]


@pytest.mark.parametrize("sig,step", SIGNAL_CASES, ids=["%s-%s" % c for c in SIGNAL_CASES])
def test_signal_during_a_step(lab, sig, step):
    """SIGHUP reloads between two whole steps and the saga goes on; SIGTERM
    lets the step in flight finish and be journaled, exits 0, and the next
    run goes on from there. Nothing is sent twice."""
    method, path = STEP_CALLS[step]
    sim, cfg, d = start(lab, faults=[{"kind": "delay", "seconds": 1.0, "method": method,
                                      "path": path, "count": 1}])
    # The call is on the wire (held) once the simulator took the fault.
    wait_until(lambda: sim.faults()[0]["hits"] == 1, timeout=60, interval=0.02,
               message="the %s call" % step)
    d.signal(getattr(signal, sig))
    if sig == "SIGHUP":
        d.wait_log(r"^proxreapd: configuration reloaded from ")
        reaped(lab, sim, cfg)
        healthy(d)
        assert writes(sim, VM) == SAGA
        finish(lab, sim, cfg, d)
        return
    assert d.stop(timeout=30) == 0
    assert d.lines()[-1] == "proxreapd: received Terminated, stopping"
    check_invariants(lab, sim, cfg)
    d2 = lab.daemon(cfg)
    reaped(lab, sim, cfg)
    assert writes(sim, VM) == SAGA
    healthy(d2)
    finish(lab, sim, cfg, d2)


# ---------------------------------------------------------------- the document

def test_matrix_names_existing_tests():
    """Every test the matrix in docs/reliability.md names exists, and every
    test of this file is in the matrix."""
    with open(os.path.join(REPO, "docs", "reliability.md")) as fh:
        text = fh.read()
    rows = [line for line in text.splitlines() if line.startswith("| ") and "::" in line]
    assert len(rows) >= 30
    named = set()
    for row in rows:
        for f, name in re.findall(r"(test_\w+\.py)::(test_\w+)", row):
            with open(os.path.join(REPO, "tests", "system", f)) as fh:
                assert re.search(r"^def %s\(" % name, fh.read(), re.M), "%s::%s in the matrix" % (f, name)
            if f == "test_faults.py":
                named.add(name)
    with open(__file__) as fh:
        mine = set(re.findall(r"^def (test_\w+)\(", fh.read(), re.M))
    assert mine - named == {"test_matrix_names_existing_tests"}, mine - named
