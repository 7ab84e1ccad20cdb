"""Command lines of proxreapd and proxreap: help, version, usage errors,
check-config and status."""

import json
import os
import re
import subprocess

import pytest

from conftest import PROXREAP, PROXREAPD, VERSION, guest, line_of, wait_until

ISO = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"


def run(*cmd, timeout=30):
    return subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("opt", ["--help", "-h"])
def test_proxreapd_help(opt):
    r = run(PROXREAPD, opt)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: proxreapd [-c FILE] [--foreground] [--debug]\n")
    for o in ("--config FILE", "--foreground", "--debug", "--help", "--version"):
        assert o in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("opt", ["--version", "-V"])
def test_proxreapd_version(opt):
    r = run(PROXREAPD, opt)
    assert (r.returncode, r.stdout, r.stderr) == (0, "proxreapd %s\n" % VERSION, "")


@pytest.mark.parametrize("args,extra", [
    (["--bogus"], "unrecognized option"),
    (["-x"], "invalid option"),
    (["-c"], "requires an argument"),
    (["-f", "surplus"], "proxreapd: unexpected argument 'surplus'"),
])
def test_proxreapd_usage_errors(args, extra):
    r = run(PROXREAPD, *args)
    assert r.returncode == 2
    assert r.stdout == ""
    assert extra in r.stderr
    assert "usage: proxreapd" in r.stderr


@pytest.mark.parametrize("opt", ["--help", "-h"])
def test_proxreap_help(opt):
    r = run(PROXREAP, opt)
    assert r.returncode == 0
    assert r.stdout.startswith("usage: proxreap [-c FILE] COMMAND [OPTIONS]\n")
    for c in ("check-config", "plan [--history DUR] [--json]", "status [--json]"):
        assert c in r.stdout
    assert r.stderr == ""


@pytest.mark.parametrize("opt", ["--version", "-V"])
def test_proxreap_version(opt):
    r = run(PROXREAP, opt)
    assert (r.returncode, r.stdout, r.stderr) == (0, "proxreap %s\n" % VERSION, "")


@pytest.mark.parametrize("args,message", [
    ([], "proxreap: missing command"),
    (["frobnicate"], "proxreap: unknown command 'frobnicate'"),
    (["--bogus", "plan"], "unrecognized option"),
    (["plan", "--bogus"], "unrecognized option"),
    (["plan", "surplus"], "proxreap plan: unexpected argument 'surplus'"),
    (["status", "--yaml"], "unrecognized option"),
    (["status", "surplus"], "proxreap status: unexpected argument 'surplus'"),
    (["check-config", "surplus"], "proxreap check-config: unexpected argument 'surplus'"),
])
def test_proxreap_usage_errors(args, message):
    r = run(PROXREAP, "-c", "/nonexistent/proxreap.conf", *args)
    assert r.returncode == 2, r
    assert r.stdout == ""
    assert message in r.stderr
    assert "usage: proxreap" in r.stderr


def test_check_config_ok(lab):
    sim = lab.sim([], tls=True)
    r = lab.cli("check-config", config=lab.config(sim))
    assert (r.returncode, r.stdout, r.stderr) == (0, "configuration OK\n", "")


@pytest.mark.parametrize("api,warning", [
    ({"insecure": True}, "api.insecure is set: the Proxmox server certificate is NOT verified"),
    ({"url": "http://127.0.0.1:8006"}, "api.url 'http://127.0.0.1:8006/api2/json' is plain http: "
                                       "the API credential travels unencrypted"),
], ids=["insecure", "http"])
def test_check_config_warns_of_an_unprotected_credential(lab, api, warning):
    sim = lab.sim([], tls=True)
    url = api.pop("url", None)
    r = lab.cli("check-config", config=lab.config(sim, url=url, api=api))
    assert (r.returncode, r.stdout) == (0, "configuration OK\n")
    assert r.stderr == "proxreap: warning: %s\n" % warning


def test_shipped_config_documents_every_key_and_parses(lab):
    """conf/proxreap.conf with a token file and a readable CA file is valid."""
    from conftest import REPO
    text = open(os.path.join(REPO, "conf", "proxreap.conf")).read()
    ca = lab.write("ca.pem", "not needed to exist as a real CA for check-config\n")
    text = text.replace('# token_secret_file = "/etc/proxreap/token";',
                        'token_secret_file = "%s";' % lab.token_file)
    text = text.replace('# ca_file = "/etc/pve/pve-root-ca.pem";', 'ca_file = "%s";' % ca)
    conf = lab.write("shipped.conf", text)
    r = lab.cli("check-config", config=conf)
    assert (r.returncode, r.stdout, r.stderr) == (0, "configuration OK\n", "")


def test_check_config_reports_every_error(lab):
    readable = lab.secret_file("readable-token", "whatever", mode=0o644)
    text = "\n".join([
        "api = {",
        '        url = "ftp://example.org";',
        '        token_id = "no-bang";',
        '        token_secret_file = "%s";' % readable,
        "        retries = 11;",
        "};",
        "observe = {",
        '        interval = "10";',
        '        window = "50ms";',
        '        nodes = "some";',
        '        types = ["qemu", "vm"];',
        '        intervall = "1s";',
        "};",
        "idle = {",
        "        cpu_percent = 0;",
        '        mem_mb = "lots";',
        "};",
        'select = { exclude_vmids = ["12"]; allow_ha = "yes"; };',
        'reap = { mode = "reap"; };',
        'status = { file = "relative/status.json"; };',
        'extra = { a = 1; };',
        "",
    ])
    conf = lab.write("broken.conf", text)
    r = lab.cli("check-config", config=conf)
    assert r.returncode == 2
    assert r.stdout == ""

    def at(needle, msg):
        return "%s:%d: %s" % (conf, line_of(text, needle), msg)
    expected = [
        at("url =", "'api.url' = 'ftp://example.org' must start with https:// (or http://)"),
        at("token_id", "'api.token_id' = 'no-bang' must look like USER@REALM!TOKENID"),
        at("token_secret_file", "secret file '%s' is accessible by others (mode 0644): run 'chmod o-rwx %s'"
           % (readable, readable)),
        at("retries", "'api.retries' = 11 must be a whole number from 0 to 10"),
        at('interval = "10"', "'observe.interval': invalid duration '10' (use a number with ms, s, m, h or d, "
                              "e.g. \"10s\")"),
        at("window", "'observe.window' = '50ms' is out of range (100ms to 30d)"),
        at("nodes", "'observe.nodes' = 'some' must be \"local\", \"all\" or a list of node names"),
        at("types", "'observe.types': 'vm' is not \"qemu\" or \"lxc\""),
        at("intervall", "unknown key 'observe.intervall'"),
        at("cpu_percent", "'idle.cpu_percent' = 0 is out of range (more than 0 and at most 10000)"),
        at("mem_mb", "'idle.mem_mb' must be a number, not a string"),
        at("exclude_vmids", "'select.exclude_vmids': '12' is not a vmid (100-999999999) or a range \"FIRST-LAST\""),
        at("allow_ha", "'select.allow_ha' must be a boolean (true or false), not a string"),
        at("mode", "'reap.mode' = \"reap\" needs 'reap.archive_storage' (where the archives go)"),
        at("extra", "unknown group 'extra'"),
        at("status.json", "'status.file' must be an absolute path"),
    ]
    got = r.stderr.splitlines()
    assert sorted(got) == sorted(expected), "\n".join(got)
    assert len(got) == len(expected)


def test_check_config_syntax_error_and_missing_file(lab):
    conf = lab.write("syntax.conf", 'api = {\n        url = "http://x";\n        retries = ;\n};\n')
    r = lab.cli("check-config", config=conf)
    assert r.returncode == 2
    assert re.match(r"^%s:3: syntax error(: .+)?\n$" % re.escape(conf), r.stderr), r.stderr
    missing = os.path.join(lab.dir, "missing.conf")
    r = lab.cli("check-config", config=missing)
    assert r.returncode == 2
    assert missing in r.stderr and "No such file or directory" in r.stderr


def test_check_config_credentials_and_tls(lab):
    base = ['api = {', '        url = "https://127.0.0.1:8006";']
    conf = lab.write("nocred.conf", "\n".join(base + ['        ca_file = "/nonexistent/ca.pem";', "};", ""]))
    r = lab.cli("check-config", config=conf, env={"CREDENTIALS_DIRECTORY": ""})
    assert r.returncode == 2
    assert r.stderr.splitlines() == [
        "%s:1: no credentials: set 'api.token_id' (recommended) or 'api.user'" % conf,
        "%s:3: cannot read CA file '/nonexistent/ca.pem': No such file or directory (set 'api.ca_file')" % conf,
    ]
    # the secret from $CREDENTIALS_DIRECTORY/token (systemd LoadCredential=)
    creds = os.path.join(lab.dir, "creds")
    os.mkdir(creds)
    lab.secret_file(os.path.join("creds", "token"), "credential-secret")
    conf = lab.write("creds.conf", 'api = { url = "http://127.0.0.1:8006"; token_id = "a@pve!b"; };\n')
    r = lab.cli("check-config", config=conf, env={"CREDENTIALS_DIRECTORY": creds})
    assert (r.returncode, r.stdout) == (0, "configuration OK\n"), r.stderr
    # Outside the service: the file LoadCredential= copies from.
    if not os.path.exists("/etc/proxreap/token"):
        r = lab.cli("check-config", config=conf)
        assert r.returncode == 2
        assert r.stderr == ("%s:1: cannot read secret file '/etc/proxreap/token': "
                            "No such file or directory\n" % conf)


def test_proxreapd_refuses_a_broken_config(lab):
    conf = lab.write("broken.conf", 'api = {\n        url = "http://127.0.0.1:1";\n};\n'
                                    'observe = {\n        window = "1x";\n};\n')
    r = run(PROXREAPD, "-f", "-c", conf)
    assert r.returncode == 2
    lines = r.stderr.splitlines()
    assert "proxreapd: error: %s:1: no credentials: set 'api.token_id' (recommended) or 'api.user'" % conf in lines
    assert ("proxreapd: error: %s:5: 'observe.window': invalid duration '1x' (use a number with ms, s, m, h "
            "or d, e.g. \"10s\")" % conf) in lines
    assert len(lines) == 2
    r = run(PROXREAPD, "-f", "-c", os.path.join(lab.dir, "nope.conf"))
    assert r.returncode == 2
    assert "nope.conf" in r.stderr


def test_status_without_a_daemon(lab):
    conf = lab.config(lab.sim([]))
    r = lab.cli("status", config=conf)
    assert r.returncode == 1
    assert r.stdout == ""
    status_file = lab.status_file_of(conf)
    assert r.stderr == "proxreap: no status file '%s': is proxreapd running?\n" % status_file
    with open(status_file, "w") as fh:
        fh.write("{not json")
    r = lab.cli("status", "--json", config=conf)
    assert r.returncode == 1
    assert r.stderr.startswith("proxreap: cannot read status file '%s': " % status_file)


def test_status_renders_the_daemon_view(lab):
    sim = lab.sim([guest(100, "idle1"), guest(101, "busy", cpu=0.5, type="lxc"), guest(102, "off", status="stopped")])
    conf = lab.config(sim, api={"retries": 0})
    d = lab.daemon(conf)
    d.wait_status(lambda s: s["summary"]["idle"] == 1 and s["summary"]["active"] == 1)

    # The CLI reads the status file again, which later polls replace (on a
    # loaded machine a skipped tick can cost the idle guest its coverage
    # for a moment): wait for a rendering of the judged fleet, and check
    # that one, not the file the wait above saw.
    judged = "tracking 3 guests, 1 idle, 1 active, 0 insufficient-data, 1 excluded"

    def status(*args):
        r = lab.cli("status", *args, config=conf)
        assert r.returncode == 0, r.stderr
        return r

    def judged_table():
        r = status()
        return r if r.stdout.splitlines()[2:3] == [judged] else None

    def judged_json():
        doc = json.loads(status("--json").stdout)
        return doc if doc["summary"]["insufficient-data"] == 0 else None

    r = wait_until(judged_table, message="a status showing '%s'" % judged)
    lines = r.stdout.splitlines()
    assert re.match(r"^proxreapd %s \(pid %d\), mode observe, status of %s \(\d+s ago\)$" % (VERSION, d.pid, ISO), lines[0]), lines[0]
    assert re.match(r"^API: ok, last successful poll %s$" % ISO, lines[1]), lines[1]
    assert lines[2] == "tracking 3 guests, 1 idle, 1 active, 0 insufficient-data, 1 excluded"
    assert lines[3] == ""
    assert lines[4].split() == ["VMID", "NODE", "TYPE", "NAME", "VERDICT", "CPU%", "MEM-MiB", "SAMPLES", "REASONS"]
    rows = lines[5:]
    assert [x.split()[0] for x in rows] == ["100", "101", "102"]
    assert re.match(r"^100\s+pve1\s+qemu\s+idle1\s+idle\s+1\.00\s+300\.0\s+\d+/20\s+"
                    r"mean cpu 1\.00% < 5%, mean mem 300\.00 MiB < 1024 MiB$", rows[0]), rows[0]
    assert re.match(r"^101\s+pve1\s+lxc\s+busy\s+active\s+50\.00\s+300\.0\s+\d+/20\s+mean cpu 50\.00% >= 5%$",
                    rows[1]), rows[1]
    assert rows[2].endswith("not running (status 'stopped')")

    doc = wait_until(judged_json, message="a status --json of the judged fleet")
    assert doc["pid"] == d.pid and doc["version"] == VERSION and doc["mode"] == "observe"
    assert [g["vmid"] for g in doc["guests"]] == [100, 101, 102]
    assert doc["summary"] == {"tracked": 3, "idle": 1, "active": 1, "insufficient-data": 0, "excluded": 1}

    # during an outage
    sim.fault(kind="status", code=503, message="down for maintenance", path="^/cluster/resources$")
    d.wait_status(lambda s: s["api"]["consecutive_failures"] >= 3)
    r = lab.cli("status", config=conf)
    assert r.returncode == 0
    assert re.match(r"^API: FAILING for \d+ poll\(s\): GET /cluster/resources\?type=vm: HTTP 503 down for "
                    r"maintenance \(last success %s\)$" % ISO, r.stdout.splitlines()[1]), r.stdout
