#!/bin/sh
# Backing names with a protocol prefix written into the header (json:,
# nbd://, http://) are never followed: vimg fails with a message naming
# the backing file instead of opening anything.
. "$(dirname "$0")/functions.sh"
requires qemu-img

echo secret > "$T/secret.raw"
for name in "json:{\"driver\":\"raw\",\"file\":{\"driver\":\"file\",\"filename\":\"$T/secret.raw\"}}" \
            "nbd://127.0.0.1:1/x" "http://127.0.0.1:1/x" "file:$T/secret.raw"; do
    qemu-img create -q -f qcow2 "$T/top.qcow2" 1M
    qemu-img rebase -q -u -b "$name" -F raw "$T/top.qcow2"
    expect_status 1 "$VIMG" convert -O raw "$T/top.qcow2" "$T/out.raw"
    grep -q "top.qcow2" "$T/err" || fail "message does not name the image"
    [ ! -e "$T/out.raw" ] || ! grep -q secret "$T/out.raw" ||
        fail "$name was followed"
done
