#!/usr/bin/python3
"""Load: proxreapd against a large simulated cluster, for the record.

Starts tests/pve-sim with a generated fleet (the simulator's realistic mix,
`generate` in tests/pve-sim/README.md), runs proxreapd in observe mode with
a status file and a Prometheus textfile, and records every poll: the
daemon's own durations (from the Prometheus file and the head of the
status file), its resident memory (VmRSS) and CPU time (/proc). Prints a
table and exits non-zero if a poll failed or overran its interval, a poll
made other than exactly one API request, or memory grew after the warm-up.

    bench/load.py [--guests 50000] [--polls 1000] [--interval 1s]
                  [--window 30s] [--stats-period 10] [--build DIR]

Durations:
  poll        fetch + decode + window update + verdicts
              (proxreap_poll_duration_seconds, per poll)
  whole poll  from the poll's scheduled time until its status file and
              Prometheus file were written (status file
              api.previous_poll_seconds, one poll later; the daemon's
              proxreap_poll_duration_max_seconds is the max)
Memory: VmRSS sampled after every poll; "warm-up" is the RSS after the
first full window (window/interval + 1 polls).
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "pve-sim"))
from simctl import Sim, read_prom_file  # noqa: E402

TOKEN_ID = "proxreap@pve!reaper"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# Memory growth allowed after the warm-up: allocator noise (a few pages of
# stdio and curl buffers), not growth that scales with polls or guests.
RSS_SLACK_KIB = 1024


def seconds(text):
    m = re.match(r"^([0-9.]+)(ms|s|min)?$", text)
    if not m:
        raise argparse.ArgumentTypeError("not a duration: %r" % text)
    return float(m.group(1)) * {"ms": 0.001, "s": 1, "min": 60, None: 1}[m.group(2)]


def proc_sample(pid):
    """(VmRSS KiB, CPU seconds user+system) of pid."""
    with open("/proc/%d/status" % pid) as fh:
        rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS:"))
    with open("/proc/%d/stat" % pid) as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return rss, (int(f[11]) + int(f[12])) / CLK_TCK


def read_status_head(path):
    """The status document without its guests: the header is written
    first, so the first few KiB hold it."""
    with open(path, "rb") as fh:
        head = fh.read(8192).decode("utf-8", "replace")
    i = head.find(',"guests":')
    return json.loads(head[:i] + "}") if i > 0 else None


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--guests", type=int, default=50000)
    ap.add_argument("--polls", type=int, default=1000)
    ap.add_argument("--interval", type=seconds, default=1.0)
    ap.add_argument("--window", type=seconds, default=30.0)
    ap.add_argument("--stats-period", type=float, default=10.0,
                    help="pvestatd sample period of the simulator (s)")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    # Stopped early: still stop the daemon and the simulator (finally, with).
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    warm_poll = int(round(args.window / args.interval)) + 1
    if args.polls < warm_poll + 10:
        ap.error("--polls must be at least window/interval + 11 (%d)" % (warm_poll + 10))

    work = tempfile.mkdtemp(prefix="proxreap-load-")
    token = "load-secret-%d" % os.getpid()
    tfile = os.path.join(work, "token")
    with open(tfile, "w") as fh:
        fh.write(token)
    os.chmod(tfile, 0o600)
    status = os.path.join(work, "status.json")
    prom = os.path.join(work, "proxreap.prom")
    scenario = {"nodes": ["pve1", "pve2", "pve3"], "tokens": {TOKEN_ID: token}, "auth_fail_delay": 0,
                "stats_period": args.stats_period,
                "generate": {"count": args.guests, "seed": args.seed, "first_vmid": 1000}}
    rows = []          # (polls, rss KiB, cpu s, poll s, whole previous poll s, overruns)
    t0 = time.monotonic()
    with Sim(scenario, workdir=os.path.join(work, "sim"), startup_timeout=120) as sim:
        # The simulator renders every guest's entry once (seconds at 50,000
        # guests); the daemon's first poll should not wait for that.
        r = sim.api("GET", "/cluster/resources", {"type": "vm"}, timeout=300)
        assert r.status == 200 and len(r.json["data"]) == args.guests, r.status
        sim.clear_requests()
        conf = os.path.join(work, "proxreap.conf")
        with open(conf, "w") as fh:
            fh.write('api = { url = "%s"; token_id = "%s"; token_secret_file = "%s"; timeout = "30s"; };\n'
                     'observe = { interval = "%gs"; window = "%gs"; nodes = "all"; };\n'
                     'status = { file = "%s"; prometheus_file = "%s"; };\n'
                     % (sim.url, TOKEN_ID, tfile, args.interval, args.window, status, prom))
        log = open(os.path.join(work, "daemon.log"), "wb")
        d = subprocess.Popen([os.path.join(args.build, "proxreapd"), "-c", conf, "--foreground"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        last = 0
        try:
            while last < args.polls + 1:
                time.sleep(min(0.05, args.interval / 20))
                if d.poll() is not None:
                    print("proxreapd exited with status %s" % d.returncode, file=sys.stderr)
                    return 1
                m = read_prom_file(prom)
                if m is None:
                    continue
                polls = int(m["proxreap_polls_total.ok"] + m["proxreap_polls_total.failed"])
                if polls == last:
                    continue
                rss, cpu = proc_sample(d.pid)
                head = read_status_head(status)
                prev = head["api"]["previous_poll_seconds"] if head else 0.0
                rows.append((polls, rss, cpu, m["proxreap_poll_duration_seconds"], prev,
                             int(m["proxreap_poll_overruns_total"])))
                if polls // 100 != last // 100:
                    print("poll %5d  rss %6d KiB  poll %.3fs  whole %.3fs  overruns %d  %.0fs"
                          % (polls, rss, rows[-1][3], prev, rows[-1][5], time.monotonic() - t0),
                          file=sys.stderr, flush=True)
                last = polls
        finally:
            d.send_signal(signal.SIGTERM)
            rc = d.wait(60)
            log.close()
        wall = time.monotonic() - t0
        final = read_prom_file(prom)
        head = read_status_head(status)
        requests = sum(1 for r in sim.requests() if r["path"] == "/cluster/resources")
    if rc != 0:
        print("proxreapd exited with status %d on SIGTERM" % rc, file=sys.stderr)
        return 1
    polls = int(final["proxreap_polls_total.ok"] + final["proxreap_polls_total.failed"])
    failed = int(final["proxreap_polls_total.failed"])
    # Every poll of the run, counted by itself once: polls the sampler
    # missed (two within one sampling step) are simply not in rows.
    seen = {}
    for r in rows:
        seen.setdefault(r[0], r)
    per = [seen[p] for p in sorted(seen)]
    durs = [r[3] for r in per]
    whole = [r[4] for r in per if r[0] >= 2]   # whole duration of poll r[0]-1
    warm = next(r for r in per if r[0] >= warm_poll)
    after = [r for r in per if r[0] >= warm[0]]
    rss_max = max(r[1] for r in after)
    end = per[-1]
    cpu_per_poll = (end[2] - warm[2]) / max(1, end[0] - warm[0])
    overruns = int(final["proxreap_poll_overruns_total"])
    max_whole = final["proxreap_poll_duration_max_seconds"]

    def ms(v):
        return "%.1f ms" % (v * 1000)

    table = [
        ("guests", "%d (generated, seed %d, 3 nodes)" % (args.guests, args.seed)),
        ("polls", "%d (%d failed), %d sampled, %.0f s wall" % (polls, failed, len(per), wall)),
        ("interval / window", "%g s / %g s (%d samples)" % (args.interval, args.window, warm_poll - 1)),
        ("poll (fetch..verdicts)", "min %s  median %s  p99 %s  max %s" % (
            ms(min(durs)), ms(pct(durs, 50)), ms(pct(durs, 99)), ms(max(durs)))),
        ("whole poll (..files)", "min %s  median %s  p99 %s  max %s (daemon's max %s)" % (
            ms(min(whole)), ms(pct(whole, 50)), ms(pct(whole, 99)), ms(max(whole)), ms(max_whole))),
        ("overruns", "%d" % overruns),
        ("RSS warm-up (poll %d)" % warm[0], "%d KiB" % warm[1]),
        ("RSS end (poll %d)" % end[0], "%d KiB" % end[1]),
        ("RSS max after warm-up", "%d KiB (%+d KiB)" % (rss_max, rss_max - warm[1])),
        ("CPU per poll", "%.3f s (after warm-up)" % cpu_per_poll),
        ("requests per poll", "%.3f (%d GET /cluster/resources)" % (requests / polls, requests)),
        ("verdicts", json.dumps(head["summary"])),
    ]
    w = max(len(k) for k, _ in table)
    for k, v in table:
        print("%-*s  %s" % (w, k, v))
    ok = (failed == 0 and overruns == 0 and requests == polls and rss_max <= warm[1] + RSS_SLACK_KIB)
    if args.keep:
        print("work directory: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
