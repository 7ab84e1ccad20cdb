"""Mark mode on a fleet whose tag changes are slow: a poll spends at most
half the interval on tag changes (a config GET and PUT each), so polls keep
their interval however many guests turn idle at once, and every guest is
still marked in the end, and unmarked when busy again."""

import time

from conftest import cluster_requests, guest, wait_until

N = 10
OBSERVE = {"interval": "200ms", "window": "1s", "nodes": "all", "node_name": "pve1"}


def tagged(sim):
    return {v for v in range(501, 501 + N) if "proxreap-idle" in (sim.guest(v).get("tags") or "")}


def test_slow_tag_changes_are_spread_over_polls(lab):
    sim = lab.sim([guest(v, "idle-%d" % v, cpu=0.01, mem_mb=200) for v in range(501, 501 + N)])
    # Every config read takes 150 ms: more than the 100 ms a poll may spend.
    # (No history: a busy window unmarks at once.)
    sim.fault(kind="delay", seconds=0.15, path="/config$", method="GET")
    cfg = lab.config(sim, observe=OBSERVE, reap={"mode": "mark", "breaker_jump": 100, "history": "0"})
    d = lab.daemon(cfg)
    wait_until(lambda: tagged(sim), timeout=30, message="a first mark")
    # While marking, the polls go on at their interval: one tag change per
    # poll, never all ten in one.
    marking_since = time.monotonic()
    polls_before = len(cluster_requests(sim))
    wait_until(lambda: len(tagged(sim)) == N, timeout=60,
               message=lambda: "all %d marked; marked: %s" % (N, sorted(tagged(sim))))
    marking = time.monotonic() - marking_since
    polls = len(cluster_requests(sim)) - polls_before
    assert polls >= N - 2, "%d polls while %d guests were marked in %.1fs" % (polls, N, marking)
    assert d.count(r"tag change\(s\) or configuration read\(s\) left for the next poll") >= 1, d.log()
    puts = [r for r in sim.requests() if r["method"] == "PUT"]
    assert len(puts) == N and len({r["path"] for r in puts}) == N
    # All busy again: unmarked the same way.
    for v in range(501, 501 + N):
        sim.event(v, "set", field="workload", value={"kind": "constant", "cpu": 0.5, "mem_mb": 3000})
    wait_until(lambda: not tagged(sim), timeout=60, message=lambda: "all unmarked: %s" % sorted(tagged(sim)))
    d.assert_running()
    assert d.stop() == 0
