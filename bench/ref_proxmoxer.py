#!/usr/bin/python3
"""The Python reference of the benchmark: the method proxreap replaces.

What an admin would otherwise run, written the way a reasonable engineer
would with Debian's python3-proxmoxer: every interval, one
GET /cluster/resources?type=vm through a ProxmoxAPI session (TLS verified,
API token); for every guest, its (cpu, mem) sample appended to a
deque(maxlen=window) kept per vmid; guests that left the cluster dropped;
every guest with a full window classified idle when its mean CPU (the
`cpu` field, a fraction of its cores, times 100) is below --cpu-percent and
its mean memory below --mem-mb MiB. Stopped guests report cpu and mem 0 and
so count as idle, as in the study.

The benchmark protocol (bench/bench.py): after every poll one JSON line
{"poll": N, "cpu": user+system CPU seconds so far, "guests": entries,
"idle": idle guests}; at the end {"done": true, "state_bytes": the deep
size of the history, "peak_rss_kib": VmHWM}. Any failure: a message on stderr, exit 1.
"""
import argparse
import collections
import json
import resource
import statistics
import sys
import time
from urllib.parse import urlsplit

from proxmoxer import ProxmoxAPI

MIB = 1024 * 1024


def cpu_seconds():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def peak_rss_kib():
    """VmHWM: ru_maxrss would start from the RSS of the harness that forked us."""
    with open("/proc/self/status") as fh:
        return next(int(x.split()[1]) for x in fh if x.startswith("VmHWM:"))


def deep_size(obj, seen=None):
    """sys.getsizeof of obj and everything it holds."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(deep_size(k, seen) + deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, (list, tuple, set, collections.deque)):
        size += sum(deep_size(x, seen) for x in obj)
    return size


def classify(history, window, cpu_percent, mem_mb):
    """vmids whose full window is idle."""
    idle = []
    for vmid, samples in history.items():
        if len(samples) < window:
            continue
        cpu = statistics.fmean(s[0] for s in samples) * 100
        mem = statistics.fmean(s[1] for s in samples) / MIB
        if cpu < cpu_percent and mem < mem_mb:
            idle.append(vmid)
    return idle


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True, help="https://HOST:PORT")
    ap.add_argument("--token-id", required=True, help="USER@REALM!TOKENNAME")
    ap.add_argument("--token-file", required=True)
    ap.add_argument("--cacert", required=True)
    ap.add_argument("--polls", type=int, required=True)
    ap.add_argument("--interval", type=float, required=True)
    ap.add_argument("--window-samples", type=int, default=60)
    ap.add_argument("--cpu-percent", type=float, default=5.0)
    ap.add_argument("--mem-mb", type=float, default=1024.0)
    args = ap.parse_args()

    url = urlsplit(args.url)
    user, _, token_name = args.token_id.partition("!")
    with open(args.token_file) as fh:
        secret = fh.read().strip()
    proxmox = ProxmoxAPI(url.hostname, port=url.port, user=user, token_name=token_name,
                         token_value=secret, verify_ssl=args.cacert, timeout=60)

    history = {}
    start = time.monotonic()
    for n in range(1, args.polls + 1):
        due = start + (n - 1) * args.interval
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        guests = proxmox.cluster.resources.get(type="vm")
        present = set()
        for g in guests:
            vmid = g["vmid"]
            present.add(vmid)
            samples = history.get(vmid)
            if samples is None:
                samples = history[vmid] = collections.deque(maxlen=args.window_samples)
            samples.append((g.get("cpu", 0), g.get("mem", 0)))
        for vmid in set(history) - present:
            del history[vmid]
        idle = classify(history, args.window_samples, args.cpu_percent, args.mem_mb)
        print(json.dumps({"poll": n, "cpu": cpu_seconds(), "guests": len(guests), "idle": len(idle)}),
              flush=True)
    # Measured before deep_size() walks (and allocates for) the history.
    peak = peak_rss_kib()
    print(json.dumps({"done": True, "state_bytes": deep_size(history), "peak_rss_kib": peak}),
          flush=True)
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # one line naming the problem, as the protocol asks
        print("ref_proxmoxer: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
