"""The API contract: endpoints.json (+ the verbatim apidata subset for the
parameters endpoints.json lists under params_omitted_here), compiled into
a route table.

Path matching follows PVE::RESTHandler::find_handler: the path is split on
'/' with empty fragments dropped, literal components must match exactly,
a {param} component matches one fragment against \\S+ (the default
match_re). The storage content handler is mounted with
fragmentDelimiter => '' upstream, so its trailing {volume} swallows the
rest of the path (volume ids contain '/').
"""

import json
import os
import re

from .jsonschema import ObjectSchema

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CONTRACT = os.path.normpath(os.path.join(HERE, "..", "..", "data", "pve-api", "endpoints.json"))
DEFAULT_APIDATA = os.path.normpath(os.path.join(HERE, "..", "schema", "apidata-subset-pve9.1.json"))

# templates whose last parameter takes the remaining path (fragmentDelimiter '')
REST_OF_PATH = {"/nodes/{node}/storage/{storage}/content/{volume}"}

_COMPONENT_RE = re.compile(r"^\S+$")


def _fill(primary, fallback):
    """Deep merge: keys of `primary` win, missing ones come from `fallback`."""
    if not isinstance(primary, dict) or not isinstance(fallback, dict):
        return primary
    out = dict(fallback)
    for k, v in primary.items():
        out[k] = _fill(v, fallback.get(k))
    return out


class Endpoint:
    def __init__(self, raw, extra_props=None):
        self.raw = raw
        self.method = raw["method"]
        self.path = raw["path"]
        props = dict(raw.get("params") or {})
        for name, sch in (extra_props or {}).items():
            props.setdefault(name, sch)
        for name in raw.get("params_omitted_here") or []:
            # no definition available: accept any string
            props.setdefault(name, {"type": "string", "optional": 1})
        self.schema = ObjectSchema(props)
        self.components = [c for c in self.path.split("/") if c]
        self.rest_param = self.path in REST_OF_PATH
        self.allowtoken = bool(raw.get("allowtoken", 1))
        self.proxyto = raw.get("proxyto")
        self.async_upid = bool(raw.get("async_returns_upid"))
        self.key = (self.method, self.path)

    def match(self, frags):
        comps = self.components
        if self.rest_param:
            if len(frags) < len(comps):
                return None
            frags = frags[:len(comps) - 1] + ["/".join(frags[len(comps) - 1:])]
        elif len(frags) != len(comps):
            return None
        params = {}
        for c, f in zip(comps, frags):
            if c.startswith("{") and c.endswith("}"):
                if not _COMPONENT_RE.match(f):
                    return None
                params[c[1:-1]] = f
            elif c != f:
                return None
        return params

    def __repr__(self):
        return "<Endpoint %s %s>" % (self.method, self.path)


class Contract:
    def __init__(self, endpoints_path=None, apidata_path=None):
        self.endpoints_path = endpoints_path or DEFAULT_CONTRACT
        with open(self.endpoints_path, encoding="utf-8") as fh:
            doc = json.load(fh)
        self.doc = doc
        self.auth = doc.get("auth", {})
        self.errors = doc.get("errors", {})
        self.upid = doc.get("upid", {})
        apidata = {}
        ap = apidata_path if apidata_path is not None else DEFAULT_APIDATA
        if ap and os.path.exists(ap):
            with open(ap, encoding="utf-8") as fh:
                apidata = json.load(fh)
        self.apidata_path = ap if apidata else None
        self.endpoints = []
        for raw in doc["endpoints"]:
            extra = {}
            info = apidata.get(raw["path"], {}).get(raw["method"], {}) if apidata else {}
            allp = (info.get("parameters") or {}).get("properties") or {}
            if allp:
                raw = dict(raw)
                # endpoints.json wins; the verbatim dump only fills keys the
                # extraction dropped (e.g. default_key inside rootfs' format)
                raw["params"] = {n: _fill(s, allp.get(n)) for n, s in (raw.get("params") or {}).items()}
                extra = {n: allp[n] for n in raw.get("params_omitted_here") or [] if n in allp}
            self.endpoints.append(Endpoint(raw, extra))
        self.by_key = {e.key: e for e in self.endpoints}

    def find(self, method, rel_path):
        """Return (endpoint, uri_params) or (None, None)."""
        frags = [f for f in re.split(r"/+", rel_path) if f]
        for ep in self.endpoints:
            if ep.method != method:
                continue
            params = ep.match(frags)
            if params is not None:
                return ep, params
        return None, None

    def get(self, method, path):
        return self.by_key[(method, path)]
