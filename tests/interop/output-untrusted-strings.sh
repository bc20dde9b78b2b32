#!/bin/sh
# Names from image metadata with invalid UTF-8 (FF FE, a surrogate, a
# cut-short sequence) and control characters (ESC, DEL, C1, newline):
# info --output=json writes a qcow2 backing name byte for byte as
# qemu-img 7.2 does (valid JSON, U+FFFD for invalid bytes), iso ls
# --output=json of such a Rock Ridge name is valid JSON, and human output
# and error messages show the control characters and stray bytes as \xNN:
# nothing raw reaches a terminal.
. "$(dirname "$0")/functions.sh"
requires qemu-img xorriso python3

# no_raw_controls FILE WHAT: FILE is UTF-8 with no control character but
# newlines, and shows the escape sequence as text.
no_raw_controls() {
    python3 -c '
import sys, unicodedata
data = open(sys.argv[1], "rb").read()
try:
    text = data.decode("utf-8")
except UnicodeDecodeError as e:
    sys.exit("%s: not UTF-8: %s" % (sys.argv[2], e))
bad = [c for c in text if c != "\n" and unicodedata.category(c) == "Cc"]
if bad:
    sys.exit("%s: raw control characters %r" % (sys.argv[2], bad))
if "\\x1b" not in text:
    sys.exit("%s: ESC not shown as \\x1b: %r" % (sys.argv[2], text))
' "$1" "$2" || fail "$2"
}

# A qcow2 whose backing name holds the bytes (patched over a placeholder
# of the same length, as a hostile image would carry them).
qemu-img create -q -f qcow2 -u -F raw -b "$(printf 'X%.0s' $(seq 1 48))" \
    "$T/t.qcow2" 1M
python3 - "$T/t.qcow2" <<'EOF'
import sys
p = sys.argv[1]
d = bytearray(open(p, 'rb').read())
name = (b'a\xff\xfeb\x01c\x1b[31m\x7f\xc3\xa9\xc2\x9b\xed\xa0\x80\xc0\x80'
        b'\xef\xbf\xbf\xf0\x9f\x98\x80"\\\x08\x0c\n\r\t\xe2\x82Z').ljust(48, b'Z')
i = d.find(b'X' * 48)
assert i > 0
d[i:i + 48] = name
open(p, 'wb').write(d)
EOF

"$VIMG" info --output=json "$T/t.qcow2" > "$T/v.json"
python3 -c 'import json, sys; json.load(open(sys.argv[1]))' "$T/v.json" ||
    fail "vimg info JSON does not parse"
qemu-img info --output=json "$T/t.qcow2" > "$T/q.json"
grep '"backing-filename":' "$T/v.json" > "$T/v.line"
grep '"backing-filename":' "$T/q.json" > "$T/q.line"
cmp "$T/v.line" "$T/q.line" ||
    fail "backing name escaped unlike qemu-img: $(cat "$T/v.line") vs $(cat "$T/q.line")"
python3 -c '
import json, sys
v, q = (json.load(open(f)) for f in sys.argv[1:3])
assert v["backing-filename"] == q["backing-filename"], "decoded names differ"
' "$T/v.json" "$T/q.json" || fail "decoded backing names differ"

"$VIMG" info "$T/t.qcow2" > "$T/human"
no_raw_controls "$T/human" "info (human)"
grep -qF 'backing file: a\xff\xfeb\x01c\x1b[31m\x7f' "$T/human" ||
    fail "backing name shown as '$(grep backing "$T/human")'"
# The backing file cannot be opened: the error names it, escaped.
expect_status 1 "$VIMG" info --backing-chain "$T/t.qcow2"
[ "$(wc -l < "$T/err")" = 1 ] || fail "error is not one line: $(cat -A "$T/err")"
no_raw_controls "$T/err" "error message"

# A Rock Ridge name with the same kind of bytes (NM patched in place).
mkdir "$T/src"
echo x > "$T/src/zzzzzzzz"
xorriso -as mkisofs -quiet -R -o "$T/ok.iso" "$T/src" 2>/dev/null
python3 "$(dirname "$0")/iso-damage.py" "$T/ok.iso" "$T/t.iso" rename \
    zzzzzzzz "$(printf 'n\377\376\033[2Jx')"
"$VIMG" iso ls --output=json "$T/t.iso" > "$T/ls.json"
python3 -c '
import json, sys
names = [e["name"] for e in json.load(open(sys.argv[1]))]
assert names == ["n\ufffd\ufffd\x1b[2Jx"], names
' "$T/ls.json" || fail "iso ls JSON: $(cat "$T/ls.json")"
"$VIMG" iso ls -l "$T/t.iso" > "$T/ls"
no_raw_controls "$T/ls" "iso ls -l"
grep -qF 'n\xff\xfe\x1b[2Jx' "$T/ls" || fail "iso ls shows $(cat "$T/ls")"
