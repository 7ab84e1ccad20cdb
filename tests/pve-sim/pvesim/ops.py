"""What the write calls do once their synchronous checks passed: the worker
tasks (power, snapshots, vzdump, destroy, restore, config, volume delete)
and the ha-manager reactions. handlers.py does the parameter handling and
the synchronous pre-checks upstream does before fork_worker; everything
here runs inside a Task, in sim time, from Cluster timers.

Upstream sources followed (messages copied from them):
  qemu-server  src/PVE/API2/Qemu.pm (vm_start/stop/shutdown, destroy_vm,
               create_vm restore, snapshot*, update_vm_api),
               PVE/QemuServer.pm (_do_vm_stop, vm_start), QemuConfig.pm
  pve-container src/PVE/API2/LXC.pm, LXC/Status.pm, LXC/Snapshot.pm,
               LXC/Config.pm, src/PVE/LXC.pm
  pve-guest-common PVE/AbstractConfig.pm (check_lock, check_protection,
               snapshot_create/delete/rollback, create_and_lock_config)
  pve-manager  PVE/API2/VZDump.pm, PVE/VZDump.pm (getlock, exec_backup,
               exec_backup_task, generate_notes, prune), PVE/API2/Tasks.pm
  pve-storage  src/PVE/Storage.pm, Storage/Plugin.pm, API2/Storage/*.pm
"""

import hashlib
import math
import re
import time

from .guestconf import (QEMU_DRIVE_SET, add_unused_volume, classify_mountpoint, drive_is_cdrom,
                        drive_is_cloudinit, foreach_volume, parse_config_text, parse_drive,
                        parse_pending_delete, parse_volume, print_drive, print_mountpoint,
                        print_pending_delete, typed_value, volid_of, volume_owner,
                        volume_storage)
from .model import (GIB, MIB, PRIMARY_KEY, UNUSED_RE, Guest, archive_meta, backup_plan, config_path,
                    volume_format)
from .storage import COMPRESSORS, Volume, format_size, parse_prune, print_prune, prune_mark
from .tasks import EPS

ROOT = "root@pam"
LOCKFILE = "/var/run/vzdump.lock"


def kind(gtype):
    """guest_type(): 'VM' (qemu) / 'CT' (lxc)."""
    return "VM" if gtype == "qemu" else "CT"


def cfg_missing(gtype, node, vmid):
    return "Configuration file '%s' does not exist\n" % config_path(gtype, node, vmid)


def not_on_node(vmid, node):
    """PVE::QemuConfig::assert_config_exists_on_node (check_running)."""
    return "unable to find configuration file for VM %s on node '%s'\n" % (vmid, node)


def locked_msg(g):
    return "%s is locked (%s)\n" % (kind(g.type), g.lock)


def fault_error(task, default="simulated task failure"):
    spec = task.fault.spec
    return str(spec.get("error") or spec.get("exitstatus") or default)


def take_fault(task):
    """('hang'|'fail'|None) for the task's fault; marks hung tasks."""
    f = task.fault
    if f is None:
        return None
    if f.kind == "task_hang":
        task.hung = True
        return "hang"
    return "fail"


def ha_managed(g):
    return g is not None and g.ha_state not in (None, "ignored")


def render_bytes(n):
    """PVE::Format::render_bytes."""
    units = ["B", "KiB", "MiB", "GiB", "TiB"]
    v = float(n)
    i = 0
    while v >= 1024 and i < len(units) - 1:
        v /= 1024
        i += 1
    return ("%d %s" % (v, units[i])) if i == 0 else ("%.2f %s" % (v, units[i]))


def lt(cl, t, fmt="%Y-%m-%d %H:%M:%S"):
    """Node local time of sim time t."""
    return time.strftime(fmt, time.gmtime(cl.clock.epoch(t) + cl.utc_offset))


# ------------------------------------------------------------------ start / stop / shutdown

def start_guest(cl, g, t, how):
    g.start(t)
    g.runstate = "running"
    if g.hastate in ("starting",):
        g.hastate = "started"
    cl.record(t, "start", g, how=how)
    cl.touch()


def stop_guest(cl, g, t, how):
    if not g.running_now():
        return
    g.stop(t)
    g.runstate = "running"
    if g.hastate == "request_stop":
        g.hastate = "stopped"
    cl.record(t, "stop", g, how=how)
    cl.touch()


def worker_start(cl, task, gtype, node, vmid, skiplock, t0, how="start"):
    """qmstart (PVE::QemuServer::vm_start) / vzstart (LXC Status vm_start)."""
    g = cl.local_guest(gtype, node, vmid)
    if g is None:
        return task.fail_later(t0, cfg_missing(gtype, node, vmid))
    if g.template:
        return task.fail_later(t0, "you can't start a vm if it's a template\n" if gtype == "qemu"
                               else "you can't start a CT if it's a template\n")
    if g.lock and not skiplock and g.lock not in ("suspended", "mounted"):
        return task.fail_later(t0, locked_msg(g))
    if g.running_now():
        return task.fail_later(t0, "VM %d already running\n" % g.vmid if gtype == "qemu"
                               else "CT %d already running\n" % g.vmid)
    d = cl.duration(task.type)
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        return task.fail_later(t0, fault_error(task), d)
    for i in range(g.start_warnings if gtype == "qemu" else 0):
        task.warn(t0 + d * 0.5, "no efidisk configured! Using temporary efivars disk.")

    def done(t):
        if g.deleted or g.running_now():
            return task.finish(t, "VM %d already running\n" % g.vmid)
        start_guest(cl, g, t, how)
        task.finish(t)
    task.at(t0 + d, done)


def worker_stop(cl, task, gtype, node, vmid, skiplock, t0, how="stop"):
    """qmstop (vm_stop, force) / vzstop (lxc-stop --kill)."""
    g = cl.local_guest(gtype, node, vmid)
    if g is None:
        return task.fail_later(t0, not_on_node(vmid, node) if gtype == "qemu"
                               else cfg_missing(gtype, node, vmid))
    if gtype == "qemu" and not g.running_now():
        return task.at(t0 + EPS, lambda t: task.finish(t))
    if g.lock and not skiplock and g.lock != "mounted":
        return task.fail_later(t0, locked_msg(g))
    d = cl.duration(task.type)
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        return task.fail_later(t0, fault_error(task), d)

    def done(t):
        stop_guest(cl, g, t, how)
        task.finish(t)
    task.at(t0 + d, done)


def worker_shutdown(cl, task, gtype, node, vmid, skiplock, timeout, force, t0, how="shutdown",
                    paused_stop=False):
    """qmshutdown (_do_vm_stop with shutdown=1) / vzshutdown (lxc-stop
    --nokill --timeout T). A guest that ignores ACPI ("acpi": false) runs
    into the timeout: error, or a hard stop with forceStop=1."""
    g = cl.local_guest(gtype, node, vmid)
    if g is None:
        return task.fail_later(t0, not_on_node(vmid, node) if gtype == "qemu"
                               else cfg_missing(gtype, node, vmid))
    if gtype == "qemu" and not g.running_now():
        return task.at(t0 + EPS, lambda t: task.finish(t))
    if g.lock and not skiplock:
        return task.fail_later(t0, locked_msg(g))
    if gtype == "qemu" and timeout is None:
        timeout = 60
    timeout = float(60 if timeout is None else timeout)
    d = cl.duration("qmshutdown" if gtype == "qemu" else "vzshutdown")
    if paused_stop:
        d = cl.duration("qmstop")
        timeout = math.inf
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        return task.fail_later(t0, fault_error(task), min(d, timeout))
    if g.acpi or paused_stop:
        if d <= timeout:
            # the guest powers off even if the task gets aborted meanwhile
            cl.at(t0 + d, lambda t: (not g.deleted) and stop_guest(cl, g, t, how))
            task.at(t0 + d, lambda t: task.finish(t))
            return

    def on_timeout(t):
        if not force:
            if gtype == "qemu":
                return task.finish(t, "VM quit/powerdown failed - got timeout\n")
            return task.finish(t, "command 'lxc-stop -n %d --nokill --timeout %d' failed: exit code 1\n"
                               % (g.vmid, int(timeout)))
        if gtype == "qemu":
            task.log(t, "VM still running - terminating now with SIGTERM")
        stop_guest(cl, g, t + 0.1, how + "+force")
        task.at(t + 0.1, lambda tt: task.finish(tt))
    task.at(t0 + timeout, on_timeout)


def ha_request(cl, task, g, vmid, gtype, action, timeout, t0):
    """hastart / hastop: the task only asks ha-manager; the CRM/LRM act
    `ha_delay` later (the LRM runs its own qmstart/qmshutdown/qmstop task
    as root@pam). The caller has to watch the guest status."""
    what = "VM" if gtype == "qemu" else "CT"
    task.log(t0, "Requesting HA %s for %s %d" % (action, what, vmid))
    d = cl.duration(task.type)
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        return task.fail_later(t0, fault_error(task), d)

    def requested(t):
        if g is None or g.deleted:
            return task.finish(t)
        if action == "start":
            g.ha_state = "started"
            if not g.running_now():
                g.hastate = "starting"
                cl.at(t + cl.ha_delay, lambda tt: lrm_start(cl, g, tt))
            else:
                g.hastate = "started"
        else:
            g.ha_state = "stopped"
            if g.running_now():
                g.hastate = "request_stop"
                cl.at(t + cl.ha_delay, lambda tt: lrm_stop(cl, g, tt, timeout))
            else:
                g.hastate = "stopped"
        cl.record(t, "ha-request", g, request=action)
        cl.touch()
        task.finish(t)
    task.at(t0 + d, requested)


def lrm_start(cl, g, t):
    if g.deleted or g.ha_state != "started" or g.running_now():
        if not g.deleted and g.running_now():
            g.hastate = "started"
        return
    wtype = "qmstart" if g.type == "qemu" else "vzstart"
    task = cl.start_task(g.node, wtype, g.vmid, ROOT, t)
    worker_start(cl, task, g.type, g.node, g.vmid, 1, t, how="ha")


def lrm_stop(cl, g, t, timeout):
    if g.deleted or g.ha_state != "stopped":
        return
    if not g.running_now():
        g.hastate = "stopped"
        cl.touch()
        return
    if timeout:
        wtype = "qmshutdown" if g.type == "qemu" else "vzshutdown"
        task = cl.start_task(g.node, wtype, g.vmid, ROOT, t)
        worker_shutdown(cl, task, g.type, g.node, g.vmid, 1, timeout, 1, t, how="ha")
    else:
        wtype = "qmstop" if g.type == "qemu" else "vzstop"
        task = cl.start_task(g.node, wtype, g.vmid, ROOT, t)
        worker_stop(cl, task, g.type, g.node, g.vmid, 1, t, how="ha")


# ------------------------------------------------------------------ snapshots

def snapshot_volumes(cl, g, conf=None):
    """The volumes a snapshot covers (has_feature('snapshot') walks them):
    qemu every drive but cdroms, lxc every mount point. [(key, volid,
    storage instance or None, format)]."""
    conf = g.config() if conf is None else conf
    res = []
    for key, vol in foreach_volume(g.type, conf):
        if g.type == "qemu" and drive_is_cdrom(vol):
            continue
        volid = volid_of(g.type, vol)
        sid = volume_storage(volid)
        st = (cl.storage(g.node, sid) or cl.storage_any(sid)) if sid else None
        res.append((key, volid, st, volume_format(cl, g, key, volid)))
    return res


def guest_can_snapshot(cl, g):
    """has_feature('snapshot', $conf): every volume's storage can snapshot
    it (paths and bind mounts cannot); scenario can_snapshot overrides."""
    if g.can_snapshot is not None:
        return g.can_snapshot
    for key, volid, st, fmt in snapshot_volumes(cl, g):
        if not volume_storage(volid):
            return False
        if st is None:
            continue        # unknown storage: assume lvmthin-like
        if not st.can_snapshot(g.type, fmt):
            return False
    return True


def worker_snapshot(cl, task, gtype, node, vmid, snapname, vmstate, description, t0):
    """AbstractConfig::snapshot_create (__snapshot_prepare / commit)."""
    g = cl.local_guest(gtype, node, vmid)
    if g is None:
        return task.fail_later(t0, cfg_missing(gtype, node, vmid))
    if g.template:
        return task.fail_later(t0, "you can't take a snapshot if it's a template\n")
    if g.lock:
        return task.fail_later(t0, locked_msg(g))
    if snapname in g.snapshots:
        return task.fail_later(t0, "snapshot name '%s' already used\n" % snapname)
    if not guest_can_snapshot(cl, g):
        return task.fail_later(t0, "snapshot feature is not available\n")
    d = cl.duration(task.type)
    g.lock = "snapshot"
    use_vmstate = bool(vmstate) and gtype == "qemu" and g.running_now()
    g.add_snapshot(snapname, int(cl.clock.epoch(t0)), description, use_vmstate, snapstate="prepare")
    cl.touch()
    if use_vmstate:
        task.log(t0 + d * 0.2, "saving VM state and RAM using storage '%s'" % g.disk_storage)
    for key, volid, st, _fmt in snapshot_volumes(cl, g):
        if gtype == "qemu":
            task.log(t0 + d * 0.5, "snapshotting 'drive-%s' (%s)" % (key, volid))
        if st is not None and st.plugintype in ("lvmthin", "lvm"):
            task.log(t0 + d * 0.6, "  Logical volume \"snap_%s_%s\" created."
                     % (volid.split(":", 1)[-1], snapname))

    def cleanup(t):
        g.drop_snapshot(snapname)
        if g.lock == "snapshot":
            g.lock = None
        cl.touch()
    task.on_abort = cleanup
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        def failed(t):
            cleanup(t)
            task.finish(t, fault_error(task))
        return task.at(t0 + d, failed)

    def done(t):
        g.commit_snapshot(snapname)
        if g.lock == "snapshot":
            g.lock = None
        cl.record(t, "snapshot", g, snapname=snapname, vmstate=1 if use_vmstate else 0)
        cl.touch()
        task.finish(t)
    task.at(t0 + d, done)


def worker_delsnapshot(cl, task, gtype, node, vmid, snapname, force, t0):
    g = cl.local_guest(gtype, node, vmid)
    if g is None:
        return task.fail_later(t0, cfg_missing(gtype, node, vmid))
    if g.lock:
        return task.fail_later(t0, locked_msg(g))
    if g.template:
        return task.fail_later(t0, "you can't delete a snapshot if vm is a template\n")
    snap = g.snapshots.get(snapname)
    if snap is None:
        return task.fail_later(t0, "snapshot '%s' does not exist\n" % snapname)
    d = cl.duration(task.type)
    prev_state = snap.get("snapstate")
    snap["snapstate"] = "delete"
    g.lock = "snapshot-delete"
    cl.touch()

    def cleanup(t):
        if prev_state:
            snap["snapstate"] = prev_state
        else:
            snap.pop("snapstate", None)
        if g.lock == "snapshot-delete":
            g.lock = None
        cl.touch()
    task.on_abort = cleanup
    for key, volid, st, _fmt in snapshot_volumes(cl, g, snap):
        if st is not None and st.plugintype in ("lvmthin", "lvm"):
            task.log(t0 + d * 0.5, "  Logical volume \"snap_%s_%s\" successfully removed."
                     % (volid.split(":", 1)[-1], snapname))
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        def failed(t):
            cleanup(t)
            task.finish(t, fault_error(task))
        return task.at(t0 + d, failed)

    def done(t):
        g.drop_snapshot(snapname)
        if g.lock == "snapshot-delete":
            g.lock = None
        cl.record(t, "delsnapshot", g, snapname=snapname)
        cl.touch()
        task.finish(t)
    task.at(t0 + d, done)


SNAP_META_KEYS = {"snaptime", "vmstate", "snapstate", "lock", "digest", "description", "parent"}


def apply_snapshot_config(g, snap):
    """AbstractConfig __snapshot_apply_config (rollback): the config
    becomes the snapshot's (__snapshot_copy_config), keeping the current
    description and unused volumes; the pending section is gone."""
    conf = g.config()
    for k in list(conf):
        if k in SNAP_META_KEYS or UNUSED_RE.match(k):
            continue
        if k not in snap:
            g.set_config_key(k, None)
    for k, v in snap.items():
        if k in SNAP_META_KEYS or UNUSED_RE.match(k):
            continue
        if conf.get(k) != v:
            g.set_config_key(k, None if v is None else v if isinstance(v, str) else str(v))
    g.pending = {}


def parse_memory(v):
    s = str(v)
    m = re.search(r"(?:^|current=)(\d+)", s)
    return int(m.group(1)) if m else 512


def worker_rollback(cl, task, gtype, node, vmid, snapname, start, t0):
    g = cl.local_guest(gtype, node, vmid)
    if g is None:
        return task.fail_later(t0, cfg_missing(gtype, node, vmid))
    snap = g.snapshots.get(snapname)
    if snap is None:
        return task.fail_later(t0, "snapshot '%s' does not exist\n" % snapname)
    if snap.get("snapstate"):
        return task.fail_later(t0, "unable to rollback to incomplete snapshot (snapstate = %s)\n"
                               % snap["snapstate"])
    if g.lock:
        return task.fail_later(t0, locked_msg(g))
    d = cl.duration(task.type)
    if g.running_now():
        stop_guest(cl, g, t0 + d * 0.2, "rollback")
    g.lock = "rollback"
    cl.touch()

    def cleanup(t):
        if g.lock == "rollback":
            g.lock = None
        cl.touch()
    task.on_abort = cleanup
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        def failed(t):
            cleanup(t)
            task.finish(t, fault_error(task))
        return task.at(t0 + d, failed)

    def done(t):
        apply_snapshot_config(g, snap)
        g.parent = snapname
        if g.lock == "rollback":
            g.lock = None
        cl.record(t, "rollback", g, snapname=snapname)
        if snap.get("vmstate") or start:
            start_guest(cl, g, t, "rollback")
        cl.touch()
        task.finish(t)
    task.at(t0 + d, done)


# ------------------------------------------------------------------ vzdump

def generate_notes(cl, template, g, node):
    """PVE::VZDump generate_notes: \\n and \\\\ escapes, {{cluster}},
    {{guestname}}, {{node}}, {{vmid}}."""
    def unescape(m):
        c = m.group(1)
        if c == "\\":
            return "\\"
        if c == "n":
            return "\n"
        raise ValueError("unexpected escape character '%s'" % c)
    text = re.sub(r"\\(.)", unescape, template)
    info = {"cluster": cl.clustername or "", "guestname": g.display_name() if g.type == "qemu"
            else (g.name or "CT%d" % g.vmid), "node": node, "vmid": str(g.vmid)}
    text = re.sub(r"\{\{(cluster|guestname|node|vmid)\}\}", lambda m: info[m.group(1)], text)
    m = re.search(r"\{\{([^\s]+)\}\}", text)
    if m:
        raise ValueError("unexpected variable name '%s'" % m.group(1))
    return text


def vzdump_cmdline(params):
    parts = ["vzdump"]
    if params.get("vmid"):
        parts.extend(re.split(r"[,;\s]+", str(params["vmid"]).strip()))
    for k in sorted(params):
        if k in ("vmid", "stdout"):
            continue
        v = str(params[k])
        if re.search(r"[^\w@%+=:,./-]", v) or v == "":
            v = "'" + v.replace("'", "'\"'\"'") + "'"
        parts.append("--%s %s" % (k, v))
    return " ".join(parts)


class Vzdump:
    """One vzdump worker (PVE::VZDump->new + getlock + exec_backup)."""

    def __init__(self, cl, task, node, params, raw_params, vmids, skiplist, user):
        self.cl = cl
        self.task = task
        self.node = node
        self.p = params
        self.raw = raw_params
        self.vmids = sorted(vmids)
        self.skiplist = sorted(skiplist)
        self.user = user
        self.errcount = 0
        self.final_exit = None
        self.current = None          # cleanup of the guest being backed up
        self.waiting = None
        self.storage = params.get("storage") or "local"
        task.abort_msg = "interrupted by signal"
        task.on_abort = self.on_abort

    # -- VZDump->new: storage checks (the whole task dies on these)
    def start(self, t0):
        cl, st_name = self.cl, self.storage
        errors = []
        st = cl.storage(self.node, st_name)
        if not cl.storage_defined(st_name):
            errors.append("could not activate storage '%s': storage '%s' does not exist"
                          % (st_name, st_name))
            errors.append("could not get storage information for '%s': storage '%s' does not exist"
                          % (st_name, st_name))
        elif st is None:
            errors.append("could not activate storage '%s': storage '%s' is not available on "
                          "node '%s'" % (st_name, st_name, self.node))
            st = cl.storage_any(st_name)
            if not st.has_content("backup"):
                errors.append("could not get storage information for '%s': can't use storage '%s' "
                              "for backups - wrong content type" % (st_name, st_name))
        elif not st.has_content("backup"):
            errors.append("could not get storage information for '%s': can't use storage '%s' for "
                          "backups - wrong content type" % (st_name, st_name))
        if errors:
            return self.task.fail_later(t0, "\n".join(errors) + "\n")
        self.st = st
        keep = self.p.get("prune-backups")
        self.keep = parse_prune(keep if keep is not None else st.prune)
        self.remove = int(self.p.get("remove", 1))
        if self.keep.get("keep-all"):
            self.remove = 0
        # getlock
        cl.vzdump_holder.setdefault(self.node, None)
        if cl.vzdump_holder.get(self.node) is None:
            cl.vzdump_holder[self.node] = self.task
            return self.exec_backup(t0)
        lockwait = int(self.p.get("lockwait", 180))
        if not lockwait:
            self.task.log(t0, "ERROR: can't acquire lock '%s' (wait = 0)" % LOCKFILE)
            return self.task.at(t0 + EPS, lambda t: self.task.finish(t, raw=True))
        self.task.log(t0, "INFO: trying to get global lock - waiting...")

        def granted(t):
            self.waiting = None
            if self.task.end_t is not None:
                return False
            for h in list(self.task.timers):
                h.cancel()
            cl.vzdump_holder[self.node] = self.task
            self.task.log(t, "INFO: got global lock")
            self.exec_backup(t)
            return True

        def timeout(t):
            q = cl.vzdump_waiters.get(self.node) or []
            if granted in q:
                q.remove(granted)
            self.waiting = None
            self.task.log(t, "ERROR: can't acquire lock '%s' - got timeout" % LOCKFILE)
            self.task.finish(t, raw=True)
        cl.vzdump_waiters.setdefault(self.node, []).append(granted)
        self.waiting = granted
        self.task.at(t0 + lockwait * 60, timeout)

    def exec_backup(self, t):
        self.task.log(t, "INFO: starting new backup job: %s" % vzdump_cmdline(self.raw))
        if self.skiplist:
            self.task.log(t, "INFO: skip external VMs: %s" % ", ".join(str(v) for v in self.skiplist))
        self.queue = list(self.vmids)
        self.next_guest(t)

    def next_guest(self, t):
        if not self.queue:
            if self.errcount:
                self.task.log(t, "INFO: Backup job finished with errors")
                return self.task.finish(t, (self.final_exit or "job errors") + "\n")
            self.task.log(t, "INFO: Backup job finished successfully")
            return self.task.finish(t)
        vmid = self.queue.pop(0)
        self.backup_guest(t, vmid)

    def guest_failed(self, t, vmid, err, g=None):
        self.errcount += 1
        err = str(err).rstrip("\n")
        self.task.log(t, "ERROR: Backup of VM %d failed - %s" % (vmid, err))
        self.task.log(t, "INFO: Failed at %s" % lt(self.cl, t))
        if g is not None:
            self.cl.record(t, "backup-failed", g, storage=self.storage, error=err,
                           upid=self.task.upid)
        self.current = None
        self.next_guest(t)

    def backup_guest(self, t, vmid):
        cl, task, st = self.cl, self.task, self.st
        g = cl.live_guest(vmid)
        if g is None:
            return self.guest_failed(t, vmid, "unable to find VM '%d'" % vmid)
        gtype = g.type
        mode = self.p.get("mode", "snapshot")
        if mode == "stop" and g.ha_state == "started":
            return self.guest_failed(t, vmid, "Cannot execute a backup with stop mode on a HA "
                                     "managed and enabled Service. Use snapshot mode or disable "
                                     "the Service.", g)
        backup_limit = 0 if self.keep.get("keep-all") else sum(self.keep.values())
        if (backup_limit and not self.remove) or self.p.get("protected"):
            vols = [v for v in st.volume_list(vmid=vmid) if v.subtype == gtype]
            count = len([v for v in vols if not v.protected])
            pcount = len(vols) - count
            if self.p.get("protected"):
                maxp = st.max_protected if st.max_protected is not None else -1
                if maxp > -1 and pcount >= maxp:
                    return self.guest_failed(t, vmid, "The number of protected backups per guest "
                                             "is limited to %d on storage '%s'" % (maxp, st.storage), g)
            elif count >= backup_limit:
                return self.guest_failed(t, vmid, "There is a max backup limit of %d enforced by "
                                         "the target storage or the vzdump parameters. Either "
                                         "increase the limit or delete old backups." % backup_limit, g)
        d = cl.duration("vzdump")
        epoch = int(cl.clock.epoch(t))
        volname, fmt, target = st.archive_volname(gtype, vmid, epoch, self.p.get("compress", "0"),
                                                  cl.utc_offset)
        task.log(t, "INFO: Starting Backup of VM %d (%s)" % (vmid, gtype))
        task.log(t, "INFO: Backup started at %s" % lt(cl, t))
        running = g.running_now()
        task.log(t, "INFO: status = %s" % ("running" if running else "stopped"))
        if g.lock:
            return self.guest_failed(t, vmid, locked_msg(g), g)
        g.lock = "backup"
        cl.touch()
        state = {"stopped_by_us": False, "kvm_started": False, "locked": True}
        self.current = (g, state)
        # VZDump.pm exec_backup_task: prepare() (the plugin's name and
        # include/exclude lines) runs before the 'backup mode' line in
        # snapshot mode, after the 'ionice' line in stop and suspend mode;
        # assemble() writes the archive config after the snapshot / stop.
        plan = backup_plan(cl, g)

        def prep(tt):
            for ln in plan["prep"]:
                task.log(tt, "INFO: " + ln)
        eff = mode if running else "stop"
        if eff == "snapshot":
            prep(t)
            if gtype == "lxc" and not self._can_snapshot(g, plan):
                task.log(t, "INFO: mode failure - some volumes do not support snapshots")
                task.log(t, "INFO: trying 'suspend' mode instead")
                eff = "suspend"
        task.log(t, "INFO: backup mode: %s" % eff)
        if self.p.get("bwlimit"):
            task.log(t, "INFO: bandwidth limit: %s KiB/s" % self.p["bwlimit"])
        task.log(t, "INFO: ionice priority: %s" % self.p.get("ionice", 7))
        if eff != "snapshot":
            prep(t)
        t1 = t
        if eff == "stop" and running:
            task.log(t, "INFO: stopping virtual guest")
            stopwait = int(self.p.get("stopwait", 10)) * 60
            dsh = cl.duration("qmshutdown" if gtype == "qemu" else "vzshutdown")
            if not g.acpi or dsh > stopwait:
                if gtype == "qemu":
                    err = ("command 'qm shutdown %d --skiplock --keepActive --timeout %d' failed: "
                           "exit code 255" % (vmid, stopwait))
                else:
                    err = "command 'lxc-stop -n %d --timeout %d' failed: exit code 1" % (vmid, stopwait)
                return task.at(t + stopwait, lambda tt: self.fail_current(tt, err))
            t1 = t + dsh
            cl.at(t1, lambda tt: stop_guest(cl, g, tt, "vzdump"))
            state["stopped_by_us"] = True
        elif eff == "suspend":
            task.log(t, "INFO: suspending guest")
        elif eff == "snapshot" and gtype == "lxc":
            task.log(t, "INFO: create storage snapshot 'vzdump'")
        for ln in plan["assemble"]:
            task.log(t1, "INFO: " + ln)
        if st.is_pbs():
            task.log(t1, "INFO: creating Proxmox Backup Server archive '%s'" % target)
        else:
            task.log(t1, "INFO: creating vzdump archive '%s'" % target)
        if gtype == "qemu" and (not running or state["stopped_by_us"]):
            # enforce_vm_running_for_backup (archive_vma / archive_pbs)
            task.log(t1, "INFO: starting kvm to execute backup task")

            def kvm_on(tt):
                if not state["kvm_started"]:
                    return      # the task was aborted (cleanup) before the kvm came up
                g.start(tt)
                g.runstate = "prelaunch"
                cl.touch()
            cl.at(t1 + (0.02 if running else 0.01), kvm_on)
            state["kvm_started"] = True
        ratio = 0.40 if st.is_pbs() else COMPRESSORS.get(str(self.p.get("compress", "0")),
                                                          (None, 1.0))[1]
        text = plan["text"]
        used = plan["used"]
        size = max(4096, int(used * ratio)) + len(text)
        full = None
        if cl.faults is not None:
            full = cl.faults.take_storage_full(st.storage, self.node, t1)
        if full is None and not st.is_pbs() and st.avail() < size:
            full = True
        f = take_fault(task)
        ferr = None
        if f == "fail":
            ferr = str(task.fault.spec.get("error") or "job failed with err -5 - Input/output error")
            self.final_exit = task.fault.spec.get("exitstatus")
            task.fault = None          # hits one guest's backup
        if f == "hang":
            return
        if full:
            def enospc(tt):
                if gtype == "qemu":
                    task.log(tt, "ERROR: job failed with err -28 - No space left on device")
                    task.log(tt, "INFO: aborting backup job")
                    err = "job failed with err -28 - No space left on device"
                else:
                    task.log(tt, "INFO: tar: -: Cannot write: No space left on device")
                    err = ("command 'set -o pipefail && tar cpf - --totals --one-file-system ./ | "
                           "zstd --rsyncable --threads=1 >%s' failed: exit code 2"
                           % re.sub(r"\.[^.]+$", ".dat", target))
                self.fail_current(tt, err)
            return task.at(t1 + d / 2.0, enospc)
        if f == "fail":
            return task.at(t1 + d / 2.0, lambda tt: self.fail_current(tt, ferr))

        def done(tt):
            if gtype == "qemu":
                total = plan["total"]
                if total:
                    task.log(tt, "INFO: 100%% (%s of %s) in %ds, read: %s/s, write: %s/s"
                             % (render_bytes(total), render_bytes(total), max(1, int(d)),
                                render_bytes(total / max(d, 1)), render_bytes(size / max(d, 1))))
                    task.log(tt, "INFO: backup is sparse: %s (%d%%) total zero data"
                             % (render_bytes(max(0, total - used)),
                                int(100 * max(0, total - used) / total)))
                    task.log(tt, "INFO: transferred %s in %d seconds (%s/s)"
                             % (render_bytes(total), max(1, int(d)), render_bytes(total / max(d, 1))))
            else:
                task.log(tt, "INFO: Total bytes written: %d (%s, %s/s)"
                         % (used, render_bytes(used), render_bytes(used / max(d, 1))))
            if state["kvm_started"]:
                task.log(tt, "INFO: stopping kvm after backup task")
                g.stop(tt)
                g.runstate = "running"
                state["kvm_started"] = False
            vol = Volume(st.storage, volname, vmid, gtype, fmt, size, epoch, text,
                         archive_meta(g, plan))
            if not st.is_pbs():
                task.log(tt, "INFO: archive file size: %s" % format_size(size))
            st.add_volume(vol)
            if self.p.get("notes-template"):
                task.log(tt, "INFO: adding notes to backup")
                try:
                    vol.notes = generate_notes(cl, self.p["notes-template"], g, self.node)
                except ValueError as e:
                    task.warn(tt, "unable to add notes - %s" % e)
            if self.p.get("protected"):
                task.log(tt, "INFO: marking backup as protected")
                vol.protected = 1
            pruned = []
            if self.remove:
                task.log(tt, "INFO: prune older backups with retention: %s" % print_prune(self.keep))
                group = [{"vol": v, "ctime": v.ctime, "protected": v.protected}
                         for v in st.volume_list(vmid=vmid) if v.subtype == gtype]
                prune_mark(group, self.keep, cl.utc_offset)
                for b in sorted(group, key=lambda b: b["vol"].volid):
                    if b["mark"] == "remove":
                        task.log(tt, "INFO: removing backup '%s'" % b["vol"].volid)
                        st.remove_volume(b["vol"])
                        pruned.append(b["vol"].volid)
                        cl.record(tt, "prune", g, volid=b["vol"].volid, storage=st.storage,
                                  protected=b["vol"].protected)
                task.log(tt, "INFO: pruned %d backup(s)%s" % (
                    len(pruned), " not covered by keep-retention policy" if pruned else ""))
            self.cleanup(tt, log=True)
            task.log(tt, "INFO: Finished Backup of VM %d (%s)" % (vmid, fmt_time(tt - t)))
            task.log(tt, "INFO: Backup finished at %s" % lt(cl, tt))
            cl.record(tt, "backup", g, volid=vol.volid, storage=st.storage, size=size,
                      protected=vol.protected, notes=vol.notes, mode=eff, upid=task.upid,
                      pruned=pruned, volumes=[{"key": v["key"], "volid": v["volid"],
                                               "size": v["size"]} for v in plan["volumes"]])
            cl.touch()
            self.current = None
            self.next_guest(tt)
        task.at(t1 + d, done)

    def _can_snapshot(self, g, plan):
        """has_feature('snapshot', ..., backup_only): every included
        volume's storage can snapshot it."""
        if g.can_snapshot is not None:
            return g.can_snapshot
        for v in plan["volumes"]:
            if not v["storage"]:
                return False
            st = self.cl.storage(g.node, v["storage"]) or self.cl.storage_any(v["storage"])
            if st is None:
                continue        # unknown storage: assume lvmthin-like
            if not st.can_snapshot(g.type, v["format"]):
                return False
        return True

    def cleanup(self, t, log=False):
        """unlock, stop the kvm started for the backup, restart a guest
        stopped for it."""
        if self.current is None:
            return
        g, state = self.current
        if state.get("kvm_started"):
            g.stop(t)
            g.runstate = "running"
            state["kvm_started"] = False
        if state.get("locked") and g.lock == "backup":
            g.lock = None
        state["locked"] = False
        if state.get("stopped_by_us") and not g.deleted:
            self.task.log(t, "INFO: restarting vm")
            start_guest(self.cl, g, t, "vzdump")
            self.task.log(t, "INFO: guest is online again after %d seconds" % max(1, int(
                t - self.task.start_t)))
            state["stopped_by_us"] = False
        self.cl.touch()

    def fail_current(self, t, err):
        g = self.current[0] if self.current else None
        vmid = g.vmid if g else 0
        self.cleanup(t)
        self.guest_failed(t, vmid, err, g)

    def on_abort(self, t):
        if self.waiting is not None:
            q = self.cl.vzdump_waiters.get(self.node) or []
            if self.waiting in q:
                q.remove(self.waiting)
            self.waiting = None
            return
        if self.current is not None:
            g = self.current[0]
            self.cleanup(t)
            self.task.log(t, "ERROR: Backup of VM %d failed - interrupted by signal" % g.vmid)
            self.task.log(t, "INFO: Failed at %s" % lt(self.cl, t))
            self.cl.record(t, "backup-failed", g, storage=self.storage,
                           error="interrupted by signal", upid=self.task.upid)
            self.current = None
        self.task.log(t, "ERROR: Backup job failed - interrupted by signal")


def fmt_time(seconds):
    s = int(round(seconds))
    return "%02d:%02d:%02d" % (s // 3600, (s % 3600) // 60, s % 60)


# ------------------------------------------------------------------ destroy

def destroy_early_checks(g, gtype, vmid, purge, force=0):
    """Synchronous checks (destroy_vm early_checks); returns an error or None."""
    if g.protection:
        return "can't remove %s %d - protection mode enabled\n" % (kind(gtype), vmid)
    if gtype == "lxc" and g.lock:
        return locked_msg(g)
    if g.ha_state is not None and not purge:
        return ("unable to remove %s %d - used in HA resources and purge parameter not set.\n"
                % (kind(gtype), vmid))
    if gtype == "qemu" and g.running_now():
        return "VM %d is running - destroy failed\n" % vmid
    if gtype == "lxc" and g.running_now() and not force:
        return "unable to destroy CT %d - container is running\n" % vmid
    return None


def destroy_volumes(cl, g):
    """The volumes destroy frees, in upstream order, and the lines it logs:
    [(key, volid, size)], [(line, is_warning)].

    qemu (QemuServer.pm destroy_vm): every drive, 'vmstate' and unusedN
    of the config, the vmstate volumes of the snapshots, then the drives
    of the pending section; cdroms are kept (a cloud-init drive is not a
    cdrom here), absolute paths and volumes another VMID owns are kept,
    each volume once. lxc (LXC.pm destroy_lxc_container): rootfs, mpN and
    unusedN of the config, then those of the pending section; bind and
    device mount points are skipped, other owners' volumes kept with
    "ignore deletion of '<volid>', CT <id> isn't the owner!"."""
    gtype, vmid = g.type, g.vmid
    conf = g.config()
    freed, lines, seen = [], [], set()

    def consider(key, vol):
        volid = volid_of(gtype, vol)
        if gtype == "qemu":
            if drive_is_cdrom(vol, True):
                return
            if not volid or volid.startswith("/") or volid in seen:
                return
            sid = volume_storage(volid)
            if sid is None or not cl.storage_defined(sid):
                lines.append(("failed to get path and owner of volume '%s': storage '%s' does not "
                              "exist" % (volid, sid or volid.split(":", 1)[0]), True))
                return
            if volume_owner(volid) != vmid:
                return
            seen.add(volid)
        else:
            if volid in seen:
                return
            seen.add(volid)
            if classify_mountpoint(volid) != "volume":
                return
            if volume_owner(volid) != vmid:
                lines.append(("ignore deletion of '%s', CT %d isn't the owner!" % (volid, vmid), False))
                return
        freed.append({"key": key, "volid": volid, "size": vol.get("size")})

    extra = ("vmstate",) if gtype == "qemu" else ()
    for key, vol in foreach_volume(gtype, conf, include_unused=True, extra_keys=extra):
        consider(key, vol)
    if gtype == "qemu":
        for name in g.snap_order:
            snap = g.snapshots.get(name) or {}
            if snap.get("vmstate"):
                vol = parse_drive("vmstate", snap["vmstate"])
                if vol is not None:
                    consider("vmstate", vol)
    for key, vol in foreach_volume(gtype, g.pending, include_unused=True, extra_keys=extra):
        consider(key, vol)
    return freed, lines


def worker_destroy(cl, task, gtype, node, vmid, purge, skiplock, force, t0, unreferenced=0):
    g = cl.local_guest(gtype, node, vmid)
    if g is None:
        return task.fail_later(t0, cfg_missing(gtype, node, vmid))
    err = destroy_early_checks(g, gtype, vmid, purge, force)
    if err:
        return task.fail_later(t0, err)
    if gtype == "qemu" and g.lock and not skiplock and g.lock != "suspended":
        return task.fail_later(t0, locked_msg(g))
    d = cl.duration(task.type)
    ha = g.ha_state is not None
    tstop = t0
    if gtype == "lxc" and g.running_now():
        task.log(t0, "forced to stop CT %d before destroying!" % vmid)
        tstop = t0 + cl.duration("vzstop")
        cl.at(tstop, lambda t: stop_guest(cl, g, t, "destroy"))
    prev_lock = g.lock
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        return task.fail_later(tstop, fault_error(task), d)
    freed = []

    def half(t):
        vols, lines = destroy_volumes(cl, g)
        freed.extend(vols)
        for line, warn in lines:
            if warn:
                task.warn(t, line)
            else:
                task.log(t, line)
        for v in vols:
            st = cl.storage(node, volume_storage(v["volid"])) or \
                cl.storage_any(volume_storage(v["volid"]))
            if st is not None and st.plugintype in ("lvmthin", "lvm"):
                task.log(t, "  Logical volume \"%s\" successfully removed."
                         % v["volid"].split(":", 1)[-1])
        g.lock = "destroyed"
        cl.touch()
    task.at(tstop + d * 0.5, half)

    def on_abort(t):
        if g.lock != "destroyed":
            g.lock = prev_lock
        cl.touch()
    task.on_abort = on_abort

    def done(t):
        archives = [{"volid": v.volid, "storage": v.storage, "protected": v.protected,
                     "size": v.size, "ctime": v.ctime} for v in cl.backups_of(vmid)]
        if purge:
            task.log(t, "purging %s %d from related configurations.." % (kind(gtype), vmid))
            if ha:
                task.log(t, "NOTE: removed %s %d from HA resource configuration." % (kind(gtype), vmid))
                g.ha_state = None
                g.hastate = None
        cl.record(t, "destroy", g, archives=archives, purge=int(bool(purge)), upid=task.upid,
                  name=g.display_name(), volumes=list(freed), unreferenced=int(bool(unreferenced)))
        cl.remove_guest(g, t)
        task.finish(t)
    task.at(tstop + d, done)


# ------------------------------------------------------------------ restore

FILE_IMAGE_TYPES = ("dir", "nfs", "cifs", "glusterfs", "btrfs", "cephfs")
QMDUMP_MAP_RE = re.compile(r"^#qmdump#map:(\S+):(\S+):(\S*):(\S*):$")
NEW_DISK_RE = re.compile(r"^(?:([^/:\s]+):)?(\d+(?:\.\d+)?)$")


def archive_map(text):
    """The '#qmdump#map:<virtdev>:<devname>:<storeid>:<format>:' lines of a
    qemu archive config: [(virtdev, devname, storeid, format)]."""
    res = []
    for line in (text or "").split("\n"):
        m = QMDUMP_MAP_RE.match(line)
        if m:
            res.append(m.groups())
    return res


def _disk_numbers(volids, sid, vmid):
    used = set()
    for v in volids:
        if volume_storage(v) != sid:
            continue
        m = re.search(r"(?:^|[:/])(?:vm|base|subvol|basevol)-%d-disk-(\d+)" % vmid, v)
        if m:
            used.add(int(m.group(1)))
    return used


def alloc_volid(st, sid, gtype, vmid, fmt, in_use):
    """vdisk_alloc with find_free_diskname: the first vm-<vmid>-disk-N not
    in use on that storage (in_use: volids that exist), named as the
    storage type does (image directory + extension on file storages,
    subvol- for containers on zfspool)."""
    t = st.plugintype if st is not None else "lvmthin"
    used = _disk_numbers(in_use, sid, vmid)
    n = 0
    while n in used:
        n += 1
    if t in FILE_IMAGE_TYPES:
        return "%s:%d/vm-%d-disk-%d.%s" % (sid, vmid, vmid, n, fmt if gtype == "qemu" else "raw")
    if t == "zfspool" and gtype == "lxc":
        return "%s:subvol-%d-disk-%d" % (sid, vmid, n)
    return "%s:vm-%d-disk-%d" % (sid, vmid, n)


def resolve_format_hint(st, fmt):
    """PVE::Storage::resolve_format_hint: the hint if the storage supports
    it, else its default format."""
    if st is None or not st.is_file():
        return "raw"
    return fmt if fmt in ("raw", "qcow2", "vmdk") else st.default_format()


def _new_uuid(cl, vmid, salt):
    cl.restore_seq += 1
    h = hashlib.sha1(b"%s/restore/%d/%d" % (salt.encode(), vmid, cl.restore_seq)).hexdigest()
    return "%s-%s-4%s-a%s-%s" % (h[:8], h[8:12], h[13:16], h[17:20], h[20:32])


def _new_mac(cl, vmid):
    cl.restore_seq += 1
    h = hashlib.sha1(b"mac/restore/%d/%d" % (vmid, cl.restore_seq)).digest()
    return "BC:24:11:%02X:%02X:%02X" % (h[0], h[1], h[2])


MAC_RE = r"[0-9A-Fa-f]{2}(?::[0-9A-Fa-f]{2}){5}"


def restore_update_config_line(cl, vmid, vmap, line, unique):
    """QemuServer.pm restore_update_config_line (line with its newline)."""
    if re.match(r"^#qmdump#|^#vzdump#|^lock:|^unused\d+:|^parent:", line):
        return ""
    m = re.match(r"^(net\d+):\s*(\S+)\s*$", line)
    if m and unique:
        netstr = m.group(2)
        if re.search(r"(?:^|,)(?:[a-z0-9]+=%s|macaddr=%s)" % (MAC_RE, MAC_RE), netstr):
            netstr = re.sub(r"((?:^|,)(?:[a-z0-9]+|macaddr)=)" + MAC_RE,
                            lambda mm: mm.group(1) + _new_mac(cl, vmid), netstr, count=1)
        return "%s: %s\n" % (m.group(1), netstr)
    m = re.match(r"^((ide|scsi|virtio|sata|efidisk|tpmstate)\d+):\s*(\S+)\s*$", line)
    if m:
        virtdev = m.group(1)
        di = parse_drive(virtdev, m.group(3))
        if di is not None and di.get("backup") is not None and not di["backup"]:
            return "#" + line
        if di is not None and virtdev in vmap:
            di.pop("format", None)
            di["file"] = vmap[virtdev]
            return "%s: %s\n" % (virtdev, print_drive(di))
        return line
    m = re.match(r"^vmgenid: (.*)", line)
    if m:
        v = m.group(1)
        if v != "0":
            v = _new_uuid(cl, vmid, "vmgenid")
        return "vmgenid: %s\n" % v
    m = re.match(r"^(smbios1: )(.*)", line)
    if m and unique:
        parts = [p for p in m.group(2).split(",") if p]
        kv = {}
        for p in parts:
            k, _, v = p.partition("=")
            kv[k] = v
        kv["uuid"] = _new_uuid(cl, vmid, "smbios")
        return m.group(1) + ",".join("%s=%s" % (k, kv[k]) for k in sorted(kv)) + "\n"
    return line


def _storage_error(cl, node, sid, content):
    st = cl.storage(node, sid)
    if st is None:
        if not cl.storage_defined(sid):
            return None, "storage '%s' does not exist\n" % sid
        return None, "storage '%s' is not available on node '%s'\n" % (sid, node)
    if not st.has_content(content):
        if content == "images":
            return st, "Content type 'images' is not available on storage '%s'\n" % sid
        return st, "storage '%s' does not support container directories\n" % sid
    return st, None


def _owned_volids(gtype, conf, vmid, include_unused=True):
    res = []
    for key, vol in foreach_volume(gtype, conf or {}, include_unused=include_unused):
        volid = volid_of(gtype, vol)
        if gtype == "qemu" and drive_is_cdrom(vol, True):
            continue
        if volid and volume_owner(volid) == vmid:
            res.append((key, volid))
    return res


def qemu_restore_plan(cl, vol, vmid, node, storage, overrides, unique, old):
    """restore_vma_archive as the sim does it: (conf, devices, error).
    devices: [{virtdev, devname, volid, size, used, format, storage}] in
    allocation order (sorted by virtdev)."""
    text = vol.config or ""
    meta = vol.meta or {}
    mvols = meta.get("volumes") or {}
    arch_conf = parse_config_text("qemu", text)[0]
    devices = []
    for virtdev, devname, storeid, fmt in sorted(archive_map(text)):
        if storage is not None:
            sid = storage or "local"
        else:
            sid = storeid or "local"
        st, err = _storage_error(cl, node, sid, "images")
        if err:
            return None, None, err
        info = mvols.get(virtdev) or {}
        size = info.get("size")
        if size is None:
            d = parse_drive(virtdev, arch_conf.get(virtdev)) or {}
            size = d.get("size") or (int(meta.get("maxdisk", 8 * GIB)) if virtdev == "scsi0" else 8 * GIB)
        used = info.get("used")
        if used is None:
            used = int(meta.get("disk_used", size // 4)) if virtdev == "scsi0" else size // 4
        devices.append({"virtdev": virtdev, "devname": devname, "storage": sid, "st": st,
                        "format": resolve_format_hint(st, fmt or "raw"), "size": int(size),
                        "used": int(used)})
    # restore_cleanup_oldconf: the old VM's own disks of the devices being
    # restored are freed, its other volumes stay (rescan makes them unused)
    lingering = []
    if old is not None and not old.empty:
        oconf = old.config()
        restored = {d["virtdev"] for d in devices}
        for key, volid in _owned_volids("qemu", oconf, vmid, include_unused=False):
            if key not in restored:
                lingering.append(volid)
        for key, volid in _owned_volids("qemu", oconf, vmid):
            if key.startswith("unused") and volid not in lingering:
                lingering.append(volid)
        for key, volid in _owned_volids("qemu", old.pending, vmid):
            if volid not in lingering:
                lingering.append(volid)
    allocated = []
    vmap = {}
    for d in devices:
        d["volid"] = alloc_volid(d["st"], d["storage"], "qemu", vmid, d["format"],
                                 lingering + allocated)
        allocated.append(d["volid"])
        vmap[d["virtdev"]] = d["volid"]
    new_raw = "".join(restore_update_config_line(cl, vmid, vmap, line, unique)
                      for line in text.splitlines(True))
    conf = parse_config_text("qemu", new_raw)[0]
    for k, v in overrides.items():          # restore_merge_config
        conf[k] = v
    # rescan: volumes of the VMID not referenced become unusedN
    referenced = {volid_of("qemu", v) for _, v in foreach_volume("qemu", conf, include_unused=True)}
    for volid in lingering:
        if volid not in referenced:
            add_unused_volume(conf, volid)
    return conf, devices, None


def lxc_restore_plan(cl, vol, vmid, node, storage, params, overrides, user, old):
    """The restore path of pve-container's create_vm + Create.pm
    (recover_config, create_disks, restore_configuration /
    sanitize_and_merge_config): (conf, devices, warnings, error)."""
    text = vol.config or ""
    meta = vol.meta or {}
    mvols = meta.get("volumes") or {}
    orig = parse_config_text("lxc", text)[0]
    is_root = user == ROOT
    warnings = []
    mp_param = {}
    storage_only = True
    rootfs = params.get("rootfs")
    if rootfs is not None:
        storage_only = False
        mp_param["rootfs"] = "%s:%s" % (storage, rootfs) if re.match(r"^\d+(\.\d+)?$", rootfs) \
            else rootfs
    for k, v in overrides.items():
        if re.match(r"^mp\d+$", k):
            storage_only = False
            mp_param[k] = "%s:%s" % (storage, v) if re.match(r"^\d+(\.\d+)?$", str(v)) else v
    if not storage_only and "rootfs" not in mp_param:
        return None, None, warnings, "mount points configured, but 'rootfs' not set - aborting\n"
    delayed = {}
    if storage_only:
        mp_param = {}
        for key, mp in foreach_volume("lxc", orig):
            if mp["type"] == "volume":
                if mp.get("size") is None:
                    return None, None, warnings, ("unable to detect disk size - please specify %s "
                                                  "(size)\n" % key)
                mp = dict(mp)
                size_gb = mp.pop("size") / float(GIB)
                mp["volume"] = "%s:%s" % (storage, ("%.15g" % size_gb))
                mp_param[key] = print_mountpoint(mp, key == "rootfs")
            else:
                if key == "rootfs":
                    return None, None, warnings, (
                        "restoring rootfs to %s mount is only possible by specifying -rootfs "
                        "manually!\n" % mp["type"])
                if not is_root:
                    return None, None, warnings, ("restoring '%s' to %s mount is only possible for "
                                                  "root\n" % (key, mp["type"]))
                if mp.get("backup"):
                    warnings.extend(["WARNING - unsupported configuration!",
                                     "backup was enabled for %s mount point %s ('%s')"
                                     % (mp["type"], key, mp["mp"]),
                                     "mount point configuration will be restored after archive "
                                     "extraction!",
                                     "contained files will be restored to wrong directory!"])
                delayed[key] = print_mountpoint(mp, key == "rootfs")
        if "rootfs" not in mp_param:
            return None, None, warnings, ("rootfs configuration could not be recovered, please "
                                          "check and specify manually!\n")
    # create_disks: new volumes for 'storage:size', given volumes as they are
    in_use = [v for _, v in _owned_volids("lxc", old.config(), vmid)] if old is not None and \
        not old.empty else []
    if old is not None and not old.empty:
        in_use += [v for _, v in _owned_volids("lxc", old.pending, vmid)]
    conf = {}
    devices = []
    for key, mp in foreach_volume("lxc", mp_param):
        volid = mp["volume"]
        m = NEW_DISK_RE.match(volid)
        sid = volume_storage(volid)
        if sid and m and m.group(1):
            st, err = _storage_error(cl, node, sid, "rootdir")
            if err:
                return None, None, warnings, err
            size_kb = int(float(m.group(2)) * 1024) * 1024
            mp = dict(mp)
            mp["volume"] = alloc_volid(st, sid, "lxc", vmid, "raw", in_use)
            mp["size"] = size_kb * 1024
            in_use.append(mp["volume"])
            info = mvols.get(key) or {}
            backed_up = key == "rootfs" or (mp.get("backup") and mp["type"] == "volume")
            used = 0
            if not storage_only and key == "rootfs":
                # the whole archive is extracted into the given rootfs
                used = sum(int(v.get("used") or 0) for v in mvols.values()) if mvols \
                    else int(meta.get("disk_used", 0))
            elif storage_only and backed_up:
                used = info.get("used")
                if used is None:
                    used = int(meta.get("disk_used", mp["size"] // 4)) if key == "rootfs" \
                        else mp["size"] // 4
            devices.append({"virtdev": key, "volid": mp["volume"], "size": mp["size"],
                            "used": int(used), "storage": sid, "st": st})
        conf[key] = print_mountpoint(mp, key == "rootfs")
    # update_pct_config with the other parameters, then
    # sanitize_and_merge_config (restricted for non-root)
    for k, v in overrides.items():
        if not re.match(r"^mp\d+$", k):
            conf[k] = v
    if params.get("unprivileged"):
        conf["unprivileged"] = "1"
    elif params.get("unprivileged") is None and orig.get("unprivileged") is not None:
        conf["unprivileged"] = orig["unprivileged"]
    for k, v in orig.items():
        if k in ("digest", "rootfs", "snapshots", "unprivileged", "parent", "template") or \
                re.match(r"^(mp|unused)\d+$", k):
            continue
        if params.get("unique") and re.match(r"^net\d+$", k):
            if re.search(r"(?:^|,)hwaddr=" + MAC_RE, v):
                v = re.sub(r"((?:^|,)hwaddr=)" + MAC_RE, lambda mm: mm.group(1) + _new_mac(cl, vmid), v)
            else:
                v = v + ",hwaddr=" + _new_mac(cl, vmid)
            conf[k] = v
            continue
        if conf.get(k) is None:
            conf[k] = v
    conf.setdefault("hostname", "CT%d" % vmid)
    if not conf.get("memory"):
        conf["memory"] = "512"
    conf.setdefault("swap", "512")
    conf.update(delayed)
    if str(orig.get("template", "0")) == "1":
        conf["template"] = "1"
    return conf, devices, warnings, None


QEMU_MANAGED = {"name", "tags", "protection", "template", "onboot", "description", "lock", "parent",
                "digest", "memory", "cores"}
LXC_MANAGED = {"hostname", "tags", "protection", "template", "onboot", "description", "lock",
               "parent", "digest", "memory", "swap", "cores", "cpulimit"}


def restored_guest_spec(conf, devices, vol, gtype, vmid, node, default_storage):
    """GUEST spec of the guest a restore creates: the attribute-backed keys
    as attributes, every other key of the restored config verbatim, keys
    the sim would generate but the config lacks deleted."""
    meta = vol.meta or {}
    disk_key = PRIMARY_KEY[gtype]
    primary = parse_volume(gtype, disk_key, conf.get(disk_key)) or {}
    pvolid = volid_of(gtype, primary) if primary else None
    maxdisk = primary.get("size") or int(meta.get("maxdisk", 8 * GIB))
    dev = {d["virtdev"]: d for d in devices}
    pdev = dev.get(disk_key)
    spec = {"vmid": vmid, "type": gtype, "node": node, "status": "stopped",
            "maxdisk": maxdisk, "disk": pdev["used"] if pdev else 0,
            "disk_storage": volume_storage(pvolid) or default_storage or "local",
            "disk_format": (pdev.get("format") if pdev else None) if gtype == "qemu" else None,
            "workload": meta.get("workload"), "tags": conf.get("tags") or None,
            "protection": 1 if str(conf.get("protection", "0")) == "1" else 0,
            "template": 1 if str(conf.get("template", "0")) == "1" else 0,
            "description": conf.get("description") or None,
            "volume_used": {d["virtdev"]: d["used"] for d in devices if d["virtdev"] != disk_key}}
    if "onboot" in conf:
        spec["onboot"] = int(conf["onboot"])
    if gtype == "qemu":
        spec["name"] = conf.get("name")
        spec["maxmem"] = parse_memory(conf.get("memory", 512)) * MIB
        spec["maxcpu"] = int(conf.get("cores", 1)) * int(conf.get("sockets", 1))
    else:
        spec["name"] = conf.get("hostname")
        spec["maxmem"] = parse_memory(conf.get("memory", 512)) * MIB
        spec["maxswap"] = int(conf.get("swap", 512)) * MIB
        spec["maxcpu"] = float(conf["cpulimit"]) if conf.get("cpulimit") else int(conf.get("cores", 1))
    managed = QEMU_MANAGED if gtype == "qemu" else LXC_MANAGED
    generated = Guest(spec, node).config()
    extra = {k: typed_value(gtype, k, v) for k, v in conf.items() if k not in managed}
    for k in generated:
        if k not in conf and k not in managed:
            extra[k] = None
    spec["config"] = extra
    return spec


def worker_restore(cl, task, gtype, node, vmid, vol, storage, params, user, existed, t0):
    """qmrestore / vzrestore. `existed`: the guest object that was
    overwritten (force=1) or None."""
    d = cl.duration(task.type)
    emsg = "unable to restore %s %d -" % (kind(gtype), vmid)
    holder = cl.live_guest(vmid)          # the 'create'-locked config
    err = None
    if gtype == "qemu":
        if holder is not None and holder.protection:
            err = "%s - protection mode enabled\n" % emsg
        elif holder is not None and holder.running_now():
            err = "%s vm is running\n" % emsg
    else:
        if holder is not None and holder.running_now():
            err = "%s can't overwrite running container\n" % emsg
    if vol is None and err is None:
        err = "can't find file '%s'\n" % (params.get("ostemplate") or params.get("archive"))
    volid = vol.volid if vol is not None else params.get("ostemplate") or params.get("archive")
    if gtype == "lxc" and err is None:
        task.log(t0, "recovering backed-up configuration from '%s'" % volid)
    destroy_on_error = existed is None

    def failed(t, e):
        if gtype == "qemu":
            task.log(t, "error before or during data restore, some or all disks were not "
                        "completely restored. VM %d state is NOT cleaned up." % vmid)
            if holder is not None and holder.lock == "create":
                holder.lock = None
        else:
            if destroy_on_error and holder is not None:
                cl.remove_guest(holder, t)
            elif holder is not None and holder.lock == "create":
                holder.lock = None
            e = "%s %s" % (emsg, str(e))
        cl.record(t, "restore-failed", holder, volid=volid, error=str(e).rstrip("\n"),
                  upid=task.upid) if holder is not None else None
        cl.touch()
        task.finish(t, e)

    if err:
        return task.at(t0 + EPS, lambda t: failed(t, err))
    overrides = params.get("overrides") or {}
    if gtype == "qemu":
        conf, devices, err = qemu_restore_plan(cl, vol, vmid, node, storage, overrides,
                                               params.get("unique"), existed)
        warnings = []
    else:
        conf, devices, warnings, err = lxc_restore_plan(cl, vol, vmid, node, storage, params,
                                                        overrides, user, existed)
    if err:
        return task.at(t0 + EPS, lambda t: failed(t, err))
    spec = restored_guest_spec(conf, devices, vol, gtype, vmid, node, storage)
    destroy_on_error = True if gtype == "lxc" else destroy_on_error
    total = sum(x["size"] for x in devices)
    used = sum(x["used"] for x in devices)
    if gtype == "qemu":
        path = cl.storage_any(vol.storage).volume_path(vol) if cl.storage_any(vol.storage) else volid
        if vol.format.startswith("pbs"):
            task.log(t0, "restore image chunks from '%s'" % vol.volname[len("backup/"):])
        else:
            comp = {"vma.zst": "zstd -q -d -c ", "vma.gz": "zcat ", "vma.lzo": "lzop -d -c "}.get(vol.format, "")
            task.log(t0, "restore vma archive: %s%s | vma extract -v -r /var/tmp/vzdumptmp%d.fifo - "
                         "/var/tmp/vzdumptmp%d" % (comp, path, task.pid, task.pid) if comp else
                     "restore vma archive: vma extract -v -r /var/tmp/vzdumptmp%d.fifo %s "
                     "/var/tmp/vzdumptmp%d" % (task.pid, path, task.pid))
            task.log(t0, "CFG: size: %d name: qemu-server.conf" % len(vol.config or ""))
            for i, dv in enumerate(devices):
                task.log(t0, "DEV: dev_id=%d size: %d devname: %s" % (i + 1, dv["size"], dv["devname"]))
            task.log(t0, "CTIME: %s" % time.strftime("%a %b %d %H:%M:%S %Y",
                                                      time.gmtime(vol.ctime + cl.utc_offset)))
        for dv in devices:
            if dv["st"] is not None and dv["st"].plugintype in ("lvmthin", "lvm"):
                task.log(t0 + d * 0.1, "  Logical volume \"%s\" created." % dv["volid"].split(":", 1)[1])
            task.log(t0 + d * 0.1, "new volume ID is '%s'" % dv["volid"])
        task.log(t0 + d * 0.9, "progress 100%% (read %d bytes, duration %d sec)" % (total, int(d)))
        task.log(t0 + d * 0.9, "total bytes read %d, sparse bytes %d (%.3g%%)"
                 % (total, max(0, total - used), 100.0 * max(0, total - used) / max(1, total)))
        task.log(t0 + d * 0.95, "rescan volumes...")
    else:
        for w in warnings:
            task.log(t0, w)
        for dv in devices:
            if dv["st"] is not None and dv["st"].plugintype in ("lvmthin", "lvm"):
                task.log(t0 + d * 0.1, "  Logical volume \"%s\" created." % dv["volid"].split(":", 1)[1])
        task.log(t0 + d * 0.2, "restoring '%s' now.." % volid)
        st = cl.storage_any(vol.storage)
        if st is not None and not st.is_pbs():
            task.log(t0 + d * 0.2, "extracting archive '%s'" % st.volume_path(vol))
        task.log(t0 + d * 0.8, "Total bytes read: %d (%s)" % (used, render_bytes(used)))
        task.log(t0 + d * 0.9, "merging backed-up and given configuration..")
    f = take_fault(task)
    if f == "hang":
        return
    if f == "fail":
        return task.at(t0 + d, lambda t: failed(t, fault_error(task)))

    def on_abort(t):
        if holder is not None and holder.lock == "create":
            if gtype == "lxc" and destroy_on_error:
                cl.remove_guest(holder, t)
            else:
                holder.lock = None
        cl.touch()
    task.on_abort = on_abort

    def done(t):
        spec["created_t"] = t
        pool = params.get("pool")
        if pool:
            spec["pool"] = pool
        if params.get("ha-managed"):
            spec["ha"] = "started" if params.get("start") else "stopped"
        ng = cl.add_guest(spec, replace=True)
        if ng.template and gtype == "qemu":
            task.log(t, "Convert to template.")
        cl.record(t, "restore", ng, volid=volid, storage=ng.disk_storage, upid=task.upid,
                  force=int(existed is not None),
                  volumes=[{"key": x["virtdev"], "volid": x["volid"], "size": x["size"]}
                           for x in devices])
        if params.get("ha-managed"):
            st_ = "started" if params.get("start") else "stopped"
            task.log(t, "Add HA resource with request-state '%s'" % st_ if gtype == "qemu"
                     else "Add as HA resource")
        if params.get("start"):
            if gtype == "qemu":
                task.log(t, "Execute autostart")
            if ha_managed(ng):
                ht = cl.start_task(node, "hastart", vmid, user, t)
                ha_request(cl, ht, ng, vmid, gtype, "start", None, t)
            else:
                st_task = cl.start_task(node, "qmstart" if gtype == "qemu" else "vzstart", vmid, user, t)
                worker_start(cl, st_task, gtype, node, vmid, 0, t, how="restore")
        cl.touch()
        task.finish(t)
    task.at(t0 + d, done)


# ------------------------------------------------------------------ config

def unique_tags(tags, style=None):
    """PVE::GuestHelpers::get_unique_tags with datacenter.cfg tag-style
    `style` ({"ordering": "config"|"alphabetical", "case-sensitive": 0|1}):
    by default sorted case-insensitively and lower-cased, duplicates
    dropped; ordering=config keeps the given order."""
    style = style or {}
    cs = bool(style.get("case-sensitive"))
    items = [t for t in re.split(r"[,;\s]+", tags or "") if t]
    if style.get("ordering") != "config":
        items = sorted(items, key=(lambda x: x) if cs else (lambda x: x.lower()))
    seen = set()
    res = []
    for t in items:
        if not cs:
            t = t.lower()
        if t in seen:
            continue
        seen.add(t)
        res.append(t)
    return ";".join(res)


# qemu-server QemuServer.pm $fast_plug_option: applied from [PENDING] even
# on a running VM (vmconfig_hotplug_pending)
FAST_PLUG = {"description", "hookscript", "lock", "migrate_downtime", "migrate_speed", "name",
             "onboot", "protection", "shares", "startup", "tags", "vmstatestorage", "cicustom",
             "cipassword", "citype", "ciupgrade", "ciuser", "ipconfig0", "nameserver",
             "searchdomain", "sshkeys"}


def _register_unused_drive(g, key, old_value, new_value=None):
    """vmconfig_register_unused_drive for a qemu drive that is replaced or
    detached: the VM's own (non-cdrom) volume becomes unusedN (unless it is
    still referenced, which write_vm_config cleans up)."""
    old = parse_drive(key, old_value)
    if old is None or drive_is_cdrom(old) or drive_is_cloudinit(old):
        return None
    volid = old.get("file")
    new = parse_drive(key, new_value) if new_value is not None else None
    if new is not None and new.get("file") == volid:
        return None
    if not volume_storage(volid) or volume_owner(volid) != g.vmid:
        return None
    conf = g.config()
    conf.pop(key, None)
    if any(volid_of("qemu", v) == volid for _, v in foreach_volume("qemu", conf)):
        return None
    ukey = add_unused_volume(conf, volid)
    if ukey:
        g.set_config_key(ukey, volid)
    return ukey


def apply_pending(cl, g, selection=None):
    """vmconfig_apply_pending (qemu, stopped VM): pending deletions (a drive
    becomes unusedN, or is freed with '!'), then the pending values (a
    replaced drive becomes unusedN). Returns the keys applied."""
    applied = []
    pend = g.pending
    pdel = parse_pending_delete(pend.get("delete"))
    conf = g.config()
    for opt in sorted(pdel):
        if selection is not None and opt not in selection:
            continue
        if opt.startswith("unused"):
            continue                     # "internal error" upstream
        if opt in conf and opt in QEMU_DRIVE_SET and not pdel[opt]:
            _register_unused_drive(g, opt, conf[opt])
        pdel.pop(opt)
        if opt in conf:
            g.set_config_key(opt, None)
        applied.append(opt)
    if pdel:
        pend["delete"] = print_pending_delete(pdel)
    else:
        pend.pop("delete", None)
    cleanup_pending(g)
    for opt in sorted(k for k in pend if k != "delete"):
        if selection is not None and opt not in selection:
            continue
        value = pend.pop(opt)
        cur = g.config().get(opt)
        if cur is not None and opt in QEMU_DRIVE_SET:
            _register_unused_drive(g, opt, cur, value)
        g.set_config_key(opt, value)
        applied.append(opt)
    return applied


def cleanup_pending(g):
    """AbstractConfig cleanup_pending: drop pending values equal to the
    current ones and deletions of keys that are not set."""
    pend = g.pending
    conf = g.config()
    for opt in [k for k in pend if k != "delete"]:
        if conf.get(opt) is not None and str(pend[opt]) == str(conf[opt]):
            del pend[opt]
    pdel = {k: f for k, f in parse_pending_delete(pend.get("delete")).items() if conf.get(k) is not None}
    if pdel:
        pend["delete"] = print_pending_delete(pdel)
    else:
        pend.pop("delete", None)


def apply_config(cl, g, sets, deletes, t, user):
    """Apply a config update (update_vm_api / update_pct_config as the sim
    does them: the given keys take effect at once, also on a running
    guest). Pending changes: a key set or deleted leaves [PENDING]; then a
    stopped VM gets all remaining pending changes applied
    (vmconfig_apply_pending), a running VM the fast-plug ones (tags, name,
    description, onboot, protection, ...); containers keep the others
    pending (their apply takes only the modified keys). Returns the list of
    changed keys."""
    changed = []
    conf_before = g.config()
    pend = g.pending
    pdel = parse_pending_delete(pend.get("delete"))
    for opt in deletes:
        in_pending = opt != "delete" and opt in pend
        if opt not in conf_before and not in_pending:
            continue
        changed.append(opt)
        if in_pending:
            del pend[opt]
        pdel.pop(opt, None)
        if opt in conf_before:
            if g.type == "qemu" and opt in QEMU_DRIVE_SET:
                _register_unused_drive(g, opt, conf_before[opt])
            g.set_config_key(opt, None)
    for k, v in sets.items():
        changed.append(k)
        pend.pop(k, None)
        pdel.pop(k, None)
        if k == "tags":
            v = unique_tags(v, cl.tag_style) or None
        elif k == "lock":
            v = v or None
        if g.type == "qemu" and k in QEMU_DRIVE_SET and conf_before.get(k) is not None:
            _register_unused_drive(g, k, conf_before[k], v)
        g.set_config_key(k, v)
    if pdel:
        pend["delete"] = print_pending_delete(pdel)
    else:
        pend.pop("delete", None)
    applied = []
    if pend:
        cleanup_pending(g)
        if g.type == "qemu" and not g.running_now():
            applied = apply_pending(cl, g)
        elif g.type == "qemu":
            for k in sorted(k for k in pend if k in FAST_PLUG):
                g.set_config_key(k, pend.pop(k))
                applied.append(k)
    if changed:
        extra = {"pending_applied": applied} if applied else {}
        cl.record(t, "config", g, changes=sorted(set(changed)), user=user, **extra)
        cl.touch()
    return changed


# ------------------------------------------------------------------ HA config digest

def ha_digest(cl):
    text = ""
    for g in cl.live_guests():
        if g.ha_state is not None:
            text += "%s: %d\n\tstate %s\n\n" % ("vm" if g.type == "qemu" else "ct", g.vmid, g.ha_state)
    return hashlib.sha1(text.encode()).hexdigest()
