"""The simulated cluster: clock, nodes, storages, guests, tasks, events and
the pvestatd-style statistics snapshot behind /cluster/resources.

Timing model (mirrors pvestatd + pmxcfs):
  * sim time t (seconds since sim start, `speed` sim-seconds per wall second)
  * statistics are sampled at t_k = k * stats_period; a request at time t
    sees the sample k = floor(t / stats_period). cpu is the mean over
    [t_k - P, t_k]; counters/uptime/mem are the values at t_k.
  * the first sample after a (re)start of a guest reports cpu 0.
  * lock / tags / pool / hastate / node are live (config files, HA status,
    vmlist), not part of the sample - exactly as Cluster.pm reads them.
  * a guest inside an 'unknown' window is served like a stale RRD entry:
    id, vmid, node, type, status 'unknown' (+ live tags/lock/pool/hastate),
    no name and no statistics (API2Tools::extract_vm_stats).
"""

import hashlib
import heapq
import itertools
import json
import math
import random
import re
import threading
import time

from .faults import AFTER_TASK_KINDS
from .guestconf import (apply_pending, backup_volumes, format_size, parse_pending_delete,
                        print_pending_delete, render_file, render_section, typed_value,
                        volid_of, volume_storage)
from .perl import perl_num
from .storage import Storage, Volume
from .tasks import DEFAULT_DURATIONS, Task, Timer, make_upid, parse_upid  # noqa: F401 (re-exported)
from .workload import MIB, Piecewise, make_history_workload, make_workload, unit_noise

# A running guest was started this long before the sim began, unless its
# scenario says "uptime": a month, so that its RRD covers the history veto's
# horizon (reap.history, 8 days by default in mark and reap mode).
DEFAULT_UPTIME = 30 * 86400


GIB = 1024 * MIB

UNUSED_RE = re.compile(r"^unused\d+$")


def normalize_pending(spec):
    """A scenario "pending" dict as write_vm_config would store it: values
    as strings, 'delete' as print_pending_delete writes it."""
    res = {}
    for k, v in (spec or {}).items():
        if v is None:
            continue
        if k == "delete":
            h = parse_pending_delete(v)
            if h:
                res["delete"] = print_pending_delete(h)
        else:
            res[k] = v
    return res


QEMU_RUNSTATES = {"running", "paused", "prelaunch", "suspended", "postmigrate", "inmigrate",
                  "io-error", "internal-error", "shutdown", "guest-panicked", "watchdog",
                  "finish-migrate", "restore-vm", "save-vm", "colo", "debug"}


class SimError(Exception):
    """A plain die() inside a handler: HTTP 500 with this message."""

    def __init__(self, msg, code=500, errors=None):
        super().__init__(msg)
        self.msg = msg
        self.code = code
        self.errors = errors


# ---------------------------------------------------------------- clock

class SimClock:
    def __init__(self, speed=1.0, start_epoch=None):
        self.speed = float(speed)
        self._mono0 = time.monotonic()
        self._offset = 0.0
        self.epoch0 = int(start_epoch) if start_epoch is not None else int(time.time())
        self._lock = threading.Lock()

    def now(self):
        return (time.monotonic() - self._mono0) * self.speed + self._offset

    def advance(self, seconds):
        with self._lock:
            self._offset += float(seconds)

    def epoch(self, t=None):
        return self.epoch0 + (self.now() if t is None else t)


# ---------------------------------------------------------------- nodes

class Node:
    def __init__(self, spec, index):
        if isinstance(spec, str):
            spec = {"node": spec}
        self.name = spec.get("node") or spec.get("name")
        self.online = bool(spec.get("online", True))
        self.maxcpu = int(spec.get("maxcpu", 64))
        self.maxmem = int(spec.get("maxmem", 256 * GIB))
        self.maxdisk = int(spec.get("maxdisk", 100 * GIB))
        self.disk = int(spec.get("disk", 12 * GIB))
        self.base_mem = int(spec.get("base_mem", 6 * GIB))
        self.uptime0 = int(spec.get("uptime", 3000000 + 86400 * index))
        self.level = spec.get("level", "")
        self.cgroup_mode = spec.get("cgroup-mode", 2)
        self.ip = spec.get("ip", "10.0.0.%d" % (11 + index))

    def pstart(self, t):
        """Process start time in clock ticks since boot (USER_HZ 100)."""
        return int((self.uptime0 + t) * 100)


# ---------------------------------------------------------------- guests

# Identities PVE draws at random (MACs: PVE::Tools::random_ether_addr with
# datacenter.cfg's default mac_prefix BC:24:11; smbios1 uuid, vmgenid:
# UUID::generate). Derived here from the VMID and `gen`, the number of
# guests created under that VMID before (0 for the first one, whose values
# stay what they always were), so a re-created guest looks new.

def _mac(vmid, n, gen=0):
    if gen:
        h = hashlib.sha1(b"mac%d/%d/g%d" % (vmid, n, gen)).digest()
    else:
        h = hashlib.sha1(b"mac%d/%d" % (vmid, n)).digest()
    return "BC:24:11:%02X:%02X:%02X" % (h[0], h[1], h[2])


def _uuid(vmid, salt, gen=0):
    if gen:
        h = hashlib.sha1(b"%s%d/g%d" % (salt.encode(), vmid, gen)).hexdigest()
    else:
        h = hashlib.sha1(b"%s%d" % (salt.encode(), vmid)).hexdigest()
    return "%s-%s-4%s-a%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:32])


class Guest:
    __slots__ = ("vmid", "type", "node", "name", "tags", "pool", "template", "lock", "hastate",
                 "protection", "description", "onboot", "maxcpu", "maxmem", "maxdisk", "disk_used",
                 "maxswap", "runstate", "segments", "unknown", "frozen", "deleted", "wl", "extra_config",
                 "snapshots", "disk_storage", "ctime", "wl_kind", "parent", "acpi", "disk_format",
                 "can_snapshot", "start_warnings", "ha_state", "created_t", "deleted_t", "empty",
                 "wl_spec", "snap_order", "res_frag", "gen", "pending", "volume_used")

    def __init__(self, spec, default_node, gen=0, now_epoch=None):
        self.vmid = int(spec["vmid"])
        self.type = spec.get("type", "qemu")
        if self.type not in ("qemu", "lxc"):
            raise ValueError("guest %d: type must be qemu or lxc" % self.vmid)
        self.node = spec.get("node", default_node)
        self.name = spec.get("name")
        self.tags = spec.get("tags") or None
        self.pool = spec.get("pool") or None
        self.template = 1 if spec.get("template") else 0
        self.lock = spec.get("lock") or None
        ha = spec.get("ha")
        self.hastate = ("started" if ha is True else (ha or None)) if ha else None
        self.ha_state = self.hastate          # requested state in resources.cfg
        self.protection = 1 if spec.get("protection") else 0
        self.description = spec.get("description")
        self.onboot = spec.get("onboot")
        self.maxcpu = spec.get("maxcpu", 1)
        self.maxmem = int(spec.get("maxmem", 2 * GIB if self.type == "qemu" else 512 * MIB))
        self.maxdisk = int(spec.get("maxdisk", 32 * GIB if self.type == "qemu" else 8 * GIB))
        self.disk_used = int(spec.get("disk", self.maxdisk // 4))
        self.maxswap = int(spec.get("maxswap", 512 * MIB)) if self.type == "lxc" else 0
        self.extra_config = dict(spec.get("config") or {})
        self.gen = int(gen)
        # [PENDING] section: {key: value string, "delete": "k1,!k2"}
        self.pending = normalize_pending(spec.get("pending"))
        # used bytes of volumes other than the boot disk ({key: bytes};
        # default a quarter of the volume's size) - what vzdump reads
        self.volume_used = {k: int(v) for k, v in (spec.get("volume_used") or {}).items()}
        self.snapshots = {}
        self.disk_storage = spec.get("disk_storage", "local-lvm")
        if spec.get("ctime") is not None:
            self.ctime = int(spec["ctime"])
        elif self.gen and now_epoch is not None:
            self.ctime = int(now_epoch)       # created now (meta ctime=)
        else:
            self.ctime = 1700000000 + self.vmid
        wspec = spec.get("workload")
        self.wl_spec = wspec
        self.wl = make_history_workload(spec.get("history"), wspec)
        self.wl_kind = self.wl.kind
        self.parent = spec.get("parent")
        # "acpi": false or "shutdown": "ignore" -> the guest OS ignores ACPI
        # shutdown requests (qemu) / SIGPWR (lxc)
        self.acpi = not (spec.get("acpi") is False or spec.get("shutdown") == "ignore")
        self.disk_format = spec.get("disk_format")      # None: storage default
        cs = spec.get("can_snapshot")
        self.can_snapshot = None if cs is None else bool(cs)
        self.start_warnings = int(spec.get("start_warnings", 0))
        self.created_t = float(spec.get("created_t", -math.inf))
        self.deleted_t = None
        self.empty = bool(spec.get("empty"))
        self.snap_order = []
        self.res_frag = None     # rendered /cluster/resources entry (Cluster._vm_fragments)
        self.segments = []       # [start, end or None] of QEMU/LXC process lifetimes
        self.unknown = []        # [from, to) windows served as stale RRD entries
        # (from, to, k): /cluster/resources keeps serving sample k, uptime
        # and counters included, as Proxmox does for a node whose pvestatd
        # stopped updating (until it drops the entry after 5 minutes)
        self.frozen = None
        self.deleted = False
        status = spec.get("status", "running")
        self.runstate = "running"
        if status == "unknown":
            self.unknown.append([-math.inf, math.inf])
            status = "running"
        if status != "stopped":
            if self.type == "lxc" and status != "running":
                raise ValueError("guest %d: lxc status must be running or stopped" % self.vmid)
            self.runstate = status
            self.segments.append([-float(spec.get("uptime", DEFAULT_UPTIME)), None])
        for sn in spec.get("snapshots") or []:
            if isinstance(sn, str):
                sn = {"name": sn}
            self.add_snapshot(sn["name"], int(sn.get("snaptime", 1700000000)),
                              sn.get("description"), sn.get("vmstate"))

    def add_snapshot(self, name, snaptime, description=None, vmstate=None, snapstate=None):
        """Copy of the current config as snapshot `name` (like
        __snapshot_copy_config + prepare); the guest's parent becomes it
        when committed (commit_snapshot)."""
        # __snapshot_copy_config: no lock, digest, description (the
        # snapshot's own comment), parent is set below
        conf = {k: v for k, v in self.config().items()
                if k not in ("lock", "digest", "parent", "description", "vmstate", "snaptime")
                and not UNUSED_RE.match(k)}
        if self.parent:
            conf["parent"] = self.parent
        conf["snaptime"] = snaptime
        if description:
            conf["description"] = description
        if vmstate:
            conf["vmstate"] = "local-lvm:vm-%d-state-%s" % (self.vmid, name)
        if snapstate:
            conf["snapstate"] = snapstate
        self.snapshots[name] = conf
        if name not in self.snap_order:
            self.snap_order.append(name)
        if not snapstate:
            self.parent = name
        return conf

    def commit_snapshot(self, name):
        snap = self.snapshots.get(name)
        if snap is not None:
            snap.pop("snapstate", None)
            self.parent = name

    def drop_snapshot(self, name):
        snap = self.snapshots.pop(name, None)
        if name in self.snap_order:
            self.snap_order.remove(name)
        if snap is None:
            return
        # children of the removed snapshot inherit its parent
        for other in self.snapshots.values():
            if other.get("parent") == name:
                if snap.get("parent"):
                    other["parent"] = snap["parent"]
                else:
                    other.pop("parent", None)
        if self.parent == name:
            self.parent = snap.get("parent")

    # -- names as PVE derives them
    def display_name(self):
        if self.name:
            return self.name
        return ("VM %d" % self.vmid) if self.type == "qemu" else ("CT%d" % self.vmid)

    # -- run timeline
    def segment_at(self, t):
        for seg in reversed(self.segments):
            if seg[0] <= t:
                if seg[1] is None or t < seg[1]:
                    return seg
                return None
        return None

    def running_now(self):
        return bool(self.segments) and self.segments[-1][1] is None

    def start(self, t):
        if not self.running_now():
            self.segments.append([t, None])
            if len(self.segments) > 16:
                del self.segments[:-16]

    def stop(self, t):
        if self.running_now():
            self.segments[-1][1] = t

    def is_unknown(self, t):
        for a, b in self.unknown:
            if a <= t < b:
                return True
        return False

    def pid_for(self, seg):
        return 1000 + int(unit_noise(self.vmid, int(seg[0] * 1000), 7) * 4000000)

    # -- what pvestatd would have broadcast at tk (a cpu of exactly 0 is
    #    emitted as the integer 0, like Perl's "0 + 0")
    def stats_at(self, tk, period):
        seg = self.segment_at(tk)
        if seg is None:
            return None
        ts = seg[0]
        cpu, mem, nin, nout, dr, dw = self.wl.sample(ts, tk - period, tk)
        cpu = 0 if ts > tk - period else perl_num(cpu)
        if mem > self.maxmem:
            mem = self.maxmem
        return (int(tk - ts), cpu, mem, nin, nout, dr, dw, seg)

    # -- config file model (qemu-server / pve-container layout)
    def config(self):
        vmid = self.vmid
        if self.empty:
            # a config reserved by create_and_lock_config (restore running)
            # or left behind by a failed qemu restore
            return {"lock": self.lock} if self.lock else {}
        if self.type == "qemu":
            cores = self.maxcpu if float(self.maxcpu) == int(self.maxcpu) else int(math.ceil(self.maxcpu))
            conf = {
                "boot": "order=scsi0;net0",
                "cores": int(cores),
                "cpu": "x86-64-v2-AES",
                "memory": str(self.maxmem // MIB),
                "meta": "creation-qemu=9.2.0,ctime=%d" % self.ctime,
                "name": self.display_name() if self.name else None,
                "net0": "virtio=%s,bridge=vmbr0,firewall=1" % _mac(vmid, 0, self.gen),
                "numa": 0,
                "ostype": "l26",
                "scsi0": "%s:vm-%d-disk-0,iothread=1,size=%dG" % (self.disk_storage, vmid,
                                                                    max(1, self.maxdisk // GIB)),
                "scsihw": "virtio-scsi-single",
                "smbios1": "uuid=%s" % _uuid(vmid, "smbios", self.gen),
                "sockets": 1,
                "vmgenid": _uuid(vmid, "vmgenid", self.gen),
                "agent": "1",
            }
        else:
            conf = {
                "arch": "amd64",
                "cores": int(math.ceil(float(self.maxcpu))),
                "hostname": self.name or "CT%d" % vmid,
                "memory": self.maxmem // MIB,
                "net0": "name=eth0,bridge=vmbr0,firewall=1,hwaddr=%s,ip=dhcp,type=veth" % _mac(vmid, 0,
                                                                                                self.gen),
                "ostype": "debian",
                "rootfs": "%s:vm-%d-disk-0,size=%dG" % (self.disk_storage, vmid, max(1, self.maxdisk // GIB)),
                "swap": self.maxswap // MIB,
                "unprivileged": 1,
            }
            if float(self.maxcpu) != int(float(self.maxcpu)):
                conf["cpulimit"] = self.maxcpu
        if self.tags:
            conf["tags"] = self.tags
        if self.lock:
            conf["lock"] = self.lock
        if self.parent:
            conf["parent"] = self.parent
        if self.protection:
            conf["protection"] = 1
        if self.template:
            conf["template"] = 1
        if self.onboot is not None:
            conf["onboot"] = 1 if self.onboot else 0
        if self.description:
            conf["description"] = self.description
        conf.update(self.extra_config)
        return {k: v for k, v in conf.items() if v is not None}

    @staticmethod
    def render_config(conf, snapshots=None, skip=(), gtype="qemu", pending=None):
        """The config file text (write_vm_config / write_pct_config: the
        description as leading '#' comment lines, then 'key: value' lines,
        then the pending section, then one [section] per snapshot)."""
        if skip:
            conf = {k: v for k, v in conf.items() if k not in skip}
        return render_file(gtype, conf, pending, snapshots)

    def config_text(self, conf=None):
        """The whole config file as pmxcfs holds it."""
        return render_file(self.type, self.config() if conf is None else conf, self.pending,
                           self.snapshots)

    def current_config(self, current=False):
        """GET .../config (load_current_config): pending values applied
        unless current=1, plus the digest of the whole file."""
        conf = self.config()
        digest = hashlib.sha1(self.config_text(conf).encode()).hexdigest()
        if not current and self.pending:
            conf = apply_pending(conf, self.pending)
            for k in self.pending:
                if k in conf:
                    conf[k] = typed_value(self.type, k, conf[k])
        conf["digest"] = digest
        return conf

    def config_with_digest(self):
        return self.current_config(current=True)

    def digest(self):
        return hashlib.sha1(self.config_text().encode()).hexdigest()

    # -- config keys: attribute-backed ones set the attribute
    def set_config_key(self, k, v):
        """Set (v not None) or delete (v None) one config key the way the
        file would show it; attribute-backed keys (name, tags, memory, ...)
        update the attribute."""
        if k == "tags":
            self.tags = v or None
        elif k == "protection":
            self.protection = 1 if v is not None and str(v) == "1" else 0
        elif k == "description":
            self.description = v or None
        elif k == "onboot":
            self.onboot = None if v is None else int(v)
        elif k == ("name" if self.type == "qemu" else "hostname"):
            self.name = v
        elif k == "lock":
            self.lock = v or None
        elif k == "template":
            self.template = 1 if v is not None and str(v) == "1" else 0
        elif k == "parent":
            self.parent = v or None
        elif k == "memory" and v is not None:
            m = re.search(r"(?:^|current=)(\d+)", str(v))
            self.maxmem = (int(m.group(1)) if m else 512) * MIB
        elif k == "cores" and v is not None:
            self.maxcpu = int(v)
        elif k == "swap" and v is not None and self.type == "lxc":
            self.maxswap = int(v) * MIB
        else:
            self.extra_config[k] = typed_value(self.type, k, v)

    def cfs_path(self, node):
        if self.type == "qemu":
            return "nodes/%s/qemu-server/%d.conf" % (node, self.vmid)
        return "nodes/%s/lxc/%d.conf" % (node, self.vmid)


def config_path(gtype, node, vmid):
    sub = "qemu-server" if gtype == "qemu" else "lxc"
    return "nodes/%s/%s/%s.conf" % (node, sub, vmid)


PRIMARY_KEY = {"qemu": "scsi0", "lxc": "rootfs"}


def volume_format(cl, g, key, volid):
    """checked_volume_format as far as the sim knows it: the file
    extension of a file storage image, else the guest's disk_format for
    its boot disk, else the storage's default format."""
    sid = volume_storage(volid)
    if sid is None:
        return "raw"
    name = volid.split(":", 1)[1]
    m = re.search(r"\.(raw|qcow2|vmdk)$", name)
    if m:
        return m.group(1)
    if g.type == "lxc":
        return "subvol" if name.rsplit("/", 1)[-1].startswith("subvol-") else "raw"
    if key == PRIMARY_KEY[g.type] and g.disk_format:
        return g.disk_format
    st = cl.storage(g.node, sid) or cl.storage_any(sid) if cl is not None else None
    return st.default_format() if st is not None else "raw"


def volume_used(g, key, size):
    """Bytes of data on a volume (what a backup reads): the guest's `disk`
    for its boot disk, `volume_used[key]` or a quarter of the size for the
    others."""
    if key == PRIMARY_KEY[g.type]:
        return g.disk_used
    if key in g.volume_used:
        return g.volume_used[key]
    return int(size or 0) // 4


def backup_plan(cl, g):
    """What vzdump's guest plugin does with the config (VZDump/QemuServer.pm
    and VZDump/LXC.pm prepare + assemble):

      prep      the log lines of prepare() (name, include/exclude disk or
                mount point lines)
      assemble  the log lines of assemble() (qemu: skipped unused drives,
                snapshot / pending / special sections left out)
      volumes   the included volumes [{key, volid, size, used, storage,
                format}]
      text      the config in the archive: qemu-server.conf = the config
                file up to its first section without unused, lock and
                parent lines, plus one '#qmdump#map:' line per included disk
                (sorted by key); pct.conf = the config without lock,
                parent, pending and snapshots (unused lines kept)
    """
    conf = g.config()
    gtype = g.type
    prep, assemble, vols = [], [], []
    if gtype == "qemu":
        if conf.get("name") is not None:
            prep.append("VM Name: %s" % conf["name"])
    elif conf.get("hostname") is not None:
        prep.append("CT Name: %s" % conf["hostname"])
    for bv in backup_volumes(gtype, conf):
        key, vol = bv["key"], bv["volume"]
        volid = volid_of(gtype, vol)
        if gtype == "qemu":
            if not bv["included"]:
                prep.append("exclude disk '%s' '%s' (%s)" % (key, volid, bv["reason"]))
                continue
            line = "include disk '%s' '%s'" % (key, volid)
            if vol.get("size") is not None:
                line += " " + format_size(vol["size"])
            prep.append(line)
        else:
            mount = vol.get("mp")
            if not volid or not mount:
                continue
            if not bv["included"]:
                prep.append("excluding %s mount point %s ('%s') from backup (%s)"
                            % (vol["type"], key, mount, bv["reason"]))
                continue
            prep.append("including mount point %s ('%s') in backup" % (key, mount))
        size = vol.get("size") or 0
        vols.append({"key": key, "volid": volid, "size": size, "used": volume_used(g, key, size),
                     "storage": volume_storage(volid), "format": volume_format(cl, g, key, volid)})
    if gtype == "qemu":
        out = []
        found = set()
        for line in g.config_text(conf).splitlines(True):
            if line.startswith("#vzdump#") or line.startswith("#qmdump#"):
                continue
            m = re.match(r"^\[(.*)\]\s*$", line)
            if m:
                sec = m.group(1)
                found.add("pending" if re.match(r"^PENDING$", sec, re.I)
                          else "special" if sec.startswith("special:") else "snapshot")
            if found:
                continue
            m = re.match(r"^unused\d+:\s*(\S+)\s*", line)
            if m:
                assemble.append("skip unused drive '%s' (not included into backup)" % m.group(1))
                continue
            if line.startswith("lock:") or line.startswith("parent:"):
                continue
            out.append(line)
        for v in sorted(vols, key=lambda v: v["key"]):
            dev = "drive-tpmstate0-backup" if v["key"] == "tpmstate0" else "drive-" + v["key"]
            out.append("#qmdump#map:%s:%s:%s:%s:\n" % (v["key"], dev, v["storage"] or "",
                                                        v["format"] or ""))
        if "special" in found:
            assemble.append("special config section found (not included into backup)")
        if "snapshot" in found:
            assemble.append("snapshots found (not included into backup)")
        if "pending" in found:
            assemble.append("pending configuration changes found (not included into backup)")
        text = "".join(out)
    else:
        text = render_section({k: v for k, v in conf.items() if k not in ("lock", "parent")}, "lxc")
    return {"prep": prep, "assemble": assemble, "volumes": vols, "text": text,
            "used": sum(v["used"] for v in vols), "total": sum(v["size"] for v in vols)}


def archive_config_text(g, cl=None):
    """The guest config vzdump puts into the archive (see backup_plan)."""
    return backup_plan(cl, g)["text"]


def archive_meta(g, plan=None):
    """What a restore needs besides the config text (sim only): the data
    of the included volumes, the workload."""
    meta = {"type": g.type, "vmid": g.vmid, "name": g.display_name(), "maxdisk": g.maxdisk,
            "disk_used": g.disk_used, "workload": g.wl_spec, "disk_storage": g.disk_storage,
            "disk_format": g.disk_format}
    if plan is not None:
        meta["volumes"] = {v["key"]: {"size": v["size"], "used": v["used"], "format": v["format"],
                                      "storage": v["storage"]} for v in plan["volumes"]}
    return meta


# ---------------------------------------------------------------- fleet generator

TAG_WORDS = ["prod", "dev", "test", "web", "db", "ci", "batch", "legacy", "k8s", "proxreap-keep"]
POOL_NAMES = ["team-a", "team-b", "ci-pool", "lab"]


def generate_fleet(spec, default_nodes):
    """Deterministic mixed fleet from spec = {count, seed, nodes, first_vmid,
    idle_share}. Returns a list of GUEST dicts (same format as scenario)."""
    count = int(spec.get("count", 100))
    rng = random.Random(int(spec.get("seed", 1)))
    nodes = list(spec.get("nodes") or default_nodes)
    first = int(spec.get("first_vmid", 1000))
    idle_share = min(0.88, max(0.0, float(spec.get("idle_share", 0.3))))
    rest = 1.0 - 0.10 - idle_share
    out = []
    cpus = [1, 1, 2, 2, 2, 4, 4, 8, 16]
    mems = [512, 1024, 2048, 2048, 4096, 4096, 8192, 16384, 65536]
    disks = [8, 16, 32, 32, 64, 100, 200, 500]
    rnd = rng.random
    uni = rng.uniform
    for i in range(count):
        vmid = first + i
        gtype = "lxc" if rnd() < 0.3 else "qemu"
        g = {"vmid": vmid, "type": gtype, "node": nodes[i % len(nodes)],
             "name": ("vm-%d" if gtype == "qemu" else "ct-%d") % vmid,
             "maxcpu": rng.choice(cpus), "maxmem": rng.choice(mems) * MIB,
             "maxdisk": rng.choice(disks) * GIB}
        r = rnd()
        if r < 0.02:
            g.update(status="stopped", template=1, type="qemu", name="tmpl-%d" % vmid)
        elif r < 0.10:
            g["status"] = "stopped"
        elif r < 0.10 + idle_share:
            g["workload"] = {"kind": "constant", "cpu": round(uni(0.002, 0.03), 4),
                             "mem_mb": int(uni(48, 900)), "net_kbps": round(uni(0.1, 2.0), 2),
                             "disk_kbps": round(uni(0.5, 5.0), 2)}
        else:
            x = (r - 0.10 - idle_share) / rest if rest > 0 else 0.0
            busy = {"cpu": round(uni(0.1, 0.9), 3), "mem_mb": int(uni(1024, 6000)),
                    "net_kbps": round(uni(50, 5000), 1), "disk_kbps": round(uni(100, 20000), 1)}
            idle = {"cpu": round(uni(0.002, 0.02), 4), "mem_mb": int(uni(64, 700)),
                    "net_kbps": 0.5, "disk_kbps": 1.0}
            if x < 0.40:
                g["workload"] = dict(busy, kind="constant")
            elif x < 0.65:
                every = rng.choice([60, 300, 900, 3600])
                g["workload"] = {"kind": "bursts", "base": idle, "burst": busy, "every": every,
                                 "length": max(5, int(every * uni(0.05, 0.3))),
                                 "offset": int(uni(0, every))}
            elif x < 0.85:
                g["workload"] = {"kind": "daynight", "period": 86400, "day": busy, "night": idle,
                                 "offset": -int(uni(0, 86400))}
            else:
                g["workload"] = {"kind": "random", "seed": vmid, "cpu_max": round(uni(0.05, 0.9), 2),
                                 "mem_mb_max": int(uni(256, 8192)), "net_kbps": 10, "disk_kbps": 50}
        if g.get("status") != "stopped":
            g["uptime"] = int(uni(60, 40 * 86400)) if rnd() > 0.05 else int(uni(0, 600))
        if rnd() < 0.01:
            g["lock"] = rng.choice(["backup", "snapshot", "migrate"])
        if rnd() < 0.03:
            g["ha"] = True
        if rnd() < 0.20:
            g["tags"] = ";".join(sorted(set(rng.sample(TAG_WORDS, rng.randint(1, 3)))))
        if rnd() < 0.10:
            g["pool"] = rng.choice(POOL_NAMES)
        if rnd() < 0.05:
            g["protection"] = 1
        u = rnd()
        if u < 0.001:
            g["status"] = "unknown" if g.get("status") != "stopped" else "stopped"
        elif u < 0.005:
            at = round(uni(0, 600), 1)
            g["events"] = [{"at": at, "action": "unknown", "duration": round(uni(30, 900), 1)}]
        out.append(g)
    return out


# ---------------------------------------------------------------- cluster

def _json_text(obj):
    """JSON as the server encodes it (compact, UTF-8 kept)."""
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def _with_live(e, g):
    """The live fields Cluster.pm adds to a guest entry (config, HA)."""
    if g.tags is not None:
        e["tags"] = g.tags
    if g.lock:
        e["lock"] = g.lock
    if g.pool:
        e["pool"] = g.pool
    if g.hastate:
        e["hastate"] = g.hastate
    return e


def _running_template(g, pve9):
    """The entry of a running guest as a %-template: the fields that change
    with the sample (diskread, uptime, netin, diskwrite, netout, cpu (text),
    mem, memhost) are the conversions, everything else is encoded once."""
    def lit(v):
        return _json_text(v).replace("%", "%%")

    status = g.runstate if g.type == "qemu" else "running"
    head = ('{"maxcpu":%s,"diskread":%%d,"uptime":%%d,"id":%s,"template":%s,"netin":%%d,'
            '"name":%s,"node":%s,"maxdisk":%s,"disk":%s,"diskwrite":%%d,"status":%s,'
            '"netout":%%d,"cpu":%%s,"mem":%%d,"type":%s,"vmid":%s,"maxmem":%s'
            % (lit(perl_num(g.maxcpu)), lit("%s/%d" % (g.type, g.vmid)), lit(g.template),
               lit(g.display_name()), lit(g.node), lit(g.maxdisk),
               lit(g.disk_used if g.type == "lxc" else 0), lit(status), lit(g.type),
               lit(g.vmid), lit(g.maxmem)))
    if pve9:
        head += ',"memhost":%d'
    live = _json_text(_with_live({}, g))
    if live != "{}":
        head += "," + live[1:-1].replace("%", "%%")
    return head + "}"


class _ResFrag:
    """One guest's rendered /cluster/resources entry: valid for skey (the
    guest's state) and sample k, or for every later sample when static
    (stopped, unknown). stats = (cpu, mem, uptime) of a running guest, for
    the pool and node sums. template: the running entry's %-template for
    tskey. ahead: (k, skey, static, text, stats) rendered ahead of sample
    k by the render-ahead thread, taken over when skey still holds."""
    __slots__ = ("skey", "k", "static", "text", "template", "tskey", "stats", "ahead")

    def __init__(self, skey):
        self.skey = skey
        self.k = None
        self.static = False
        self.text = None
        self.template = None
        self.tskey = None
        self.stats = None
        self.ahead = None


def _state_key(g, unk, pve9):
    """Everything a guest's entry shows except the sample."""
    segs = g.segments
    last = segs[-1] if segs else None
    return (g.type, g.node, g.name, g.template, g.maxcpu, g.maxdisk, g.maxmem, g.disk_used,
            g.runstate, g.tags, g.lock, g.pool, g.hastate, g.wl, unk, len(segs),
            last[0] if last else None, last[1] if last else None, pve9)


def _render_entry(g, f, skey, unk, tk, period, pve9, pn_memo):
    """(static, text, stats) of guest g at sample time tk; f (the guest's
    _ResFrag) caches the template."""
    if unk:
        e = {"id": "%s/%d" % (g.type, g.vmid), "vmid": g.vmid, "node": g.node,
             "type": g.type, "status": "unknown"}
        return True, _json_text(_with_live(e, g)), None
    # g.stats_at(tk, period), inlined: this runs for every guest at every
    # sample
    segs = g.segments
    last = segs[-1] if segs else None
    seg = last if (last is not None and last[0] <= tk and last[1] is None) else g.segment_at(tk)
    if seg is None:
        e = {"maxcpu": perl_num(g.maxcpu), "diskread": 0, "uptime": 0,
             "id": "%s/%d" % (g.type, g.vmid), "template": g.template, "netin": 0,
             "name": g.display_name(), "node": g.node, "maxdisk": g.maxdisk, "disk": 0,
             "diskwrite": 0, "status": "stopped", "netout": 0, "cpu": 0, "mem": 0,
             "type": g.type, "vmid": g.vmid, "maxmem": g.maxmem}
        if pve9:
            e["memhost"] = 0
        # Stopped at tk and no start after tk: stopped at every later
        # sample too, until a start changes skey.
        return last is None or last[0] <= tk, _json_text(_with_live(e, g)), None
    ts = seg[0]
    raw, mem, nin, nout, dr, dw = g.wl.sample(ts, tk - period, tk)
    if ts > tk - period:
        cpu, ctext = 0, "0"
    else:
        pc = pn_memo.get(raw)
        if pc is None:
            pn = perl_num(raw)
            pc = pn_memo[raw] = (pn, repr(pn))
        cpu, ctext = pc
    maxmem = g.maxmem
    if mem > maxmem:
        mem = maxmem
    uptime = int(tk - ts)
    tmpl = f.template
    if tmpl is None or f.tskey != skey:
        tmpl = _running_template(g, pve9)
        f.template, f.tskey = tmpl, skey
    if pve9:
        memhost = (mem + maxmem // 50 + 30 * MIB) if g.type == "qemu" else mem
        text = tmpl % (dr, uptime, nin, dw, nout, ctext, mem, memhost)
    else:
        text = tmpl % (dr, uptime, nin, dw, nout, ctext, mem)
    return False, text, (cpu, mem, uptime)


VM_STAT_KEYS = ("maxcpu", "diskread", "uptime", "id", "template", "netin", "name", "node",
                "maxdisk", "disk", "diskwrite", "status", "netout", "cpu", "mem", "type",
                "vmid", "maxmem")


class Cluster:
    def __init__(self, scenario):
        self.scenario = scenario
        self.lock = threading.RLock()
        self.clock = SimClock(scenario.get("speed", 1.0), scenario.get("start_epoch"))
        self.period = float(scenario.get("stats_period", 10.0))
        if self.period <= 0:
            raise ValueError("stats_period must be > 0")
        self.rrd_format = scenario.get("rrd_format", "pve-vm-9.0")
        node_specs = scenario.get("nodes") or ["pve1"]
        self.nodes = {}
        for i, ns in enumerate(node_specs):
            n = Node(ns, i)
            self.nodes[n.name] = n
        self.node_names = list(self.nodes)
        self.clustername = scenario.get("clustername", "pve-sim" if len(self.nodes) > 1 else None)
        self.storages = []
        sspecs = scenario.get("storages")
        if sspecs is None:
            sspecs = [{"storage": "local", "plugintype": "dir", "content": "iso,vztmpl,backup",
                       "maxdisk": 100 * GIB, "disk": 8 * GIB},
                      {"storage": "local-lvm", "plugintype": "lvmthin", "content": "images,rootdir",
                       "maxdisk": 800 * GIB, "disk": 120 * GIB}]
        for ss in sspecs:
            shared_data = None
            for node in ([ss["node"]] if ss.get("node") else self.node_names):
                st = Storage(ss, node, shared_data)
                if st.shared:
                    shared_data = st.data
                self.storages.append(st)
        self.pools = list(scenario.get("pools") or [])
        self.guests = {}
        self.lineage = {}          # vmid -> earlier Guest objects (RRD history)
        self.vmid_gen = {}         # vmid -> generation of its latest guest (0 = first)
        self.restore_seq = 0       # identities drawn by restores (vmgenid, unique MACs)
        self._events = []
        self._timers = []
        self._evseq = itertools.count()
        self._pid = itertools.count(100000)
        self.tasks = {}
        self.task_order = []
        self.history = []
        self.faults = None         # set by server.Sim (task / storage faults)
        self.durations = dict(DEFAULT_DURATIONS)
        self.durations.update({k: float(v) for k, v in (scenario.get("task_durations") or {}).items()})
        self.ha_delay = float(scenario.get("ha_delay", self.durations["ha"]))
        self.utc_offset = int(scenario.get("utc_offset", 0))
        self.tag_style = dict(scenario.get("tag_style") or {})   # datacenter.cfg tag-style
        nid = scenario.get("next_id") or {}
        self.next_lower = int(nid.get("lower", 100))
        self.next_upper = int(nid.get("upper", 1000 * 1000))
        self.vzdump_holder = {}    # node -> vzdump Task holding /var/run/vzdump.lock
        self.vzdump_waiters = {}   # node -> [callback(t)] in arrival order
        self.gen = 0
        self._sorted = None
        self._cache = {}
        self._pn_memo = {}         # cpu fraction -> (perl_num(cpu), its JSON text)
        self._ahead_thread = None
        self._ahead_body = None    # (k, gen, unknown key, body) of type=vm
        self._unknown_guests = set()
        specs = list(scenario.get("guests") or [])
        if scenario.get("generate"):
            specs.extend(generate_fleet(scenario["generate"], self.node_names))
        for spec in specs:
            # a guest on a node the scenario forgot to list: add that node
            node = spec.get("node")
            if node and node not in self.nodes:
                self.nodes[node] = Node(node, len(self.nodes))
                self.node_names.append(node)
            self.add_guest(spec)
        for ss in sspecs:
            for b in ss.get("backups") or []:
                self.add_backup(ss["storage"], b, ss.get("node"))

    # -- bookkeeping
    def touch(self):
        self.gen += 1
        self._cache.clear()

    def next_pid(self):
        return next(self._pid)

    def add_guest(self, spec, replace=False):
        vmid = int(spec["vmid"])
        gen = self.vmid_gen.get(vmid, -1) + 1
        g = Guest(spec, self.node_names[0], gen, self.clock.epoch())
        old = self.guests.get(g.vmid)
        if old is not None and not old.deleted and not replace:
            raise ValueError("duplicate vmid %d" % g.vmid)
        if old is not None:
            if not old.deleted:
                old.deleted = True
                old.deleted_t = self.clock.now()
            self.lineage.setdefault(g.vmid, []).append(old)
        self.guests[g.vmid] = g
        self.vmid_gen[vmid] = gen
        if g.unknown:
            self._unknown_guests.add(g.vmid)
        if g.pool and g.pool not in self.pools:
            self.pools.append(g.pool)
        for ev in spec.get("events") or []:
            self.schedule(g.vmid, ev)
        self._sorted = None
        self.touch()
        return g

    def live_guests(self):
        if self._sorted is None:
            # Cluster.pm: "for my $vmid (sort keys %$idlist)" - a string sort
            self._sorted = [g for _, g in sorted((str(v), g) for v, g in self.guests.items())
                            if not g.deleted]
        return self._sorted

    # -- events
    def schedule(self, vmid, ev, at=None):
        t = float(ev.get("at", 0.0) if at is None else at)
        heapq.heappush(self._events, (t, next(self._evseq), int(vmid), dict(ev)))

    def at(self, t, fn):
        """Run fn(t) when sim time reaches t (from sync())."""
        tm = Timer(float(t), fn)
        heapq.heappush(self._timers, (tm.t, next(self._evseq), tm))
        return tm

    def sync(self):
        """Apply due events and task timers in sim-time order; return the
        current sim time. Call with lock held."""
        now = self.clock.now()
        inf = math.inf
        while True:
            te = self._events[0][0] if self._events else inf
            tt = self._timers[0][0] if self._timers else inf
            if min(te, tt) > now:
                break
            if te <= tt:
                t, _, vmid, ev = heapq.heappop(self._events)
                g = self.guests.get(vmid)
                if g is None or g.deleted:
                    continue
                self.apply_event(g, ev, t)
            else:
                t, _, tm = heapq.heappop(self._timers)
                if tm.alive:
                    tm.alive = False
                    try:
                        tm.fn(t)
                    except Exception:          # a bug in a worker must not wedge the sim
                        import sys
                        import traceback
                        traceback.print_exc(file=sys.stderr)
        return now

    # -- history of significant events (GET /_sim/history)
    def record(self, t, event, g=None, **kw):
        e = {"t": round(t, 3), "epoch": int(self.clock.epoch(t)), "event": event}
        if g is not None:
            e.update(vmid=g.vmid, type=g.type, node=g.node)
        e.update(kw)
        self.history.append(e)
        return e

    # -- lookups
    def local_guest(self, gtype, node, vmid):
        """The guest whose config file is nodes/<node>/<type>/<vmid>.conf."""
        g = self.guests.get(int(vmid))
        if g is None or g.deleted or g.type != gtype or g.node != node:
            return None
        return g

    def live_guest(self, vmid):
        g = self.guests.get(int(vmid))
        return None if g is None or g.deleted else g

    def storage(self, node, name):
        for st in self.storages:
            if st.storage == name and st.node == node:
                return st
        return None

    def storage_defined(self, name):
        return any(st.storage == name for st in self.storages)

    def storage_any(self, name):
        for st in self.storages:
            if st.storage == name:
                return st
        return None

    def distinct_stores(self):
        seen = set()
        for st in self.storages:
            if id(st.data) in seen:
                continue
            seen.add(id(st.data))
            yield st

    def backups_of(self, vmid):
        out = []
        for st in self.distinct_stores():
            out.extend(st.volume_list(vmid=vmid))
        return out

    def find_volume(self, volid):
        """(storage-instance-independent) Volume or None."""
        sid, _, volname = volid.partition(":")
        for st in self.distinct_stores():
            if st.storage == sid and volname in st.volumes:
                return st.volumes[volname]
        return None

    def duration(self, wtype):
        return float(self.durations.get(wtype, 1.0))

    def remove_guest(self, g, t):
        g.stop(t)
        g.deleted = True
        g.deleted_t = t
        self._sorted = None
        self.touch()

    def add_backup(self, storage, spec, node=None):
        """A pre-existing backup archive (scenario storages[].backups or
        POST /_sim/storages {"add_backup": ...})."""
        vmid = int(spec["vmid"])
        g = self.live_guest(vmid)
        node = node or spec.get("node") or (g.node if g else self.node_names[0])
        st = self.storage(node, storage)
        if st is None:
            raise ValueError("no storage %r on node %r" % (storage, node))
        gtype = spec.get("type") or (g.type if g else "qemu")
        if "ctime" in spec:
            epoch = int(spec["ctime"])
        else:
            epoch = int(self.clock.epoch(float(spec.get("time", -86400))))
        volname, fmt, _target = st.archive_volname(gtype, vmid, epoch, spec.get("compress", "zstd"),
                                                   self.utc_offset)
        if g is not None and g.type == gtype:
            plan = backup_plan(self, g)
            text = spec.get("config") or plan["text"]
            meta = archive_meta(g, None if spec.get("config") else plan)
            used = plan["used"]
        else:
            text = spec.get("config") or ""
            meta = {"type": gtype, "vmid": vmid, "maxdisk": 8 * GIB, "disk_used": 2 * GIB}
            used = meta["disk_used"]
        size = int(spec.get("size", max(1, used) * 0.4))
        vol = Volume(storage, volname, vmid, gtype, fmt, size, epoch, text, meta)
        vol.protected = 1 if spec.get("protected") else 0
        vol.notes = spec.get("notes")
        st.add_volume(vol)
        self.touch()
        return vol

    def control_event(self, ev, now, default_vmid=None):
        """POST /_sim/event (and after_task fault events): apply now or,
        with a future `at`, schedule. Returns the guest concerned or None.
        Call with the lock held."""
        if not isinstance(ev, dict) or "action" not in ev:
            raise ValueError("event needs an 'action'")
        if ev["action"] == "create":
            spec = dict(ev.get("guest") or {})
            if "vmid" not in spec:
                vmid = ev.get("vmid", default_vmid)
                if vmid is None:
                    raise ValueError("create needs guest.vmid")
                spec["vmid"] = int(vmid)
            return self.add_guest(spec, replace=bool(ev.get("replace")))
        vmid = ev.get("vmid", default_vmid)
        if vmid is None:
            raise ValueError("event needs a 'vmid'")
        vmid = int(vmid)
        g = self.guests.get(vmid)
        if g is None or g.deleted:
            raise ValueError("no such guest %d" % vmid)
        at = ev.get("at")
        if at is not None and float(at) > now:
            self.schedule(vmid, ev)
        else:
            self.apply_event(g, ev, now)
        return g

    def apply_event(self, g, ev, t):
        action = ev.get("action")
        if action == "stop":
            g.stop(t)
        elif action == "start":
            g.start(t)
            g.runstate = "running"
        elif action == "restart":
            g.stop(t)
            g.start(t)
            g.runstate = "running"
        elif action == "migrate":
            node = ev.get("node") or ev.get("value")
            if not node:
                raise ValueError("migrate needs 'node'")
            g.node = node
            if g.running_now():
                g.stop(t)
                g.start(t)
        elif action == "unknown":
            dur = float(ev.get("duration", 1e18))
            g.unknown.append([t, t + dur])
            self._unknown_guests.add(g.vmid)
        elif action == "freeze":
            dur = float(ev.get("duration", 300.0))
            g.frozen = (t, t + dur, math.floor(t / self.period))
        elif action == "lock":
            g.lock = ev.get("value", "backup")
        elif action == "unlock":
            g.lock = None
        elif action == "set" and ev.get("field") == "workload":
            # from now on: the past (its RRD rows, its counters) keeps
            # the workload it had
            g.wl = Piecewise([(t, g.wl)], make_workload(ev.get("value")))
            g.wl_kind = g.wl.kind
        elif action == "set":
            self._set_field(g, ev.get("field"), ev.get("value"))
        elif action in ("pause", "resume"):
            g.runstate = "paused" if action == "pause" else "running"
        elif action == "delete":
            g.stop(t)
            g.deleted = True
            g.deleted_t = t
            self._sorted = None
        else:
            raise ValueError("unknown event action %r" % action)
        self.touch()

    def _set_field(self, g, field, value):
        if field == "ha":
            g.hastate = ("started" if value is True else (value or None)) if value else None
            g.ha_state = g.hastate
        elif field in ("tags", "pool", "lock", "description"):
            setattr(g, field, value or None)
            if field == "pool" and value and value not in self.pools:
                self.pools.append(value)
        elif field in ("template", "protection"):
            setattr(g, field, 1 if value else 0)
        elif field == "name":
            g.name = value
        elif field == "status":
            if value == "stopped":
                g.stop(self.clock.now())
            else:
                g.runstate = value
        elif field in ("maxmem", "maxdisk", "disk"):
            setattr(g, "disk_used" if field == "disk" else field, int(value))
        elif field == "maxcpu":
            g.maxcpu = value
        elif field == "workload":
            g.wl = make_workload(value)
            g.wl_kind = g.wl.kind
        elif field == "config":
            # {"key": "value" | null}: config keys as the file shows them
            if not isinstance(value, dict):
                raise ValueError("field 'config' needs an object of config keys")
            for k, v in value.items():
                g.set_config_key(k, None if v is None else str(v))
        elif field == "pending":
            # the whole [PENDING] section ({} or null clears it)
            g.pending = normalize_pending(value)
        elif field == "volume_used":
            g.volume_used = {k: int(v) for k, v in (value or {}).items()}
        else:
            raise ValueError("cannot set field %r" % field)

    # -- tasks
    def start_task(self, node, wtype, wid, user, t=None, req=None, vmid=None):
        """A new worker task. With `req`, a task fault (task_fail /
        task_hang) matching the request and task type is taken for it."""
        if t is None:
            t = self.clock.now()
        task = Task(self, node, wtype, wid, user, t)
        task.vmid = vmid if vmid is not None else (int(wid) if str(wid or "").isdigit() else None)
        self.tasks[task.upid] = task
        self.task_order.append(task)
        if req is not None:
            task.req = (req.method, req.path)
        if self.faults is not None and req is not None:
            task.fault = self.faults.take_task(req.method, req.path, wtype, task.vmid, t)
        return task

    def task_finished(self, task, t):
        if self.faults is not None and task.req is not None and \
                task.exitstatus is not None and (task.exitstatus == "OK" or
                                                 task.exitstatus.startswith("WARNINGS: ")):
            f = self.faults.take_task(task.req[0], task.req[1], task.type, task.vmid, t,
                                      kinds=AFTER_TASK_KINDS)
            if f is not None:
                self.after_task_events(f, task, t)
        if task.type == "vzdump" and self.vzdump_holder.get(task.node) is task:
            self.vzdump_holder.pop(task.node, None)
            waiters = self.vzdump_waiters.get(task.node) or []
            if waiters:
                cb = waiters.pop(0)
                cb(t)
        self.touch()

    def after_task_events(self, fault, task, t):
        """after_task fault: apply its events now, in order (runs inside
        Task.finish, under the model lock)."""
        for ev in fault.spec.get("events") or []:
            try:
                self.control_event(dict(ev), t, default_vmid=task.vmid)
            except (ValueError, KeyError, TypeError) as e:
                fault.errors.append("%s: %s" % (ev.get("action"), e))
        self.touch()

    # -- /cluster/resources
    #
    # 50,000 guests must not make the simulator the bottleneck of a load
    # test, so the answer is rendered as JSON text, not as dicts the server
    # would encode: every guest keeps its rendered entry (Guest.res_frag)
    # keyed by everything it shows except the sample, and for a running
    # guest a %-template with the static fields already encoded, so a new
    # sample costs the workload arithmetic and one string format per guest,
    # and a change to one guest re-renders that guest only. The text is
    # exactly what json.dumps(separators=(",", ":"), ensure_ascii=False)
    # makes of the entries (JSON::XS canonical=0 order fixed per type).
    def _unknown_key(self, now):
        if not self._unknown_guests:
            return ()
        return tuple(sorted(v for v in self._unknown_guests
                            if v in self.guests and self.guests[v].is_unknown(now)))

    def resources(self, rtype, now):
        """(cache key, body) for GET /cluster/resources (type None|vm|storage|node|pool):
        body = the whole response document {"data":[...]} as UTF-8 JSON. The
        key changes whenever the content may change (new sample, any live
        change, unknown windows opening/closing)."""
        k = math.floor(now / self.period)
        ukey = self._unknown_key(now)
        ck = ("res", rtype, k, self.gen, ukey)
        hit = self._cache.get(ck)
        if hit is not None:
            return ck, hit
        if len(self._cache) > 6:
            # old samples and generations are not asked for again; at
            # 50,000 guests each answer is 16 MB
            self._cache.clear()
        ab = self._ahead_body
        if rtype == "vm" and ab is not None and ab[:3] == (k, self.gen, ukey):
            self._cache[ck] = ab[3]
            return ck, ab[3]
        self._start_render_ahead()
        guests = self.live_guests()
        frags = self._vm_fragments(guests, k, set(ukey))
        parts = []
        if rtype is None or rtype in ("pool", "node"):
            pools_agg, node_agg = self._aggregates(guests)
        if rtype is None or rtype == "pool":
            for p in self.pools:
                e = {"id": "/pool/%s" % p, "pool": p, "type": "pool"}
                e.update(pools_agg.get(p, {}))
                parts.append(_json_text(e))
        if rtype is None or rtype == "vm":
            parts.extend(frags)
        if rtype is None or rtype == "node":
            parts.extend(_json_text(e) for e in self._node_entries(k, node_agg))
        if rtype is None or rtype == "storage":
            parts.extend(_json_text(s.entry()) for s in self.storages)
        body = ('{"data":[' + ",".join(parts) + "]}").encode("utf-8")
        self._cache[ck] = body
        return ck, body

    def _vm_fragments(self, guests, k, unknown):
        """The rendered guest entries of sample k, in the order of guests."""
        ck = ("vm", k, self.gen, tuple(sorted(unknown)))
        hit = self._cache.get(ck)
        if hit is not None:
            return hit
        tk = k * self.period
        period = self.period
        pve9 = self.rrd_format == "pve-vm-9.0"
        pn_memo = self._pn_memo
        if len(pn_memo) > 200000:
            pn_memo.clear()
        out = []
        append = out.append
        for g in guests:
            unk = g.vmid in unknown
            skey = _state_key(g, unk, pve9)
            kk, tkk = k, tk
            fr = g.frozen
            if fr is not None and fr[0] <= tk < fr[1]:
                kk = fr[2]
                tkk = kk * period
            f = g.res_frag
            if f is not None:
                if f.skey == skey and (f.static or f.k == kk):
                    append(f.text)
                    continue
                a = f.ahead
                if a is not None and a[0] == kk and a[1] == skey:
                    f.skey, f.k, f.static, f.text, f.stats = skey, kk, a[2], a[3], a[4]
                    f.ahead = None
                    append(f.text)
                    continue
            else:
                f = g.res_frag = _ResFrag(skey)
            f.static, f.text, f.stats = _render_entry(g, f, skey, unk, tkk, period, pve9, pn_memo)
            f.skey, f.k = skey, kk
            append(f.text)
        self._cache[ck] = out
        return out

    # Render-ahead: with a large fleet and samples seconds apart (real
    # pvestatd: 10 s), a thread renders the next sample's entries shortly
    # before it starts, so the first request of each sample finds them
    # ready instead of waiting for 50,000 renders. It works without the
    # model lock (a request must never wait for it); whatever changes in
    # the meantime shows up as a different state key and that guest is
    # rendered on demand as before, so the answer is the same either way.
    AHEAD_MIN_GUESTS = 2000
    AHEAD_MIN_SAMPLE_WALL = 1.0      # wall seconds per sample

    def _start_render_ahead(self):
        if self._ahead_thread is not None or len(self.guests) < self.AHEAD_MIN_GUESTS:
            return
        if self.clock.speed <= 0 or self.period / self.clock.speed < self.AHEAD_MIN_SAMPLE_WALL:
            return
        self._ahead_thread = threading.Thread(target=self._render_ahead_loop, name="render-ahead",
                                              daemon=True)
        self._ahead_thread.start()

    def _render_ahead_loop(self):
        period, clock = self.period, self.clock
        lead = min(period / 2.0, 3.0 * clock.speed)   # sim seconds before the sample
        done = None
        while True:
            now = clock.now()
            k_next = math.floor(now / period) + 1
            start = k_next * period - lead
            if k_next == done or now < start:
                wait = (k_next * period - now) if k_next == done else (start - now)
                time.sleep(min(max(wait / clock.speed, 0.01), 1.0))
                continue
            try:
                self._render_ahead(k_next)
            except Exception:                  # never take the sim down
                import sys
                import traceback
                traceback.print_exc(file=sys.stderr)
            done = k_next

    def _render_ahead(self, k):
        tk = k * self.period
        period = self.period
        pve9 = self.rrd_format == "pve-vm-9.0"
        pn_memo = self._pn_memo
        with self.lock:
            gen = self.gen
            guests = list(self.live_guests())
            ukey = self._unknown_key(tk)
        unknown = set(ukey)
        texts = []
        for g in guests:
            unk = g.vmid in unknown
            skey = _state_key(g, unk, pve9)
            f = g.res_frag
            if f is None:
                texts = None                   # never rendered: not asked for
                continue
            if f.skey == skey and f.static:
                text = f.text                  # no change expected
            else:
                static, text, stats = _render_entry(g, f, skey, unk, tk, period, pve9, pn_memo)
                f.ahead = (k, skey, static, text, stats)
            if texts is not None:
                texts.append(text)
        if texts is not None:
            # The whole type=vm answer, if nothing changes before it is
            # asked for (same gen, same unknown windows).
            self._ahead_body = (k, gen, ukey, ('{"data":[' + ",".join(texts) + "]}").encode("utf-8"))

    def _aggregates(self, guests):
        """Pool and node sums over the running guests of the last rendered
        sample (pools: uptime/mem/maxmem/cpu/maxcpu like Cluster.pm's pool
        entries; nodes: cpu share and memory used by guests), in guest
        order so float sums come out the same every time."""
        pools = {}
        nodes = {}
        for g in guests:
            f = g.res_frag
            if f is None or f.stats is None:
                continue
            cpu, mem, uptime = f.stats
            na = nodes.get(g.node)
            if na is None:
                na = nodes[g.node] = [0.0, 0]
            na[0] += cpu * float(g.maxcpu)
            na[1] += mem
            if g.pool and uptime:
                pe = pools.get(g.pool)
                if pe is None:
                    pe = pools[g.pool] = {}
                if not pe.get("uptime") or uptime > pe["uptime"]:
                    pe["uptime"] = uptime
                pe["mem"] = pe.get("mem", 0) + mem
                pe["maxmem"] = pe.get("maxmem", 0) + g.maxmem
                omax = pe.get("maxcpu", 0)
                pe["cpu"] = perl_num((pe.get("cpu", 0) * omax + cpu * float(g.maxcpu))
                                     / (omax + float(g.maxcpu))) if (omax + float(g.maxcpu)) else 0
                pe["maxcpu"] = perl_num(omax + float(g.maxcpu))
        return pools, nodes

    def _node_entries(self, k, node_agg):
        tk = k * self.period
        res = []
        for n in self.nodes.values():
            e = {"id": "node/%s" % n.name, "node": n.name, "type": "node", "status": "unknown"}
            if n.online:
                cpu_used, mem = node_agg.get(n.name, (0.0, 0))
                e["uptime"] = int(n.uptime0 + tk)
                e["cpu"] = perl_num(min(1.0, 0.01 + cpu_used / n.maxcpu))
                e["mem"] = n.base_mem + mem
                e["disk"] = n.disk
                e["status"] = "online"
            else:
                e["status"] = "offline"
            e["level"] = n.level
            e["maxcpu"] = n.maxcpu
            e["maxmem"] = n.maxmem
            e["maxdisk"] = n.maxdisk
            if n.cgroup_mode is not None:
                e["cgroup-mode"] = int(n.cgroup_mode)
            res.append(e)
        return res

    # -- per-guest live status (status/current)
    def find_guest(self, gtype, node, vmid):
        """The guest, or a SimError like load_config() dies with."""
        g = self.guests.get(int(vmid))
        if g is None or g.deleted or g.type != gtype or g.node != node:
            raise SimError("Configuration file '%s' does not exist\n" % config_path(gtype, node, vmid))
        return g

    def guest_status(self, g, now):
        k = math.floor(now / self.period)
        tk = k * self.period
        seg_now = g.segments[-1] if g.running_now() else None
        cpus = perl_num(g.maxcpu)
        d = {"status": "stopped", "vmid": g.vmid, "name": g.display_name(), "cpus": cpus,
             "maxmem": g.maxmem, "maxdisk": g.maxdisk, "disk": 0, "mem": 0, "cpu": 0,
             "uptime": 0, "netin": 0, "netout": 0, "diskread": 0, "diskwrite": 0}
        if g.type == "qemu":
            d["memhost"] = 0
        else:
            d["maxswap"] = g.maxswap
            d["swap"] = 0
        if seg_now is not None:
            ts = seg_now[0]
            wl = g.wl
            mem = min(g.maxmem, wl.mem(now))
            n = wl.counters(ts, now)
            cpu = 0 if ts > tk - self.period else perl_num(wl.cpu_avg(tk - self.period, tk))
            d.update(status="running", mem=mem, cpu=cpu, uptime=int(now - ts), netin=n[0],
                     netout=n[1], diskread=n[2], diskwrite=n[3], pid=g.pid_for(seg_now))
            for p in ("pressurecpusome", "pressureiosome", "pressureiofull",
                      "pressurememorysome", "pressurememoryfull"):
                d[p] = 0
            if g.type == "qemu":
                d["memhost"] = mem + g.maxmem // 50 + 30 * MIB
                d["pressurecpufull"] = 0
                d["qmpstatus"] = g.runstate
                d["running-machine"] = "pc-i440fx-9.2+pve1"
                d["running-qemu"] = "9.2.0"
                d["balloon"] = g.maxmem
                d["freemem"] = max(0, g.maxmem - mem)
                d["ballooninfo"] = {"actual": g.maxmem, "max_mem": g.maxmem,
                                    "total_mem": g.maxmem - 80 * MIB,
                                    "free_mem": max(0, g.maxmem - 80 * MIB - mem),
                                    "last_update": int(self.clock.epoch(now)),
                                    "major_page_faults": 0, "minor_page_faults": 0,
                                    "mem_swapped_in": 0, "mem_swapped_out": 0}
                d["nics"] = {"tap%di0" % g.vmid: {"netin": n[0], "netout": n[1]}}
                d["proxmox-support"] = {"backup-max-workers": True, "pbs-dirty-bitmap": True,
                                        "pbs-dirty-bitmap-migration": True,
                                        "pbs-dirty-bitmap-savevm": True,
                                        "pbs-library-version": "1.5.2 (UNKNOWN)",
                                        "pbs-masterkey": True, "query-bitmap-info": True}
            else:
                d["disk"] = g.disk_used
        if g.type == "qemu":
            d["agent"] = 1
        if g.template:
            d["template"] = 1
        if g.lock:
            d["lock"] = g.lock
        if g.tags is not None:
            d["tags"] = g.tags
        d["ha"] = {"managed": 1, "state": g.hastate} if g.hastate else {"managed": 0}
        return d

    def guest_view(self, g, now):
        """Control-API view (GET /_sim/guests)."""
        running = g.running_now()
        return {"vmid": g.vmid, "type": g.type, "node": g.node, "name": g.display_name(),
                "status": (g.runstate if g.type == "qemu" else "running") if running else "stopped",
                "uptime": int(now - g.segments[-1][0]) if running else 0,
                "unknown": g.is_unknown(now), "lock": g.lock, "tags": g.tags, "pool": g.pool,
                "template": g.template, "hastate": g.hastate, "protection": g.protection,
                "workload": g.wl_kind, "maxcpu": g.maxcpu, "maxmem": g.maxmem,
                "maxdisk": g.maxdisk, "digest": g.digest(),
                "ha_state": g.ha_state, "parent": g.parent, "snapshots": list(g.snap_order),
                "acpi": g.acpi, "disk_storage": g.disk_storage, "empty": g.empty,
                "generation": g.gen, "pending": dict(g.pending)}
