"""Guest config files and their volumes, as qemu-server and pve-container
read and write them. Pure functions on config dicts / text; model.py and
ops.py use them for vzdump, destroy, restore and pending changes.

Upstream sources followed:
  pve-common     src/PVE/JSONSchema.pm   parse_property_string,
                                         print_property_string, parse_size,
                                         format_size, parse_boolean
  pve-guest-common src/PVE/AbstractConfig.pm  foreach_volume(_full),
                                         foreach_unused_volume, add_unused_volume,
                                         parse/print_pending_delete,
                                         load_current_config, cleanup_pending
  qemu-server    src/PVE/QemuServer/Drive.pm  valid_drive_names, parse_drive,
                                         print_drive, drive_is_cdrom,
                                         drive_is_cloudinit
                 src/PVE/QemuConfig.pm   parse_volume, get_backup_volumes
                 src/PVE/QemuServer.pm   parse_vm_config, write_vm_config,
                                         restore_update_config_line
  pve-container  src/PVE/LXC/Config.pm   parse_volume, print_ct_mountpoint,
                                         classify_mountpoint,
                                         mountpoint_backup_enabled,
                                         get_backup_volumes, parse_pct_config,
                                         write_pct_config
  pve-storage    parse_volname of the plugins (volume owner)
"""

import re

# -- volume keys -------------------------------------------------------------

MAX_UNUSED = 256          # qemu MAX_UNUSED_DISKS, lxc MAX_UNUSED_DISKS

# Drive.pm valid_drive_names(): the order foreach_volume walks
QEMU_DRIVE_KEYS = tuple(["ide%d" % i for i in range(4)] + ["scsi%d" % i for i in range(31)]
                        + ["virtio%d" % i for i in range(16)] + ["sata%d" % i for i in range(6)]
                        + ["efidisk0", "tpmstate0"])
QEMU_DRIVE_SET = frozenset(QEMU_DRIVE_KEYS)
LXC_MP_KEYS = tuple(["rootfs"] + ["mp%d" % i for i in range(256)])
LXC_MP_SET = frozenset(LXC_MP_KEYS)
UNUSED_KEYS = tuple("unused%d" % i for i in range(MAX_UNUSED))
UNUSED_SET = frozenset(UNUSED_KEYS)

# boolean properties of the drive / mount point formats (parse_boolean
# normalises them to 0/1; print_property_string prints the normalised value)
QEMU_BOOL_PROPS = frozenset({"backup", "detect_zeroes", "iothread", "replicate", "ro", "scsiblock",
                             "shared", "snapshot", "ssd", "pre-enrolled-keys"})
LXC_BOOL_PROPS = frozenset({"acl", "backup", "keepattrs", "quota", "replicate", "ro", "shared"})

QEMU_FORMATS = ("raw", "qcow2", "vmdk", "cloop", "cow", "qed", "vpc")


def is_volume_key(gtype, key, with_unused=True):
    if gtype == "qemu":
        return key in QEMU_DRIVE_SET or (with_unused and key in UNUSED_SET) or key == "vmstate"
    return key in LXC_MP_SET or (with_unused and key in UNUSED_SET)


# Numeric config options (integer / boolean / number in the config schema;
# the PUT parameters of schema/apidata-subset-pve9.1.json). The sim keeps
# them as JSON numbers, like its generated configs (cores, numa, sockets).
NUMERIC_KEYS = {
    "qemu": frozenset({"acpi", "allow-ksm", "autostart", "balloon", "ciupgrade", "cores",
                       "cpulimit", "cpuunits", "freeze", "keephugepages", "kvm", "localtime",
                       "migrate_downtime", "migrate_speed", "numa", "onboot", "protection",
                       "reboot", "shares", "smp", "sockets", "tablet", "tdf", "template", "vcpus"}),
    "lxc": frozenset({"console", "cores", "cpulimit", "cpuunits", "debug", "memory", "onboot",
                      "protection", "swap", "template", "tty", "unprivileged"}),
}


def typed_value(gtype, key, value):
    """A config value as the sim's configs carry it: numeric options as
    numbers, everything else as the string the file holds."""
    if value is None or key not in NUMERIC_KEYS[gtype] or not isinstance(value, str):
        return value
    if re.match(r"^-?\d+$", value):
        return int(value)
    if re.match(r"^-?\d*\.\d+$", value):
        return float(value)
    return value


# -- JSONSchema helpers ------------------------------------------------------

def parse_boolean(v):
    s = str(v)
    if re.match(r"^(1|on|yes|true)$", s, re.I):
        return 1
    if re.match(r"^(0|off|no|false)$", s, re.I):
        return 0
    return None


def parse_size(value):
    """PVE::JSONSchema::parse_size: bytes or None."""
    m = re.match(r"^(\d+(\.\d+)?)([KMGT](?:iB)?)?$", str(value))
    if not m:
        return None
    size = float(m.group(1)) if m.group(2) else int(m.group(1))
    unit = (m.group(3) or "")[:1]
    mult = {"": 1, "K": 1024, "M": 1024 ** 2, "G": 1024 ** 3, "T": 1024 ** 4}[unit]
    return int(size * mult)


def format_size(size):
    """PVE::JSONSchema::format_size: the largest unit that divides evenly."""
    size = int(size)
    kb = size // 1024
    if kb * 1024 != size:
        return str(size)
    mb = kb // 1024
    if mb * 1024 != kb:
        return "%dK" % kb
    gb = mb // 1024
    if gb * 1024 != mb:
        return "%dM" % mb
    tb = gb // 1024
    if tb * 1024 != gb:
        return "%dG" % gb
    return "%dT" % tb


def parse_property_string(data, default_key, aliases=None, bools=()):
    """parse_property_string for the drive / mount point formats (any key
    accepted): a dict, or None where upstream dies (duplicate key, second
    value without key, 'key=' without value)."""
    aliases = aliases or {}
    res = {}
    for part in str(data).split(","):
        if re.match(r"^\s*$", part):
            continue
        m = re.match(r"^([^=]+)=(.+)$", part, re.S)
        if m:
            k, v = m.group(1), m.group(2)
            if k in res:
                return None
            k = aliases.get(k, k)
            if k in res:
                return None
            if k in bools:
                b = parse_boolean(v)
                v = v if b is None else b
            res[k] = v
        elif "=" not in part:
            if default_key in res:
                return None
            res[default_key] = part
        else:
            return None
    return res


def print_property_string(d, default_key, required=(), skip=(), size_keys=("size",)):
    """print_property_string: default key bare, then the required keys,
    then the rest, each group sorted; sizes with format_size."""
    done = set(skip)
    out = []

    def add(k, bare=False):
        if k in done or d.get(k) is None:
            done.add(k)
            return
        done.add(k)
        v = d[k]
        v = format_size(v) if k in size_keys else v
        out.append(str(v) if bare else "%s=%s" % (k, v))

    add(default_key, True)
    for k in sorted(d):
        if k in required:
            add(k)
    for k in sorted(d):
        add(k)
    return ",".join(out)


# -- qemu drives -------------------------------------------------------------

def parse_drive(key, value):
    """Drive.pm parse_drive (+ QemuConfig parse_volume for 'vmstate'):
    {file, media?, backup?, size? (bytes), ..., interface, index} or None."""
    if value is None:
        return None
    if key == "vmstate":
        if not re.match(r"^[a-z][a-z0-9\-_.]*[a-z0-9]:.+$", str(value), re.I):
            return None
        return {"file": str(value)}
    m = re.match(r"^([^\d]+)(\d+)$", key)
    if not m or (key not in QEMU_DRIVE_SET and key not in UNUSED_SET):
        return None
    d = parse_property_string(value, "file", {"volume": "file"}, QEMU_BOOL_PROPS)
    if d is None or "file" not in d:
        return None
    d["interface"], d["index"] = m.group(1), int(m.group(2))
    if d.get("media") == "cdrom":
        if d.get("snapshot") or d.get("format"):
            return None
        if d["interface"] == "virtio":
            return None
    if "size" in d:
        size = parse_size(d["size"])
        if size is None:
            return None
        d["size"] = size
    return d


def print_drive(d):
    """Drive.pm print_drive (without interface/index)."""
    return print_property_string(d, "file", skip=("interface", "index"))


def drive_is_cloudinit(d):
    return bool(re.search(r"[:/](?:vm-\d+-)?cloudinit(?:\.(?:%s))?$" % "|".join(QEMU_FORMATS),
                          str(d.get("file") or "")))


def drive_is_cdrom(d, exclude_cloudinit=False):
    if exclude_cloudinit and drive_is_cloudinit(d):
        return False
    return bool(d) and d.get("media") == "cdrom"


# -- lxc mount points --------------------------------------------------------

def classify_mountpoint(vol):
    vol = str(vol or "")
    if vol.startswith("/"):
        return "device" if vol.startswith("/dev/") else "bind"
    return "volume"


def parse_mountpoint(key, value):
    """LXC::Config parse_volume: {volume, mp, backup?, size? (bytes), type}
    or None."""
    if value is None:
        return None
    d = parse_property_string(value, "volume", None, LXC_BOOL_PROPS)
    if d is None or "volume" not in d:
        return None
    if key.startswith("mp") and "mp" not in d:
        return None                   # 'mp' is required for mpN
    if "size" in d:
        size = parse_size(d["size"])
        if size is None:
            return None
        d["size"] = size
    d["type"] = classify_mountpoint(d["volume"])
    if key == "rootfs":
        d["mp"] = "/"
    return d


def print_mountpoint(d, rootfs=False):
    """print_ct_mountpoint: volume, then mp (required for mpN), the rest
    sorted; 'type' never, 'mp' not for rootfs."""
    skip = ("type", "mp") if rootfs else ("type",)
    return print_property_string(d, "volume", required=("mp",), skip=skip)


def parse_volume(gtype, key, value):
    if gtype == "qemu":
        return parse_drive(key, value)
    if key in UNUSED_SET:
        d = parse_property_string(value, "volume")
        if not d or "volume" not in d:
            return None
        d["type"] = classify_mountpoint(d["volume"])
        return d
    return parse_mountpoint(key, value)


def volid_of(gtype, vol):
    return vol.get("file") if gtype == "qemu" else vol.get("volume")


def _unused_keys(conf):
    return sorted((k for k in conf if k in UNUSED_SET), key=lambda k: int(k[6:]))


def foreach_volume(gtype, conf, include_unused=False, extra_keys=()):
    """AbstractConfig foreach_volume_full: [(key, parsed volume)] in
    valid_volume_keys order, then extra_keys, then the unused ones (upstream
    walks those in hash order; here by number). Unparsable values are
    skipped like upstream (parse_volume with noerr)."""
    if not conf:
        return []
    keys = QEMU_DRIVE_KEYS if gtype == "qemu" else LXC_MP_KEYS
    res = []
    for k in tuple(keys) + tuple(extra_keys):
        v = conf.get(k)
        if v is None:
            continue
        vol = parse_volume(gtype, k, v)
        if vol is not None:
            res.append((k, vol))
    if include_unused:
        for k in _unused_keys(conf):
            vol = parse_volume(gtype, k, conf[k])
            if vol is not None:
                res.append((k, vol))
    return res


def add_unused_volume(conf, volid):
    """AbstractConfig add_unused_volume: the lowest free unusedN (no
    duplicates)."""
    key = None
    for i in range(MAX_UNUSED - 1, -1, -1):
        k = "unused%d" % i
        v = conf.get(k)
        if v:
            if v == volid:
                return None
        else:
            key = k
    if key is None:
        raise ValueError("Too many unused volumes - please delete them first.")
    conf[key] = volid
    return key


def volume_owner(volid):
    """The owner VMID pve-storage's parse_volname reports for a volume id
    (vm-/base-/subvol-/basevol-<vmid>-..., or a '<vmid>/...' image
    directory), None for anything else (iso, templates, paths)."""
    volid = str(volid or "")
    if volid.startswith("/") or ":" not in volid:
        return None
    name = volid.split(":", 1)[1]
    m = re.match(r"^(?:vm|base|subvol|basevol)-(\d+)-", name.rsplit("/", 1)[-1])
    if m:
        return int(m.group(1))
    m = re.match(r"^(\d+)/", name)
    return int(m.group(1)) if m else None


def volume_storage(volid):
    volid = str(volid or "")
    m = re.match(r"^([a-z][a-z0-9\-_.]*[a-z0-9]):", volid, re.I)
    return m.group(1) if m else None


# -- backup volumes ----------------------------------------------------------

def backup_volumes(gtype, conf):
    """QemuConfig / LXC::Config get_backup_volumes: [{key, included,
    reason, volume}] (qemu: cdroms left out)."""
    res = []
    for key, vol in foreach_volume(gtype, conf):
        if gtype == "qemu":
            if drive_is_cdrom(vol):
                continue
            included = 1 if vol.get("backup") is None else vol["backup"]
            reason = "backup=" + ("no" if vol.get("backup") is not None else "yes")
            if key.startswith("efidisk") and conf.get("bios") != "ovmf":
                included = 0
                reason = "efidisk but no OVMF BIOS"
        else:
            if key == "rootfs":
                included, reason = 1, "rootfs"
            elif vol["type"] != "volume":
                included, reason = 0, "not a volume"
            elif vol.get("backup"):
                included, reason = 1, "enabled"
            else:
                included, reason = 0, "disabled"
        res.append({"key": key, "included": bool(included), "reason": reason, "volume": vol})
    return res


# -- pending changes ---------------------------------------------------------

def parse_pending_delete(data):
    """{key: force} of a pending 'delete' value."""
    if not data:
        return {}
    text = re.sub(r"[,;]", " ", str(data)).lstrip()
    res = {}
    for entry in re.split(r"\s+", text):
        if not entry:
            continue
        force = entry.startswith("!")
        res[entry[1:] if force else entry] = force
    return res


def print_pending_delete(h):
    return ",".join(("!" if h[k] else "") + k for k in sorted(h))


def perl_true(v):
    return v is not None and v != "" and v != "0" and v != 0 and v is not False


def apply_pending(conf, pending):
    """load_current_config without current=1: pending values on top, then
    the pending deletions (only of keys whose value is true)."""
    conf = dict(conf)
    for k, v in (pending or {}).items():
        if k == "delete" or v is None:
            continue
        conf[k] = v
    for k in parse_pending_delete((pending or {}).get("delete")):
        if perl_true(conf.get(k)):
            del conf[k]
    return conf


# -- config file text --------------------------------------------------------

def _perl_lines(text):
    """Perl split(/\\n/, $text): trailing empty fields dropped."""
    parts = str(text).split("\n")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def render_section(conf, gtype="qemu", pending=False, skip=()):
    """generate_raw_config of write_vm_config / write_pct_config."""
    out = []
    desc = conf.get("description")
    if desc:
        out.extend("#" + ln for ln in _perl_lines(desc))
    elif desc is not None and pending and gtype == "qemu":
        out.append("#")
    for k in sorted(conf):
        if k in ("description", "digest", "pending", "snapshots") or k in skip:
            continue
        v = conf[k]
        if v is None:
            continue
        out.append("%s: %s" % (k, v))
    return "".join(ln + "\n" for ln in out)


def pending_header(gtype):
    return "[PENDING]" if gtype == "qemu" else "[pve:pending]"


def render_file(gtype, conf, pending=None, snapshots=None):
    """The whole config file: main section, the pending section, one
    section per snapshot (sorted)."""
    text = render_section(conf, gtype)
    if pending:
        text += "\n%s\n" % pending_header(gtype) + render_section(pending, gtype, pending=True)
    for name in sorted(snapshots or {}):
        text += "\n[%s]\n" % name + render_section(snapshots[name], gtype)
    return text


def parse_config_text(gtype, text):
    """parse_vm_config / parse_pct_config: (main conf, pending, snapshots).
    Descriptions come from '#' lines (qemu: trailing whitespace stripped;
    lxc: kept as the sim writes them, without the trailing newline)."""
    res = {}
    pending = {}
    snapshots = {}
    cur = res
    descr = None
    key_re = re.compile(r"^([a-z][a-z_\-]*\d*):\s*(.+?)\s*$" if gtype == "qemu"
                        else r"^([a-z][a-z_]*\d*):\s*(.+?)\s*$")

    def finish():
        nonlocal descr
        if descr is not None:
            d = re.sub(r"\s+$", "", descr)
            if d or gtype == "qemu":
                cur["description"] = d
        descr = None

    for line in _perl_lines(text):
        if re.match(r"^\s*$", line):
            continue
        if gtype == "qemu" and re.match(r"^\[PENDING\]\s*$", line, re.I) or \
                gtype == "lxc" and re.match(r"^\[pve:pending\]\s*$", line, re.I):
            finish()
            cur = pending
            continue
        m = re.match(r"^\[([^\]]*)\]\s*$", line)
        if m:
            finish()
            if re.match(r"^[a-z][a-z0-9_\-]+$", m.group(1), re.I):
                cur = snapshots.setdefault(m.group(1), {})
            else:
                cur = {}            # special / unknown section: not kept
            continue
        m = re.match(r"^#(.*)$", line)
        if m:
            descr = (descr or "") + m.group(1) + "\n"
            continue
        m = re.match(r"^(description):\s*(.*\S)\s*$", line)
        if m:
            descr = (descr or "") + m.group(2)
            continue
        m = key_re.match(line)
        if m:
            k = m.group(1)
            if gtype == "qemu" and k == "cdrom":
                k = "ide2"
            cur[k] = m.group(2)
    finish()
    return res, pending, snapshots
