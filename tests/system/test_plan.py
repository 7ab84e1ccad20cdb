"""`proxreap plan`: one observed window, every verdict with its reasons.

Windows are short (interval 100ms, window 2s: 20 samples) and the simulator
samples at the same rate (stats_period 0.1), so each plan takes about 2s.
"""

import re

import pytest

from conftest import MIB, cluster_requests, guest, plan_by_vmid, wait_until

WINDOW_SAMPLES = 20  # window 2s / interval 100ms

HA_REASON = "HA-managed (state 'started'; set select.allow_ha to include)"
UNKNOWN_REASONS = ["no data in the last poll (status 'unknown')",
                   "uptime 0s shorter than the 2s window",
                   "window coverage 0% < 90% (0 of 20 samples)"]


def mixed_fleet():
    return [
        guest(100, "idle-vm", cpu=0.01, mem_mb=300),
        guest(101, "idle-ct", cpu=0.02, mem_mb=100, type="lxc"),
        guest(102, "busy-cpu", cpu=0.5, mem_mb=300),
        guest(103, "busy-mem", cpu=0.01, mem_mb=2048, maxmem=4096 * MIB),
        guest(104, "busy-both", cpu=0.25, mem_mb=1500, type="lxc", maxmem=2048 * MIB),
        guest(105, "stopped", status="stopped"),
        guest(106, "tmpl", status="stopped", template=1),
        guest(107, "locked", lock="backup"),
        guest(108, "ha", ha=True),
        guest(109, "keep", tags="prod;proxreap-keep"),
        guest(110, "pooled", pool="lab"),
        guest(111, "elsewhere", node="pve2"),
        guest(112, "unknown", status="unknown"),
        guest(113, "paused", status="paused"),
        guest(114, "tagged-idle", tags="prod;web", pool="team-a"),
        # stale from the first poll to the last (an 'unknown' event at t=0)
        guest(115, "goes-unknown", events=[{"at": 0, "action": "unknown"}]),
        guest(250, "single-excluded"),
        guest(950, "range-excluded"),
    ]


MIXED_EXPECTED = {
    100: ("idle", ["mean cpu 1.00% < 5%", "mean mem 300.00 MiB < 1024 MiB"]),
    101: ("idle", ["mean cpu 2.00% < 5%", "mean mem 100.00 MiB < 1024 MiB"]),
    102: ("active", ["mean cpu 50.00% >= 5%"]),
    103: ("active", ["mean mem 2048.00 MiB >= 1024 MiB"]),
    104: ("active", ["mean cpu 25.00% >= 5%", "mean mem 1500.00 MiB >= 1024 MiB"]),
    105: ("excluded", ["not running (status 'stopped')"]),
    106: ("excluded", ["template"]),
    107: ("excluded", ["locked ('backup')"]),
    108: ("excluded", [HA_REASON]),
    109: ("excluded", ["opt-out tag 'proxreap-keep'"]),
    110: ("excluded", ["excluded pool 'lab'"]),
    111: ("excluded", ["not in scope (node 'pve2')"]),
    112: ("insufficient-data", UNKNOWN_REASONS),
    113: ("excluded", ["not running (status 'paused')"]),
    114: ("idle", ["mean cpu 1.00% < 5%", "mean mem 300.00 MiB < 1024 MiB"]),
    115: ("insufficient-data", UNKNOWN_REASONS),
    250: ("excluded", ["excluded vmid 250"]),
    950: ("excluded", ["vmid in excluded range 900-999"]),
}

MIXED_SELECT = {"exclude_pools": ["lab"], "exclude_vmids": ["900-999", "250"]}


def test_mixed_fleet_verdicts_and_reasons(lab):
    sim = lab.sim(mixed_fleet())
    conf = lab.config(sim, observe={"nodes": ["pve1"]}, select=MIXED_SELECT)
    # The table and the JSON run side by side (each observes its own window).
    table = lab.cli_async("plan", config=conf)
    plan = lab.plan(conf)
    tab = lab.finish(table)

    assert sorted(plan) == sorted(MIXED_EXPECTED)
    got = {vmid: (g["verdict"], g["reasons"]) for vmid, g in plan.items()}
    assert got == MIXED_EXPECTED

    # One guest field by field.
    g = plan[100]
    assert set(g) == {"vmid", "node", "type", "name", "verdict", "reasons", "cpu_mean_percent",
                      "mem_mean_mb", "samples", "expected_samples", "coverage", "uptime"}
    assert type(g["vmid"]) is int and g["vmid"] == 100
    assert g["node"] == "pve1"
    assert g["type"] == "qemu"
    assert g["name"] == "idle-vm"
    assert g["verdict"] == "idle"
    assert isinstance(g["reasons"], list) and all(isinstance(r, str) for r in g["reasons"])
    assert isinstance(g["cpu_mean_percent"], float) and g["cpu_mean_percent"] == pytest.approx(1.0, abs=0.01)
    assert isinstance(g["mem_mean_mb"], float) and g["mem_mean_mb"] == pytest.approx(300.0, abs=0.01)
    assert type(g["samples"]) is int and g["samples"] == WINDOW_SAMPLES
    assert type(g["expected_samples"]) is int and g["expected_samples"] == WINDOW_SAMPLES
    assert g["coverage"] == 1.0
    assert type(g["uptime"]) is int and 30 * 86400 <= g["uptime"] < 30 * 86400 + 120

    ct = plan[101]
    assert (ct["type"], ct["name"], ct["node"]) == ("lxc", "idle-ct", "pve1")
    assert ct["cpu_mean_percent"] == pytest.approx(2.0, abs=0.01)
    assert ct["mem_mean_mb"] == pytest.approx(100.0, abs=0.01)
    assert plan[103]["mem_mean_mb"] == pytest.approx(2048.0, abs=0.01)
    assert plan[102]["cpu_mean_percent"] == pytest.approx(50.0, abs=0.01)
    assert plan[111]["node"] == "pve2"
    # A guest with no statistics: no numbers, no samples, no name.
    for unk in (plan[112], plan[115]):
        assert (unk["name"], unk["samples"], unk["coverage"], unk["uptime"], unk["cpu_mean_percent"],
                unk["mem_mean_mb"]) == ("", 0, 0.0, 0, 0.0, 0.0), unk
    for vmid, guest_obj in plan.items():
        assert guest_obj["expected_samples"] == WINDOW_SAMPLES, vmid

    # The table: a header, one row per guest, the summary line.
    assert tab.returncode == 0, tab.stderr
    lines = tab.stdout.splitlines()
    assert lines[0].split() == ["VMID", "NODE", "TYPE", "NAME", "VERDICT", "CPU%", "MEM-MiB",
                                "SAMPLES", "REASONS"]
    rows = {int(line.split()[0]): line for line in lines[1:] if line and line.split()[0].isdigit()}
    assert sorted(rows) == sorted(MIXED_EXPECTED)
    assert re.match(r"^100\s+pve1\s+qemu\s+idle-vm\s+idle\s+1\.00\s+300\.0\s+20/20\s+"
                    r"mean cpu 1\.00% < 5%, mean mem 300\.00 MiB < 1024 MiB$", rows[100]), rows[100]
    assert rows[108].endswith(HA_REASON)
    counts = {}
    for verdict, _ in MIXED_EXPECTED.values():
        counts[verdict] = counts.get(verdict, 0) + 1
    summary = ("tracking %d guests, %d idle, %d active, %d insufficient-data, %d excluded" %
               (len(MIXED_EXPECTED), counts["idle"], counts["active"], counts["insufficient-data"],
                counts["excluded"]))
    assert lines[-1] == summary
    assert lines[-2] == ""


def test_selection_options(lab):
    """include_tags (opt-in), allow_ha, types and a list of nodes."""
    sim = lab.sim([
        guest(200, "opted-in", tags="reap-me"),
        guest(201, "not-opted-in", tags="prod"),
        guest(202, "ha-opted-in", tags="reap-me;web", ha=True),
        guest(203, "ct-opted-in", tags="reap-me", type="lxc"),
        guest(204, "keep-wins", tags="proxreap-keep;reap-me"),
        guest(205, "other-node", tags="reap-me", node="pve2"),
        guest(206, "custom-keep", tags="reap-me;pinned"),
    ])
    conf = lab.config(sim, observe={"nodes": ["pve1", "pve2"], "types": ["qemu"]},
                      select={"include_tags": ["reap-me"], "allow_ha": True,
                              "exclude_tags": ["proxreap-keep", "pinned"]})
    plan = lab.plan(conf)
    got = {vmid: (g["verdict"], g["reasons"]) for vmid, g in plan.items()}
    idle = ["mean cpu 1.00% < 5%", "mean mem 300.00 MiB < 1024 MiB"]
    assert got == {
        200: ("idle", idle),
        201: ("excluded", ["no tag of select.include_tags"]),
        202: ("idle", idle),
        203: ("excluded", ["not in scope (type lxc)"]),
        204: ("excluded", ["opt-out tag 'proxreap-keep'"]),
        205: ("idle", idle),
        206: ("excluded", ["opt-out tag 'pinned'"]),
    }
    assert plan[205]["node"] == "pve2"


def test_thresholds_are_strict(lab):
    """A mean exactly at a threshold is active, just below it idle."""
    sim = lab.sim([
        guest(300, "at-cpu", cpu=0.05, mem_mb=100),
        guest(301, "at-mem", cpu=0.01, mem_mb=1024, maxmem=4096 * MIB),
        guest(302, "below", cpu=0.0499, mem_mb=1023),
    ])
    plan = lab.plan(lab.config(sim))
    assert (plan[300]["verdict"], plan[300]["reasons"]) == ("active", ["mean cpu 5.00% >= 5%"])
    assert (plan[301]["verdict"], plan[301]["reasons"]) == ("active", ["mean mem 1024.00 MiB >= 1024 MiB"])
    assert (plan[302]["verdict"], plan[302]["reasons"]) == \
        ("idle", ["mean cpu 4.99% < 5%", "mean mem 1023.00 MiB < 1024 MiB"])


def bursts(base_cpu, burst_cpu, every, length, mem_mb=200):
    return {"kind": "bursts", "base": {"cpu": base_cpu, "mem_mb": mem_mb},
            "burst": {"cpu": burst_cpu, "mem_mb": mem_mb}, "every": every, "length": length}


def test_bursts_mean_and_cpu_share(lab):
    sim = lab.sim([
        # busy in bursts: 40 % of the time at 90 % -> mean about 36.6 %
        guest(400, "bursty-busy", workload=bursts(0.01, 0.9, 0.5, 0.2)),
        # a short burst (10 %) every second: mean about 2.4 %, but every
        # second some samples are above the 5 % threshold
        guest(401, "bursty-low", workload=bursts(0.005, 0.10, 1.0, 0.2)),
        guest(402, "steady", cpu=0.01, mem_mb=200),
    ])
    with_share = lab.config(sim, name="share.conf", idle={"cpu_share": 0.97})
    without = lab.config(sim, name="plain.conf")
    other = lab.cli_async("plan", "--json", config=without)
    share_plan = lab.plan(with_share)
    r = lab.finish(other)
    assert r.returncode == 0, r.stderr
    plain_plan = plan_by_vmid(r.stdout)

    # Without cpu_share: the mean decides.
    busy = plain_plan[400]
    assert busy["verdict"] == "active"
    assert len(busy["reasons"]) == 1
    m = re.match(r"^mean cpu (\d+\.\d\d)% >= 5%$", busy["reasons"][0])
    assert m, busy["reasons"]
    assert 25.0 < float(m.group(1)) < 50.0
    assert busy["cpu_mean_percent"] == pytest.approx(float(m.group(1)), abs=0.006)
    low = plain_plan[401]
    assert low["verdict"] == "idle", low
    assert low["cpu_mean_percent"] < 4.0
    assert plain_plan[402]["verdict"] == "idle"

    # With cpu_share = 0.97: frequent bursts make the low-mean guest active.
    low = share_plan[401]
    assert low["verdict"] == "active", low
    assert len(low["reasons"]) == 1, low["reasons"]
    m = re.match(r"^cpu below threshold in (\d+\.\d)% of samples < 97%$", low["reasons"][0])
    assert m, low["reasons"]
    assert 50.0 <= float(m.group(1)) <= 95.0
    busy = share_plan[400]
    assert busy["verdict"] == "active"
    assert [r.split(" ")[0:2] for r in busy["reasons"]] == [["mean", "cpu"], ["cpu", "below"]], busy["reasons"]
    assert re.match(r"^cpu below threshold in \d+\.\d% of samples < 97%$", busy["reasons"][1])
    steady = share_plan[402]
    assert (steady["verdict"], steady["reasons"]) == (
        "idle", ["mean cpu 1.00% < 5%", "mean mem 200.00 MiB < 1024 MiB",
                 "cpu below threshold in 100.0% of samples >= 97%"])


def test_network_and_disk_rules(lab):
    """net_kbps / disk_kbps are kilobits per second, in + out and read +
    write; the simulator's rates are kilobits per second per direction."""
    sim = lab.sim([
        # 80 kbit/s in + 80 out = 160 kbit/s network; 16 + 16 = 32 kbit/s disk
        guest(500, "chatty", workload={"kind": "constant", "cpu": 0.01, "mem_mb": 100,
                                       "net_kbps": 80, "disk_kbps": 16}),
        # 8 + 8 = 16 kbit/s network; 400 + 400 = 800 kbit/s disk
        guest(501, "disky", workload={"kind": "constant", "cpu": 0.01, "mem_mb": 100,
                                      "net_kbps": 8, "disk_kbps": 400}),
        guest(502, "quiet", workload={"kind": "constant", "cpu": 0.01, "mem_mb": 100,
                                      "net_kbps": 8, "disk_kbps": 16}),
    ])
    plan = lab.plan(lab.config(sim, idle={"net_kbps": 100.0, "disk_kbps": 500.0}))
    chatty, disky, quiet = plan[500], plan[501], plan[502]
    assert chatty["verdict"] == "active", chatty
    assert len(chatty["reasons"]) == 1
    m = re.match(r"^mean net (\d+\.\d\d) kbit/s >= 100 kbit/s$", chatty["reasons"][0])
    assert m and float(m.group(1)) == pytest.approx(160.0, rel=0.3), chatty["reasons"]
    assert disky["verdict"] == "active", disky
    assert len(disky["reasons"]) == 1
    m = re.match(r"^mean disk (\d+\.\d\d) kbit/s >= 500 kbit/s$", disky["reasons"][0])
    assert m and float(m.group(1)) == pytest.approx(800.0, rel=0.3), disky["reasons"]
    assert quiet["verdict"] == "idle", quiet
    assert len(quiet["reasons"]) == 4
    assert quiet["reasons"][:2] == ["mean cpu 1.00% < 5%", "mean mem 100.00 MiB < 1024 MiB"]
    m = re.match(r"^mean net (\d+\.\d\d) kbit/s < 100 kbit/s$", quiet["reasons"][2])
    assert m and float(m.group(1)) == pytest.approx(16.0, rel=0.3), quiet["reasons"]
    m = re.match(r"^mean disk (\d+\.\d\d) kbit/s < 500 kbit/s$", quiet["reasons"][3])
    assert m and float(m.group(1)) == pytest.approx(32.0, rel=0.3), quiet["reasons"]


def start_plan_and_wait_polls(lab, sim, conf, polls):
    """Start `plan --json` and return once it has made `polls` polls."""
    proc = lab.cli_async("plan", "--json", config=conf)
    wait_until(lambda: len(cluster_requests(sim)) >= polls or proc.poll() is not None,
               message="%d polls by plan" % polls)
    assert proc.poll() is None, "plan ended early: %s" % (proc.communicate(),)
    return proc


def test_restart_mid_window_is_insufficient_data(lab):
    sim = lab.sim([guest(600, "restarts"), guest(601, "steady")])
    conf = lab.config(sim)
    proc = start_plan_and_wait_polls(lab, sim, conf, 10)
    sim.event(600, "restart")
    r = lab.finish(proc)
    assert r.returncode == 0, r.stderr
    plan = plan_by_vmid(r.stdout)
    g = plan[600]
    assert g["verdict"] == "insufficient-data", g
    assert len(g["reasons"]) == 1, g["reasons"]
    m = re.match(r"^uptime (\d+)s shorter than the 2s window$", g["reasons"][0])
    assert m and int(m.group(1)) < 2, g["reasons"]
    assert g["uptime"] == int(m.group(1))
    # A restart does not empty the window: only the uptime rule holds it back.
    assert g["samples"] == WINDOW_SAMPLES and g["coverage"] == 1.0
    assert plan[601]["verdict"] == "idle"


def test_migration_mid_window_clears_the_window(lab):
    sim = lab.sim([guest(700, "wanderer"), guest(701, "steady")])
    conf = lab.config(sim)
    proc = start_plan_and_wait_polls(lab, sim, conf, 10)
    before = len(cluster_requests(sim))   # answered before the move: on pve1
    sim.event(700, "migrate", node="pve2")
    r = lab.finish(proc)
    assert r.returncode == 0, r.stderr
    plan = plan_by_vmid(r.stdout)
    g = plan[700]
    assert g["node"] == "pve2"
    assert g["verdict"] == "insufficient-data", g
    cov = [x for x in g["reasons"] if x.startswith("window coverage")]
    assert len(cov) == 1, g["reasons"]
    m = re.match(r"^window coverage (\d+)% < 90% \((\d+) of 20 samples\)$", cov[0])
    assert m, cov
    samples = int(m.group(2))
    # only the samples taken on pve2 count
    assert samples == g["samples"]
    assert samples <= WINDOW_SAMPLES - before, (samples, before)
    assert samples >= 1
    assert g["coverage"] == pytest.approx(samples / WINDOW_SAMPLES)
    assert int(m.group(1)) == round(samples * 100 / WINDOW_SAMPLES)
    assert plan[701]["verdict"] == "idle"
    assert plan[701]["node"] == "pve1"


def test_plan_makes_one_request_per_poll(lab):
    """One /cluster/resources per poll; after the window, the configuration
    of each idle guest (GET config current and with pending changes, and its
    snapshots: what an archive would hold), and of no other guest."""
    sim = lab.sim([guest(800), guest(801, type="lxc"), guest(802, status="stopped"),
                   guest(803, cpu=0.5)])
    lab.plan(lab.config(sim))
    reqs = sim.requests()
    assert [(r["method"], r["path"]) for r in reqs[:1]] == [("GET", "/version")]
    polls = [r for r in reqs[1:] if r["path"] == "/cluster/resources"]
    confs = reqs[1 + len(polls):]
    assert len(polls) == WINDOW_SAMPLES
    assert reqs[1:1 + len(polls)] == polls, "config reads only after the window"
    assert sorted((r["method"], r["path"], str(r["query"].get("current"))) for r in confs) == [
        ("GET", "/nodes/pve1/lxc/801/config", "1"), ("GET", "/nodes/pve1/lxc/801/config", "None"),
        ("GET", "/nodes/pve1/lxc/801/snapshot", "None"),
        ("GET", "/nodes/pve1/qemu/800/config", "1"), ("GET", "/nodes/pve1/qemu/800/config", "None"),
        ("GET", "/nodes/pve1/qemu/800/snapshot", "None")]
    rest = polls
    for r in rest:
        assert (r["method"], r["path"], r["query"]) == ("GET", "/cluster/resources", {"type": "vm"}), r
        assert r["status"] == 200 and r["auth"] == "token" and r["authid"] == "proxreap@pve!reaper"
    # evenly spread over the window, not bunched
    span = rest[-1]["t"] - rest[0]["t"]
    assert 1.5 < span < 4.0, span


ODD_NAMES = {
    300: 'quote"and\\backslash',
    301: "tab\tnewline\ncontrol\x01",
    302: "unicode-серверы-日本-é",
}


def test_names_survive_json_output_exactly(lab):
    """Names reach plan --json and the status file byte for byte, whatever
    they hold (the status file is written by proxreap's own JSON writer)."""
    sim = lab.sim([guest(v, n) for v, n in ODD_NAMES.items()])
    config = lab.config(sim)
    guests = lab.plan(config)
    assert {v: guests[v]["name"] for v in ODD_NAMES} == ODD_NAMES
    for v in ODD_NAMES:
        assert guests[v]["verdict"] == "idle"
        assert guests[v]["cpu_mean_percent"] == pytest.approx(1.0)
        assert guests[v]["mem_mean_mb"] == pytest.approx(300.0)
    d = lab.daemon(config)
    doc = d.wait_status(lambda doc: len(doc["guests"]) == len(ODD_NAMES))
    assert {g["vmid"]: g["name"] for g in doc["guests"]} == ODD_NAMES


def test_plan_history_judges_every_guest_at_once(lab):
    """plan --history DUR: one poll, then each guest judged by its RRD over
    DUR by every idle rule (what the history veto says), with the numbers;
    rules first, then the configuration of the idle ones."""
    import json
    quiet = {"kind": "constant", "cpu": 0.01, "mem_mb": 200}
    sim = lab.sim([
        guest(601, "replica", cpu=0.01, mem_mb=200,
              history=[{"until": -1200, "workload": dict(quiet, net_kbps=5000)}]),
        guest(603, "nightly", cpu=0.01, mem_mb=200,
              history=[{"until": -1200, "workload": dict(quiet, cpu=0.5)}]),
        guest(604, "young", cpu=0.01, mem_mb=200, uptime=1200),
        guest(605, "abandoned", cpu=0.01, mem_mb=200),
        guest(606, "protected", cpu=0.01, mem_mb=200, protection=1),
        guest(607, "keep", cpu=0.01, mem_mb=200, tags="proxreap-keep"),
    ])
    cfg = lab.config(sim, idle={"net_kbps": 100})
    r = lab.cli("plan", "--history", "1h", "--json", config=cfg)
    assert r.returncode == 0, r.stderr
    got = {g["vmid"]: g for g in json.loads(r.stdout)}
    assert {v: g["verdict"] for v, g in got.items()} == {
        601: "active", 603: "active", 604: "insufficient-data", 605: "idle", 606: "excluded",
        607: "excluded"}, got
    assert got[601]["reasons"][0] == "network up to 10000.0 kbit/s >= 100 kbit/s", got[601]
    assert got[603]["reasons"][0] == "cpu average up to 50.00% >= 5%", got[603]
    assert got[604]["reasons"][0].startswith("its history covers too little of the last 1h"), got[604]
    # observe mode's file: judged by reap mode's rules (disk at its default)
    assert got[605]["reasons"] == ["cpu average up to 1.00% < 5%", "mem up to 200 MiB < 1024 MiB",
                                   "network up to 0.0 kbit/s < 100 kbit/s",
                                   "disk up to 0.0 kbit/s < 1000 kbit/s"], got[605]
    h = got[605]["history"]
    assert h["timeframe"] == "hour" and h["rows"] >= 59 and h["rows_with_data"] == h["rows"], h
    assert got[606]["reasons"] == ["protected (protection=1)"], got[606]
    assert got[607]["reasons"] == ["opt-out tag 'proxreap-keep'"], got[607]
    # One poll: no window's wait.
    assert len([x for x in sim.requests() if x["path"] == "/cluster/resources"]) == 1
    r = lab.cli("plan", "--history", "1h", config=cfg)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "judged by the RRD over the last 1h (the highest of each rule's row averages)", lines
    row = [x for x in lines if x.startswith("601 ")][0]
    assert re.search(r"\bactive\b.* 10000\.0 .*network up to 10000\.0 kbit/s >= 100 kbit/s", row), row
    # what one threshold would change
    at = lines.index("what one threshold changes (guests held back by one rule alone):")
    assert lines[at + 1:] == [
        "  idle.net_kbps above 10000.00 would make 601 ('replica') idle by its history",
        "  idle.cpu_percent above 50.00 would make 603 ('nightly') idle by its history"], lines
    # plan in mark mode: the reaper's answer, its history included
    cfg2 = lab.config(sim, name="mark.conf", idle={"net_kbps": 100},
                      reap={"mode": "mark", "history": "1h"})
    r = lab.cli("plan", "--json", config=cfg2)
    assert r.returncode == 0, r.stderr
    got = {g["vmid"]: g for g in json.loads(r.stdout)}
    assert got[603]["verdict"] == "active", got[603]
    assert got[603]["reasons"][0] == "busy in the last 1h by its history (cpu average up to 50.00% >= 5%)"
    assert got[604]["verdict"] == "insufficient-data", got[604]
    assert got[605]["verdict"] == "idle", got[605]
    r = lab.cli("plan", config=cfg2)
    assert "3 of the idle guests not idle by their history over the last 1h (reap.history)" in r.stdout, r.stdout
    r = lab.cli("plan", "--history", "5m", config=cfg)
    assert r.returncode == 2 and "--history '5m' is not a duration from 1h to 365d" in r.stderr, r
