"""Storages and backup volumes (pve-storage semantics).

A Storage is one storage as seen on one node. Shared storages (shared=1)
have one StoreData (volumes + used bytes) behind every node instance, so a
backup written on pve1 is listed on pve2 as well. Node-local storages have
one StoreData per node.

Volumes are backup archives only (guest disk images are not modelled as
volumes). Each Volume carries what `vzdump` put into the archive: the guest
config text (for extractconfig and restore) and some metadata the restore
needs (type, disk sizes, workload of the backed-up guest).

Faithful bits (pve-storage src/PVE/Storage.pm, Storage/Plugin.pm,
PBSPlugin.pm, API2/Storage/*.pm):
  * volid naming: '<storage>:backup/vzdump-<qemu|lxc>-<vmid>-YYYY_MM_DD-HH_MM_SS.<vma|tar>[.zst|.gz|.lzo]'
    (local time of the backup start) on file storages,
    '<storage>:backup/<vm|ct>/<vmid>/<YYYY-MM-DDTHH:MM:SSZ>' on PBS
  * volume_list() sorts by volid (case-insensitive); items carry volid,
    vmid, size, ctime, format, content 'backup', subtype, notes (first
    line, only when set), protected (only when set)
  * prune_mark_backup_group(): keep-last/hourly/daily/weekly/monthly/yearly
    with protected backups excluded from selection and never removed
  * storage_info(): type, content (sorted), shared, active, enabled,
    total, used, avail
"""

import time

GIB = 1024 ** 3

FILE_TYPES = {"dir", "nfs", "cifs", "glusterfs", "btrfs", "cephfs"}
# storage types whose volumes can snapshot regardless of the image format
SNAP_TYPES = {"lvmthin", "zfspool", "rbd", "btrfs", "zfs"}
# qemu image formats a file storage can snapshot
SNAP_FORMATS = {"qcow2"}

# compress option -> (extension, ratio of the guest data written)
COMPRESSORS = {
    "0": (None, 1.0),
    "1": ("lzo", 0.55),
    "lzo": ("lzo", 0.55),
    "gzip": ("gz", 0.45),
    "zstd": ("zst", 0.40),
}

PRUNE_KEYS = ("keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly",
              "keep-yearly")


def format_size(size):
    """PVE::VZDump::format_size."""
    kb = size / 1024.0
    if kb < 1024:
        return "%dKB" % int(kb)
    mb = size / (1024.0 * 1024)
    if mb < 1024:
        return "%dMB" % int(mb)
    gb = mb / 1024
    if gb < 1024:
        return "%.2fGB" % gb
    return "%.2fTB" % (gb / 1024)


def parse_prune(text):
    """'keep-last=3,keep-daily=7' (or a dict) -> dict of ints. Empty or
    None -> {'keep-all': 1} (the vzdump schema default)."""
    if isinstance(text, dict):
        res = {k: int(v) for k, v in text.items()}
    else:
        res = {}
        for part in str(text or "").replace(" ", ",").split(","):
            if not part:
                continue
            k, _, v = part.partition("=")
            res[k.strip()] = int(v or 0)
    if not res:
        res = {"keep-all": 1}
    return res


def print_prune(keep):
    return ", ".join("%s=%s" % (k, keep[k]) for k in sorted(keep))


class Volume:
    __slots__ = ("volid", "storage", "volname", "vmid", "subtype", "format", "size", "ctime",
                 "notes", "protected", "config", "meta")

    def __init__(self, storage, volname, vmid, subtype, fmt, size, ctime, config="", meta=None):
        self.storage = storage
        self.volname = volname
        self.volid = "%s:%s" % (storage, volname)
        self.vmid = int(vmid)
        self.subtype = subtype
        self.format = fmt
        self.size = int(size)
        self.ctime = int(ctime)
        self.notes = None
        self.protected = 0
        self.config = config
        self.meta = dict(meta or {})

    def list_entry(self):
        """One item of GET .../storage/{storage}/content."""
        e = {"content": "backup", "ctime": self.ctime, "format": self.format, "size": self.size,
             "subtype": self.subtype, "vmid": self.vmid, "volid": self.volid}
        if self.notes:
            e["notes"] = self.notes.split("\n", 1)[0]
        if self.protected:
            e["protected"] = 1
        return e

    def view(self):
        return {"volid": self.volid, "storage": self.storage, "vmid": self.vmid,
                "subtype": self.subtype, "format": self.format, "size": self.size,
                "ctime": self.ctime, "notes": self.notes, "protected": self.protected}


class StoreData:
    """What a storage holds: shared between the node instances of a shared
    storage."""
    __slots__ = ("disk", "volumes")

    def __init__(self, disk):
        self.disk = int(disk)
        self.volumes = {}


class Storage:
    def __init__(self, spec, node, data=None):
        self.storage = spec["storage"]
        self.node = node
        self.plugintype = spec.get("plugintype") or spec.get("type") or "dir"
        self.content = spec.get("content", "images,rootdir")
        self.maxdisk = int(spec.get("maxdisk", 100 * GIB))
        self.shared = 1 if spec.get("shared") else 0
        self.status = spec.get("status", "available")
        self.enabled = 0 if spec.get("disable") else 1
        self.prune = spec.get("prune-backups")
        mp = spec.get("max-protected-backups")
        self.max_protected = None if mp is None else int(mp)
        self.snapshot = spec.get("snapshot")          # None: by type/format
        self.path = spec.get("path") or ("/var/lib/vz" if self.storage == "local"
                                         else "/mnt/pve/%s" % self.storage)
        self.datastore = spec.get("datastore", "store1")
        self.server = spec.get("server", "10.0.0.50")
        if data is None:
            disk = spec.get("disk")
            if disk is None:
                disk = self.maxdisk - int(spec["avail"]) if spec.get("avail") is not None \
                    else 10 * GIB
            data = StoreData(disk)
        self.data = data

    # -- usage (shared for shared storages)
    @property
    def disk(self):
        return self.data.disk

    @disk.setter
    def disk(self, value):
        self.data.disk = max(0, int(value))

    @property
    def volumes(self):
        return self.data.volumes

    def avail(self):
        return max(0, self.maxdisk - self.disk)

    def contents(self):
        return {c for c in str(self.content).split(",") if c}

    def has_content(self, c):
        return c in self.contents()

    def is_pbs(self):
        return self.plugintype == "pbs"

    def is_file(self):
        return self.plugintype in FILE_TYPES

    def active(self):
        return self.status == "available"

    def can_snapshot(self, gtype, fmt):
        if self.snapshot is not None:
            return bool(self.snapshot)
        if self.plugintype in SNAP_TYPES:
            return True
        if self.is_file() and gtype == "qemu":
            return fmt in SNAP_FORMATS
        return False

    def default_format(self):
        return "qcow2" if self.is_file() else "raw"

    def dumpdir(self):
        return "%s/dump" % self.path

    # -- views
    def entry(self):
        """/cluster/resources entry (pvestatd broadcast)."""
        e = {"content": self.content, "id": "storage/%s/%s" % (self.node, self.storage),
             "node": self.node, "plugintype": self.plugintype, "shared": self.shared,
             "status": "unknown", "storage": self.storage, "type": "storage"}
        if self.status == "available":
            e["maxdisk"] = self.maxdisk
            e["disk"] = self.disk
            e["status"] = "available"
        return e

    def info(self, avail_override=None):
        """PVE::Storage::storage_info() entry (GET .../storage, .../status)."""
        d = {"content": ",".join(sorted(self.contents())), "type": self.plugintype,
             "shared": self.shared, "enabled": self.enabled, "active": 0}
        if self.active() and self.enabled:
            avail = self.avail() if avail_override is None else avail_override
            d["active"] = 1
            d["total"] = self.maxdisk
            d["used"] = self.maxdisk - avail
            d["avail"] = avail
        return d

    def view(self):
        return {"storage": self.storage, "node": self.node, "type": self.plugintype,
                "content": self.content, "shared": self.shared, "total": self.maxdisk,
                "used": self.disk, "avail": self.avail(), "status": self.status,
                "prune-backups": self.prune, "volumes": [v.view() for v in self.volume_list()]}

    # -- volumes
    def volume_list(self, vmid=None, content=None):
        if content and content != "backup":
            return []
        vols = [v for v in self.volumes.values() if vmid is None or v.vmid == int(vmid)]
        return sorted(vols, key=lambda v: v.volid.lower())

    def volume_path(self, vol):
        if self.is_pbs():
            return "pbs://%s/%s/%s" % (self.server, self.datastore, vol.volname[len("backup/"):])
        return "%s/%s" % (self.dumpdir(), vol.volname[len("backup/"):])

    def archive_volname(self, gtype, vmid, epoch, compress, utc_offset):
        """(volname, format, target shown in the log)."""
        if self.is_pbs():
            group = "%s/%d" % ("vm" if gtype == "qemu" else "ct", vmid)
            snap = "%s/%s" % (group, time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch)))
            return "backup/" + snap, "pbs-" + ("vm" if gtype == "qemu" else "ct"), snap
        ext = ".vma" if gtype == "qemu" else ".tar"
        cext = COMPRESSORS.get(str(compress or "0"), (None, 1.0))[0]
        if cext:
            ext += "." + cext
        base = "vzdump-%s-%d%s" % (gtype, vmid,
                                   time.strftime("-%Y_%m_%d-%H_%M_%S", time.gmtime(epoch + utc_offset)))
        return "backup/" + base + ext, ext[1:], "%s/%s%s" % (self.dumpdir(), base, ext)

    def add_volume(self, vol):
        old = self.volumes.get(vol.volname)
        if old is not None:
            self.disk -= old.size
        self.volumes[vol.volname] = vol
        self.disk += vol.size

    def remove_volume(self, vol):
        if self.volumes.pop(vol.volname, None) is not None:
            self.disk -= vol.size


def prune_mark(backups, keep, utc_offset=0):
    """PVE::Storage::prune_mark_backup_group: sets b['mark'] to keep /
    remove / protected on dicts with 'ctime' and 'protected'."""
    for b in backups:
        b["mark"] = "protected" if b.get("protected") else None
    positive = [k for k in PRUNE_KEYS if keep.get(k, 0) > 0]
    if keep.get("keep-all") or not positive:
        for b in backups:
            if b["mark"] != "protected":
                b["mark"] = "keep"
        return backups
    lst = sorted(backups, key=lambda b: -b["ctime"])

    def lt(fmt):
        return lambda ctime: time.strftime(fmt, time.gmtime(ctime + utc_offset))

    idf = {"keep-last": lambda c: c, "keep-hourly": lt("%Y/%m/%d/%H"),
           "keep-daily": lt("%Y/%m/%d"), "keep-weekly": lt("%G/%V"),
           "keep-monthly": lt("%Y/%m"), "keep-yearly": lt("%Y")}
    for k in PRUNE_KEYS:
        count = keep.get(k, 0)
        if not count:
            continue
        f = idf[k]
        already = {f(b["ctime"]) for b in lst if b["mark"] == "keep"}
        newly = set()
        for b in lst:
            i = f(b["ctime"])
            if b["mark"] is not None or i in already:
                continue
            if i not in newly:
                if len(newly) >= count:
                    break
                newly.add(i)
                b["mark"] = "keep"
            else:
                b["mark"] = "remove"
    for b in lst:
        if b["mark"] is None:
            b["mark"] = "remove"
    return backups
