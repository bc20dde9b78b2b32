#!/bin/sh
# Differencing VHD read as a backing chain: children laid out by
# vhd-diff-make.py (no peer tool writes them; qemu-img 7.2 reads them
# without their parent) over a dynamic parent made by qemu-img and
# written by qemu-io, and over a fixed parent made by vimg. vimg's guest
# bytes must be the script's expected bytes and what libyal's libvhdi
# reads with the parent set; info names the parent.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io
MAKE="$(dirname "$0")/vhd-diff-make.py"
sha() { sha256sum < "$1" | cut -d' ' -f1; }

# libvhdi_sha CHILD PARENT: the guest bytes libvhdi reads for CHILD over
# PARENT, as "SIZE SHA".
libvhdi_sha() {
    "$SYSPY" - "$@" <<'PYEOF'
import hashlib, sys
import pyvhdi
c, p = pyvhdi.file(), pyvhdi.file()
c.open(sys.argv[1])
p.open(sys.argv[2])
c.set_parent(p)
n = c.get_media_size()
print(n, hashlib.sha256(c.read_buffer_at_offset(n, 0)).hexdigest())
PYEOF
}

qemu-img create -q -f vpc "$T/parent.vhd" 16M
qemu-io -f vpc -c 'write -P 0x11 0 16M' -c 'write -P 0x22 3M 1M' \
    -c 'write -P 0x33 12M 100k' "$T/parent.vhd" >/dev/null
"$VIMG" convert -f vpc -O raw "$T/parent.vhd" "$T/parent.raw"

# Bitmap runs that split bytes: checked against the expected bytes.
"$SYSPY" "$MAKE" vpc "$T/parent.vhd" "$T/parent.raw" "$T/child.vhd" \
    "$T/child.exp"
[ "$(vimg_sha "$T/child.vhd" vpc)" = "$(sha "$T/child.exp")" ] ||
    fail "child: vimg's guest bytes are not the expected ones"

# Whole-byte runs, with the absolute (W2ku, MacX) locators too: libvhdi
# agrees (it misreads bytes that mix set and clear bits).
"$SYSPY" "$MAKE" vpc "$T/parent.vhd" "$T/parent.raw" "$T/coarse.vhd" \
    "$T/coarse.exp" --coarse --abs "$T/parent.vhd"
[ "$(vimg_sha "$T/coarse.vhd" vpc)" = "$(sha "$T/coarse.exp")" ] ||
    fail "coarse child: vimg's guest bytes are not the expected ones"
if has_pyvhdi; then
    [ "$(libvhdi_sha "$T/coarse.vhd" "$T/parent.vhd")" = \
      "$(stat -c %s "$T/coarse.exp") $(sha "$T/coarse.exp")" ] ||
        fail "coarse child: libvhdi reads other guest bytes"
fi

"$VIMG" info "$T/child.vhd" > "$T/info"
grep -qx 'backing file: parent.vhd (actual path: '"$T"'/parent.vhd)' \
    "$T/info" || fail "info: $(cat "$T/info")"
grep -qx 'backing file format: vpc' "$T/info" || fail "info: no format"

# Only the absolute locators: the W2ku path is followed.
"$SYSPY" "$MAKE" vpc "$T/parent.vhd" "$T/parent.raw" "$T/abs.vhd" \
    "$T/abs.exp" --no-rel --abs "$T/parent.vhd"
[ "$(vimg_sha "$T/abs.vhd" vpc)" = "$(sha "$T/abs.exp")" ] ||
    fail "absolute locator: vimg's guest bytes are not the expected ones"
"$VIMG" info "$T/abs.vhd" | grep -qx "backing file: $T/parent.vhd" ||
    fail "absolute locator: info does not name $T/parent.vhd"

# A fixed parent made by vimg, the child in another folder.
head -c $((6 << 20)) "$T/parent.raw" > "$T/base.raw"
"$VIMG" convert -f raw -O vpc -o subformat=fixed,force_size=on \
    "$T/base.raw" "$T/base.vhd"
mkdir "$T/sub"
"$SYSPY" "$MAKE" vpc "$T/base.vhd" "$T/base.raw" "$T/sub/top.vhd" \
    "$T/top.exp" --rel '..\base.vhd' --coarse
[ "$(vimg_sha "$T/sub/top.vhd" vpc)" = "$(sha "$T/top.exp")" ] ||
    fail "fixed parent: vimg's guest bytes are not the expected ones"
if has_pyvhdi; then
    [ "$(libvhdi_sha "$T/sub/top.vhd" "$T/base.vhd")" = \
      "$(stat -c %s "$T/top.exp") $(sha "$T/top.exp")" ] ||
        fail "fixed parent: libvhdi reads other guest bytes"
fi

# Flattened by convert into a VHD qemu-img reads alike.
"$VIMG" convert -f vpc -O vpc -o force_size=on "$T/child.vhd" "$T/flat.vhd"
[ "$(qemu_sha "$T/flat.vhd" vpc)" = "$(sha "$T/child.exp")" ] ||
    fail "flattened copy: qemu-img reads other guest bytes"
echo "ok"
