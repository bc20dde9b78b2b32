#!/bin/sh
# convert -l (and the old -s) and measure -l read an internal snapshot as qemu-img
# does, for every way of naming it; errors exit alike. A snapshot taken
# before a resize converts at its own size (qemu-img keeps the current
# size there: a deliberate difference) with the contents qemu-img's
# snapshot -a gives.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

img=$T/a.qcow2
qemu-img create -q -f qcow2 "$img" 8M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 5M 300k' "$img" >/dev/null
qemu-img snapshot -c s1 "$img"
qemu-io -c 'write -P 3 512k 2M' -c 'write -z 5M 64k' "$img" >/dev/null
"$VIMG" snapshot -c s2 "$img"
qemu-io -c 'write -P 4 0 8M' "$img" >/dev/null

for spec in s1 1 s2 2 snapshot.name=s1 snapshot.id=2 \
            snapshot.id=1,snapshot.name=s1; do
    qemu-img convert -l "$spec" -O raw "$img" "$T/q.raw"
    "$VIMG" convert -l "$spec" -O raw "$img" "$T/v.raw"
    cmp "$T/q.raw" "$T/v.raw" || fail "convert -l $spec differs"
    for fmt in raw qcow2; do
        qemu-img measure -O $fmt -l "$spec" "$img" > "$T/q.m"
        "$VIMG" measure -O $fmt -l "$spec" "$img" > "$T/v.m"
        diff "$T/q.m" "$T/v.m" >&2 || fail "measure -O $fmt -l $spec differs"
    done
done
# -s NAME, which qemu-img 7.2 no longer takes, is -l NAME.
qemu-img convert -l s2 -O qcow2 "$img" "$T/q.qcow2"
"$VIMG" convert -s s2 -O qcow2 "$img" "$T/v.qcow2"
qemu-img compare -q "$T/q.qcow2" "$T/v.qcow2" || fail "convert -s differs"
qemu_clean "$T/v.qcow2"

rm -f "$T/q.raw" "$T/v.raw"
for spec in nope snapshot.id=1,snapshot.name=s2 snapshot.id=9; do
    expect_status 1 qemu-img convert -l "$spec" -O raw "$img" "$T/q.raw"
    expect_status 1 "$VIMG" convert -l "$spec" -O raw "$img" "$T/v.raw"
    [ ! -e "$T/v.raw" ] || fail "convert -l $spec left a file"
done
expect_status 1 "$VIMG" convert -l snapshot.size=1 -O raw "$img" "$T/v.raw"
grep -q "Invalid parameter 'snapshot.size'" "$T/err" ||
    fail "no message for a bad snapshot option"
expect_status 1 "$VIMG" measure -O qcow2 -l s1 --size 1M
rm -f "$T/q.raw" "$T/v.raw"

# A snapshot of a smaller disk.
"$VIMG" resize "$img" 12M >/dev/null
"$VIMG" convert -l s1 -O raw "$img" "$T/v.raw"
[ "$(stat -c %s "$T/v.raw")" = 8388608 ] || fail "snapshot size not kept"
cp "$img" "$T/applied.qcow2"
qemu-img snapshot -a s1 "$T/applied.qcow2"
qemu-img convert -O raw "$T/applied.qcow2" "$T/q.raw"
cmp "$T/q.raw" "$T/v.raw" || fail "convert -l s1 differs from snapshot -a"
echo "PASS"
