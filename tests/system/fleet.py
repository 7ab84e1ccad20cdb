"""A labelled fleet: a shared lab cluster of 5 nodes, each guest labelled
the way a careful admin would ('in-use' or 'abandoned'), with the shapes
real guests have: day/night and weekday use, nightly and weekly jobs,
cron bursts, services with traffic but little CPU, replicas, desktops
holding memory, noise. Sim time 0 is now; the shapes are phased so that
most in-use guests are quiet right now (the dangerous case: the window
alone calls them idle). test_fleet.py measures proxreap's verdicts on it;
the confusion tables are in docs/design-decisions.md.

Units as the simulator's (tests/pve-sim/README.md): cpu a fraction of the
vCPUs, mem_mb MiB, *_kbps kilobit/s (net_kbps each direction, disk_kbps
each of read and write).
"""

H = 3600
D = 86400
W = 7 * D


def lv(cpu=0.0, mem=0, net=0.0, disk=0.0, **kw):
    d = {"cpu": cpu, "mem_mb": mem, "net_kbps": net, "disk_kbps": disk}
    d.update(kw)
    return d


def const(**kw):
    return dict(lv(**kw), kind="constant")


def every(period, length, at, burst, base=None):
    """burst (a level) for `length` s every `period` s, the last one
    starting `at` s ago (at > 0: in the past)."""
    return {"kind": "bursts", "base": base or lv(), "burst": burst, "every": period,
            "length": length, "offset": -float(at)}


def daynight(day, night, day_ended_ago):
    """day level for 12 h a day, the last day ending day_ended_ago s ago."""
    return {"kind": "daynight", "period": D, "day": day, "night": night,
            "offset": -(D / 2 + day_ended_ago)}


def noise(seed, lo, hi, mem_lo, mem_hi):
    return {"kind": "random", "seed": seed, "cpu_min": lo, "cpu_max": hi,
            "mem_mb_min": mem_lo, "mem_mb_max": mem_hi, "step": 10}


def both(*parts):
    return {"kind": "sum", "parts": list(parts)}


# The background every running Linux guest has (NTP, ARP, a monitoring
# agent, journald): a little traffic and a few disk writes.
def quiet_linux(seed, mem):
    return both(noise(seed, 0.002, 0.012, mem - 30, mem + 30), const(net=2, disk=12))


# (vmid, name, type, label, why, workload, extra guest keys)
FLEET = [
    # ---- in use, quiet right now: the window alone calls them idle
    (1101, "dns-proxy", "lxc", "in-use", "DNS resolver and reverse proxy: traffic, little CPU",
     both(daynight(lv(cpu=0.02, net=180, disk=40), lv(cpu=0.008, net=45, disk=20), 2 * H),
          noise(11, 0.0, 0.01, 180, 220)), {}),
    (1102, "course-web", "qemu", "in-use", "course web site: busy by day, quiet at night",
     both(daynight(lv(cpu=0.09, net=900, disk=300), lv(cpu=0.01, net=20, disk=30), 3 * H),
          noise(12, 0.0, 0.01, 600, 700)), {}),
    (1103, "ci-runner", "qemu", "in-use", "CI runner between builds: builds several times a day",
     both(every(5 * H, 25 * 60, 2 * H, lv(cpu=0.85, mem=2500, net=4000, disk=30000)),
          quiet_linux(13, 400)), {}),
    (1104, "etl-nightly", "qemu", "in-use", "nightly ETL job, an hour at 2 am",
     both(every(D, H, 9 * H, lv(cpu=0.6, mem=1500, net=2000, disk=20000)), quiet_linux(14, 500)), {}),
    (1105, "pg-replica", "qemu", "in-use", "Postgres hot standby: 70 kbit/s in, 1.8 Mbit/s of writes",
     both(const(cpu=0.015, mem=900, netin_kbps=70, netout_kbps=8, diskwrite_kbps=1800,
                diskread_kbps=20), noise(15, 0.0, 0.01, 0, 20)), {}),
    (1106, "scraper", "lxc", "in-use", "cron scraper bursting every minute",
     both(every(60, 4, 20, lv(cpu=0.3, net=3000, disk=400)), quiet_linux(16, 150)), {}),
    (1107, "print-srv", "qemu", "in-use", "print server: busy on weekdays by network only",
     both(every(W, 5 * D, 6 * D, lv(cpu=0.01, net=300, disk=150)), quiet_linux(17, 350)), {}),
    (1108, "nextcloud", "qemu", "in-use", "Nextcloud: sync traffic by day",
     both(daynight(lv(cpu=0.035, net=400, disk=700), lv(cpu=0.01, net=30, disk=60), 4 * H),
          noise(18, 0.0, 0.01, 800, 900)), {}),
    (1109, "backup-target", "lxc", "in-use", "weekly backup target: two hours on Sunday",
     both(every(W, 2 * H, 3 * D, lv(cpu=0.2, net=80000, disk=80000)), quiet_linux(19, 200)), {}),
    (1110, "dev-ct", "lxc", "in-use", "dev container between builds: builds through the workday",
     both(every(D, 8 * H, 13 * H, lv(cpu=0.12, mem=600, disk=1500)), quiet_linux(20, 300)), {}),
    (1111, "redis-cache", "lxc", "in-use", "Redis cache: steady traffic, little CPU",
     both(const(cpu=0.012, mem=700, net=250, disk=30), noise(21, 0.0, 0.008, 0, 20)), {}),
    (1112, "ldap", "lxc", "in-use", "LDAP server: logins by day",
     both(daynight(lv(cpu=0.01, net=60, disk=20), lv(net=4), 2 * H), quiet_linux(22, 120)), {}),
    (1113, "monitoring", "qemu", "in-use", "Prometheus: scrapes every 15 s, writes its TSDB",
     both(const(cpu=0.03, mem=800, net=120, disk=900), noise(23, 0.0, 0.01, 0, 30)), {}),
    (1114, "git-mirror", "lxc", "in-use", "git mirror: fetches every 10 minutes",
     both(every(600, 30, 200, lv(cpu=0.25, net=6000, disk=3000)), quiet_linux(24, 200)), {}),
    (1115, "mail-relay", "lxc", "in-use", "mail relay: about a hundred mails an hour",
     both(every(H / 4, 20, 300, lv(cpu=0.1, net=800, disk=400)), quiet_linux(25, 150)), {}),
    (1116, "wiki", "qemu", "in-use", "team wiki: read by day",
     both(daynight(lv(cpu=0.02, net=150, disk=60), lv(net=5, disk=10), 6 * H),
          noise(26, 0.002, 0.01, 500, 560)), {}),
    (1117, "vpn-gw", "lxc", "in-use", "VPN gateway: tunnels kept up",
     both(const(cpu=0.006, mem=90, net=60, disk=5), noise(27, 0.0, 0.004, 0, 10)), {}),
    (1118, "jupyter", "qemu", "in-use", "JupyterHub for a course: weekly lab session",
     both(every(W, 4 * H, 2 * D, lv(cpu=0.5, mem=1800, net=500, disk=1000)), quiet_linux(28, 400)), {}),
    # No signal shows its use: the admin keeps it out as the docs say (pool
    # 'infra', listed in select.exclude_pools, or the proxreap-keep tag).
    (1119, "license-srv", "lxc", "in-use", "license server: answers heartbeats only, tagged proxreap-keep",
     both(const(cpu=0.003, mem=80, net=1.5, disk=2), noise(29, 0.0, 0.002, 0, 5)),
     {"tags": "proxreap-keep"}),
    (1120, "ntp-dhcp", "lxc", "in-use", "NTP and DHCP for the lab",
     both(const(cpu=0.004, mem=60, net=55, disk=4), noise(30, 0.0, 0.003, 0, 5)), {}),
    # ---- what the cluster does to the numbers
    # Busy since a few seconds after the start, but its node froze just
    # before: /cluster/resources keeps serving the quiet sample of that
    # moment (uptime and counters too), and its RRD before is quiet.
    (1121, "frozen-db", "qemu", "in-use", "database whose node froze on a quiet sample",
     const(cpu=0.5, mem=2000, net=500, disk=4000),
     {"history": [{"until": 25, "workload": quiet_linux(61, 300)}],
      "events": [{"at": 20, "action": "freeze", "duration": 100000}]}),
    # Exactly at the thresholds: strictly below is idle, so it is active.
    (1122, "at-threshold", "lxc", "in-use", "exactly 5 % CPU and 1024 MiB",
     const(cpu=0.05, mem=1024, net=20, disk=1000), {}),
    # In use, moved to another node and restarted now.
    (1123, "migrated-app", "qemu", "in-use", "app server by day, migrated and restarted tonight",
     both(daynight(lv(cpu=0.06, net=300, disk=500), lv(cpu=0.008, net=6, disk=20), 4 * H),
          noise(62, 0.0, 0.01, 500, 560)),
     {"events": [{"at": 15, "action": "migrate", "node": "pve2"}]}),
    # Abandoned, rebooted by the nightly host update: found all the same.
    (1424, "rebooted-orphan", "qemu", "abandoned", "abandoned VM rebooted a moment ago",
     quiet_linux(63, 400), {"events": [{"at": 10, "action": "restart"}]}),
    # ---- in use and busy now: every configuration must leave them
    (1201, "db-main", "qemu", "in-use", "main database", noise(31, 0.15, 0.4, 6000, 7000), {}),
    (1202, "build-farm", "qemu", "in-use", "build farm", const(cpu=0.55, mem=12000, disk=20000), {}),
    (1203, "web-prod", "lxc", "in-use", "production web", noise(33, 0.06, 0.2, 1500, 1800), {}),
    (1204, "gitlab", "qemu", "in-use", "GitLab", const(cpu=0.12, mem=6000, net=800, disk=1500), {}),
    (1205, "k8s-worker", "qemu", "in-use", "Kubernetes worker", noise(35, 0.1, 0.3, 3500, 4200), {}),
    (1206, "elastic", "qemu", "in-use", "Elasticsearch", const(cpu=0.2, mem=8000, disk=4000), {}),
    # ---- in use but excluded: the admin's tags and pools say so
    (1301, "infra-dns2", "lxc", "in-use", "second resolver, tagged proxreap-keep",
     both(const(cpu=0.003, mem=90, net=20, disk=4)), {"tags": "proxreap-keep"}),
    (1302, "ha-router", "qemu", "in-use", "HA-managed router",
     both(const(cpu=0.004, mem=200, net=30, disk=5)), {"ha": True}),
    # ---- abandoned: nobody uses them
    (1401, "old-test-vm", "qemu", "abandoned", "test VM of a finished project",
     quiet_linux(41, 350), {}),
    (1402, "student-ct1", "lxc", "abandoned", "student container, last semester",
     quiet_linux(42, 90), {}),
    (1403, "student-ct2", "lxc", "abandoned", "student container, last semester",
     quiet_linux(43, 120), {}),
    (1404, "student-ct3", "lxc", "abandoned", "student container with a daily apt run",
     both(every(D, 5 * 60, 15 * H, lv(cpu=0.35, net=2000, disk=4000)), quiet_linux(44, 110)), {}),
    (1405, "student-vm1", "qemu", "abandoned", "student VM with a daily apt run",
     both(every(D, 6 * 60, 7 * H, lv(cpu=0.3, net=1500, disk=3000)), quiet_linux(45, 300)), {}),
    (1406, "demo-2024", "qemu", "abandoned", "demo VM nobody opened since the fair",
     quiet_linux(46, 600), {}),
    (1407, "win-desktop1", "qemu", "abandoned", "idle Windows desktop holding 2.4 GiB",
     both(noise(47, 0.008, 0.03, 2350, 2500), const(net=14, disk=220),
          every(D, 15 * 60, 11 * H, lv(cpu=0.12, disk=6000))), {}),
    (1408, "win-desktop2", "qemu", "abandoned", "idle Windows VM holding 2.8 GiB",
     both(noise(48, 0.01, 0.03, 2700, 2900), const(net=18, disk=260),
          every(D, 15 * 60, 20 * H, lv(cpu=0.12, disk=6000))), {}),
    (1409, "linux-desktop", "qemu", "abandoned", "idle Linux desktop holding 1.6 GiB",
     both(noise(49, 0.004, 0.02, 1580, 1680), const(net=6, disk=40)), {}),
    (1410, "k3s-node", "qemu", "abandoned", "k3s node: a control-loop spike every minute",
     both(every(60, 3, 30, lv(cpu=0.3)), noise(50, 0.005, 0.015, 1400, 1500),
          const(net=9, disk=150)), {}),
    (1411, "old-wordpress", "lxc", "abandoned", "old WordPress: only bots",
     both(every(H, 60, 1800, lv(cpu=0.05, net=200)), quiet_linux(51, 250)), {}),
    (1412, "forgotten-ct", "lxc", "abandoned", "forgotten container",
     quiet_linux(52, 70), {}),
    (1413, "lab-router-old", "lxc", "abandoned", "replaced router, still running",
     quiet_linux(53, 60), {}),
    (1414, "thesis-vm", "qemu", "abandoned", "thesis VM, defended last year",
     quiet_linux(54, 800), {}),
    (1415, "minecraft", "lxc", "abandoned", "game server nobody joins",
     both(noise(55, 0.01, 0.025, 900, 950), const(net=3, disk=60)), {}),
    (1416, "ubuntu-tmpl-test", "qemu", "abandoned", "template test left running",
     quiet_linux(56, 500), {}),
    (1417, "old-jenkins", "qemu", "abandoned", "old Jenkins, jobs moved away",
     both(noise(57, 0.01, 0.03, 1150, 1250), const(net=4, disk=80)), {}),
    (1418, "stale-nfs-client", "lxc", "abandoned", "container of a finished course",
     quiet_linux(58, 140), {}),
    (1419, "win-server-old", "qemu", "abandoned", "Windows server of a retired service",
     both(noise(59, 0.01, 0.035, 2000, 2200), const(net=22, disk=300),
          every(D, 15 * 60, 3 * H, lv(cpu=0.1, disk=5000))), {}),
    (1420, "pentest-kali", "qemu", "abandoned", "Kali VM of last year's course",
     quiet_linux(60, 700), {}),
]


def scenario_guests():
    """The fleet as the simulator's guests, spread over 5 nodes."""
    out = []
    for i, (vmid, name, typ, _label, _why, wl, extra) in enumerate(FLEET):
        g = {"vmid": vmid, "name": name, "type": typ, "node": "pve%d" % (i % 5 + 1),
             "maxmem": 4096 * 1048576, "workload": wl}
        g.update(extra)
        out.append(g)
    return out


def labels():
    return {f[0]: f[3] for f in FLEET}


def confusion(called, lab=None):
    """called: the vmids a configuration would reap. Returns the table:
    {"in-use": (reaped, total), "abandoned": (reaped, total)}."""
    lab = lab or labels()
    out = {}
    for kind in ("in-use", "abandoned"):
        ids = [v for v, k in lab.items() if k == kind]
        out[kind] = (len([v for v in ids if v in called]), len(ids))
    return out
