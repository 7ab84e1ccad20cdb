"""The benchmark's smoke run: bench/bench.py --smoke runs every program it
compares (proxreapd, proxreap plan, the Python proxmoxer reference, the
libcurl+yajl and libcurl+jansson floor) on 100 and 1,000 simulated guests
for a few polls, and proxreapd once under callgrind. The numbers are not
judged here (a smoke run on a loaded box says nothing about speed; that is
`make bench`), only that every program ran, saw the whole fleet, and that
the harness's results, tables and plot came out.

$PROXREAP_FLOOR is the floor program (make builds build-bench/floor).
"""

import json
import os
import subprocess

import pytest

from conftest import BUILD, REPO

FLOOR = os.environ.get("PROXREAP_FLOOR") or os.path.join(REPO, "build-bench", "floor")
TOOLS = ["proxreapd", "plan", "python", "floor-yajl", "floor-jansson"]


def test_bench_smoke(tmp_path):
    if not os.path.exists(FLOOR):
        pytest.fail("%s is missing: make %s (or set PROXREAP_FLOOR)" % (FLOOR, "build-bench/floor"))
    out = tmp_path / "out"
    r = subprocess.run(["/usr/bin/python3", os.path.join(REPO, "bench", "bench.py"), "--smoke",
                        "--build", BUILD, "--floor", FLOOR, "--out", str(out)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    doc = json.loads((out / "results.json").read_text())
    assert doc["sizes"] == [100, 1000]
    for size in doc["sizes"]:
        for tool in TOOLS:
            rs = [x for x in doc["results"] if x["size"] == size and x["tool"] == tool]
            assert len(rs) == 1, (size, tool, rs)
            x = rs[0]
            assert x["guests"] == size
            assert x["polls"] >= 5
            assert x["cpu_per_poll"] > 0 and x["peak_rss_kib"] > 1000, x
            if tool == "proxreapd":
                # Observe mode: its state within the 1 KiB budget.
                assert 0 < x["state_per_guest"] <= 1024, x
            if tool != "plan":
                # Exactly one request per poll and nothing else (plan also
                # asks for /version once).
                assert x["resources_requests"] == x["polls"] and x["other_requests"] == 0, x
    # The Python reference keeps its windows; the floor keeps nothing.
    py = [x for x in doc["results"] if x["tool"] == "python"]
    assert all(x["state_per_guest"] > 0 for x in py)
    assert all(x["state_per_guest"] == 0 for x in doc["results"] if x["tool"].startswith("floor"))
    cg = doc["callgrind"]
    assert cg["size"] == 100 and cg["polls"] >= 2 and cg["instructions_per_poll"] > 100000, cg
    md = (out / "results.md").read_text()
    for heading in ("CPU per poll", "Peak RSS", "State kept per guest", "Requests per poll",
                    "Ratios", "callgrind"):
        assert "## " + heading in md, md
    assert (out / "cpu-per-poll.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "floor-yajl" in r.stderr    # the progress lines
