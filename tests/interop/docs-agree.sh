#!/bin/sh
# One source of truth for the documentation: every option that
# `vimg COMMAND --help` names is in the man page's section for COMMAND and
# the other way round, global options are in `vimg --help` and the man
# page, and every option the README's examples use is in the command's
# --help.
. "$(dirname "$0")/functions.sh"
requires python3
: "${SRCDIR:=$(dirname "$0")/../..}"
python3 - "$VIMG" "$SRCDIR/docs/vimg.1" "$SRCDIR/README.md" <<'PY'
import re, subprocess, sys
vimg, man_path, readme_path = sys.argv[1:4]
# An option: -x (one letter, then not a letter or digit) or --long-name.
OPT = re.compile(r'(?<![\w-])(--[a-z][a-z0-9-]*|-[A-Za-z](?![\w]))')
GLOBAL = {"--untrusted", "--refs", "--output", "--object", "--image-opts",
          "--help", "--version"}
# Other programs' options that the help or the man page mention in
# passing (fusermount3 -u, losetup -P).
MENTIONS = {"mount": {"-P"}, "fuse": {"-u"}}
# Commands described in another command's section.
SECTION = {"umount": "mount"}

def help_of(*args):
    p = subprocess.run([vimg, *args, "--help"], capture_output=True,
                       text=True)
    assert p.returncode == 0, (args, p.stderr)
    return p.stdout

def opts(text):
    return set(OPT.findall(text))

top = help_of()
commands = re.findall(r"^  (\w+) ", top.split("Commands:")[1].split("\n\n")[0],
                      re.M)
subcommands = {"iso": ["ls", "extract", "cat", "create", "cidata"]}

page = open(man_path).read()
sections = dict(re.findall(r'^\.SS "?([^"\n]+)"?\n(.*?)(?=^\.S[SH] )', page,
                           re.M | re.S))
def man_opts(text):
    # Bold text only: option names are set in bold, prose in roman. Bold
    # text that starts with a word other than vimg ("check \-r all",
    # "losetup \-P") quotes another program's invocation.
    bold = []
    for line in text.splitlines():
        m = re.match(r"\.(?:B|BI|BR|RB|TP)\b\s*(.*)", line)
        spans = [m.group(1)] if m else []
        spans += re.findall(r"\\fB(.*?)\\f[RP]", line)
        bold += [t for t in spans
                 if not re.match(r'"?(?!vimg\s)[a-z][a-z0-9-]*\s', t + " ")]
    return opts("\n".join(bold).replace("\\-", "-"))

bad = []
for c in commands:
    text = help_of(c) + "".join(help_of(c, s) for s in
                                subcommands.get(c, []))
    sec = SECTION.get(c, c)
    h = opts(text) - GLOBAL - MENTIONS.get(c, set())
    m = man_opts(sections.get(sec, "")) - GLOBAL - MENTIONS.get(c, set())
    if sec in SECTION.values():
        m &= h  # a shared section also documents the other command
    if sec not in sections:
        bad.append(f"{c}: no section in the man page")
    if h - m:
        bad.append(f"{c}: in --help, not in the man page: {sorted(h - m)}")
    if m - h:
        bad.append(f"{c}: in the man page, not in --help: {sorted(m - h)}")

glob = sections.get("GLOBAL OPTIONS", "")
m = re.search(r"^\.SH GLOBAL OPTIONS\n(.*?)(?=^\.SH )", page, re.M | re.S)
for g in ("--untrusted", "--refs", "--output"):
    if g not in top:
        bad.append(f"global option {g} missing from vimg --help")
    if not m or g not in m.group(1).replace("\\-", "-"):
        bad.append(f"global option {g} missing from the man page")

for n, line in enumerate(open(readme_path), 1):
    mm = re.match(r"\$ (?:\S+=\S+ )*vimg ((?:--\S+ )*)(\w+)(?: (\w+))?(.*)",
                  line)
    if not mm:
        continue
    c, sub, rest = mm.group(2), mm.group(3), mm.group(4)
    if c not in commands:
        bad.append(f"README.md:{n}: unknown command {c}")
        continue
    args = [c] + ([sub] if sub in subcommands.get(c, []) else [])
    known = opts(help_of(*args)) | GLOBAL
    for o in opts(re.split(r"[|&;]", rest)[0]):
        if o not in known:
            bad.append(f"README.md:{n}: {' '.join(args)} has no {o}")
if bad:
    print("\n".join(bad))
    sys.exit(1)
PY
