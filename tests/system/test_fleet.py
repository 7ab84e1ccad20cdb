"""proxreap's verdicts on a labelled fleet (fleet.py): per configuration,
how many in-use guests it would reap and how many abandoned ones it finds.

Each configuration runs proxreapd in mark mode against the fleet: mark
mode tags exactly what the reaper would take (window, configuration,
history), so the tags are the reaper's answer, with no guest destroyed.
The window is compressed (60 samples at 1 s instead of 10 s, and
observe.stale_after with it); the RRD history is the fleet's real shapes
over the past weeks.

The tables these tests print are the ones in docs/design-decisions.md
(run: pytest -s tests/system/test_fleet.py).
"""

import json
import os
import time

import pytest

from conftest import wait_until
from fleet import FLEET, confusion, scenario_guests

# The shipped 10 s / 10 min / 1 min compressed tenfold: 60 samples a
# window, frozen data counted missing after 6 samples.
OBSERVE = {"interval": "1s", "window": "60s", "stale_after": "6s", "nodes": "all"}

CONFIGS = {
    # The study's rule alone: what proxreap shipped before (no history, no
    # network or disk rule).
    "study rule alone": ({}, {"mode": "mark", "history": "0"},
                         {"net_kbps": 1e9, "disk_kbps": 1e9}),
    # The shipped defaults in mark and reap mode.
    "shipped defaults": ({}, {"mode": "mark"}, {}),
    # What the docs recommend for reclaiming (README, proxreap.conf(5)).
    "recommended for reclaiming": ({}, {"mode": "mark", "history_statistic": "p95"},
                                   {"mem_mb": 4096, "net_kbps": 50}),
}


def marked(sim):
    return {g["vmid"] for g in sim.guests() if "proxreap-idle" in (g.get("tags") or "")}


def settle(d, sim, quiet=15):
    """Marks stop changing: the window is full and every history read."""
    d.wait_log("is now (idle|active)", timeout=120)
    time.sleep(5)
    last, since = None, time.monotonic()
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        now = marked(sim)
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet and "in a later poll" not in d.log()[-4000:]:
            return now
        time.sleep(1)
    pytest.fail("the marks did not settle: %s" % sorted(last or ()))


@pytest.mark.parametrize("name", list(CONFIGS))
def test_fleet_confusion(lab, name):
    observe, reap, idle = CONFIGS[name]
    sim = lab.sim(scenario_guests(), nodes=["pve%d" % i for i in range(1, 6)], stats_period=1.0)
    cfg = lab.config(sim, observe=dict(OBSERVE, **observe), reap=reap, idle=idle)
    d = lab.daemon(cfg)
    # the first full window
    wait_until(lambda: (d.status() or {}).get("summary", {}).get("idle", 0) > 0, timeout=150,
               interval=1)
    got = settle(d, sim)
    d.stop()
    table = confusion(got)
    why = {f[0]: f[4] for f in FLEET}
    lines = ["%s: in-use reaped %d of %d, abandoned found %d of %d" % (
        name, table["in-use"][0], table["in-use"][1], table["abandoned"][0], table["abandoned"][1])]
    for vmid in sorted(v for v in why):
        label = next(f[3] for f in FLEET if f[0] == vmid)
        if (vmid in got) != (label == "abandoned"):
            lines.append("  %s %d %s (%s)" % ("reaped" if vmid in got else "missed", vmid,
                                              why[vmid], label))
    print("\n" + "\n".join(lines))
    with open(os.path.join(os.environ.get("FLEET_OUT", lab.dir), "fleet-%s.json" % name.replace(" ", "-")), "w") as fh:
        json.dump({"table": table, "marked": sorted(got)}, fh)
    if name == "shipped defaults":
        assert table["in-use"][0] == 0, "\n".join(lines)
    if name == "recommended for reclaiming":
        assert table["abandoned"][0] * 100 >= 95 * table["abandoned"][1], "\n".join(lines)
    if name == "study rule alone":
        # the study's rule alone calls quiet servers idle: the reason for
        # the history and the network and disk rules
        assert table["in-use"][0] >= 8, "\n".join(lines)
