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
its trailing newline. Endpoints in the contract without a handler answer
501 "Method '<M> <path>' not implemented" after verification.

To add a write call (see the map in pve-sim.py): decorate a function with
@api("POST", "/nodes/{node}/qemu/{vmid}/status/shutdown"), do the
synchronous pre-checks (raise SimError as upstream does), then
cluster.start_task(node, "qmshutdown", vmid, req.auth.userid, seconds,
on_finish=...) and return Result(task.upid).
"""

from .model import SimError

HANDLERS = {}


class Result:
    __slots__ = ("data", "total", "cache_key")

    def __init__(self, data, total=None, cache_key=None):
        self.data = data
        self.total = total
        self.cache_key = cache_key   # identical key => identical body (encoding cache)


def api(method, path):
    def deco(fn):
        HANDLERS[(method, path)] = fn
        return fn
    return deco


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
        key, res = cl.resources(rtype, now)
    return Result(res, cache_key=key)


# ------------------------------------------------------------------ guests

def _status_current(req, gtype):
    cl = req.sim.cluster
    with cl.lock:
        now = cl.sync()
        g = cl.find_guest(gtype, req.args["node"], req.args["vmid"])
        return Result(cl.guest_status(g, now))


def _config(req, gtype):
    cl = req.sim.cluster
    with cl.lock:
        cl.sync()
        g = cl.find_guest(gtype, req.args["node"], req.args["vmid"])
        snap = req.args.get("snapshot")
        if snap:
            if snap not in g.snapshots:
                raise SimError("snapshot '%s' does not exist\n" % snap)
            conf = dict(g.snapshots[snap])
            return Result(conf)
        return Result(g.config_with_digest())


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
