# Encrypted backing files: a chain made by qemu-img (a qcow2 overlay on a
# luks base, and an encrypted qcow2 overlay over that) reads in vimg as in
# qemu-img with qemu-img's syntax, backing.key-secret=ID and
# backing.backing.encrypt.key-secret=ID in --image-opts; a missing backing
# key is one line naming that option; create -b takes an encrypted backing
# file without its key, as qemu-img does (only its size is read); the
# chain converts into encrypted images under another key (re-encryption).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io

qcrypt create -q -f luks $SEC -o key-secret=sec0,iter-time=10 "$T/base.luks" 4M
qemu-io $SEC --image-opts "$(iopts luks "$T/base.luks")" \
    -c 'write -P 0x11 0 2M' > /dev/null
# The middle image is encrypted with its own key and written by qemu-io.
qcrypt create -q -f qcow2 $SEC2 -b "$T/base.luks" -F luks \
    -o encrypt.format=luks,encrypt.key-secret=sec1,encrypt.iter-time=10 \
    "$T/mid.qcow2"
mid="$(iopts qcow2 "$T/mid.qcow2" sec1),backing.key-secret=sec0"
qemu-io $SEC $SEC2 --image-opts "$mid" -c 'write -P 0x22 1M 64k' > /dev/null
qemu-img create -q -f qcow2 -b "$T/mid.qcow2" -F qcow2 "$T/top.qcow2"
top="driver=qcow2,file.filename=$T/top.qcow2"
top="$top,backing.encrypt.key-secret=sec1,backing.backing.key-secret=sec0"
qemu-io $SEC $SEC2 --image-opts "$top" -c 'write -P 0x33 1536k 4k' > /dev/null

for img in "$mid" "$top"; do
    qemu-img convert $SEC $SEC2 --image-opts -O raw "$img" "$T/q.raw"
    expect_status 0 "$VIMG" convert $SEC $SEC2 --image-opts -O raw "$img" \
        "$T/v.raw"
    cmp -s "$T/q.raw" "$T/v.raw" || fail "vimg reads $img differently"
done
# Re-encrypt the chain (keys sec1 and sec0, given as backing.*) into a
# qcow2 and a luks image under a third key: qemu-img reads the same bytes.
SEC3="--object secret,id=sec2,data=third-key"
expect_status 0 "$VIMG" convert $SEC $SEC2 $SEC3 --image-opts -O qcow2 \
    -o encrypt.format=luks,encrypt.key-secret=sec2,encrypt.iter-time=10 \
    "$top" "$T/re.qcow2"
expect_status 0 "$VIMG" convert $SEC $SEC2 $SEC3 --image-opts -O luks \
    -o key-secret=sec2,iter-time=10 "$top" "$T/re.luks"
for re in "$(iopts qcow2 "$T/re.qcow2" sec2)" "$(iopts luks "$T/re.luks" sec2)"
do
    qemu-img convert $SEC3 --image-opts -O raw "$re" "$T/re.raw"
    cmp -s "$T/q.raw" "$T/re.raw" || fail "re-encrypted chain: $re"
done
qemu-img check -q $SEC3 --image-opts "$(iopts qcow2 "$T/re.qcow2" sec2)" ||
    fail "qemu-img check of the re-encrypted chain"
# Without the base's key: one line, naming the option to give.
expect_status 1 "$VIMG" convert $SEC $SEC2 --image-opts -O raw \
    "driver=qcow2,file.filename=$T/top.qcow2,backing.encrypt.key-secret=sec1" \
    "$T/v.raw"
[ "$(wc -l < "$T/err")" = 1 ] &&
    grep -q 'base.luks: .*backing.backing.key-secret=ID' "$T/err" ||
    fail "missing key: $(cat "$T/err")"
# A wrong one is refused as for the image itself.
expect_status 1 "$VIMG" convert $SEC $SEC2 --image-opts -O raw \
    "$(iopts qcow2 "$T/mid.qcow2" sec1),backing.key-secret=sec1" "$T/v.raw"
grep -q 'base.luks: invalid passphrase' "$T/err" || fail "wrong key: $(cat "$T/err")"
# create -b needs only the size of an encrypted backing file.
expect_status 0 "$VIMG" create -q -f qcow2 -b "$T/mid.qcow2" -F qcow2 \
    "$T/new.qcow2"
"$VIMG" info --output=json "$T/new.qcow2" > "$T/i.json"
[ "$(json_get "$T/i.json" virtual-size)" = 4194304 ] || fail "create -b: size"
exit 0
