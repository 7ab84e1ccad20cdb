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
  faults.py      fault injection registry
  workload.py    closed-form guest workloads (constant/bursts/daynight/random)
  model.py       Cluster (clock, nodes, storages, guests, events, tasks),
                 the pvestatd-like sampling and /cluster/resources entries
  handlers.py    HANDLERS table: (method, path template) -> function
  server.py      HTTP(S) server: pveproxy's request pipeline, error format,
                 keep-alive, gzip, control API (/_sim/...), request log

Where the write calls go (not implemented yet; they answer 501 after full
parameter verification until a handler exists):
  * every new call is one function in handlers.py decorated with
    @api(METHOD, PATH) using the template from endpoints.json verbatim;
    server.py needs no change. Synchronous pre-checks raise
    SimError("<upstream message>\\n") (HTTP 500) or
    SimError(PARAM_ERROR_MSG, 400, errors={...}).
  * async calls (async_returns_upid): cluster.start_task(node, task_type,
    vmid, req.auth.userid, duration, exitstatus, log, on_finish) creates a
    model.Task with a real-format UPID (model.make_upid, endpoints.json
    'upid'); return Result(task.upid). Schedule the state change with
    cluster.schedule(vmid, {"action": ...}, at=task.end_t()) or run
    on_finish when Cluster.sync() sees the task end. Task status/log/stop
    handlers read cluster.tasks.
      - status/start|stop|shutdown  -> Guest.start()/stop(), lock checks,
        HA-managed guests get hastart/hastop task types
      - snapshot / delsnapshot / rollback -> Guest.snapshots (config copy,
        lock=snapshot while running; 'current' pseudo entry in the list)
      - vzdump -> lock=backup during the task, archive volume added to
        Storage.volumes of the target storage (volid naming per the notes),
        prune / protected semantics per the endpoint notes
      - storage content list/get/put/delete -> Storage.volumes
      - vzdump/extractconfig -> Guest.render_config() text stored with the
        archive
      - DELETE guest -> pre-checks (protection, HA without purge, running)
        then Guest.deleted; restore (POST qemu/lxc) -> Cluster.add_guest()
      - cluster/nextid, cluster/ha/resources -> Cluster.guests / hastate
  * new guest state goes into model.Guest (__slots__), new per-node state
    into model.Node, nothing else needs restructuring.
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
