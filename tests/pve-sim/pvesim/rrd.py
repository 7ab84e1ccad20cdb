"""GET /nodes/{node}/{qemu,lxc}/{vmid}/rrddata computed from the guests'
closed-form workloads (PVE::RRD::create_rrd_data over the rrdcached
database pvestatd feeds every 10 s).

  * resolutions/rows: PVE 9 'pve-vm-9.0': hour 60 s x60, day 60 s x1440,
    week 30 min x336, month 30 min x1440, year 6 h x1440; PVE 8 'pve2-vm':
    hour 60 s, day 30 min, week 3 h, month 12 h, year 7 d, 70 rows each
  * row time = end of its interval, aligned to the resolution; the last
    row is the interval ending at floor(now / reso) * reso
  * a row the guest ran for at least half of (RRD xff 0.5) carries time,
    maxcpu, cpu, maxmem, mem, maxdisk, disk, netin, netout, diskread,
    diskwrite (+ memhost and the pressure fields for pve-vm-9.0); a row it
    was stopped carries only time, maxcpu, maxmem, disk, maxdisk (pvestatd
    writes 'U' for the rest); rows before the guest existed (or after it
    was destroyed) carry only time
  * netin/netout/diskread/diskwrite are DERIVE data sources: bytes/second
  * cf=AVERAGE (default) averages over the interval, cf=MAX takes the
    maximum of the 10 s samples (approximated with at most MAX_SAMPLES
    evenly spread sub-intervals per row)
The RRD file is per VMID and survives destroy/restore: rows come from
whichever guest owned the VMID at that time.
"""

import math

from .perl import perl_num

MIB = 1048576
MAX_SAMPLES = 8

SETUP_9 = {"hour": (60, 60), "day": (60, 1440), "week": (1800, 336), "month": (1800, 1440),
           "year": (21600, 1440)}
SETUP_8 = {"hour": (60, 70), "day": (1800, 70), "week": (10800, 70), "month": (43200, 70),
           "year": (604800, 70)}
PRESSURE = ("pressurecpusome", "pressurecpufull", "pressureiosome", "pressureiofull",
            "pressurememorysome", "pressurememoryfull")


def _running_parts(g, a, b):
    """[(x, y, seg_start)] sub-intervals of (a, b] the guest ran."""
    out = []
    for seg in g.segments:
        s = seg[0]
        e = seg[1] if seg[1] is not None else math.inf
        x, y = max(a, s), min(b, e)
        if y > x:
            out.append((x, y, s))
    return out


def _owner(guests, t):
    for g in guests:
        if g.created_t <= t and (g.deleted_t is None or t < g.deleted_t):
            return g
    return None


def _row(g, a, b, cf, pve9):
    reso = b - a
    disk_stopped = 0
    row = {"time": int(b), "maxcpu": perl_num(float(g.maxcpu)), "maxmem": g.maxmem,
           "disk": disk_stopped, "maxdisk": g.maxdisk}
    parts = _running_parts(g, a, b)
    run = sum(y - x for x, y, _ in parts)
    if run < reso / 2.0:
        return row
    wl = g.wl
    nsamp = max(1, min(MAX_SAMPLES, int(reso // 10)))
    cpu_vals, mem_vals, rate_vals = [], [], []
    tot_cpu = 0.0
    tot = [0, 0, 0, 0]
    for x, y, s in parts:
        tot_cpu += wl.cpu_avg(x, y) * (y - x)
        c0 = wl.counters(s, x)
        c1 = wl.counters(s, y)
        for i in range(4):
            tot[i] += c1[i] - c0[i]
        n = max(1, int(round(nsamp * (y - x) / reso)))
        step = (y - x) / n
        for k in range(n):
            p, q = x + k * step, x + (k + 1) * step
            mem_vals.append(min(g.maxmem, wl.mem(q)))
            if cf != "MAX":
                continue  # AVERAGE: cpu and rates come from the totals
            cpu_vals.append(wl.cpu_avg(p, q))
            d0 = wl.counters(s, p)
            d1 = wl.counters(s, q)
            rate_vals.append([(d1[i] - d0[i]) / step for i in range(4)])
    if cf == "MAX":
        cpu = max(cpu_vals)
        mem = max(mem_vals)
        rates = [max(r[i] for r in rate_vals) for i in range(4)]
    else:
        cpu = tot_cpu / run
        mem = sum(mem_vals) / len(mem_vals)
        rates = [tot[i] / run for i in range(4)]
    row["cpu"] = perl_num(cpu)
    row["mem"] = perl_num(mem)
    row["disk"] = g.disk_used if g.type == "lxc" else 0
    row["netin"] = perl_num(rates[0])
    row["netout"] = perl_num(rates[1])
    row["diskread"] = perl_num(rates[2])
    row["diskwrite"] = perl_num(rates[3])
    if pve9:
        row["memhost"] = perl_num(mem + g.maxmem // 50 + 30 * MIB) if g.type == "qemu" \
            else perl_num(mem)
        for p in PRESSURE:
            row[p] = 0
    return row


def rrd_data(cluster, vmid, timeframe, cf, now):
    """Rows for GET .../rrddata, or None when no RRD file exists."""
    guests = list(cluster.lineage.get(int(vmid), []))
    cur = cluster.guests.get(int(vmid))
    if cur is not None:
        guests.append(cur)
    if not guests:
        return None
    pve9 = cluster.rrd_format == "pve-vm-9.0"
    reso, count = (SETUP_9 if pve9 else SETUP_8)[timeframe]
    cf = cf or "AVERAGE"
    epoch0 = cluster.clock.epoch0
    now_epoch = epoch0 + now
    ctime = reso * math.floor(now_epoch / reso)
    rows = []
    for i in range(count):
        end_e = ctime - reso * (count - 1 - i)
        b = end_e - epoch0
        a = b - reso
        g = _owner(guests, b)
        if g is None:
            rows.append({"time": int(end_e)})
            continue
        r = _row(g, a, b, cf, pve9)
        r["time"] = int(end_e)
        rows.append(r)
    return rows
