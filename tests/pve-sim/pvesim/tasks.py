"""Worker tasks (PVE::RESTEnvironment::fork_worker as seen from the API).

A Task has a real-format UPID (pve-common src/PVE/UPID.pm), a log of
(sim time, line) pairs, and ends exactly once via finish():

    finish(t)              -> "TASK OK", or "TASK WARNINGS: N" when warn()
                              was called N times (log_warn), exitstatus
                              'OK' / 'WARNINGS: N'
    finish(t, "msg")       -> "TASK ERROR: msg", exitstatus 'msg'
    finish(t, raw=True)    -> no TASK line at all (the worker called exit()
                              itself, like vzdump when it cannot get its
                              lock): exitstatus 'unexpected status'

Everything a task does happens in timer callbacks (Cluster.at) run by
Cluster.sync() in sim-time order, so effects carry their own timestamps
no matter when the next request arrives. A task is 'running' until its
finish() ran. Aborting (DELETE .../tasks/{upid}) cancels the pending
timers, runs the task's on_abort cleanup and ends it with the message the
worker would die with ('received interrupt' - the SIGTERM handler
fork_worker installs; vzdump installs 'interrupted by signal').
"""

import math

EPS = 0.05          # how long a worker takes to die on an early check (sim s)

# realistic but short defaults (sim seconds); scenario "task_durations"
# overrides per task type
DEFAULT_DURATIONS = {
    "qmstart": 1.0, "vzstart": 1.0,
    "qmstop": 0.5, "vzstop": 0.5,
    "qmshutdown": 2.0, "vzshutdown": 2.0,       # time the guest needs to power off
    "hastart": 0.3, "hastop": 0.3,
    "ha": 2.0,                                  # ha-manager reaction (CRM/LRM round)
    "qmsnapshot": 1.0, "vzsnapshot": 1.0,
    "qmdelsnapshot": 1.0, "vzdelsnapshot": 1.0,
    "qmrollback": 1.0, "vzrollback": 1.0,
    "vzdump": 3.0,                              # per guest
    "qmdestroy": 1.0, "vzdestroy": 1.0,
    "qmrestore": 3.0, "vzrestore": 3.0,
    "qmconfig": 0.2,
    "imgdel": 0.2,
}


def make_upid(node, pid, pstart, starttime, wtype, wid, user):
    """Format per pve-common src/PVE/UPID.pm (see endpoints.json 'upid')."""
    return "UPID:%s:%08X:%08X:%08X:%s:%s:%s:" % (node, pid, pstart, int(starttime), wtype, wid or "", user)


def parse_upid(upid, regex):
    import re
    m = re.match(regex, upid or "")
    if not m:
        return None
    return {"node": m.group(1), "pid": int(m.group(3), 16), "pstart": int(m.group(4), 16),
            "starttime": int(m.group(5), 16), "type": m.group(6), "id": m.group(7),
            "user": m.group(8)}


def split_tokenid(user):
    """PVE::AccessControl::split_tokenid: ('user@realm', 'tokenname') or
    (user, None) for a plain user."""
    if "!" in user:
        u, _, tok = user.partition("!")
        return u, tok
    return user, None


class Timer:
    __slots__ = ("t", "fn", "alive")

    def __init__(self, t, fn):
        self.t = t
        self.fn = fn
        self.alive = True

    def cancel(self):
        self.alive = False


class Task:
    def __init__(self, cluster, node, wtype, wid, user, t):
        self.cluster = cluster
        self.node = node
        self.type = wtype
        self.id = "" if wid is None else str(wid)
        self.user = user
        self.start_t = t
        self.starttime = int(cluster.clock.epoch(t))
        self.pid = cluster.next_pid()
        n = cluster.nodes.get(node)
        self.pstart = n.pstart(t) if n is not None else 0
        self.upid = make_upid(node, self.pid, self.pstart, self.starttime, wtype, self.id, user)
        self.end_t = None
        self.exitstatus = None
        self.lines = []            # [(t, text)]
        self.warnings = 0
        self.timers = []
        self.on_abort = None
        self.abort_msg = "received interrupt"
        self.fault = None          # task_fail / task_hang fault taken at start
        self.hung = False
        self.vmid = None
        self.meta = {}
        self.req = None            # (method, path) of the API request that started it

    # -- log
    def log(self, t, text):
        self.lines.append((t, text))

    def warn(self, t, text):
        """log_warn(): counted, the task ends 'WARNINGS: N'."""
        self.warnings += 1
        self.log(t, "WARN: " + text)

    def visible_lines(self, now):
        return [text for (t, text) in self.lines if t <= now + 1e-9]

    # -- scheduling
    def at(self, t, fn):
        h = self.cluster.at(t, fn)
        self.timers.append(h)
        return h

    def fail_later(self, t, msg, delay=EPS):
        self.at(t + delay, lambda tt: self.finish(tt, msg))

    # -- end
    def finish(self, t, error=None, raw=False):
        if self.end_t is not None:
            return
        for h in self.timers:
            h.cancel()
        self.end_t = t
        if raw:
            self.exitstatus = "unexpected status"
        elif error is None:
            if self.warnings:
                self.exitstatus = "WARNINGS: %d" % self.warnings
                self.log(t, "TASK WARNINGS: %d" % self.warnings)
            else:
                self.exitstatus = "OK"
                self.log(t, "TASK OK")
        else:
            # fork_worker: chomp $err; $err =~ s/\n/ /mg;
            msg = str(error)
            if msg.endswith("\n"):
                msg = msg[:-1]
            msg = msg.replace("\n", " ")
            self.exitstatus = msg
            self.log(t, "TASK ERROR: " + msg)
        self.cluster.task_finished(self, t)

    def abort(self, t):
        if self.end_t is not None:
            return False
        for h in self.timers:
            h.cancel()
        if self.on_abort is not None:
            self.on_abort(t)
        self.finish(t, self.abort_msg)
        return True

    # -- views
    def running(self):
        return self.end_t is None

    def status_obj(self):
        """GET /nodes/{node}/tasks/{upid}/status (key order of the captured
        sample; convert_token_task for token users)."""
        user, tok = split_tokenid(self.user)
        d = {"id": self.id, "pid": self.pid, "status": "running" if self.running() else "stopped",
             "type": self.type, "pstart": self.pstart}
        if not self.running():
            d["exitstatus"] = self.exitstatus
        d.update(upid=self.upid, starttime=self.starttime, user=user, node=self.node)
        if tok is not None:
            d["tokenid"] = tok
        return d

    def list_obj(self):
        """An item of GET /nodes/{node}/tasks."""
        user, tok = split_tokenid(self.user)
        d = {"upid": self.upid, "node": self.node, "pid": self.pid, "pstart": self.pstart,
             "starttime": self.starttime, "type": self.type, "id": self.id, "user": user}
        if tok is not None:
            d["tokenid"] = tok
        if not self.running():
            d["endtime"] = int(self.cluster.clock.epoch(self.end_t))
            d["status"] = self.exitstatus
        return d

    def view(self, with_log=False, now=None):
        d = {"upid": self.upid, "node": self.node, "type": self.type, "id": self.id,
             "user": self.user, "status": "running" if self.running() else "stopped",
             "exitstatus": self.exitstatus, "start": round(self.start_t, 3),
             "end": None if self.end_t is None else round(self.end_t, 3),
             "starttime": self.starttime,
             "endtime": None if self.end_t is None else int(self.cluster.clock.epoch(self.end_t)),
             "hung": self.hung}
        if with_log:
            d["log"] = self.visible_lines(math.inf if now is None else now)
        return d


def status_type(status):
    """PVE::Tools::upid_normalize_status_type."""
    if not status:
        return "running"
    if status == "OK":
        return "ok"
    if status.startswith("WARNINGS: "):
        return "warning"
    if status == "unexpected status":
        return "unknown"
    return "error"
