# convert re-encrypts: an encrypted qcow2 into an encrypted qcow2 with a
# different passphrase (and cipher), into the luks format and out to a
# plain qcow2; qemu-img reads every result as the source, the old
# passphrase does not open the new image. Also prints the throughput of a
# decrypting convert beside qemu-img's (indicative only, never asserted).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io

o=encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10
qcrypt create -q -f qcow2 $SEC -o "$o" "$T/a.qcow2" 64M
qemu-io $SEC --image-opts "$(iopts qcow2 "$T/a.qcow2")" \
    -c 'write -P 0x61 0 24M' -c 'write -P 0x62 40M 3M' > /dev/null
src_sha=$(qsha qcow2 "$T/a.qcow2")
expect_status 0 "$VIMG" convert $SEC $SEC2 --image-opts -O qcow2 \
    -o encrypt.format=luks,encrypt.key-secret=sec1,encrypt.iter-time=10,encrypt.cipher-mode=cbc,encrypt.ivgen-alg=essiv \
    "$(iopts qcow2 "$T/a.qcow2")" "$T/b.qcow2"
got=$(qsha qcow2 "$T/b.qcow2" sec1)
[ "$got" = "$src_sha" ] || fail "re-encrypted data ($got)"
qemu-img check $SEC2 --image-opts "$(iopts qcow2 "$T/b.qcow2" sec1)" \
    > /dev/null || fail "qemu-img check of the re-encrypted image"
expect_status 1 qemu-io $SEC --image-opts "$(iopts qcow2 "$T/b.qcow2")" \
    -c 'read 0 512'
expect_status 1 "$VIMG" convert $SEC --image-opts -O raw \
    "$(iopts qcow2 "$T/b.qcow2")" "$T/old.raw"
# The bytes on disk differ (new key, new IVs), the guest bytes do not.
expect_status 0 "$VIMG" convert $SEC --image-opts -O luks \
    -o key-secret=sec0,iter-time=10 "$(iopts qcow2 "$T/a.qcow2")" "$T/c.luks"
[ "$(qsha luks "$T/c.luks")" = "$src_sha" ] || fail "qcow2 -> luks"
expect_status 0 "$VIMG" convert $SEC --image-opts -O qcow2 \
    "$(iopts luks "$T/c.luks")" "$T/plain.qcow2"
[ "$(qemu_sha "$T/plain.qcow2" qcow2)" = "$src_sha" ] || fail "luks -> plain"

# Throughput of a decrypting convert (qcow2 LUKS -> raw), both tools.
t0=$(date +%s.%N)
"$VIMG" convert $SEC --image-opts -O raw "$(iopts qcow2 "$T/a.qcow2")" "$T/v.raw"
t1=$(date +%s.%N)
qemu-img convert $SEC --image-opts -O raw "$(iopts qcow2 "$T/a.qcow2")" "$T/q.raw"
t2=$(date +%s.%N)
awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN { printf "decrypting convert of 64 MiB: vimg %.2f s, qemu-img %.2f s (indicative)\n", b - a, c - b }'
exit 0
