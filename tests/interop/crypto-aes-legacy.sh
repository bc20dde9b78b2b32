# Legacy AES qcow2 (crypt_method 1) made by qemu-img create -o
# encrypt.format=aes and written by qemu-io reads identically in vimg and
# converts out (to raw and to LUKS); vimg refuses to write it or to create
# one, each in one line.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io

for compat in 1.1 0.10; do
    f="$T/aes-$compat.qcow2"
    qemu-img create -q -f qcow2 $SEC \
        -o "encrypt.format=aes,encrypt.key-secret=sec0,compat=$compat" "$f" 4M
    qemu-io $SEC --image-opts "$(iopts qcow2 "$f")" \
        -c 'write -P 0x42 100k 200k' -c 'write -P 0x43 1M 1536' > /dev/null
    [ "$(vsha qcow2 "$f")" = "$(qsha qcow2 "$f")" ] ||
        fail "$compat: vimg reads the AES image differently"
    "$VIMG" info "$f" | grep -q 'format: aes' || fail "$compat: info"
done
expect_status 0 "$VIMG" convert $SEC --image-opts -O qcow2 \
    -o encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10 \
    "$(iopts qcow2 "$f")" "$T/luks.qcow2"
[ "$(qsha qcow2 "$T/luks.qcow2")" = "$(qsha qcow2 "$f")" ] ||
    fail "AES -> LUKS convert changed the data"
# Writing and creating are refused, in one line.
cp "$f" "$T/w.qcow2"
expect_status 1 "$VIMG" convert -n $SEC --image-opts --target-image-opts \
    "$(iopts qcow2 "$f")" "$(iopts qcow2 "$T/w.qcow2")"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q 'legacy AES' "$T/err" ||
    fail "write: $(cat "$T/err")"
cmp -s "$f" "$T/w.qcow2" || fail "the refused write changed the image"
expect_status 1 "$VIMG" create -f qcow2 $SEC \
    -o encrypt.format=aes,encrypt.key-secret=sec0 "$T/new.qcow2" 1M
grep -q 'legacy AES' "$T/err" && [ ! -e "$T/new.qcow2" ] ||
    fail "create: $(cat "$T/err")"
exit 0
