# qcow (version 1) with QEMU's legacy AES encryption, made by qemu-img
# create (encrypt.format=aes and encryption=on) and written by qemu-io
# through --object secret and --image-opts, reads identically in vimg;
# writing is refused in one line and leaves the file alone; without the
# key only metadata opens.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io

for o in encrypt.format=aes encryption=on; do
    f="$T/aes.qcow"
    rm -f "$f"
    qemu-img create -q -f qcow $SEC -o "$o,encrypt.key-secret=sec0" "$f" 4M
    qemu-io $SEC --image-opts "$(iopts qcow "$f")" \
        -c 'write -P 0x42 100k 200k' -c 'write -P 0x43 1M 1536' \
        -c 'write -P 0x44 4095k 1k' > /dev/null
    [ "$(vsha qcow "$f")" = "$(qsha qcow "$f")" ] ||
        fail "$o: vimg reads the AES qcow image differently"
done
"$VIMG" info "$f" | grep -q 'encrypted: yes' || fail "info"
cp "$f" "$T/w.qcow"
expect_status 1 "$VIMG" convert -n $SEC --image-opts --target-image-opts \
    "$(iopts qcow "$f")" "$(iopts qcow "$T/w.qcow")"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q 'legacy AES' "$T/err" ||
    fail "write: $(cat "$T/err")"
cmp -s "$f" "$T/w.qcow" || fail "the refused write changed the image"
expect_status 1 "$VIMG" convert -O raw "$f" "$T/o.raw" < /dev/null
grep -q 'encrypt.key-secret=ID' "$T/err" || fail "no key: $(cat "$T/err")"
exit 0
