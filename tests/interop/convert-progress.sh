#!/bin/sh
# --progress=json prints valid JSON lines whose done never decreases and
# ends at done == total; -p on a non-terminal prints nothing extra.
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
"$VIMG" convert -p -f raw -O raw "$src" "$T/b.img" > "$T/out" 2> "$T/err"
[ ! -s "$T/out" ] && [ ! -s "$T/err" ] || fail "-p without a terminal printed output"
cmp "$T/a.img" "$T/b.img" || fail "copies differ"
# An empty image still reports completion.
"$VIMG" create -q -f raw "$T/empty.img" 0
"$VIMG" convert --progress=json -f raw -O raw "$T/empty.img" "$T/e.img" > "$T/e.json"
python3 -c 'import json,sys; o=json.loads(open(sys.argv[1]).read().splitlines()[-1]); assert o["done"] == o["total"] == 0, o' "$T/e.json" ||
    fail "empty image progress: $(cat "$T/e.json")"
expect_status 1 "$VIMG" convert --progress=bogus -f raw "$src" "$T/c.img"
