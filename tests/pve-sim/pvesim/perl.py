"""Small emulations of Perl behaviour that leaks into the PVE API.

Everything here mirrors a specific piece of upstream code:
  - perl_str():          how Perl stringifies a scalar (numbers use %.15g)
  - perl_num():          JSON output of a Perl number ("$x + 0")
  - split_list():        PVE::Tools::split_list
  - decode_urlencoded(): PVE::APIServer::AnyEvent::decode_urlencoded
  - split_csv_perl():    Perl split() dropping trailing empty fields
"""

import re


def perl_str(v):
    """Stringify a decoded-JSON or form value the way Perl would."""
    if v is True:
        return "1"
    if v is False:
        return ""
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v != v:
            return "NaN"
        if v in (float("inf"), float("-inf")):
            return "Inf" if v > 0 else "-Inf"
        return "%.15g" % v
    return str(v)


def perl_num(x):
    """Value as Perl's JSON encoder would emit "$x + 0".

    Integral values become ints, others are rounded to 15 significant
    digits (Perl's NV stringification), so json.dumps prints them the way
    JSON::XS does (e.g. 0.0112815646165076, never 0.011281564616507601).
    """
    if isinstance(x, bool):
        return int(x)
    if isinstance(x, int):
        return x
    if x == int(x) and abs(x) < 1e15:
        return int(x)
    return float("%.15g" % x)


def split_list(text):
    """PVE::Tools::split_list: \\0 separated if it contains \\0, else , ; and
    whitespace separated; leading whitespace ignored."""
    if text is None:
        text = ""
    text = str(text)
    if "\0" in text:
        return _perl_split(text, "\0")
    text = re.sub(r"[,;]", " ", text)
    text = re.sub(r"^\s+", "", text)
    if text == "":
        return []
    return _perl_split_re(text, r"\s+")


def _perl_split(text, sep):
    parts = text.split(sep)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


def _perl_split_re(text, pattern):
    parts = re.split(pattern, text)
    while parts and parts[-1] == "":
        parts.pop()
    return parts


_PCT = re.compile(rb"%([0-9a-fA-F]{2})")


def _pct_decode(raw):
    """'+' to space, then %XX to bytes (like the Perl code, which does not
    care whether the result is valid UTF-8)."""
    b = raw.replace("+", " ").encode("latin-1", "replace")
    return _PCT.sub(lambda m: bytes([int(m.group(1), 16)]), b)


def decode_urlencoded(data):
    """Return {name: value} like pve-http-server's decode_urlencoded.

    Quirks reproduced on purpose:
      - pairs are split on '&' *and* ';'
      - split(/=/, $kv) keeps only the first two fields, so an unencoded
        '=' inside a value truncates it ("a=b=c" gives a => 'b')
      - "k=" gives an undefined value (None), which validation treats as
        missing; repeated keys are joined with "\\0"
      - values are UTF-8 decoded (malformed bytes replaced), keys are not
    """
    res = {}
    if not data:
        return res
    for kv in re.split(r"[&;]", data):
        parts = _perl_split(kv, "=")
        if not parts:
            k_raw, v_raw = "", None
        else:
            k_raw = parts[0]
            v_raw = parts[1] if len(parts) > 1 else None
        key = _pct_decode(k_raw).decode("latin-1")
        if v_raw is not None:
            val = _pct_decode(v_raw).decode("utf-8", "replace")
            old = res.get(key)
            if old is not None:
                val = old + "\0" + val
        else:
            val = None
        res[key] = val
    return res


def uri_unescape(path):
    """URI::Escape::uri_unescape (bytes, not UTF-8 decoded)."""
    b = path.encode("latin-1", "replace")
    return _PCT.sub(lambda m: bytes([int(m.group(1), 16)]), b).decode("latin-1")


def is_number(s):
    return re.match(r"^[+-]?(\d+\.\d+|\d+\.|\.\d+|\d+)([eE][+-]?\d+)?$", s) is not None


def is_integer(s):
    return re.match(r"^[+-]?\d+$", s) is not None


def perl_numeric(s):
    """Numeric value of a string that passed is_number()."""
    try:
        return int(s)
    except ValueError:
        return float(s)
