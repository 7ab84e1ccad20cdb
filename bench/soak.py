#!/usr/bin/python3
"""Memory soak: proxreapd against a large simulated cluster for many polls.

Starts tests/pve-sim with a generated fleet, runs build/proxreapd in observe
mode, and samples the daemon's resident memory (VmRSS, /proc) and heap-side
numbers from its status file while it polls. Prints a table and exits non-zero
if memory grew after the warm-up (first full window).

    bench/soak.py [--guests 10000] [--polls 5000] [--interval 200ms]
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "pve-sim"))
from simctl import Sim  # noqa: E402


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--guests", type=int, default=10000)
    ap.add_argument("--polls", type=int, default=5000)
    ap.add_argument("--interval", default="200ms")
    ap.add_argument("--window", default="10s")
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    args = ap.parse_args()

    token = "soak-secret"
    scenario = {"nodes": ["pve1", "pve2", "pve3"], "tokens": {"proxreap@pve!reaper": token},
                "auth_fail_delay": 0, "stats_period": 0.2,
                "generate": {"count": args.guests, "seed": 7, "first_vmid": 1000}}
    work = tempfile.mkdtemp(prefix="proxreap-soak-")
    with open(os.path.join(work, "token"), "w") as fh:
        fh.write(token)
    os.chmod(os.path.join(work, "token"), 0o600)
    status = os.path.join(work, "status.json")
    with Sim(scenario) as sim:
        conf = os.path.join(work, "proxreap.conf")
        with open(conf, "w") as fh:
            fh.write('api = { url = "%s"; token_id = "proxreap@pve!reaper"; token_secret_file = "%s/token"; timeout = "30s"; };\n'
                     'observe = { interval = "%s"; window = "%s"; nodes = "all"; };\n'
                     'status = { file = "%s"; };\n' % (sim.url, work, args.interval, args.window, status))
        log = open(os.path.join(work, "daemon.log"), "w")
        d = subprocess.Popen([os.path.join(args.build, "proxreapd"), "-c", conf, "--foreground"],
                             stderr=log)
        rows = []
        start = time.time()
        warm = None
        try:
            while True:
                time.sleep(5)
                if d.poll() is not None:
                    print("daemon exited with", d.returncode, file=sys.stderr)
                    return 1
                try:
                    with open(status) as fh:
                        doc = json.load(fh)
                except (OSError, ValueError):
                    continue
                polls = doc["api"]["polls_ok"] + doc["api"]["polls_failed"]
                row = (time.time() - start, polls, doc["api"]["polls_failed"],
                       doc["summary"]["tracked"], rss_kib(d.pid), doc["api"]["last_poll_seconds"])
                rows.append(row)
                print("t=%6.0fs polls=%5d failed=%d tracked=%d rss=%d KiB last_poll=%.3fs" % row,
                      flush=True)
                if warm is None and polls * 1.0 > 2 * len(rows) and row[3] >= args.guests:
                    warm = row
                if polls >= args.polls:
                    break
        finally:
            d.send_signal(signal.SIGTERM)
            d.wait(timeout=30)
    after = [r for r in rows if warm and r[0] >= warm[0] + 30]
    if not after:
        print("not enough samples after warm-up")
        return 1
    lo, hi = min(r[4] for r in after), max(r[4] for r in after)
    print("RSS after warm-up: min %d KiB, max %d KiB, growth %d KiB over %d polls"
          % (lo, hi, after[-1][4] - after[0][4], after[-1][1] - after[0][1]))
    # Allow allocator noise (a few pages), not growth proportional to polls.
    return 0 if after[-1][4] - after[0][4] <= 512 else 1


if __name__ == "__main__":
    sys.exit(main())
