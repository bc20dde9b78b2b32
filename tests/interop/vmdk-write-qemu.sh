#!/bin/sh
# Images vimg makes (create, convert) in every VMDK subformat, read by
# qemu-img and qemu-io: qemu-img compare and check pass and the patterns
# read back; vimg also writes into qemu-img's own images (convert -n) and
# into its own images again; the disk size and map agree with qemu-img.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vmdk.inc"
requires qemu-img qemu-io

cd "$T"
# 2 GiB + 1.5 MiB + 512 bytes: two extents for split subformats, a partial
# last grain. Data near both ends and across the 2 GiB split.
"$PY" - src.raw <<'PY'
import sys
with open(sys.argv[1], "wb") as f:
    f.truncate((2 << 30) + (3 << 19) + 512)
    f.seek(4096); f.write(b"vimg " * 40000)
    f.seek((2 << 30) - 100000); f.write(bytes(range(256)) * 1000)
    f.seek((2 << 30) + (3 << 19) - 300); f.write(b"tail" * 203)
PY
for sub in monolithicSparse monolithicFlat twoGbMaxExtentSparse \
           twoGbMaxExtentFlat streamOptimized; do
    rm -f d*.vmdk q*.vmdk
    expect_status 0 "$VIMG" convert -f raw -O vmdk -o subformat=$sub \
        src.raw d.vmdk
    qemu-img compare -q -f raw -F vmdk src.raw d.vmdk ||
        fail "$sub: qemu-img compare of vimg's convert"
    qemu-img check -q d.vmdk || fail "$sub: qemu-img check"
    same_map vmdk d.vmdk
    "$VIMG" info --output=json d.vmdk > v.json
    [ "$(jget v.json virtual-size)" = $(((2 << 30) + (3 << 19) + 512)) ] ||
        fail "$sub: virtual size"
    qemu-img info d.vmdk > q.txt
    "$VIMG" info d.vmdk > v.txt
    diff q.txt v.txt >&2 || fail "$sub: info of vimg's image differs"
    # Extent files carry the target's name, not convert's temporary one.
    case $sub in
    twoGbMaxExtentSparse) names="d-s001.vmdk d-s002.vmdk" ;;
    twoGbMaxExtentFlat) names="d-f001.vmdk d-f002.vmdk" ;;
    monolithicFlat) names="d-flat.vmdk" ;;
    *) names="" ;;
    esac
    for n in $names; do
        [ -f "$n" ] && grep -aq "\"$n\"" d.vmdk || fail "$sub: extent $n"
    done
    grep -aq 'vimg-' d.vmdk && fail "$sub: a temporary name in the image"
    ls -a | grep -q '^\.d\.vmdk' && fail "$sub: temporaries left"

    # vimg create, then writes by qemu-io (not streams: those only take
    # whole new grains) and by vimg.
    expect_status 0 "$VIMG" create -q -f vmdk -o subformat=$sub e.vmdk 3M
    qemu-img check -q e.vmdk || fail "$sub: check of an empty image"
    if [ $sub != streamOptimized ]; then
        qemu-io -f vmdk -c 'write -P 0x61 512 70k' e.vmdk > /dev/null
        qemu-io -f vmdk -c 'read -P 0x61 512 70k' -c 'read -P 0 71k 1M' \
            e.vmdk | grep -q 'read 1048576' || fail "$sub: qemu-io read"
    fi
    head -c 3M /dev/urandom > r.raw
    dd if=/dev/zero of=r.raw bs=64k seek=10 count=5 conv=notrunc status=none
    expect_status 0 "$VIMG" convert -n -f raw -O vmdk r.raw e.vmdk
    qemu-img compare -q -f raw -F vmdk r.raw e.vmdk ||
        fail "$sub: compare after vimg wrote into it"
    qemu-img check -q e.vmdk || fail "$sub: check after writes"

    # vimg writes into qemu-img's image of the same subformat.
    qemu-img create -q -f vmdk -o subformat=$sub q.vmdk 3M
    expect_status 0 "$VIMG" convert -n -f raw -O vmdk r.raw q.vmdk
    qemu-img compare -q -f raw -F vmdk r.raw q.vmdk ||
        fail "$sub: compare after vimg wrote into qemu-img's image"
    "$VIMG" info --output=json q.vmdk > v.json
    qemu-img info --output=json q.vmdk > q.json
    [ "$(jget v.json actual-size)" = "$(jget q.json actual-size)" ] ||
        fail "$sub: disk size"
done

# Options: adapter type, hardware version, tools version, zeroed grains.
expect_status 0 "$VIMG" create -q -f vmdk -o adapter_type=lsilogic,hwversion=11,toolsversion=12345,zeroed_grain=on o.vmdk 64M
grep -aq 'ddb.adapterType = "lsilogic"' o.vmdk || fail "adapter type"
grep -aq 'ddb.virtualHWVersion = "11"' o.vmdk || fail "hwversion"
grep -aq 'ddb.toolsVersion = "12345"' o.vmdk || fail "toolsversion"
qemu-io -f vmdk -c 'write -P 7 0 1M' -c 'write -z 64k 192k' o.vmdk > /dev/null
same_map vmdk o.vmdk
same_guest vmdk o.vmdk
"$VIMG" create -q -f vmdk -o compat6 o6.vmdk 1M
grep -aq 'ddb.virtualHWVersion = "6"' o6.vmdk || fail "compat6"
expect_status 1 "$VIMG" create -q -f vmdk -o compat6,hwversion=7 x.vmdk 1M
grep -q 'compat6 cannot be enabled with hwversion set' err || fail "$(cat err)"
expect_status 1 "$VIMG" create -q -f vmdk -o subformat=monolithicFlat,zeroed_grain=on x.vmdk 1M
expect_status 1 "$VIMG" create -q -f vmdk -o subformat=bogus x.vmdk 1M
expect_status 1 "$VIMG" create -q -f vmdk -o adapter_type=scsi x.vmdk 1M
expect_status 1 "$VIMG" create -q -f vmdk -o 'toolsversion=1"x' x.vmdk 1M
[ ! -e x.vmdk ] || fail "a refused create left a file"
exit 0
