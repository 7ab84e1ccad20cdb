"""The daemon under valgrind memcheck: a short run that polls, reaps a
guest through the whole saga (journal writes, task waits, archive checks)
and stops on SIGTERM, with zero memory errors and zero leaks.

The unit tests run under memcheck too (make check-valgrind). The ASan
build cannot run under valgrind; the Makefile runs this file only in the
normal pass.
"""

import json
import os
import re

import pytest

from conftest import PROXREAPD, guest, wait_until

FAST = {"qmshutdown": 0.3, "qmsnapshot": 0.2, "vzdump": 0.4, "qmdestroy": 0.2}


def sanitized(binary):
    with open(binary, "rb") as fh:
        return b"__asan_init" in fh.read()


def test_daemon_reap_under_memcheck(lab):
    if sanitized(PROXREAPD):
        pytest.skip("an ASan build cannot run under valgrind")
    sim = lab.sim([guest(301, "victim", cpu=0.01, mem_mb=200),
                   guest(302, "busy", cpu=0.6, mem_mb=3000)], task_durations=FAST)
    cfg = lab.config(sim, observe={"interval": "500ms", "window": "2s", "nodes": "all", "node_name": "pve1"},
                     reap={"mode": "reap", "archive_storage": "local", "breaker_jump": 100},
                     status={"prometheus_file": os.path.join(lab.dir, "proxreap.prom")})
    vlog = os.path.join(lab.dir, "valgrind.log")
    d = lab.daemon(cfg, wrap=["valgrind", "--quiet", "--log-file=" + vlog, "--error-exitcode=99",
                              "--leak-check=full", "--show-leak-kinds=definite,indirect,possible",
                              "--errors-for-leak-kinds=definite,indirect,possible",
                              "--track-fds=no", "--child-silent-after-fork=yes"])

    def reaped():
        r = lab.cli("journal", "list", "--json", config=cfg)
        assert r.returncode == 0, r.stderr
        return any(o["vmid"] == 301 and o["state"] == "reaped" for o in json.loads(r.stdout))
    wait_until(reaped, timeout=120, interval=0.5,
               message=lambda: "a reap under valgrind; daemon log:\n" + d.log())
    # Two polls more after the saga, then a stop.
    api = d.status()["api"]
    d.wait_polls(api["polls_ok"] + api["polls_failed"] + 2, timeout=60)
    rc = d.stop(timeout=120)
    with open(vlog) as fh:
        report = fh.read()
    assert rc == 0 and not report.strip(), "valgrind (exit %s):\n%s\ndaemon log:\n%s" % (rc, report, d.log())
    assert sim.guest(302)["status"] == "running"
    assert re.search(r"\breaped\b", d.log())
