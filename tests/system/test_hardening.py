"""Local attackers, hostile strings and operations that never surprise the
admin (issue 14).

1. Files in the state and runtime directories are opened relative to their
   directory, never through a link, and must be regular files of the
   directory's owner with one link; root never hands a file it did not
   create to anyone, never cuts one it does not own, and read-only
   commands create nothing.
2. The environment's proxy variables never see the credential.
3. Strings from the cluster reach logs and terminals with their control
   characters escaped.
6. A reload that would fail keeps the running configuration; a lasting
   mistake at start exits 2 (final for the unit).
7. Every failure says what is wrong and how to fix it: a 401 is not
   "unreachable", a wrong node name or storage is named, `check-config
   --online` tests it all.
8. CLI conventions: help, -c after the command, systemd time spans,
   fatal errors on stderr, a missing journal.
"""

import json
import os
import re
import signal
import socket
import subprocess
import threading

import pytest

from conftest import PROXREAPD, check_invariants, guest, wait_until
from test_reap import FAST, IDLE, OBSERVE, REAP, healthy, ops_by_vmid, sim_of, wait_op

SERVICE_UID = 65534  # nobody: the state directory's owner, as the service user is


# ---------------------------------------------------------------- 1. the state directory

def state_dir_of_service_user(lab):
    """A state directory owned by another user (the daemon's), as
    /var/lib/proxreap is; the journal goes there."""
    d = os.path.join(lab.dir, "state")
    os.mkdir(d, 0o750)
    os.chown(d, SERVICE_UID, SERVICE_UID)
    return d


def victim(lab, text="root:$6$secret:19000:0:99999:7:::"):
    """A root-owned file that must stay exactly as it is (like
    /etc/shadow); no trailing newline, as a torn journal tail."""
    path = os.path.join(lab.dir, "shadow")
    with open(path, "w") as fh:
        fh.write(text)
    os.chmod(path, 0o640)
    return path


def unchanged(path, text):
    st = os.stat(path)
    with open(path) as fh:
        assert fh.read() == text
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (0, 0, 0o640), st


@pytest.mark.parametrize("link", ["symlink", "hardlink"])
@pytest.mark.parametrize("command", [("restore", "R-000001", "--yes"), ("journal", "verify"),
                                     ("journal", "list")])
def test_a_link_planted_at_the_journal_is_refused(lab, link, command):
    """The service user plants a link at the journal to a file of root's;
    root runs proxreap: it refuses the link, and the file keeps its owner,
    mode and every byte."""
    state = state_dir_of_service_user(lab)
    target = victim(lab)
    journal = os.path.join(state, "journal")
    (os.symlink if link == "symlink" else os.link)(target, journal)
    cfg = lab.config(reap={"journal": journal})
    r = lab.cli(*command, config=cfg)
    assert r.returncode == 1, r.stdout + r.stderr
    why = ("it is a symbolic link: refusing to follow it" if link == "symlink"
           else "has 2 names (a hard link to a file elsewhere?): refusing to use it")
    assert why in r.stderr and journal in r.stderr, r.stderr
    unchanged(target, "root:$6$secret:19000:0:99999:7:::")


def test_read_only_commands_and_a_typo_create_nothing(lab):
    """journal list/show/verify, status and a restore of an op that does
    not exist leave an empty state directory empty."""
    state = state_dir_of_service_user(lab)
    cfg = lab.config(reap={"journal": os.path.join(state, "journal")},
                     status={"file": os.path.join(state, "status.json")})
    r = lab.cli("journal", "list", config=cfg)
    assert r.returncode == 0 and "(no reaps yet)" in r.stdout, r.stderr
    assert lab.cli("journal", "show", "R-000099", config=cfg).returncode == 1
    r = lab.cli("journal", "verify", config=cfg)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("no journal at '%s'" % os.path.join(state, "journal")), r.stdout
    r = lab.cli("status", config=cfg)
    assert r.returncode == 1 and "no status file" in r.stderr, r.stderr
    r = lab.cli("restore", "R-000099", "--yes", config=cfg)
    assert r.returncode == 1 and "no op, vmid or guest name 'R-000099'" in r.stderr, r.stderr
    assert os.listdir(state) == []


def test_root_neither_cuts_nor_hands_over_the_daemons_torn_journal(lab):
    """A reap's journal, then handed to the service user with its directory
    (as the daemon's own files are), with a torn last record: root's
    restore leaves the file exactly as it is (only its owner may cut it)
    and says so."""
    state = os.path.join(lab.dir, "state")
    os.mkdir(state, 0o750)
    journal = os.path.join(state, "journal")
    sim = sim_of(lab, [guest(201, "a", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, journal=journal))
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 201, {"reaped"})
    assert d.stop() == 0
    for path in (state, journal):
        os.chown(path, SERVICE_UID, SERVICE_UID)
    with open(journal, "a") as fh:
        fh.write('{"seq":99,"crc32c":"00000000","rec":{"op":"R-0')
    before = os.stat(journal)
    r = lab.cli("restore", op["id"], "--yes", config=cfg)
    assert r.returncode == 1
    assert "only its owner may cut" in r.stderr, r.stderr
    after = os.stat(journal)
    assert (after.st_size, after.st_uid, after.st_mtime_ns) == (before.st_size, SERVICE_UID,
                                                                before.st_mtime_ns)
    assert sorted(os.listdir(state)) == ["journal", "journal.lock"]  # the daemon's claim, nothing new
    assert sim.guest(201) is None


def test_status_file_link_is_replaced_never_followed(lab):
    """A link planted at the status file: the daemon replaces the link with
    its file (the target stays as it was), and `proxreap status` refuses a
    link."""
    target = victim(lab)
    status = os.path.join(lab.dir, "planted-status.json")
    os.symlink(target, status)
    cfg = lab.config(lab.sim([guest(101, "a")]), status={"file": status})
    r = lab.cli("status", config=cfg)
    assert r.returncode == 1 and "symbolic link" in r.stderr, r.stderr
    d = lab.daemon(cfg)
    wait_until(lambda: not os.path.islink(status), message="the link replaced")
    d.wait_polls(2)
    unchanged(target, "root:$6$secret:19000:0:99999:7:::")
    assert lab.cli("status", config=cfg).returncode == 0
    assert d.stop() == 0


# ---------------------------------------------------------------- 2. proxies

class ProxyTrap:
    """A listener that records what reaches it and answers 502: a proxy
    nobody configured in proxreap."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self.seen = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with c:
                c.settimeout(5)
                data = b""
                try:
                    while b"\r\n\r\n" not in data:
                        chunk = c.recv(4096)
                        if not chunk:
                            break
                        data += chunk
                    self.seen.append(data.decode("latin-1"))
                    c.sendall(b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self):
        self.sock.close()


@pytest.fixture
def trap():
    t = ProxyTrap()
    yield t
    t.close()


def proxy_env(url):
    return {k: url for k in ("http_proxy", "HTTP_PROXY", "https_proxy", "HTTPS_PROXY", "ALL_PROXY",
                             "all_proxy")}


def test_environment_proxies_never_see_the_credential(lab, trap):
    """Every proxy variable points at the trap: the CLI and the daemon
    reach the API directly, and the trap receives nothing."""
    sim = sim_of(lab, [guest(101, "a", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE)
    env = dict(proxy_env(trap.url), no_proxy="", NO_PROXY="")
    r = lab.cli("check-config", "--online", config=cfg, env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    d = lab.daemon(cfg, env=env)
    d.wait_polls(3)
    assert d.stop() == 0
    assert trap.seen == []


def test_configured_proxy_is_used(lab, trap):
    """api.proxy names the trap: the request goes there (and the trap's
    502 is what proxreap reports); the proxy URL is never printed."""
    sim = sim_of(lab, [guest(101, "a", **IDLE)])
    cfg = lab.config(sim, api={"proxy": trap.url.replace("http://", "http://user:pw@"), "retries": 0})
    r = lab.cli("check-config", "--online", config=cfg)
    assert r.returncode == 1
    assert trap.seen and trap.seen[0].startswith("GET %s/version HTTP/1.1" % sim.api_url), trap.seen
    assert "502" in r.stdout, r.stdout
    assert "user:pw" not in r.stdout + r.stderr


# ---------------------------------------------------------------- 3. hostile strings

HOSTILE = "evil\n proxreapd: guest 999 reaped\x1b]0;owned\x07\x1b[2J\r\x9b\u202e"
CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f\x80-\x9f\u2028\u202e]")


def inert(text, where):
    """No control character but line ends, and no line forged."""
    assert not CONTROL.search(text), "%s holds a control character: %r" % (where, text)
    assert "\nproxreapd: guest 999" not in text and "\n proxreapd: guest 999" not in text, where


def test_hostile_names_and_task_errors_are_escaped(lab):
    """A guest name with a newline, OSC/CSI sequences and a C1 control, a
    task that fails with such an exit status, an HTTP reason phrase with
    them: every human-readable output shows them escaped."""
    faults = [{"kind": "task_fail", "type": "^vzdump$", "count": 1, "error": HOSTILE}]
    sim = sim_of(lab, [guest(201, HOSTILE, **IDLE)], faults=faults)
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, retry_after="1h"))
    d = lab.daemon(cfg)
    op = wait_op(lab, cfg, 201, {"aborted"})
    assert op["name"] == HOSTILE  # JSON keeps the exact string
    d.wait_status(lambda s: s["api"]["polls_ok"] > 3)
    outputs = {"the daemon log": d.log()}
    for args in (("status",), ("journal", "list"), ("journal", "show", op["id"]), ("plan",)):
        r = lab.cli(*args, config=cfg)
        assert r.returncode == 0, r.stderr
        outputs[" ".join(args)] = r.stdout + r.stderr
    assert d.stop() == 0
    sim.fault(kind="status", code=500, message="down\x1b[31m\nforged line", path="^/version$")
    r = lab.cli("plan", config=cfg)
    assert r.returncode == 1
    outputs["an API error"] = r.stderr
    for where, text in outputs.items():
        inert(text, where)
    shown = "evil\\x0a proxreapd: guest 999 reaped\\x1b]0;owned\\x07\\x1b[2J\\x0d\\xc2\\x9b\\xe2\\x80\\xae"
    assert "guest 201 ('%s'" % shown in outputs["the daemon log"], outputs["the daemon log"]
    assert shown[:16] in outputs["journal list"], outputs["journal list"]  # its NAME column is cut
    # The reason phrase ends at its line end (the rest is no status line).
    assert "HTTP 500 down\\x1b[31m\n" in outputs["an API error"], outputs["an API error"]
    check_invariants(lab, sim, cfg)


# ---------------------------------------------------------------- 6. reload and start

def test_reload_to_a_storage_that_does_not_exist_keeps_running(lab):
    """Observe mode, then a reload to reap mode with a storage that does not
    exist: refused with the reason, the old configuration keeps running,
    and a later good reload is taken."""
    sim = sim_of(lab, [guest(201, "a", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE)
    d = lab.daemon(cfg)
    d.wait_polls(2)
    assert lab.cli("check-config", config=lab.config(sim, observe=OBSERVE, reap=dict(
        REAP, archive_storage="nosuch"))).returncode == 0  # offline, it cannot know
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload failed: storage: archive storage 'nosuch' on 'pve1': .*No such storage.*, "
               r"keeping the running configuration")
    healthy(d)
    assert d.status()["mode"] == "observe" and ops_by_vmid(lab, cfg, 201) == []
    lab.config(sim, observe=OBSERVE, reap=dict(REAP, mode="mark"))
    d.signal(signal.SIGHUP)
    d.wait_status(lambda s: s["mode"] == "mark", what="mark mode after the good reload")
    assert d.stop() == 0


@pytest.mark.parametrize("mistake", ["storage", "node"])
def test_lasting_mistake_at_start_exits_2(lab, mistake):
    """A storage or node name that does not exist cannot fix itself: the
    daemon says so and exits 2, which the unit does not restart
    (RestartPreventExitStatus=2)."""
    sim = sim_of(lab, [guest(201, "a", **IDLE)])
    reap = dict(REAP, archive_storage="nosuch") if mistake == "storage" else REAP
    observe = dict(OBSERVE, node_name="vm") if mistake == "node" else OBSERVE
    cfg = lab.config(sim, observe=observe, reap=reap)
    d = lab.daemon(cfg)
    wait_until(lambda: not d.running(), message="the daemon to give up")
    d.returncode = d.proc.returncode
    assert d.returncode == 2, d.log()
    want = "archive storage 'nosuch'" if mistake == "storage" else \
        "node name 'vm' is not a node of the cluster"
    assert want in d.log(), d.log()
    assert "hostname lookup" not in d.log()
    with open(os.path.join(os.path.dirname(PROXREAPD), "..", "systemd", "proxreapd.service")) as fh:
        assert "RestartPreventExitStatus=2" in fh.read()


# ---------------------------------------------------------------- 7. say what is wrong

def test_authentication_failure_is_named_everywhere(lab):
    """A 401 is "authentication failed" in the status file, `proxreap
    status`, the metrics, and check-config --online with the fix."""
    sim = sim_of(lab, [guest(101, "a")])
    bad = lab.secret_file("bad-token", "00000000-0000-0000-0000-000000000000")
    prom = os.path.join(lab.dir, "metrics.prom")
    cfg = lab.config(sim, observe=OBSERVE, api={"token_secret_file": bad},
                     status={"prometheus_file": prom})
    d = lab.daemon(cfg)
    doc = d.wait_status(lambda s: s["api"]["polls_failed"] >= 2)
    assert doc["api"]["state"] == "auth-failed", doc["api"]
    r = lab.cli("status", config=cfg)
    assert "AUTHENTICATION FAILED" in r.stdout and "unreachable" not in r.stdout.lower(), r.stdout
    with open(prom) as fh:
        metrics = fh.read()
    assert 'proxreap_api_state{state="auth-failed"} 1' in metrics, metrics
    assert 'proxreap_api_state{state="unreachable"} 0' in metrics, metrics
    assert d.stop() == 0
    r = lab.cli("check-config", "--online", config=cfg)
    assert r.returncode == 1
    assert re.search(r"^api +FAILED +authentication failed", r.stdout, re.M), r.stdout
    assert "fix: check 'api.token_id'" in r.stdout and "pveum user token" in r.stdout, r.stdout
    assert r.stdout.endswith("1 check failed\n"), r.stdout


def test_check_config_online_names_each_mistake_and_its_fix(lab):
    """A node name the cluster does not know, and an archive storage that
    is not there: each named, with its fix; a good configuration passes."""
    sim = sim_of(lab, [guest(101, "a"), guest(102, "b")])
    cfg = lab.config(sim, observe=dict(OBSERVE, node_name="vm"), reap=REAP)
    r = lab.cli("check-config", "--online", config=cfg)
    assert r.returncode == 1
    out = r.stdout
    assert re.search(r"^api +ok +Proxmox VE \S+ answers at %s" % re.escape(sim.url), out, re.M), out
    assert re.search(r"^node +FAILED +this host's node name 'vm' is not a node of the cluster", out, re.M), out
    assert "fix: set 'observe.node_name' to this node's name as Proxmox VE knows it (one of: pve1, pve2)" in out
    assert re.search(r"^guests +ok +the token sees 2 guests", out, re.M), out
    assert re.search(r"^storage +note +archive storage 'local' not checked", out, re.M), out
    assert "hostname lookup" not in out
    assert out.endswith("1 check failed\n"), out

    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, archive_storage="nosuch"))
    r = lab.cli("check-config", "--online", config=cfg)
    assert r.returncode == 1
    assert re.search(r"^storage +FAILED +archive storage 'nosuch' on 'pve1': .*No such storage", r.stdout,
                     re.M), r.stdout
    assert "set 'reap.archive_storage'" in r.stdout, r.stdout
    assert r.stdout.endswith("1 check failed\n"), r.stdout

    good = lab.config(sim, name="good.conf", observe=OBSERVE, reap=REAP)
    r = lab.cli("check-config", "--online", config=good)
    assert r.returncode == 0 and r.stdout.endswith("online checks passed\n"), r.stdout + r.stderr


def test_check_config_online_over_untrusted_tls(lab):
    """A TLS API whose CA proxreap is not given: the TLS failure is named,
    with api.ca_file as the fix."""
    sim = lab.sim([guest(101, "a")], tls=True)
    cfg = lab.config(sim, api={"ca_file": "", "retries": 0})
    r = lab.cli("check-config", "--online", config=cfg)
    assert r.returncode == 1
    assert re.search(r"^api +FAILED +TLS: the certificate of \S+ is not trusted", r.stdout, re.M), r.stdout
    assert "fix: on a node, keep 'api.ca_file'" in r.stdout, r.stdout


# ---------------------------------------------------------------- 8. CLI conventions

COMMANDS = ["check-config", "plan", "status", "journal", "restore", "help"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(lab, command):
    r = lab.cli(command, "--help")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("usage: proxreap [-c FILE] %s" % command), r.stdout
    assert lab.cli("help", command).stdout == r.stdout


def test_config_option_after_the_command(lab):
    cfg = lab.config()
    r = lab.cli("check-config", "-c", cfg)
    assert r.returncode == 0 and r.stdout.endswith("configuration OK\n"), r.stderr
    r = lab.cli("journal", "list", "--config", cfg)
    assert r.returncode == 0, r.stderr
    r = lab.cli("plan", "--bogus", config=cfg)
    assert r.returncode == 2 and "unrecognized option '--bogus'" in r.stderr, r.stderr


def test_systemd_time_spans(lab):
    cfg = lab.config(observe={"interval": "30s", "window": "1h 30min"},
                     reap={"grace": "2w", "cooldown": "1.5d"})
    r = lab.cli("check-config", config=cfg)
    assert r.returncode == 0, r.stderr
    cfg = lab.config(observe={"window": "10"})
    r = lab.cli("check-config", config=cfg)
    assert r.returncode == 2 and "observe.window" in r.stderr, r.stderr


def test_daemon_run_by_hand_prints_its_fatal_error(lab):
    """Without --foreground the daemon logs to the journal; run by hand (its
    stderr is not the journal), its fatal error is on stderr too."""
    bad = lab.write("bad.conf", "api = { url = 5; };\n")
    r = subprocess.run([PROXREAPD, "-c", bad], capture_output=True, text=True, timeout=30,
                       env={k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"})
    assert r.returncode == 2
    assert re.search(r"^proxreapd: error: .*bad.conf:1: ", r.stderr, re.M), r.stderr


# ---------------------------------------------------------------- what a second adversary found

def test_link_on_the_way_to_the_journal_is_refused(lab):
    """reap.journal one level below the service user's directory: the
    user turns that level into a link to a directory of root's. Root's
    restore refuses the way, and creates and cuts nothing there."""
    state = state_dir_of_service_user(lab)
    rootdir = os.path.join(lab.dir, "root-only")
    os.mkdir(rootdir, 0o700)
    target = os.path.join(rootdir, "journal")
    with open(target, "w") as fh:
        fh.write("root's own line, no newline")
    via = os.path.join(state, "sub")
    os.symlink(rootdir, via)
    os.lchown(via, SERVICE_UID, SERVICE_UID)
    cfg = lab.config(reap={"journal": os.path.join(via, "journal")})
    for args in (("restore", "R-000001", "--yes"), ("journal", "list"), ("journal", "verify")):
        r = lab.cli(*args, config=cfg)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert "passes a symbolic link in a directory of another user: refusing to follow it" in r.stderr
    assert os.listdir(rootdir) == ["journal"]
    with open(target) as fh:
        assert fh.read() == "root's own line, no newline"


def test_a_journal_lock_held_forever_is_named(lab):
    """The service user holds the journal's lock and never lets go: the CLI
    says it waits, and gives up with the reason instead of hanging."""
    import fcntl
    state = state_dir_of_service_user(lab)
    journal = os.path.join(state, "journal")
    with open(journal, "w"):
        pass
    os.chown(journal, SERVICE_UID, SERVICE_UID)
    holder = open(journal, "rb")
    fcntl.flock(holder, fcntl.LOCK_EX)
    try:
        r = lab.cli("journal", "list", config=lab.config(reap={"journal": journal}), timeout=90)
    finally:
        holder.close()
    assert r.returncode == 1
    assert "is locked by another process: waiting up to 30 s" in r.stderr, r.stderr
    assert "stays locked by another process (30 s)" in r.stderr, r.stderr


def test_proxy_password_is_never_shown(lab):
    """A proxy URL with a password that libcurl would refuse (port 99999) is
    refused by the configuration check without its value; one that cannot
    be reached is reported without the password."""
    sim = sim_of(lab, [guest(101, "a")])
    cfg = lab.config(sim, api={"proxy": "http://user:S3cretPW@127.0.0.1:99999"})
    r = lab.cli("check-config", config=cfg)
    assert r.returncode == 2 and "'api.proxy' must be a proxy URL" in r.stderr, r.stderr
    assert "S3cretPW" not in r.stdout + r.stderr
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    cfg = lab.config(sim, api={"proxy": "http://user:S3cretPW@127.0.0.1:%d" % port, "retries": 0},
                     status={"prometheus_file": os.path.join(lab.dir, "m.prom")})
    r = lab.cli("check-config", "--online", config=cfg)
    assert r.returncode == 1
    assert "through 'api.proxy'" in r.stdout and "fix: check 'api.proxy'" in r.stdout, r.stdout
    d = lab.daemon(cfg)
    d.wait_polls(2)
    assert d.stop() == 0
    for text in (r.stdout + r.stderr, d.log(), open(d.status_file).read()):
        assert "S3cretPW" not in text


def test_no_proxy_in_the_environment_does_not_bypass_api_proxy(lab, trap):
    sim = sim_of(lab, [guest(101, "a")])
    cfg = lab.config(sim, api={"proxy": trap.url, "retries": 0})
    r = lab.cli("check-config", "--online", config=cfg, env={"NO_PROXY": "*", "no_proxy": "127.0.0.1"})
    assert r.returncode == 1 and trap.seen, (r.stdout, trap.seen)


def test_tls_keys_are_never_logged_for_the_environment(lab):
    """SSLKEYLOGFILE would make libcurl write the session keys of the
    connection that carries the credential: ignored."""
    sim = lab.sim([guest(101, "a")], tls=True)
    cfg = lab.config(sim)
    keys = os.path.join(lab.dir, "keys.log")
    r = lab.cli("check-config", "--online", config=cfg, env={"SSLKEYLOGFILE": keys})
    assert r.returncode == 0, r.stdout + r.stderr
    d = lab.daemon(cfg, env={"SSLKEYLOGFILE": keys})
    d.wait_polls(2)
    assert d.stop() == 0
    assert not os.path.exists(keys)


def test_ca_file_is_the_whole_trust(lab):
    """With api.ca_file set, a server certificate from another CA is
    refused even when that CA is in the system store (/etc/ssl/certs, made
    so in a private mount namespace)."""
    import shutil
    from conftest import PROXREAP, Sim, make_test_ca, scenario
    public_ca, cert, key = make_test_ca(os.path.join(lab.dir, "public"), cn="some public CA")
    cluster_ca, _, _ = make_test_ca(os.path.join(lab.dir, "cluster"), cn="the cluster CA")
    store = os.path.join(lab.dir, "store")
    os.mkdir(store)
    shutil.copy(public_ca, os.path.join(store, "public.pem"))
    subprocess.run(["openssl", "rehash", store], check=True, capture_output=True)
    sim = Sim(scenario([guest(101, "a")]), cert=cert, key=key, ca=cluster_ca,
              workdir=os.path.join(lab.dir, "sim"))
    lab.sims.append(sim)
    sim.start()
    cfg = lab.config(sim, api={"ca_file": cluster_ca, "retries": 0})
    shell = ("mount --make-rprivate / && mount --bind %s /etc/ssl/certs && "
             "exec %s -c %s check-config --online" % (store, PROXREAP, cfg))
    r = subprocess.run(["unshare", "-m", "sh", "-c", shell], capture_output=True, text=True, timeout=60)
    if "unshare" in r.stderr and r.returncode not in (0, 1):
        pytest.skip("no mount namespace here: %s" % r.stderr)
    assert r.returncode == 1, r.stdout + r.stderr
    assert re.search(r"^api +FAILED +TLS: the certificate of \S+ is not trusted", r.stdout, re.M), r.stdout


def test_reload_that_cannot_be_checked_now_is_refused(lab):
    """A reload to reap mode with a storage that does not exist, while the
    storage check gets 503s: not taken (it could be wrong for good), said
    so, and the daemon keeps running; the next reload, checked, says what
    is wrong; it never exits."""
    sim = sim_of(lab, [guest(201, "a", **IDLE)])
    cfg = lab.config(sim, observe=OBSERVE)
    d = lab.daemon(cfg)
    d.wait_polls(2)
    lab.config(sim, observe=OBSERVE, reap=dict(REAP, archive_storage="nosuch"))
    sim.fault(kind="status", code=503, message="busy", path="/storage/nosuch/status$", count=1)
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload failed: storage: .*busy \(this may pass: run 'systemctl reload proxreapd' again\), "
               r"keeping the running configuration")
    healthy(d)
    assert d.status()["mode"] == "observe"
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload failed: storage: archive storage 'nosuch'.*No such storage")
    healthy(d, more=20)
    assert d.status()["mode"] == "observe"
    assert d.stop() == 0


def test_a_passing_500_at_start_is_not_final(lab):
    """pmxcfs is busy at start (500 'cfs-lock ... timeout' on the storage
    check): not a mistake of the configuration; checked again after the
    next poll, and the daemon works."""
    sim = sim_of(lab, [guest(201, "a", **IDLE)])
    sim.fault(kind="status", code=500, message="cfs-lock 'storage' error: got lock request timeout",
              path="/storage/local/status$", count=3)
    cfg = lab.config(sim, observe=OBSERVE, reap=REAP, api={"retries": 0})
    d = lab.daemon(cfg)
    d.wait_log(r"checks of the configuration did not pass yet")
    op = wait_op(lab, cfg, 201, {"reaped"})
    assert op["volid"]
    assert d.stop() == 0


def test_reload_to_another_journal_is_refused(lab):
    sim = sim_of(lab, [guest(201, "a", **IDLE)])
    a, b = os.path.join(lab.dir, "journal-a"), os.path.join(lab.dir, "journal-b")
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, journal=a, mode="mark"))
    d = lab.daemon(cfg)
    d.wait_polls(2)
    lab.config(sim, observe=OBSERVE, reap=dict(REAP, journal=b))
    d.signal(signal.SIGHUP)
    d.wait_log(r"reload failed: 'reap.journal' changed from '%s' to '%s': another journal takes a restart"
               % (re.escape(a), re.escape(b)))
    healthy(d)
    assert d.status()["mode"] == "mark" and not os.path.exists(b)
    assert d.stop() == 0


def test_reaps_under_way_finish_when_reap_mode_ends(lab):
    """A reload from reap to observe mode while vzdump runs: that reap
    finishes (the guest is stopped already), and no new one starts. A
    daemon started in observe mode finishes a reap an earlier run left."""
    slow = dict(FAST, vzdump=3)
    sim = sim_of(lab, [guest(201, "a", **IDLE), guest(202, "b", **IDLE)], task_durations=slow)
    cfg = lab.config(sim, observe=OBSERVE, reap=dict(REAP, max_per_cycle=1))
    d = lab.daemon(cfg)
    d.wait_log(r"archiving guest 20[12]")
    lab.config(sim, observe=OBSERVE, reap=dict(REAP, mode="observe", max_per_cycle=1))
    d.signal(signal.SIGHUP)
    d.wait_log("configuration reloaded")
    first = wait_until(lambda: [o for o in ops_by_vmid(lab, cfg, 201) + ops_by_vmid(lab, cfg, 202)
                                if o["state"] == "reaped"], message="the reap under way to finish")
    healthy(d, more=10)
    other = 202 if first[0]["vmid"] == 201 else 201
    assert ops_by_vmid(lab, cfg, other) == [] and sim.guest(other)["status"] == "running"
    assert d.stop() == 0

    sim2 = sim_of(lab, [guest(301, "c", **IDLE)])
    cfg2 = lab.config(sim2, name="second.conf", observe=OBSERVE,
                      reap=dict(REAP, journal=os.path.join(lab.dir, "journal2")))
    d2 = lab.daemon(cfg2, env={"PROXREAP_CRASH_AT": "archive-done"})
    wait_until(lambda: not d2.running(), message="the crash after vzdump")
    d2.returncode = d2.proc.returncode
    lab.config(sim2, name="second.conf", observe=OBSERVE,
               reap=dict(REAP, mode="observe", journal=os.path.join(lab.dir, "journal2")))
    d3 = lab.daemon(cfg2)
    d3.wait_log(r"holds 1 reap under way: finishing it \(observe mode starts none\)")
    wait_op(lab, cfg2, 301, {"reaped"})
    assert d3.stop() == 0
    check_invariants(lab, sim2, cfg2)
