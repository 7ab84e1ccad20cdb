"""Guest workloads: closed-form functions of sim time.

Every workload answers three questions, all in O(1) (no per-tick state, so
10,000s of guests cost nothing between polls):

  cpu_avg(t0, t1)      mean CPU fraction of the guest's vCPUs over [t0, t1]
                       (what pvestatd reports: dCPUtime / (dt * maxcpu))
  mem(t)               used memory in bytes at t
  counters(ts, t)      (netin, netout, diskread, diskwrite) bytes moved
                       between ts (process start) and t

  sample(ts, t0, t1)   (cpu_avg(t0, t1), mem(t1), *counters(ts, t1)) in one
                       call - what a pvestatd sample needs; the same
                       numbers, computed once for /cluster/resources at
                       50,000 guests

Units in the scenario: cpu is a fraction (0.02 = 2 %), mem_mb is MiB,
*_kbps are KILOBITS per second (1 kbps = 125 bytes/s). net_kbps applies to
each direction (netin and netout); netin_kbps / netout_kbps override one
direction. disk_kbps likewise for diskread / diskwrite.
"""

import math

KBPS = 125.0          # bytes per second per kbps (kilobit/s)
MIB = 1048576


class Level:
    """One constant activity level."""
    __slots__ = ("cpu", "mem", "rates")

    def __init__(self, d):
        d = d or {}
        self.cpu = max(0.0, float(d.get("cpu", 0.0)))
        self.mem = int(float(d.get("mem_mb", 0.0)) * MIB)
        net = float(d.get("net_kbps", 0.0))
        disk = float(d.get("disk_kbps", 0.0))
        self.rates = (
            float(d.get("netin_kbps", net)) * KBPS,
            float(d.get("netout_kbps", net)) * KBPS,
            float(d.get("diskread_kbps", disk)) * KBPS,
            float(d.get("diskwrite_kbps", disk)) * KBPS,
        )


class Workload:
    """Base: sample() from the three primitives."""

    def sample(self, ts, t0, t1):
        n = self.counters(ts, t1)
        return (self.cpu_avg(t0, t1), self.mem(t1), n[0], n[1], n[2], n[3])


class Constant(Workload):
    kind = "constant"

    def __init__(self, spec):
        self.lv = Level(spec)

    def sample(self, ts, t0, t1):
        lv = self.lv
        r = lv.rates
        dt = t1 - ts
        if dt < 0.0:
            dt = 0.0
        return (lv.cpu, lv.mem, int(r[0] * dt), int(r[1] * dt), int(r[2] * dt), int(r[3] * dt))

    def cpu_avg(self, t0, t1):
        return self.lv.cpu

    def mem(self, t):
        return self.lv.mem

    def counters(self, ts, t):
        dt = max(0.0, t - ts)
        r = self.lv.rates
        return (int(r[0] * dt), int(r[1] * dt), int(r[2] * dt), int(r[3] * dt))


class TwoLevel(Workload):
    """'inside' level during [offset + n*every, offset + n*every + length),
    'outside' level otherwise. Used for bursts and day/night."""

    def __init__(self, outside, inside, every, length, offset=0.0):
        self.out = Level(outside)
        self.ins = Level(inside)
        self.every = float(every)
        self.length = min(float(length), self.every)
        self.offset = float(offset)
        if self.every <= 0:
            raise ValueError("workload period must be > 0")

    def _overlap(self, t):
        """Seconds spent 'inside' during [offset, t] (negative t allowed:
        then it is minus the inside-time of [t, offset])."""
        x = t - self.offset
        n = math.floor(x / self.every)
        return n * self.length + min(x - n * self.every, self.length)

    def _inside(self, t):
        x = (t - self.offset) % self.every
        return x < self.length

    def cpu_avg(self, t0, t1):
        if t1 <= t0:
            return self.ins.cpu if self._inside(t1) else self.out.cpu
        frac = (self._overlap(t1) - self._overlap(t0)) / (t1 - t0)
        return self.out.cpu + (self.ins.cpu - self.out.cpu) * frac

    def mem(self, t):
        return self.ins.mem if self._inside(t) else self.out.mem

    def counters(self, ts, t):
        if t <= ts:
            return (0, 0, 0, 0)
        ov = self._overlap(t) - self._overlap(ts)
        dt = t - ts
        ro, ri = self.out.rates, self.ins.rates
        return tuple(int(ro[i] * dt + (ri[i] - ro[i]) * ov) for i in range(4))

    def sample(self, ts, t0, t1):
        # cpu_avg, mem and counters with the same arithmetic, sharing the
        # overlap at t1
        out, ins = self.out, self.ins
        inside = (t1 - self.offset) % self.every < self.length
        o1 = self._overlap(t1)
        if t1 <= t0:
            cpu = ins.cpu if inside else out.cpu
        else:
            cpu = out.cpu + (ins.cpu - out.cpu) * ((o1 - self._overlap(t0)) / (t1 - t0))
        mem = ins.mem if inside else out.mem
        if t1 <= ts:
            return (cpu, mem, 0, 0, 0, 0)
        ov = o1 - self._overlap(ts)
        dt = t1 - ts
        ro, ri = out.rates, ins.rates
        return (cpu, mem, int(ro[0] * dt + (ri[0] - ro[0]) * ov), int(ro[1] * dt + (ri[1] - ro[1]) * ov),
                int(ro[2] * dt + (ri[2] - ro[2]) * ov), int(ro[3] * dt + (ri[3] - ro[3]) * ov))


def Bursts(spec):
    wl = TwoLevel(spec.get("base"), spec.get("burst"), spec.get("every", 60),
                  spec.get("length", 10), spec.get("offset", 0.0))
    wl.kind = "bursts"
    return wl


def DayNight(spec):
    period = float(spec.get("period", 86400))
    # first half of each period is day
    wl = TwoLevel(spec.get("night"), spec.get("day"), period, period / 2.0,
                  spec.get("offset", 0.0))
    wl.kind = "daynight"
    return wl


def _mix64(x):
    """splitmix64 finaliser: a fast, well-spread deterministic hash."""
    x = (x + 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & 0xFFFFFFFFFFFFFFFF
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & 0xFFFFFFFFFFFFFFFF
    return x ^ (x >> 31)


def unit_noise(seed, n, salt=0):
    """Deterministic value in [0, 1) for (seed, step n, salt)."""
    return _mix64((seed * 0x100000001B3) ^ (n * 0x9E3779B1) ^ (salt << 56)) / 18446744073709551616.0


class Random(Workload):
    """Piecewise-constant noise: a new value every `step` seconds
    (default 10). cpu in [cpu_min, cpu_max], mem in [mem_mb_min,
    mem_mb_max]; net/disk rates are constant (net_kbps, disk_kbps)."""
    kind = "random"

    def __init__(self, spec):
        self.seed = int(spec.get("seed", 1))
        self.step = float(spec.get("step", 10.0))
        self.cpu_min = float(spec.get("cpu_min", 0.0))
        self.cpu_max = float(spec.get("cpu_max", 0.5))
        self.mem_min = float(spec.get("mem_mb_min", 0.0)) * MIB
        self.mem_max = float(spec.get("mem_mb_max", 1024.0)) * MIB
        self.rates = Level(spec).rates

    def _cpu_at_step(self, n):
        return self.cpu_min + (self.cpu_max - self.cpu_min) * unit_noise(self.seed, n, 1)

    def cpu_avg(self, t0, t1):
        if t1 <= t0:
            return self._cpu_at_step(math.floor(t1 / self.step))
        n0 = math.floor(t0 / self.step)
        n1 = math.floor(t1 / self.step)
        if n1 - n0 > 60:          # a long span (an RRD row): the mean is good enough
            return (self.cpu_min + self.cpu_max) / 2.0
        total = 0.0
        t = t0
        for n in range(n0, n1 + 1):
            end = min(t1, (n + 1) * self.step)
            if end > t:
                total += self._cpu_at_step(n) * (end - t)
                t = end
        return total / (t1 - t0)

    def mem(self, t):
        n = math.floor(t / self.step)
        return int(self.mem_min + (self.mem_max - self.mem_min) * unit_noise(self.seed, n, 2))

    def counters(self, ts, t):
        dt = max(0.0, t - ts)
        r = self.rates
        return (int(r[0] * dt), int(r[1] * dt), int(r[2] * dt), int(r[3] * dt))


class Piecewise(Workload):
    """A guest's workload over time: `parts` = [(until, workload), ...]
    sorted by `until`; each applies before its `until` (and after the
    previous one); `final` applies from the last `until` on. Used for the
    GUEST key "history" (e.g. busy until yesterday, idle now)."""

    def __init__(self, parts, final):
        self.parts = sorted(parts, key=lambda p: p[0])
        self.final = final
        self.kind = final.kind

    def _at(self, t):
        for until, wl in self.parts:
            if t < until:
                return wl
        return self.final

    def _pieces(self, t0, t1):
        out = []
        a = t0
        for until, wl in self.parts:
            if a >= t1:
                break
            if until <= a:
                continue
            b = min(until, t1)
            out.append((a, b, wl))
            a = b
        if a < t1:
            out.append((a, t1, self.final))
        return out

    def cpu_avg(self, t0, t1):
        if t1 <= t0:
            return self._at(t1).cpu_avg(t0, t1)
        total = 0.0
        for a, b, wl in self._pieces(t0, t1):
            total += wl.cpu_avg(a, b) * (b - a)
        return total / (t1 - t0)

    def mem(self, t):
        return self._at(t).mem(t)

    def counters(self, ts, t):
        res = [0, 0, 0, 0]
        for a, b, wl in self._pieces(ts, t):
            c = wl.counters(a, b)
            for i in range(4):
                res[i] += c[i]
        return tuple(res)


class Sum(Workload):
    """Several workloads at once ("parts": [spec, ...]): a service's base
    load plus its cron job, a desktop's memory plus its updates. CPU,
    memory and counters add up."""
    kind = "sum"

    def __init__(self, spec):
        self.parts = [make_workload(p) for p in spec.get("parts") or []]
        if not self.parts:
            raise ValueError("workload 'sum' needs 'parts'")

    def cpu_avg(self, t0, t1):
        return sum(p.cpu_avg(t0, t1) for p in self.parts)

    def mem(self, t):
        return sum(p.mem(t) for p in self.parts)

    def counters(self, ts, t):
        res = [0, 0, 0, 0]
        for p in self.parts:
            c = p.counters(ts, t)
            for i in range(4):
                res[i] += c[i]
        return tuple(res)


def make_history_workload(history, final_spec):
    """history: [{"until": t, "workload": {...}}, ...] (sim seconds, may be
    negative = before the sim started)."""
    final = make_workload(final_spec)
    if not history:
        return final
    parts = [(float(h["until"]), make_workload(h.get("workload"))) for h in history]
    return Piecewise(parts, final)


KINDS = {
    "constant": Constant,
    "bursts": Bursts,
    "daynight": DayNight,
    "random": Random,
    "sum": Sum,
}


def make_workload(spec):
    spec = spec or {"kind": "constant"}
    kind = spec.get("kind", "constant")
    try:
        return KINDS[kind](spec)
    except KeyError:
        raise ValueError("unknown workload kind %r" % kind)
