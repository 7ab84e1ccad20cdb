"""The safety invariants of reaping, checked by the reap and crash tests.

check_invariants(lab, sim, config, tap=None, torn_ok=False)
    after any run, crashed or not: conftest.check_invariants (no destroy
    without a protected archive, at most one per guest, no saga call
    without its journaled intent, the journal verifies, every op terminal
    or resumable) on what the next writer keeps of the journal (a torn
    last record only where the caller expects one, never damage); with a
    JournalTap, the verify record and the destroy intent were in the
    journal file when the DELETE reached the server; one DELETE per guest,
    one restore per reap. Returns the Journal it read.

check_final(lab, sim, config, idle, busy)
    at the end of a scenario: every op terminal, every idle guest alive
    (running, or restored) or reaped with its protected archive on the
    archive storage, every busy guest untouched.

read_journal(path) -> Journal
    an independent reader of the journal format (include/journal.h): the
    records of the valid prefix, the torn tail, or the damage it found.

JournalTap(sim, journal)
    a TCP relay between proxreap and the simulator that copies the journal
    file the moment a DELETE or a restore reaches it, before passing the
    request on: what was on disk when the server acted.
"""

import json
import os
import re
import socket
import threading
import time

TERMINAL = ("reaped", "aborted", "restored")
# Non-terminal states: the daemon resumes all but "restoring", which the
# next `proxreap restore` of the op resumes.
RESUMABLE = ("selected", "shutdown", "snapshot", "archive", "verify", "destroy", "aborting",
             "restoring")


# ---------------------------------------------------------------- the journal file

def _crc32c_table():
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        table.append(c)
    return table


_CRC32C = _crc32c_table()


def crc32c(data):
    """CRC32C (Castagnoli) of bytes, as journal.c computes it."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = _CRC32C[(crc ^ b) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


_LINE = re.compile(rb'^\{"seq":([1-9][0-9]*),"crc32c":"([0-9a-f]{8})","rec":(.*)\}$', re.S)


class Journal:
    """What read_journal() found: records [(seq, payload)], the byte
    length of the valid prefix, the torn tail (bytes after the last
    newline), and damage (a complete bad line: never acceptable)."""

    def __init__(self, data):
        self.data = data
        self.records = []
        self.valid = 0
        self.tail = b""
        self.damage = None

    @property
    def prefix(self):
        return self.data[:self.valid]

    def ops(self):
        """{op id: [payload, ...]} in journal order."""
        out = {}
        for _, rec in self.records:
            out.setdefault(rec.get("op"), []).append(rec)
        return out

    def text(self, limit=200):
        """The records for a failure message (the last `limit`)."""
        lines = ["%d %s" % (seq, json.dumps(rec, sort_keys=False)[:300])
                 for seq, rec in self.records[-limit:]]
        if self.tail:
            lines.append("(torn tail of %d bytes: %r)" % (len(self.tail), self.tail[:120]))
        if self.damage:
            lines.append("(DAMAGE: %s)" % self.damage)
        return "\n".join(lines)


def parse_journal(data):
    j = Journal(data)
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            j.tail = data[pos:]
            break
        line = data[pos:nl]
        m = _LINE.match(line)
        seq = len(j.records) + 1
        problem = None
        if not m:
            problem = "not a record line"
        elif int(m.group(1)) != seq:
            problem = "seq %s where %d was expected" % (m.group(1).decode(), seq)
        elif int(m.group(2), 16) != crc32c(m.group(3)):
            problem = "CRC mismatch"
        else:
            try:
                rec = json.loads(m.group(3))
            except ValueError as e:
                rec, problem = None, "bad JSON: %s" % e
            if problem is None and not isinstance(rec, dict):
                problem = "payload is not an object"
        if problem:
            j.damage = "line %d (byte %d): %s" % (seq, pos, problem)
            break
        j.records.append((seq, rec))
        pos = nl + 1
        j.valid = pos
    return j


def read_journal(path):
    try:
        with open(path, "rb") as fh:
            return parse_journal(fh.read())
    except FileNotFoundError:
        return parse_journal(b"")


def journal_path(lab, config):
    groups = lab.configs.get(config) or {}
    return (groups.get("reap") or {}).get("journal") or os.path.join(lab.dir, "journal")


# ---------------------------------------------------------------- the relay

class JournalTap:
    """Listens on 127.0.0.1 (url: "http://127.0.0.1:PORT") and relays every
    connection to the simulator byte for byte. When the head of a watched
    request (DELETE, or a POST creating a guest: a restore) has arrived, it
    first copies the journal file, then passes the request on. seen() lists
    {"method", "path", "journal": Journal} in arrival order."""

    WATCH = (("DELETE", re.compile(r"^/api2/json/nodes/[^/]+/(qemu|lxc)/[0-9]+")),
             ("POST", re.compile(r"^/api2/json/nodes/[^/]+/(qemu|lxc)$")))

    def __init__(self, sim, journal):
        self.upstream = ("127.0.0.1", sim.port)
        self.journal = journal
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = "http://127.0.0.1:%d" % self.sock.getsockname()[1]
        self._seen = []
        self.errors = []
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def seen(self, method=None):
        with self._lock:
            return [s for s in self._seen if method is None or s["method"] == method]

    def close(self):
        self._closed = True
        try:
            self.sock.close()
        except OSError:
            pass

    def _accept(self):
        while not self._closed:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    @staticmethod
    def _pump(src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (dst, src):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _watched(self, method, target):
        path = target.split(b"?", 1)[0].decode("latin-1")
        return any(method == m and rx.search(path) for m, rx in self.WATCH), path

    def _serve(self, client):
        try:
            upstream = socket.create_connection(self.upstream)
        except OSError as e:
            self.errors.append("cannot connect to the simulator: %s" % e)
            client.close()
            return
        back = threading.Thread(target=self._pump, args=(upstream, client), daemon=True)
        back.start()
        buf, body_left = b"", 0
        try:
            while True:
                data = client.recv(65536)
                if not data:
                    break
                buf += data
                while buf:
                    if body_left:
                        n = min(body_left, len(buf))
                        upstream.sendall(buf[:n])
                        buf, body_left = buf[n:], body_left - n
                        continue
                    end = buf.find(b"\r\n\r\n")
                    if end < 0:
                        break
                    head, buf = buf[:end + 4], buf[end + 4:]
                    lines = head.split(b"\r\n")
                    parts = lines[0].split(b" ")
                    method = parts[0].decode("latin-1")
                    headers = {}
                    for h in lines[1:]:
                        k, _, v = h.partition(b":")
                        headers[k.strip().lower()] = v.strip()
                    if headers.get(b"transfer-encoding", b"").lower() == b"chunked":
                        self.errors.append("chunked request body: the relay cannot follow it")
                    watched, path = self._watched(method, parts[1] if len(parts) > 1 else b"")
                    if watched:
                        snap = read_journal(self.journal)
                        with self._lock:
                            self._seen.append({"method": method, "path": path, "journal": snap,
                                               "time": time.time()})
                    upstream.sendall(head)
                    body_left = int(headers.get(b"content-length", b"0") or 0)
        except OSError:
            pass
        finally:
            try:
                upstream.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            back.join(30)
            upstream.close()
            client.close()


# ---------------------------------------------------------------- the checks

def _ops(lab, config):
    r = lab.cli("journal", "list", "--json", config=config)
    assert r.returncode == 0, "journal list failed: %s" % r.stderr
    return {o["id"]: o for o in json.loads(r.stdout)}


def _guest_of(path):
    m = re.search(r"/nodes/[^/]+/(qemu|lxc)/([0-9]+)", path)
    return int(m.group(2)) if m else None


def _check_destroy_on_record(snap, vmid, where):
    """The journal copied when the DELETE of vmid arrived: its op's verify
    record (volid, size > 0) and then a destroy intent, the op's last
    record; nothing after the verify that would undo it. (A second intent
    may announce a resend of a call that never left; that no DELETE reaches
    the server twice is checked on the simulator's log.)"""
    recs = None
    for op, rs in snap.ops().items():
        if rs and rs[0].get("ev") == "selected" and rs[0].get("vmid") == vmid:
            recs = rs            # the latest op of the guest wins
    assert recs, "%s: DELETE of guest %d with no op of it in the journal:\n%s" % (
        where, vmid, snap.text())
    evs = [(r.get("ev"), r.get("step")) for r in recs]
    assert ("done", "verify") in evs, \
        "%s: DELETE of guest %d before its verify record was in the journal: %s" % (where, vmid, evs)
    v = evs.index(("done", "verify"))
    verify = recs[v]
    assert verify.get("volid") and int(verify.get("size") or 0) > 0, \
        "%s: verify record without volid/size: %s" % (where, verify)
    assert evs[-1] == ("intent", "destroy"), \
        "%s: DELETE of guest %d while the op's last record was %s, not its destroy intent: %s" % (
            where, vmid, evs[-1], evs)
    assert all(e not in ("failing", "aborted", "reaped") for e, _ in evs[v:]), \
        "%s: DELETE of guest %d after its op ended or failed: %s" % (where, vmid, evs)
    return verify


def _prefix_config(lab, config, jr):
    """A config like config whose journal is a copy of jr's valid prefix:
    what the next writer keeps of a journal with a torn tail."""
    groups = lab.configs[config]
    path = os.path.join(lab.dir, "journal.valid-prefix")
    with open(path, "wb") as fh:
        fh.write(jr.prefix)
    name = "valid-prefix.conf"
    return lab.config(name=name, url=groups["api"]["url"], api=groups.get("api"),
                      observe=groups.get("observe"), idle=groups.get("idle"),
                      select=groups.get("select"), reap=dict(groups["reap"], journal=path),
                      status={"file": os.path.join(lab.dir, "valid-prefix-status.json")}), path


def check_invariants(lab, sim, config, tap=None, torn_ok=False, earlier=()):
    """conftest.check_invariants (the invariants of every reap test), on a
    journal that may have been left by a crash, plus what crashes make
    interesting: torn_ok: a torn last record may end the journal (a crash
    in the middle of a write, not cut yet), never damage; with a tap, the
    journal file held the verify record and the destroy intent when each
    DELETE reached the server, and a restore intent when each restore did;
    DELETE sent at most once per guest; one restore per archive.
    earlier: journals lost before this one (conftest.check_invariants)."""
    from conftest import check_invariants as check_reap_invariants

    path = journal_path(lab, config)
    jr = read_journal(path)
    where = "journal %s" % path
    assert jr.damage is None, "%s is damaged: %s\n%s" % (where, jr.damage, jr.text())
    if jr.tail:
        assert torn_ok, "%s has a torn tail nobody expected:\n%s" % (where, jr.text())
        r = lab.cli("journal", "verify", config=config)
        assert r.returncode == 1 and "is torn" in r.stderr, r.stdout + r.stderr
        # The rest holds for what the next writer keeps.
        cfg, prefix = _prefix_config(lab, config, jr)
        check_reap_invariants(lab, sim, cfg, journal=prefix, earlier=earlier)
    else:
        check_reap_invariants(lab, sim, config, earlier=earlier)

    destroys = sim.history(event="destroy")
    deletes = [x for x in sim.requests() if x["method"] == "DELETE" and _guest_of(x["path"])]
    per_guest = {}
    for x in deletes:
        per_guest.setdefault(_guest_of(x["path"]), []).append(x)
    for vmid, xs in per_guest.items():
        assert len(xs) == 1, "DELETE of guest %d sent %d times: %s" % (vmid, len(xs), xs)
    if tap is not None:
        assert not tap.errors, tap.errors
        seen = tap.seen("DELETE")
        assert len(seen) == len(deletes), \
            "the relay saw %d DELETEs, the simulator %d" % (len(seen), len(deletes))
        for s in seen:
            vmid = _guest_of(s["path"])
            verify = _check_destroy_on_record(s["journal"], vmid, "DELETE %s" % s["path"])
            for d in destroys:
                if d["vmid"] == vmid:
                    arch = [a for a in d["archives"] if a["volid"] == verify["volid"]]
                    assert arch and arch[0]["protected"] and arch[0]["size"] == verify["size"], \
                        "guest %d: the verified archive %s (%s bytes) was not on the storage, " \
                        "protected, when it was destroyed: %s" % (vmid, verify["volid"],
                                                                   verify["size"], d["archives"])
        # A restore is sent only with its intent on record.
        for s in tap.seen("POST"):
            snap = s["journal"]
            last = [op for op, rs in snap.ops().items()
                    if rs[-1].get("ev") == "intent" and rs[-1].get("step") == "restore"]
            assert last, "%s sent without a restore intent as the op's last record:\n%s" % (
                s["path"], snap.text())

    # One successful restore per reap: per archive; a restored op has one.
    by_volid = {}
    for x in sim.history(event="restore"):
        by_volid.setdefault(x["volid"], []).append(x)
    for volid, xs in by_volid.items():
        assert len(xs) == 1, "archive %s restored %d times: %s" % (volid, len(xs), xs)
    for o in _ops(lab, config).values():
        assert o["state"] in TERMINAL + RESUMABLE, o
        if o["state"] == "restored":
            assert o["volid"] in by_volid, "op %s restored without a restore: %s" % (o["id"], o)
    return jr


def check_final(lab, sim, config, idle, busy, restored=()):
    """End of a scenario (nothing running): every op terminal; every idle
    guest alive or reaped with its protected archive (size > 0) on the
    archive storage; busy guests never written to."""
    listed = _ops(lab, config)
    for o in listed.values():
        assert o["state"] in TERMINAL, "op %s is not terminal: %s" % (o["id"], o)
    archive_storage = lab.configs[config]["reap"]["archive_storage"]
    volumes = {}
    for st in sim.storages(storage=archive_storage):
        for v in st["volumes"]:
            volumes[v["volid"]] = v
    for vmid in idle:
        ops_of = [o for o in listed.values() if o["vmid"] == vmid]
        done = [o for o in ops_of if o["state"] in ("reaped", "restored")]
        assert len(done) <= 1, "guest %d reaped more than once: %s" % (vmid, done)
        if done:
            o = done[0]
            v = volumes.get(o["volid"])
            assert v and v["protected"] and v["size"] > 0 and v["size"] == o["archive_size"], \
                "guest %d reaped by %s, but its archive %s is not on '%s' as recorded: %s" % (
                    vmid, o["id"], o["volid"], archive_storage, v)
            if o["state"] == "restored":
                g = sim.guest(o["restored_vmid"])
                assert g is not None, "op %s restored as %d, which does not exist" % (
                    o["id"], o["restored_vmid"])
            else:
                assert sim.guest(vmid) is None or vmid in restored, \
                    "guest %d reaped but still there" % vmid
        else:
            g = sim.guest(vmid)
            assert g is not None and g["status"] == "running", \
                "guest %d was not reaped and is not running as before: %s; ops %s" % (
                    vmid, g, ops_of)
    for vmid in busy:
        g = sim.guest(vmid)
        assert g is not None and g["status"] == "running", "busy guest %d: %s" % (vmid, g)
        touched = [x for x in sim.requests() if x["method"] != "GET" and
                   ("/%d/" % vmid in x["path"] + "/" or str((x.get("body") or {}).get("vmid")) == str(vmid))]
        assert not touched, "busy guest %d was written to: %s" % (vmid, touched)
        assert not [o for o in listed.values() if o["vmid"] == vmid], "busy guest %d has an op" % vmid
