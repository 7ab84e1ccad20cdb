"""Fault injection.

A fault matches a request by API path regex (re.search on the path without
/api2/json, default: every path), optional method, and an optional sim-time
window [at, until). 'count' limits how many matching requests it hits
(default: unlimited). Kinds:

  pre-request (decided before authentication, like a broken proxy/network):
    status   answer `code` (default 503) with `message` as reason phrase
    delay    sleep `seconds` (wall clock), then answer normally
    hang     never answer; hold the connection until the client goes away
    close    close the connection without any response
  response transforms (applied to whatever the request produced):
    truncate        full Content-Length, but only the first `bytes` bytes
                    of the body are sent, then the connection is closed
    malformed       200 with a body that is not valid JSON
    oversize        200 with a valid {"data":[...]} body of `size_mb` MiB
    duplicate_keys  guest objects (those with "vmid") carry `key`
                    (default "cpu") twice; the first copy has `value` if
                    given, else the real value
    wrong_type      guest objects carry `key` (default "mem") as a string
                    (or `value` if given)
    trickle         the whole response (status line, headers, body) is sent
                    at `rate` bytes per second (default 1), then the
                    connection is closed; the request itself was performed
  state:
    revoke   API tokens (`token`, default all) are rejected with 401 while
             the fault is active (from `at`, default now, until `until`)
  after the handler ran:
    lost_reply  the request is fully performed (task started, change made)
                and then the connection is closed without any response
  tasks (matched when a worker task starts: `path`/`method` of the request
  that starts it, `type` = regex searched in the task type ("shutdown"
  hits qmshutdown and vzshutdown, "^qmstop$" only qmstop), `vmid`;
  `count` = number of tasks hit):
    task_fail   the task runs its normal duration, then ends with `error`
                (or `exitstatus`) instead of doing its work; for vzdump the
                guest's backup fails with `error` and the task ends with
                'job errors' like upstream
    task_hang   the task never ends (locks it set stay) until it is stopped
                with DELETE /nodes/{node}/tasks/{upid}
  storage:
    storage_full  vzdump to `storage` (default: any; `node` optional) runs
                  out of space (ENOSPC); GET .../storage/.../status and the
                  storage list report avail 0 while the fault is active;
                  `count` = number of backups hit
  task hook (matched like the task faults, but when the task ENDS
  successfully - exit status OK or WARNINGS; `count` = tasks hit):
    after_task  applies `events` (a list of POST /_sim/event bodies; `vmid`
                defaults to the task's VMID, `create` may carry `replace`)
                in the same sim instant the task ends, before anything else
                can see the task stopped (e.g. change or re-create the guest
                right after its vzdump)
  response rewrite (2xx answers only; `count` = answers rewritten):
    rewrite     re.sub(`pattern`, `repl`, body) on the JSON text of the
                response body (`max` = at most that many substitutions,
                default all); the result is sent as it is, valid JSON or not
"""

import itertools
import re
import threading

PRE_KINDS = {"status", "delay", "hang", "close"}
POST_KINDS = {"truncate", "malformed", "oversize", "duplicate_keys", "wrong_type", "trickle"}
STATE_KINDS = {"revoke"}
LOST_KINDS = {"lost_reply"}
TASK_KINDS = {"task_fail", "task_hang"}
STORAGE_KINDS = {"storage_full"}
AFTER_TASK_KINDS = {"after_task"}
REWRITE_KINDS = {"rewrite"}
KINDS = PRE_KINDS | POST_KINDS | STATE_KINDS | LOST_KINDS | TASK_KINDS | STORAGE_KINDS | \
    AFTER_TASK_KINDS | REWRITE_KINDS


class Fault:
    def __init__(self, fid, spec, now):
        kind = spec.get("kind")
        if kind not in KINDS:
            raise ValueError("unknown fault kind %r (known: %s)" % (kind, ", ".join(sorted(KINDS))))
        self.id = fid
        self.spec = dict(spec)
        self.kind = kind
        self.path = spec.get("path")
        self.rx = re.compile(self.path) if self.path else None
        self.method = spec.get("method")
        self.count = spec.get("count")
        self.count = None if self.count is None else int(self.count)
        self.at = float(spec["at"]) if spec.get("at") is not None else None
        self.until = float(spec["until"]) if spec.get("until") is not None else None
        if kind == "revoke" and self.at is None:
            self.at = now
        self.type_rx = re.compile(spec["type"]) if spec.get("type") else None
        self.vmid = int(spec["vmid"]) if spec.get("vmid") is not None else None
        self.hits = 0
        self.errors = []          # after_task: events that could not be applied
        if kind == "rewrite":
            if not isinstance(spec.get("pattern"), str):
                raise ValueError("rewrite needs 'pattern'")
            self.pattern = re.compile(spec["pattern"])
            self.repl = str(spec.get("repl", ""))
            self.max_subs = int(spec.get("max") or 0)
        if kind == "after_task":
            evs = spec.get("events")
            if not isinstance(evs, list) or not all(isinstance(e, dict) and e.get("action")
                                                    for e in evs):
                raise ValueError("after_task needs 'events': a list of event objects with 'action'")

    def active(self, now):
        if self.at is not None and now < self.at:
            return False
        if self.until is not None and now >= self.until:
            return False
        return self.count is None or self.count > 0

    def matches(self, method, path, now):
        if not self.active(now):
            return False
        if self.method and self.method.upper() != method:
            return False
        if self.rx and not self.rx.search(path):
            return False
        return True

    def view(self):
        d = dict(self.spec)
        d.update(id=self.id, hits=self.hits, remaining=self.count)
        if self.errors:
            d["errors"] = list(self.errors)
        return d

    def rewrite(self, body):
        """rewrite fault: the body (bytes) with the substitution applied."""
        text = body.decode("utf-8", "replace")
        return self.pattern.sub(self.repl, text, count=self.max_subs).encode("utf-8")


class Faults:
    def __init__(self, clock):
        self.clock = clock
        self.lock = threading.Lock()
        self.items = []
        self._ids = itertools.count(1)

    def add(self, spec):
        with self.lock:
            f = Fault(next(self._ids), spec, self.clock.now())
            self.items.append(f)
            return f.id

    def clear(self):
        with self.lock:
            self.items = []

    def take(self, method, path, now, kinds):
        """First active fault of one of `kinds` matching the request; its
        count is consumed."""
        with self.lock:
            for f in self.items:
                if f.kind in kinds and f.matches(method, path, now):
                    if f.count is not None:
                        f.count -= 1
                    f.hits += 1
                    return f
        return None

    def take_task(self, method, path, ttype, vmid, now, kinds=TASK_KINDS):
        """First active task fault (of `kinds`) matching a task that is
        starting (task_fail / task_hang) or has ended well (after_task)."""
        with self.lock:
            for f in self.items:
                if f.kind not in kinds or not f.active(now):
                    continue
                if f.method and f.method.upper() != method:
                    continue
                if f.rx and not f.rx.search(path or ""):
                    continue
                if f.type_rx and not f.type_rx.search(ttype):
                    continue
                if f.vmid is not None and f.vmid != vmid:
                    continue
                if f.count is not None:
                    f.count -= 1
                f.hits += 1
                return f
        return None

    def _storage_match(self, f, storage, node, now):
        if f.kind != "storage_full" or not f.active(now):
            return False
        if f.spec.get("storage") and f.spec["storage"] != storage:
            return False
        if f.spec.get("node") and f.spec["node"] != node:
            return False
        return True

    def storage_full_active(self, storage, node, now):
        with self.lock:
            return any(self._storage_match(f, storage, node, now) for f in self.items)

    def take_storage_full(self, storage, node, now):
        with self.lock:
            for f in self.items:
                if self._storage_match(f, storage, node, now):
                    if f.count is not None:
                        f.count -= 1
                    f.hits += 1
                    return f
        return None

    def token_revoked(self, tokenid, now):
        with self.lock:
            for f in self.items:
                if f.kind == "revoke" and f.active(now):
                    tok = f.spec.get("token")
                    if not tok or tok == tokenid:
                        f.hits += 1
                        return True
        return False

    def views(self):
        with self.lock:
            return [f.view() for f in self.items]
