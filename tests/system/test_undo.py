"""The undo path an operator at 3 a.m. needs: restore by what they know
(a vmid, a guest's name, an op id in any case), nothing guessed."""

from conftest import check_invariants, guest
from test_reap import IDLE, reap_config, sim_of, wait_op


def creates(sim):
    return [r for r in sim.requests() if r["method"] == "POST" and r["path"] == "/nodes/pve1/qemu"]


def reap_two_namesakes(lab):
    sim = sim_of(lab, [guest(104, "thesis-2023", **IDLE), guest(105, "Thesis-2023", **IDLE),
                       guest(106, "web", **IDLE)])
    cfg = reap_config(lab, sim)
    d = lab.daemon(cfg)
    ops = {v: wait_op(lab, cfg, v, {"reaped"}) for v in (104, 105, 106)}
    assert d.stop() == 0
    return sim, cfg, ops


def test_restore_by_vmid_name_or_id_in_any_case(lab):
    sim, cfg, ops = reap_two_namesakes(lab)
    # A name two reaped guests had: both listed, nothing restored.
    r = lab.cli("restore", "THESIS-2023", "--yes", config=cfg)
    assert r.returncode == 1, r
    assert "'THESIS-2023' names 2 reaped guests; restore one by its id:" in r.stderr, r.stderr
    for v in (104, 105):
        assert "%s  guest %d (" % (ops[v]["id"], v) in r.stderr, r.stderr
    assert creates(sim) == []
    # A vmid: the one reaped guest that had it.
    r = lab.cli("restore", "104", "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 104 on 'pve1'" % ops[104]["id"] in r.stdout, r
    # Now the name names one reaped guest only.
    r = lab.cli("restore", "thesis-2023", "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 105" % ops[105]["id"] in r.stdout, r
    # An id in lower case.
    r = lab.cli("restore", ops[106]["id"].lower(), "--yes", config=cfg)
    assert r.returncode == 0 and "%s restored as guest 106" % ops[106]["id"] in r.stdout, r
    # Again by vmid: the guest's op is restored, and it says so.
    r = lab.cli("restore", "104", "--yes", config=cfg)
    assert r.returncode == 0 and "already restored as guest 104" in r.stdout, r
    assert len(creates(sim)) == 3
    r = lab.cli("restore", "no-such-guest", "--yes", config=cfg)
    assert r.returncode == 1
    assert "no op, vmid or guest name 'no-such-guest' in the journal" in r.stderr, r.stderr
    check_invariants(lab, sim, cfg)


def test_journal_list_filters_by_vmid_and_name(lab):
    sim, cfg, ops = reap_two_namesakes(lab)
    r = lab.cli("journal", "list", "--vmid", "105", config=cfg)
    assert r.returncode == 0, r.stderr
    rows = r.stdout.splitlines()[1:]
    assert [x.split()[0] for x in rows] == [ops[105]["id"]], r.stdout
    # The why of each op: the evidence it was reaped on.
    assert rows[0].rstrip().endswith("(coverage 90%)") or "mean cpu" in rows[0], r.stdout
    r = lab.cli("journal", "list", "--name", "THESIS-2023", config=cfg)
    assert sorted(x.split()[0] for x in r.stdout.splitlines()[1:]) == sorted(
        [ops[104]["id"], ops[105]["id"]]), r.stdout
    r = lab.cli("journal", "list", "--name", "nobody", config=cfg)
    assert r.stdout.splitlines()[1:] == ["(no op of that guest)"], r.stdout
    r = lab.cli("journal", "list", "--vmid", "12", config=cfg)
    assert r.returncode == 2 and "--vmid '12' is not a vmid" in r.stderr, r
