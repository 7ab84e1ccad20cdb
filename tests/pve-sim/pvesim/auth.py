"""Authentication as pveproxy does it (pve-http-server AnyEvent.pm +
pve-manager PVE/HTTPServer.pm auth_handler + pve-access-control).

  * credentials: PVEAuthCookie cookie, else PVEAuthCookie in the
    Authorization header, else "Authorization: PVEAPIToken=ID=SECRET"
    (Formatter::extract_auth_value: "(?:^|\\s)NAME(?:=| )([^;]*)", then
    uri_unescape; so a space instead of the first '=' works too)
  * /access/ticket (GET, POST) and GET /access/domains need no auth
  * tickets: "PVE:<userid>:<8 hex epoch>::<base64 signature>", valid from
    -300 s to ticket_lifetime (default 7200 s); renew by POSTing the ticket
    as password
  * CSRFPreventionToken "<8 hex epoch>:<hmac_sha256_base64>" required for
    every non-GET request authenticated by ticket (never for tokens)

401 reason phrases: 'No ticket' (no credentials), 'Authentication failed!'
(bad / unknown / revoked API token - the phrase the contract's
auth.failures lists), 'permission denied - invalid PVE ticket' (bad or
expired ticket, PVE::Ticket::verify_rsa_ticket), 'Permission denied -
invalid csrf token' (PVE::Ticket::verify_csrf_prevention_token).
"""

import base64
import hashlib
import hmac
import os
import re

from .perl import uri_unescape

AUTH_GRACE = 300  # $auth_graceperiod


class AuthError(Exception):
    def __init__(self, reason, code=401):
        super().__init__(reason)
        self.reason = reason
        self.code = code


class AuthInfo:
    __slots__ = ("kind", "userid", "api_token", "ticket", "csrf")

    def __init__(self, kind="none", userid=None, api_token=None, ticket=None, csrf=None):
        self.kind = kind            # 'token' | 'ticket' | 'none'
        self.userid = userid        # 'user@realm' or 'user@realm!tokenid'
        self.api_token = api_token  # raw token value if a token header was sent
        self.ticket = ticket
        self.csrf = csrf


def extract_auth_value(header, key):
    if not header:
        return None
    m = re.search(r"(?:^|\s)%s(?:=| )([^;]*)" % re.escape(key), header)
    if not m:
        return None
    v = m.group(1)
    return uri_unescape(v) if v else v


NO_AUTH = {("GET", "/access/domains"), ("GET", "/access/ticket"), ("POST", "/access/ticket")}

# a full-admin capability map, as /access/ticket returns it for root@pam
CAPS = {
    "vms": {k: 1 for k in ("VM.Allocate", "VM.Audit", "VM.Backup", "VM.Clone", "VM.Config.CDROM",
                           "VM.Config.CPU", "VM.Config.Cloudinit", "VM.Config.Disk",
                           "VM.Config.HWType", "VM.Config.Memory", "VM.Config.Network",
                           "VM.Config.Options", "VM.Console", "VM.GuestAgent.Audit",
                           "VM.Migrate", "VM.PowerMgmt", "VM.Replicate", "VM.Snapshot",
                           "VM.Snapshot.Rollback", "Permissions.Modify")},
    "storage": {k: 1 for k in ("Datastore.Allocate", "Datastore.AllocateSpace",
                               "Datastore.AllocateTemplate", "Datastore.Audit",
                               "Permissions.Modify")},
    "access": {k: 1 for k in ("Group.Allocate", "Permissions.Modify", "Realm.Allocate",
                              "Realm.AllocateUser", "User.Modify")},
    "nodes": {k: 1 for k in ("Permissions.Modify", "Sys.Audit", "Sys.Console", "Sys.Incoming",
                             "Sys.Modify", "Sys.PowerMgmt", "Sys.Syslog")},
    "dc": {k: 1 for k in ("Sys.Audit", "Sys.Modify", "SDN.Allocate", "SDN.Audit", "SDN.Use")},
    "sdn": {k: 1 for k in ("Permissions.Modify", "SDN.Allocate", "SDN.Audit", "SDN.Use")},
    "mapping": {k: 1 for k in ("Mapping.Audit", "Mapping.Modify", "Mapping.Use",
                               "Permissions.Modify")},
}


class Auth:
    def __init__(self, scenario, clock):
        self.clock = clock
        self.tokens = dict(scenario.get("tokens") or {})
        self.users = dict(scenario.get("users") or {})
        self.lifetime = float(scenario.get("ticket_lifetime", 7200))
        self.fail_delay = float(scenario.get("auth_fail_delay", 3.0))
        self.secret = os.urandom(32)
        self.is_revoked = lambda tokenid: False   # set by the server (revoke faults)

    # -- tokens
    def _verify_token(self, value):
        m = re.match(r"^(.*)=(.*)$", value, re.S)   # greedy, like verify_token
        if not m:
            raise AuthError("Authentication failed!")
        tokenid, secret = m.group(1), m.group(2)
        expected = self.tokens.get(tokenid)
        if (expected is None or not hmac.compare_digest(str(expected).encode(), secret.encode())
                or self.is_revoked(tokenid)):
            raise AuthError("Authentication failed!")
        return tokenid

    # -- tickets
    def _sign(self, plain):
        out = b""
        for i in range(8):   # 256 bytes, the size of the real RSA-2048 signature
            out += hmac.new(self.secret, plain.encode() + bytes([i]), hashlib.sha256).digest()
        return base64.b64encode(out).decode()

    def make_ticket(self, userid):
        plain = "PVE:%s:%08X" % (userid, int(self.clock.epoch()))
        return plain + "::" + self._sign(plain)

    def verify_ticket(self, ticket):
        """userid or None."""
        m = re.match(r"^(PVE:\S+)::([^:\s]+)$", ticket or "")
        if not m:
            return None
        plain, sig = m.group(1), m.group(2)
        if not hmac.compare_digest(self._sign(plain), sig):
            return None
        m2 = re.match(r"^PVE:(?:(\S+):)?([A-Z0-9]{8})$", plain)
        if not m2 or not m2.group(1):
            return None
        age = self.clock.epoch() - int(m2.group(2), 16)
        if not (-AUTH_GRACE < age < self.lifetime):
            return None
        return m2.group(1)

    def make_csrf(self, userid):
        ts = "%08X" % int(self.clock.epoch())
        d = hmac.new(self.secret, ("%s:%s" % (ts, userid)).encode(), hashlib.sha256).digest()
        return ts + ":" + base64.b64encode(d).decode().rstrip("=")

    def verify_csrf(self, userid, token):
        m = re.match(r"^([A-Z0-9]{8}):(\S+)$", token or "")
        if m:
            ts = m.group(1)
            d = hmac.new(self.secret, ("%s:%s" % (ts, userid)).encode(), hashlib.sha256).digest()
            age = self.clock.epoch() - int(ts, 16)
            if (hmac.compare_digest(base64.b64encode(d).decode().rstrip("="), m.group(2))
                    and -AUTH_GRACE < age < self.lifetime):
                return True
        raise AuthError("Permission denied - invalid csrf token")

    # -- request authentication (auth_handler)
    def authenticate(self, method, rel_uri, headers):
        cookie = headers.get("Cookie")
        authz = headers.get("Authorization")
        csrf = headers.get("CSRFPreventionToken")
        ticket = extract_auth_value(cookie, "PVEAuthCookie")
        if not ticket:
            ticket = extract_auth_value(authz, "PVEAuthCookie")
        api_token = None
        if not ticket:
            api_token = extract_auth_value(authz, "PVEAPIToken")
        info = AuthInfo(api_token=api_token, ticket=ticket, csrf=csrf)
        if (method, rel_uri) in NO_AUTH:
            return info
        if api_token:
            info.userid = self._verify_token(api_token)
            info.kind = "token"
            return info
        if not ticket:
            raise AuthError("No ticket")
        userid = self.verify_ticket(ticket)
        if userid is None:
            raise AuthError("permission denied - invalid PVE ticket")
        info.userid = userid
        info.kind = "ticket"
        if method != "GET":
            self.verify_csrf(userid, csrf)
        return info

    # -- POST /access/ticket
    def create_ticket(self, params, clustername):
        from .model import SimError
        username = params.get("username")
        realm = params.get("realm")
        if realm and "@" not in username:
            username = "%s@%s" % (username, realm)
        password = params.get("password") or ""
        ok = False
        if password.startswith("PVE:"):
            ok = self.verify_ticket(password) == username
        else:
            expected = self.users.get(username)
            ok = expected is not None and hmac.compare_digest(str(expected).encode(), password.encode())
        if not ok:
            # create_ticket: "do not return any info to prevent user enumeration attacks"
            raise SimError("authentication failure\n", code=401)
        if params.get("path") and params.get("privs"):
            return {"username": username}
        res = {"username": username, "ticket": self.make_ticket(username),
               "CSRFPreventionToken": self.make_csrf(username), "cap": CAPS}
        if clustername:
            res["clustername"] = clustername
        return res
