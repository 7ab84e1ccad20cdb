"""HTTPS: the server certificate is verified against api.ca_file (or
pinned), api.insecure skips that and is warned about."""

import base64
import hashlib
import os
import re
import subprocess

import pytest

from conftest import cluster_requests, guest, make_test_ca

FAST = {"interval": "100ms", "window": "500ms", "nodes": "all"}   # 5 samples
IDLE = ["mean cpu 1.00% < 5%", "mean mem 300.00 MiB < 1024 MiB"]
CERT_ERROR = "SSL certificate problem: unable to get local issuer certificate"


@pytest.fixture
def tls_sim(lab):
    return lab.sim([guest(100, "idle1"), guest(101, "idle-ct", type="lxc", cpu=0.02, mem_mb=100)], tls=True)


@pytest.fixture
def other_ca(lab):
    return make_test_ca(os.path.join(lab.dir, "other-ca"), cn="some other CA")[0]


def test_https_with_the_right_ca(lab, tls_sim):
    assert tls_sim.url.startswith("https://")
    plan = lab.plan(lab.config(tls_sim, observe=FAST))
    assert plan[100]["verdict"] == "idle" and plan[100]["reasons"] == IDLE
    assert plan[101]["verdict"] == "idle"
    assert plan[100]["samples"] == plan[100]["expected_samples"] == 5
    assert len(cluster_requests(tls_sim)) == 5


@pytest.mark.parametrize("which", ["other-ca", "system-store"])
def test_https_with_a_wrong_ca_is_refused(lab, tls_sim, other_ca, which):
    ca = other_ca if which == "other-ca" else ""
    r = lab.cli("plan", config=lab.config(tls_sim, api={"ca_file": ca}, observe=FAST))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == "proxreap: cannot use the Proxmox API: GET /version: %s\n" % CERT_ERROR
    # the handshake failed: no request ever reached the API
    assert tls_sim.requests() == []


def test_daemon_with_a_wrong_ca_logs_the_certificate_error_once(lab, tls_sim, other_ca):
    n = lab.notify()
    d = lab.daemon(lab.config(tls_sim, api={"ca_file": other_ca, "retries": 0}, observe=FAST), notify=n)
    doc = d.wait_status(lambda s: s["api"]["polls_failed"] >= 10)
    assert doc["api"]["error"] == "GET /cluster/resources?type=vm: " + CERT_ERROR
    assert d.count(r"cannot poll the Proxmox API") == 1
    assert d.count(r"warning") == 0          # https, verified: nothing to warn about
    assert n.count("READY=1") == 0
    assert tls_sim.requests() == []


def test_insecure_skips_verification_and_is_warned_about(lab, tls_sim, other_ca):
    conf = lab.config(tls_sim, api={"ca_file": other_ca, "insecure": True}, observe=FAST)
    plan = lab.plan(conf)
    assert plan[100]["verdict"] == "idle"
    d = lab.daemon(conf)
    d.wait_status(lambda s: s["api"]["polls_ok"] >= 3 and s["api"]["ok"])
    assert d.lines()[0] == ("proxreapd: warning: api.insecure is set: the Proxmox server certificate "
                            "is NOT verified")
    assert d.count(r"insecure") == 1


def spki_pin(cert_file):
    der = subprocess.run(["openssl", "x509", "-in", cert_file, "-pubkey", "-noout"], check=True,
                         capture_output=True).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=der, check=True,
                         capture_output=True).stdout
    return "sha256//" + base64.b64encode(hashlib.sha256(der).digest()).decode()


def test_pinned_public_key(lab, tls_sim):
    good = spki_pin(tls_sim.cert)
    plan = lab.plan(lab.config(tls_sim, api={"pinned_pubkey": good}, observe=FAST))
    assert plan[100]["verdict"] == "idle"
    wrong = "sha256//" + base64.b64encode(hashlib.sha256(b"not the key").digest()).decode()
    r = lab.cli("plan", config=lab.config(tls_sim, name="wrong-pin.conf", api={"pinned_pubkey": wrong},
                                          observe=FAST))
    assert r.returncode == 1
    assert re.match(r"^proxreap: cannot use the Proxmox API: GET /version: .*pinned public key", r.stderr), r.stderr
