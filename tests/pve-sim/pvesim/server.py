"""HTTP(S) front end: a faithful copy of what pveproxy does with a request
(pve-http-server src/PVE/APIServer/AnyEvent.pm, pve-manager
PVE/HTTPServer.pm, pve-common PVE/RESTHandler.pm), plus the /_sim/ control
API and the request log.

Request pipeline, in upstream order:
   1. pre-request faults (status / delay / hang / close)          [sim only]
   2. method must be GET/POST/PUT/DELETE -> 501 "method 'X' not available"
   3. Transfer-Encoding refused -> 501
   4. /api2/<format>/... : 501 "no such uri" without a format; then
      authentication (401 after auth_fail_delay, empty body, no
      Content-Length, connection closed - like pveproxy)
   5. body: only PUT/POST may carry one (501), max 64 KiB (501), content
      type form-urlencoded or JSON (506)
   6. non-/api2 paths -> 501 "no such file '<path>'"
   7. parameters: body, then query string on top (query wins), _dc dropped
   8. rest_handler: route (501 "Method 'M /path' not implemented"),
      duplicate URI parameter (400), allowtoken (403), proxyto to an
      unknown node (500), JSONSchema verification (400), handler
   9. response: {"data":...} (+"errors", +"message" for errors), status
      line reason = first line of the message, Connection: close for
      codes >= 400, keep-alive for at most 100 requests per connection,
      gzip when the client accepts it and the body is > 1024 bytes
  10. response-transform faults (rewrite of a 2xx body, then truncate /
      malformed / oversize / duplicate_keys / wrong_type)          [sim only]
"""

import email.utils
import gzip
import json
import re
import select
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .auth import Auth, AuthError
from .faults import LOST_KINDS, POST_KINDS, PRE_KINDS, REWRITE_KINDS, Faults
from .handlers import HANDLERS
from .jsonschema import PARAM_ERROR_MSG, coerce, validate
from .model import Cluster, SimError
from .perl import decode_urlencoded, perl_str, uri_unescape

MAX_POST = 64 * 1024
KEEPALIVE_REQUESTS = 100
IDLE_TIMEOUT = 5
KNOWN_METHODS = ("GET", "POST", "PUT", "DELETE")
JSON_CT = "application/json;charset=UTF-8"
REDACT_KEYS = {"password", "otp", "tfa-challenge", "new-password", "confirmation-password",
               "ticket", "CSRFPreventionToken"}
REDACTED = "<redacted>"
STATUS_TEXT = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
               404: "Not Found", 500: "Internal Server Error", 501: "Not Implemented",
               502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout",
               506: "Variant Also Negotiates", 595: "Connection refused"}
TICKET_RE = re.compile(r"PVE:[^\s:]+:[0-9A-F]{8}::\S+")


def _plain_encode_json(obj):
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def encode_json(obj):
    """Compact JSON as JSON::XS writes it (UTF-8, no escaping of non-ASCII);
    honours the duplicate_keys fault marker (_DupKey)."""
    if _has_dup(obj):
        return _encode_with_dups(obj).encode("utf-8")
    return _plain_encode_json(obj)


def first_line(msg):
    return str(msg).split("\n", 1)[0]


class Request:
    """What a handler gets (see handlers.py)."""
    __slots__ = ("method", "path", "endpoint", "params", "args", "auth", "sim")

    def __init__(self, method, path, endpoint, params, args, auth, sim):
        self.method = method
        self.path = path
        self.endpoint = endpoint
        self.params = params
        self.args = args
        self.auth = auth
        self.sim = sim


class ApiResult:
    __slots__ = ("code", "message", "data", "errors", "total", "cache_key", "raw")

    def __init__(self, code, message=None, data=None, errors=None, total=None, cache_key=None,
                 raw=None):
        self.code = code
        self.message = message
        self.data = data
        self.errors = errors
        self.total = total
        self.cache_key = cache_key
        self.raw = raw              # the encoded body {"data":...}, data then None


class Sim:
    def __init__(self, scenario, contract, log_path=None, verbose=False):
        self.scenario = scenario
        self.contract = contract
        self.verbose = verbose
        self.cluster = Cluster(scenario)
        self.clock = self.cluster.clock
        self.auth = Auth(scenario, self.clock)
        self.faults = Faults(self.clock)
        self.cluster.faults = self.faults
        self.auth.is_revoked = lambda tid: self.faults.token_revoked(tid, self.clock.now())
        for f in scenario.get("faults") or []:
            self.faults.add(f)
        self.requests = []
        self.req_lock = threading.Lock()
        self.log_fh = open(log_path, "a", encoding="utf-8") if log_path else None
        self.secrets = {str(s) for s in (scenario.get("tokens") or {}).values() if s}
        self.secrets |= {str(s) for s in (scenario.get("users") or {}).values() if s}
        self.body_cache = {}
        self.body_cache_lock = threading.Lock()
        self.stopping = threading.Event()
        missing = [k for k in HANDLERS if k not in contract.by_key]
        if missing:
            raise RuntimeError("handlers for calls not in the contract: %r" % missing)

    # -- request log (never holds secrets)
    def scrub(self, params):
        if not isinstance(params, dict):
            return params
        out = {}
        for k, v in params.items():
            if k in REDACT_KEYS:
                out[k] = REDACTED
            elif isinstance(v, str) and (TICKET_RE.search(v) or any(s in v for s in self.secrets)):
                out[k] = REDACTED
            else:
                out[k] = v
        return out

    def log_request(self, entry):
        with self.req_lock:
            self.requests.append(entry)
            if self.log_fh and not self.log_fh.closed:
                try:
                    self.log_fh.write(json.dumps(entry, ensure_ascii=False) + "\n")
                    self.log_fh.flush()
                except (OSError, ValueError):
                    pass
        if self.verbose:
            sys.stderr.write("%(t).3f %(method)s %(path)s -> %(status)s\n" % entry)

    def cached_body(self, key, make):
        with self.body_cache_lock:
            hit = self.body_cache.get(key)
        if hit is None:
            hit = [make(), None]
            with self.body_cache_lock:
                if len(self.body_cache) > 4:       # 16 MB each at 50,000 guests
                    self.body_cache.clear()
                self.body_cache[key] = hit
        return hit

    # -- rest_handler (PVE/HTTPServer.pm)
    def rest_handler(self, method, rel, auth, params):
        ep, uri_param = self.contract.find(method, rel)
        if ep is None:
            return ApiResult(501, "Method '%s %s' not implemented" % (method, rel))
        for p in sorted(params):
            if p in uri_param and uri_param[p] != perl_str(params[p]):
                return ApiResult(400, PARAM_ERROR_MSG, errors={
                    p: "duplicate parameter (already defined in URI) with conflicting values!"})
        merged = dict(uri_param)
        merged.update(params)
        if auth.api_token and not ep.allowtoken:
            return ApiResult(403, "Permission check failed (URI '%s' not available with API token, "
                                  "need proper ticket.\n)\n" % rel)
        if ep.proxyto:
            node = merged.get(ep.proxyto)
            if not node:
                return ApiResult(400, PARAM_ERROR_MSG,
                                 errors={ep.proxyto: "proxyto parameter does not exist"})
            n = self.cluster.nodes.get(node)
            if n is None:
                return ApiResult(500, "hostname lookup '%s' failed - failed to get address info for: "
                                      "%s: Name or service not known\n" % (node, node))
            if not n.online:
                return ApiResult(595, "Connection refused")
        errors = validate(merged, ep.schema)
        if errors:
            return ApiResult(400, PARAM_ERROR_MSG, errors=dict(errors))
        handler = HANDLERS.get(ep.key)
        if handler is None:
            return ApiResult(501, "Method '%s %s' not implemented" % (method, rel))
        req = Request(method, rel, ep, merged, coerce(merged, ep.schema), auth, self)
        try:
            res = handler(req)
        except SimError as e:
            return ApiResult(e.code, e.msg, errors=e.errors)
        return ApiResult(200, None, res.data, total=res.total, cache_key=res.cache_key,
                         raw=getattr(res, "raw", None))

    # -- control API (/_sim/...)
    def control(self, method, path, query, body):
        q = decode_urlencoded(query)
        cl = self.cluster
        if path == "/_sim/requests":
            if method == "GET":
                with self.req_lock:
                    return 200, list(self.requests)
            if method == "DELETE":
                with self.req_lock:
                    self.requests.clear()
                return 200, {"cleared": True}
        elif path == "/_sim/faults":
            if method == "GET":
                return 200, self.faults.views()
            if method == "POST":
                specs = body if isinstance(body, list) else [body]
                return 200, {"ids": [self.faults.add(s) for s in specs]}
            if method == "DELETE":
                self.faults.clear()
                return 200, {"cleared": True}
        elif path == "/_sim/event" and method == "POST":
            return 200, self.control_event(body)
        elif path == "/_sim/guests" and method == "GET":
            with cl.lock:
                now = cl.sync()
                guests = cl.live_guests()
                if q.get("vmid"):
                    guests = [g for g in guests if str(g.vmid) == q["vmid"]]
                return 200, [cl.guest_view(g, now) for g in guests]
        elif path == "/_sim/time":
            if method == "POST":
                cl.clock.advance(float(body.get("advance", 0)))
            with cl.lock:
                now = cl.sync()
            return 200, {"t": now, "epoch": cl.clock.epoch(now), "period": cl.period,
                         "sample": int(now // cl.period), "speed": cl.clock.speed}
        elif path == "/_sim/tasks" and method == "GET":
            with cl.lock:
                now = cl.sync()
                tasks = cl.task_order
                if q.get("upid"):
                    tasks = [t for t in tasks if t.upid == q["upid"]]
                if q.get("type"):
                    tasks = [t for t in tasks if t.type == q["type"]]
                if q.get("vmid"):
                    tasks = [t for t in tasks if t.id == q["vmid"]]
                return 200, [t.view(with_log=bool(q.get("upid") or q.get("log")), now=now)
                             for t in tasks]
        elif path == "/_sim/history" and method == "GET":
            with cl.lock:
                cl.sync()
                hist = list(cl.history)
            if q.get("event"):
                hist = [e for e in hist if e["event"] == q["event"]]
            if q.get("vmid"):
                hist = [e for e in hist if str(e.get("vmid")) == q["vmid"]]
            return 200, hist
        elif path == "/_sim/storages":
            with cl.lock:
                now = cl.sync()
                if method == "POST":
                    self.control_storage(body, now)
                elif method != "GET":
                    return 404, {"error": "no such control call %s %s" % (method, path)}
                sts = cl.storages
                if q.get("storage"):
                    sts = [st for st in sts if st.storage == q["storage"]]
                if q.get("node"):
                    sts = [st for st in sts if st.node == q["node"]]
                return 200, [st.view() for st in sts]
        return 404, {"error": "no such control call %s %s" % (method, path)}

    def control_storage(self, body, now):
        """POST /_sim/storages {"storage", "node"?, "avail"? | "used"? |
        "total"? | "status"?, "add_backup"?: {...}, "remove_volume"?: volid}"""
        if not isinstance(body, dict) or not body.get("storage"):
            raise ValueError("need 'storage'")
        cl = self.cluster
        sts = [st for st in cl.storages if st.storage == body["storage"]
               and (not body.get("node") or st.node == body["node"])]
        if not sts:
            raise ValueError("no such storage %r" % body["storage"])
        for st in sts:
            if body.get("total") is not None:
                st.maxdisk = int(body["total"])
            if body.get("used") is not None:
                st.disk = int(body["used"])
            if body.get("avail") is not None:
                st.disk = st.maxdisk - int(body["avail"])
            if body.get("status"):
                st.status = body["status"]
            if body.get("prune-backups") is not None:
                st.prune = body["prune-backups"] or None
        if body.get("add_backup"):
            cl.add_backup(body["storage"], body["add_backup"], body.get("node"))
        if body.get("remove_volume"):
            vol = cl.find_volume(body["remove_volume"])
            if vol is None:
                raise ValueError("no such volume %r" % body["remove_volume"])
            for st in cl.distinct_stores():
                if st.storage == vol.storage and vol.volname in st.volumes:
                    st.remove_volume(vol)
        cl.touch()

    def control_event(self, ev):
        cl = self.cluster
        with cl.lock:
            now = cl.sync()
            g = cl.control_event(ev, now)
            return cl.guest_view(g, now)


class SimHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, addr, sim, ssl_ctx=None):
        self.sim = sim
        self.ssl_ctx = ssl_ctx
        super().__init__(addr, Handler)

    def get_request(self):
        sock, addr = self.socket.accept()
        if self.ssl_ctx is not None:
            # handshake in the connection thread, never in the accept loop
            sock = self.ssl_ctx.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request, client_address):
        if self.sim.verbose:
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "pve-api-daemon/3.0"
    sys_version = ""
    timeout = IDLE_TIMEOUT

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        if self.server.sim.verbose:
            sys.stderr.write("http: " + (fmt % args) + "\n")

    def setup(self):
        self.tls_failed = False
        self.keepalive_left = KEEPALIVE_REQUESTS
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(10)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError):
                self.tls_failed = True
        super().setup()

    def handle(self):
        if self.tls_failed:
            return
        try:
            super().handle()
        except (ConnectionError, ssl.SSLError, OSError):
            pass

    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
        except (TimeoutError, socket.timeout, ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True
            return
        if len(self.raw_requestline) > 65536:
            self.requestline = ""
            self.request_version = "HTTP/1.1"
            self.send_error(414)
            return
        if not self.raw_requestline:
            self.close_connection = True
            return
        if not self.parse_request():
            return
        try:
            self.dispatch()
            self.wfile.flush()
        except (ConnectionError, ssl.SSLError, TimeoutError, socket.timeout, OSError):
            self.close_connection = True

    # -- low level response writer (header order as HTTP::Headers prints it)
    def respond(self, code, reason, body=b"", ctype=JSON_CT, close=False, truncate=None,
                allow_gzip=True, stream=None, content_length=None, trickle=None):
        self.keepalive_left -= 1
        if "\r" in reason:
            # errors section of the contract: a message containing CR/LF
            # is replaced by 400 'Bad Request'
            code, reason = 400, "Bad Request"
        keep = (not close and code < 400 and not self.close_connection and self.keepalive_left > 0
                and not self.server.sim.stopping.is_set())
        date = email.utils.formatdate(usegmt=True)
        encoding = None
        if body and allow_gzip and stream is None and len(body) > 1024 and \
                "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body, compresslevel=6, mtime=0)
            encoding = "gzip"
        h = ["%s %d %s" % (self.request_version, code, reason),
             "Cache-Control: max-age=0",
             "Connection: %s" % ("Keep-Alive" if keep else "close"),
             "Date: %s" % date,
             "Pragma: no-cache",
             "Server: pve-api-daemon/3.0"]
        if encoding:
            h.append("Content-Encoding: gzip")
        length = content_length if content_length is not None else len(body)
        if length:
            h.append("Content-Length: %d" % length)
            if ctype:
                h.append("Content-Type: %s" % ctype)
        h.append("Expires: %s" % date)
        head = ("\r\n".join(h) + "\r\n\r\n").encode("utf-8", "replace")
        self._log_status(code)
        if truncate is not None:
            self.wfile.write(head + body[:truncate])
            self.wfile.flush()
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        if trickle is not None:
            self._trickle(head + body, trickle)
            return
        if stream is not None:
            self.wfile.write(head)
            for chunk in stream:
                self.wfile.write(chunk)
        else:
            self.wfile.write(head + body)
        if not keep:
            self.close_connection = True
            self._drain_body()

    def _trickle(self, data, rate):
        """trickle fault: the whole response at `rate` bytes per second (in
        pieces of at most a tenth of a second's worth), then close; stops
        when the client goes away or the sim stops."""
        piece = max(1, int(rate / 10))
        stop = self.server.sim.stopping
        self.close_connection = True
        for i in range(0, len(data), piece):
            if stop.is_set():
                return
            self.wfile.write(data[i:i + piece])
            self.wfile.flush()
            if i + piece < len(data) and stop.wait(len(data[i:i + piece]) / rate):
                return

    def _drain_body(self):
        """Read an unread request body before the connection is closed, so
        the kernel does not answer the client's data with a RST that could
        destroy the response we just sent."""
        left = getattr(self, "pending_body", 0)
        if not left or left > 4 * MAX_POST:
            return
        try:
            self.wfile.flush()
            self.connection.settimeout(1.0)
            while left > 0:
                chunk = self.rfile.read(min(left, 65536))
                if not chunk:
                    break
                left -= len(chunk)
        except (OSError, ValueError):
            pass
        self.pending_body = 0

    def respond_api(self, res, post_fault=None, rewrite=None):
        sim = self.server.sim
        if res.raw is not None and (post_fault is not None or rewrite is not None
                                    or res.cache_key is None):
            res.data = json.loads(res.raw)["data"]      # a fault works on the objects
        if res.code == 200:
            reason = "OK"
            if post_fault is None and rewrite is None and res.cache_key is not None:
                key = ("body", res.cache_key)
                entry = sim.cached_body(key, lambda: res.raw if res.raw is not None
                                        else encode_json({"data": res.data}))
                body = entry[0]
                gz_ok = "gzip" in (self.headers.get("Accept-Encoding") or "")
                if gz_ok and len(body) > 1024:
                    if entry[1] is None:
                        entry[1] = gzip.compress(body, compresslevel=6, mtime=0)
                    return self._respond_pre_gzipped(200, reason, entry[1])
            else:
                obj = {"data": res.data}
                if res.total is not None:
                    obj["total"] = res.total
                # Only these two faults change the JSON itself; the others
                # (malformed, truncate, oversize) damage the real body later.
                if post_fault and post_fault.kind in ("duplicate_keys", "wrong_type"):
                    obj = self._transform(obj, post_fault)
                body = encode_json(obj)
                if rewrite is not None:
                    body = rewrite.rewrite(body)
        else:
            obj = {"data": None}
            if res.errors:
                obj["errors"] = res.errors
            msg = res.message if res.message is not None else STATUS_TEXT.get(res.code, "")
            obj["message"] = msg
            reason = first_line(msg) or STATUS_TEXT.get(res.code, "Error")
            body = encode_json(obj)
            if res.code == 401:
                self._auth_delay()
        self.send_with_fault(res.code, reason, body, post_fault, res.data)

    def _respond_pre_gzipped(self, code, reason, gz):
        self.keepalive_left -= 1
        keep = not self.close_connection and self.keepalive_left > 0 and not self.server.sim.stopping.is_set()
        date = email.utils.formatdate(usegmt=True)
        head = ("%s %d %s\r\nCache-Control: max-age=0\r\nConnection: %s\r\nDate: %s\r\n"
                "Pragma: no-cache\r\nServer: pve-api-daemon/3.0\r\nContent-Encoding: gzip\r\n"
                "Content-Length: %d\r\nContent-Type: %s\r\nExpires: %s\r\n\r\n"
                % (self.request_version, code, reason, "Keep-Alive" if keep else "close", date,
                   len(gz), JSON_CT, date)).encode("latin-1")
        self._log_status(code)
        self.wfile.write(head + gz)
        if not keep:
            self.close_connection = True

    def _log_status(self, code):
        """Record the request before its response leaves, so a client that
        reads /_sim/requests right after the response always finds it."""
        entry = self.log_entry
        if entry is not None:
            entry["status"] = code
            self.log_entry = None
            self.server.sim.log_request(entry)

    def _auth_delay(self):
        delay = self.server.sim.auth.fail_delay - (time.monotonic() - self.t_wall)
        if delay > 0:
            time.sleep(delay)

    # -- response-transform faults
    def _transform(self, obj, fault):
        kind = fault.kind
        spec = fault.spec

        def fix(d):
            if not (isinstance(d, dict) and "vmid" in d):
                return d
            key = spec.get("key", "cpu" if kind == "duplicate_keys" else "mem")
            d = dict(d)
            if kind == "wrong_type":
                if key in d:
                    d[key] = spec["value"] if "value" in spec else perl_str(d[key])
                return d
            return _DupKey(d, key, spec.get("value", d.get(key)))

        data = obj.get("data")
        if isinstance(data, list):
            obj = dict(obj, data=[fix(d) for d in data])
        else:
            obj = dict(obj, data=fix(data))
        return obj

    def send_with_fault(self, code, reason, body, fault, data=None):
        if fault is None:
            return self.respond(code, reason, body)
        kind = fault.kind
        spec = fault.spec
        if kind == "truncate":
            n = int(spec.get("bytes", 100))
            return self.respond(code, reason, body, truncate=n, allow_gzip=False)
        if kind == "malformed":
            bad = (body[:max(1, len(body) // 2)] if body else b'{"data":') + b"\x00<<malformed>>"
            return self.respond(200, "OK", bad, allow_gzip=False)
        if kind == "trickle":
            return self.respond(code, reason, body, trickle=float(spec.get("rate", 1)),
                                allow_gzip=False, close=True)
        if kind == "oversize":
            size = int(float(spec.get("size_mb", 64)) * 1048576)
            return self.respond(200, "OK", stream=_oversize_stream(size, data), content_length=size,
                                allow_gzip=False)
        # duplicate_keys / wrong_type were applied while encoding
        return self.respond(code, reason, body)

    # -- hold a connection open until the peer gives up
    def _hang(self):
        sock = self.connection
        stop = self.server.sim.stopping
        while not stop.is_set():
            try:
                r, _, _ = select.select([sock], [], [], 0.25)
            except (OSError, ValueError):
                break
            if r:
                try:
                    data = sock.recv(65536)
                except (BlockingIOError, ssl.SSLWantReadError, socket.timeout, TimeoutError):
                    continue
                except OSError:
                    break
                if not data:
                    break
        self.close_connection = True

    # -- main entry
    def dispatch(self):
        sim = self.server.sim
        self.t_wall = time.monotonic()
        self.log_entry = None
        try:
            self.pending_body = max(0, int(self.headers.get("Content-Length") or 0))
        except ValueError:
            self.pending_body = 0
        method = self.command
        raw_path, _, query = self.path.partition("?")
        path = uri_unescape(raw_path)
        if path == "/_sim" or path.startswith("/_sim/"):
            return self.dispatch_control(method, path, query)
        m = re.match(r"^/api2/+([a-z][a-z0-9]+)(/.*)?$", path)
        fmt = m.group(1) if m else None
        rel = (m.group(2) or "/") if m else None
        api_path = rel if fmt else path
        t_arrival = sim.clock.now()
        entry = {"t": round(t_arrival, 3), "method": method, "path": api_path,
                 "query": sim.scrub(decode_urlencoded(query)), "body": {}, "auth": "none",
                 "status": None}
        self.log_entry = entry
        try:
            self.process(sim, method, path, fmt, rel, api_path, query, t_arrival, entry)
        finally:
            if self.log_entry is not None:      # no response was sent (hang, close, error)
                self.log_entry = None
                sim.log_request(entry)

    def process(self, sim, method, path, fmt, rel, api_path, query, now, entry):
        pre = sim.faults.take(method, api_path, now, PRE_KINDS)
        if pre is not None:
            entry["fault"] = pre.kind
            if pre.kind == "close":
                self._log_status(0)
                self.close_connection = True
                return
            if pre.kind == "hang":
                self._log_status(0)
                self._hang()
                return
            if pre.kind == "status":
                code = int(pre.spec.get("code", 503))
                msg = pre.spec.get("message") or STATUS_TEXT.get(code, "Error")
                return self.respond(code, first_line(msg), encode_json({"data": None, "message": msg + "\n"}))
            if pre.kind == "delay":
                time.sleep(float(pre.spec.get("seconds", 1.0)))
        if method not in KNOWN_METHODS:
            return self.respond(501, "method '%s' not available" % method)
        te = self.headers.get("Transfer-Encoding")
        if te:
            if te.lower() == "chunked":
                return self.respond(501, "chunked transfer encoding not supported")
            return self.respond(501, "Unknown transfer encoding '%s'" % te)
        auth = None
        if path.startswith("/api2"):
            if not fmt:
                return self.respond(501, "no such uri")
            try:
                auth = sim.auth.authenticate(method, rel, self.headers)
            except AuthError as e:
                entry["auth"] = "token" if "PVEAPIToken" in (self.headers.get("Authorization") or "") \
                    else ("ticket" if "PVEAuthCookie" in (self.headers.get("Cookie") or "") else "none")
                self._auth_delay()
                return self.respond(e.code, e.reason)
            entry["auth"] = auth.kind
            if auth.userid:
                entry["authid"] = auth.userid
        length = self.headers.get("Content-Length")
        try:
            length = int(length) if length else 0
        except ValueError:
            return self.respond(400, "bad request")
        body = b""
        ctype = self.headers.get("Content-Type")
        ct = re.split(r"\s*[;,]\s*", ctype)[0] if ctype else None
        if length:
            if method not in ("PUT", "POST"):
                return self.respond(501, "Unexpected content for method '%s'" % method)
            if length > MAX_POST:
                return self.respond(501, "for data too large")
            if ct and ct not in ("application/x-www-form-urlencoded", "application/json"):
                return self.respond(506, "upload 'Content-Type '%s' not implemented" % ctype)
            body = self.rfile.read(length)
            self.pending_body = 0
        if not path.startswith("/api2"):
            return self.respond(501, "no such file '%s'" % path)
        if fmt != "json":
            return self.respond(501, "no formatter for uri %s, %s" % (rel, fmt))
        try:
            params, body_params = extract_params(method, ct, body, query)
        except ValueError as e:
            return self.respond(501, first_line(str(e)))
        entry["body"] = sim.scrub(body_params)
        params.pop("_dc", None)
        res = sim.rest_handler(method, rel, auth, params)
        if res.code != 200:
            entry["message"] = first_line(res.message or "")
        elif method != "GET":
            d = res.data
            if d is None or isinstance(d, (int, float)) or (isinstance(d, str) and len(d) <= 300):
                if isinstance(d, str) and (TICKET_RE.search(d) or any(x in d for x in sim.secrets)):
                    d = REDACTED
                entry["data"] = d
        lost = sim.faults.take(method, api_path, sim.clock.now(), LOST_KINDS)
        if lost is not None:
            # the call was performed; the reply never leaves
            entry["fault"] = lost.kind
            self._log_status(0)
            self.close_connection = True
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            return
        post = sim.faults.take(method, api_path, sim.clock.now(), POST_KINDS)
        rewrite = None
        if 200 <= res.code < 300:
            rewrite = sim.faults.take(method, api_path, sim.clock.now(), REWRITE_KINDS)
        if post is not None or rewrite is not None:
            entry["fault"] = "+".join(f.kind for f in (rewrite, post) if f is not None)
        self.respond_api(res, post, rewrite)

    def dispatch_control(self, method, path, query):
        sim = self.server.sim
        length = self.pending_body
        raw = self.rfile.read(length) if length else b""
        self.pending_body = 0
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
            code, data = sim.control(method, path, query, body)
        except (ValueError, KeyError, TypeError) as e:
            code, data = 400, {"error": str(e)}
        self.respond(code, STATUS_TEXT.get(code, "OK"), json.dumps(data).encode(), ctype="application/json")


class _DupKey(dict):
    """A dict that json.dumps writes with one key twice (duplicate_keys fault)."""

    def __init__(self, d, key, first_value):
        super().__init__(d)
        self.dup_key = key
        self.first_value = first_value


def _encode_with_dups(obj):
    if isinstance(obj, _DupKey):
        inner = json.dumps(dict(obj), separators=(",", ":"), ensure_ascii=False)
        pre = json.dumps(obj.dup_key) + ":" + json.dumps(obj.first_value) + ","
        return "{" + pre + inner[1:]
    if isinstance(obj, dict):
        return "{" + ",".join(json.dumps(k) + ":" + _encode_with_dups(v) for k, v in obj.items()) + "}"
    if isinstance(obj, list):
        return "[" + ",".join(_encode_with_dups(v) for v in obj) + "]"
    return json.dumps(obj, ensure_ascii=False)


def _has_dup(obj):
    if isinstance(obj, _DupKey):
        return True
    if isinstance(obj, dict):
        d = obj.get("data")
        if isinstance(d, _DupKey):
            return True
        if isinstance(d, list) and d and isinstance(d[0], _DupKey):
            return True
    return False


def _oversize_stream(size, data):
    """Valid JSON {"data":[...]} of exactly `size` bytes, streamed."""
    items = []
    if isinstance(data, list):
        items = [_plain_encode_json(d) for d in data[:200] if isinstance(d, dict)]
    if not items:
        items = [_plain_encode_json({"id": "qemu/%d" % (100 + i), "vmid": 100 + i, "type": "qemu",
                                     "status": "running", "name": "x" * 200}) for i in range(20)]
    head, tail = b'{"data":[', b"]}"
    budget = size - len(head) - len(tail)
    yield head
    first = True
    buf = []
    buflen = 0
    i = 0
    while True:
        item = items[i % len(items)]
        need = len(item) + (0 if first else 1)
        if need > budget:
            break
        buf.append(item if first else b"," + item)
        first = False
        budget -= need
        buflen += need
        i += 1
        if buflen > 262144:
            yield b"".join(buf)
            buf, buflen = [], 0
    if buf:
        yield b"".join(buf)
    while budget > 0:           # JSON allows whitespace before ']'
        n = min(budget, 65536)
        yield b" " * n
        budget -= n
    yield tail


def extract_params(method, ct, body, query):
    """PVE::APIServer::AnyEvent::extract_params. Returns (all params,
    body params)."""
    params = {}
    if method in ("PUT", "POST"):
        if ct == "application/json":
            text = body.decode("utf-8", "replace")
            try:
                params = json.loads(text)
            except json.JSONDecodeError as e:
                raise ValueError("malformed JSON string, neither tag, array, object, number, string "
                                 "or atom, at character offset %d (before \"%s\")"
                                 % (e.pos, text[e.pos:e.pos + 20] or "(end of string)"))
            if not isinstance(params, dict):
                raise ValueError("Not a HASH reference")
        else:
            params = decode_urlencoded(body.decode("latin-1"))
    body_params = dict(params)
    params.update(decode_urlencoded(query))
    return params, body_params


def make_ssl_context(cert, key):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    return ctx
