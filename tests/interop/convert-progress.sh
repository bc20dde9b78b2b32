#!/bin/sh
# --progress=json prints valid JSON lines whose done never decreases and
# ends at done == total; -p on a non-terminal prints qemu-img's lines.
. "$(dirname "$0")/functions.sh"
requires python3
src=$T/src.img
"$VIMG" create -q -f raw "$src" 64M
dd if=/dev/urandom of="$src" bs=1M seek=3 count=8 conv=notrunc 2>/dev/null
"$VIMG" convert --progress=json -f raw -O raw "$src" "$T/a.img" > "$T/p.json"
python3 - "$T/p.json" <<'PY' || fail "progress json"
import json, sys
lines = open(sys.argv[1]).read().splitlines()
assert lines, "no progress lines"
last = -1
for l in lines:
    o = json.loads(l)
    assert o["total"] == 64 << 20, o
    assert last <= o["done"] <= o["total"], o
    last = o["done"]
assert last == o["total"] and o["percent"] == 100.0, lines[-1]
PY
# -p where stdout is not a terminal: qemu-img's lines for scripts, from
# 0.00 to 100.00, then a newline; nothing on stderr. -q silences them.
"$VIMG" convert -p -f raw -O raw "$src" "$T/b.img" > "$T/out" 2> "$T/err"
[ ! -s "$T/err" ] || fail "-p without a terminal wrote to stderr"
cmp "$T/a.img" "$T/b.img" || fail "copies differ"
qemu_lines() {
    python3 -c '
import re, sys
s = open(sys.argv[1], "rb").read().decode()
m = re.fullmatch(r"((    \((\d{1,3}\.\d\d)/100%\)\r)+)\n", s)
assert m, repr(s)
v = [float(x) for x in re.findall(r"\((\d+\.\d\d)/", s)]
assert v[0] == 0 and v[-1] == 100 and v == sorted(v), v
' "$1"
}
qemu_lines "$T/out" || fail "-p lines: $(od -c "$T/out" | head)"
if command -v qemu-img >/dev/null; then
    qemu-img convert -p -f raw -O raw "$src" "$T/q.img" > "$T/qout"
    qemu_lines "$T/qout" || fail "qemu-img's -p lines are not as expected"
fi
"$VIMG" convert -q -p -f raw -O raw "$src" "$T/d.img" > "$T/out"
[ ! -s "$T/out" ] || fail "-q -p printed progress"
"$VIMG" compare -p -f raw -F raw "$src" "$T/b.img" > "$T/out"
python3 -c '
import re, sys
s = open(sys.argv[1], "rb").read().decode()
assert re.fullmatch(r"(    \(\d+\.\d\d/100%\)\r)+Images are identical\.\n\n", s), repr(s)
' "$T/out" || fail "compare -p: $(od -c "$T/out" | head)"
# An empty image still reports completion.
"$VIMG" create -q -f raw "$T/empty.img" 0
"$VIMG" convert --progress=json -f raw -O raw "$T/empty.img" "$T/e.img" > "$T/e.json"
python3 -c 'import json,sys; o=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert o["done"] == o["total"] == 0, o' "$T/e.json" ||
    fail "empty image progress: $(cat "$T/e.json")"
expect_status 1 "$VIMG" convert --progress=bogus -f raw "$src" "$T/c.img"
