"""The Debian package built by `make deb`, or by `make deb-trixie`.

One module for both releases: $PROXREAP_RELEASE names the one under test,
the host's by default (the package of `make deb`), or "trixie" (`make
check-trixie`: the Debian 13 package of `make deb-trixie`, for Proxmox VE 9).
The package is build-deb/proxreap_VERSION-1~debNu1_ARCH.deb (for trixie
build-deb/trixie/...), or $PROXREAP_DEB; a missing package fails the tests
(they are part of `make check`, which builds it first). They check that

  - the package holds exactly the files `make install` installs, plus what
    debhelper adds (changelog, copyright, lintian overrides), with the same
    modes and links;
  - /etc/proxreap/proxreap.conf is a conffile, in observe mode;
  - installing it for real runs its maintainer scripts correctly: in a
    throw-away root (an overlay over / in a private mount namespace, with
    its own /proc, /run and /tmp), `dpkg -i` creates the user proxreap and
    /var/lib/proxreap, neither enables nor starts the service, the binaries
    run and `proxreap check-config` accepts the shipped configuration once
    /etc/proxreap/token exists; `dpkg -r` and `dpkg -P` then keep the
    journal and the user. The machine running the tests is not changed.

For trixie the throw-away root is instead a clean Debian 13 root
(packaging/debian-root, mmdebstrap --variant=minbase), and the package goes
in as users install it, `apt-get install ./proxreap_..._amd64.deb`, apt
fetching its dependencies from the Debian 13 archive. There, in addition,
the README demo (`proxreap plan` against tests/pve-sim, the simulator run by
the host on 127.0.0.1) runs with the installed binaries, and Debian 13's
systemd-analyze checks the installed unit as tests/system/test_unit.py does
the source's on Debian 12.
"""

import glob
import hashlib
import os
import pwd
import re
import shutil
import subprocess

import pytest

from conftest import BUILD, REPO, SECRET, VERSION, assert_no_secret
from test_unit import assert_exposure

# The release under test: (Debian release number, where its package is, its
# systemd's unit directory). The host's is Debian 12, the README's set-up.
RELEASES = {
    "bookworm": ("12", "build-deb", "/lib/systemd/system"),
    "trixie": ("13", "build-deb/trixie", "/usr/lib/systemd/system"),
}
RELEASE = os.environ.get("PROXREAP_RELEASE", "bookworm")
DEBIAN, DEB_DIR, UNITDIR = RELEASES[RELEASE]
UNIT = UNITDIR + "/proxreapd.service"
# Clean Debian roots are cached here (packaging/debian-root).
ROOTS = os.environ.get("PROXREAP_ROOTS") or os.path.join(REPO, "build-roots")

# What debhelper adds to the files of `make install` (the lintian override
# is for Debian 12's lintian only: debian/rules). A non-native package's
# changelog is changelog.Debian.
DH_EXTRAS = {
    "/usr/share/doc/proxreap/changelog.Debian",
    "/usr/share/doc/proxreap/copyright",
} | ({"/usr/share/lintian/overrides/proxreap"} if DEBIAN == "12" else set())
CONFFILE = "/etc/proxreap/proxreap.conf"
HOST_FILES = ("/etc/passwd", "/etc/group", "/etc/shadow", "/etc/gshadow")


def run(cmd, timeout=60, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL, **kw)


@pytest.fixture(scope="module")
def deb():
    path = os.environ.get("PROXREAP_DEB")
    if path:
        if not os.path.isfile(path):
            pytest.fail("PROXREAP_DEB=%s: no such file" % path)
        return path
    found = sorted(glob.glob(os.path.join(REPO, DEB_DIR, "proxreap_*.deb")))
    if len(found) != 1:
        pytest.fail("expected one %s/proxreap_*.deb, found %r: run `make deb` (or `make "
                    "deb-trixie`) first (or set PROXREAP_DEB)" % (DEB_DIR, found))
    return found[0]


def normalize(path):
    """A packaged path as `make install` names it: debhelper compresses
    manual pages and documents."""
    if path.startswith(("/usr/share/man/", "/usr/share/doc/")) and path.endswith(".gz"):
        return path[:-3]
    return path


def deb_contents(deb):
    """{path: ("file", mode) | ("link", target)}, directories left out."""
    r = run(["dpkg-deb", "-c", deb])
    assert r.returncode == 0, r.stderr
    entries = {}
    for line in r.stdout.splitlines():
        perms, _owner, _size, _date, _time, name = line.split(None, 5)
        if perms[0] == "d":
            continue
        if perms[0] == "l":
            name, target = name.split(" -> ", 1)
            entry = ("link", target)
        else:
            assert perms[0] == "-", line
            entry = ("file", perms)
        entries[normalize(name[1:] if name.startswith("./") else name)] = entry
    return entries


def mode_string(st_mode):
    bits = "rwxrwxrwx"
    return "-" + "".join(b if st_mode & (0o400 >> i) else "-" for i, b in enumerate(bits))


def make(target, destdir):
    """`make TARGET DESTDIR=destdir PREFIX=/usr` with the binaries of the
    test build as they are (-o: never rebuilt)."""
    cmd = ["make", "-s", "-C", REPO, target, "DESTDIR=" + destdir, "PREFIX=/usr", "BUILD=" + BUILD,
           "UNITDIR=" + UNITDIR]
    for b in ("proxreapd", "proxreap"):
        cmd += ["-o", os.path.join(BUILD, b)]
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}
    r = run(cmd, env=env)
    assert r.returncode == 0, r.stdout + r.stderr


def tree_contents(destdir):
    """deb_contents() of a directory tree."""
    entries = {}
    for top, dirs, files in os.walk(destdir):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            full = os.path.join(top, name)
            path = "/" + os.path.relpath(full, destdir)
            if os.path.islink(full):
                entries[path] = ("link", os.readlink(full))
            else:
                entries[path] = ("file", mode_string(os.stat(full).st_mode))
    return entries


def test_version(deb):
    r = run(["dpkg-deb", "-f", deb, "Package", "Version"])
    assert r.returncode == 0, r.stderr
    # The Debian revision names the release: one apt repository can hold
    # the package of each.
    assert r.stdout.split("\n")[:2] == ["Package: proxreap",
                                        "Version: %s-1~deb%su1" % (VERSION, DEBIAN)]


def test_files_are_those_of_make_install(deb, tmp_path):
    packaged = deb_contents(deb)
    make("install", str(tmp_path))
    installed = tree_contents(str(tmp_path))
    extras = set(packaged) - set(installed)
    assert extras == DH_EXTRAS
    assert {p: packaged[p] for p in installed} == installed
    for path in ("/usr/sbin/proxreapd", "/usr/sbin/proxreap", UNIT,
                 "/usr/lib/sysusers.d/proxreap.conf", "/usr/lib/tmpfiles.d/proxreap.conf",
                 CONFFILE, "/usr/share/man/man8/proxreapd.8", "/usr/share/man/man8/proxreap.8",
                 "/usr/share/man/man5/proxreap.conf.5",
                 "/usr/share/bash-completion/completions/proxreap",
                 "/usr/share/bash-completion/completions/proxreapd",
                 "/usr/share/doc/proxreap/README.md"):
        assert path in installed, path
    assert installed["/usr/share/bash-completion/completions/proxreapd"] == ("link", "proxreap")
    # The unit links to documents by name: they must not be compressed.
    raw = run(["dpkg-deb", "-c", deb]).stdout
    assert "./usr/share/doc/proxreap/README.md\n" in raw


def test_uninstall_keeps_configuration_and_journal(tmp_path):
    dest = str(tmp_path)
    make("install", dest)
    os.makedirs(os.path.join(dest, "var/lib/proxreap"))
    with open(os.path.join(dest, "var/lib/proxreap/journal"), "w") as f:
        f.write("journal\n")
    make("uninstall", dest)
    assert set(tree_contents(dest)) == {CONFFILE, "/var/lib/proxreap/journal"}
    # A second install keeps the (possibly edited) configuration.
    with open(os.path.join(dest, CONFFILE[1:]), "a") as f:
        f.write("# edited\n")
    make("install", dest)
    with open(os.path.join(dest, CONFFILE[1:])) as f:
        assert f.read().endswith("# edited\n")


def test_conffiles(deb):
    r = run(["dpkg-deb", "-I", deb, "conffiles"])
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == [CONFFILE]


# ------------------------------------------------------- a throw-away root

# Runs as root under `unshare -m` (mounts are private to it and vanish with
# it). $1 is a work directory, $2 the package. Each step's stdout, stderr and
# exit status land in $1/out/NAME.{out,err,rc}; the steps go on after a
# failure so that the test can report all of them. With $ROOT set (a clean
# root of the release, which packaging/debian-root has unpacked and mounted)
# the package is installed there with apt, the README demo runs and
# systemd-analyze checks the unit.
SCENARIO = r"""
set -u
W=$1
DEB=$2
OUT=$W/out
mkdir -p "$OUT" "$W/layers"
if [ -n "${ROOT:-}" ]; then
    R=$ROOT
else
R=$W/layers/root

# The upper layer must not be on the root file system itself: a tmpfs.
mount -t tmpfs -o mode=0755 tmpfs "$W/layers" || exit 90
mkdir "$W/layers/upper" "$W/layers/work" "$R"
# lowerdir=/ is the root file system alone: no /proc, /dev, /run or /tmp
# mounted on it, and none of the host's processes or sockets.
mount -t overlay overlay -o "lowerdir=/,upperdir=$W/layers/upper,workdir=$W/layers/work" "$R" || exit 91
mount -t proc proc "$R/proc" || exit 92
mount --rbind /dev "$R/dev" || exit 93
# A fresh /run: no /run/systemd/system, so the maintainer scripts see no
# running systemd and cannot reach the host's, whatever PID 1 is.
mount -t tmpfs -o mode=0755 tmpfs "$R/run" || exit 94
mount -t tmpfs -o mode=1777 tmpfs "$R/tmp" || exit 95
fi
PKG=/tmp/$(basename "$DEB")
cp "$DEB" "$R$PKG" || exit 96

step() {
    name=$1; shift
    "$@" >"$OUT/$name.out" 2>"$OUT/$name.err"
    echo $? >"$OUT/$name.rc"
}
in_root() {
    chroot "$R" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LC_ALL=C.UTF-8 "$@"
}
# A process of the chroot's proxreapd, started by anything.
daemon_running() {
    for p in /proc/[0-9]*; do
        [ "$p/exe" -ef "$R/usr/sbin/proxreapd" ] && echo "${p#/proc/}"
    done
    return 0
}
exists() {
    for f; do
        if [ -e "$R$f" ]; then echo "$f yes"; else echo "$f no"; fi
    done
}

step user_before    in_root getent passwd proxreap
if [ -n "${ROOT:-}" ]; then
    # As users do: apt fetches the dependencies from the release's archive.
    step install in_root sh -c 'apt-get update -qq && cd /tmp && apt-get install -y "./${1#/tmp/}"' - "$PKG"
else
    step install in_root dpkg -i "$PKG"
fi
step status         in_root dpkg-query -W -f '${Status}' proxreap
step daemon_version in_root proxreapd --version
step cli_version    in_root proxreap --version
step passwd         in_root getent passwd proxreap
step group          in_root getent group proxreap
step state_dir      in_root stat -c '%U %G %a' /var/lib/proxreap
step enabled        in_root find /etc/systemd/system -name 'proxreapd*'
step running        daemon_running
step conf           in_root cat /etc/proxreap/proxreap.conf

# The admin's part: the token secret, and the cluster CA of a PVE node.
step token in_root sh -c 'umask 077 && printf "%s\n" "$1" >/etc/proxreap/token' - "$SECRET"
step ca    in_root sh -c 'mkdir -p /etc/pve && cp /etc/ssl/certs/ca-certificates.crt /etc/pve/pve-root-ca.pem'
step check_config in_root proxreap check-config

if [ -n "${ROOT:-}" ]; then
    # The README demo ("Try it without a cluster") with the installed
    # proxreap; the simulator runs on the host (same network namespace).
    mkdir -p "$R/tmp/demo/tests/data" && cp -r "$REPO/tests/data/demo" "$R/tmp/demo/tests/data/"
    chmod 600 "$R/tmp/demo/tests/data/demo/token"
    /usr/bin/python3 "$REPO/tests/pve-sim/pve-sim.py" --scenario "$REPO/tests/data/demo/scenario.json" \
        --port 18006 --port-file "$W/sim.port" >"$OUT/sim.log" 2>&1 &
    sim=$!
    for _ in $(seq 100); do [ -s "$W/sim.port" ] && break; sleep 0.1; done
    step demo in_root sh -c 'cd /tmp/demo && proxreap -c tests/data/demo/proxreap.conf plan'
    step demo_history in_root sh -c 'cd /tmp/demo && proxreap -c tests/data/demo/proxreap.conf plan --history 8d'
    kill "$sim"; wait "$sim"
    # The unit as installed, by the release's systemd (a dependency of the
    # package there: systemd-sysusers). Manual pages: test_unit.py.
    step verify   in_root systemd-analyze verify --man=no "$UNIT"
    step security in_root systemd-analyze security --offline=yes --no-pager "$UNIT"
fi

# A journal (the daemon's, as far as the package can tell) must survive
# removal and purge.
step journal in_root sh -c 'printf "journal\n" >/var/lib/proxreap/journal && chown proxreap:proxreap /var/lib/proxreap/journal'
step remove            in_root dpkg -r proxreap
step after_remove      exists /usr/sbin/proxreapd /usr/sbin/proxreap /etc/proxreap/proxreap.conf \
                              /var/lib/proxreap/journal
step purge             in_root dpkg -P proxreap
step after_purge       exists /etc/proxreap/proxreap.conf "$UNIT" \
                              /etc/proxreap/token /var/lib/proxreap/journal
step journal_after     in_root stat -c '%U %G %n' /var/lib/proxreap/journal
step user_after_purge  in_root getent passwd proxreap
step status_after_purge in_root dpkg-query -W -f '${Status}' proxreap

# Again with a (pretend) running systemd: /run/systemd/system exists and
# systemctl logs what the maintainer scripts ask of it. is-enabled says
# "enabled", so that deb-systemd-invoke would pass a start on.
LOG=/tmp/systemctl.log
mkdir -p "$R/run/systemd/system"
cat >"$R/usr/bin/systemctl" <<'FAKE'
#!/bin/sh
echo "$*" >>/tmp/systemctl.log
case " $* " in
*" is-enabled "*) echo enabled ;;
*" is-active "*) exit 3 ;;
esac
exit 0
FAKE
chmod 0755 "$R/usr/bin/systemctl"
# A container image's policy-rc.d (exit 101) would hide every request.
rm -f "$R/usr/sbin/policy-rc.d"
for phase in install upgrade remove; do
    echo "== $phase" >>"$R$LOG"
    case $phase in
    install|upgrade) step "sd_$phase" in_root dpkg -i "$PKG" ;;
    remove) step "sd_$phase" in_root dpkg -r proxreap ;;
    esac
done
step sd_enabled in_root find /etc/systemd/system -name 'proxreapd*'
step sd_log in_root cat "$LOG"
exit 0
"""


def host_state():
    state = {}
    for f in HOST_FILES:
        try:
            with open(f, "rb") as fh:
                state[f] = hashlib.sha256(fh.read()).hexdigest()
        except FileNotFoundError:
            state[f] = None
    state["dpkg"] = run(["dpkg-query", "-W", "-f", "${Status}", "proxreap"]).stdout
    state["/var/lib/proxreap"] = os.path.exists("/var/lib/proxreap")
    state["users"] = sorted(p.pw_name for p in pwd.getpwall())
    return state


@pytest.fixture(scope="module")
def chroot_run(deb, tmp_path_factory):
    """Install, remove and purge the package in a throw-away root, first
    without systemd, then with a pretend one; return {step: (rc, stdout,
    stderr)} and the host's state before and after."""
    work = str(tmp_path_factory.mktemp("package-root"))
    script = os.path.join(work, "scenario.sh")
    with open(script, "w") as f:
        f.write(SCENARIO)
    env = dict(os.environ, SECRET=SECRET, REPO=REPO, UNIT=UNIT)
    if RELEASE == "bookworm":
        cmd = ["unshare", "--mount", "--propagation", "private"]
    else:
        r = run([os.path.join(REPO, "packaging", "debian-root"), "tarball", RELEASE, "minbase", ROOTS],
                timeout=600)
        assert r.returncode == 0, r.stderr
        cmd = [os.path.join(REPO, "packaging", "debian-root"), "run", r.stdout.strip(),
               os.path.join(work, "root")]
    before = host_state()
    try:
        r = run(cmd + ["sh", script, work, os.path.abspath(deb)], timeout=300, env=env)
    finally:
        shutil.rmtree(os.path.join(work, "root"), ignore_errors=True)
    after = host_state()
    assert r.returncode == 0, "setting up the throw-away root failed (exit %d):\n%s%s" % (
        r.returncode, r.stdout, r.stderr)
    steps = {}
    out = os.path.join(work, "out")
    for name in os.listdir(out):
        if name.endswith(".rc"):
            step = name[:-3]
            rc, so, se = (read_file(os.path.join(out, step + ext)) for ext in (".rc", ".out", ".err"))
            assert_no_secret(so + se, "step %s of the package test" % step)
            steps[step] = (int(rc), so, se)
    return {"steps": steps, "before": before, "after": after}


def read_file(path):
    with open(path, errors="replace") as f:
        return f.read()


def ok(chroot_run, step):
    rc, so, se = chroot_run["steps"][step]
    assert rc == 0, "step %s failed (exit %d):\n%s%s" % (step, rc, so, se)
    return so


def test_install_runs_maintainer_scripts(chroot_run):
    log = ok(chroot_run, "install")
    assert ok(chroot_run, "status") == "install ok installed"
    # No systemd to talk to: deb-systemd-helper and deb-systemd-invoke stay
    # quiet, and nothing is enabled.
    # (apt may install systemd itself alongside, which enables its own units.)
    assert not [line for line in (log + chroot_run["steps"]["install"][2]).splitlines()
                if "Created symlink" in line and "proxreap" in line]


def test_binaries_run(chroot_run):
    assert ok(chroot_run, "daemon_version") == "proxreapd %s\n" % VERSION
    assert VERSION in ok(chroot_run, "cli_version")


def test_user_and_state_directory(chroot_run):
    if "proxreap" not in chroot_run["before"]["users"]:
        assert chroot_run["steps"]["user_before"][0] != 0, "proxreap existed before dpkg -i"
    passwd = ok(chroot_run, "passwd").strip().split(":")
    assert passwd[0] == "proxreap"
    assert 0 < int(passwd[2]) < 1000, "not a system user: %r" % passwd
    assert passwd[5] == "/var/lib/proxreap"
    assert passwd[6] in ("/usr/sbin/nologin", "/sbin/nologin", "/bin/false")
    assert ok(chroot_run, "group").startswith("proxreap:")
    owner, group, mode = ok(chroot_run, "state_dir").split()
    assert (owner, group) == ("proxreap", "proxreap")
    assert int(mode, 8) & 0o007 == 0, "/var/lib/proxreap is open to others: %s" % mode


def test_demo_with_the_installed_binaries(chroot_run):
    """The README's "Try it without a cluster": the verdicts it describes."""
    if RELEASE == "bookworm":
        pytest.skip("the host's build runs the demo (test_docs.py, test_plan.py)")
    out = ok(chroot_run, "demo")
    print(out)
    assert "tracking 9 guests, 2 idle, 2 active, 1 insufficient-data, 4 excluded" in out
    idle = [line.split()[0] for line in out.splitlines() if " idle " in line]
    assert idle == ["100", "101"]
    # and at once by the RRD, as reap mode's history veto judges
    out = ok(chroot_run, "demo_history")
    print(out)
    assert out.startswith("judged by the RRD over the last 8d (the highest of each rule's row averages)\n"), out
    verdicts = {line.split()[0]: line.split()[4] for line in out.splitlines()[2:] if line[:1].isdigit()}
    assert verdicts == {"100": "idle", "101": "insufficient-data", "102": "active", "103": "active",
                        "104": "excluded", "105": "excluded", "106": "excluded", "107": "idle",
                        "108": "excluded"}, out


def test_installed_unit_by_the_release_systemd(chroot_run):
    """systemd-analyze of the release, on the unit as installed: verify
    says nothing, the exposure stays at most 1.5 with the same checks open
    (test_unit.py checks the source's unit with the host's)."""
    if RELEASE == "bookworm":
        pytest.skip("test_unit.py checks the unit with the host's systemd")
    rc, so, se = chroot_run["steps"]["verify"]
    assert (rc, so, se) == (0, "", ""), so + se
    assert_exposure(ok(chroot_run, "security"))


def test_service_neither_enabled_nor_started(chroot_run):
    assert ok(chroot_run, "enabled") == "", "proxreapd.service was enabled"
    assert ok(chroot_run, "running") == "", "proxreapd was started"


def test_maintainer_scripts_with_systemd(chroot_run):
    """What the scripts ask of a running systemd: never start or enable,
    restart after an upgrade only if running, stop on removal."""
    for step in ("sd_install", "sd_upgrade", "sd_remove"):
        ok(chroot_run, step)
    assert ok(chroot_run, "sd_enabled") == ""
    assert ok(chroot_run, "sd_log").splitlines() == [
        "== install",
        "--system daemon-reload",
        "== upgrade",
        "--system daemon-reload",
        "try-restart proxreapd.service",
        "== remove",
        "stop proxreapd.service",
        "--system daemon-reload",
    ]


def test_shipped_configuration_observes(chroot_run):
    conf = ok(chroot_run, "conf")
    reap = re.search(r"^reap\s*=\s*\{(.*?)^\};", conf, re.M | re.S)
    assert reap, "no reap group in the shipped configuration"
    modes = re.findall(r'^\s*mode\s*=\s*"(\w+)"\s*;', reap.group(1), re.M)
    assert modes == ["observe"]


def test_check_config_finds_the_token(chroot_run):
    ok(chroot_run, "token")
    ok(chroot_run, "ca")
    assert ok(chroot_run, "check_config") == "configuration OK\n"


def test_remove_and_purge_keep_journal_and_user(chroot_run):
    ok(chroot_run, "journal")
    ok(chroot_run, "remove")
    assert ok(chroot_run, "after_remove").splitlines() == [
        "/usr/sbin/proxreapd no", "/usr/sbin/proxreap no",
        CONFFILE + " yes",                      # a removed package keeps its conffiles
        "/var/lib/proxreap/journal yes"]
    ok(chroot_run, "purge")
    assert ok(chroot_run, "after_purge").splitlines() == [
        CONFFILE + " no", UNIT + " no",
        "/etc/proxreap/token yes",              # the admin's, not the package's
        "/var/lib/proxreap/journal yes"]        # the only record of how to restore
    assert ok(chroot_run, "journal_after") == "proxreap proxreap /var/lib/proxreap/journal\n"
    # Debian keeps system users on purge: the journal keeps a valid owner.
    assert ok(chroot_run, "user_after_purge").startswith("proxreap:")
    rc, so, _ = chroot_run["steps"]["status_after_purge"]
    assert rc != 0 or so.endswith("not-installed"), so


def test_host_unchanged(chroot_run):
    assert chroot_run["after"] == chroot_run["before"]
