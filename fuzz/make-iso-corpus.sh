#!/bin/sh
# Regenerate fuzz/corpus/iso/: tiny ISOs from xorriso and genisoimage
# (plain, Rock Ridge, Joliet, El Torito BIOS and EFI) and hostile variants
# made by tests/interop/iso-damage.py. Each corpus file is an image without
# its first 16 sectors (fuzz-iso.c puts the zeroed system area back) and
# without trailing zero sectors, to keep the corpus small.
set -eu
top=$(cd "$(dirname "$0")/.." && pwd)
out=$top/fuzz/corpus/iso
damage="python3 $top/tests/interop/iso-damage.py"
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$t/s/d/e" "$out"
echo hi > "$t/s/f.txt"
echo zz > "$t/s/zz"
ln -s f.txt "$t/s/l"
ln -s ../../etc/passwd "$t/s/evil"
echo x > "$t/s/d/e/g"
dd if=/dev/zero of="$t/s/boot.img" bs=2048 count=1 2>/dev/null
long=$(printf 'n%.0s' $(seq 1 200))
echo long > "$t/s/d/$long"

xorriso -as mkisofs -quiet -no-pad -R -J -o "$t/rj-xorriso" "$t/s" 2>/dev/null
xorriso -as mkisofs -quiet -no-pad -R -o "$t/base" "$t/s" 2>/dev/null
genisoimage -quiet -no-pad -J -o "$t/joliet-geniso" "$t/s" 2>/dev/null
genisoimage -quiet -no-pad -R -b boot.img -no-emul-boot -boot-load-size 4 \
    -boot-info-table -o "$t/rr-eltorito-bios" "$t/s" 2>/dev/null
$damage "$t/base" "$t/bad-dotdot-name" rename zz ..
$damage "$t/base" "$t/bad-ce-loop" ce-loop
$damage "$t/base" "$t/bad-dir-loop" dir-loop e
$damage "$t/base" "$t/bad-truncated" truncate 40960
$damage "$t/base" "$t/unterminated" no-terminator
$damage "$t/unterminated" "$t/bad-no-terminator" truncate 40960
rm "$t/unterminated"
rm "$t/base"

rm -f "$out"/*
for f in "$t"/*; do
    [ -f "$f" ] || continue
    python3 - "$f" "$out/$(basename "$f")" <<'PY'
import sys
d = open(sys.argv[1], 'rb').read()[16 * 2048:]
end = len(d)
while end >= 2048 and not any(d[end - 2048:end]):
    end -= 2048
open(sys.argv[2], 'wb').write(d[:end])
PY
done
ls -l "$out"
