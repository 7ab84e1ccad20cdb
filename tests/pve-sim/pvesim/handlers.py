"""API handlers, keyed by (method, path template) exactly as in
endpoints.json. A request reaches a handler only after authentication,
routing, the allowtoken/proxyto checks and full parameter verification
(server.py), so handlers see valid input:

    req.args     verified parameters, typed (int / 0|1 / float / str)
    req.params   the same, as received (strings for form input)
    req.auth     AuthInfo (kind, userid)
    req.sim      the Sim (req.sim.cluster is the model, req.sim.auth ...)

A handler returns Result(data) (wrapped as {"data": ...}) or raises
SimError(msg, code=500, errors=None) - a plain die() upstream, so msg keeps
its trailing newline; raise_param_exc() is SimError(PARAM_ERROR_MSG, 400,
errors={...}) (param_error() below). Endpoints in the contract without a
handler answer 501 "Method '<M> <path>' not implemented" after
verification.

Write calls: the handler does what upstream does before fork_worker
(synchronous checks -> HTTP 500/400), then creates the task with
cluster.start_task(node, type, id, user, now, req) and hands it to a
worker in ops.py; it returns the UPID. Everything the worker does happens
in sim time (Cluster timers), see ops.py and tasks.py.
"""

import re
import time

from . import ops
from .jsonschema import PARAM_ERROR_MSG
from .model import SimError
from .perl import perl_str, split_list
from .rrd import rrd_data
from .tasks import parse_upid, status_type

HANDLERS = {}
ROOT = "root@pam"


class Result:
    __slots__ = ("data", "total", "cache_key", "raw")

    def __init__(self, data, total=None, cache_key=None, raw=None):
        self.data = data
        self.total = total
        self.cache_key = cache_key   # identical key => identical body (encoding cache)
        # the whole body {"data":...} already encoded (data is then None;
        # the server decodes raw when a fault needs the objects)
        self.raw = raw


def api(method, path):
    def deco(fn):
        HANDLERS[(method, path)] = fn
        return fn
    return deco


def param_error(errors):
    raise SimError(PARAM_ERROR_MSG, 400, errors=errors)


def user_of(req):
    return req.auth.userid or ROOT


def root_only(req, keys, defined=False):
    """raise_param_exc({k => "Only root may use this option."}) for keys
    set (truthy, or merely defined with defined=True) by a non-root user."""
    if user_of(req) == ROOT:
        return
    for k in keys:
        v = req.args.get(k)
        if (v is not None) if defined else v:
            param_error({k: "Only root may use this option."})


def wait_task(req, task, delay):
    """Wait (without holding the model lock) up to `delay` sim seconds for
    a task to end; True when it ended."""
    cl = req.sim.cluster
    deadline = time.monotonic() + float(delay) / max(cl.clock.speed, 1e-9)
    while True:
        with cl.lock:
            cl.sync()
            if not task.running():
                return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


# ------------------------------------------------------------------ /version

@api("GET", "/version")
def get_version(req):
    v = req.sim.scenario.get("version") or {}
    res = {"repoid": v.get("repoid", "5b5e4fcd1d0bd9f9"),
           "version": v.get("version", "9.1.4"),
           "release": v.get("release", "9.1")}
    if v.get("console"):
        res["console"] = v["console"]
    return Result(res)


# ------------------------------------------------------------------ access

@api("POST", "/access/ticket")
def create_ticket(req):
    return Result(req.sim.auth.create_ticket(req.args, req.sim.cluster.clustername))


# ------------------------------------------------------------------ cluster

@api("GET", "/cluster/resources")
def cluster_resources(req):
    rtype = req.args.get("type")
    cl = req.sim.cluster
    with cl.lock:
        now = cl.sync()
        if rtype == "sdn":
            return Result([])          # no SDN zones in the simulation
        key, body = cl.resources(rtype, now)
    return Result(None, cache_key=key, raw=body)


@api("GET", "/cluster/nextid")
def cluster_nextid(req):
    """API2/Cluster.pm nextid. With vmid=N Perl returns the parameter
    scalar as received (a JSON string); the search loop returns a number."""
    cl = req.sim.cluster
    with cl.lock:
        cl.sync()
        used = {g.vmid for g in cl.live_guests()}
        if "vmid" in req.args:
            vmid = req.args["vmid"]
            if vmid not in used:
                return Result(str(req.params["vmid"]))
            param_error({"vmid": "VM %d already exists" % vmid})
        for i in range(cl.next_lower, cl.next_upper):
            if i not in used:
                return Result(i)
    raise SimError("unable to get any free VMID in range [%d, %d]\n" % (cl.next_lower, cl.next_upper))


def _parse_sid(cl, sid):
    """PVE::HA::Config::parse_sid -> (sid, type, vmid)."""
    m = re.match(r"^(\d+)$", sid)
    if m:
        g = cl.live_guest(int(m.group(1)))
        if g is None:
            raise SimError("unable to detect SID from VMID - VM/CT %s does not exist\n" % m.group(1))
        t = "vm" if g.type == "qemu" else "ct"
        return "%s:%d" % (t, g.vmid), t, g.vmid
    m = re.match(r"^(\S+):(\S+)$", sid)
    if not m:
        raise SimError("unable to parse service id '%s'\n" % sid)
    t, name = m.group(1), m.group(2)
    return "%s:%s" % (t, name), t, int(name) if name.isdigit() else None


def _ha_guest(cl, t, vmid):
    if vmid is None or t not in ("vm", "ct"):
        return None
    g = cl.live_guest(vmid)
    if g is None or g.ha_state is None or (g.type == "qemu") != (t == "vm"):
        return None
    return g


@api("GET", "/cluster/ha/resources/{sid}")
def ha_resource_get(req):
    cl = req.sim.cluster
    with cl.lock:
        cl.sync()
        sid, t, vmid = _parse_sid(cl, req.args["sid"])
        g = _ha_guest(cl, t, vmid)
        if g is None:
            raise SimError("no such resource '%s'\n" % sid)
        return Result({"sid": sid, "state": g.ha_state, "type": t, "digest": ops.ha_digest(cl)})


@api("DELETE", "/cluster/ha/resources/{sid}")
def ha_resource_delete(req):
    cl = req.sim.cluster
    with cl.lock:
        now = cl.sync()
        sid, t, vmid = _parse_sid(cl, req.args["sid"])
        g = _ha_guest(cl, t, vmid)
        if g is None:
            raise SimError("cannot delete service '%s', not HA managed!\n" % sid)
        g.ha_state = None
        g.hastate = None
        cl.record(now, "ha-remove", g, sid=sid, user=user_of(req))
        cl.touch()
    return Result(None)


# ------------------------------------------------------------------ guests: status / config

def _status_current(req, gtype):
    cl = req.sim.cluster
    with cl.lock:
        now = cl.sync()
        g = cl.find_guest(gtype, req.args["node"], req.args["vmid"])
        return Result(cl.guest_status(g, now))


def _config(req, gtype):
    """vm_config (qemu-server API2/Qemu.pm, pve-container API2/LXC/Config.pm):
    load_snapshot_config (the snapshot + the file's digest) or
    load_current_config (pending values applied unless current=1)."""
    cl = req.sim.cluster
    snap = req.args.get("snapshot")
    if snap and req.args.get("current"):
        msg = "cannot use 'snapshot' parameter with 'current'"
        param_error({"snapshot": msg, "current": msg})
    with cl.lock:
        cl.sync()
        g = cl.find_guest(gtype, req.args["node"], req.args["vmid"])
        if snap:
            if snap not in g.snapshots:
                raise SimError("snapshot '%s' does not exist\n" % snap)
            conf = dict(g.snapshots[snap])
            conf["digest"] = g.digest()
            return Result(conf)
        return Result(g.current_config(bool(req.args.get("current"))))


@api("GET", "/nodes/{node}/qemu/{vmid}/status/current")
def qemu_status_current(req):
    return _status_current(req, "qemu")


@api("GET", "/nodes/{node}/lxc/{vmid}/status/current")
def lxc_status_current(req):
    return _status_current(req, "lxc")


@api("GET", "/nodes/{node}/qemu/{vmid}/config")
def qemu_config(req):
    return _config(req, "qemu")


@api("GET", "/nodes/{node}/lxc/{vmid}/config")
def lxc_config(req):
    return _config(req, "lxc")


CONFIG_META = {"node", "vmid", "digest", "background_delay", "skiplock", "delete", "revert",
               "force", "skip_cloud_init", "import-working-storage"}
ROOT_OPTIONS = {"lock", "args", "hookscript"}


def _update_config(req, gtype, sync):
    """qemu-server update_vm_api / pve-container update_vm."""
    cl = req.sim.cluster
    a = req.args
    node, vmid = a["node"], a["vmid"]
    user = user_of(req)
    if gtype == "qemu":
        root_only(req, ["skiplock"])
    skiplock = a.get("skiplock") if gtype == "qemu" else 0
    sets = {k: perl_str(v) for k, v in req.params.items() if k not in CONFIG_META}
    deletes = []
    for opt in split_list(a.get("delete")):
        opt = "ide2" if (opt == "cdrom" and gtype == "qemu") else opt
        if opt in sets:
            param_error({"delete": "you can't use '-%s' and -delete %s' at the same time" % (opt, opt)})
        deletes.append(opt)
    if not deletes and not a.get("revert") and not sets:
        raise SimError("no options specified\n")
    if user != ROOT:
        for opt in list(sets) + deletes:
            if opt in ROOT_OPTIONS:
                raise SimError("only root can set '%s' config\n" % opt)
    paramarr = []
    for k in sorted(k for k in req.params if k not in ("node", "vmid", "digest", "background_delay",
                                                         "skip_cloud_init", "import-working-storage")):
        paramarr.append("-%s %s" % (k, req.params[k]))
    digest = a.get("digest")

    def load_and_check():
        g = cl.local_guest(gtype, node, vmid)
        if g is None:
            raise SimError(ops.cfg_missing(gtype, node, vmid))
        if gtype == "qemu":
            if digest and digest != g.digest():
                raise SimError("checksum mismatch (file change by other user?)\n")
            if g.lock and not skiplock:
                raise SimError(ops.locked_msg(g))
        else:
            if g.lock:
                raise SimError(ops.locked_msg(g))
            if digest and digest != g.digest():
                raise SimError("detected modified configuration - file changed by other user? "
                               "Try again.\n")
        return g

    with cl.lock:
        now = cl.sync()
        g = load_and_check()
        if sync:
            ops.apply_config(cl, g, sets, deletes, now, user)
            return Result(None)
        task = cl.start_task(node, "qmconfig", vmid, user, now, req)
        task.log(now, "update VM %d: %s" % (vmid, " ".join(paramarr)))
        f = ops.take_fault(task)

        def work(t):
            try:
                g2 = load_and_check()
            except SimError as e:
                return task.finish(t, e.msg)
            if f == "fail":
                return task.finish(t, ops.fault_error(task))
            for opt in deletes:
                if opt not in g2.config() and (opt == "delete" or opt not in g2.pending):
                    task.log(t, "cannot delete '%s' - not set in current configuration!" % opt)
            ops.apply_config(cl, g2, sets, deletes, t, user)
            task.finish(t)
        if f != "hang":
            task.at(now + cl.duration("qmconfig"), work)
    delay = a.get("background_delay")
    if delay:
        if wait_task(req, task, delay):
            if status_type(task.exitstatus) in ("ok", "warning"):
                return Result(None)
            raise SimError("failed to update VM %d: %s\n" % (vmid, task.exitstatus))
    return Result(task.upid)


@api("PUT", "/nodes/{node}/qemu/{vmid}/config")
def qemu_config_put(req):
    return _update_config(req, "qemu", True)


@api("POST", "/nodes/{node}/qemu/{vmid}/config")
def qemu_config_post(req):
    return _update_config(req, "qemu", False)


@api("PUT", "/nodes/{node}/lxc/{vmid}/config")
def lxc_config_put(req):
    return _update_config(req, "lxc", True)


# ------------------------------------------------------------------ power

def _power(req, gtype, action):
    cl = req.sim.cluster
    a = req.args
    node, vmid = a["node"], a["vmid"]
    user = user_of(req)
    if gtype == "qemu":
        if action == "start":
            for k in ("stateuri", "skiplock", "migratedfrom", "migration_type", "migration_network",
                      "targetstorage", "force-cpu", "with-conntrack-state", "nets-host-mtu"):
                root_only(req, [k])
            if a.get("targetstorage") and not a.get("migratedfrom"):
                param_error({"targetstorage": "targetstorage can only by used with migratedfrom."})
        else:
            root_only(req, ["skiplock", "keepActive"] + (["migratedfrom"] if action == "stop" else []))
    else:
        root_only(req, ["skiplock"])
    skiplock = a.get("skiplock", 0)
    with cl.lock:
        now = cl.sync()
        g_any = cl.live_guest(vmid)
        g = cl.local_guest(gtype, node, vmid)
        paused_stop = False
        if gtype == "lxc":
            running = g is not None and g.running_now()
            if action == "start" and running:
                raise SimError("CT %d already running\n" % vmid)
            if action != "start" and not running:
                raise SimError("CT %d not running\n" % vmid)
        elif action == "shutdown" and g is not None and g.running_now() \
                and g.runstate in ("paused", "suspended"):
            if a.get("forceStop"):
                paused_stop = True
            else:
                raise SimError("VM is paused - cannot shutdown\n")
        ha = ops.ha_managed(g_any) and not (action == "stop" and a.get("migratedfrom"))
        if ha:
            if action == "stop" and a.get("overrule-shutdown"):
                param_error({"overrule-shutdown": "Not applicable for HA resources."})
            wtype = "hastart" if action == "start" else "hastop"
            task = cl.start_task(node, wtype, vmid, user, now, req)
            if action == "shutdown":
                timeout = a.get("timeout", 60)
            else:
                timeout = 0
            ops.ha_request(cl, task, g_any, vmid, gtype, "start" if action == "start" else "stop",
                           timeout, now)
            return Result(task.upid)
        prefix = "qm" if gtype == "qemu" else "vz"
        task = cl.start_task(node, prefix + action, vmid, user, now, req)
        if action == "start":
            ops.worker_start(cl, task, gtype, node, vmid, skiplock, now)
        elif action == "stop":
            if a.get("overrule-shutdown"):
                victims = [t for t in cl.task_order if t.running() and t.node == node
                           and t.type == prefix + "shutdown" and t.id == str(vmid)]
                for v in victims:
                    v.abort(now)
                if victims:
                    task.log(now, "overruled %sshutdown tasks: %s" % (prefix, ", ".join(v.upid for v in victims)))
            ops.worker_stop(cl, task, gtype, node, vmid, skiplock, now)
        else:
            ops.worker_shutdown(cl, task, gtype, node, vmid, skiplock, a.get("timeout"),
                                a.get("forceStop", 0), now, paused_stop=paused_stop)
        return Result(task.upid)


@api("POST", "/nodes/{node}/qemu/{vmid}/status/start")
def qemu_start(req):
    return _power(req, "qemu", "start")


@api("POST", "/nodes/{node}/qemu/{vmid}/status/stop")
def qemu_stop(req):
    return _power(req, "qemu", "stop")


@api("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown")
def qemu_shutdown(req):
    return _power(req, "qemu", "shutdown")


@api("POST", "/nodes/{node}/lxc/{vmid}/status/start")
def lxc_start(req):
    return _power(req, "lxc", "start")


@api("POST", "/nodes/{node}/lxc/{vmid}/status/stop")
def lxc_stop(req):
    return _power(req, "lxc", "stop")


@api("POST", "/nodes/{node}/lxc/{vmid}/status/shutdown")
def lxc_shutdown(req):
    return _power(req, "lxc", "shutdown")


# ------------------------------------------------------------------ snapshots

def _snapshot_list(req, gtype):
    cl = req.sim.cluster
    with cl.lock:
        cl.sync()
        g = cl.find_guest(gtype, req.args["node"], req.args["vmid"])
        res = []
        for name in sorted(g.snapshots, key=lambda n: (g.snapshots[n].get("snaptime", 0), n)):
            d = g.snapshots[name]
            item = {"name": name, "snaptime": int(d.get("snaptime") or 0)}
            if gtype == "qemu":
                item["vmstate"] = 1 if d.get("vmstate") else 0
            item["description"] = d.get("description") or ""
            if d.get("parent"):
                item["parent"] = d["parent"]
            if d.get("snapstate"):
                item["snapstate"] = d["snapstate"]
            res.append(item)
        cur = {"name": "current", "digest": g.digest(),
               "running": 1 if g.running_now() else 0, "description": "You are here!"}
        if g.parent:
            cur["parent"] = g.parent
        res.append(cur)
        return Result(res)


def _snapshot_create(req, gtype):
    cl = req.sim.cluster
    a = req.args
    node, vmid, snapname = a["node"], a["vmid"], a["snapname"]
    if snapname == "current":
        raise SimError("unable to use snapshot name 'current' (reserved name)\n")
    if gtype == "qemu" and snapname.lower() == "pending":
        raise SimError("unable to use snapshot name 'pending' (reserved name)\n")
    if gtype == "lxc" and snapname == "vzdump":
        raise SimError("unable to use snapshot name 'vzdump' (reserved name)\n")
    with cl.lock:
        now = cl.sync()
        if gtype == "qemu":
            cl.find_guest(gtype, node, vmid)
        task = cl.start_task(node, "qmsnapshot" if gtype == "qemu" else "vzsnapshot", vmid,
                             user_of(req), now, req)
        ops.worker_snapshot(cl, task, gtype, node, vmid, snapname, a.get("vmstate"),
                            a.get("description"), now)
        return Result(task.upid)


def _snapshot_delete(req, gtype):
    cl = req.sim.cluster
    a = req.args
    with cl.lock:
        now = cl.sync()
        task = cl.start_task(a["node"], "qmdelsnapshot" if gtype == "qemu" else "vzdelsnapshot",
                             a["vmid"], user_of(req), now, req)
        ops.worker_delsnapshot(cl, task, gtype, a["node"], a["vmid"], a["snapname"], a.get("force"), now)
        return Result(task.upid)


def _snapshot_rollback(req, gtype):
    cl = req.sim.cluster
    a = req.args
    with cl.lock:
        now = cl.sync()
        task = cl.start_task(a["node"], "qmrollback" if gtype == "qemu" else "vzrollback",
                             a["vmid"], user_of(req), now, req)
        ops.worker_rollback(cl, task, gtype, a["node"], a["vmid"], a["snapname"], a.get("start"), now)
        return Result(task.upid)


@api("GET", "/nodes/{node}/qemu/{vmid}/snapshot")
def qemu_snapshot_list(req):
    return _snapshot_list(req, "qemu")


@api("GET", "/nodes/{node}/lxc/{vmid}/snapshot")
def lxc_snapshot_list(req):
    return _snapshot_list(req, "lxc")


@api("POST", "/nodes/{node}/qemu/{vmid}/snapshot")
def qemu_snapshot_create(req):
    return _snapshot_create(req, "qemu")


@api("POST", "/nodes/{node}/lxc/{vmid}/snapshot")
def lxc_snapshot_create(req):
    return _snapshot_create(req, "lxc")


@api("DELETE", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}")
def qemu_snapshot_delete(req):
    return _snapshot_delete(req, "qemu")


@api("DELETE", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}")
def lxc_snapshot_delete(req):
    return _snapshot_delete(req, "lxc")


@api("POST", "/nodes/{node}/qemu/{vmid}/snapshot/{snapname}/rollback")
def qemu_snapshot_rollback(req):
    return _snapshot_rollback(req, "qemu")


@api("POST", "/nodes/{node}/lxc/{vmid}/snapshot/{snapname}/rollback")
def lxc_snapshot_rollback(req):
    return _snapshot_rollback(req, "lxc")


# ------------------------------------------------------------------ destroy

def _destroy(req, gtype):
    cl = req.sim.cluster
    a = req.args
    node, vmid = a["node"], a["vmid"]
    if gtype == "qemu":
        root_only(req, ["skiplock"])
    purge = a.get("purge", 0)
    with cl.lock:
        now = cl.sync()
        g = cl.local_guest(gtype, node, vmid)
        if g is None:
            raise SimError(ops.cfg_missing(gtype, node, vmid))
        err = ops.destroy_early_checks(g, gtype, vmid, purge, a.get("force", 0))
        if err:
            raise SimError(err)
        task = cl.start_task(node, "qmdestroy" if gtype == "qemu" else "vzdestroy", vmid,
                             user_of(req), now, req)
        ops.worker_destroy(cl, task, gtype, node, vmid, purge, a.get("skiplock", 0),
                           a.get("force", 0), now, a.get("destroy-unreferenced-disks", 0))
        return Result(task.upid)


@api("DELETE", "/nodes/{node}/qemu/{vmid}")
def qemu_destroy(req):
    return _destroy(req, "qemu")


@api("DELETE", "/nodes/{node}/lxc/{vmid}")
def lxc_destroy(req):
    return _destroy(req, "lxc")


# ------------------------------------------------------------------ create / restore

DRIVE_RE = re.compile(r"^(ide|sata|scsi|virtio|efidisk|tpmstate)\d+$")
QEMU_RESTORE_META = {"node", "vmid", "archive", "storage", "force", "unique", "start", "bwlimit",
                     "live-restore", "pool", "ha-managed", "import-working-storage"}
LXC_RESTORE_META = {"node", "vmid", "ostemplate", "storage", "force", "restore", "unique", "start",
                    "bwlimit", "pool", "ignore-unpack-errors", "unprivileged", "ha-managed",
                    "password", "ssh-public-keys", "rootfs"}


def _archive_volume(cl, node, volid, content="backup"):
    """check_volume_access + locate the archive: (storage instance, Volume|None)."""
    if ":" not in volid:
        raise SimError("unable to parse volume ID '%s'\n" % volid)
    sid, _, volname = volid.partition(":")
    if not cl.storage_defined(sid):
        raise SimError("storage '%s' does not exist\n" % sid)
    st = cl.storage(node, sid)
    if st is None:
        return None, None
    return st, st.volumes.get(volname)


def _exists_msg(g):
    return "%s %d already exists on node '%s'\n" % (ops.kind(g.type), g.vmid, g.node)


def _check_pool(cl, pool):
    if pool is not None and pool not in cl.pools:
        raise SimError("pool '%s' does not exist\n" % pool)


@api("POST", "/nodes/{node}/qemu")
def qemu_create(req):
    cl = req.sim.cluster
    a = req.args
    node, vmid = a["node"], a["vmid"]
    user = user_of(req)
    archive = a.get("archive")
    overrides = {k: v for k, v in req.params.items() if k not in QEMU_RESTORE_META}
    with cl.lock:
        now = cl.sync()
        _check_pool(cl, a.get("pool"))
        vol = None
        if archive:
            for opt in sorted(overrides):
                if DRIVE_RE.match(opt):
                    param_error({opt: "option conflicts with option 'archive'"})
            if archive == "-":
                raise SimError("pipe requires cli environment\n")
            if archive.startswith("/"):
                if user != ROOT:
                    raise SimError("Only root can pass arbitrary filesystem paths.\n")
                raise SimError("can't find file '%s'\n" % archive)
            st, vol = _archive_volume(cl, node, archive)
            if st is None:
                raise SimError("storage '%s' is not available on node '%s'\n"
                               % (archive.split(":", 1)[0], node))
            if vol is None and not st.is_pbs():
                raise SimError("can't find file '%s'\n" % archive)
        emsg = "unable to %s VM %d -" % ("restore" if archive else "create", vmid)
        existing = cl.live_guest(vmid)
        force = a.get("force", 0)
        if existing is not None:
            if not force or existing.type != "qemu" or existing.node != node:
                raise SimError("%s %s" % (emsg, _exists_msg(existing)))
            if existing.lock:
                raise SimError("%s %s" % (emsg, ops.locked_msg(existing)))
            existing.lock = "create"
            existed = existing
        else:
            cl.add_guest({"vmid": vmid, "type": "qemu", "node": node, "status": "stopped",
                          "empty": True, "lock": "create", "created_t": now}, replace=True)
            existed = None
        cl.touch()
        if not archive:
            task = cl.start_task(node, "qmcreate", vmid, user, now, req)
            _create_worker(cl, task, "qemu", node, vmid, overrides, a, now)
            return Result(task.upid)
        task = cl.start_task(node, "qmrestore", vmid, user, now, req)
        params = {"overrides": overrides, "unique": a.get("unique"), "start": a.get("start"),
                  "pool": a.get("pool"), "ha-managed": a.get("ha-managed"), "archive": archive}
        ops.worker_restore(cl, task, "qemu", node, vmid, vol, a.get("storage"), params, user,
                           existed, now)
        return Result(task.upid)


def _create_worker(cl, task, gtype, node, vmid, overrides, a, now):
    """qmcreate / vzcreate (minimal: a stopped guest from the parameters)."""
    d = cl.duration(task.type) if task.type in cl.durations else 1.0

    def done(t):
        spec = {"vmid": vmid, "type": gtype, "node": node, "status": "stopped", "created_t": t,
                "name": overrides.get("name") or overrides.get("hostname"),
                "tags": ops.unique_tags(overrides.get("tags"), cl.tag_style) or None,
                "protection": 1 if str(overrides.get("protection", "0")) == "1" else 0,
                "description": overrides.get("description"), "pool": a.get("pool")}
        if overrides.get("memory"):
            spec["maxmem"] = ops.parse_memory(overrides["memory"]) * 1048576
        if overrides.get("cores"):
            spec["maxcpu"] = int(overrides["cores"])
        g = cl.add_guest(spec, replace=True)
        cl.record(t, "create", g, upid=task.upid)
        task.finish(t)
    if ops.take_fault(task) == "hang":
        return
    if task.fault is not None:
        def failed(t):
            h = cl.live_guest(vmid)
            if h is not None and h.empty:
                cl.remove_guest(h, t)
            task.finish(t, ops.fault_error(task))
        return task.at(now + d, failed)
    task.at(now + d, done)


@api("POST", "/nodes/{node}/lxc")
def lxc_create(req):
    cl = req.sim.cluster
    a = req.args
    node, vmid = a["node"], a["vmid"]
    user = user_of(req)
    restore = a.get("restore", 0)
    force = a.get("force", 0)
    overrides = {k: v for k, v in req.params.items() if k not in LXC_RESTORE_META}
    with cl.lock:
        now = cl.sync()
        here = cl.local_guest("lxc", node, vmid)
        if not (here is not None and restore and force):
            existing = cl.live_guest(vmid)
            if existing is not None:
                raise SimError(_exists_msg(existing))
        else:
            if here.running_now():
                raise SimError("can't overwrite running container\n")
            if here.protection:
                raise SimError("unable to restore CT %d - protection mode enabled\n" % vmid)
        _check_pool(cl, a.get("pool"))
        storage = a.get("storage") or "local"
        ostemplate = a["ostemplate"]
        if ostemplate == "-":
            raise SimError("pipe requires cli environment\n")
        if ostemplate.startswith("/"):
            if user != ROOT:
                raise SimError("Only root can pass arbitrary filesystem paths.\n")
            raise SimError("can't find file '%s'\n" % ostemplate)
        st_arch, vol = _archive_volume(cl, node, ostemplate)
        rootfs = a.get("rootfs")
        sid = storage
        if rootfs:
            m = re.match(r"^(?:volume=)?([a-z][a-z0-9\-_.]*[a-z0-9]):", rootfs, re.I)
            sid = m.group(1) if m else storage
        if not cl.storage_defined(sid):
            raise SimError("storage '%s' does not exist\n" % sid)
        st = cl.storage(node, sid)
        if st is None:
            raise SimError("storage '%s' is not available on node '%s'\n" % (sid, node))
        if not st.has_content("rootdir"):
            param_error({"storage": "storage '%s' does not support container directories" % sid})
        emsg = "unable to %s CT %d -" % ("restore" if restore else "create", vmid)
        existing = cl.live_guest(vmid)
        if existing is not None:
            if existing.type != "lxc" or existing.node != node:
                raise SimError("%s %s" % (emsg, _exists_msg(existing)))
            if existing.lock:
                raise SimError("%s %s" % (emsg, ops.locked_msg(existing)))
            existing.lock = "create"
            existed = existing
        else:
            cl.add_guest({"vmid": vmid, "type": "lxc", "node": node, "status": "stopped",
                          "empty": True, "lock": "create", "created_t": now}, replace=True)
            existed = None
        cl.touch()
        if not restore:
            task = cl.start_task(node, "vzcreate", vmid, user, now, req)
            _create_worker(cl, task, "lxc", node, vmid, overrides, a, now)
            return Result(task.upid)
        task = cl.start_task(node, "vzrestore", vmid, user, now, req)
        params = {"overrides": overrides, "unique": a.get("unique"), "start": a.get("start"),
                  "pool": a.get("pool"), "ha-managed": a.get("ha-managed"), "ostemplate": ostemplate,
                  "rootfs": req.params.get("rootfs"), "unprivileged": a.get("unprivileged")}
        ops.worker_restore(cl, task, "lxc", node, vmid, vol, sid, params, user, existed, now)
        return Result(task.upid)


# ------------------------------------------------------------------ rrddata

def _rrddata(req, gtype):
    cl = req.sim.cluster
    a = req.args
    with cl.lock:
        now = cl.sync()
        rows = rrd_data(cl, a["vmid"], a["timeframe"], a.get("cf"), now)
    if rows is None:
        db = "pve-vm-9.0" if cl.rrd_format == "pve-vm-9.0" else "pve2-vm"
        raise SimError("RRD error: opening '/var/lib/rrdcached/db/%s/%d': No such file or directory\n"
                       % (db, a["vmid"]))
    return Result(rows)


@api("GET", "/nodes/{node}/qemu/{vmid}/rrddata")
def qemu_rrddata(req):
    return _rrddata(req, "qemu")


@api("GET", "/nodes/{node}/lxc/{vmid}/rrddata")
def lxc_rrddata(req):
    return _rrddata(req, "lxc")


# ------------------------------------------------------------------ vzdump

@api("POST", "/nodes/{node}/vzdump")
def vzdump(req):
    cl = req.sim.cluster
    a = req.args
    node = a["node"]
    user = user_of(req)
    for key in ("maxfiles", "prune-backups", "tmpdir", "dumpdir", "script", "bwlimit", "ionice"):
        if key in a and a[key] is not None and user != ROOT:
            param_error({key: "Only root may set this option."})
    if a.get("stdout"):
        param_error({"stdout": "option is only allowed on the command line interface."})
    if a.get("all") and a.get("vmid"):
        param_error({"all": "option conflicts with option 'vmid'"})
    if a.get("exclude") and a.get("vmid"):
        param_error({"exclude": "option conflicts with option 'vmid'"})
    if a.get("pool") and a.get("vmid"):
        param_error({"pool": "option conflicts with option 'vmid'"})
    if a.get("prune-backups") is not None and a.get("maxfiles") is not None:
        param_error({"prune-backups": "option conflicts with option 'maxfiles'"})
    if a.get("notes-template") and "\n" in a["notes-template"]:
        param_error({"notes-template": "contains a line feed"})
    all_ = a.get("all") or (a.get("exclude") is not None and not a.get("pool"))
    if not (all_ or a.get("stop") or a.get("pool")) and not a.get("vmid"):
        param_error({"vmid": "property is missing"})
    params = dict(a)
    if a.get("maxfiles") is not None and a.get("prune-backups") is None:
        params["prune-backups"] = "keep-last=%d" % a["maxfiles"] if a["maxfiles"] else "keep-all=1"
        params.pop("maxfiles", None)
    with cl.lock:
        now = cl.sync()
        if a.get("pool"):
            vmids = [g.vmid for g in cl.live_guests() if g.pool == a["pool"]]
        elif a.get("vmid"):
            vmids = [int(v) for v in split_list(a["vmid"])]
        elif all_:
            excl = {int(v) for v in split_list(a.get("exclude"))}
            vmids = [g.vmid for g in cl.live_guests() if g.vmid not in excl]
        else:
            vmids = []
        local, skip = [], []
        for v in sorted(set(vmids)):
            g = cl.live_guest(v)
            if g is None or g.node == node:
                local.append(v)
            else:
                skip.append(v)
        if a.get("stop"):
            holder = cl.vzdump_holder.get(node)
            if holder is not None:
                holder.abort(now)
            if not local:
                return Result("OK")
        if not local and not all_:
            return Result("OK")
        task = cl.start_task(node, "vzdump", local[0] if len(local) == 1 else None, user, now, req,
                             vmid=local[0] if len(local) == 1 else None)
        job = ops.Vzdump(cl, task, node, params, req.params, local, skip, user)
        job.start(now)
        return Result(task.upid)


@api("GET", "/nodes/{node}/vzdump/extractconfig")
def vzdump_extractconfig(req):
    cl = req.sim.cluster
    node, volume = req.args["node"], req.args["volume"]
    with cl.lock:
        cl.sync()
        if volume.startswith("/"):
            if user_of(req) != ROOT:
                raise SimError("Only root can pass arbitrary filesystem paths.\n")
            raise SimError("can't find file '%s'\n" % volume)
        st, vol = _archive_volume(cl, node, volume)
        if st is None:
            raise SimError("storage '%s' is not available on node '%s'\n" % (volume.split(":", 1)[0], node))
        if vol is None:
            raise SimError("can't find file '%s'\n" % volume)
        return Result(vol.config)


# ------------------------------------------------------------------ tasks

def _task_lookup(req):
    cl = req.sim.cluster
    upid = req.args["upid"]
    info = parse_upid(upid, req.sim.contract.upid.get("regex") or r"^UPID:")
    if info is None:
        param_error({"upid": "unable to parse worker upid"})
    task = cl.tasks.get(upid)
    if task is None or info["node"] != req.args["node"]:
        return None
    return task


@api("GET", "/nodes/{node}/tasks/{upid}/status")
def task_status(req):
    cl = req.sim.cluster
    with cl.lock:
        cl.sync()
        task = _task_lookup(req)
        if task is None:
            param_error({"upid": "no such task"})
        return Result(task.status_obj())


@api("GET", "/nodes/{node}/tasks/{upid}/log")
def task_log(req):
    cl = req.sim.cluster
    a = req.args
    with cl.lock:
        now = cl.sync()
        task = _task_lookup(req)
        if task is None:
            return Result([{"n": 1, "t": "unable to open file - No such file or directory"}], total=1)
        lines = task.visible_lines(now)
    start = a.get("start", 0)
    limit = a.get("limit", 50)
    if a.get("download"):
        start, limit = 0, 0
    out = []
    for i, text in enumerate(lines):
        if i < start:
            continue
        if limit and len(out) >= limit:
            break
        out.append({"n": i + 1, "t": text})
    count = len(lines)
    if not count:
        count = 1
        out = [{"n": 1, "t": "no content"}]
    return Result(out, total=count)


@api("DELETE", "/nodes/{node}/tasks/{upid}")
def task_stop(req):
    cl = req.sim.cluster
    with cl.lock:
        now = cl.sync()
        task = _task_lookup(req)
        if task is None:
            param_error({"upid": "no such task"})
        if task.running():
            task.abort(now)
            cl.record(now, "task-abort", None, upid=task.upid, type=task.type, id=task.id,
                      user=user_of(req))
    return Result(None)


@api("GET", "/nodes/{node}/tasks")
def task_list(req):
    cl = req.sim.cluster
    a = req.args
    node = a["node"]
    source = a.get("source", "archive")
    sf = a.get("statusfilter")
    statusfilter = {s.lower() for s in split_list(sf)} if sf else \
        {"ok", "warning", "error", "unknown", "running"}
    with cl.lock:
        cl.sync()
        tasks = [t for t in cl.task_order if t.node == node]
        active = [t for t in tasks if t.running()]
        done = sorted((t for t in tasks if not t.running()), key=lambda t: (t.end_t, t.pid),
                      reverse=True)
        if source == "archive":
            cand = done
        elif source == "active":
            cand = list(reversed(active))
        else:
            cand = list(reversed(active)) + done
        res = []
        count = 0
        start = a.get("start", 0)
        limit = a.get("limit", 50)
        left = limit
        for t in cand:
            user = t.user
            if a.get("userfilter") and a["userfilter"].lower() not in user.lower():
                continue
            if a.get("typefilter") and t.type != a["typefilter"]:
                continue
            if a.get("errors") and t.exitstatus == "OK":
                continue
            if a.get("vmid") and t.id != str(a["vmid"]):
                continue
            if a.get("since") is not None and t.starttime < a["since"]:
                continue
            if a.get("until") is not None and t.starttime > a["until"]:
                continue
            if status_type(t.exitstatus) not in statusfilter:
                continue
            count += 1
            if count <= start:
                continue
            if left <= 0:
                continue
            res.append(t.list_obj())
            left -= 1
    return Result(res, total=count)


# ------------------------------------------------------------------ storage

def _storage_avail_override(cl, st, now):
    if cl.faults is not None and cl.faults.storage_full_active(st.storage, st.node, now):
        return 0
    return None


@api("GET", "/nodes/{node}/storage")
def storage_index(req):
    cl = req.sim.cluster
    a = req.args
    node = a["node"]
    target = a.get("target")
    if target == node or target == "localhost":
        target = None
    want = set(split_list(a.get("content"))) if a.get("content") else set()
    with cl.lock:
        now = cl.sync()
        infos = {}
        for st in cl.storages:
            if st.node != node:
                continue
            if want and not want <= st.contents():
                continue
            infos[st.storage] = st
        if a.get("storage") and a["storage"] not in infos:
            param_error({"storage": "No such storage."})
        res = []
        for name in sorted(infos):
            st = infos[name]
            if a.get("storage") and a["storage"] != name:
                continue
            if a.get("enabled") and not st.enabled:
                continue
            if target and (not st.shared or cl.storage(target, name) is None):
                continue
            d = st.info(_storage_avail_override(cl, st, now))
            if d.get("total"):
                d["used_fraction"] = d["used"] / float(d["total"])
            d["storage"] = name
            res.append(d)
    return Result(res)


@api("GET", "/nodes/{node}/storage/{storage}/status")
def storage_status(req):
    cl = req.sim.cluster
    with cl.lock:
        now = cl.sync()
        st = cl.storage(req.args["node"], req.args["storage"])
        if st is None:
            param_error({"storage": "No such storage."})
        return Result(st.info(_storage_avail_override(cl, st, now)))


def _storage_on_node(cl, node, sid):
    if not cl.storage_defined(sid):
        raise SimError("storage '%s' does not exist\n" % sid)
    st = cl.storage(node, sid)
    if st is None:
        raise SimError("storage '%s' is not available on node '%s'\n" % (sid, node))
    return st


@api("GET", "/nodes/{node}/storage/{storage}/content")
def storage_content(req):
    cl = req.sim.cluster
    a = req.args
    with cl.lock:
        cl.sync()
        st = _storage_on_node(cl, a["node"], a["storage"])
        return Result([v.list_entry() for v in st.volume_list(a.get("vmid"), a.get("content"))])


def _real_volume(req):
    """real_volume_id(): (storage instance, volid, Volume|None)."""
    cl = req.sim.cluster
    a = req.args
    storeid = a.get("storage")
    volume = a["volume"]
    if ":" in volume:
        sid = volume.split(":", 1)[0]
        if not re.match(r"^[a-z][a-z0-9\-_.]*[a-z0-9]$", sid, re.I):
            param_error({"volume": "unable to parse volume ID '%s'\n" % volume})
        if storeid and sid != storeid:
            param_error({"volume": "storage ID mismatch (%s != %s)\n" % (sid, storeid)})
        volid = volume
    else:
        if not storeid:
            param_error({"volume": "no storage specified - incomplete volume ID"})
        volid = "%s:%s" % (storeid, volume)
        sid = storeid
    st = _storage_on_node(cl, a["node"], sid)
    return st, volid, st.volumes.get(volid.split(":", 1)[1])


@api("GET", "/nodes/{node}/storage/{storage}/content/{volume}")
def storage_volume_get(req):
    cl = req.sim.cluster
    with cl.lock:
        cl.sync()
        st, volid, vol = _real_volume(req)
        if vol is None:
            raise SimError("volume '%s' does not exist\n" % volid)
        d = {"path": st.volume_path(vol), "size": vol.size, "used": vol.size, "format": vol.format}
        if vol.notes is not None:
            d["notes"] = vol.notes
        d["protected"] = vol.protected
        return Result(d)


@api("PUT", "/nodes/{node}/storage/{storage}/content/{volume}")
def storage_volume_put(req):
    cl = req.sim.cluster
    a = req.args
    with cl.lock:
        now = cl.sync()
        st, volid, vol = _real_volume(req)
        if vol is None:
            raise SimError("volume '%s' does not exist\n" % volid)
        changes = {}
        if "notes" in a:
            vol.notes = a["notes"] if a["notes"] else None
            changes["notes"] = vol.notes
        if "protected" in a:
            vol.protected = 1 if a["protected"] else 0
            changes["protected"] = vol.protected
        if changes:
            cl.record(now, "volume-update", None, volid=volid, vmid=vol.vmid, user=user_of(req),
                      **changes)
            cl.touch()
    return Result(None)


@api("DELETE", "/nodes/{node}/storage/{storage}/content/{volume}")
def storage_volume_delete(req):
    cl = req.sim.cluster
    a = req.args
    with cl.lock:
        now = cl.sync()
        st, volid, vol = _real_volume(req)
        ownervm = vol.vmid if vol is not None else None
        if ownervm is None:
            m = re.search(r"vzdump-(?:qemu|lxc|openvz)-(\d+)-|/(?:vm|ct)/(\d+)/", volid)
            if m:
                ownervm = int(m.group(1) or m.group(2))
        tid = ("%d@" % ownervm if ownervm is not None else "") + st.storage
        task = cl.start_task(a["node"], "imgdel", tid, user_of(req), now, req, vmid=ownervm)
        d = cl.duration("imgdel")
        f = ops.take_fault(task)

        def work(t):
            v = st.volumes.get(volid.split(":", 1)[1])
            if v is not None and v.protected:
                return task.finish(t, "cannot remove protected volume '%s' on '%s'\n"
                                   % (v.volname, st.storage))
            if f == "fail":
                return task.finish(t, ops.fault_error(task))
            if v is None:
                if not st.is_pbs():
                    task.log(t, "disk image '%s/%s' does not exist" % (st.dumpdir(), volid.split("/", 1)[-1]))
            else:
                st.remove_volume(v)
                cl.record(t, "volume-delete", None, volid=volid, vmid=v.vmid, size=v.size,
                          protected=v.protected, user=task.user)
                cl.touch()
            task.log(t, "Removed volume '%s'" % volid)
            task.finish(t)
        if f != "hang":
            task.at(now + d, work)
    delay = a.get("delay")
    if delay:
        if wait_task(req, task, delay):
            if status_type(task.exitstatus) in ("ok", "warning"):
                return Result(None)
            raise SimError("%s\n" % task.exitstatus)
    return Result(task.upid)

