#!/bin/sh
# vimg amend against qemu-img amend on the same inputs: compat 1.1 -> 0.10
# (zero clusters, plain and preallocated, with and without a backing file,
# inside a snapshot's tables too, zstd without compressed clusters),
# 0.10 -> 1.1, refcount_bits (down to what the refcounts allow), lazy
# refcounts, growing, data_file fields. Where both succeed, the images
# agree on the info fields and guest bytes and check clean (with the
# snapshot applied too); where qemu-img refuses, vimg refuses with the same
# message. Deliberate differences: vimg refuses to drop bitmaps with a
# downgrade and to shrink, and changes the backing fields as qemu-img
# rebase -u does (qemu-img 7.2 refuses).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# fields IMG: what the comparison looks at.
fields() {
    qemu-img info -U --output=json "$1" | "$PY" -c '
import json, sys
d = json.load(sys.stdin)
print(d["virtual-size"], sorted(d["format-specific"]["data"].items()),
      d.get("backing-filename"), d.get("backing-filename-format"))'
}

# am NAME OPTIONS: amend copies of $T/NAME.qcow2 with both tools.
am() {
    cp "$T/$1.qcow2" "$T/q.qcow2"
    cp "$T/$1.qcow2" "$T/v.qcow2"
    set +e
    qemu-img amend -o "$2" "$T/q.qcow2" 2> "$T/q.err"; qs=$?
    "$VIMG" amend -o "$2" "$T/v.qcow2" 2> "$T/v.err"; vs=$?
    set -e
    [ $qs = $vs ] || fail "$1 $2: qemu-img exits $qs, vimg $vs: $(cat "$T/v.err")"
    if [ $qs != 0 ]; then
        want=$(sed -n '1s/^qemu-img: //p' "$T/q.err")
        grep -qF "$want" "$T/v.err" ||
            fail "$1 $2: '$(cat "$T/v.err")' does not say '$want'"
        cmp -s "$T/$1.qcow2" "$T/v.qcow2" || fail "$1 $2: refused but changed"
        return 0
    fi
    qemu_clean "$T/v.qcow2"
    [ "$(fields "$T/v.qcow2")" = "$(fields "$T/q.qcow2")" ] ||
        fail "$1 $2: $(fields "$T/v.qcow2") != $(fields "$T/q.qcow2")"
    [ "$(qemu_sha "$T/v.qcow2" qcow2)" = "$(qemu_sha "$T/q.qcow2" qcow2)" ] ||
        fail "$1 $2: guest data differs"
}

io() { f=$1; shift; qemu-io -f qcow2 "$@" "$T/$f.qcow2" > /dev/null; }
zeros="-c 'write -P 1 0 1M' -c 'write -z 256k 64k' -c 'write -z 2M 128k' \
 -c 'write -z -u 512k 64k' -c 'discard 768k 64k'"

qemu-img create -q -f qcow2 "$T/plain.qcow2" 4M
eval io plain $zeros
qemu-img create -q -f qcow2 "$T/base.qcow2" 4M
io base -c 'write -P 9 0 4M'
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/over.qcow2"
eval io over $zeros
qemu-img create -q -f qcow2 -o compat=0.10 "$T/v2.qcow2" 4M
io v2 -c 'write -P 2 0 1M' -c 'write -z 2M 64k'
qemu-img create -q -f qcow2 -o compression_type=zstd "$T/zstd.qcow2" 4M
io zstd -c 'write -P 3 0 128k'
qemu-img convert -c -O qcow2 -o compression_type=zstd "$T/zstd.qcow2" \
    "$T/zstdc.qcow2"
qemu-img convert -c -O qcow2 "$T/plain.qcow2" "$T/comp.qcow2"
qemu-img create -q -f qcow2 -o lazy_refcounts=on "$T/lazy.qcow2" 4M
io lazy -c 'write -P 4 0 192k'
qemu-img create -q -f qcow2 "$T/snap.qcow2" 4M
io snap -c 'write -P 1 0 1M' -c 'write -z 2M 64k'
qemu-img snapshot -c s1 "$T/snap.qcow2"
io snap -c 'write -P 2 0 64k' -c 'write -z 128k 64k' -c 'write -z 3M 64k'
qemu-img create -q -f qcow2 -o data_file="$T/data.raw",data_file_raw=on \
    "$T/df.qcow2" 4M

am plain compat=0.10
am over compat=0.10
am v2 compat=1.1
am v2 compat=1.1,lazy_refcounts=on,refcount_bits=4
am v2 lazy_refcounts=on
am v2 refcount_bits=8
am plain refcount_bits=1
am plain refcount_bits=64
am plain refcount_bits=8,compat=0.10
am plain refcount_bits=3
am plain compat=0.9
am plain lazy_refcounts=on
am lazy lazy_refcounts=off
am lazy compat=0.10
am plain size=8M
am zstd compat=0.10
am zstdc compat=0.10
am zstdc refcount_bits=1
am comp refcount_bits=2
am comp compat=0.10
am snap compat=0.10
am snap refcount_bits=1
am snap refcount_bits=2
am snap size=8M,compat=0.10
am df compat=0.10
am df data_file_raw=off
am plain data_file_raw=on
am plain data_file=x.raw
am plain encrypt.keyslot=1
am plain foo=bar
am plain cluster_size=4k
# The snapshot of the downgraded image still reads as it did.
cp "$T/snap.qcow2" "$T/v.qcow2"
"$VIMG" amend -o compat=0.10 "$T/v.qcow2"
qemu-img snapshot -a s1 "$T/v.qcow2"
cp "$T/snap.qcow2" "$T/q.qcow2"
qemu-img snapshot -a s1 "$T/q.qcow2"
[ "$(qemu_sha "$T/v.qcow2" qcow2)" = "$(qemu_sha "$T/q.qcow2" qcow2)" ] ||
    fail "snapshot data changed by the downgrade"
qemu_clean "$T/v.qcow2"

# The deliberate differences.
cp "$T/plain.qcow2" "$T/bm.qcow2"
qemu-img bitmap --add "$T/bm.qcow2" b
expect_status 1 "$VIMG" amend -o compat=0.10 "$T/bm.qcow2"
grep -q "Cannot downgrade an image with persistent bitmaps" "$T/err" ||
    fail "bitmaps: $(cat "$T/err")"
expect_status 1 "$VIMG" amend -o size=1M "$T/plain.qcow2"
grep -q "would lose data" "$T/err" || fail "shrink: $(cat "$T/err")"
for spec in "backing_file=$T/base.qcow2,backing_fmt=qcow2" \
            "backing_file=" "backing_fmt=raw"; do
    cp "$T/over.qcow2" "$T/v.qcow2"
    cp "$T/over.qcow2" "$T/q.qcow2"
    "$VIMG" amend -o "$spec" "$T/v.qcow2"
    case $spec in
        backing_file=,*|backing_file=) qemu-img rebase -u -b "" "$T/q.qcow2" ;;
        backing_fmt=raw) qemu-img rebase -u -b "$T/base.qcow2" -F raw "$T/q.qcow2" ;;
        *) qemu-img rebase -u -b "$T/base.qcow2" -F qcow2 "$T/q.qcow2" ;;
    esac
    cmp "$T/v.qcow2" "$T/q.qcow2" || fail "$spec: differs from rebase -u"
done
expect_status 1 "$VIMG" amend -o backing_file=x "$T/plain.qcow2"
grep -q "needs its format" "$T/err" || fail "no format: $(cat "$T/err")"
exit 0
