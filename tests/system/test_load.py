"""Load: 50,000 guests, the daemon in observe mode, many polls.

The simulator serves its generated realistic mix (`generate`, see
tests/pve-sim/README.md: templates, stopped, idle, busy, bursty, day/night,
random, locked, HA, tagged, pooled, unknown...) on three nodes, with
pvestatd's 10 s sample period, so the numbers move while the daemon polls.
The test asserts, from the outside and without reading the daemon's log:

  * every poll succeeded and finished within the interval: the daemon's own
    counters (status file api.poll_overruns / max_poll_seconds, Prometheus
    proxreap_poll_overruns_total / proxreap_poll_duration_max_seconds),
    which measure each poll from its scheduled time until its status and
    metrics files are written;
  * exactly one API request per poll: the simulator's request log holds
    only GET /cluster/resources, one per poll, all answered 200;
  * memory is flat after the warm-up: VmRSS is sampled from /proc after
    every poll; the warm-up ends with the first full window (window /
    interval + 1 polls: by then every ring slot of every guest has been
    written once, so all the table's pages are resident). After it, the
    largest RSS may exceed the RSS at that point by at most RSS_SLACK_KIB
    (1 MiB): allocator noise (stdio and curl buffers, a few pages), while
    any leak per guest - even 1 byte per guest per poll is 50 KB a poll at
    this size - or per-poll growth of more than 1 MiB / measured polls
    breaks it. Smaller per-poll leaks are the job of bench/load.py (1,000
    polls) and of LeakSanitizer in the ASan pass, where RSS says nothing
    (freed memory sits in ASan's quarantine: RSS climbs ~0.8 MiB a poll
    there) and is therefore not asserted;
  * the verdicts fit the generated fleet, guest by guest.

Timing is never asserted tightly: the interval is generous for a loaded
2-core machine (measured on one: a whole poll takes 0.2-0.6 s in the normal
build, at most 1.1 s, against a 3 s interval; 0.4-1.6 s under ASan+UBSan
against 6 s). Speed goals are bench/load.py's.

PROXREAP_LOAD_POLLS sets the number of polls (default 26 in the normal
build, 13 under ASan: about 85-90 s each); PROXREAP_LOAD_INTERVAL (e.g.
"3s") the interval.
"""

import os
import re
import time

from conftest import PROXREAPD, Sim, guest, scenario, wait_until
from simctl import read_prom_file

from pvesim.model import generate_fleet  # tests/pve-sim is on sys.path (conftest)

GUESTS = 50000
SEED = 7
NODES = ["pve1", "pve2", "pve3"]
RSS_SLACK_KIB = 1024


def sanitized_build():
    """True for an ASan/UBSan build of the daemon."""
    with open(PROXREAPD, "rb") as fh:
        return b"__asan_init" in fh.read()


ASAN = sanitized_build()
WINDOW_SAMPLES = 3 if ASAN else 5
POLLS = int(os.environ.get("PROXREAP_LOAD_POLLS") or (13 if ASAN else 26))
INTERVAL = os.environ.get("PROXREAP_LOAD_INTERVAL") or ("6s" if ASAN else "3s")


def seconds(text):
    m = re.match(r"^([0-9.]+)(ms|s)$", text)
    assert m, "PROXREAP_LOAD_INTERVAL must be like 3s or 2500ms"
    return float(m.group(1)) / (1000.0 if m.group(2) == "ms" else 1.0)


def polls_of(m):
    return int(m["proxreap_polls_total.ok"] + m["proxreap_polls_total.failed"])


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS for pid %d" % pid)


def expected_verdicts(window_s):
    """vmid -> set of acceptable verdicts, from the generated specs and the
    default policy (cpu < 5 %, mem < 1024 MiB, proxreap-keep opts out,
    HA-managed and locked guests, templates and stopped guests are
    excluded)."""
    out = {}
    for g in generate_fleet({"count": GUESTS, "seed": SEED, "first_vmid": 1000}, NODES):
        tags = (g.get("tags") or "").split(";")
        wl = g.get("workload") or {}
        if g.get("template") or g.get("status") == "stopped" or g.get("lock") or g.get("ha") \
                or "proxreap-keep" in tags:
            ok = {"excluded"}
        elif g.get("status") == "unknown":
            ok = {"insufficient-data"}             # stale for good: no numbers
        elif g.get("uptime", 0) < window_s + 60:
            ok = {"idle", "active", "insufficient-data"}   # started lately
        elif wl.get("kind") == "constant":
            idle = wl["cpu"] * 100 < 5 and wl["mem_mb"] < 1024
            ok = {"idle" if idle else "active"}
        else:                                       # bursts, day/night, random
            ok = {"idle", "active"}
        if g.get("events"):
            # an unknown window (0-600 s after the simulator started, for
            # up to 900 s): 'unknown' entries carry no status or numbers
            ok = ok | {"insufficient-data"}
        out[g["vmid"]] = ok
    return out


def test_50000_guests_flat_memory_every_poll_within_the_interval(lab):
    interval = seconds(INTERVAL)
    window = interval * WINDOW_SAMPLES
    warm = WINDOW_SAMPLES + 1                       # polls in the first full window
    assert POLLS >= warm + 5, "PROXREAP_LOAD_POLLS must be at least %d" % (warm + 5)

    sc = scenario([], nodes=NODES, stats_period=10,
                  generate={"count": GUESTS, "seed": SEED, "first_vmid": 1000})
    sim = Sim(sc, workdir=os.path.join(lab.dir, "sim-load"), startup_timeout=180)
    lab.sims.append(sim)
    sim.start()
    # The simulator renders every entry once on the first request (seconds
    # for 50,000 guests): not part of the daemon's first poll.
    r = sim.api("GET", "/cluster/resources", {"type": "vm"}, timeout=300)
    assert r.status == 200 and len(r.json["data"]) == GUESTS
    sim.clear_requests()

    prom = os.path.join(lab.dir, "proxreap.prom")
    conf = lab.config(sim, observe={"interval": INTERVAL, "window": "%gs" % window},
                      api={"timeout": "60s"}, status={"prometheus_file": prom})
    d = lab.daemon(conf)

    # One RSS sample per poll, taken when the poll's metrics file appears.
    rss = {}
    deadline = time.monotonic() + POLLS * interval * 3 + 300
    last = 0
    while last < POLLS + 1:        # poll N+1's files count polls 1..N whole
        assert time.monotonic() < deadline, "only %d of %d polls; log:\n%s" % (last, POLLS, d.log()[-3000:])
        d.assert_running()
        m = read_prom_file(prom)
        if m is not None and polls_of(m) != last:
            last = polls_of(m)
            rss.setdefault(last, rss_kib(d.pid))
        time.sleep(0.05)
    m = read_prom_file(prom)
    assert d.stop() == 0
    final = read_prom_file(prom)             # the files of the last poll
    doc = d.status()
    polls = polls_of(final)

    # No failed poll; every poll finished within the interval.
    api = doc["api"]
    assert api["polls_failed"] == 0 and final["proxreap_polls_total.failed"] == 0, api
    assert api["poll_overruns"] == 0 and final["proxreap_poll_overruns_total"] == 0, \
        "polls overran the %s interval: %s" % (INTERVAL, api)
    assert 0 < api["max_poll_seconds"] < interval, api
    assert 0 < final["proxreap_poll_duration_max_seconds"] < interval
    assert polls_of(m) >= POLLS + 1 and polls >= polls_of(m)

    # Exactly one request per poll: GET /cluster/resources, answered.
    reqs = sim.requests()
    assert len(reqs) == polls, "%d requests for %d polls" % (len(reqs), polls)
    assert all((r["method"], r["path"], r["query"], r["status"]) ==
               ("GET", "/cluster/resources", {"type": "vm"}, 200) for r in reqs), \
        [r for r in reqs if r["path"] != "/cluster/resources" or r["status"] != 200][:5]
    assert final["proxreap_api_requests_total"] == polls
    assert final["proxreap_api_errors_total"] == 0

    # Memory flat after the first full window (not under ASan, see above).
    after = {p: v for p, v in rss.items() if p >= warm}
    print("load: %d guests, %d polls every %s, longest poll %.3fs, last %.3fs, RSS KiB %s"
          % (GUESTS, polls, INTERVAL, api["max_poll_seconds"], api["previous_poll_seconds"],
             " ".join("%d:%d" % kv for kv in sorted(rss.items()))))
    assert len(after) >= (POLLS - warm) // 2, "too few RSS samples: %s" % sorted(rss)
    if not ASAN:
        base = after[min(after)]
        top = max(after.values())
        assert top <= base + RSS_SLACK_KIB, \
            "RSS grew from %d KiB (poll %d) to %d KiB: %s" % (base, min(after), top, sorted(rss.items()))

    # The verdicts: every guest tracked, each as the generated fleet says.
    guests = doc["guests"]
    assert len(guests) == GUESTS and doc["summary"]["tracked"] == GUESTS
    want = expected_verdicts(window)
    wrong = [(g["vmid"], g["verdict"], sorted(want[g["vmid"]]), g["reasons"])
             for g in guests if g["verdict"] not in want[g["vmid"]]]
    assert not wrong, "%d guests with unexpected verdicts, e.g. %s" % (len(wrong), wrong[:5])
    counts = {}
    for g in guests:
        counts[g["verdict"]] = counts.get(g["verdict"], 0) + 1
    assert counts == {k: v for k, v in doc["summary"].items() if k != "tracked" and v}
    for verdict in ("idle", "active", "excluded"):
        # the mix: 30 % idle by workload, ~10 % stopped/templates...
        assert counts[verdict] > GUESTS // 10, counts
    for verdict, n in counts.items():
        assert final["proxreap_guests." + verdict] == n
    assert all(g["coverage"] == 1.0 for g in guests if g["verdict"] in ("idle", "active"))


def test_a_poll_longer_than_the_interval_is_counted_and_logged_once(lab):
    """The counters the load test relies on do count: three answers held
    back 1 s each against a 300 ms interval are three overruns (at least:
    a loaded machine may add its own), a max of at least 1 s, one notice
    when it starts and one when polls fit again."""
    sim = lab.sim([guest(100, "a"), guest(101, "b")])
    prom = os.path.join(lab.dir, "proxreap.prom")
    d = lab.daemon(lab.config(sim, observe={"interval": "300ms"}, status={"prometheus_file": prom}))
    before = d.wait_polls(3)["api"]["poll_overruns"]
    sim.fault(kind="delay", seconds=1.0, path="^/cluster/resources$", count=3)
    d.wait_log(r"^proxreapd: a poll took [0-9.]+s, longer than the 0\.3s interval: the next poll starts late$")
    d.wait_log(r"^proxreapd: polls finish within the 0\.3s interval again$")
    n = d.status()["api"]["polls_ok"]
    doc = d.wait_polls(n + 2)
    api = doc["api"]
    assert api["poll_overruns"] >= before + 3, api
    assert api["max_poll_seconds"] >= 1.0 and api["polls_failed"] == 0, api
    # The metrics file is written after the status file, and replaced
    # whole: wait for the one of the same poll (or a later one).
    def metrics_of_that_poll():
        m = read_prom_file(prom)
        return m if m and polls_of(m) >= api["polls_ok"] else None
    m = wait_until(metrics_of_that_poll, message="the metrics file of the poll of the status file")
    assert m["proxreap_poll_overruns_total"] >= before + 3
    assert m["proxreap_poll_duration_max_seconds"] >= 1.0
    # logged when it starts, not at every poll: the three in a row, one line
    lines = d.count(r"a poll took .* longer than the")
    assert 1 <= lines <= api["poll_overruns"] - 2, d.log()
