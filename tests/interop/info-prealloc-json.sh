#!/bin/sh
# info --output=json of fully preallocated and odd-sized images: every
# field qemu-img reports is there with the same value, and no extra ones;
# the human output matches qemu-img's line for line.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
"$VIMG" create -q -f raw -o preallocation=full "$T/full.img" 3M
qemu-img create -q -f raw "$T/odd.img" 1536
for img in "$T/full.img" "$T/odd.img"; do
    (cd "$T" && "$VIMG" info --output=json "$(basename "$img")") > "$T/v.json"
    (cd "$T" && qemu-img info --output=json "$(basename "$img")") > "$T/q.json"
    python3 - "$T/v.json" "$T/q.json" <<'PY' || fail "info json differs for $img"
import json, sys
v, q = (json.load(open(f)) for f in sys.argv[1:])
if v != q:
    print("vimg:", v, "\nqemu-img:", q, file=sys.stderr)
    sys.exit(1)
PY
done
"$VIMG" info "$T/full.img" > "$T/h"
grep -q '^disk size: 3 MiB$' "$T/h" || fail "human disk size: $(cat "$T/h")"
# The human output is qemu-img's, line for line.
"$VIMG" create -q -f raw "$T/big.img" 1.5T
for img in full odd big; do
    (cd "$T" && "$VIMG" info "$img.img") > "$T/vh"
    (cd "$T" && qemu-img info "$img.img") > "$T/qh"
    cmp -s "$T/vh" "$T/qh" || { diff "$T/vh" "$T/qh" >&2; fail "human info of $img"; }
done
