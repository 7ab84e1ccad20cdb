"""proxreapd: polling, verdict changes, the status file, outages, SIGHUP
reloads and sd_notify."""

import json
import re
import signal
import time

import pytest

from conftest import VERSION, cluster_requests, guest, wait_until

ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$"
STATUS_RX = re.compile(r"^tracking (\d+) guests, (\d+) idle, (\d+) active, (\d+) insufficient-data, "
                       r"(\d+) excluded(; API (?:unreachable|errors|authentication failed \(401\)) "
                       r"for (\d+) polls?)?$")


def verdicts(doc):
    return {g["vmid"]: g["verdict"] for g in doc["guests"]}


def by_vmid(doc):
    return {g["vmid"]: g for g in doc["guests"]}


def all_idle(vmids):
    return lambda doc: verdicts(doc) == {v: "idle" for v in vmids}


def logged_verdicts(d, vmid):
    """The verdicts the log says guest vmid took, in order."""
    rx = re.compile(r"^proxreapd: guest %d \(.*\) is now ([a-z-]+): " % vmid)
    return [m.group(1) for m in map(rx.match, d.lines()) if m]


def logged_once(d, vmids, count, expected):
    """A verdict is logged when it changes, not at every poll: each line of
    a guest names another verdict than the one before it, and `count`
    lines are `expected` - unless polls ran late (a loaded machine): the
    ticks they skip cost the window its coverage, which changes the
    verdict, and the daemon says so ('a poll took ... longer than the
    interval'). The log is read once the lines counted are in it."""
    for vmid in vmids:
        seq = logged_verdicts(d, vmid)
        assert all(a != b for a, b in zip(seq, seq[1:])), "guest %d: %s" % (vmid, seq)
    if count != expected:
        assert count > expected and d.count(r"^proxreapd: a poll took .* longer than the") > 0, \
            "%d lines, %d expected, and no poll ran late; log:\n%s" % (count, expected, d.log())


def test_status_file_and_verdict_changes(lab):
    sim = lab.sim([guest(100, "idle1"), guest(101, "idle-ct", cpu=0.02, mem_mb=100, type="lxc"),
                   guest(102, "gets-busy"), guest(103, "gets-stopped"), guest(104, "gets-deleted")])
    conf = lab.config(sim)
    d = lab.daemon(conf)
    doc = d.wait_status(lambda s: all_idle([100, 101, 102, 103, 104])(s) and
                        all(g["coverage"] == 1.0 for g in s["guests"]), what="every guest idle, full window")

    # The document, field by field.
    assert set(doc) == {"version", "mode", "pid", "updated", "updated_epoch", "interval_seconds",
                        "window_seconds", "summary", "api", "reaper", "guests"}
    assert abs(doc["updated_epoch"] - time.time()) < 60
    assert doc["version"] == VERSION
    assert doc["mode"] == "observe"
    assert doc["pid"] == d.pid
    assert re.match(ISO, doc["updated"])
    assert doc["interval_seconds"] == 0.1
    assert doc["window_seconds"] == 2.0
    assert doc["summary"] == {"tracked": 5, "idle": 5, "active": 0, "insufficient-data": 0, "excluded": 0}
    api = doc["api"]
    assert set(api) == {"ok", "state", "error", "last_success", "polls_ok", "polls_failed", "consecutive_failures",
                        "last_poll_seconds", "rejected_entries", "poll_overruns", "max_poll_seconds",
                        "previous_poll_seconds"}
    assert api["ok"] is True and api["error"] is None
    assert re.match(ISO, api["last_success"])
    assert type(api["polls_ok"]) is int and api["polls_ok"] >= 20
    assert (api["polls_failed"], api["consecutive_failures"], api["rejected_entries"]) == (0, 0, 0)
    assert isinstance(api["last_poll_seconds"], float) and 0 <= api["last_poll_seconds"] < 5
    # whole polls (through the files), counted once finished: 20 have
    assert type(api["poll_overruns"]) is int and 0 <= api["poll_overruns"] < api["polls_ok"]
    assert isinstance(api["max_poll_seconds"], float) and 0 < api["max_poll_seconds"] < 5
    assert isinstance(api["previous_poll_seconds"], float) and \
        0 < api["previous_poll_seconds"] <= api["max_poll_seconds"]
    g = by_vmid(doc)[100]
    assert g == {"vmid": 100, "node": "pve1", "type": "qemu", "name": "idle1", "verdict": "idle",
                 "reasons": ["mean cpu 1.00% < 5%", "mean mem 300.00 MiB < 1024 MiB"],
                 "cpu_mean_percent": 1.0, "mem_mean_mb": 300.0, "samples": g["samples"],
                 "expected_samples": 20, "coverage": 1.0, "uptime": g["uptime"]}
    assert g["samples"] == 20 and type(g["uptime"]) is int

    # What the log said so far.
    log = d.lines()
    url = sim.url + "/api2/json"
    assert log[0] == ("proxreapd: warning: api.url '%s' is plain http: the API credential travels "
                      "unencrypted" % url)
    assert log[1] == "proxreapd: proxreapd %s started in observe mode, polling '%s' every 0.1s" % (VERSION, url)
    assert ("proxreapd: first poll done, tracking 5 guests, 0 idle, 0 active, 5 insufficient-data, "
            "0 excluded") in log
    assert ("proxreapd: guest 100 ('idle1', qemu on 'pve1') is now insufficient-data: "
            "window coverage 5% < 90% (1 of 20 samples)") in log
    idle_line = ("proxreapd: guest 100 ('idle1', qemu on 'pve1') is now idle: mean cpu 1.00% < 5%, "
                 "mean mem 300.00 MiB < 1024 MiB")
    logged_once(d, [100], log.count(idle_line), 1)
    assert ("proxreapd: guest 101 ('idle-ct', lxc on 'pve1') is now idle: mean cpu 2.00% < 5%, "
            "mean mem 100.00 MiB < 1024 MiB") in log

    # Changes while running.
    sim.event(102, "set", field="workload", value={"kind": "constant", "cpu": 0.6, "mem_mb": 300})
    sim.event(103, "stop")
    sim.event(104, "delete")
    d.wait_log(r"^proxreapd: guest 102 \('gets-busy', qemu on 'pve1'\) is now active: "
               r"mean cpu \d+\.\d\d% >= 5%$")
    d.wait_log(r"^proxreapd: guest 103 \('gets-stopped', qemu on 'pve1'\) is now excluded: "
               r"not running \(status 'stopped'\)$")
    d.wait_log(r"^proxreapd: guest 104 \('gets-deleted'\) left the cluster, forgetting it$")
    doc = d.wait_status(lambda s: verdicts(s) == {100: "idle", 101: "idle", 102: "active", 103: "excluded"})
    assert doc["summary"] == {"tracked": 4, "idle": 2, "active": 1, "insufficient-data": 0, "excluded": 1}
    assert verdicts(doc) == {100: "idle", 101: "idle", 102: "active", 103: "excluded"}
    # A verdict is logged when it changes, not at every poll.
    logged_once(d, [100, 101, 102, 103], d.log().count(idle_line), 1)
    assert d.count(r"guest 104 .*left the cluster") == 1
    assert d.stop() == 0
    assert d.lines()[-1] == "proxreapd: received Terminated, stopping"


# The fault, the error of the status file and the log, and what STATUS=
# calls it: an API that answers with an error status is not unreachable.
OUTAGES = [
    ({"kind": "status", "code": 503, "message": "pveproxy is restarting"},
     "GET /cluster/resources?type=vm: HTTP 503 pveproxy is restarting", "API errors"),
    ({"kind": "close"}, "GET /cluster/resources?type=vm: Empty reply from server", "API unreachable"),
]


@pytest.mark.parametrize("fault,err,down", OUTAGES, ids=["503", "close"])
def test_outage_is_logged_once_and_recovery_needs_a_new_window(lab, fault, err, down):
    sim = lab.sim([guest(100, "idle1"), guest(101, "idle2", type="lxc")])
    conf = lab.config(sim, api={"retries": 0})
    n = lab.notify()
    d = lab.daemon(conf, notify=n)
    d.wait_status(all_idle([100, 101]), what="both guests idle")

    sim.fault(path="^/cluster/resources$", **fault)
    doc = d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 25, what="25 failed polls")
    assert doc["api"]["ok"] is False
    assert doc["api"]["error"] == err
    assert doc["api"]["polls_failed"] >= 25
    assert re.match(ISO, doc["api"]["last_success"])
    # once, not per failed poll
    assert d.count(r"cannot poll the Proxmox API") == 1
    assert "proxreapd: error: cannot poll the Proxmox API: " + err in d.lines()
    # The status file and the STATUS= datagrams are two channels: the file
    # proves the datagram of the 25th failed poll was sent, not that it has
    # arrived. Wait for that datagram itself.
    wait_until(lambda: any(s.endswith("; %s for 25 polls" % down) for s in n.statuses()),
               message=lambda: "the STATUS of the 25th failed poll; got %s" % n.statuses()[-3:])
    st = n.statuses()
    assert any(s.endswith("; %s for 1 poll" % down) for s in st), st
    assert any(re.search(r"; %s for (2\d) polls$" % down, s) for s in st), st

    sim.clear_faults()
    line = d.wait_log(r"^proxreapd: Proxmox API reachable again after \d+ failed polls$")[0]
    failed = int(re.search(r"after (\d+) failed", line).group(1))
    assert failed >= 25
    assert d.count(r"reachable again") == 1

    # Back, but the window has a hole as long as the outage: not idle
    # before a covered window has been observed again.
    doc = d.wait_status(lambda s: s["api"]["ok"], what="a successful poll")
    assert doc["api"]["error"] is None and doc["api"]["consecutive_failures"] == 0
    for g in doc["guests"]:
        assert g["verdict"] == "insufficient-data", g
        assert any(r.startswith("window coverage ") for r in g["reasons"]), g
        assert g["samples"] < 18
    doc = d.wait_status(all_idle([100, 101]), what="both guests idle again")
    for g in doc["guests"]:
        assert g["samples"] >= 18
    assert d.count(r"cannot poll the Proxmox API") == 1
    assert n.count("WATCHDOG=1") == 0      # no WATCHDOG_USEC, no pings


def test_outage_makes_guests_stale(lab):
    """During an outage the newest sample ages: after two missed polls the
    guests are insufficient-data ('stale data'), never idle."""
    sim = lab.sim([guest(100, "idle1"), guest(101, "idle2", type="lxc")])
    conf = lab.config(sim, api={"retries": 0})
    d = lab.daemon(conf)
    # Run a little longer than one window so the sample ring has wrapped.
    d.wait_status(lambda s: all_idle([100, 101])(s) and s["api"]["polls_ok"] >= 30,
                  what="both guests idle after 30 polls")
    sim.fault(kind="status", code=503, path="^/cluster/resources$")
    seen = []

    def enough_failures():
        doc = d.status()
        seen.append(doc)
        return doc if doc["api"]["consecutive_failures"] >= 10 else None
    doc = wait_until(enough_failures, message="10 failed polls")
    bad = [(s["api"]["consecutive_failures"], verdicts(s)) for s in seen
           if s["api"]["consecutive_failures"] >= 3 and "idle" in verdicts(s).values()]
    assert not bad, "guests idle while the API has failed 3 or more polls in a row: %s" % bad[:3]
    for g in doc["guests"]:
        assert g["verdict"] == "insufficient-data", g
        m = re.match(r"^stale data: newest sample (\d+\.\d)s old$", g["reasons"][0])
        assert m and float(m.group(1)) >= 1.0, g["reasons"]


def test_frozen_data_is_missing_data(lab):
    """A node stops updating: Proxmox keeps serving the guest's last entry,
    uptime and counters included. Copies of one old sample never make a
    guest idle: once uptime and counters have not moved for
    observe.stale_after, the guest is insufficient-data ('frozen data'),
    the copies taken before count as missing too, and once its data moves
    again a whole window of live samples is needed before it is idle."""
    sim = lab.sim([guest(100, "idle1")])
    conf = lab.config(sim, observe={"window": "4s", "stale_after": "1s"})
    d = lab.daemon(conf)
    d.wait_status(lambda s: verdicts(s) == {100: "idle"}, what="idle", timeout=30)
    frozen_at = time.monotonic()
    sim.event(100, "freeze", duration=3)
    reason = ("frozen data: uptime and counters unchanged for over 1s (observe.stale_after): "
              "is pvestatd running on node 'pve1'?")
    d.wait_status(lambda s: by_vmid(s)[100]["reasons"][:1] == [reason], what="frozen")
    seen = []

    def back():
        s = d.status()
        seen.append(s)
        return s if verdicts(s)[100] == "idle" else None
    wait_until(back, timeout=60, message="guest 100 idle again")
    # 3 s frozen, then 90 % of a 4 s window of live samples: never sooner.
    assert time.monotonic() - frozen_at >= 3 + 3.6 - 0.2, time.monotonic() - frozen_at
    assert not [s for s in seen[:-1] if verdicts(s)[100] == "idle"]


def test_one_verdict_in_status_and_plan(lab):
    """A protected guest, and one whose configuration cannot be read, are
    never 'idle': not in the status of a daemon in mark mode, not in plan."""
    sim = lab.sim([guest(100, "protected", protection=1), guest(101, "unreadable"),
                   guest(102, "idle")])
    sim.fault(kind="status", code=500, path="^/nodes/pve1/qemu/101/config$",
              message="got timeout")
    conf = lab.config(sim, reap={"mode": "mark", "breaker_jump": 100})
    d = lab.daemon(conf)
    doc = d.wait_status(lambda s: verdicts(s).get(102) == "idle" and
                        verdicts(s).get(100) == "excluded" and
                        any(r.startswith("its configuration cannot be read")
                            for r in by_vmid(s)[101]["reasons"]), what="one verdict each")
    g = by_vmid(doc)
    assert g[100]["reasons"] == ["protected (protection=1)"], g[100]
    assert g[101]["reasons"][0].startswith("its configuration cannot be read (GET /nodes/pve1/qemu/"
                                           "101/config"), g[101]
    assert g[101]["reasons"][0].endswith("HTTP 500 got timeout)"), g[101]
    assert d.stop() == 0
    r = lab.cli("plan", "--json", config=conf)
    assert r.returncode == 0, r.stderr
    p = {x["vmid"]: x for x in json.loads(r.stdout)}
    assert {v: p[v]["verdict"] for v in p} == {100: "excluded", 101: "insufficient-data",
                                               102: "idle"}, p
    assert p[100]["reasons"] == g[100]["reasons"], p[100]


def test_transient_error_is_retried(lab):
    """One 503 is absorbed by a retry (api.retries defaults to 2)."""
    sim = lab.sim([guest(100, "idle1")])
    conf = lab.config(sim)
    d = lab.daemon(conf)
    before = d.wait_status(lambda s: s["api"]["polls_ok"] >= 5)["api"]["polls_ok"]
    sim.fault(kind="status", code=503, count=1, path="^/cluster/resources$")
    d.wait_status(lambda s: s["api"]["polls_ok"] >= before + 10)
    wait_until(lambda: sim.faults()[0]["hits"] == 1)
    doc = d.status()
    assert doc["api"]["polls_failed"] == 0
    assert d.count(r"cannot poll|error") == 0
    reqs = cluster_requests(sim)
    i = next(k for k, r in enumerate(reqs) if r["status"] == 503)
    retry = reqs[i + 1]
    assert retry["status"] == 200
    # equal-jitter backoff: between half and all of the 250ms base pause
    assert 0.1 <= retry["t"] - reqs[i]["t"] <= 1.0, (reqs[i], retry)


def test_daemon_makes_one_request_per_poll(lab):
    sim = lab.sim([guest(100), guest(101, type="lxc"), guest(102, status="stopped")])
    d = lab.daemon(lab.config(sim))
    d.wait_polls(20)
    assert d.stop() == 0
    doc = d.status()
    reqs = sim.requests()
    assert reqs, "no requests"
    for r in reqs:
        assert (r["method"], r["path"], r["query"], r["status"]) == \
            ("GET", "/cluster/resources", {"type": "vm"}, 200), r
    assert len(reqs) == doc["api"]["polls_ok"]
    # fixed rate: about one request per interval
    span = reqs[-1]["t"] - reqs[0]["t"]
    assert (len(reqs) - 1) * 0.1 * 0.7 <= span <= (len(reqs) - 1) * 0.1 * 5, (len(reqs), span)


def test_sighup_reload(lab):
    sim = lab.sim([guest(100, "busy", cpu=0.3), guest(101, "idle1")])
    conf = lab.config(sim, api={"retries": 0})
    n = lab.notify()
    d = lab.daemon(conf, notify=n)
    d.wait_status(lambda s: verdicts(s) == {100: "active", 101: "idle"})
    wait_until(lambda: n.count("READY=1") == 1)

    # A broken file: every problem logged as FILE:LINE, the running
    # configuration kept, polling goes on.
    conf2 = lab.config(sim, api={"retries": 0}, idle={"cpu_percent": -3, "bogus": 1})
    assert conf2 == conf
    text = open(conf).read()
    l_cpu = next(i for i, x in enumerate(text.splitlines(), 1) if "cpu_percent" in x)
    l_bogus = next(i for i, x in enumerate(text.splitlines(), 1) if "bogus" in x)
    d.signal(signal.SIGHUP)
    d.wait_log(r"^proxreapd: error: reload failed: '%s' is invalid, keeping the running configuration$"
               % re.escape(conf))
    log = d.lines()
    assert ("proxreapd: error: %s:%d: 'idle.cpu_percent' = -3 is out of range (more than 0 and at most 10000)"
            % (conf, l_cpu)) in log
    assert "proxreapd: error: %s:%d: unknown key 'idle.bogus'" % (conf, l_bogus) in log
    polls = d.status()["api"]["polls_ok"]
    reqs = len(sim.requests())
    doc = d.wait_status(lambda s: s["api"]["polls_ok"] >= polls + 10 and verdicts(s) == {100: "active", 101: "idle"},
                        what="10 more polls after a failed reload, the verdicts unchanged")
    assert len(sim.requests()) >= reqs + 10
    assert verdicts(doc) == {100: "active", 101: "idle"}
    assert by_vmid(doc)[100]["reasons"] == ["mean cpu 30.00% >= 5%"]
    wait_until(lambda: n.count("READY=1") == 2)
    assert n.count("RELOADING=1") == 1

    # A valid change takes effect without restarting observation.
    lab.config(sim, api={"retries": 0}, idle={"cpu_percent": 50.0})
    d.signal(signal.SIGHUP)
    d.wait_log(r"^proxreapd: configuration reloaded from '%s'$" % re.escape(conf))
    d.wait_log(r"^proxreapd: guest 100 \('busy', qemu on 'pve1'\) is now idle: mean cpu 30\.00% < 50%, "
               r"mean mem 300\.00 MiB < 1024 MiB$")
    doc = d.wait_status(lambda s: verdicts(s) == {100: "idle", 101: "idle"})
    assert by_vmid(doc)[100]["reasons"] == ["mean cpu 30.00% < 50%", "mean mem 300.00 MiB < 1024 MiB"]
    assert d.count("observation starts over") == 0
    logged_once(d, [100, 101], d.count(r"is now insufficient-data"), 2)   # only at start-up

    # A new window restarts observation.
    lab.config(sim, api={"retries": 0}, observe={"window": "1s"}, idle={"cpu_percent": 50.0})
    d.signal(signal.SIGHUP)
    d.wait_log(r"^proxreapd: interval or window changed: observation starts over$")
    d.wait_log(r"^proxreapd: guest 100 .* is now insufficient-data: window coverage \d+% < 90% "
               r"\(\d+ of 10 samples\)")
    doc = d.wait_status(lambda s: s["window_seconds"] == 1.0 and all_idle([100, 101])(s))
    assert all(g["expected_samples"] == 10 for g in doc["guests"])
    # The datagrams of the third reload: its READY=1 comes after its
    # RELOADING=1, so once it is here, so is the other.
    wait_until(lambda: n.count("READY=1") == 4, message="READY=1 after the third reload")
    assert n.count("RELOADING=1") == 3
    assert d.count(r"^proxreapd: error") == 3


def test_sd_notify(lab):
    sim = lab.sim([guest(100, "idle1"), guest(101, "busy", cpu=0.5)])
    conf = lab.config(sim)
    n = lab.notify()
    d = lab.daemon(conf, notify=n, env={"WATCHDOG_USEC": "400000"})
    wait_until(lambda: n.count("READY=1") == 1, message="READY=1")
    ready = [m for m in n.messages() if "READY=1" in m]
    assert ready[0] == ["READY=1", "STATUS=tracking 2 guests, 0 idle, 0 active, 2 insufficient-data, 0 excluded"]
    wait_until(lambda: "tracking 2 guests, 1 idle, 1 active, 0 insufficient-data, 0 excluded" in n.statuses(),
               message=lambda: "the STATUS of a judged fleet; got %s" % n.statuses()[-3:])
    wait_until(lambda: n.count("WATCHDOG=1") >= 5, message="5 watchdog pings")
    d.wait_polls(25)
    assert n.count("READY=1") == 1          # after the first poll only
    # One STATUS= per poll; the datagram of the 25th may still be on its way.
    wait_until(lambda: len(n.statuses()) >= 25,
               message=lambda: "a STATUS per poll; got %d" % len(n.statuses()))
    st = n.statuses()
    for s in st:
        m = STATUS_RX.match(s)
        assert m and not m.group(6), s       # well-formed, API never down
        assert int(m.group(1)) == 2

    d.signal(signal.SIGHUP)
    wait_until(lambda: n.count("READY=1") == 2, message="READY=1 after the reload")
    msgs = n.messages()
    i_reload = next(i for i, m in enumerate(msgs) if "RELOADING=1" in m)
    i_ready = [i for i, m in enumerate(msgs) if "READY=1" in m][1]
    assert msgs[i_reload] == ["RELOADING=1", "STATUS=reloading configuration"]
    assert i_reload < i_ready

    assert d.stop() == 0
    wait_until(lambda: n.count("STOPPING=1") == 1, timeout=5, message="STOPPING=1")
    assert ["STOPPING=1", "STATUS=stopping"] in n.messages()
    assert n.count("READY=1") == 2
