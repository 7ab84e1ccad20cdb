"""Shared helpers for proxreap's system tests.

The tests drive the real binaries (proxreapd, proxreap) against the Proxmox
VE API simulator in tests/pve-sim. Binaries come from $PROXREAP_BUILD (an
absolute build directory, as `make check-system` sets it), by default
<repo>/build.

Main pieces:
  lab            fixture: a Lab (temporary directory, token file, simulators,
                 daemons, CLI runs); stops every daemon (asserting a clean
                 exit 0 on SIGTERM) and every simulator at teardown
  Lab.sim()      start a simulator from a list of guests
  Lab.config()   write a proxreap.conf for a simulator
  Lab.cli()      run `proxreap ...`, return the CompletedProcess
  Lab.plan()     run `proxreap plan --json`, return {vmid: guest}
  Lab.daemon()   start `proxreapd -f` (stderr to a file) -> Daemon
  Notify         an sd_notify receiver (NOTIFY_SOCKET) on a thread
  wait_until()   poll a predicate until it holds or a timeout expires

Every output a test gets from the binaries (stdout, stderr, daemon logs,
status files) is checked for the token secrets: they must never appear.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.normpath(os.path.join(HERE, "..", ".."))
SIM_DIR = os.path.join(REPO, "tests", "pve-sim")
BUILD = os.environ.get("PROXREAP_BUILD") or os.path.join(REPO, "build")
PROXREAPD = os.path.join(BUILD, "proxreapd")
PROXREAP = os.path.join(BUILD, "proxreap")
# The upstream version, as the Makefile gives it to the binaries.
with open(os.path.join(REPO, "Makefile")) as _makefile:
    VERSION = re.search(r"^VERSION\s*=\s*(\S+)", _makefile.read(), re.M).group(1)

if SIM_DIR not in sys.path:
    sys.path.insert(0, SIM_DIR)

from simctl import Sim, make_test_ca  # noqa: E402,F401  (re-exported for the tests)

MIB = 1048576
TOKEN_ID = "proxreap@pve!reaper"
# Distinctive values: any occurrence in an output is a leak.
SECRET = "c0ffee42-5ec7-4e7a-b1d5-0123456789ab"
WRONG_SECRET = "deadbeef-0bad-4bad-8bad-feedfacecafe"
SECRETS = (SECRET, WRONG_SECRET)

# Timeouts are generous (the ASan build on a loaded 2-core box is slow);
# wait_until() returns as soon as its predicate holds, so they cost nothing
# when things work.
TIMEOUT = float(os.environ.get("PROXREAP_TEST_TIMEOUT", "30"))


def wait_until(predicate, timeout=TIMEOUT, interval=0.02, message=None):
    """Call predicate() until it returns a truthy value; return that value.
    Fail the test with `message` (or the predicate's name) on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            what = message() if callable(message) else message
            pytest.fail("timed out after %.1fs waiting for %s" %
                        (timeout, what or getattr(predicate, "__name__", "a condition")))
        time.sleep(interval)


def assert_no_secret(text, where):
    """No token secret, and no sanitizer report, in an output."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    text = text or ""
    for s in SECRETS:
        assert s not in text, "a token secret leaked into %s" % where
    for marker in ("Sanitizer", "runtime error:"):
        assert marker not in text, "sanitizer report in %s:\n%s" % (where, text)


# ---------------------------------------------------------------- scenarios

def guest(vmid, name=None, cpu=0.01, mem_mb=300, **kw):
    """A running guest with a constant workload (cpu fraction, MiB)."""
    g = {"vmid": vmid, "type": "qemu", "node": "pve1",
         "workload": {"kind": "constant", "cpu": cpu, "mem_mb": mem_mb}}
    if name is not None:
        g["name"] = name
    g.update(kw)
    return g


def scenario(guests, **over):
    sc = {"nodes": ["pve1", "pve2"], "tokens": {TOKEN_ID: SECRET}, "auth_fail_delay": 0,
          "stats_period": 0.1, "guests": list(guests)}
    sc.update(over)
    return sc


# ---------------------------------------------------------------- config files

def conf_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(conf_value(x) for x in v) + "]"
    raise TypeError("cannot write %r to a config file" % (v,))


def render_config(groups):
    """libconfig text from {group: {key: value}}; a None value omits the key."""
    out = []
    for group, keys in groups.items():
        if keys is None:
            continue
        out.append("%s = {" % group)
        for k, v in keys.items():
            if v is not None:
                out.append("        %s = %s;" % (k, conf_value(v)))
        out.append("};")
    return "\n".join(out) + "\n"


def line_of(text, needle):
    """1-based number of the first line of text containing needle."""
    for i, line in enumerate(text.splitlines(), 1):
        if needle in line:
            return i
    raise AssertionError("%r not in config text" % needle)


# ---------------------------------------------------------------- sd_notify

class DatagramSink:
    """Binds a unix datagram socket at path and collects every datagram,
    passed through decode(), on a thread."""

    def __init__(self, path, decode):
        self.path = path
        self.decode = decode
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.settimeout(0.05)
        self._msgs = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            try:
                data = self.sock.recv(1 << 20)
            except socket.timeout:
                continue
            except OSError:
                break
            with self._lock:
                self._msgs.append(self.decode(data))

    def received(self):
        with self._lock:
            return list(self._msgs)

    def close(self):
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


class Notify(DatagramSink):
    """An sd_notify receiver for NOTIFY_SOCKET: each message split into its
    KEY=VALUE lines."""

    def __init__(self):
        # A short path: sockaddr_un holds at most 108 bytes.
        self.dir = tempfile.mkdtemp(prefix="prn-", dir="/tmp")
        super().__init__(os.path.join(self.dir, "notify"),
                         lambda data: data.decode("utf-8", "replace").split("\n"))

    def messages(self):
        """Every message so far, as lists of lines."""
        return [list(m) for m in self.received()]

    def lines(self):
        return [line for m in self.messages() for line in m if line]

    def count(self, line):
        return sum(1 for x in self.lines() if x == line)

    def statuses(self):
        return [x[len("STATUS="):] for x in self.lines() if x.startswith("STATUS=")]

    def close(self):
        super().close()
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- the daemon

class Daemon:
    def __init__(self, lab, config, notify=None, env=None, args=("-f",), wrap=None):
        self.lab = lab
        self.config = config
        self.status_file = lab.status_file_of(config)
        self.log_file = os.path.join(lab.dir, "proxreapd-%d.log" % len(lab.daemons))
        e = dict(os.environ)
        for k in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID", "CREDENTIALS_DIRECTORY"):
            e.pop(k, None)
        if notify is not None:
            e["NOTIFY_SOCKET"] = notify.path
        e.update(env or {})
        self._err = open(self.log_file, "wb")
        cmd = [PROXREAPD, "-c", config] + list(args)
        if wrap:
            # A tool running the daemon (valgrind): outside the sandbox, whose
            # seccomp filter a tool's own system calls would trip. The pid
            # is the tool's, which passes signals on.
            cmd = list(wrap) + cmd
        elif os.environ.get("PROXREAP_SANDBOX") == "1":
            # Under the unit's restrictions (tests/sandbox/proxreap-sandbox),
            # the lab directory standing in for /var/lib/proxreap and
            # /run/proxreap. The launcher execs the daemon: the pid is its.
            cmd = [os.path.join(REPO, "tests", "sandbox", "proxreap-sandbox"), "--rw", lab.dir,
                   "--ro", BUILD,
                   "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL,
                                     stdout=self._err, stderr=subprocess.STDOUT, env=e)
        self.pid = self.proc.pid
        self.returncode = None

    # -- output
    def log(self):
        with open(self.log_file, "rb") as fh:
            return fh.read().decode("utf-8", "replace")

    def lines(self):
        return self.log().splitlines()

    def count(self, pattern):
        rx = re.compile(pattern)
        return sum(1 for line in self.lines() if rx.search(line))

    def wait_log(self, pattern, count=1, timeout=TIMEOUT):
        """Wait until `count` log lines match the regex; return the matches."""
        rx = re.compile(pattern)

        def found():
            hits = [line for line in self.lines() if rx.search(line)]
            if len(hits) >= count:
                return hits
            self.assert_running()
            return None
        return wait_until(found, timeout, message=lambda: "log line %r; log:\n%s" % (pattern, self.log()))

    # -- status file
    def status(self):
        try:
            with open(self.status_file) as fh:
                return json.load(fh)
        except FileNotFoundError:
            return None

    def wait_status(self, predicate, timeout=TIMEOUT, what="a status"):
        """Wait for a status document for which predicate(doc) holds."""
        def check():
            doc = self.status()
            if doc is not None and predicate(doc):
                return doc
            self.assert_running()
            return None
        return wait_until(check, timeout, interval=0.02,
                          message=lambda: "%s; last status: %s\nlog:\n%s" %
                          (what, json.dumps(self.status(), indent=1), self.log()))

    def wait_polls(self, n, timeout=TIMEOUT):
        """Wait until the daemon has made n polls (ok + failed) in total."""
        return self.wait_status(lambda d: d["api"]["polls_ok"] + d["api"]["polls_failed"] >= n,
                                timeout, what="%d polls" % n)

    # -- process
    def running(self):
        return self.proc.poll() is None

    def assert_running(self):
        if self.proc.poll() is not None:
            pytest.fail("proxreapd exited with status %s; log:\n%s" % (self.proc.returncode, self.log()))

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=TIMEOUT):
        """SIGTERM; return the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.returncode = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            pytest.fail("proxreapd did not stop within %.0fs of SIGTERM; log:\n%s" % (timeout, self.log()))
        finally:
            self._err.close()
        return self.returncode

    def check_outputs(self):
        assert_no_secret(self.log(), "the daemon log")
        try:
            with open(self.status_file, "rb") as fh:
                assert_no_secret(fh.read(), "the status file")
        except FileNotFoundError:
            pass


# ---------------------------------------------------------------- the lab

class Lab:
    def __init__(self, tmp_path):
        self.dir = str(tmp_path)
        self.sims = []
        self.daemons = []
        self.notifies = []
        self.token_file = self.secret_file("token", SECRET)
        self.configs = {}

    def secret_file(self, name, secret, mode=0o600):
        path = os.path.join(self.dir, name)
        with open(path, "w") as fh:
            fh.write(secret + "\n")
        os.chmod(path, mode)
        return path

    # -- simulators
    def sim(self, guests, tls=False, **over):
        s = Sim(scenario(guests, **over), tls=tls, workdir=os.path.join(self.dir, "sim%d" % len(self.sims)))
        self.sims.append(s)
        s.start()
        return s

    # -- configuration
    def config(self, sim=None, name="proxreap.conf", url=None, api=None, observe=None, idle=None,
               select=None, reap=None, status=None, extra=None):
        """Write a config for sim; the group dicts override the defaults
        (a None value removes a key). Returns the path."""
        groups = {
            "api": {"url": url or (sim.url if sim else "http://127.0.0.1:9"), "token_id": TOKEN_ID,
                    "token_secret_file": self.token_file},
            "observe": {"interval": "100ms", "window": "2s", "nodes": "all"},
            "idle": {},
            "select": {},
            "reap": {"journal": os.path.join(self.dir, "journal")},
            "status": {"file": os.path.join(self.dir, os.path.splitext(name)[0] + "-status.json")},
        }
        if sim is not None and sim.tls:
            groups["api"]["ca_file"] = sim.ca_file
        for gname, over in (("api", api), ("observe", observe), ("idle", idle), ("select", select),
                            ("reap", reap), ("status", status)):
            groups[gname].update(over or {})
        for gname in list(groups):
            if not groups[gname]:
                del groups[gname]
        text = render_config(groups) + (extra or "")
        path = os.path.join(self.dir, name)
        with open(path, "w") as fh:
            fh.write(text)
        self.configs[path] = groups
        return path

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as fh:
            fh.write(text)
        return path

    def status_file_of(self, config):
        groups = self.configs.get(config)
        if groups and "status" in groups:
            return groups["status"]["file"]
        return os.path.join(self.dir, "status.json")

    # -- the CLI
    def cli(self, *args, config=None, timeout=120, env=None):
        cmd = [PROXREAP] + (["-c", config] if config else []) + list(args)
        e = dict(os.environ)
        e.pop("CREDENTIALS_DIRECTORY", None)
        e.update(env or {})
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
                           env=e)
        assert_no_secret(r.stdout, "the stdout of %s" % " ".join(args))
        assert_no_secret(r.stderr, "the stderr of %s" % " ".join(args))
        return r

    def cli_async(self, *args, config=None):
        """Start `proxreap ...`; returns a Popen with text stdout/stderr pipes."""
        cmd = [PROXREAP] + (["-c", config] if config else []) + list(args)
        return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                stdin=subprocess.DEVNULL)

    @staticmethod
    def finish(proc, timeout=120):
        out, err = proc.communicate(timeout=timeout)
        assert_no_secret(out, "the stdout of proxreap")
        assert_no_secret(err, "the stderr of proxreap")
        return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)

    def plan(self, config):
        """`proxreap plan --json` -> {vmid: guest object}; asserts exit 0."""
        r = self.cli("plan", "--json", config=config)
        assert r.returncode == 0, r.stderr
        return plan_by_vmid(r.stdout)

    # -- daemons and notify sockets
    def notify(self):
        n = Notify()
        self.notifies.append(n)
        return n

    def daemon(self, config, notify=None, env=None, args=("-f",), wrap=None):
        d = Daemon(self, config, notify, env, args, wrap)
        self.daemons.append(d)
        return d

    def close(self):
        problems = []
        try:
            for d in self.daemons:
                if d.returncode is None:
                    rc = d.stop()
                    if rc != 0:
                        problems.append("proxreapd exited with %s on SIGTERM; log:\n%s" % (rc, d.log()))
                d.check_outputs()
        finally:
            for s in self.sims:
                s.stop()
            for n in self.notifies:
                n.close()
        if problems:
            pytest.fail("\n".join(problems))


def plan_by_vmid(stdout):
    guests = json.loads(stdout)
    assert isinstance(guests, list)
    vmids = [g["vmid"] for g in guests]
    assert vmids == sorted(vmids), "plan --json is not sorted by vmid"
    return {g["vmid"]: g for g in guests}


def cluster_requests(sim):
    return [r for r in sim.requests() if r["path"] == "/cluster/resources"]


# ---------------------------------------------------------------- reap invariants

def journal_ops(lab, config, cli=None):
    """`proxreap journal list --json` -> {op id: op}. cli: a Lab.cli-like
    runner (default lab.cli)."""
    r = (cli or lab.cli)("journal", "list", "--json", config=config)
    assert r.returncode == 0, r.stderr
    return {o["id"]: o for o in json.loads(r.stdout)}


def journal_records(path):
    """Every record payload of a journal file, in order ([] if there is
    none). Only whole lines: a test may read while the daemon appends, and
    a line without its newline yet is a record still being written (a torn
    one, once the writer is gone, fails `journal verify` anyway)."""
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        return []
    return [json.loads(line)["rec"] for line in data.split(b"\n")[:-1] if line.strip()]


# Write calls of the saga -> the step whose intent must precede them.
SAGA_CALLS = ((re.compile(r"^POST /nodes/[^/]+/(qemu|lxc)/(\d+)/status/shutdown$"), "shutdown"),
              (re.compile(r"^POST /nodes/[^/]+/(qemu|lxc)/(\d+)/snapshot$"), "snapshot"),
              (re.compile(r"^POST /nodes/[^/]+/(qemu|lxc)/(\d+)/status/start$"), "start"),
              (re.compile(r"^DELETE /nodes/[^/]+/(qemu|lxc)/(\d+)$"), "destroy"))


def saga_calls(sim):
    """{(vmid, step): number of calls sent} for every write call of the
    saga in the request log (answered or not); vmid 0 for a vzdump call
    whose body was never read (a fault answered before it)."""
    out = {}
    for r in sim.requests():
        what = "%s %s" % (r["method"], r["path"])
        if r["method"] == "POST" and re.match(r"^/nodes/[^/]+/vzdump$", r["path"]):
            key = (int((r.get("body") or {}).get("vmid", 0)), "archive")
        else:
            key = next(((int(m.group(2)), step) for rx, step in SAGA_CALLS
                        for m in [rx.match(what)] if m), None)
        if key:
            out[key] = out.get(key, 0) + 1
    return out


def check_invariants(lab, sim, config, cli=None, journal=None, removed=(), earlier=()):
    """No destroy without a protected archive; at most one destroy per
    guest; every write call of the saga was announced by a journaled
    intent; the journal verifies; every op is terminal or resumable.
    cli/journal: another runner and journal path (a journal in a private
    mount namespace). removed: vmids the test deleted behind proxreap's
    back (a reap of one is done without a destroy of proxreap's).
    earlier: journals lost before this one (their intents count too)."""
    destroys = sim.history(event="destroy")
    seen = set()
    for d in destroys:
        assert d["vmid"] not in seen, "guest %d destroyed twice" % d["vmid"]
        seen.add(d["vmid"])
        assert any(a["protected"] and a["size"] > 0 for a in d["archives"]), \
            "guest %d destroyed without a protected archive: %s" % (d["vmid"], d)
    r = (cli or lab.cli)("journal", "verify", config=config)
    assert r.returncode == 0, r.stdout + r.stderr
    ops = journal_ops(lab, config, cli)
    for o in ops.values():
        assert o["state"] in ("reaped", "aborted", "restored", "selected", "shutdown", "snapshot",
                              "archive", "verify", "destroy", "aborting", "restoring"), o
        if o["state"] == "reaped":
            assert o["volid"] and o["archive_size"] > 0
            assert o["vmid"] in seen or o["vmid"] in removed
    # Never an action whose intent is not on record.
    path = journal or lab.configs[config]["reap"]["journal"]
    vmid_of = {o["id"]: o["vmid"] for o in ops.values()}
    records = [r for p in earlier for r in journal_records(p)] + list(journal_records(path))
    for rec in records:
        if rec.get("ev") == "selected":
            vmid_of.setdefault(rec["op"], rec["vmid"])
    intents = {}
    for rec in records:
        if rec.get("ev") == "intent" and rec.get("op") in vmid_of:
            key = (vmid_of[rec["op"]], rec["step"])
            intents[key] = intents.get(key, 0) + 1
    calls = saga_calls(sim)
    for key, n in calls.items():
        if key[0]:
            assert n <= intents.get(key, 0), \
                "guest %d: %d %s call(s) sent, %d intent(s) journaled" % (key[0], n, key[1],
                                                                      intents.get(key, 0))
    for step in {k[1] for k in calls}:
        sent = sum(n for k, n in calls.items() if k[1] == step)
        meant = sum(n for k, n in intents.items() if k[1] == step)
        assert sent <= meant, "%d %s call(s) sent, %d intent(s) journaled" % (sent, step, meant)


@pytest.fixture
def lab(tmp_path):
    for b in (PROXREAPD, PROXREAP):
        if not os.access(b, os.X_OK):
            pytest.fail("%s is missing: build first (make), or set PROXREAP_BUILD" % b)
    lb = Lab(tmp_path)
    try:
        yield lb
    finally:
        lb.close()
