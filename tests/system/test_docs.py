"""The manual pages and the bash completion against the real binaries.

- every man page renders with man(1) without a single groff warning, and
  no rendered line is wider than the 80 columns it was rendered for;
- proxreap.conf(5) documents exactly the keys of the key table in
  src/config.c, each under its group, with the default and the range the
  table and set_defaults() give it, and its examples load;
- every option and command of `--help` is in the man page of its program,
  and every option a man page lists is one the program has;
- completion/proxreap completes commands, options, config files and, from
  `proxreap journal list --json`, op ids.

Needs man-db (for man(1) and groff); bash-completion is optional.
"""

import json
import os
import re
import shlex
import shutil
import subprocess

import pytest

from conftest import BUILD, PROXREAP, PROXREAPD, REPO, SECRET, TOKEN_ID, render_config

MAN_DIR = os.path.join(REPO, "man")
PAGES = {"proxreapd": "proxreapd.8", "proxreap": "proxreap.8", "conf": "proxreap.conf.5"}
CONFIG_C = os.path.join(REPO, "src", "config.c")
COMPLETION = os.path.join(REPO, "completion", "proxreap")
BASH_COMPLETION = "/usr/share/bash-completion/bash_completion"
WIDTH = 80


def page_path(key):
    return os.path.join(MAN_DIR, PAGES[key])


def read(path):
    with open(path, encoding="utf-8") as fh:
        return fh.read()


# ------------------------------------------------------------------ roff

def roff_text(s):
    """Roff source (one line or a tag) as plain text: escapes resolved,
    font changes and macro quoting dropped."""
    s = re.sub(r"\\f(\[[^]]*\]|.)", "", s)
    for esc, ch in ((r"\-", "-"), (r"\(dq", '"'), (r"\(aq", "'"), (r"\(em", "--"),
                    (r"\(lq", '"'), (r"\(rq", '"'), (r"\e", "\\"), (r"\&", ""), (r"\|", ""),
                    (r"\c", "")):
        s = s.replace(esc, ch)
    return s


def macro_args(line):
    """The arguments of a macro line, as roff splits them ("" quoting)."""
    args, cur, quoted, any_ = [], "", False, False
    for ch in line.split(None, 1)[1] if " " in line else "":
        if ch == '"':
            quoted, any_ = not quoted, True
        elif ch in " \t" and not quoted:
            if cur or any_:
                args.append(cur)
            cur, any_ = "", False
        else:
            cur += ch
    if cur or any_:
        args.append(cur)
    return args


def tag_text(line):
    """The text a .B/.BR/.I/... tag line shows, or "" for other lines."""
    m = re.match(r"\.(B|I|BR|BI|IR|IB|RB|RI)\b", line)
    if not m:
        return ""
    # .B and .I join their arguments with spaces, .BR and the like without.
    sep = " " if len(m.group(1)) == 1 else ""
    return roff_text(sep.join(macro_args(line)))


def sections(src):
    """{section name: [lines]} of a page, names unquoted."""
    out, name = {}, None
    for line in src.splitlines():
        if line.startswith(".SH"):
            name = " ".join(macro_args(line))
            out[name] = []
        elif name is not None:
            out[name].append(line)
    return out


def tagged_entries(lines):
    """The top-level .TP entries of a list of lines (nested .RS lists are
    part of their entry): [(tag text, [body lines])], grouped by the .SS
    they are under: {subsection heading or "": [...]}."""
    out = {"": []}
    ss, depth, entry, want_tag = "", 0, None, False
    for line in lines:
        if line.startswith(".SS"):
            ss = " ".join(macro_args(line))
            out[ss] = []
            entry, depth = None, 0
            continue
        if line.startswith(".RS"):
            depth += 1
        elif line.startswith(".RE"):
            depth -= 1
        if depth == 0 and line.startswith(".TP"):
            want_tag = True
            continue
        if want_tag:
            want_tag = False
            entry = (tag_text(line) or roff_text(line), [])
            out[ss].append(entry)
            continue
        if entry is not None:
            entry[1].append(line)
    return out


# ------------------------------------------------------------------ 1. rendering

def man_env():
    env = dict(os.environ, LC_ALL="C.UTF-8", MANWIDTH=str(WIDTH), MANPAGER="cat", PAGER="cat")
    for k in ("MANOPT", "MANROFFSEQ", "MANROFFOPT", "GROFF_TMAC_PATH", "LANG", "LANGUAGE"):
        env.pop(k, None)
    return env


def man_render(path):
    """`man --warnings -E UTF-8 -l PATH`: --warnings turns on groff's
    warnings (its default set, "mac", plus what groff warns about anyway,
    such as lines it cannot break), which go to stderr."""
    if not shutil.which("man"):
        pytest.fail("man(1) is missing: install man-db (the man pages are tested with it)")
    return subprocess.run(["man", "--warnings", "-E", "UTF-8", "-l", path], capture_output=True,
                          text=True, env=man_env(), timeout=30, stdin=subprocess.DEVNULL)


@pytest.mark.parametrize("key", sorted(PAGES))
def test_man_page_renders_without_warnings(key):
    r = man_render(page_path(key))
    assert r.returncode == 0, r.stderr
    assert r.stderr == "", "man/groff warnings for %s:\n%s" % (PAGES[key], r.stderr)
    name = PAGES[key].rsplit(".", 1)[0]
    assert re.search(r"^NAME\n\s+%s - " % re.escape(name), r.stdout, re.M), r.stdout[:500]
    for section in ("SYNOPSIS", "DESCRIPTION", "FILES", "SEE ALSO"):
        assert re.search(r"^%s$" % section, r.stdout, re.M), "%s has no %s" % (PAGES[key], section)
    wide = [line for line in r.stdout.splitlines() if len(line) > WIDTH]
    assert not wide, "lines wider than %d columns in %s:\n%s" % (WIDTH, PAGES[key], "\n".join(wide))


# ------------------------------------------------------------------ 2. proxreap.conf(5) vs config.c

USEC = {"USEC_PER_MSEC": 10**3, "USEC_PER_SEC": 10**6, "USEC_PER_MINUTE": 60 * 10**6,
        "USEC_PER_HOUR": 3600 * 10**6, "USEC_PER_DAY": 86400 * 10**6}
DURATION_UNITS = {"ms": 10**3, "s": 10**6, "m": 60 * 10**6, "h": 3600 * 10**6, "d": 86400 * 10**6}


def c_number(expr):
    """Value of a constant C expression of the key table or set_defaults():
    numbers, USEC_PER_* constants, casts, * << - and parentheses."""
    e = re.sub(r"\((size_t|uint64_t|unsigned|double|int)\)", "", expr)
    e = re.sub(r"\bUSEC_PER_[A-Z]+\b", lambda m: str(USEC[m.group(0)]), e)
    e = e.replace("true", "1").replace("false", "0")
    if not re.fullmatch(r"[0-9.eE+\-*<() \t]+", e):
        raise ValueError("not a constant expression: %r" % expr)
    return eval(e, {"__builtins__": {}})  # checked above: digits and operators only


def c_args(text):
    """Split macro arguments at top-level commas."""
    args, depth, cur = [], 0, ""
    for ch in text:
        if ch == "," and depth == 0:
            args.append(cur.strip())
            cur = ""
            continue
        depth += ch == "("
        depth -= ch == ")"
        cur += ch
    args.append(cur.strip())
    return args


def config_keys():
    """[(macro, group, name, [macro args])] of keys[] in src/config.c."""
    src = read(CONFIG_C)
    table = re.search(r"static const struct key keys\[\] = \{(.*?)\n\};", src, re.S)
    assert table, "no keys[] table in src/config.c"
    keys = []
    for m in re.finditer(r"^\s*(DUR|NUM|STR|BOOL|SPECIAL|COUNT)\((.*)\),?\s*$", table.group(1), re.M):
        args = c_args(m.group(2))
        keys.append((m.group(1), args[0].strip('"'), args[1].strip('"'), args))
    assert len(keys) >= 40, "parsed only %d keys from src/config.c" % len(keys)
    return keys


def config_groups():
    m = re.search(r"static const char \*const groups\[\] = \{([^}]*)\};", read(CONFIG_C))
    assert m, "no groups[] array in src/config.c"
    return re.findall(r'"([a-z_]+)"', m.group(1))


def config_defaults():
    """{field: value} assigned in set_defaults(): numbers, booleans,
    strdup()ed strings (other assignments are left out)."""
    body = re.search(r"static int set_defaults\(struct config \*c\)\n\{(.*?)\n\}", read(CONFIG_C), re.S)
    assert body, "no set_defaults() in src/config.c"
    out = {}
    for stmt in re.findall(r"^\s*(c->[^;]*);", body.group(1), re.M):
        parts = [p.strip() for p in stmt.split("=")]
        fields = [p[3:] for p in parts[:-1] if re.fullmatch(r"c->\w+", p)]
        value = parts[-1]
        m = re.fullmatch(r'strdup\("([^"]*)"\)', value)
        if m:
            v = m.group(1)
        elif value in ("true", "false"):
            v = value == "true"
        else:
            try:
                v = c_number(value)
            except ValueError:
                continue
        for f in fields:
            out[f] = v
    return out


def parse_duration(s):
    if s == "0":
        return 0
    parts = re.findall(r"(\d+)(ms|s|m|h|d)", s)
    assert parts and "".join(n + u for n, u in parts) == s, "not a duration: %r" % s
    return sum(int(n) * DURATION_UNITS[u] for n, u in parts)


def conf_page_keys():
    """{group: {key: (tag, body text)}} from KEYS of proxreap.conf(5)."""
    secs = sections(read(page_path("conf")))
    assert "KEYS" in secs, "proxreap.conf(5) has no KEYS section"
    out = {}
    for heading, entries in tagged_entries(secs["KEYS"]).items():
        if not heading:
            assert not entries, "KEYS has entries before its first group: %r" % entries
            continue
        group = heading.split()[0]
        assert group not in out, "group %s documented twice" % group
        out[group] = {}
        for tag, body in entries:
            m = re.match(r"([a-z_]+) \((.*)\)$", tag)
            assert m, "%s: key tag %r is not 'name (type, default ...)'" % (group, tag)
            assert m.group(1) not in out[group], "%s.%s documented twice" % (group, m.group(1))
            text = " ".join(tag_text(line) if line.startswith(".") else line for line in body)
            out[group][m.group(1)] = (m.group(2), roff_text(text))
    return out


def test_conf_page_documents_every_group():
    documented = conf_page_keys()
    groups = config_groups()
    assert set(groups) == {g for _, g, _, _ in config_keys()}, "groups[] and keys[] disagree"
    missing = [g for g in groups if g not in documented]
    assert not missing, "groups of src/config.c not in proxreap.conf(5): %s" % missing
    stale = [g for g in documented if g not in groups]
    assert not stale, "groups in proxreap.conf(5) that src/config.c does not know: %s" % stale


def test_conf_page_documents_every_key_under_its_group():
    documented = conf_page_keys()
    missing = ["%s.%s" % (g, n) for _, g, n, _ in config_keys() if n not in documented.get(g, {})]
    assert not missing, "keys of src/config.c not documented in proxreap.conf(5): %s" % missing


def test_conf_page_documents_no_stale_key():
    known = {(g, n) for _, g, n, _ in config_keys()}
    stale = ["%s.%s" % (g, n) for g, keys in conf_page_keys().items() for n in keys
             if (g, n) not in known]
    assert not stale, "keys in proxreap.conf(5) that src/config.c does not know: %s" % stale


def doc_default(tag):
    """The default a tag "TYPE, default VALUE" gives, as text."""
    m = re.search(r"\bdefault:? (.*)$", tag)
    return m.group(1) if m else None


def numbers_in(text):
    return {float(x) for x in re.findall(r"(?<![\w.])(\d+(?:\.\d+)?)(?![\w.]*\w)", text)}


def check_key(macro, args, tag, body, defaults):
    """Problems with one documented key, as a list of strings."""
    problems = []
    field = args[2]
    default = doc_default(tag)
    c_default = defaults.get(field)
    if macro == "DUR":
        lo, hi = c_number(args[3]), c_number(args[4])
        durations = {parse_duration(d) for d in re.findall(r'"(\d[0-9msdh]*)"', body)}
        for bound in (lo, hi):
            if bound and bound not in durations:
                problems.append("range: %g usec not in the text" % bound)
        want = c_default or 0
        m = re.match(r'"([^"]*)"', default or "")
        if not m or parse_duration(m.group(1)) != want:
            problems.append("default %r, but config.c has %g usec" % (default, want))
    elif macro in ("COUNT", "NUM"):
        lo, hi = (c_number(args[3]), c_number(args[4])) if macro == "COUNT" else \
                 (c_number(args[3]), c_number(args[5]))
        bounds = (lo, hi) if macro == "COUNT" else (hi,)
        for bound in bounds:
            if float(bound) not in numbers_in(body):
                problems.append("range: %g not in the text" % bound)
        if c_default is None or c_default < 0:
            if not (default or "").startswith("unset"):
                problems.append("default %r, but config.c leaves it unset" % default)
        elif not default or float(default.split()[0].rstrip(",")) != float(c_default):
            problems.append("default %r, but config.c has %g" % (default, c_default))
    elif macro == "BOOL":
        want = "true" if c_default else "false"
        if default != want:
            problems.append("default %r, but config.c has %s" % (default, want))
    elif macro == "STR":
        if c_default is None:
            if not (default or "").startswith("unset"):
                problems.append("default %r, but config.c leaves it unset" % default)
        elif default != '"%s"' % c_default:
            problems.append('default %r, but config.c has "%s"' % (default, c_default))
    return problems


def test_conf_page_defaults_and_ranges_match_config_c():
    documented = conf_page_keys()
    defaults = config_defaults()
    problems = []
    for macro, group, name, args in config_keys():
        if name not in documented.get(group, {}):
            continue  # reported by test_conf_page_documents_every_key_under_its_group
        tag, body = documented[group][name]
        problems += ["%s.%s: %s" % (group, name, p) for p in check_key(macro, args, tag, body, defaults)]
    assert not problems, "proxreap.conf(5) disagrees with src/config.c:\n" + "\n".join(problems)


SETTING = re.compile(r"^\s*[a-z_]+\s*=\s*\S", re.M)


def conf_page_examples():
    """Every configuration example of proxreap.conf(5), as a whole file:
    a complete one (it has an api group) as it stands, a fragment of
    settings wrapped in the group of the subsection it is under. Shell
    commands and unit drop-ins are not configuration."""
    out, group = [], None
    for m in re.finditer(r'^\.SS "?([a-z]+)|^\.SH ([^\n]*)$|^\.EX\n(.*?)^\.EE$', read(page_path("conf")),
                         re.S | re.M):
        if m.group(1) or m.group(2):
            group = m.group(1)
            continue
        text = roff_text(m.group(3))
        if not SETTING.search(text) or "[Service]" in text:
            continue
        if "api = {" in text:
            out.append(text)
        else:
            assert group, "a configuration fragment outside a group's subsection:\n" + text
            out.append('api = {\n    url = "https://127.0.0.1:8006";\n    token_id = "proxreap@pve!reaper";\n};\n'
                       "%s = {\n%s};\n" % (group, text))
    return out


def test_conf_page_examples_load(tmp_path):
    """Each example configuration, whole or a fragment, passes check-config
    (with the system trust store instead of /etc/pve's CA, and a test
    token)."""
    examples = conf_page_examples()
    assert sum("exclude_vmids" in e for e in examples) == 1
    assert len(examples) >= 3
    cred = tmp_path / "cred"
    cred.mkdir()
    (cred / "token").write_text(SECRET + "\n")
    os.chmod(cred / "token", 0o600)
    env = dict(os.environ, CREDENTIALS_DIRECTORY=str(cred))
    for i, text in enumerate(examples):
        conf = tmp_path / ("example%d.conf" % i)
        conf.write_text(text.replace("api = {", 'api = {\n    ca_file = "";', 1))
        r = subprocess.run([PROXREAP, "-c", str(conf), "check-config"], capture_output=True,
                           text=True, env=env, timeout=30)
        assert r.returncode == 0 and r.stdout == "configuration OK\n", "example %d:\n%s\n%s" % (
            i, text, r.stderr)


# ------------------------------------------------------------------ 3. --help vs the man pages

def help_text(binary):
    r = subprocess.run([binary, "--help"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r.stdout


def help_options(text):
    """{"--long", "-s"} of the option lines of a --help text."""
    out = set()
    for line in text.splitlines():
        m = re.match(r"\s+(-\w), (--[\w-]+)", line)
        if m:
            out.update(m.groups())
    return out


def help_commands(text):
    """Commands listed under "Commands:" ("journal list", "plan", ...)."""
    block = text.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    out = []
    for line in block.splitlines():
        words = re.findall(r"^  ([a-z][\w-]*)", line)
        if words and words[0] == "journal":
            out += ["journal " + sub for sub in re.findall(r"(?:journal |\| )([a-z]+)", line)]
        elif words:
            out.append(words[0])
    return out


def page_options(key, section):
    """Every option a section of a page shows in bold or italics (.B,
    .BR, ... lines: the tags of its lists and the options named in them)."""
    secs = sections(read(page_path(key)))
    assert section in secs, "%s has no %s section" % (PAGES[key], section)
    tags = [tag_text(line) for line in secs[section]]
    return set(re.findall(r"(?<![\w-])(--?[a-zA-Z][\w-]*)", " ".join(tags)))


def test_proxreapd_help_options_in_man_page():
    in_help = help_options(help_text(PROXREAPD))
    assert {"--config", "--foreground", "-c"} <= in_help
    in_page = page_options("proxreapd", "OPTIONS")
    assert not in_help - in_page, "proxreapd(8) OPTIONS lacks %s" % sorted(in_help - in_page)
    assert not in_page - in_help, "proxreapd(8) OPTIONS lists %s, not in --help" % sorted(in_page - in_help)


def test_proxreap_help_options_and_commands_in_man_page():
    text = help_text(PROXREAP)
    options = help_options(text)
    in_page = page_options("proxreap", "OPTIONS")
    assert not options - in_page, "proxreap(8) OPTIONS lacks %s" % sorted(options - in_page)
    assert not in_page - options, "proxreap(8) OPTIONS lists %s, not in --help" % sorted(in_page - options)

    # The commands' own options (--json, --vmid, ...) are in COMMANDS.
    command_options = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*)", text)) - (options - {"--help"})
    in_commands = page_options("proxreap", "COMMANDS")
    assert {"--json", "--vmid", "--yes"} <= command_options
    assert not command_options - in_commands, "proxreap(8) COMMANDS lacks %s" % sorted(
        command_options - in_commands)
    assert not in_commands - command_options, "proxreap(8) COMMANDS lists %s, not in --help" % sorted(
        in_commands - command_options)

    commands = help_commands(text)
    assert {"check-config", "plan", "status", "journal list", "journal show", "journal verify",
            "restore"} <= set(commands)
    tags = [tag for tag, _ in tagged_entries(sections(read(page_path("proxreap")))["COMMANDS"])[""]]
    for cmd in commands:
        assert any(t == cmd or t.startswith(cmd + " ") for t in tags), \
            "proxreap(8) COMMANDS has no entry for '%s' (entries: %s)" % (cmd, tags)
    synopsis = roff_text(" ".join(sections(read(page_path("proxreap")))["SYNOPSIS"]))
    for cmd in commands:
        assert cmd.split()[-1] in synopsis, "'%s' is not in the SYNOPSIS of proxreap(8)" % cmd


# ------------------------------------------------------------------ 4. bash completion

def complete(words, cwd=None):
    """Complete the last of `words` (the word under the cursor, maybe "")
    with completion/proxreap, as bash would for a TAB at the end of the
    line; returns COMPREPLY as a list. The binaries are found on $PATH."""
    line = " ".join(words)
    script = "\n".join([
        "if [[ -f %s ]]; then . %s; fi" % (BASH_COMPLETION, BASH_COMPLETION),
        ". %s" % shlex.quote(COMPLETION),
        "COMP_WORDS=(%s)" % " ".join(shlex.quote(w) for w in words),
        "COMP_CWORD=%d" % (len(words) - 1),
        "COMP_LINE=%s" % shlex.quote(line),
        "COMP_POINT=${#COMP_LINE}",
        "spec=$(complete -p %s) || exit 3" % shlex.quote(words[0]),
        "[[ $spec =~ -F\\ ([^ ]+) ]] || exit 4",
        'fn=${BASH_REMATCH[1]}',
        '"$fn" "${COMP_WORDS[0]}" "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"',
        'printf "%s\\n" "${COMPREPLY[@]}"',
    ])
    env = dict(os.environ, PATH=BUILD + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin"))
    env.pop("CREDENTIALS_DIRECTORY", None)
    r = subprocess.run(["bash", "--norc", "--noprofile", "-c", script], capture_output=True,
                       text=True, cwd=cwd, env=env, timeout=30, stdin=subprocess.DEVNULL)
    assert r.returncode == 0, "completion of %r failed (%d):\n%s" % (line, r.returncode, r.stderr)
    assert r.stderr == "", "completion of %r wrote to stderr:\n%s" % (line, r.stderr)
    return [w for w in r.stdout.split("\n") if w]


def test_completion_commands_and_subcommands():
    assert complete(["proxreap", "jo"]) == ["journal"]
    commands = {"check-config", "plan", "status", "journal", "restore", "archives", "abort", "help"}
    assert set(complete(["proxreap", ""])) == commands
    assert set(complete(["proxreap", "help", ""])) == commands
    assert set(complete(["proxreap", "-c", "x.conf", "re"])) == {"restore"}
    assert set(complete(["proxreap", "journal", ""])) == {"list", "show", "verify", "repair"}
    assert complete(["proxreap", "journal", "ve"]) == ["verify"]
    assert complete(["proxreap", "check-config", ""]) == []
    # -c after the command: still the command's words.
    assert complete(["proxreap", "journal", "-c", "x.conf", "ve"]) == ["verify"]


def test_completion_options_match_help():
    longs = {o for o in help_options(help_text(PROXREAPD)) if o.startswith("--")}
    assert set(complete(["proxreapd", "--"])) == longs
    assert {"--config", "--foreground"} <= set(complete(["proxreapd", "--"]))
    longs = {o for o in help_options(help_text(PROXREAP)) if o.startswith("--")}
    assert set(complete(["proxreap", "--"])) == longs
    # Each command's own options, as its --help lists them.
    for words in (["check-config"], ["plan"], ["status"], ["journal", "list"], ["journal", "show", "R-1"],
                  ["journal", "verify"], ["restore", "R-000001"], ["abort", "R-000001"]):
        r = subprocess.run([PROXREAP] + words[:2 if words[0] == "journal" else 1] + ["--help"],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0, r.stderr
        mine = set(re.findall(r"^\s+(--[a-z][\w-]*)", r.stdout, re.M)) | {"--config", "--help"}
        # journal --help covers list, show, verify and repair: each gets its own.
        if words[:2] == ["journal", "verify"]:
            mine -= {"--json", "--vmid", "--name"}
        if words[:2] == ["journal", "show"]:
            mine -= {"--vmid", "--name"}
        assert set(complete(["proxreap"] + words + ["--"])) == mine, words
    # An option given already is not offered again.
    assert "--yes" not in complete(["proxreap", "restore", "R-000001", "--yes", "--"])
    # The argument of --vmid is a number: nothing to offer.
    assert complete(["proxreap", "restore", "R-000001", "--vmid", ""]) == []


def test_completion_config_files(tmp_path):
    (tmp_path / "site.conf").write_text("")
    (tmp_path / "other").write_text("")
    cwd = str(tmp_path)
    assert complete(["proxreap", "-c", "si"], cwd) == ["site.conf"]
    assert complete(["proxreap", "--config", "si"], cwd) == ["site.conf"]
    assert complete(["proxreapd", "-c", "si"], cwd) == ["site.conf"]
    # bash splits "--config=si" at the "=" (COMP_WORDBREAKS).
    assert complete(["proxreapd", "--config", "=", "si"], cwd) == ["site.conf"]
    assert set(complete(["proxreap", "--config", "=", ""], cwd)) >= {"site.conf", "other"}


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def write_journal(path, records):
    """A journal in proxreap's record format (include/journal.h)."""
    with open(path, "w") as fh:
        for seq, rec in enumerate(records, 1):
            payload = json.dumps(rec, separators=(",", ":"))
            fh.write('{"seq":%d,"crc32c":"%08x","rec":%s}\n' % (seq, crc32c(payload.encode()), payload))


def selected(op, vmid, ts, kind="qemu"):
    return {"op": op, "ev": "selected", "ts": ts, "time": "2025-01-01T00:00:00Z", "vmid": vmid,
            "type": kind, "node": "pve1", "name": "guest%d" % vmid}


def test_completion_op_ids_from_the_journal(tmp_path):
    """Op ids come from `proxreap -c FILE journal list --json` for the -c
    of the line: every op for `journal show`, only the restorable ones
    (reaped) for `restore`."""
    journal = str(tmp_path / "journal")
    t = 1735689600
    write_journal(journal, [
        selected("R-000001", 104, t),
        {"op": "R-000001", "ev": "reaped", "ts": t + 60},
        selected("R-000002", 205, t + 100, "lxc"),
        {"op": "R-000002", "ev": "aborted", "ts": t + 160, "reason": "vetoed", "vetoed": True},
        selected("R-000003", 306, t + 200),
    ])
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    os.chmod(token, 0o600)
    conf = str(tmp_path / "proxreap.conf")
    with open(conf, "w") as fh:
        fh.write(render_config({
            "api": {"url": "http://127.0.0.1:9", "token_id": TOKEN_ID, "token_secret_file": str(token)},
            "reap": {"journal": journal},
            "status": {"file": str(tmp_path / "status.json")},
        }))
    # The journal is one the CLI reads as intended.
    r = subprocess.run([PROXREAP, "-c", conf, "journal", "list", "--json"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert {(o["id"], o["state"]) for o in json.loads(r.stdout)} == {
        ("R-000001", "reaped"), ("R-000002", "aborted"), ("R-000003", "selected")}

    every = {"R-000001", "R-000002", "R-000003"}
    assert set(complete(["proxreap", "-c", conf, "journal", "show", ""])) == every
    assert set(complete(["proxreap", "--config", conf, "journal", "show", "R-0000"])) == every
    assert set(complete(["proxreap", "--config", "=", conf, "journal", "show", ""])) == every
    assert complete(["proxreap", "-c" + conf, "journal", "show", "R-000002"]) == ["R-000002"]
    assert complete(["proxreap", "-c", conf, "restore", ""]) == ["R-000001"]
    assert complete(["proxreap", "-c", conf, "journal", "show", "R-000001", ""]) == []
    # No journal to read (here: no configuration): nothing, and quietly.
    assert complete(["proxreap", "-c", str(tmp_path / "missing.conf"), "journal", "show", ""]) == []
