"""The systemd unit: its exposure score, `systemd-analyze verify`, the
directives the service needs, the sysusers.d and tmpfiles.d snippets, and
tests/sandbox/proxreap-sandbox, the launcher that applies the unit's
restrictions without systemd as PID 1.

The whole suite runs the daemon through the launcher when
PROXREAP_SANDBOX=1; the tests here run it in any case, and prove that the
launcher restricts for real (a launcher that did nothing would let every
daemon test pass and prove nothing)."""

import importlib.machinery
import importlib.util
import json
import os
import re
import signal
import subprocess
import time

import pytest

from conftest import PROXREAPD, REPO, guest, wait_until
from test_reap import IDLE, check_invariants, reap_config, sim_of, wait_op

UNIT = os.path.join(REPO, "systemd", "proxreapd.service")
SYSUSERS = os.path.join(REPO, "systemd", "proxreap.sysusers")
TMPFILES = os.path.join(REPO, "systemd", "proxreap.tmpfiles")
SANDBOX = os.path.join(REPO, "tests", "sandbox", "proxreap-sandbox")
MAX_EXPOSURE = 1.5
# What the unit leaves open, and why (docs/hardening.md): the daemon needs
# the network, sockets, no private root; ProtectClock= lists the rtc in the
# device ACL; no IP allow list, since the API and the webhook may be
# anywhere; UMask=0027 keeps files readable by group proxreap.
EXPECTED_OPEN = {"RootDirectory=/RootImage=", "RestrictAddressFamilies=~AF_UNIX",
                 "RestrictAddressFamilies=~AF_(INET|INET6)", "PrivateNetwork=", "DeviceAllow=",
                 "IPAddressDeny=", "UMask="}
# api.timeout x (api.retries + 1) + backoff at the defaults (15s, 2 retries,
# 250ms base: at most 250ms + 500ms of pauses), and one write (15s).
POLL_BOUND = 15 * 3 + 0.75
WRITE_BOUND = 15
# An unprivileged uid and gid that nothing on the host owns.
NOBODY_UID = 64999


def load_sandbox():
    loader = importlib.machinery.SourceFileLoader("proxreap_sandbox", SANDBOX)
    spec = importlib.util.spec_from_loader("proxreap_sandbox", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


sandbox = load_sandbox()


def seconds(text):
    """A systemd time span ("3min", "90s", "1min 30s", "500ms") in seconds."""
    units = {"ms": 0.001, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "hr": 3600}
    total = 0.0
    for n, unit in re.findall(r"([0-9.]+)\s*([a-z]*)", text):
        total += float(n) * units[unit or "s"]
    return total


def run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def unit():
    return sandbox.parse_unit(UNIT)


# ---------------------------------------------------------------- score and verify

def test_security_exposure_at_most_1_5():
    r = run(["systemd-analyze", "security", "--offline=yes", "--no-pager", UNIT])
    assert_exposure(r.stdout + r.stderr)


def assert_exposure(out):
    """The output of `systemd-analyze security` gives at most MAX_EXPOSURE
    and leaves open exactly EXPECTED_OPEN (also for test_package.py, with
    the systemd of another release)."""
    m = re.search(r"Overall exposure level for proxreapd\.service: ([0-9.]+)", out)
    assert m, out
    print(m.group(0))
    assert float(m.group(1)) <= MAX_EXPOSURE, out
    # Each check still open is one the unit means to leave open.
    open_checks = {line.split()[1] for line in out.splitlines() if line.startswith("✗")}
    assert open_checks == EXPECTED_OPEN, out


def test_verify_is_clean(tmp_path):
    """`systemd-analyze verify` checks that ExecStart= is executable: the
    copy verified runs the binary just built instead of /usr/sbin/proxreapd,
    which this machine need not have. Nothing else is changed, and any
    output at all fails. The manual pages are checked against man/ below
    (verify would ask man(1), which knows only installed pages)."""
    with open(UNIT) as fh:
        text = fh.read()
    assert text.count("/usr/sbin/proxreapd ") == 1
    copy = tmp_path / "proxreapd.service"
    copy.write_text(text.replace("/usr/sbin/proxreapd ", PROXREAPD + " "))
    r = run(["systemd-analyze", "verify", "--man=no", str(copy)])
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_documentation_exists(unit):
    with open(UNIT) as fh:
        docs = " ".join(line.split("=", 1)[1] for line in fh if line.startswith("Documentation="))
    pages = re.findall(r"man:([a-z.]+)\(([0-9])\)", docs)
    assert pages
    for name, section in pages:
        assert os.path.isfile(os.path.join(REPO, "man", "%s.%s" % (name, section))), name
    for url in re.findall(r"file:/usr/share/doc/proxreap/(\S+)", docs):
        # README.md from the top, the rest from docs/ (Makefile DOCS).
        assert os.path.isfile(os.path.join(REPO, url)) or \
            os.path.isfile(os.path.join(REPO, "docs", url)), url


# ---------------------------------------------------------------- directives

REQUIRED = {
    "Type": "notify", "Restart": "on-failure", "User": "proxreap", "Group": "proxreap",
    "StateDirectory": "proxreap", "RuntimeDirectory": "proxreap",
    "ConfigurationDirectory": "proxreap", "UMask": "0027",
    "ProtectSystem": "strict", "ProtectHome": "yes", "PrivateTmp": "yes",
    "PrivateDevices": "yes", "DevicePolicy": "closed", "ProtectKernelTunables": "yes",
    "ProtectKernelModules": "yes", "ProtectKernelLogs": "yes", "ProtectControlGroups": "yes",
    "ProtectClock": "yes", "ProtectHostname": "yes", "ProtectProc": "invisible",
    "ProcSubset": "pid", "RestrictNamespaces": "yes", "RestrictRealtime": "yes",
    "RestrictSUIDSGID": "yes", "LockPersonality": "yes", "MemoryDenyWriteExecute": "yes",
    "SystemCallArchitectures": "native", "CapabilityBoundingSet": "", "AmbientCapabilities": "",
    "NoNewPrivileges": "yes", "RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
    "KeyringMode": "private", "RemoveIPC": "yes", "PrivateUsers": "yes", "PrivateIPC": "yes",
    "PrivateMounts": "yes",
    "SystemCallErrorNumber": "EPERM",
}


@pytest.mark.parametrize("key", sorted(REQUIRED))
def test_directive(unit, key):
    assert sandbox.last(unit, key) == REQUIRED[key]


def test_service_lifecycle_directives(unit):
    assert sandbox.last(unit, "ExecStart").startswith("/usr/sbin/proxreapd ")
    assert re.fullmatch(r"/bin/kill -HUP \$MAINPID", sandbox.last(unit, "ExecReload"))
    assert "2" in sandbox.words(unit, "RestartPreventExitStatus")
    assert "token:/etc/proxreap/token" in unit["LoadCredential"]
    # The watchdog outlasts a poll with every retry, with room for the
    # reaper's calls after it; a stop lets a poll and the step after it end.
    assert seconds(sandbox.last(unit, "WatchdogSec")) >= 2 * POLL_BOUND + 2 * WRITE_BOUND
    assert seconds(sandbox.last(unit, "TimeoutStopSec")) >= 2 * POLL_BOUND + WRITE_BOUND


def test_system_call_filter(unit):
    allow, names = sandbox.syscall_filter(unit, sandbox.syscall_groups())
    assert allow
    # What the daemon uses (journal, status file, sockets, threads, timers)...
    for n in ("openat", "fdatasync", "fsync", "flock", "rename", "socket", "connect", "sendmsg",
              "epoll_wait", "timerfd_settime", "signalfd4", "clone", "clone3", "madvise",
              "mmap", "mprotect", "prctl", "getrandom"):
        assert n in names, n
    # ...and what @privileged and @resources take away again.
    for n in ("setuid", "setgroups", "capset", "chroot", "setrlimit", "sched_setscheduler",
              "mount", "reboot", "init_module", "clock_settime", "bpf", "ptrace", "kexec_load"):
        assert n not in names, n


def test_configuration_and_ca_stay_readable(unit):
    """ProtectSystem=strict keeps /etc readable; nothing else may hide the
    configuration, the cluster CA or the system trust store."""
    for key in ("InaccessiblePaths", "TemporaryFileSystem", "ReadOnlyPaths", "BindPaths",
                "BindReadOnlyPaths", "RootDirectory", "RootImage"):
        for path in sandbox.words(unit, key):
            for needed in ("/etc/proxreap", "/etc/pve", "/etc/ssl", "/etc/resolv.conf"):
                assert not sandbox.under(needed, path.lstrip("-+")), (key, path)
    assert sandbox.last(unit, "ProtectHome") in ("yes", "read-only", "tmpfs")


# ---------------------------------------------------------------- sysusers.d, tmpfiles.d

def test_sysusers_and_tmpfiles(tmp_path, unit):
    """Applied to an empty root: the user and group of User=/Group=, and
    /var/lib/proxreap with the owner and mode that StateDirectory= asks for
    (systemd 252 keeps a differing mode and warns at every start)."""
    root = str(tmp_path)
    os.mkdir(os.path.join(root, "etc"))
    with open(SYSUSERS) as fh:
        r = run(["systemd-sysusers", "--root=" + root, "-"], stdin=fh)
    assert r.returncode == 0, r.stderr
    with open(os.path.join(root, "etc", "passwd")) as fh:
        users = {line.split(":")[0]: line.rstrip("\n").split(":") for line in fh}
    with open(os.path.join(root, "etc", "group")) as fh:
        groups = {line.split(":")[0]: line.split(":") for line in fh}
    user = users[sandbox.last(unit, "User")]
    group = groups[sandbox.last(unit, "Group")]
    assert user[3] == group[2], "the user's primary group is group proxreap"
    assert 0 < int(user[2]) < 1000, "a system user"
    assert user[5:] == ["/var/lib/proxreap", "/usr/sbin/nologin"]
    with open(TMPFILES) as fh:
        r = run(["systemd-tmpfiles", "--root=" + root, "--create", "-"], stdin=fh)
    assert r.returncode == 0, r.stderr
    st = os.stat(os.path.join(root, "var", "lib", "proxreap"))
    assert (st.st_uid, st.st_gid) == (int(user[2]), int(group[2]))
    assert "%04o" % (st.st_mode & 0o7777) == sandbox.last(unit, "StateDirectoryMode")


# ---------------------------------------------------------------- the launcher

PROBE = r"""
import ctypes, errno, json, mmap, os, socket, sys
lab, checks = sys.argv[1], sys.argv[2].split(",")
libc = ctypes.CDLL("libc.so.6", use_errno=True)

def call(fn, *a):
    if fn(*a) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

def write(path):
    with open(path, "w") as fh:
        fh.write("probe")

probes = {
    "write_lab": lambda: write(os.path.join(lab, "probe")),
    "write_etc": lambda: write("/etc/proxreap-sandbox-probe"),
    "write_var": lambda: write("/var/lib/proxreap-sandbox-probe"),
    "write_tmp": lambda: write("/tmp/proxreap-sandbox-probe"),
    "list_root": lambda: os.listdir("/root"),
    "read_trust_store": lambda: open("/etc/ssl/certs/ca-certificates.crt").close(),
    "read_nsswitch": lambda: open("/etc/nsswitch.conf").close(),
    "af_unix": lambda: socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).close(),
    "af_inet": lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM).close(),
    "af_inet6": lambda: socket.socket(socket.AF_INET6, socket.SOCK_STREAM).close(),
    "af_netlink": lambda: socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0).close(),
    "af_packet": lambda: socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, 0).close(),
    "setpriority": lambda: os.setpriority(os.PRIO_PROCESS, 0, 1),
    "sched_setaffinity": lambda: os.sched_setaffinity(0, os.sched_getaffinity(0)),
    "mmap_wx": lambda: mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC),
    "unshare_net": lambda: call(libc.unshare, 0x40000000),
    "personality": lambda: call(libc.personality, 0x0040000),
    "sethostname": lambda: call(libc.sethostname, b"probe", 5),
    "mount": lambda: call(libc.mount, b"tmpfs", b"/mnt", b"tmpfs", 0, None),
    "chmod_suid": lambda: os.chmod(os.path.join(lab, "probe"), 0o4755),
    "proc_meminfo": lambda: open("/proc/meminfo").close(),
    "dev_block": lambda: os.stat("/dev/" + [d for d in ("vda", "sda", "nvme0n1", "xvda", "loop0")
                                            if os.path.exists("/dev/" + d)][0]),
    "dev_null": lambda: write("/dev/null"),
}
out = {}
for name in checks:
    try:
        probes[name]()
        out[name] = "ok"
    except OSError as e:
        out[name] = errno.errorcode.get(e.errno, str(e.errno))
    except IndexError:
        out[name] = "ENOENT"
status = {}
with open("/proc/self/status") as fh:
    for line in fh:
        k, v = line.split(":", 1)
        status[k] = v.strip()
out["status"] = {k: status.get(k) for k in ("Uid", "CapEff", "CapPrm", "CapBnd", "CapInh",
                                            "CapAmb", "NoNewPrivs", "Seccomp")}
out["umask"] = "%04o" % os.umask(0o022)
print(json.dumps(out))
"""

# check: (inside the sandbox, outside it) -- None: not run outside (it
# would change the host), or depends on the host.
EXPECT = {
    "write_lab": ("ok", None),
    "write_etc": ("EROFS", None),
    "write_var": ("EROFS", None),
    "write_tmp": ("ok", None),
    "list_root": ("EACCES", "ok"),
    "read_trust_store": ("ok", "ok"),
    "read_nsswitch": ("ok", "ok"),
    "af_unix": ("ok", "ok"),
    "af_inet": ("ok", "ok"),
    "af_inet6": ("ok", "ok"),
    "af_netlink": ("EAFNOSUPPORT", "ok"),
    "af_packet": ("EAFNOSUPPORT", "ok"),
    "setpriority": ("EPERM", "ok"),
    "sched_setaffinity": ("EPERM", "ok"),
    "mmap_wx": ("EPERM", "ok"),
    "unshare_net": ("EPERM", "ok"),
    "personality": ("EPERM", "ok"),
    "sethostname": ("EPERM", None),
    "mount": ("EPERM", None),
    "chmod_suid": ("EPERM", None),
    "proc_meminfo": ("ENOENT", "ok"),
    "dev_block": ("ENOENT", None),  # a container may have no block device
    "dev_null": ("ok", "ok"),
}


def probe(lab_dir, checks, sandboxed, user=None):
    cmd = ["/usr/bin/python3", "-I", "-c", PROBE, lab_dir, ",".join(checks)]
    if sandboxed:
        cmd = [SANDBOX, "--rw", lab_dir] + (["--user", "%d:%d" % user] if user else []) + ["--"] + cmd
    r = run(cmd)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.mark.parametrize("user", [None, (NOBODY_UID, NOBODY_UID)], ids=["root", "user"])
def test_sandbox_restricts(tmp_path, user):
    lab_dir = str(tmp_path / "lab")
    os.mkdir(lab_dir)
    if user:
        os.chown(lab_dir, *user)
    got = probe(lab_dir, list(EXPECT), sandboxed=True, user=user)
    assert {k: got[k] for k in EXPECT} == {k: v[0] for k, v in EXPECT.items()}
    zero = "0000000000000000"
    uid = str(user[0] if user else 0)
    assert got["status"] == {"Uid": "\t".join([uid] * 4), "CapEff": zero, "CapPrm": zero,
                             "CapBnd": zero, "CapInh": zero, "CapAmb": zero, "NoNewPrivs": "1",
                             "Seccomp": "2"}
    assert got["umask"] == "0027"
    # The private /tmp left nothing behind; the lab got its file.
    assert not os.path.exists("/tmp/proxreap-sandbox-probe")
    assert os.listdir(lab_dir) == ["probe"]
    assert not os.path.exists("/etc/proxreap-sandbox-probe")


def test_probe_sees_the_difference(tmp_path):
    """The same probe outside the sandbox: what the sandbox denies works,
    so the denials above are the sandbox's doing."""
    checks = [k for k, v in EXPECT.items() if v[1] is not None]
    got = probe(str(tmp_path), checks, sandboxed=False)
    assert {k: got[k] for k in checks} == {k: EXPECT[k][1] for k in checks}


def test_sandbox_execs_the_command():
    """The pid the caller holds is the command's: signals reach it."""
    p = subprocess.Popen([SANDBOX, "--", "/bin/sh", "-c", "echo $$; exec sleep 30"],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert int(p.stdout.readline()) == p.pid

        def comm():
            with open("/proc/%d/comm" % p.pid) as fh:
                return fh.read().strip() == "sleep"
        wait_until(comm, message="the shell to exec sleep")
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(10) == -signal.SIGTERM


def test_sandbox_fails_loudly(tmp_path):
    r = run([SANDBOX, "--rw", str(tmp_path / "missing"), "--", "/bin/true"])
    assert r.returncode == sandbox.EXIT_SANDBOX and "proxreap-sandbox:" in r.stderr
    bad = tmp_path / "bad.service"
    bad.write_text("[Service]\nSystemCallFilter=@no-such-group\n")
    r = run([SANDBOX, "--unit", str(bad), "--", "/bin/true"])
    assert r.returncode == sandbox.EXIT_SANDBOX and "no-such-group" in r.stderr


def test_sandbox_startup_cost():
    """Hundreds of daemon starts go through the launcher: it must stay
    cheap (about 50 ms here)."""
    start = time.monotonic()
    for _ in range(5):
        assert run([SANDBOX, "--", "/bin/true"]).returncode == 0
    per_start = (time.monotonic() - start) / 5
    print("sandbox start: %.0f ms" % (per_start * 1000))
    assert per_start < 1.0


# ---------------------------------------------------------------- the daemon under the unit

def test_daemon_works_in_the_sandbox(lab, monkeypatch):
    """Through conftest's Daemon, as the whole suite does with
    PROXREAP_SANDBOX=1: ready, polls, a reload, a clean stop."""
    monkeypatch.setenv("PROXREAP_SANDBOX", "1")
    sim = lab.sim([guest(101, "vm-a"), guest(102, "vm-b", cpu=0.5)], tls=True)
    n = lab.notify()
    d = lab.daemon(lab.config(sim), notify=n)
    wait_until(lambda: n.count("READY=1") >= 1, message="READY=1")
    with open("/proc/%d/status" % d.pid) as fh:
        status = fh.read()
    assert re.search(r"^Seccomp:\s+2$", status, re.M) and re.search(r"^CapEff:\s+0+$", status, re.M)
    assert os.readlink("/proc/%d/exe" % d.pid) == PROXREAPD
    d.wait_polls(5)
    d.signal(signal.SIGHUP)
    wait_until(lambda: n.count("READY=1") >= 2, message="READY=1 after the reload")
    assert d.stop() == 0


def test_daemon_reaps_as_an_unprivileged_user(lab):
    """User=proxreap: a uid that owns nothing but the lab, every restriction
    of the unit, a whole reap (journal with fdatasync and flock, status file,
    API over TLS), a reload and a clean stop."""
    uid = NOBODY_UID
    sim = sim_of(lab, [guest(101, "vm-idle", **IDLE)], tls=True)
    cfg = reap_config(lab, sim)
    n = lab.notify()
    os.chmod(n.dir, 0o755)
    os.chmod(n.path, 0o777)  # as systemd's /run/systemd/notify
    for top, dirs, files in os.walk(lab.dir):
        for name in dirs + files:
            os.chown(os.path.join(top, name), uid, uid)
    os.chown(lab.dir, uid, uid)
    log_file = os.path.join(lab.dir, "proxreapd-user.log")
    env = {k: v for k, v in os.environ.items() if k not in ("CREDENTIALS_DIRECTORY", "WATCHDOG_USEC")}
    env["NOTIFY_SOCKET"] = n.path
    with open(log_file, "wb") as log:
        p = subprocess.Popen([SANDBOX, "--user", "%d:%d" % (uid, uid), "--rw", lab.dir,
                              "--ro", os.path.dirname(PROXREAPD), "--",
                              PROXREAPD, "-c", cfg, "-f"], stdin=subprocess.DEVNULL, stdout=log,
                             stderr=subprocess.STDOUT, env=env)
    try:
        def log():
            with open(log_file) as fh:
                return fh.read()
        wait_until(lambda: n.count("READY=1") >= 1 or p.poll() is not None, message="READY=1")
        assert p.poll() is None, log()
        assert os.stat("/proc/%d" % p.pid).st_uid == uid
        op = wait_op(lab, cfg, 101, {"reaped"})
        assert op["vmid"] == 101
        journal = os.path.join(lab.dir, "journal")
        st = os.stat(journal)
        assert (st.st_uid, st.st_mode & 0o777) == (uid, 0o640)
        status = lab.status_file_of(cfg)
        assert os.stat(status).st_uid == uid
        p.send_signal(signal.SIGHUP)
        wait_until(lambda: n.count("READY=1") >= 2, message="READY=1 after the reload")
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0, log()
        check_invariants(lab, sim, cfg)
        assert "cannot" not in log(), log()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(10)
