#!/usr/bin/python3
"""pve-sim - Proxmox VE REST API simulator for proxreap's system tests.

Usage:
  /usr/bin/python3 tests/pve-sim/pve-sim.py --scenario FILE.json
        [--host 127.0.0.1] [--port 0] [--cert CERT.pem --key KEY.pem]
        [--port-file PATH] [--log PATH] [--contract endpoints.json] [--verbose]

Prints "listening on http(s)://HOST:PORT" once it accepts connections and
writes PORT to --port-file (temp file + rename). SIGTERM/SIGINT stop it.

Architecture map (package pvesim/)
----------------------------------
  contract.py    endpoints.json (+ schema/apidata-subset-pve9.1.json for
                 params_omitted_here) -> route table; path matching like
                 PVE::RESTHandler::find_handler
  jsonschema.py  parameter verification ported from PVE::JSONSchema
                 (messages byte-identical) + the format validators
  perl.py        Perl-isms: number stringification, split_list,
                 decode_urlencoded quirks
  auth.py        API tokens, tickets, CSRF tokens (401 reason phrases)
  faults.py      fault injection registry (request, response, lost_reply,
                 task_fail / task_hang, storage_full)
  workload.py    closed-form guest workloads (constant/bursts/daynight/
                 random, Piecewise for the GUEST key "history")
  tasks.py       Task (real-format UPID, log, finish/abort, status/list
                 views), default task durations, make_upid / parse_upid
  storage.py     Storage (per node; shared storages share one StoreData),
                 Volume (backup archives + the config text they hold),
                 archive naming, prune_mark (pve-storage retention)
  model.py       Cluster (clock, nodes, storages, guests, events, timers,
                 tasks, history), Guest (config model, snapshots), the
                 pvestatd-like sampling and /cluster/resources entries
  ops.py         what the write calls do inside their worker tasks:
                 start/stop/shutdown (+ ha-manager CRM/LRM), snapshot /
                 delsnapshot / rollback, vzdump (class Vzdump: node lock,
                 per-guest backup, notes, protected, prune, ENOSPC),
                 destroy, restore, config updates
  rrd.py         rrddata rows computed from the workloads (pve-vm-9.0 and
                 pve2-vm layouts)
  handlers.py    HANDLERS table: (method, path template) -> function; the
                 synchronous pre-checks upstream does before fork_worker
  server.py      HTTP(S) server: pveproxy's request pipeline, error format,
                 keep-alive, gzip, control API (/_sim/...), request log

Where the write calls go
------------------------
  * each call is one function in handlers.py decorated with
    @api(METHOD, PATH) using the template from endpoints.json verbatim
    (server.py needs no change); synchronous pre-checks raise
    SimError("<upstream message>\\n") (HTTP 500) or param_error({...})
    (HTTP 400, raise_param_exc)
  * async calls: task = cluster.start_task(node, type, id, user, now, req)
    (takes a task_fail/task_hang fault matching the request), then an
    ops.worker_*() schedules the work with task.at(t, fn) / cluster.at();
    Cluster.sync() runs due timers in sim-time order on every request, so
    every effect carries its own timestamp; the handler returns task.upid
      POST status/start|stop|shutdown  -> ops.worker_start/stop/shutdown,
                                          HA guests: ops.ha_request
                                          (hastart/hastop + LRM task later)
      POST/DELETE snapshot, rollback   -> ops.worker_snapshot/delsnapshot/rollback
      POST vzdump                      -> ops.Vzdump (node lock, per guest)
      DELETE qemu|lxc/{vmid}           -> ops.destroy_early_checks + worker_destroy
      POST qemu|lxc (archive/restore)  -> handlers.qemu_create/lxc_create
                                          + ops.worker_restore
      POST qemu config                 -> qmconfig task (PUT: synchronous)
      DELETE storage content           -> imgdel task
  * state: guest state in model.Guest (__slots__), storage state in
    storage.Storage/StoreData/Volume, task state in tasks.Task; every
    visible change calls cluster.touch() (invalidates the
    /cluster/resources cache) and significant ones cluster.record()
    (GET /_sim/history)
  * GET /nodes/{node}/qemu and GET /nodes/{node}/lxc deliberately have no
    handler (they answer 501 after verification).
"""

import argparse
import json
import os
import signal
import sys
import tempfile
import threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from pvesim.contract import Contract  # noqa: E402
from pvesim.server import Sim, SimHTTPServer, make_ssl_context  # noqa: E402


def write_port_file(path, port):
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".port.", dir=d)
    with os.fdopen(fd, "w") as fh:
        fh.write("%d\n" % port)
    os.chmod(tmp, 0o644)
    os.rename(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Proxmox VE API simulator")
    ap.add_argument("--scenario", required=True, help="scenario JSON file")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--cert")
    ap.add_argument("--key")
    ap.add_argument("--port-file")
    ap.add_argument("--log", help="append every API request as a JSON line")
    ap.add_argument("--contract", help="endpoints.json (default: tests/data/pve-api/endpoints.json)")
    ap.add_argument("--apidata", help="apidata subset for params_omitted_here ('' to disable)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args(argv)

    if bool(args.cert) != bool(args.key):
        ap.error("--cert and --key go together")
    with open(args.scenario, encoding="utf-8") as fh:
        scenario = json.load(fh)
    contract = Contract(args.contract, args.apidata)
    sim = Sim(scenario, contract, log_path=args.log, verbose=args.verbose)
    ssl_ctx = make_ssl_context(args.cert, args.key) if args.cert else None
    server = SimHTTPServer((args.host, args.port), sim, ssl_ctx)
    port = server.server_address[1]

    stop = threading.Event()

    def on_signal(signum, frame):
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    t.start()
    scheme = "https" if ssl_ctx else "http"
    print("listening on %s://%s:%d" % (scheme, args.host, port), flush=True)
    if args.port_file:
        write_port_file(args.port_file, port)
    while not stop.wait(0.5):
        pass
    sim.stopping.set()
    server.shutdown()
    server.server_close()
    if sim.log_fh:
        with sim.req_lock:
            sim.log_fh.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
