#!/bin/sh
# Differencing VHDX read as a backing chain: children laid out by
# vhd-diff-make.py (no peer tool writes them) over a parent made by
# qemu-img and written by qemu-io, and over a parent made by vimg. vimg's
# guest bytes must be the script's expected bytes and what libyal's
# libvhdi reads with the parent set; info names the parent; map shows
# this file's sectors and the parent's.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io
MAKE="$(dirname "$0")/vhd-diff-make.py"
sha() { sha256sum < "$1" | cut -d' ' -f1; }

# libvhdi_sha CHILD PARENT...: the guest bytes libvhdi reads for CHILD
# with its chain of parents set, as "SIZE SHA".
libvhdi_sha() {
    "$SYSPY" - "$@" <<'PYEOF'
import hashlib, sys
import pyvhdi
files = []
for p in sys.argv[1:]:
    f = pyvhdi.file()
    f.open(p)
    files.append(f)
for child, parent in zip(files, files[1:]):
    child.set_parent(parent)
f = files[0]
n = f.get_media_size()
print(n, hashlib.sha256(f.read_buffer_at_offset(n, 0)).hexdigest())
PYEOF
}

# A parent with data in every block (1 MiB blocks, as the child's).
qemu-img create -q -f vhdx -o block_size=1M "$T/parent.vhdx" 9M
qemu-io -f vhdx -c 'write -P 0x11 0 9M' -c 'write -P 0x22 1536k 1M' \
    -c 'write -P 0x33 6M 100k' "$T/parent.vhdx" >/dev/null
qemu-img convert -f vhdx -O raw "$T/parent.vhdx" "$T/parent.raw"

"$SYSPY" "$MAKE" vhdx "$T/parent.vhdx" "$T/parent.raw" "$T/child.vhdx" \
    "$T/child.exp"
[ "$(vimg_sha "$T/child.vhdx" vhdx)" = "$(sha "$T/child.exp")" ] ||
    fail "child: vimg's guest bytes are not the expected ones"
if has_pyvhdi; then
    [ "$(libvhdi_sha "$T/child.vhdx" "$T/parent.vhdx")" = \
      "$(stat -c %s "$T/child.exp") $(sha "$T/child.exp")" ] ||
        fail "child: libvhdi reads other guest bytes"
fi

# info names the parent, as the locator's relative path stores it.
"$VIMG" info "$T/child.vhdx" > "$T/info"
grep -qx 'backing file: parent.vhdx (actual path: '"$T"'/parent.vhdx)' \
    "$T/info" || fail "info: $(cat "$T/info")"
grep -qx 'backing file format: vhdx' "$T/info" || fail "info: no format"
"$VIMG" info --output=json "$T/child.vhdx" > "$T/info.json"
[ "$(json_get "$T/info.json" backing-filename)" = parent.vhdx ] ||
    fail "info json: $(cat "$T/info.json")"

# map: block 0 is this file's, block 2 the parent's (depth 1), and the
# partially present block 1 alternates.
"$VIMG" map --output=json "$T/child.vhdx" > "$T/map.json"
"$SYSPY" - "$T/map.json" <<'PYEOF'
import json, sys
m = json.load(open(sys.argv[1]))
def at(off):
    return next(e for e in m if e['start'] <= off < e['start'] + e['length'])
assert at(0)['depth'] == 0 and at(0)['data'], at(0)
assert at(2 << 20)['depth'] == 1, at(2 << 20)
depths = {e['depth'] for e in m if (1 << 20) <= e['start'] < (2 << 20)}
assert depths == {0, 1}, depths
PYEOF

# A zero block reads as zeros, not the parent's (libvhdi 20210425 reads
# the parent there, so only the expected bytes are compared).
"$SYSPY" "$MAKE" vhdx "$T/parent.vhdx" "$T/parent.raw" "$T/zero.vhdx" \
    "$T/zero.exp" --zero-block
[ "$(vimg_sha "$T/zero.vhdx" vhdx)" = "$(sha "$T/zero.exp")" ] ||
    fail "zero block: vimg's guest bytes are not the expected ones"

# A chain: a child of the child, larger than its parent (the tail reads
# as zeros), over a parent made by vimg.
head -c $((5 << 20)) "$T/parent.raw" > "$T/base.raw"
"$VIMG" convert -f raw -O vhdx -o block_size=1M "$T/base.raw" "$T/base.vhdx"
mkdir "$T/sub"
"$SYSPY" "$MAKE" vhdx "$T/base.vhdx" "$T/base.raw" "$T/sub/mid.vhdx" \
    "$T/mid.exp" --rel '..\base.vhdx'
"$SYSPY" "$MAKE" vhdx "$T/sub/mid.vhdx" "$T/mid.exp" "$T/sub/top.vhdx" \
    "$T/top.exp" --size $((7 << 20))
[ "$(vimg_sha "$T/sub/top.vhdx" vhdx)" = "$(sha "$T/top.exp")" ] ||
    fail "chain: vimg's guest bytes are not the expected ones"
if has_pyvhdi; then
    [ "$(libvhdi_sha "$T/sub/mid.vhdx" "$T/base.vhdx")" = \
      "$(stat -c %s "$T/mid.exp") $(sha "$T/mid.exp")" ] ||
        fail "chain: libvhdi reads other guest bytes"
fi
"$VIMG" info --backing-chain "$T/sub/top.vhdx" > "$T/chain"
[ "$(grep -c '^backing file format: vhdx' "$T/chain")" = 2 ] ||
    fail "info --backing-chain: $(cat "$T/chain")"

# Convert flattens the chain into a plain image qemu-img reads alike.
"$VIMG" convert -f vhdx -O vhdx "$T/sub/top.vhdx" "$T/flat.vhdx"
[ "$(qemu_sha "$T/flat.vhdx" vhdx)" = "$(sha "$T/top.exp")" ] ||
    fail "flattened copy: qemu-img reads other guest bytes"
echo "ok"
