# New encrypted rbd: images (create and convert with -o encrypt.format=
# luks|luks2,encrypt.key-secret=ID[,encrypt.cipher-alg=...]) as qemu-img
# 7.2 makes them through librbd: the guest sees SIZE, the image holds SIZE
# plus librbd's LUKS header (`rbd info` as for qemu-img's), and qemu-io
# reads and writes them with the same passphrase. A missing or unknown
# secret is one line and leaves no image (hidden or not) in the pool.
# Every open of such an image derives its key (about 2 s of CPU), so the
# checks share opens.
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
# qemu-io: the commands, then checks that no read found other bytes.
# What no one wrote is not read: librbd 16 decrypts the zeros of an
# object's unwritten part (qemu-img's images read so too); convert writes
# the guest's zeros instead.
qio() {
    spec=$1; shift
    qemu-io $O --image-opts "$@" "$spec" > "$T/qio" 2>&1 ||
        { cat "$T/qio" >&2; fail "qemu-io $spec"; }
    ! grep -q 'Pattern verification failed' "$T/qio" ||
        fail "qemu-io read other bytes in $spec"
}

# LUKS1 (aes-256) and LUKS2 with aes-128: sizes as qemu-img's.
o1=encrypt.format=luks,encrypt.key-secret=s0
o2=encrypt.format=luks2,encrypt.key-secret=s0,encrypt.cipher-alg=aes-128
"$VIMG" create -q -f raw $O -o $o1 rbd:rbd/v1 64M
"$VIMG" create -q -f raw $O -o $o2 rbd:rbd/v2 64M
qemu-img create -q -f raw $O -o $o1 rbd:rbd/q1 64M
qemu-img create -q -f raw $O -o $o2 rbd:rbd/q2 64M
[ "$(rbd_size rbd/v1)" = "$(rbd_size rbd/q1)" ] &&
    [ "$(rbd_size rbd/v1)" = $((68 << 20)) ] || fail "luks: rbd info size"
[ "$(rbd_size rbd/v2)" = "$(rbd_size rbd/q2)" ] &&
    [ "$(rbd_size rbd/v2)" = $((80 << 20)) ] || fail "luks2: rbd info size"

# qemu-io writes the guest's bytes and reads them back; vimg reads them.
E1="driver=rbd,pool=rbd,image=v1,encrypt.format=luks,encrypt.key-secret=s0"
qio "$E1" -c 'write -P 0x42 0 1M' -c 'write -P 0x43 63M 1M' \
    -c 'read -P 0x42 0 1M' -c 'read -P 0x43 63M 1M' -c 'read -P 0 8M 52M'
"$VIMG" convert $O --image-opts "$E1" -O raw "$T/v.raw"
qemu-img create -q -f raw "$T/want.raw" 64M
qemu-io -f raw -c 'write -P 0x42 0 1M' -c 'write -P 0x43 63M 1M' \
    "$T/want.raw" > /dev/null
cmp -n 1048576 "$T/v.raw" "$T/want.raw" &&
    cmp -i 66060288 "$T/v.raw" "$T/want.raw" &&
    cmp -i 8388608 -n 54525952 "$T/v.raw" "$T/want.raw" ||
    fail "luks: vimg read other bytes"
qio driver=rbd,pool=rbd,image=v2,encrypt.format=luks2,encrypt.key-secret=s0 \
    -c 'write -P 0x11 4M 64k' -c 'read -P 0x11 4M 64k' -c 'read -P 0 16M 48M'

# Resizing counts past the header too (an image qemu-img made).
"$VIMG" resize -q $O --image-opts \
    driver=rbd,pool=rbd,image=q2,encrypt.format=luks2,encrypt.key-secret=s0 96M
[ "$(rbd_size rbd/q2)" = $((112 << 20)) ] || fail "resize: $(rbd_size rbd/q2)"

# convert into a new encrypted image: the guest's zeros are written.
qemu-img create -q -f qcow2 "$T/src.qcow2" 20M
qemu-io -f qcow2 -c 'write -P 0x77 2M 3M' -c 'write -P 0x78 19M 64k' \
    "$T/src.qcow2" > /dev/null
"$VIMG" convert $O -O raw -o $o1 "$T/src.qcow2" rbd:rbd/conv
[ "$(rbd_size rbd/conv)" = $((24 << 20)) ] || fail "convert: size"
qio driver=rbd,pool=rbd,image=conv,encrypt.format=luks,encrypt.key-secret=s0 \
    -c 'read -P 0 0 2M' -c 'read -P 0x77 2M 3M' -c 'read -P 0 5M 14M' \
    -c 'read -P 0x78 19M 64k' -c 'read -P 0 19520k 960k'

# A key the format takes too is the format's, as in qemu-img: qcow2's own
# encryption on a plain image, qcow2's cluster size and 4 MiB objects.
"$VIMG" create -q -f qcow2 $O -o $o1,cluster_size=64k rbd:rbd/qq 8M
"$VIMG" info rbd:rbd/qq > "$T/info"
grep -q '^file format: qcow2' "$T/info" && grep -q 'encrypted: yes' "$T/info" &&
    grep -q '^cluster_size: 65536' "$T/info" || fail "qcow2: $(cat "$T/info")"
rbd info rbd/qq | grep -q 'order 22 ' || fail "qcow2: object size"

# A missing or unknown secret, a cipher librbd lacks, a key without a
# format: one line, and nothing left in the pool.
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
