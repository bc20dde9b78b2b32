# nbdcopy and qemu-img convert nbd+unix:// copy a served qcow2 (with a
# backing file) and a zstd-compressed qcow2; the bytes match qemu-img's.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io nbdcopy
make_chain
qemu-img convert -O qcow2 -c -o compression_type=zstd "$T/top.qcow2" \
    "$T/z.qcow2"
sha=$(qemu_sha "$T/top.qcow2" qcow2)
for img in top z; do
    vserve "$T/$img.sock" -t -r -f qcow2 "$T/$img.qcow2"
    nbdcopy "$(uri "$T/$img.sock")" "$T/$img.nbdcopy.raw"
    [ "$(sha256sum < "$T/$img.nbdcopy.raw" | cut -d' ' -f1)" = "$sha" ] ||
        fail "nbdcopy of $img.qcow2 differs"
    qemu-img convert -f raw -O raw "$(uri "$T/$img.sock")" "$T/$img.conv.raw"
    [ "$(sha256sum < "$T/$img.conv.raw" | cut -d' ' -f1)" = "$sha" ] ||
        fail "qemu-img convert of $img.qcow2 differs"
    # Holes stay holes: nbdcopy skips what the server reports as zero.
    [ "$(du_k "$T/$img.nbdcopy.raw")" -lt 16384 ] ||
        fail "nbdcopy wrote holes as data"
done
exit 0
