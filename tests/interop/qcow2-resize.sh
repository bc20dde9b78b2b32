#!/bin/sh
# `vimg resize` on qcow2 matches qemu-img: growing keeps data and reads
# zeros after the old end (also with a backing file shorter than the new
# size); shrinking a free tail needs --shrink, and then leaves a clean
# image.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

for o in compat=0.10 compat=1.1,cluster_size=512 compat=1.1,refcount_bits=64; do
    for tool in vimg qemu; do
        qemu-img create -q -f qcow2 -o "$o" "$T/$tool.qcow2" 3M
        qemu-io -c 'write -P 0x11 0 1M' -c 'write -P 0x22 2M 1M' \
            "$T/$tool.qcow2" >/dev/null
    done
    "$VIMG" resize -q "$T/vimg.qcow2" +5M
    qemu-img resize -q "$T/qemu.qcow2" +5M
    qemu_clean "$T/vimg.qcow2"
    qemu-img compare -q -s "$T/qemu.qcow2" "$T/vimg.qcow2" ||
        fail "grow differs ($o)"
    same_map qcow2 "$T/vimg.qcow2"
    # Shrink the free tail back: refused without --shrink.
    expect_status 1 "$VIMG" resize "$T/vimg.qcow2" 3M
    expect_status 1 qemu-img resize "$T/qemu.qcow2" 3M
    "$VIMG" resize -q --shrink "$T/vimg.qcow2" 3M
    qemu-img resize -q --shrink "$T/qemu.qcow2" 3M
    qemu_clean "$T/vimg.qcow2"
    qemu-img compare -q -s "$T/qemu.qcow2" "$T/vimg.qcow2" ||
        fail "shrink differs ($o)"
    qemu-img info --output=json "$T/vimg.qcow2" > "$T/i.json"
    [ "$(json_get "$T/i.json" virtual-size)" = 3145728 ] || fail "size"
done

# Growing an overlay past its backing file's end reads zeros there.
qemu-img create -q -f raw "$T/base.raw" 1M
qemu-io -f raw -c 'write -P 0x44 0 1M' "$T/base.raw" >/dev/null
qemu-img create -q -f qcow2 -b base.raw -F raw "$T/ovl.qcow2"
"$VIMG" resize -q "$T/ovl.qcow2" 4M
qemu-io -r -c 'read -P 0x44 0 1M' -c 'read -P 0 1M 3M' "$T/ovl.qcow2" |
    grep -q 'verification failed' && fail "overlay grow reads wrong data"
same_data qcow2 "$T/ovl.qcow2"
qemu_clean "$T/ovl.qcow2"
