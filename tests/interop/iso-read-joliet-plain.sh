#!/bin/sh
# Without Rock Ridge, names come from Joliet (UCS-2, compared with
# isoinfo -J -f), and without either from ISO 9660 with ";1" and a
# trailing "." dropped (compared with isoinfo -f); sizes match isoinfo -l.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires genisoimage isoinfo iconv python3
make_tree "$T/src"
genisoimage -quiet -J -o "$T/j.iso" "$T/src" 2>/dev/null
genisoimage -quiet -o "$T/p.iso" "$T/src" 2>/dev/null

paths() {
    "$VIMG" iso ls -R --output=json "$1" |
        python3 -c 'import json,sys; [print(e["path"]) for e in json.load(sys.stdin)]' |
        sort
}
paths "$T/j.iso" > "$T/vj"
isoinfo -J -f -i "$T/j.iso" | iconv -f iso8859-1 -t utf-8 | sort > "$T/ij"
diff "$T/vj" "$T/ij" || fail "Joliet names differ from isoinfo -J -f"
grep -qx '/café.txt' "$T/vj" || fail "non-ASCII Joliet name"
"$VIMG" info --output=json "$T/j.iso" | grep -q '"joliet": 3' || fail "joliet level"

paths "$T/p.iso" > "$T/vp"
isoinfo -f -i "$T/p.iso" | sed -e 's/;1$//' -e 's/\.$//' | sort > "$T/ip"
diff "$T/vp" "$T/ip" || fail "ISO 9660 names differ from isoinfo -f"

# Sizes: isoinfo -l prints "size [extent ...] NAME;1" per file.
"$VIMG" iso ls -R --output=json "$T/p.iso" | python3 -c '
import json,sys
for e in json.load(sys.stdin):
    if e["type"] == "file": print(e["name"], e["size"])' | sort > "$T/vs"
isoinfo -l -i "$T/p.iso" | python3 -c '
import re,sys
for l in sys.stdin:
    m = re.match(r"^-\S+\s+\d+\s+\d+\s+\d+\s+(\d+) .*\]\s+(\S+);1 *$", l)
    if m: print(m.group(2).rstrip("."), m.group(1))' | sort > "$T/is"
diff "$T/vs" "$T/is" || fail "sizes differ from isoinfo -l"
[ "$(wc -l < "$T/vs")" -ge 9 ] || fail "too few files compared"
