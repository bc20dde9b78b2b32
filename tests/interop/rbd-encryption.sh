# Encrypted rbd: images (librbd's LUKS1 and LUKS2, which QEMU's rbd driver
# loads with encrypt.format and encrypt.key-secret), on a one-node Ceph
# cluster of the test's own: images qemu-img made and qemu-io wrote read
# as the guest wrote them, vimg's writes read back in qemu-io, a wrong
# passphrase is one line, and without the keys the image is its raw bytes,
# as in qemu-img.
# qemu-img 7.2's own convert out of such an image loses data: its block
# status (librbd's diff_iterate2) is not moved past the LUKS header, so
# data near the end reads as a hole. The checks below use qemu-io reads.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/ceph.inc"
requires qemu-img qemu-io
requires_qemu_rbd
ceph_start

printf hunter2 > "$T/pw"
printf wrong > "$T/bad"
O="--object secret,id=s0,file=$T/pw"
W="-c 'write -P 0x42 0 1M' -c 'write -P 0x43 40M 64k' -c 'write -P 0x44 63M 1M'"
qemu-img create -q -f qcow2 "$T/src.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x77 2M 3M' -c 'write -P 0x78 60M 64k' \
    "$T/src.qcow2" > /dev/null

for f in luks luks2; do
    qemu-img create -q -f raw $O -o encrypt.format=$f,encrypt.key-secret=s0 \
        "rbd:rbd/$f" 64M
    E="driver=rbd,pool=rbd,image=$f,encrypt.format=$f,encrypt.key-secret=s0"
    eval qemu-io $O --image-opts "$W" "$E" > /dev/null

    "$VIMG" convert $O --image-opts "$E" -O raw "$T/v.raw"
    # qemu-img dd reads every byte (no block status).
    qemu-img dd $O --image-opts if="$E" of="$T/q.raw" bs=1M
    cmp "$T/q.raw" "$T/v.raw" || fail "$f: vimg and qemu-img read other bytes"
    for r in 0:1048576:42 41943040:65536:43 66060288:1048576:44; do
        off=${r%%:*}; rest=${r#*:}; len=${rest%%:*}; byte=${r##*:}
        [ "$(od -A n -t x1 -v -j "$off" -N "$len" "$T/v.raw" | tr -s ' \n' '\n\n' |
             sort -u | grep -v '^$')" = "$byte" ] || fail "$f: bytes at $off"
    done
    "$VIMG" info $O --image-opts "$E" | grep -q '^virtual size: 64 MiB' ||
        fail "$f: info"
    "$VIMG" compare -q $O --image-opts "$E" "driver=raw,file.filename=$T/q.raw" ||
        fail "$f: compare"

    # vimg writes through librbd's encryption; qemu-io reads the guest's bytes.
    "$VIMG" convert $O -n --target-image-opts "$T/src.qcow2" "$E"
    qemu-io $O --image-opts -c 'read -P 0 0 2M' -c 'read -P 0x77 2M 3M' \
        -c 'read -P 0 40M 64k' -c 'read -P 0x78 60M 64k' -c 'read -P 0 63M 1M' \
        "$E" > "$T/qio" || fail "$f: qemu-io read"
    ! grep -q 'Pattern verification failed' "$T/qio" ||
        fail "$f: qemu-io reads other bytes than vimg wrote"

    # A wrong passphrase is one line, and nothing is read.
    expect_status 1 "$VIMG" info --object secret,id=s0,file="$T/bad" --image-opts "$E"
    [ "$(wc -l < "$T/err")" -eq 1 ] && grep -q "rbd:rbd/$f: Invalid password" "$T/err" ||
        fail "$f: wrong passphrase: $(cat "$T/err")"
    # The protocol alone: the raw bytes, header included, as in qemu-img.
    "$VIMG" info --output=json --image-opts "driver=rbd,pool=rbd,image=$f" > "$T/vinfo"
    grep -q "\"virtual-size\": $(rbd info --format json "rbd/$f" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["size"])')" "$T/vinfo" ||
        fail "$f: the raw image's size"
done

expect_status 1 "$VIMG" info $O --image-opts \
    driver=rbd,pool=rbd,image=luks2,encrypt.format=luks,encrypt.key-secret=s0
grep -q "rbd:rbd/luks2: cannot load its LUKS header" "$T/err" ||
    fail "a LUKS2 image opened as LUKS1: $(cat "$T/err")"
expect_status 1 "$VIMG" info $O --image-opts \
    driver=rbd,pool=rbd,image=luks,encrypt.format=aes,encrypt.key-secret=s0
grep -q "encrypt.format 'aes' is not luks or luks2" "$T/err" || fail "$(cat "$T/err")"
expect_status 1 "$VIMG" info --image-opts \
    driver=rbd,pool=rbd,image=luks,encrypt.format=luks
grep -q "its passphrase is needed" "$T/err" || fail "$(cat "$T/err")"
echo PASS
