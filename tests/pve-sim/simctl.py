"""simctl - drive tests/pve-sim from pytest (standard library only).

    import sys; sys.path.insert(0, "tests/pve-sim")
    from simctl import Sim, make_test_ca

    with Sim({"nodes": ["pve1"], "tokens": {"u@pve!t": "s"},
              "auth_fail_delay": 0, "guests": [...]}) as sim:
        r = sim.api("GET", "/cluster/resources", {"type": "vm"})
        assert r.status == 200 and r.json["data"]
        sim.fault(kind="status", code=503, path="^/cluster/resources$", count=1)
        sim.event(100, "restart")
        print(sim.requests()[-1])

Sim(scenario, tls=False, cert=None, key=None, ca=None, workdir=None,
    log=True, verbose=False, startup_timeout=15, python="/usr/bin/python3",
    extra_args=(), keep_workdir=False)
  .start() / .stop() / context manager
  .url            "http://127.0.0.1:PORT" or "https://..." (no /api2/json)
  .api_url        .url + "/api2/json"
  .port .scheme .workdir .log_file .scenario_file
  .ca_file        CA bundle to verify the server (tls=True)
  .token_header(tokenid=None)  "PVEAPIToken=ID=SECRET" (first scenario token)
  .api(method, path, params=None, json_body=None, token=True, headers=None,
       timeout=10, ticket=None, csrf=None)        -> Response
  .requests() / .clear_requests()                -> list of request-log dicts
  .fault(**kw) -> id / .clear_faults() / .faults()
  .event(vmid, action, **kw) -> guest view       (applied now, or at kw["at"])
  .create_guest(spec, replace=False) -> guest view (replace: swap a live guest)
  .guests() / .guest(vmid) / .time() / .advance(seconds)
  .tasks(upid=None, type=None, vmid=None, log=None) -> [task view]
  .task(upid) -> task view with "log" | None
  .wait_task(upid, timeout=30) -> task view once stopped
  .history(event=None, vmid=None) -> [event]
  .storages(storage=None, node=None) -> [storage view with "volumes"]
  .set_storage(storage, node=None, avail=, used=, total=, status=, prune_backups=)
  .add_backup(storage, node=None, vmid=, type=, time=|ctime=, compress=,
              protected=, notes=, size=, config=) -> volume view
  .remove_volume(volid)

make_test_ca(directory) -> (ca_pem, cert_pem, key_pem): a throw-away CA and
a server certificate for 127.0.0.1 / localhost, made with the openssl CLI.
"""

import http.client
import json
import os
import re
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SIM_SCRIPT = os.path.join(HERE, "pve-sim.py")
PYTHON = "/usr/bin/python3"


PROM_SAMPLE = re.compile(r'^([a-z_]+)(?:\{[a-z]+="([a-z-]+)"[^}]*\})? (\S+)$', re.M)


def read_prom_file(path, required="proxreap_polls_total.ok"):
    """proxreapd's Prometheus textfile as {name or name.firstlabel: value},
    or None while it does not exist yet or lacks the required sample."""
    try:
        with open(path) as fh:
            text = fh.read()
    except FileNotFoundError:
        return None
    out = {}
    for name, label, value in PROM_SAMPLE.findall(text):
        out[name + ("." + label if label else "")] = float(value)
    return out if required in out else None


class SimError(RuntimeError):
    pass


def _openssl(*args, cwd):
    res = subprocess.run(["openssl"] + list(args), cwd=cwd, capture_output=True, text=True)
    if res.returncode != 0:
        raise SimError("openssl %s failed: %s" % (args[0], res.stderr.strip()))


def make_test_ca(directory, cn="pve-sim test CA"):
    """Create ca.pem, server.pem, server.key in `directory`; return their
    paths. RSA 2048 like pve-root-ca.pem / pve-ssl.pem on a real node."""
    directory = os.path.abspath(directory)
    os.makedirs(directory, exist_ok=True)
    ca_key = os.path.join(directory, "ca.key")
    ca_pem = os.path.join(directory, "ca.pem")
    key = os.path.join(directory, "server.key")
    csr = os.path.join(directory, "server.csr")
    crt = os.path.join(directory, "server.pem")
    ext = os.path.join(directory, "server.ext")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", ca_key, "-out", ca_pem,
             "-days", "3650", "-subj", "/CN=%s" % cn,
             "-addext", "basicConstraints=critical,CA:TRUE",
             "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
             "-subj", "/OU=PVE Cluster Node/O=Proxmox Virtual Environment/CN=127.0.0.1", cwd=directory)
    with open(ext, "w") as fh:
        fh.write("basicConstraints=CA:FALSE\n"
                 "keyUsage=critical,digitalSignature,keyEncipherment\n"
                 "extendedKeyUsage=serverAuth\n"
                 "subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    _openssl("x509", "-req", "-in", csr, "-CA", ca_pem, "-CAkey", ca_key, "-CAcreateserial",
             "-out", crt, "-days", "825", "-sha256", "-extfile", ext, cwd=directory)
    os.chmod(key, 0o600)
    return ca_pem, crt, key


class Response:
    def __init__(self, status, reason, headers, body):
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8")) if self.body else None

    def __repr__(self):
        return "<Response %d %s %r>" % (self.status, self.reason, self.body[:200])


class Sim:
    def __init__(self, scenario, tls=False, cert=None, key=None, ca=None, workdir=None, log=True,
                 verbose=False, startup_timeout=15, python=PYTHON, extra_args=(),
                 keep_workdir=False):
        self.scenario = scenario
        self.tls = bool(tls or cert)
        self.cert, self.key, self.ca_file = cert, key, ca
        self._own_workdir = workdir is None
        self.workdir = workdir or tempfile.mkdtemp(prefix="pve-sim-")
        self.log_file = os.path.join(self.workdir, "requests.jsonl") if log else None
        self.verbose = verbose
        self.startup_timeout = startup_timeout
        self.python = python
        self.extra_args = list(extra_args)
        self.keep_workdir = keep_workdir
        self.proc = None
        self.port = None
        self.scheme = "https" if self.tls else "http"
        self.host = "127.0.0.1"

    # -- lifecycle
    def start(self):
        os.makedirs(self.workdir, exist_ok=True)
        if self.tls and not self.cert:
            self.ca_file, self.cert, self.key = make_test_ca(os.path.join(self.workdir, "tls"))
        self.scenario_file = os.path.join(self.workdir, "scenario.json")
        with open(self.scenario_file, "w") as fh:
            json.dump(self.scenario, fh)
        port_file = os.path.join(self.workdir, "port")
        if os.path.exists(port_file):
            os.unlink(port_file)
        cmd = [self.python, SIM_SCRIPT, "--scenario", self.scenario_file, "--host", self.host,
               "--port", "0", "--port-file", port_file]
        if self.log_file:
            cmd += ["--log", self.log_file]
        if self.tls:
            cmd += ["--cert", self.cert, "--key", self.key]
        if self.verbose:
            cmd.append("--verbose")
        cmd += self.extra_args
        self._out = open(os.path.join(self.workdir, "sim.stdout"), "wb")
        self._err = open(os.path.join(self.workdir, "sim.stderr"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=self._err, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if os.path.exists(port_file):
                with open(port_file) as fh:
                    self.port = int(fh.read().strip())
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        err = self.stderr()
        self.stop()
        raise SimError("pve-sim did not start: %s" % err.strip())

    def stderr(self):
        try:
            with open(os.path.join(self.workdir, "sim.stderr"), errors="replace") as fh:
                return fh.read()
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        for fh in (getattr(self, "_out", None), getattr(self, "_err", None)):
            if fh:
                fh.close()
        if self._own_workdir and not self.keep_workdir and os.path.isdir(self.workdir):
            shutil.rmtree(self.workdir, ignore_errors=True)
        return self.proc.returncode if self.proc is not None else None

    def __enter__(self):
        if self.proc is None:
            self.start()
        return self

    def __exit__(self, *exc):
        self.stop()

    # -- addresses
    @property
    def url(self):
        return "%s://%s:%d" % (self.scheme, self.host, self.port)

    @property
    def api_url(self):
        return self.url + "/api2/json"

    def ssl_context(self, cafile=None):
        ctx = ssl.create_default_context(cafile=cafile or self.ca_file)
        return ctx

    def _conn(self, timeout, cafile=None):
        if self.tls:
            return http.client.HTTPSConnection(self.host, self.port, timeout=timeout,
                                               context=self.ssl_context(cafile))
        return http.client.HTTPConnection(self.host, self.port, timeout=timeout)

    def token_header(self, tokenid=None):
        tokens = self.scenario.get("tokens") or {}
        if tokenid is None:
            tokenid = next(iter(tokens))
        return "PVEAPIToken=%s=%s" % (tokenid, tokens[tokenid])

    # -- raw HTTP
    def request(self, method, path, body=None, headers=None, timeout=10, cafile=None):
        conn = self._conn(timeout, cafile)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            data = r.read()
            return Response(r.status, r.reason, r.headers, data)
        finally:
            conn.close()

    def api(self, method, path, params=None, json_body=None, token=True, headers=None, timeout=10,
            ticket=None, csrf=None):
        """Call /api2/json<path>. GET/DELETE params go to the query string,
        POST/PUT params to a form body (or json_body as JSON)."""
        hdrs = dict(headers or {})
        if ticket:
            hdrs["Cookie"] = "PVEAuthCookie=%s" % urllib.parse.quote(ticket, safe="")
            if csrf:
                hdrs["CSRFPreventionToken"] = csrf
        elif token is True and self.scenario.get("tokens"):
            hdrs["Authorization"] = self.token_header()
        elif isinstance(token, str):
            hdrs["Authorization"] = token
        url = "/api2/json" + path
        body = None
        if method in ("GET", "DELETE"):
            if params:
                url += "?" + urllib.parse.urlencode(params)
        elif json_body is not None:
            body = json.dumps(json_body).encode()
            hdrs["Content-Type"] = "application/json"
        elif params is not None:
            body = urllib.parse.urlencode(params).encode()
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        return self.request(method, url, body, hdrs, timeout)

    # -- control API
    def control(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json"} if data else {}
        r = self.request(method, "/_sim" + path, data, hdrs)
        if r.status != 200:
            raise SimError("control %s %s: %d %s" % (method, path, r.status, r.body[:300]))
        return r.json

    def requests(self):
        return self.control("GET", "/requests")

    def clear_requests(self):
        return self.control("DELETE", "/requests")

    def fault(self, **kw):
        return self.control("POST", "/faults", kw)["ids"][0]

    def faults(self):
        return self.control("GET", "/faults")

    def clear_faults(self):
        return self.control("DELETE", "/faults")

    def event(self, vmid, action, **kw):
        ev = dict(kw, vmid=vmid, action=action)
        return self.control("POST", "/event", ev)

    def create_guest(self, spec, replace=False):
        ev = {"action": "create", "guest": spec}
        if replace:
            ev["replace"] = True
        return self.control("POST", "/event", ev)

    def guests(self):
        return self.control("GET", "/guests")

    def guest(self, vmid):
        for g in self.guests():
            if g["vmid"] == vmid:
                return g
        return None

    def time(self):
        return self.control("GET", "/time")

    def advance(self, seconds):
        return self.control("POST", "/time", {"advance": seconds})

    # -- write-call observability (tasks, history, storages)
    def tasks(self, **filters):
        """GET /_sim/tasks: every worker task (filters: upid, type, vmid,
        log=1 to include the visible log lines)."""
        q = urllib.parse.urlencode({k: v for k, v in filters.items() if v is not None})
        return self.control("GET", "/tasks" + ("?" + q if q else ""))

    def task(self, upid):
        """One task (with its log) or None."""
        res = self.tasks(upid=upid)
        return res[0] if res else None

    def wait_task(self, upid, timeout=30, interval=0.02):
        """Poll until the task has stopped; return its view (with log)."""
        deadline = time.monotonic() + timeout
        while True:
            t = self.task(upid)
            if t is None:
                raise SimError("no such task %s" % upid)
            if t["status"] == "stopped":
                return t
            if time.monotonic() >= deadline:
                raise SimError("task %s still running after %ss" % (upid, timeout))
            time.sleep(interval)

    def history(self, event=None, vmid=None):
        """GET /_sim/history: significant events in order."""
        q = urllib.parse.urlencode({k: v for k, v in (("event", event), ("vmid", vmid))
                                    if v is not None})
        return self.control("GET", "/history" + ("?" + q if q else ""))

    def storages(self, storage=None, node=None):
        q = urllib.parse.urlencode({k: v for k, v in (("storage", storage), ("node", node))
                                    if v is not None})
        return self.control("GET", "/storages" + ("?" + q if q else ""))

    def set_storage(self, storage, node=None, **kw):
        """POST /_sim/storages: avail=, used=, total=, status=,
        prune_backups= (-> 'prune-backups'), on every node instance of
        `storage` (or only `node`)."""
        body = {"storage": storage}
        if node is not None:
            body["node"] = node
        for k, v in kw.items():
            body[k.replace("prune_backups", "prune-backups")] = v
        return self.control("POST", "/storages", body)

    def add_backup(self, storage, node=None, **spec):
        """Put a backup archive on a storage (like scenario
        storages[].backups): vmid=, type=, time= (sim s) or ctime= (epoch),
        compress=, protected=, notes=, size=, config=."""
        body = {"storage": storage, "add_backup": spec}
        if node is not None:
            body["node"] = node
        self.control("POST", "/storages", body)
        vols = [v for st in self.storages(storage) for v in st["volumes"]
                if v["vmid"] == int(spec["vmid"])]
        return max(vols, key=lambda v: v["ctime"]) if vols else None

    def remove_volume(self, volid):
        return self.control("POST", "/storages", {"storage": volid.split(":", 1)[0],
                                                  "remove_volume": volid})
