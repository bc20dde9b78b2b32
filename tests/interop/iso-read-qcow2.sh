#!/bin/sh
# An ISO converted to qcow2 by qemu-img reads through the qcow2 driver:
# vimg info reports the same ISO facts under a top-level "iso9660" object,
# and vimg iso ls -f qcow2 lists the same files.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires qemu-img xorriso python3
make_tree "$T/src"
xorriso -as mkisofs -quiet -R -J -o "$T/a.iso" \
    -b boot/bios.bin -no-emul-boot -boot-load-size 4 "$T/src" 2>/dev/null
qemu-img convert -f raw -O qcow2 "$T/a.iso" "$T/a.qcow2"
"$VIMG" info -f qcow2 "$T/a.qcow2" >/dev/null 2>&1 ||
    { echo "SKIP: vimg cannot open qcow2 yet"; exit 77; }

"$VIMG" info --output=json "$T/a.iso" > "$T/raw.json"
"$VIMG" info --output=json -f qcow2 "$T/a.qcow2" > "$T/qcow2.json"
python3 - "$T/raw.json" "$T/qcow2.json" <<'PY' || fail "ISO facts differ"
import json, sys
raw = json.load(open(sys.argv[1]))
q = json.load(open(sys.argv[2]))
assert q["format"] == "qcow2", q["format"]
assert q["format-specific"]["type"] == "qcow2"
assert q["iso9660"] == raw["format-specific"]["data"], (q["iso9660"], raw)
PY
"$VIMG" info -f qcow2 "$T/a.qcow2" | grep -q '^ISO 9660 volume:$' ||
    fail "human info lacks the ISO section"
"$VIMG" iso ls -R -l "$T/a.iso" > "$T/l.raw"
"$VIMG" iso ls -R -l -f qcow2 "$T/a.qcow2" > "$T/l.qcow2"
diff "$T/l.raw" "$T/l.qcow2" || fail "listings differ"
