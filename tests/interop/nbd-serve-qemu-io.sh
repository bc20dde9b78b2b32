# qemu-io -f raw nbd+unix:// writes through vimg serve into a qcow2 (data,
# zeroes with and without unmap, discard, FUA, flush); afterwards
# qemu-img check is clean and the guest bytes equal the same writes made
# by qemu-io directly on a copy.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io
make_chain
cp "$T/top.qcow2" "$T/ref.qcow2"
cmds="-c 'write -P 0x44 0 64k' -c 'write -P 0x55 1000 3000' \
 -c 'write -z 2M 128k' -c 'write -z -u 3M 64k' -c 'discard 1M 64k' \
 -c 'write -f -P 0x66 30M 1M' -c 'flush' -c 'write -P 0x77 63M 1M'"
vserve "$T/s.sock" --discard=unmap -f qcow2 "$T/top.qcow2"
eval qemu-io -f raw $cmds "'$(uri "$T/s.sock")'" > "$T/io.out"
# Without -t the server leaves once its client has gone, closing the image.
wait $servers
servers=""
eval qemu-io -f qcow2 $cmds "$T/ref.qcow2" > /dev/null
grep -q 'wrote 1048576/1048576 bytes at offset 66060288' "$T/io.out" ||
    fail "qemu-io: $(cat "$T/io.out")"
qemu-img check -q "$T/top.qcow2" || fail "qemu-img check is not clean"
[ "$(qemu_sha "$T/top.qcow2" qcow2)" = "$(qemu_sha "$T/ref.qcow2" qcow2)" ] ||
    fail "guest bytes differ from direct writes"
# The discarded cluster (--discard=unmap) reads as zeros, not as the
# backing file's bytes.
qemu-io -f qcow2 -c 'read -P 0 1M 64k' "$T/top.qcow2" | grep -q '^read' ||
    fail "discard did not zero"
exit 0
