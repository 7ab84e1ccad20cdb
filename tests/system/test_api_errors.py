"""Bad answers from the Proxmox API: HTTP errors, broken bodies, invalid
guest entries. A failed poll is logged once, the daemon keeps going, and
nothing a bad answer says can make a guest idle."""

import re

import pytest

from conftest import cluster_requests, guest, plan_by_vmid, wait_until

RES = "GET /cluster/resources?type=vm"


def verdicts(doc):
    return {g["vmid"]: g["verdict"] for g in doc["guests"]}


def test_proxmox_error_message_is_logged_and_reported(lab):
    sim = lab.sim([guest(100, "idle1")])
    d = lab.daemon(lab.config(sim, api={"retries": 0}))
    d.wait_status(lambda s: s["api"]["polls_ok"] >= 3)
    sim.fault(kind="status", code=500, message="cluster not ready - no quorum?", path="^/cluster/resources$")
    err = RES + ": HTTP 500 cluster not ready - no quorum?"
    doc = d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 5)
    assert doc["api"]["ok"] is False
    assert doc["api"]["error"] == err
    assert d.lines().count("proxreapd: error: cannot poll the Proxmox API: " + err) == 1

    # A different error during the same outage is logged too (once).
    sim.clear_faults()
    sim.fault(kind="status", code=502, message="proxy: backend gone", path="^/cluster/resources$")
    err2 = RES + ": HTTP 502 proxy: backend gone"
    doc = d.wait_status(lambda s: s["api"]["error"] == err2 and s["api"]["consecutive_failures"] >= 10)
    assert d.count(r"cannot poll the Proxmox API") == 2
    assert d.lines().count("proxreapd: error: cannot poll the Proxmox API: " + err2) == 1
    assert d.count(r"reachable again") == 0

    sim.clear_faults()
    d.wait_log(r"^proxreapd: Proxmox API reachable again after \d+ failed polls$")
    d.wait_status(lambda s: s["api"]["ok"] and s["api"]["error"] is None)


BAD_ANSWERS = [
    ("malformed", {}, {}, r"^GET /cluster/resources\?type=vm: invalid JSON: .+"),
    ("truncate", {"bytes": 100}, {},
     r"^GET /cluster/resources\?type=vm: transfer closed with \d+ bytes remaining to read$"),
    ("oversize", {"size_mb": 2}, {},
     r"^GET /cluster/resources\?type=vm: response larger than the 1048576 byte limit$"),
    # no answer at all: api.timeout ends the poll
    ("hang", {}, {"timeout": "300ms"},
     r"^GET /cluster/resources\?type=vm: Operation timed out after \d+ milliseconds with 0 bytes received$"),
]


@pytest.mark.parametrize("kind,spec,api,error", BAD_ANSWERS, ids=[b[0] for b in BAD_ANSWERS])
def test_bad_answer_fails_the_poll_cleanly(lab, kind, spec, api, error):
    sim = lab.sim([guest(100, "idle1"), guest(101, "idle2", type="lxc")])
    d = lab.daemon(lab.config(sim, api=dict({"retries": 0, "max_response_mb": 1}, **api)))
    d.wait_status(lambda s: s["api"]["polls_ok"] >= 3)
    sim.fault(kind=kind, path="^/cluster/resources$", **spec)
    doc = d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 8, what="8 failed polls")
    assert doc["api"]["ok"] is False
    assert re.match(error, doc["api"]["error"]), doc["api"]["error"]
    errors = [x for x in d.lines() if "cannot poll the Proxmox API" in x]
    assert re.match(r"^proxreapd: error: cannot poll the Proxmox API: " + error[1:], errors[0]), errors[0]
    # still polling at its pace
    n = len(cluster_requests(sim))
    wait_until(lambda: len(cluster_requests(sim)) >= n + 5, message="5 more polls")
    assert d.running()
    sim.clear_faults()
    d.wait_log(r"^proxreapd: Proxmox API reachable again after \d+ failed polls$")
    d.wait_status(lambda s: s["api"]["ok"] and s["api"]["polls_ok"] >= doc["api"]["polls_ok"] + 3)
    # An outage is logged once, not at every failed poll.
    errors = [x for x in d.lines() if "cannot poll the Proxmox API" in x]
    assert len(errors) == 1, "\n".join(errors)


def test_failed_polls_never_make_guests_idle(lab):
    """Every answer is over api.max_response_mb, so every poll fails: no
    guest may ever be judged idle from what streamed in before the cut."""
    fault = {"kind": "oversize", "size_mb": 2, "path": "^/cluster/resources$"}
    sim = lab.sim([guest(100, "idle1"), guest(101, "idle2", type="lxc")], faults=[fault])
    n = lab.notify()
    d = lab.daemon(lab.config(sim, api={"retries": 0, "max_response_mb": 1}), notify=n)
    seen = []

    def polls():
        doc = d.status()
        if doc is not None:
            seen.append(doc)
        return doc is not None and doc["api"]["polls_failed"] >= 25
    wait_until(polls, message="25 failed polls")
    doc = seen[-1]
    assert doc["api"]["ok"] is False and doc["api"]["polls_ok"] == 0
    assert doc["api"]["last_success"] == "never"
    assert n.count("READY=1") == 0
    idle = [(s["api"]["polls_failed"], verdicts(s)) for s in seen if "idle" in verdicts(s).values()]
    assert not idle, "guests judged idle although no poll ever succeeded: %s" % idle[:2]
    assert doc["summary"]["idle"] == 0


INVALID = [
    ("wrong_type", {}, "field 'mem' is a string, not a number"),
    # the first copy claims an idle CPU: a decoder keeping either copy is wrong
    ("duplicate_keys", {"key": "cpu", "value": 0}, "field 'cpu' appears twice (duplicate key)"),
]


@pytest.mark.parametrize("kind,spec,why", INVALID, ids=[i[0] for i in INVALID])
def test_invalid_entries_are_never_idle(lab, kind, spec, why):
    fault = dict(spec, kind=kind, path="^/cluster/resources$")
    sim = lab.sim([guest(100, "idle1"), guest(101, "busy", cpu=0.5), guest(102, "idle-ct", type="lxc")],
                  faults=[fault])
    d = lab.daemon(lab.config(sim, api={"retries": 0}))
    doc = d.wait_status(lambda s: s["api"]["polls_ok"] >= 25, what="25 polls")
    assert doc["api"]["ok"] is True
    assert doc["api"]["rejected_entries"] == 3
    assert doc["summary"] == {"tracked": 3, "idle": 0, "active": 0, "insufficient-data": 3, "excluded": 0}
    for g in doc["guests"]:
        assert g["verdict"] == "insufficient-data", g
        assert g["reasons"][0] == "no data in the last poll (status 'running')", g
        assert g["samples"] == 0
    warnings = [x for x in d.lines() if "ignored as invalid" in x]
    assert warnings == ["proxreapd: warning: 3 guest entries of /cluster/resources ignored as invalid "
                        "(entry 'qemu/100': %s)" % why]
    assert d.count(r"is now idle") == 0
    assert d.count(r"cannot poll") == 0

    # Valid answers again: the guests are judged on their real numbers.
    sim.clear_faults()
    doc = d.wait_status(lambda s: verdicts(s) == {100: "idle", 101: "active", 102: "idle"})
    assert doc["api"]["rejected_entries"] == 0
    assert len([x for x in d.lines() if "ignored as invalid" in x]) == 1


def test_plan_with_failed_polls_lacks_coverage(lab):
    """plan goes on through failed polls; the holes cost coverage."""
    fault = {"kind": "status", "code": 503, "path": "^/cluster/resources$", "count": 5}
    sim = lab.sim([guest(100, "idle1")], faults=[fault])
    r = lab.cli("plan", "--json", config=lab.config(sim, api={"retries": 0}))
    assert r.returncode == 0, r.stderr
    g = plan_by_vmid(r.stdout)[100]
    assert g["verdict"] == "insufficient-data"
    assert g["samples"] == 15
    assert g["reasons"] == ["window coverage 75% < 90% (15 of 20 samples)"]
    assert len(cluster_requests(sim)) == 20


# ---------------------------------------------------------------- authentication

AUTH_FAILED = ("authentication failed (HTTP 401 Authentication failed!): check the API token id and secret")
# The CLI warns of a plain http API like the daemon (every test simulator is http).
HTTP_WARNING = "proxreap: warning: api.url '%s' is plain http: the API credential travels unencrypted\n"


def test_plan_with_wrong_secret(lab):
    from conftest import WRONG_SECRET
    sim = lab.sim([guest(100)])
    bad = lab.secret_file("bad-token", WRONG_SECRET)
    r = lab.cli("plan", config=lab.config(sim, api={"token_secret_file": bad}))
    assert r.returncode == 1
    assert r.stderr == (HTTP_WARNING % sim.api_url +
                        "proxreap: cannot use the Proxmox API: GET /version: %s\n" % AUTH_FAILED)
    assert r.stdout == ""
    assert WRONG_SECRET not in r.stderr
    # the probe failed: no polling at all
    assert [x["path"] for x in sim.requests()] == ["/version"]
    assert sim.requests()[0]["status"] == 401


def test_plan_with_unknown_token_id(lab):
    sim = lab.sim([guest(100)])
    r = lab.cli("plan", "--json", config=lab.config(sim, api={"token_id": "ghost@pve!nope"}))
    assert r.returncode == 1
    assert "authentication failed" in r.stderr
    assert r.stdout == ""


def test_plan_token_revoked_mid_window(lab):
    sim = lab.sim([guest(100)])
    proc = lab.cli_async("plan", "--json", config=lab.config(sim))
    wait_until(lambda: len(cluster_requests(sim)) >= 3 or proc.poll() is not None)
    sim.fault(kind="revoke")
    r = lab.finish(proc)
    assert r.returncode == 1
    assert r.stderr.endswith("proxreap: the Proxmox API refused the credentials: %s: %s\n" % (RES, AUTH_FAILED)), r.stderr
    assert r.stdout == ""
    # it stopped at the first refusal
    reqs = cluster_requests(sim)
    assert reqs[-1]["status"] == 401 and [x["status"] for x in reqs].count(401) == 1


def test_plan_api_unreachable(lab):
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()                               # nothing listens there now
    conf = lab.config(url="http://127.0.0.1:%d" % port, api={"retries": 0})
    r = lab.cli("plan", config=conf)
    assert r.returncode == 1
    warning = HTTP_WARNING % ("http://127.0.0.1:%d/api2/json" % port)
    assert r.stderr.startswith(warning), r.stderr
    assert re.match(r"^proxreap: cannot use the Proxmox API: GET /version: .*(connect|refused)",
                    r.stderr[len(warning):]), r.stderr
    assert r.stderr.count("\n") == 2


def test_daemon_with_bad_token_logs_once_and_is_never_ready(lab):
    from conftest import WRONG_SECRET
    sim = lab.sim([guest(100, "idle1")])
    token = lab.secret_file("daemon-token", WRONG_SECRET)
    n = lab.notify()
    d = lab.daemon(lab.config(sim, api={"token_secret_file": token, "retries": 0}), notify=n)
    wait_until(lambda: len(cluster_requests(sim)) >= 15, message="15 polls")
    err = "proxreapd: error: cannot poll the Proxmox API: %s: %s" % (RES, AUTH_FAILED)
    d.wait_log("^" + re.escape(err) + "$")
    d.wait_status(lambda s: s["api"]["polls_failed"] >= 15)
    assert d.count(r"cannot poll the Proxmox API") == 1
    assert n.count("READY=1") == 0
    # The status file and the notify datagrams are two channels: wait for
    # the datagrams themselves.
    st = wait_until(lambda: len(n.statuses()) >= 15 and n.statuses(), message="15 STATUS= datagrams")
    assert all(re.match(r"^tracking 0 guests, 0 idle, 0 active, 0 insufficient-data, 0 excluded"
                        r"; API authentication failed \(401\) for \d+ polls?$", s) for s in st), st
    doc = d.status()
    assert doc["api"]["ok"] is False and doc["api"]["polls_ok"] == 0
    assert doc["api"]["error"] == "%s: %s" % (RES, AUTH_FAILED)
    assert doc["api"]["last_success"] == "never"
    assert doc["summary"]["tracked"] == 0 and doc["guests"] == []
    assert all(x["status"] == 401 for x in sim.requests())
    assert d.running()


def test_reload_before_the_first_good_poll_does_not_signal_ready(lab):
    """READY=1 means 'the first poll succeeded'. Fixing the token and
    reloading must not send READY=1 before a poll has actually worked: not
    on a reload that cannot be checked (refused), not on one that is taken
    before its first good poll."""
    from conftest import SECRET, WRONG_SECRET
    sim = lab.sim([guest(100, "idle1")])
    token = lab.secret_file("daemon-token", WRONG_SECRET)
    conf = lab.config(sim, api={"token_secret_file": token, "retries": 0})
    n = lab.notify()
    d = lab.daemon(conf, notify=n)
    d.wait_status(lambda s: s["api"]["polls_failed"] >= 5)
    sim.fault(kind="status", code=503, path="^/cluster/resources$")  # keep failing after the fix
    lab.secret_file("daemon-token", SECRET)
    d.signal(__import__("signal").SIGHUP)
    # The new configuration cannot be checked while the guests cannot be
    # listed: the reload is refused, and nothing is ready.
    d.wait_log(r"^proxreapd: error: reload failed: guests: cannot list the guests: .*HTTP 503 .*"
               r"\(this may pass: run 'systemctl reload proxreapd' again\), keeping the running "
               r"configuration$")
    wait_until(lambda: n.count("RELOADING=1") == 1)
    d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 12)
    assert n.count("READY=1") == 0, n.messages()

    sim.clear_faults()
    d.signal(__import__("signal").SIGHUP)
    d.wait_log(r"^proxreapd: configuration reloaded from ")
    d.wait_log(r"^proxreapd: Proxmox API reachable again after \d+ failed polls$")
    d.wait_log(r"^proxreapd: first poll done, tracking 1 guests, 0 idle, 0 active, 1 insufficient-data, "
               r"0 excluded$")
    wait_until(lambda: n.count("READY=1") >= 1)
    ready = [m for m in n.messages() if "READY=1" in m]
    assert ready == [["READY=1", "STATUS=tracking 1 guests, 0 idle, 0 active, 1 insufficient-data, 0 excluded"]]
