# New encrypted rbd: images (create and convert with -o encrypt.format=
# luks|luks2,encrypt.key-secret=ID[,encrypt.cipher-alg=...]) as qemu-img
# 7.2 makes them through librbd: the guest sees SIZE, the image holds SIZE
# plus librbd's LUKS header (`rbd info` as for qemu-img's), and qemu-io
# reads and writes them with the same passphrase. A missing or unknown
# secret is one line and leaves no image (hidden or not) in the pool.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/ceph.inc"
requires qemu-img qemu-io
requires_qemu_rbd
ceph_start

printf hunter2 > "$T/pw"
O="--object secret,id=s0,file=$T/pw"
rbd_size() {
    rbd info --format json "$1" |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["size"])'
}
# qemu-io checks: PATTERN OFFSET LENGTH..., through librbd's decryption.
# What no one wrote is not checked: librbd 16 decrypts the zeros of an
# object's unwritten part (qemu-img's images read so too); convert writes
# the guest's zeros instead.
qio_read() {
    spec=$1; shift
    args=""
    while [ $# -gt 0 ]; do args="$args -c 'read -P $1 $2 $3'"; shift 3; done
    eval qemu-io $O --image-opts "$args" "$spec" > "$T/qio" 2>&1 ||
        { cat "$T/qio" >&2; fail "qemu-io read $spec"; }
    ! grep -q 'Pattern verification failed' "$T/qio" ||
        fail "qemu-io read other bytes in $spec"
}

for f in luks luks2; do
    o=encrypt.format=$f,encrypt.key-secret=s0
    "$VIMG" create -q -f raw $O -o $o "rbd:rbd/v$f" 64M
    qemu-img create -q -f raw $O -o $o "rbd:rbd/q$f" 64M
    [ "$(rbd_size "rbd/v$f")" = "$(rbd_size "rbd/q$f")" ] ||
        fail "$f: rbd info sizes $(rbd_size "rbd/v$f") $(rbd_size "rbd/q$f")"
    E="driver=rbd,pool=rbd,image=v$f,$o"
    qemu-img info $O --image-opts "$E" | grep -q '^virtual size: 64 MiB ' ||
        fail "$f: qemu-img info"
    # qemu-io writes the guest's bytes; both read them back.
    qemu-io $O --image-opts -c 'write -P 0x42 0 1M' -c 'write -P 0x43 63M 1M' \
        "$E" > /dev/null
    qio_read "$E" 0x42 0 1M 0x43 63M 1M
    "$VIMG" convert $O --image-opts "$E" -O raw "$T/v.raw"
    qemu-img dd $O --image-opts if="$E" of="$T/q.raw" bs=1M
    cmp "$T/v.raw" "$T/q.raw" || fail "$f: vimg and qemu-img read other bytes"
done

# Resizing counts past the header too (here an image qemu-img made).
"$VIMG" resize -q $O --image-opts \
    driver=rbd,pool=rbd,image=qluks2,encrypt.format=luks2,encrypt.key-secret=s0 96M
qemu-img info $O --image-opts \
    driver=rbd,pool=rbd,image=qluks2,encrypt.format=luks2,encrypt.key-secret=s0 |
    grep -q '^virtual size: 96 MiB ' || fail "resize"
[ "$(rbd_size rbd/qluks2)" = $((112 << 20)) ] || fail "resize: raw size"

# aes-128, as qemu-img makes it.
o=encrypt.format=luks,encrypt.key-secret=s0,encrypt.cipher-alg=aes-128
"$VIMG" create -q -f raw $O -o $o rbd:rbd/v128 8M
qemu-io $O --image-opts -c 'write -P 0x11 4M 64k' \
    driver=rbd,pool=rbd,image=v128,encrypt.format=luks,encrypt.key-secret=s0 \
    > /dev/null
qio_read driver=rbd,pool=rbd,image=v128,encrypt.format=luks,encrypt.key-secret=s0 \
    0x11 4M 64k

# convert into a new encrypted image, then compare as the guest sees it.
qemu-img create -q -f qcow2 "$T/src.qcow2" 20M
qemu-io -f qcow2 -c 'write -P 0x77 2M 3M' -c 'write -P 0x78 19M 64k' \
    "$T/src.qcow2" > /dev/null
"$VIMG" convert $O -O raw -o encrypt.format=luks2,encrypt.key-secret=s0 \
    "$T/src.qcow2" rbd:rbd/conv
E=driver=rbd,pool=rbd,image=conv,encrypt.format=luks2,encrypt.key-secret=s0
qio_read "$E" 0 0 2M 0x77 2M 3M 0 5M 14M 0x78 19M 64k 0 19520k 960k
"$VIMG" compare -q $O --image-opts "$E" "driver=qcow2,file.filename=$T/src.qcow2" ||
    fail "convert: compare"
qemu-img create -q -f raw $O -o encrypt.format=luks2,encrypt.key-secret=s0 \
    rbd:rbd/qconv 20M
[ "$(rbd_size rbd/conv)" = "$(rbd_size rbd/qconv)" ] || fail "convert: size"

# A missing or unknown secret, or a cipher librbd lacks: one line, and
# nothing left in the pool.
rbd ls rbd | sort > "$T/before"
for o in encrypt.format=luks,encrypt.key-secret=s1 encrypt.format=luks \
         encrypt.format=luks,encrypt.key-secret=s0,encrypt.cipher-alg=twofish-256 \
         encrypt.key-secret=s0; do
    expect_status 1 "$VIMG" create -q -f raw $O -o $o rbd:rbd/bad 8M
    [ "$(wc -l < "$T/err")" -eq 1 ] || fail "$o: $(cat "$T/err")"
    grep -q 'rbd:rbd/bad' "$T/err" || fail "$o: $(cat "$T/err")"
    expect_status 1 "$VIMG" convert $O -O raw -o $o "$T/src.qcow2" rbd:rbd/bad
    [ "$(wc -l < "$T/err")" -eq 1 ] || fail "convert $o: $(cat "$T/err")"
    rbd ls rbd | sort | cmp -s - "$T/before" || fail "$o: left $(rbd ls rbd)"
done
echo PASS
