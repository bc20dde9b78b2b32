#!/bin/sh
# VMDK parents (parentFileNameHint) as backing chains, both ways: qemu-img's
# overlays read by vimg, vimg's (-b) read and written by qemu-io; a parent
# whose CID changed is refused, as QEMU refuses it; a non-VMDK parent is
# refused at create; --untrusted reports the parent without opening it.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vmdk.inc"
requires qemu-img qemu-io

cd "$T"
qemu-img create -q -f vmdk base.vmdk 8M
qemu-io -f vmdk -c 'write -P 0x11 0 2M' -c 'write -P 0x12 5M 1M' base.vmdk \
    > /dev/null
for maker in qemu vimg; do
    for sub in monolithicSparse streamOptimized; do
        rm -f ov.vmdk
        if [ $maker = qemu ]; then
            qemu-img create -q -f vmdk -o subformat=$sub -b base.vmdk \
                -F vmdk ov.vmdk
        else
            expect_status 0 "$VIMG" create -q -f vmdk -o subformat=$sub \
                -b base.vmdk -F vmdk ov.vmdk
        fi
        # Streams: whole grains, once; others: partial grains whose rest
        # comes from the parent (qemu-io, then vimg writing 512 bytes).
        if [ $sub = streamOptimized ]; then
            qemu-io -f vmdk -c 'write -P 0x21 1M 128k' ov.vmdk > /dev/null
        else
            qemu-io -f vmdk -c 'write -P 0x21 1000k 100k' ov.vmdk > /dev/null
            printf 'vimg!' > p.raw
            truncate -s 512 p.raw
            expect_status 0 "$VIMG" convert -n -f raw -O vmdk p.raw ov.vmdk
            qemu-io -f vmdk -c 'read -P 0x11 512 63k' ov.vmdk |
                grep -q '^read' || fail "$maker: copy-on-write from the parent"
        fi
        same_guest vmdk ov.vmdk
        same_map vmdk ov.vmdk
        qemu-img info --output=json ov.vmdk > q.json
        "$VIMG" info --output=json ov.vmdk > v.json
        json_diff q.json v.json backing-filename backing-filename-format \
            full-backing-filename format-specific.data.parent-cid ||
            fail "$maker $sub: info differs"
        "$VIMG" info --backing-chain ov.vmdk | grep -q 'image: base.vmdk' ||
            fail "$maker $sub: chain"
    done
done

# The parent changed after the overlay was made: its CID no longer
# matches, and reading through the overlay fails in both tools.
qemu-img create -q -f vmdk -b base.vmdk -F vmdk stale.vmdk
qemu-io -f vmdk -c 'write -P 0x13 7M 64k' base.vmdk > /dev/null
expect_status 1 "$VIMG" convert -f vmdk -O raw stale.vmdk stale.raw
grep -q 'parent CID' err || fail "stale parent: $(cat err)"
qemu-img convert -f vmdk -O raw stale.vmdk stale.raw 2>/dev/null &&
    fail "qemu-img reads through a stale parent"

# Parents must be VMDK images.
qemu-img create -q -f raw plain.raw 1M
expect_status 1 "$VIMG" create -q -f vmdk -b plain.raw -F raw x.vmdk
grep -q 'must be a vmdk image' err || fail "$(cat err)"
expect_status 1 "$VIMG" create -q -f vmdk -b plain.raw x.vmdk
[ ! -e x.vmdk ] || fail "a refused create left a file"

# --untrusted: the parent is named, not opened.
expect_status 0 "$VIMG" --untrusted info ov.vmdk
grep -q '^backing file: base.vmdk' out || fail "untrusted info: $(cat out)"
exit 0
