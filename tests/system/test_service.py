"""proxreapd as a service: the Prometheus textfile, the webhook, the
structured journald fields, and a stop that arrives while a saga step is
on the wire.

The webhook receiver is a small HTTP server on 127.0.0.1 that records
every POST and answers as each test tells it (2xx, 500, or not at all for
a while). The journald fields are read back from the daemon's own
datagrams: the daemon runs in a mount namespace where a socket of this
test sits at /run/systemd/journal/socket, and the test decodes journald's
native protocol.
"""

import http.server
import json
import math
import os
import re
import signal
import struct
import subprocess
import threading
import time

import pytest

from conftest import PROXREAPD, VERSION, DatagramSink, guest, render_config, wait_until
from test_reap import IDLE, OBSERVE, REAP, check_invariants, ops, reap_config, sim_of, \
    wait_op, writes

MIB = 1048576


# ---------------------------------------------------------------- webhook sink

class Sink:
    """Records every POST; answers with `status`, after `delay` seconds."""

    def __init__(self, status=200, delay=0.0):
        self.status = status
        self.delay = delay
        self.posts = []
        self.lock = threading.Lock()
        sink = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n)
                with sink.lock:
                    sink.posts.append({"t": time.monotonic(), "path": self.path,
                                       "type": self.headers.get("Content-Type"), "body": body})
                time.sleep(sink.delay)
                try:
                    self.send_response(sink.status)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    pass

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = "http://127.0.0.1:%d/hook/T0KEN-in-the-url" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self):
        with self.lock:
            return [json.loads(p["body"]) for p in self.posts]

    def of(self, event):
        return [e for e in self.events() if e["event"] == event]

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink():
    s = Sink()
    yield s
    s.close()


def notify_text(**keys):
    return render_config({"notify": keys})


# ---------------------------------------------------------------- Prometheus parser

METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*\Z")
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*\Z")
SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)( -?\d+)?\Z")
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"(,|\Z)')


def parse_exposition(text):
    """Strict reading of the text exposition format 0.0.4, as node_exporter's
    textfile collector reads it: {name: {"type", "help", "samples":
    {labels-tuple: value}}}. Fails on anything malformed."""
    assert text.endswith("\n"), "the file must end in a newline"
    families, current = {}, None
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = "line %d: %r" % (n, line)
        assert line == line.strip() and line, "blank or padded " + where
        if line.startswith("# "):
            kind, name, rest = (line[2:].split(" ", 2) + [""])[:3]
            assert kind in ("HELP", "TYPE"), "unknown comment " + where
            assert METRIC_NAME.match(name), "bad metric name " + where
            fam = families.setdefault(name, {"type": None, "help": None, "samples": {}})
            assert not fam["samples"], "%s after the samples %s" % (kind, where)
            if kind == "TYPE":
                assert fam["type"] is None, "second TYPE " + where
                assert rest in ("counter", "gauge", "histogram", "summary", "untyped"), where
                fam["type"] = rest
            else:
                assert fam["help"] is None and rest, "second or empty HELP " + where
                fam["help"] = rest
            current = name
            continue
        assert not line.startswith("#"), "stray comment " + where
        m = SAMPLE.match(line)
        assert m, "malformed sample " + where
        name, labels_text, value = m.group(1), m.group(2), m.group(3)
        assert name == current, "sample of %s outside its family %s" % (name, where)
        labels = []
        if labels_text:
            body = labels_text[1:-1]
            pos = 0
            while pos < len(body):
                lm = LABEL.match(body, pos)
                assert lm, "malformed labels " + where
                labels.append((lm.group(1), lm.group(2)))
                pos = lm.end()
            assert len({k for k, _ in labels}) == len(labels), "repeated label " + where
        v = float(value)  # raises on anything but a Go-parsable float
        assert not math.isnan(v), where
        key = tuple(sorted(labels))
        samples = families[name]["samples"]
        assert key not in samples, "duplicate series " + where
        samples[key] = v
    for name, fam in families.items():
        assert fam["type"] and fam["help"], "%s lacks TYPE or HELP" % name
        assert fam["samples"], "%s has no samples" % name
        if fam["type"] == "counter":
            assert name.endswith("_total"), "counter %s must end in _total" % name
            assert all(v >= 0 for v in fam["samples"].values()), name
    return families


def value(families, name, **labels):
    return families[name]["samples"][tuple(sorted(labels.items()))]


def read_metrics(path):
    with open(path) as fh:
        text = fh.read()
    fams = parse_exposition(text)
    # And an independent reader: the Prometheus project's own Python parser.
    from prometheus_client.parser import text_string_to_metric_families
    theirs = {f.name: f for f in text_string_to_metric_families(text)}
    for name, fam in fams.items():
        base = name[:-len("_total")] if fam["type"] == "counter" else name
        assert base in theirs, "prometheus_client does not see %s" % name
    return fams


def test_parser_rejects_malformed_exposition():
    # The parser used below must be able to fail.
    good = "# HELP a_total A.\n# TYPE a_total counter\na_total 1\n"
    parse_exposition(good)
    for bad in ("a_total 1\n",                                          # no TYPE/HELP
                good + "a_total 2\n",                                   # duplicate series
                good.replace("a_total 1", "a_total one"),               # not a number
                good.replace("counter", "count"),                       # unknown type
                "# HELP a A.\n# TYPE a counter\na 1\n",                 # counter without _total
                good.replace("a_total 1", 'a_total{x="1} 1'),           # broken label
                good[:-1]):                                             # no final newline
        with pytest.raises((AssertionError, ValueError)):
            parse_exposition(bad)


def test_prometheus_textfile_counts_a_reap(lab, sink):
    sim = sim_of(lab, [guest(101, "vm-idle", maxmem=2048 * MIB, maxdisk=32 << 30, **IDLE),
                       guest(102, "busy", cpu=0.5, mem_mb=4000),
                       guest(103, "template", template=True, **IDLE)])
    prom = os.path.join(lab.dir, "proxreap.prom")
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP, status={"prometheus_file": prom},
                     extra=notify_text(webhook_url=sink.url))
    d = lab.daemon(cfg)
    wait_op(lab, cfg, 101, {"reaped"})
    # Written after every poll: wait for one that saw the reap, with the
    # busy guest's window full again (the saga's calls can cost a sample),
    # and judge that file. A later poll may find the window short again (a
    # tick skipped on a loaded machine leaves the busy guest's 1 s window
    # with too few samples), so the file is not read again after the stop.
    seen = []

    def reap_counted():
        f = read_metrics(prom)
        if (value(f, "proxreap_reaps_total") == 1 and
                value(f, "proxreap_guests", verdict="active") == 1 and
                value(f, "proxreap_webhook_events_total", result="sent") == 1):
            seen.append(f)
            return True
        return False

    wait_until(reap_counted, message="a metrics file with the reap")
    d.stop()
    fams = seen[-1]
    assert value(fams, "proxreap_info", version=VERSION, mode="reap") == 1
    assert value(fams, "proxreap_guests", verdict="active") == 1
    assert value(fams, "proxreap_guests", verdict="excluded") == 1
    assert value(fams, "proxreap_reaps_total") == 1
    assert value(fams, "proxreap_aborts_total") == 0
    assert value(fams, "proxreap_restores_total") == 0
    assert value(fams, "proxreap_reclaimed_memory_bytes_total") == 2048 * MIB
    assert value(fams, "proxreap_reclaimed_disk_bytes_total") == 32 << 30
    assert value(fams, "proxreap_journal_writable") == 1
    st = d.status()
    assert value(fams, "proxreap_polls_total", result="ok") >= 1
    assert value(fams, "proxreap_api_requests_total") > value(fams, "proxreap_polls_total", result="ok")
    assert value(fams, "proxreap_api_errors_total") == 0
    assert value(fams, "proxreap_api_up") == 1
    assert 0 < value(fams, "proxreap_poll_duration_seconds") < 10
    last = value(fams, "proxreap_last_successful_poll_timestamp_seconds")
    assert abs(last - time.time()) < 120, last
    assert st["api"]["polls_ok"] >= value(fams, "proxreap_polls_total", result="ok")
    assert value(fams, "proxreap_webhook_events_total", result="sent") == 1
    # The daemon's own cost, from the kernel's view of it.
    assert 0 < value(fams, "process_cpu_seconds_total") < 60
    rss = value(fams, "process_resident_memory_bytes")
    assert 1 << 20 < rss <= value(fams, "proxreap_resident_memory_max_bytes") < 1 << 30
    # Two guests judged (the template is excluded, not tracked), 1 KiB each at most.
    assert 0 < value(fams, "proxreap_guest_state_bytes") < 64 << 10
    assert fams["process_cpu_seconds_total"]["type"] == "counter"
    assert fams["proxreap_guests"]["type"] == "gauge"
    assert fams["proxreap_reaps_total"]["type"] == "counter"
    assert oct(os.stat(prom).st_mode & 0o777) == "0o644"
    # No temporary files left beside it.
    assert [f for f in os.listdir(lab.dir) if f.startswith("proxreap.prom")] == ["proxreap.prom"]


def test_prometheus_counts_api_errors_and_an_outage(lab):
    sim = sim_of(lab, [guest(101, "busy", cpu=0.5, mem_mb=4000)])
    prom = os.path.join(lab.dir, "proxreap.prom")
    cfg = lab.config(sim, observe=OBSERVE, api={"retries": 0}, status={"prometheus_file": prom})
    d = lab.daemon(cfg)
    d.wait_polls(2)
    sim.fault(kind="status", code=503, path="^/cluster/resources$", count=3)
    d.wait_status(lambda s: s["api"]["polls_failed"] >= 3 and s["api"]["ok"], what="3 failures, then ok")
    d.stop()
    fams = read_metrics(prom)
    assert value(fams, "proxreap_polls_total", result="failed") == 3
    assert value(fams, "proxreap_api_errors_total") == 3
    assert value(fams, "proxreap_api_up") == 1
    # Observe mode: no journal, so no reap metrics at all (not zeros that lie).
    assert "proxreap_reaps_total" not in fams
    assert value(fams, "proxreap_info", version=VERSION, mode="observe") == 1


def test_prometheus_file_unwritable_is_reported_once_and_polling_goes_on(lab):
    sim = sim_of(lab, [guest(101, "busy", cpu=0.5, mem_mb=4000)])
    prom = os.path.join(lab.dir, "missing-dir", "proxreap.prom")
    cfg = lab.config(sim, observe=OBSERVE, status={"prometheus_file": prom})
    d = lab.daemon(cfg)
    d.wait_polls(5)
    assert d.count(r"cannot write Prometheus file '%s': No such file or directory, ignoring" %
                   re.escape(prom)) == 1
    os.mkdir(os.path.dirname(prom))
    d.wait_log(r"Prometheus file '%s' written again" % re.escape(prom))
    read_metrics(prom)


# ---------------------------------------------------------------- webhook

def test_webhook_reports_mark_reap_and_restore(lab, sink):
    sim = sim_of(lab, [guest(101, "vm-idle", **IDLE), guest(102, "busy", cpu=0.5, mem_mb=4000)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, grace="1s"),
                     extra=notify_text(webhook_url=sink.url))
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 101, {"reaped"})
    wait_until(lambda: sink.of("reap"), message="the reap event")
    d.stop()
    (mark,) = sink.of("mark")
    assert mark["vmid"] == 101 and mark["node"] == "pve1" and mark["name"] == "vm-idle"
    assert "marked idle" in mark["text"]
    (reap,) = sink.of("reap")
    assert reap["op"] == op["id"] and reap["vmid"] == 101 and reap["type"] == "qemu"
    assert reap["state"] == "reaped" and reap["archive"] == op["volid"]
    assert reap["archive_size"] > 0
    assert "proxreap restore %s" % op["id"] in reap["text"]
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z", reap["time"])
    assert reap["host"]
    assert all(p["type"] == "application/json" and p["path"] == "/hook/T0KEN-in-the-url"
               for p in sink.posts)
    # The CLI's restore reports itself too.
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 0, r.stderr
    (restore,) = sink.of("restore")
    assert restore["op"] == op["id"] and restore["restore_vmid"] == 101
    assert restore["state"] == "restored"
    # The URL may hold a token: it is never logged.
    assert "T0KEN" not in d.log() and "T0KEN" not in r.stderr


def test_webhook_reports_an_abort_but_not_a_veto(lab, sink):
    sim = sim_of(lab, [guest(101, "vm-idle", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP,
                     extra=notify_text(webhook_url=sink.url, events=["abort", "reap"]))
    sim.fault(kind="task_fail", path="/vzdump$", count=1, error="simulated vzdump failure")
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 101, {"aborted"})
    wait_until(lambda: sink.of("abort"), message="the abort event")
    d.stop()
    (abort,) = sink.of("abort")
    assert abort["op"] == op["id"] and abort["state"] == "aborted"
    assert abort["reason"] == op["reason"] and "job errors" in abort["reason"]
    assert sink.of("mark") == []  # not in notify.events


def test_failing_webhook_never_delays_a_reap(lab):
    """A webhook that answers 500 after a second: bounded retries, a
    warning, and the reap runs exactly as fast as without a webhook."""
    slow = Sink(status=500, delay=1.0)
    try:
        guests = [guest(101, "vm-idle", **IDLE)]
        times = {}
        for name, extra in (("none", ""), ("failing", notify_text(webhook_url=slow.url, retries=2,
                                                                  timeout="5s"))):
            sim = sim_of(lab, guests)
            cfg = lab.config(sim, name=name + ".conf", observe=OBSERVE, reap=REAP,
                             status={"file": os.path.join(lab.dir, name + "-status.json")},
                             extra=extra)
            with open(cfg) as fh:
                text = fh.read()
            with open(cfg, "w") as fh:
                fh.write(text.replace(os.path.join(lab.dir, "journal"),
                                      os.path.join(lab.dir, name + "-journal")))
            t0 = time.monotonic()
            d = lab.daemon(cfg)
            wait_op(lab, cfg, 101, {"reaped"})
            times[name] = time.monotonic() - t0
            if name == "failing":
                # 1 + 2 retries, each answered 500 after 1 s, with backoff.
                d.wait_log(r"webhook: reap event of R-[\w.-]+-000001 not delivered after 3 attempts: "
                           r"HTTP 500 Internal Server Error, dropping it", timeout=30)
            d.stop()
        assert len(slow.of("reap")) == 3
        # The reap does not wait for the 3+ seconds the webhook takes.
        assert times["failing"] < times["none"] + 2.0, times
    finally:
        slow.close()


def test_unreachable_webhook_does_not_hold_up_a_stop(lab):
    """Events still queued at SIGTERM get a short grace, then are dropped
    with a warning; the daemon exits promptly and cleanly."""
    hang = Sink(status=200, delay=60)
    try:
        sim = sim_of(lab, [guest(101, "vm-idle", **IDLE)])
        cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, grace="1s"),
                         extra=notify_text(webhook_url=hang.url, timeout="60s", retries=0))
        d = lab.daemon(cfg)
        wait_op(lab, cfg, 101, {"reaped"})
        t0 = time.monotonic()
        assert d.stop(timeout=15) == 0
        assert time.monotonic() - t0 < 8
        # The mark event hangs on the wire; the reap event waits behind it.
        assert d.count(r"webhook: mark event of guest 101 not delivered after 1 attempt: ") == 1
        assert d.count(r"webhook: 1 event not delivered before stopping") == 1
    finally:
        hang.close()


# ---------------------------------------------------------------- journald fields

def read_native(datagram):
    """journald's native protocol: KEY=VALUE lines, or KEY\\n + 64-bit LE
    length + binary value + \\n."""
    fields, i = {}, 0
    while i < len(datagram):
        nl = datagram.index(b"\n", i)
        line = datagram[i:nl]
        if b"=" in line:
            k, v = line.split(b"=", 1)
            i = nl + 1
        else:
            k = line
            (n,) = struct.unpack("<Q", datagram[nl + 1:nl + 9])
            v = datagram[nl + 9:nl + 9 + n]
            assert datagram[nl + 9 + n:nl + 10 + n] == b"\n"
            i = nl + 10 + n
        fields[k.decode()] = v.decode("utf-8", "replace")
    return fields


class JournalCapture(DatagramSink):
    """Stands in for journald's socket: every entry, decoded."""

    def __init__(self, directory):
        super().__init__(os.path.join(directory, "socket"), read_native)

    @property
    def entries(self):
        return self.received()

    def match(self, **want):
        """What `journalctl KEY=VALUE ...` would show."""
        return [e for e in self.entries if all(e.get(k) == v for k, v in want.items())]


def test_journald_entries_carry_the_guest_fields(lab):
    sim = sim_of(lab, [guest(104, "vm-idle", **IDLE), guest(105, "busy", cpu=0.5, mem_mb=4000)])
    cfg = reap_config(lab, sim)
    jdir = os.path.join(lab.dir, "journald")
    os.mkdir(jdir)
    cap = JournalCapture(jdir)
    # The daemon's own view of /run: a private tmpfs in a mount namespace
    # of its own, with this test's socket where journald's would be.
    script = ('mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && '
              'mount --bind "$1" /run/systemd/journal && shift && exec "$@"')
    log = open(os.path.join(lab.dir, "journald-daemon.out"), "wb")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "CREDENTIALS_DIRECTORY")}
    p = subprocess.Popen(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                          jdir, PROXREAPD, "-c", cfg], stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        op = wait_op(lab, cfg, 104, {"reaped"})
        wait_until(lambda: cap.match(PROXREAP_OP=op["id"], PROXREAP_STATE="reaped"),
                   message=lambda: "the reaped entry; got %s" % cap.entries[-5:])
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(30)
        log.close()
        cap.close()
    assert rc == 0
    with open(os.path.join(lab.dir, "journald-daemon.out"), "rb") as fh:
        assert fh.read() == b"", "journal mode must not write to stderr"
    # journalctl PROXREAP_VMID=104: every step of its reap, and nothing else.
    mine = cap.match(PROXREAP_VMID="104")
    assert mine and all(e["SYSLOG_IDENTIFIER"] == "proxreapd" for e in mine)
    assert all(e["PROXREAP_NODE"] == "pve1" for e in mine)
    steps = [e for e in mine if e.get("PROXREAP_OP") == op["id"]]
    # PROXREAP_STATE is the op's state when the line was logged.
    assert {e["PROXREAP_STATE"] for e in steps} >= {"selected", "archive", "verify", "reaped"}
    reaped = cap.match(PROXREAP_VMID="104", PROXREAP_STATE="reaped")
    assert any("reaped" in e["MESSAGE"] and e["PRIORITY"] == "5" for e in reaped)
    # The busy guest has entries of its own (verdict changes), none of a reap.
    busy = cap.match(PROXREAP_VMID="105")
    assert busy and all(e["PROXREAP_OP"] == "" and "is now" in e["MESSAGE"] for e in busy)
    # Daemon-wide messages carry no guest fields.
    started = [e for e in cap.entries if "started in reap mode" in e["MESSAGE"]]
    assert started and "PROXREAP_VMID" not in started[0]


# ---------------------------------------------------------------- stop during a step

@pytest.mark.parametrize("method,path,crash_state", [
    ("POST", "/status/shutdown$", "shutdown"),
    ("POST", "/vzdump$", "archive"),
    ("DELETE", "/qemu/101$", "destroy"),
])
def test_stop_during_a_step_finishes_and_records_it(lab, method, path, crash_state):
    """SIGTERM while a write call is on the wire: the call completes, its
    answer (the task) is journaled, the daemon exits 0; the next run goes
    on from there and sends nothing twice."""
    sim = sim_of(lab, [guest(101, "vm-idle", **IDLE)])
    cfg = reap_config(lab, sim)
    sim.fault(kind="delay", seconds=2.0, method=method, path=path, count=1)
    n = lab.notify()
    d = lab.daemon(cfg, notify=n)
    # The op reaches that state when its intent is journaled, before the
    # call is sent; the call is on the wire once the simulator holds it
    # (the delay fault was taken). The journal alone does not say that.
    wait_until(lambda: any(o["state"] == crash_state for o in ops(lab, cfg).values()),
               timeout=60, interval=0.05, message="the op at " + crash_state)
    wait_until(lambda: sim.faults()[0]["hits"] == 1, timeout=60, message="the held call")
    d.signal(signal.SIGTERM)
    wait_until(lambda: n.count("STOPPING=1") == 1, timeout=10, message="STOPPING=1")
    assert d.stop(timeout=30) == 0
    (o,) = ops(lab, cfg).values()
    r = lab.cli("journal", "show", o["id"], "--json", config=cfg)
    recs = json.loads(r.stdout)
    assert recs[-1]["ev"] in ("task", "done"), recs[-1]
    step_calls = [w for w in writes(sim, 101) if w.startswith(method) and re.search(path, w)]
    assert len(step_calls) == 1
    d2 = lab.daemon(cfg)
    wait_op(lab, cfg, 101, {"reaped"})
    d2.stop()
    assert writes(sim, 101) == ["POST /nodes/pve1/qemu/101/status/shutdown",
                                "POST /nodes/pve1/qemu/101/snapshot",
                                "POST /nodes/pve1/vzdump",
                                "DELETE /nodes/pve1/qemu/101"]
    check_invariants(lab, sim, cfg)


def test_offline_commands_need_no_credential(lab):
    """Members of group proxreap may read the state but not the token:
    status and journal work without it, commands that call the API say
    exactly what is missing."""
    sim = sim_of(lab, [guest(101, "vm-idle", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 101, {"reaped"})
    os.unlink(lab.token_file)
    r = lab.cli("status", config=cfg)
    assert r.returncode == 0 and "vm-idle" not in r.stderr, r.stderr
    d.stop()
    r = lab.cli("journal", "list", config=cfg)
    assert r.returncode == 0 and op["id"] in r.stdout, r.stderr
    r = lab.cli("journal", "show", op["id"], config=cfg)
    assert r.returncode == 0, r.stderr
    r = lab.cli("status", config=cfg)
    assert r.returncode == 1 and r.stdout.startswith("proxreapd is NOT RUNNING"), r
    r = lab.cli("plan", config=cfg)
    assert r.returncode == 2
    assert "cannot read secret file '%s': No such file or directory" % lab.token_file in r.stderr


def test_restore_puts_the_guest_back_in_its_pool(lab):
    """A token whose ACL is on a pool may only create guests in it, and the
    guest belongs there: restore passes the pool it was reaped from."""
    sim = sim_of(lab, [guest(101, "vm-idle", pool="lab", **IDLE),
                       guest(102, "ct-idle", type="lxc", **IDLE)])
    cfg = reap_config(lab, sim, max_per_cycle=2)
    d = lab.daemon(cfg)
    a = wait_op(lab, cfg, 101, {"reaped"})
    b = wait_op(lab, cfg, 102, {"reaped"})
    d.stop()
    for op in (a, b):
        r = lab.cli("restore", op["id"], "--yes", config=cfg)
        assert r.returncode == 0, r.stderr
    creates = {r["path"]: r["body"] for r in sim.requests()
               if r["method"] == "POST" and r["path"] in ("/nodes/pve1/qemu", "/nodes/pve1/lxc")}
    assert creates["/nodes/pve1/qemu"]["pool"] == "lab"
    assert "pool" not in creates["/nodes/pve1/lxc"]
    assert sim.guest(101)["pool"] == "lab"
    assert not sim.guest(102).get("pool")
