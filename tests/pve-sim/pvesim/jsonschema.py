"""Parameter verification, a port of the relevant parts of
pve-common src/PVE/JSONSchema.pm (check_prop, check_type, check_object,
check_format, parse_property_string) and of the format validators the
contract uses (pve-common, pve-access-control, pve-storage, pve-ha-manager).

The error strings are the upstream ones, byte for byte, including the
trailing newline that format validators put into their die() message and
that ends up inside the errors map ("invalid format - value does not look
like a valid VM ID\\n").

Values are what the HTTP layer produced: str for form/query input (None for
"k=" which Perl sees as undef), or the decoded JSON types for JSON bodies.
"""

import ipaddress
import re

from .perl import is_integer, is_number, perl_numeric, perl_str, split_list

PARAM_ERROR_MSG = "Parameter verification failed.\n"


class FormatError(Exception):
    """A format validator died; str(exc) is the die() message."""


class ParamErrors(dict):
    def add(self, path, msg):
        # PVE::JSONSchema::add_error joins with a *literal* backslash-n
        path = path or "_root"
        if path in self:
            self[path] = self[path] + "\\n" + msg
        else:
            self[path] = msg


def _opt(schema):
    v = schema.get("optional")
    return bool(v) and v not in ("0", 0)


# ---------------------------------------------------------------- formats

_IPV4 = r"(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"


def _re_check(pattern, msg, flags=0):
    rx = re.compile(pattern, flags)

    def check(value):
        if not rx.match(value):
            raise FormatError(msg.format(v=value))
    return check


def _check_ipv4(v):
    if not re.match(r"^(?:%s)$" % _IPV4, v):
        raise FormatError("value does not look like a valid IPv4 address\n")


def _check_ipv6(v):
    try:
        ipaddress.IPv6Address(v)
    except ValueError:
        raise FormatError("value does not look like a valid IPv6 address\n")


def _is_ip(v):
    try:
        ipaddress.ip_address(v)
        return True
    except ValueError:
        return False


def _check_ip(v):
    if not _is_ip(v):
        raise FormatError("value does not look like a valid IP address\n")


def _cidr_ok(v, version):
    m = re.match(r"^(.+)/(\d+)$", v)
    if not m:
        return False
    addr, bits = m.group(1), int(m.group(2))
    try:
        ip = ipaddress.ip_address(addr)
    except ValueError:
        return False
    if ip.version != version:
        return False
    return bits > 7 and bits <= (32 if version == 4 else 128)


def _check_cidr(v):
    if not (_cidr_ok(v, 4) or _cidr_ok(v, 6)):
        raise FormatError("value does not look like a valid CIDR network\n")


def _check_ipv4_config(v):
    if v in ("dhcp", "manual") or _cidr_ok(v, 4):
        return
    raise FormatError("value does not look like a valid ipv4 network configuration\n")


def _check_ipv6_config(v):
    if v in ("auto", "dhcp", "manual") or _cidr_ok(v, 6):
        return
    raise FormatError("value does not look like a valid ipv6 network configuration\n")


def _check_disk_size(v):
    if not re.match(r"^(\d+(\.\d+)?)([KMGT])?$", v):
        raise FormatError("value does not look like a valid disk size: %s\n" % v)


def _check_startup_order(v):
    ok = bool(v)
    for p in v.split(","):
        if re.match(r"^\s*$", p):
            continue
        if not (re.match(r"^(order=)?(\d+)$", p) or re.match(r"^up=(\d+)$", p)
                or re.match(r"^down=(\d+)$", p)):
            ok = False
    if not ok:
        raise FormatError("unable to parse startup options\n")


_EMAIL_RE = r"[\w\+\-\~]+(\.[\w\+\-\~]+)*@[-a-zA-Z0-9\.]+"
_EMAIL_USER_RE = r"[\w\+\-\~]+(\.[\w\+\-\~]+)*(@[-a-zA-Z0-9\.]+)?"


def _check_email_or_username(v):
    if not (re.match(r"^%s$" % _EMAIL_RE, v) or re.match(r"^%s$" % _EMAIL_USER_RE, v)):
        raise FormatError("value does not look like a valid email address or user name\n")


# pve-storage: valid_content_types('dir') plus the 'import' special case
_STORAGE_CONTENT = {"images", "rootdir", "vztmpl", "iso", "backup", "snippets", "none"}


def _check_storage_content(v):
    if v == "import" or v in _STORAGE_CONTENT:
        return
    raise FormatError("invalid content type '%s'\n" % v)


# pve-access-control: privilege names (PVE 9 list, approximated by shape)
def _check_priv(v):
    if not re.match(r"^(?:Sys|VM|Datastore|Permissions|Realm|User|Group|Pool|SDN|Mapping)\.[A-Za-z.]+$", v):
        raise FormatError("invalid privilege '%s'\n" % v)


def _check_volume_id(v):
    if not re.match(r"^([a-z][a-z0-9\-\_\.]*[a-z0-9]):(.+)$", v, re.I):
        raise FormatError("unable to parse volume ID '%s'\n" % v)


FORMATS = {
    "string": lambda v: None,
    "pve-node": _re_check(r"^([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$",
                          "value does not look like a valid node name\n"),
    "pve-vmid": _re_check(r"^[1-9][0-9]{2,8}$", "value does not look like a valid VM ID\n"),
    "pve-storage-id": _re_check(r"^[a-z][a-z0-9\-\_\.]*[a-z0-9]$",
                                "storage ID '{v}' contains illegal characters\n", re.I),
    "pve-configid": _re_check(r"^[a-z][a-z0-9_-]+$", "invalid configuration ID '{v}'\n", re.I),
    "pve-tag": _re_check(r"^[a-z0-9_][a-z0-9_\-\+\.]*$", "invalid characters in tag\n", re.I),
    "pve-ha-resource-or-vm-id": _re_check(r"^([a-z]+:\S+|\d+)$",
                                          "value does not look like a valid ha resource id\n"),
    "pve-poolid": _re_check(r"^[A-Za-z0-9\.\-_]+(?:/[A-Za-z0-9\.\-_]+){0,2}$",
                            "pool name '{v}' contains invalid characters\n"),
    "pve-realm": _re_check(r"^[A-Za-z][A-Za-z0-9\.\-_]+$",
                           "value '{v}' does not look like a valid realm\n"),
    "pve-bridge-id": _re_check(r"^[-_.\w\d]+$", "invalid bridge ID '{v}'\n"),
    "dns-name": _re_check(r"^(([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)\.)*"
                          r"([a-zA-Z0-9]([a-zA-Z0-9\-]*[a-zA-Z0-9])?)$",
                          "value does not look like a valid DNS name\n"),
    "urlencoded": _re_check(r"^[-%a-zA-Z0-9_.!~*'()]*$", "invalid urlencoded string: {v}\n"),
    "mac-addr": _re_check(r"^[a-f0-9][02468ace](?::[a-f0-9]{2}){5}$",
                          "value does not look like a valid unicast MAC address\n", re.I),
    "pve-task-status-type": _re_check(r"^(ok|error|warning|unknown)$", "invalid status '{v}'\n", re.I),
    "ipv4": _check_ipv4,
    "ipv6": _check_ipv6,
    "ip": _check_ip,
    "CIDR": _check_cidr,
    "pve-ipv4-config": _check_ipv4_config,
    "pve-ipv6-config": _check_ipv6_config,
    "disk-size": _check_disk_size,
    "pve-startup-order": _check_startup_order,
    "email-or-username": _check_email_or_username,
    "pve-storage-content": _check_storage_content,
    "pve-priv": _check_priv,
    "pve-volume-id": _check_volume_id,
}

# Formats that exist upstream but whose validators are not reproduced here;
# any value passes (listed so a start-up report can say so).
UNCHECKED_FORMATS = set()


def check_format(fmt, value, path):
    """PVE::JSONSchema::check_format. Raises FormatError / PropStringError."""
    if isinstance(fmt, dict):
        return parse_property_string(fmt, value, path)
    if fmt == "regex":
        return None
    m = re.match(r"^(.*?)(?:-(list|opt))?$", fmt)
    name, kind = m.group(1), m.group(2) or "none"
    func = FORMATS.get(name)
    if func is None:
        # named hash formats (prune-backups, backup-performance, ...) and
        # code validators we do not reproduce: accept
        UNCHECKED_FORMATS.add(fmt)
        return None
    if kind == "list":
        for item in split_list(value):
            func(item)
    elif kind == "opt":
        if value:
            func(value)
    else:
        func(value)
    return None


class PropStringError(FormatError):
    """raise "format error\\n", errors => {...} inside parse_property_string"""

    def __init__(self, errors):
        self.errors = errors
        msg = "format error\n" + "".join("%s: %s\n" % (k, v) for k, v in errors.items())
        super().__init__(msg)


def parse_boolean(v):
    if re.match(r"^(1|on|yes|true)$", v, re.I):
        return 1
    if re.match(r"^(0|off|no|false)$", v, re.I):
        return 0
    return None


def parse_property_string(fmt, data, path):
    res = {}
    default_key = None
    for part in data.split(","):
        if re.match(r"^\s*$", part):
            continue
        m = re.match(r"^([^=]+)=(.+)$", part, re.S)
        if m:
            k, v = m.group(1), m.group(2)
            if k in res:
                raise FormatError("duplicate key in comma-separated list property: %s\n" % k)
            schema = fmt.get(k)
            if schema and schema.get("alias"):
                k = schema["alias"]
                schema = fmt.get(k)
            if not schema:
                raise FormatError("invalid key in comma-separated list property: %s\n" % k)
            if schema.get("type") == "boolean":
                b = parse_boolean(v)
                v = str(b) if b is not None else v
            res[k] = v
        elif "=" not in part:
            if default_key:
                raise FormatError("duplicate key in comma-separated list property: %s\n" % default_key)
            for key, sch in fmt.items():
                if sch.get("default_key"):
                    default_key = key
                    if not res.get(default_key):
                        res[default_key] = part
                        break
                    raise FormatError("duplicate key in comma-separated list property: %s\n" % default_key)
            if not default_key:
                raise FormatError("value without key, but schema does not define a default key\n")
        else:
            raise FormatError("missing key in comma-separated list property\n")
    errors = ParamErrors()
    check_object(path, fmt, res, False, errors)
    if errors:
        raise PropStringError(dict(errors))
    return res


# ---------------------------------------------------------------- schema walk

def _perl_ref(value):
    if isinstance(value, bool):
        return "JSON::PP::Boolean"
    if isinstance(value, list):
        return "ARRAY"
    if isinstance(value, dict):
        return "HASH"
    return ""


def check_type(path, typ, value, errors):
    if not typ:
        return True
    if isinstance(typ, list):
        for t in typ:
            tmp = ParamErrors()
            check_type(path, t, value, tmp)
            if not tmp:
                return True
        errors.add(path, "type check ('%s') failed" % "|".join(typ))
        return False
    if typ == "any":
        return True
    if typ == "null":
        if value is not None:
            errors.add(path, "type check ('null') failed - value is not null")
            return False
        return True
    vt = _perl_ref(value)
    if typ == "array":
        if vt != "ARRAY":
            errors.add(path, "type check ('array') failed")
            return False
        return True
    if typ == "object":
        if vt != "HASH":
            errors.add(path, "type check ('object') failed")
            return False
        return True
    if vt:
        if typ == "boolean" and vt == "JSON::PP::Boolean":
            return True
        errors.add(path, "type check ('%s') failed - got %s" % (typ, vt))
        return False
    s = perl_str(value)
    if typ == "string":
        return True
    if typ == "boolean":
        if s in ("1", "0"):
            return True
        errors.add(path, "type check ('boolean') failed - got '%s'" % s)
        return False
    if typ == "integer":
        if not is_integer(s):
            errors.add(path, "type check ('integer') failed - got '%s'" % s)
            return False
        return True
    if typ == "number":
        if not is_number(s):
            errors.add(path, "type check ('number') failed - got '%s'" % s)
            return False
        return True
    return True


def _limit_str(v):
    return perl_str(v) if not isinstance(v, str) else v


def check_prop(value, schema, path, errors):
    if not isinstance(schema, dict):
        errors.add(path, "Invalid schema definition.")
        return
    if value is None:
        if schema.get("type") == "null":
            return
        if not _opt(schema) and not schema.get("alias") and not schema.get("group"):
            errors.add(path, "property is missing and it is not optional")
        return
    if not check_type(path, schema.get("type"), value, errors):
        return
    vt = _perl_ref(value)
    if vt:
        if vt == "ARRAY":
            items = schema.get("items")
            if isinstance(items, dict):
                for i, el in enumerate(value):
                    check_prop(el, items, "%s[%d]" % (path, i), errors)
            return
        if vt == "HASH" and (schema.get("properties") or schema.get("additionalProperties")):
            check_object(path, schema.get("properties") or {}, value,
                         schema.get("additionalProperties"), errors)
        return
    s = perl_str(value)
    fmt = schema.get("format")
    if fmt:
        try:
            check_format(fmt, s, path)
        except FormatError as exc:
            errors.add(path, "invalid format - %s" % exc)
            return
    pattern = schema.get("pattern")
    if pattern:
        if not re.match("^" + perl_regex(pattern) + "$", s):
            errors.add(path, "value does not match the regex pattern")
            return
    mx = schema.get("maxLength")
    if mx is not None and len(s) > int(mx):
        errors.add(path, "value may only be %s characters long" % _limit_str(mx))
        return
    mn = schema.get("minLength")
    if mn is not None and len(s) < int(mn):
        errors.add(path, "value must be at least %s characters long" % _limit_str(mn))
        return
    if is_number(s):
        num = perl_numeric(s)
        mx = schema.get("maximum")
        if mx is not None and _is_num_like(mx) and num > float(mx):
            errors.add(path, "value must have a maximum value of %s" % _limit_str(mx))
            return
        mn = schema.get("minimum")
        if mn is not None and _is_num_like(mn) and num < float(mn):
            errors.add(path, "value must have a minimum value of %s" % _limit_str(mn))
            return
    enum = schema.get("enum")
    if enum:
        if not any(perl_str(ev) == s for ev in enum):
            errors.add(path, "value '%s' does not have a value in the enumeration '%s'"
                       % (s, ", ".join(perl_str(e) for e in enum)))


def _is_num_like(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return True
    return isinstance(v, str) and is_number(v)


_rx_cache = {}


def perl_regex(p):
    """Translate the few Perl-only regex constructs that appear in the
    schema dump ("(?^:...)" is how Perl stringifies a qr//)."""
    r = _rx_cache.get(p)
    if r is None:
        r = p.replace("(?^:", "(?:").replace("(?^i:", "(?i:")
        _rx_cache[p] = r
    return r


class ObjectSchema:
    """A parameter schema: named properties plus 'name[n]' families.

    The schema dump writes families like net[n] / scsi[n]; upstream expands
    them into net0..netN. 'n is 0 to 30' in the description gives the range
    when present.
    """

    def __init__(self, props):
        self.props = {}
        self.families = []  # (compiled regex, max_n, schema)
        for name, sch in props.items():
            m = re.match(r"^(.*)\[n\]$", name)
            if m:
                rng = re.search(r"\(n is (\d+) to (\d+)\)", sch.get("description") or "")
                max_n = int(rng.group(2)) if rng else 255
                self.families.append((re.compile("^%s(\\d+)$" % re.escape(m.group(1))), max_n, sch))
            else:
                self.props[name] = sch

    def lookup(self, key):
        sch = self.props.get(key)
        if sch is not None:
            return sch
        for rx, max_n, fsch in self.families:
            m = rx.match(key)
            if m and str(int(m.group(1))) == m.group(1) and int(m.group(1)) <= max_n:
                return fsch
        return None

    def __contains__(self, key):
        return self.lookup(key) is not None


def check_object(path, schema, value, additional_properties, errors):
    """schema: dict of properties or an ObjectSchema."""
    if not isinstance(value, dict):
        errors.add(path, "an object is required")
        return
    if isinstance(schema, ObjectSchema):
        named = schema.props
        lookup = schema.lookup
    else:
        named = schema
        lookup = schema.get
    for k, sch in named.items():
        check_prop(value.get(k), sch, "%s.%s" % (path, k) if path else k, errors)
    for k in value:
        newpath = "%s.%s" % (path, k) if path else k
        sub = lookup(k)
        if sub is not None:
            if k not in named:
                check_prop(value.get(k), sub, newpath, errors)
            req = sub.get("requires")
            if req:
                if isinstance(req, dict):
                    check_prop(value, req, path, errors)
                elif value.get(req) is None:
                    errors.add("%s.%s" % (path, req) if path else req,
                               "missing property - '%s' requires this property" % newpath)
            continue
        if additional_properties is not None and not additional_properties:
            errors.add(newpath, "property is not defined in schema and the schema does not "
                                "allow additional properties")
            continue
        if isinstance(additional_properties, dict):
            check_prop(value.get(k), additional_properties, newpath, errors)


def validate(params, schema):
    """Return a ParamErrors (empty when valid)."""
    errors = ParamErrors()
    check_object("", schema, params, False, errors)
    return errors


def coerce(params, schema):
    """Typed copy of validated params for handlers (ints, 0/1, floats)."""
    out = {}
    for k, v in params.items():
        sch = schema.lookup(k) if isinstance(schema, ObjectSchema) else schema.get(k)
        if v is None or sch is None:
            out[k] = v
            continue
        t = sch.get("type")
        s = perl_str(v) if not isinstance(v, (list, dict)) else v
        if t == "integer" and isinstance(s, str):
            out[k] = int(s)
        elif t == "boolean":
            out[k] = 1 if (v is True or s == "1") else 0
        elif t == "number" and isinstance(s, str):
            out[k] = perl_numeric(s)
        else:
            out[k] = v
    return out
