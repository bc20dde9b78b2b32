#!/bin/sh
# What walks L2 tables keeps working on extended L2 entries: snapshots,
# commit, rebase, amend (refcount width; a downgrade refused as qemu-img
# refuses it), resize, check -r, compressed convert. Each result passes qemu-img
# check and reads as expected.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

sc=2048 # 64 KiB clusters
mk() { # mk NAME [qemu-img create args]: an extended L2 image with data
    n=$1; shift
    qemu-img create -q -f qcow2 -o extended_l2=on "$@" "$T/$n" 4M
    qemu-io -c "write -P 0x21 $sc $sc" -c "write -P 0x22 $((40 * sc)) 100k" \
            -c "write -z $((3 * sc)) $((2 * sc))" \
            -c "write -P 0x23 $((100 * sc + 7)) 999" "$T/$n" >/dev/null
}
clean() { qemu-img check -q "$T/$1" || fail "$2: qemu-img check"; }

# Snapshots: create, change, apply, delete.
mk snap.qcow2
want=$(qemu_sha "$T/snap.qcow2" qcow2)
"$VIMG" snapshot -c s1 "$T/snap.qcow2"
qemu-io -c "write -P 0x31 $((sc / 2)) $sc" -c "write -z $((40 * sc)) $sc" \
    "$T/snap.qcow2" >/dev/null
clean snap.qcow2 "snapshot -c"
"$VIMG" snapshot -a s1 "$T/snap.qcow2"
[ "$(qemu_sha "$T/snap.qcow2" qcow2)" = "$want" ] || fail "snapshot -a"
"$VIMG" snapshot -d s1 "$T/snap.qcow2"
clean snap.qcow2 "snapshot -d"
[ "$(qemu_sha "$T/snap.qcow2" qcow2)" = "$want" ] || fail "snapshot -d"

# Commit an extended overlay into an extended base.
mk base.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on -b "$T/base.qcow2" -F qcow2 \
    "$T/top.qcow2" 4M
qemu-io -c "write -P 0x41 $((2 * sc + 5)) 300" -c "write -z $sc 512" \
    -c "write -P 0x42 $((40 * sc)) $sc" "$T/top.qcow2" >/dev/null
want=$(qemu_sha "$T/top.qcow2" qcow2)
"$VIMG" commit -q "$T/top.qcow2"
clean base.qcow2 commit
[ "$(qemu_sha "$T/base.qcow2" qcow2)" = "$want" ] || fail "commit"

# Rebase onto another backing file: the guest disk stays.
mk other.qcow2
qemu-io -c "write -P 0x51 0 1M" "$T/other.qcow2" >/dev/null
mk base.qcow2
qemu-img create -q -f qcow2 -o extended_l2=on -b "$T/base.qcow2" -F qcow2 \
    "$T/top.qcow2" 4M
qemu-io -c "write -P 0x61 $((2 * sc + 5)) 300" "$T/top.qcow2" >/dev/null
want=$(qemu_sha "$T/top.qcow2" qcow2)
"$VIMG" rebase -b "$T/other.qcow2" -F qcow2 "$T/top.qcow2"
clean top.qcow2 rebase
[ "$(qemu_sha "$T/top.qcow2" qcow2)" = "$want" ] || fail "rebase"

# Amend: another refcount width and lazy refcounts work; compat=0.10 is
# refused as qemu-img refuses it.
mk am.qcow2
want=$(qemu_sha "$T/am.qcow2" qcow2)
"$VIMG" amend -o refcount_bits=8,lazy_refcounts=on "$T/am.qcow2"
clean am.qcow2 amend
[ "$(qemu_sha "$T/am.qcow2" qcow2)" = "$want" ] || fail "amend"
mk am1.qcow2
cp "$T/am1.qcow2" "$T/am2.qcow2"
set +e
qemu-img amend -o compat=0.10 "$T/am2.qcow2" 2>"$T/qe"; qs=$?
"$VIMG" amend -o compat=0.10 "$T/am1.qcow2" 2>"$T/ve"; vs=$?
set -e
[ "$qs" = 1 ] && [ "$vs" = 1 ] || fail "amend compat=0.10 exited $vs, qemu-img $qs"
grep -q "Cannot downgrade an image with incompatible features 0x10 set" \
    "$T/ve" || { cat "$T/ve" >&2; fail "amend compat=0.10 message"; }

# Resize: shrink into a partly allocated cluster, then grow; the guest
# disk is what qemu-img's resize leaves.
mk rs.qcow2
cp "$T/rs.qcow2" "$T/rq.qcow2"
"$VIMG" resize -q --shrink "$T/rs.qcow2" $((40 * sc + 3072))
"$VIMG" resize -q "$T/rs.qcow2" 8M
qemu-img resize -q --shrink "$T/rq.qcow2" $((40 * sc + 3072))
qemu-img resize -q "$T/rq.qcow2" 8M
clean rs.qcow2 resize
qemu-img compare -q "$T/rq.qcow2" "$T/rs.qcow2" || fail "resize"

# Repair: refcounts left behind by lazy refcounts are rebuilt.
qemu-img create -q -f qcow2 -o extended_l2=on,lazy_refcounts=on \
    "$T/d.qcow2" 4M
qemu-io -c "write -P 0x11 1k 5k" -c "write -P 0x12 1M 100k" \
    -c "write -z 200k 4k" -c abort "$T/d.qcow2" >/dev/null 2>&1 || true
cp "$T/d.qcow2" "$T/d0.qcow2"
"$VIMG" check -q -r all "$T/d.qcow2" 2>"$T/err" || fail "check -r all"
clean d.qcow2 "check -r all"
qemu-img compare -q "$T/d0.qcow2" "$T/d.qcow2" || fail "check -r all data"

# Compressed clusters: their bitmaps stay 0.
mk c.qcow2
"$VIMG" convert -c -O qcow2 -o extended_l2=on "$T/c.qcow2" "$T/cc.qcow2"
clean cc.qcow2 "convert -c"
qemu-img compare -q "$T/c.qcow2" "$T/cc.qcow2" || fail "convert -c"
qemu-io -c "write -P 0x71 $((40 * sc + 512)) 512" -c "write -z $((41 * sc)) $sc" \
    "$T/cc.qcow2" >/dev/null
"$VIMG" check -q "$T/cc.qcow2" || fail "vimg check after qemu-io"
echo ok
