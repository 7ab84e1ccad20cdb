#!/usr/bin/python3
"""proxreap's cost on a node, side by side with the Python approach it
replaces and with the floor (fetch and parse, nothing else).

For each fleet size the harness starts tests/pve-sim over TLS with a
generated fleet (the simulator's realistic mix, seed 7, three nodes) and
runs, one after the other on the same simulator, for the same number of
polls at the same interval, with the same 60-sample window:

  proxreapd      the daemon in observe mode, with its status file and
                 Prometheus file (what an admin runs)
  plan           `proxreap plan --json`: one window in the foreground
  python         bench/ref_proxmoxer.py: the study's method with Debian's
                 python3-proxmoxer (average CPU and memory per guest)
  floor-yajl     bench/floor.c: libcurl and yajl's callback parser only
  floor-jansson  bench/floor.c --parser jansson: libcurl and jansson's tree

Measured for each, in each run, the median over runs reported:

  CPU per poll   user+system CPU seconds of the process between its first
                 and its last poll, divided by the polls in between (the
                 programs report their own getrusage() after every poll;
                 proxreapd in its Prometheus file). plan has no per-poll
                 report: its whole run (start-up included) / polls.
  peak RSS       VmHWM of the process, KiB: proxreapd's own metric, the
                 others' last line, sampled from /proc for plan
  state/guest    bytes kept per tracked guest between polls: proxreapd's
                 proxreap_guest_state_bytes, the Python reference's deep
                 sys.getsizeof of its history, 0 for the floor
  requests/poll  GET /cluster/resources per poll, from the simulator's
                 request log, and the other requests of the whole run

and once, for the record, proxreapd under callgrind: instructions per poll
(the poll timer's callback: fetch, decode, windows, verdicts, status and
metrics files), which stays the same on a noisy machine.

    bench/bench.py [--sizes 100,1000,10000,50000] [--polls 70] [--runs 3]
                   [--tools proxreapd,plan,python,floor-yajl,floor-jansson]
                   [--callgrind-size 10000] [--build build]
                   [--floor build-bench/floor] [--out build-bench]
    bench/bench.py --smoke      a quick run: 100 and 1,000 guests, 5 polls

Writes OUT/results.json (every run), OUT/results.md (the tables of
docs/performance.md) and OUT/cpu-per-poll.png (gnuplot). Exits non-zero if
a program failed or a result is impossible (wrong guest count, proxreapd
sending more than one request per poll); the targets of issue 6 are
reported, not enforced.
"""
import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(TOP, "tests", "pve-sim"))
from simctl import Sim, read_prom_file  # noqa: E402

PYTHON = "/usr/bin/python3"
TOKEN_ID = "proxreap@pve!reaper"
TOOLS = ["proxreapd", "plan", "python", "floor-yajl", "floor-jansson"]
WINDOW_SAMPLES = 60
# How long one program may take for its polls before it counts as hung.
SLACK_S = 120


class Failed(Exception):
    pass


def interval_for(size):
    """Short, so that a run takes seconds, not the 10 minutes of a real
    window: CPU per poll does not depend on the interval, and a program
    whose poll takes longer simply polls again at once (the window still
    holds 60 samples)."""
    return max(0.1, round(size * 1e-5, 2))


def reaped(p):
    """True once the child p has exited; its rusage is then p.rusage.
    (Popen.poll() would reap it without keeping its rusage.)"""
    if p.returncode is None:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if not pid:
            return False
        p.returncode, p.rusage = os.waitstatus_to_exitcode(status), ru
    return True


def wait_child(p, timeout):
    """(exit status, rusage) of a child, killing it after timeout."""
    deadline = time.monotonic() + timeout
    while not reaped(p):
        if time.monotonic() > deadline:
            p.kill()
            deadline = float("inf")
        time.sleep(0.02)
    return p.returncode, p.rusage


def vm_hwm_kib(pid):
    """The peak resident memory of a running process (VmHWM). Not
    ru_maxrss: the kernel starts a child's with the RSS of the process that
    forked it (this harness), which is larger than the floor's."""
    try:
        with open("/proc/%d/status" % pid) as fh:
            return next(int(x.split()[1]) for x in fh if x.startswith("VmHWM:"))
    except (OSError, StopIteration):
        return 0


def duration(seconds):
    """proxreap.conf's form: whole milliseconds."""
    return "%dms" % round(seconds * 1000)


class Bench:
    def __init__(self, args, work):
        self.args = args
        self.work = work
        self.token_file = os.path.join(work, "token")
        self.secret = "bench-secret-%d" % os.getpid()
        with open(self.token_file, "w") as fh:
            fh.write(self.secret)
        os.chmod(self.token_file, 0o600)

    def scenario(self, size):
        return {"nodes": ["pve1", "pve2", "pve3"], "tokens": {TOKEN_ID: self.secret},
                "auth_fail_delay": 0,
                "generate": {"count": size, "seed": 7, "first_vmid": 1000}}

    def config(self, sim, path, interval, window_s, status_dir=None):
        with open(path, "w") as fh:
            fh.write('api = { url = "%s"; token_id = "%s"; token_secret_file = "%s";\n'
                     '        ca_file = "%s"; timeout = "60s"; };\n'
                     'observe = { interval = "%s"; window = "%s"; nodes = "all"; };\n'
                     % (sim.url, TOKEN_ID, self.token_file, sim.ca_file, duration(interval),
                        duration(window_s)))
            if status_dir:
                fh.write('status = { file = "%s/status.json"; prometheus_file = "%s/proxreap.prom"; };\n'
                         % (status_dir, status_dir))
        return path

    # ------------------------------------------------------------ the programs

    def run_proxreapd(self, sim, size, polls, interval, d):
        conf = self.config(sim, os.path.join(d, "proxreap.conf"), interval,
                           interval * WINDOW_SAMPLES, status_dir=d)
        prom = os.path.join(d, "proxreap.prom")
        log = open(os.path.join(d, "proxreapd.log"), "wb")
        p = subprocess.Popen([os.path.join(self.args.build, "proxreapd"), "-c", conf, "--foreground"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        seen = []          # (polls, cpu s, metrics)
        deadline = time.monotonic() + polls * interval + SLACK_S
        try:
            while not seen or seen[-1][0] < polls:
                if reaped(p):
                    raise Failed("proxreapd exited with status %s: %s" % (p.returncode, tail(log.name)))
                if time.monotonic() > deadline:
                    raise Failed("proxreapd did not finish %d polls" % polls)
                time.sleep(min(0.02, interval / 10))
                m = read_prom_file(prom, "process_cpu_seconds_total")
                if m is None:
                    continue
                n = int(m.get("proxreap_polls_total.ok", 0) + m.get("proxreap_polls_total.failed", 0))
                if not seen or n != seen[-1][0]:
                    seen.append((n, m["process_cpu_seconds_total"], m))
        finally:
            if not reaped(p):
                p.send_signal(signal.SIGTERM)
            rc, ru = wait_child(p, 60)
            log.close()
        if rc != 0:
            raise Failed("proxreapd exited with status %d on SIGTERM: %s" % (rc, tail(log.name)))
        first, last = seen[0], seen[-1]
        # A poll may have ended between the last look and the stop.
        m = read_prom_file(prom, "process_cpu_seconds_total") or last[2]
        if m.get("proxreap_polls_total.failed", 0):
            raise Failed("proxreapd: %d polls failed" % m["proxreap_polls_total.failed"])
        tracked = sum(v for k, v in m.items() if k.startswith("proxreap_guests."))
        polls_done = int(m["proxreap_polls_total.ok"])
        return {"polls": polls_done,
                "cpu_per_poll": (last[1] - first[1]) / max(1, last[0] - first[0]),
                "peak_rss_kib": m["proxreap_resident_memory_max_bytes"] / 1024,
                "cpu_total": ru.ru_utime + ru.ru_stime,
                "guests": int(tracked),
                "state_per_guest": m["proxreap_guest_state_bytes"] / tracked if tracked else 0}

    def run_plan(self, sim, size, polls, interval, d):
        # plan polls window/interval times.
        conf = self.config(sim, os.path.join(d, "proxreap.conf"), interval, interval * polls)
        out = open(os.path.join(d, "plan.json"), "wb")
        err = open(os.path.join(d, "plan.err"), "wb")
        p = subprocess.Popen([os.path.join(self.args.build, "proxreap"), "-c", conf, "plan", "--json"],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        hwm = 0
        deadline = time.monotonic() + polls * interval + SLACK_S
        while not reaped(p) and time.monotonic() < deadline:
            hwm = max(hwm, vm_hwm_kib(p.pid))
            time.sleep(0.01)
        rc, ru = wait_child(p, 0)
        out.close()
        err.close()
        if rc != 0:
            raise Failed("proxreap plan exited with status %d: %s" % (rc, tail(err.name)))
        with open(out.name) as fh:
            verdicts = json.load(fh)
        cpu = ru.ru_utime + ru.ru_stime
        return {"polls": polls, "cpu_per_poll": cpu / polls, "peak_rss_kib": hwm,
                "cpu_total": cpu, "guests": len(verdicts), "state_per_guest": None}

    def run_reporting(self, argv, name, polls, interval, d):
        """A program that prints a JSON line per poll and a last one with
        state_bytes (ref_proxmoxer.py, floor)."""
        out = open(os.path.join(d, name + ".out"), "wb")
        err = open(os.path.join(d, name + ".err"), "wb")
        p = subprocess.Popen(argv + ["--url", self.sim.url, "--token-id", TOKEN_ID,
                                     "--token-file", self.token_file, "--cacert", self.sim.ca_file,
                                     "--polls", str(polls), "--interval", "%g" % interval],
                             stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        rc, ru = wait_child(p, polls * interval * 20 + SLACK_S)
        out.close()
        err.close()
        if rc != 0:
            raise Failed("%s exited with status %d: %s" % (name, rc, tail(err.name)))
        with open(out.name) as fh:
            lines = [json.loads(x) for x in fh if x.strip()]
        per = [x for x in lines if "poll" in x]
        done = [x for x in lines if x.get("done")]
        if len(per) != polls or len(done) != 1:
            raise Failed("%s reported %d polls of %d" % (name, len(per), polls))
        guests = {x["guests"] for x in per}
        if len(guests) != 1:
            raise Failed("%s saw different fleets: %s" % (name, sorted(guests)))
        n = guests.pop()
        return {"polls": polls,
                "cpu_per_poll": (per[-1]["cpu"] - per[0]["cpu"]) / max(1, polls - 1),
                "peak_rss_kib": done[0]["peak_rss_kib"], "cpu_total": ru.ru_utime + ru.ru_stime,
                "guests": n, "idle": per[-1].get("idle"),
                "state_per_guest": done[0]["state_bytes"] / n if n else 0}

    def run_python(self, sim, size, polls, interval, d):
        return self.run_reporting([PYTHON, os.path.join(HERE, "ref_proxmoxer.py"),
                                   "--window-samples", str(WINDOW_SAMPLES)], "python", polls,
                                  interval, d)

    def run_floor_yajl(self, sim, size, polls, interval, d):
        return self.run_reporting([self.args.floor, "--parser", "yajl"], "floor-yajl", polls,
                                  interval, d)

    def run_floor_jansson(self, sim, size, polls, interval, d):
        return self.run_reporting([self.args.floor, "--parser", "jansson"], "floor-jansson", polls,
                                  interval, d)

    def run(self, tool, size, polls, interval, run_no):
        d = os.path.join(self.work, "%d-%s-%d" % (size, tool, run_no))
        os.makedirs(d)
        self.sim.clear_requests()
        r = getattr(self, "run_" + tool.replace("-", "_"))(self.sim, size, polls, interval, d)
        reqs = self.sim.requests()
        r["resources_requests"] = sum(1 for q in reqs if q["path"] == "/cluster/resources")
        r["other_requests"] = len(reqs) - r["resources_requests"]
        r["requests_per_poll"] = r["resources_requests"] / r["polls"]
        if r["guests"] != size:
            raise Failed("%s at %d guests saw %d" % (tool, size, r["guests"]))
        r.update(tool=tool, size=size, run=run_no, interval=interval)
        return r

    # ------------------------------------------------------------ callgrind

    def callgrind(self, size, polls):
        """Instructions per poll of proxreapd (the poll timer's callback)
        with a full window: instrumentation starts once the window is full
        (a window that is still filling judges every guest
        insufficient-data, which is not the steady state), the counters are
        zeroed after one more poll, and dumped after `polls` more."""
        # Under callgrind a poll is about 50 times slower: about 0.2 s
        # at 1,000 guests, 1.3 s at 10,000.
        interval = max(0.25, size * 2e-4)
        d = os.path.join(self.work, "callgrind-%d" % size)
        os.makedirs(d)
        conf = self.config(self.sim, os.path.join(d, "proxreap.conf"), interval,
                           interval * WINDOW_SAMPLES, status_dir=d)
        prom = os.path.join(d, "proxreap.prom")
        out = os.path.join(d, "callgrind.out")
        log = open(os.path.join(d, "valgrind.log"), "wb")
        p = subprocess.Popen(["valgrind", "--tool=callgrind", "--instr-atstart=no",
                              "--toggle-collect=on_timer", "--callgrind-out-file=" + out,
                              os.path.join(self.args.build, "proxreapd"), "-c", conf, "--foreground"],
                             stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=d)
        deadline = time.monotonic() + (WINDOW_SAMPLES + polls + 2) * interval * 3 + SLACK_S

        def polls_done():
            m = read_prom_file(prom, "process_cpu_seconds_total")
            return int(m["proxreap_polls_total.ok"]) if m else 0

        def until(n):
            while True:
                done = polls_done()
                if done >= n:
                    return done
                if reaped(p) or time.monotonic() > deadline:
                    raise Failed("proxreapd under callgrind: %s" % tail(log.name))
                time.sleep(0.02)

        def control(*opts):
            subprocess.run(["callgrind_control"] + list(opts) + [str(p.pid)], check=True,
                           stdout=subprocess.DEVNULL, cwd=d)
        try:
            until(WINDOW_SAMPLES + 1)
            control("--instr=on")
            first = until(WINDOW_SAMPLES + 3)
            control("--zero")
            last = until(first + polls)
            control("--dump")
        finally:
            if not reaped(p):
                p.send_signal(signal.SIGTERM)
            wait_child(p, 120)
            log.close()
        dumps = sorted(f for f in os.listdir(d) if f.startswith("callgrind.out."))
        if not dumps:
            raise Failed("callgrind wrote no dump: %s" % tail(log.name))
        with open(os.path.join(d, dumps[0])) as fh:
            total = next(int(x.split()[1]) for x in fh if x.startswith(("totals:", "summary:")))
        return {"size": size, "polls": last - first, "instructions_per_poll": total // (last - first),
                "interval": interval}


def tail(path, n=600):
    try:
        with open(path, "rb") as fh:
            return fh.read()[-n:].decode("utf-8", "replace").strip()
    except OSError:
        return "(no output)"


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def summarize(results, tools, sizes):
    """{(size, tool): medians}, and per-run ratios' medians per size."""
    med = {}
    for s in sizes:
        for t in tools:
            rs = [r for r in results if r["size"] == s and r["tool"] == t]
            if not rs:
                continue
            med[(s, t)] = {k: median([r[k] for r in rs]) for k in
                           ("cpu_per_poll", "peak_rss_kib", "state_per_guest", "requests_per_poll",
                            "other_requests")}
            med[(s, t)]["runs"] = len(rs)
    ratios = {}
    for s in sizes:
        runs = sorted({r["run"] for r in results if r["size"] == s})

        def per_run(a, b, key):
            vals = []
            for n in runs:
                ra = [r for r in results if r["size"] == s and r["run"] == n and r["tool"] == a]
                rb = [r for r in results if r["size"] == s and r["run"] == n and r["tool"] == b]
                if ra and rb and ra[0][key] and rb[0][key]:
                    vals.append(ra[0][key] / rb[0][key])
            return median(vals)
        ratios[s] = {"python_cpu_x": per_run("python", "proxreapd", "cpu_per_poll"),
                     "python_rss_x": per_run("python", "proxreapd", "peak_rss_kib"),
                     "floor_cpu_x": per_run("proxreapd", "floor-yajl", "cpu_per_poll"),
                     "jansson_cpu_x": per_run("floor-jansson", "floor-yajl", "cpu_per_poll")}
    return med, ratios


def fmt(v, unit):
    if v is None:
        return "-"
    if unit == "ms":
        return "%.2f" % (v * 1000) if v < 0.1 else "%.0f" % (v * 1000)
    if unit == "x":
        return "%.1f×" % v
    if unit == "MiB":
        return "%.1f" % (v / 1024)
    if unit == "B":
        return "%.0f" % v
    return "%.2f" % v


def table(title, key, unit, med, tools, sizes, interval=False):
    """One per-size table of one measure, a column per program."""
    lines = ["", "## " + title, "",
             "| guests | " + ("interval | " if interval else "") + " | ".join(tools) + " |",
             "|---:|" + ("---:|" if interval else "") + "---:|" * len(tools)]
    for s in sizes:
        lines.append("| %d | " % s + ("%g s | " % interval_for(s) if interval else "") +
                     " | ".join(fmt(med.get((s, t), {}).get(key), unit) for t in tools) + " |")
    return lines


def report(out, args, results, med, ratios, cg, tools, sizes, machine):
    lines = ["# proxreap benchmark", "",
             "%s; %d polls per program and run, %d run(s), medians; window %d samples."
             % (machine, args.polls, args.runs, WINDOW_SAMPLES)]
    lines += table("CPU per poll (ms, user+system)", "cpu_per_poll", "ms", med, tools, sizes,
                   interval=True)
    lines += table("Peak RSS (MiB)", "peak_rss_kib", "MiB", med, tools, sizes)
    lines += table("State kept per guest between polls (bytes)", "state_per_guest", "B", med,
                   tools, sizes)
    lines += ["", "## Requests per poll (GET /cluster/resources; other requests per run)", "",
              "| guests | " + " | ".join(tools) + " |", "|---:|" + "---:|" * len(tools)]
    for s in sizes:
        cells = []
        for t in tools:
            m = med.get((s, t))
            cells.append("-" if not m else "%.2f (+%d)" % (m["requests_per_poll"], m["other_requests"]))
        lines.append("| %d | " % s + " | ".join(cells) + " |")
    lines += ["", "## Ratios (median of the per-run ratios)", "",
              "| guests | Python CPU / proxreapd | Python peak RSS / proxreapd | "
              "proxreapd CPU / floor (yajl) | floor jansson / floor yajl |",
              "|---:|---:|---:|---:|---:|"]
    for s in sizes:
        r = ratios[s]
        lines.append("| %d | %s | %s | %s | %s |" % (s, fmt(r["python_cpu_x"], "x"),
                                                    fmt(r["python_rss_x"], "x"),
                                                    fmt(r["floor_cpu_x"], "x"),
                                                    fmt(r["jansson_cpu_x"], "x")))
    if cg:
        lines += ["", "## callgrind", "",
                  "proxreapd at %d guests: %s instructions per poll (%d polls with a full "
                  "window)."
                  % (cg["size"], "{:,}".format(cg["instructions_per_poll"]), cg["polls"])]
    targets = check_targets(med, ratios, 10000)
    if targets:
        lines += ["", "## Targets at 10,000 guests", ""]
        lines += ["- %s: %s (%s)" % (name, "met" if ok else "MISSED", got) for name, ok, got in targets]
    text = "\n".join(lines) + "\n"
    with open(os.path.join(out, "results.md"), "w") as fh:
        fh.write(text)
    return text


def check_targets(med, ratios, s):
    if (s, "proxreapd") not in med:
        return []
    t = []
    r = ratios[s]
    if r["python_cpu_x"] is not None:
        t.append(("CPU per poll at least 4× below Python", r["python_cpu_x"] >= 4,
                  "%.1f×" % r["python_cpu_x"]))
    if r["python_rss_x"] is not None:
        t.append(("peak memory at least 5× below Python", r["python_rss_x"] >= 5,
                  "%.1f×" % r["python_rss_x"]))
    if r["floor_cpu_x"] is not None:
        t.append(("CPU within 1.3× of the floor", r["floor_cpu_x"] <= 1.3, "%.2f×" % r["floor_cpu_x"]))
    st = med[(s, "proxreapd")]["state_per_guest"]
    t.append(("state at most 1 KiB per guest", st <= 1024, "%.0f bytes" % st))
    rq = med[(s, "proxreapd")]["requests_per_poll"]
    t.append(("one request per poll", rq == 1.0, "%.2f" % rq))
    return t


def plot(out, med, tools, sizes):
    """CPU per poll vs fleet size, log-log, with gnuplot."""
    shown = [t for t in ("proxreapd", "python", "floor-yajl", "floor-jansson") if t in tools]
    dat = os.path.join(out, "cpu-per-poll.dat")
    with open(dat, "w") as fh:
        fh.write("# guests " + " ".join(shown) + " (ms of CPU per poll)\n")
        for s in sizes:
            fh.write("%d %s\n" % (s, " ".join(
                "%.6f" % (med[(s, t)]["cpu_per_poll"] * 1000) if (s, t) in med else "NaN"
                for t in shown)))
    png = os.path.join(out, "cpu-per-poll.png")
    titles = {"proxreapd": "proxreapd (observe)", "python": "Python (proxmoxer)",
              "floor-yajl": "floor: libcurl + yajl", "floor-jansson": "libcurl + jansson (tree)"}
    script = os.path.join(out, "cpu-per-poll.gp")
    with open(script, "w") as fh:
        fh.write('set terminal pngcairo size 900,600 font "sans,11"\n'
                 'set output "%s"\n'
                 'set title "CPU per poll of GET /cluster/resources vs fleet size"\n'
                 'set xlabel "guests"\nset ylabel "CPU per poll (ms, user+system)"\n'
                 'set logscale xy\nset grid\nset key top left\n'
                 'set format x "%%.0f"\n' % png)
        fh.write("plot " + ", ".join('"%s" using 1:%d with linespoints lw 2 title "%s"'
                                     % (dat, i + 2, titles[t]) for i, t in enumerate(shown)) + "\n")
    subprocess.run(["gnuplot", script], check=True)
    return png


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(x.split(":", 1)[1].strip() for x in fh if x.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return "%s, %d cores, %s" % (cpu, os.cpu_count(), os.uname().release)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sizes", default="100,1000,10000,50000")
    ap.add_argument("--polls", type=int, default=70)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--callgrind-size", type=int, default=10000, help="0: no callgrind run")
    ap.add_argument("--callgrind-polls", type=int, default=6)
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--floor", default=os.path.join(TOP, "build-bench", "floor"))
    ap.add_argument("--out", default=os.path.join(TOP, "build-bench"))
    ap.add_argument("--smoke", action="store_true", help="100 and 1,000 guests, 5 polls, 1 run")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args()
    if args.smoke:
        args.sizes, args.polls, args.runs = "100,1000", 5, 1
        args.callgrind_size, args.callgrind_polls = 100, 2
    sizes = [int(x) for x in args.sizes.split(",")]
    tools = args.tools.split(",")
    if set(tools) - set(TOOLS):
        ap.error("unknown tools: %s" % ", ".join(sorted(set(tools) - set(TOOLS))))
    if args.polls < 3:
        ap.error("--polls must be at least 3")
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    os.makedirs(args.out, exist_ok=True)
    work = tempfile.mkdtemp(prefix="proxreap-bench-")
    b = Bench(args, work)
    results, cg = [], None
    try:
        for s in sizes:
            interval = interval_for(s)
            with Sim(b.scenario(s), tls=True, workdir=os.path.join(work, "sim-%d" % s),
                     startup_timeout=120) as sim:
                b.sim = sim
                # The simulator renders each guest's entry once; no program
                # should pay for that.
                r = sim.api("GET", "/cluster/resources", {"type": "vm"}, timeout=300)
                if r.status != 200 or len(r.json["data"]) != s:
                    raise Failed("the simulator did not serve %d guests" % s)
                for n in range(1, args.runs + 1):
                    for t in tools:
                        t0 = time.monotonic()
                        res = b.run(t, s, args.polls, interval, n)
                        results.append(res)
                        print("%6d guests  run %d  %-13s  %8.3f ms/poll  %7d KiB peak  %.2f req/poll"
                              "  (%.0f s)" % (s, n, t, res["cpu_per_poll"] * 1000, res["peak_rss_kib"],
                                              res["requests_per_poll"], time.monotonic() - t0),
                              file=sys.stderr, flush=True)
                if args.callgrind_size == s:
                    cg = b.callgrind(s, args.callgrind_polls)
                    print("%6d guests  callgrind: %d instructions per poll" %
                          (s, cg["instructions_per_poll"]), file=sys.stderr, flush=True)
    except Failed as e:
        print("bench: %s" % e, file=sys.stderr)
        print("work directory kept: %s" % work, file=sys.stderr)
        return 1
    med, ratios = summarize(results, tools, sizes)
    desc = machine()
    with open(os.path.join(args.out, "results.json"), "w") as fh:
        json.dump({"machine": desc, "polls": args.polls, "runs": args.runs, "sizes": sizes,
                   "results": results, "callgrind": cg,
                   "medians": [dict(size=s, tool=t, **v) for (s, t), v in med.items()],
                   "ratios": ratios}, fh, indent=1)
    print(report(args.out, args, results, med, ratios, cg, tools, sizes, desc))
    print("plot: %s" % plot(args.out, med, tools, sizes))
    bad = [(s, med[(s, "proxreapd")]["requests_per_poll"]) for s in sizes
           if (s, "proxreapd") in med and med[(s, "proxreapd")]["requests_per_poll"] != 1.0]
    if args.keep:
        print("work directory: %s" % work)
    else:
        shutil.rmtree(work, ignore_errors=True)
    if bad:
        print("bench: proxreapd did not send exactly one request per poll: %s" % bad, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
