#!/bin/sh
# QED both ways against qemu-img 7.2: images qemu-img makes and qemu-io
# writes (data, zero writes, raw and probed backing files, cluster and
# table sizes) read the same in vimg, with the same map and info; vimg's
# create output is byte-identical to qemu-img's; vimg's convert output
# and vimg's writes into qemu-made images (over a backing file, zeroes)
# read back in qemu-img, which finds them clean; resize, rebase and
# measure answer as qemu-img does.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# qemu_check_clean IMG: qemu-img check finds no corruption and no leak.
qemu_check_clean() {
    qemu-img check -f qed "$1" > "$T/.qchk" 2>&1 ||
        { cat "$T/.qchk" >&2; fail "qemu-img check $1 is not clean"; }
}
# need_check IMG: the header's QED_F_NEED_CHECK bit (0 or 2).
need_check() {
    "$PY" -c 'import sys; print(open(sys.argv[1], "rb").read(17)[16] & 2)' "$1"
}

cd "$T"
"$PY" - src.raw <<'PY'
import random, sys
r = random.Random(15)
# Data, a zero run, more data, a partial last cluster.
data = r.randbytes(3 << 20) + bytes(2 << 20) + r.randbytes(777777)
open(sys.argv[1], "wb").write(data)
PY
qemu-img create -q -f raw base.raw 6M
qemu-io -f raw -c 'write -P 0x77 0 6M' base.raw > /dev/null
qemu-img create -q -f qed base.qed 6M
qemu-io -f qed -c 'write -P 0x66 0 3M' base.qed > /dev/null

# qemu-img's images, written by qemu-io, read by vimg.
io='-c "write -P 0x11 0 100k" -c "write -z 1M 128k" -c "write -P 0x22 5M 4k"'
io="$io"' -c "write -z 5200k 4k" -c "write -P 0x33 4095k 2k"'
n=0
for opts in "" "-o cluster_size=4k,table_size=2" "-o cluster_size=1M" \
            "-b base.raw -F raw" "-b base.qed -F qed"; do
    n=$((n + 1))
    # shellcheck disable=SC2086
    qemu-img create -q -f qed $opts q$n.qed 6M
    eval qemu-io -f qed "$io" q$n.qed > /dev/null
    same_data qed q$n.qed
    same_map qed q$n.qed
    qemu-img info --output=json q$n.qed > q.json
    "$VIMG" info --output=json q$n.qed > v.json
    json_diff q.json v.json virtual-size cluster-size format \
        backing-filename full-backing-filename backing-filename-format \
        dirty-flag || fail "info of q$n.qed ($opts) differs"
    qemu-img info q$n.qed > q.txt
    "$VIMG" info q$n.qed > v.txt
    diff q.txt v.txt >&2 || fail "human info of q$n.qed differs"
    qemu-img check --output=json q$n.qed > q.json
    "$VIMG" check --output=json q$n.qed > v.json
    json_diff q.json v.json --null0 corruptions leaks check-errors \
        total-clusters allocated-clusters fragmented-clusters ||
        fail "check of q$n.qed differs"
done
# The zero write over the backing file reads zeros, not its bytes.
"$VIMG" convert -f qed -O raw q4.qed q4.raw
cmp -s -n 4096 -i 5200k:0 q4.raw /dev/zero || fail "zero cluster shows base"

# vimg create: byte-identical to qemu-img create.
for opts in "" "-o cluster_size=4k" "-o cluster_size=1M,table_size=2" \
            "-o table_size=16" "-b base.raw -F raw" "-b base.qed -F qed"; do
    for size in 1000 64k 3G; do
        # shellcheck disable=SC2086
        qemu-img create -q -f qed $opts c-q.qed $size
        # shellcheck disable=SC2086
        "$VIMG" create -q -f qed $opts c-v.qed $size
        cmp -s c-q.qed c-v.qed || fail "create $opts $size differs"
    done
done

# vimg convert -O qed: qemu-img reads the same bytes and finds it clean.
for opts in "" "-o cluster_size=4k,table_size=2" "-o cluster_size=2M"; do
    # shellcheck disable=SC2086
    "$VIMG" convert -f raw -O qed $opts src.raw v.qed
    qemu-img compare -q -f raw -F qed src.raw v.qed ||
        fail "convert $opts: qemu-img reads other bytes"
    qemu_check_clean v.qed
    "$VIMG" check -q v.qed || fail "vimg check of its own image"
done
qemu-io -f qed -c 'read -P 0 3M 2M' v.qed | grep -q '^read' ||
    fail "the zero run does not read as zeros"

# vimg writes into qemu-made images: partial clusters over a backing file
# (the rest of the cluster keeps the backing bytes), zero writes (zero
# clusters over the backing file), rewrites of allocated clusters.
cp q4.qed w.qed
"$PY" - patch.raw <<'PY'
import sys
d = bytearray(b"\x55" * (6 << 20))
d[1 << 20:(1 << 20) + 200000] = bytes(200000)   # zeros, part unaligned
d[3 << 20:4 << 20] = bytes(1 << 20)             # whole zero clusters
d[100:300] = b"\xaa" * 200                      # inside an old cluster
open(sys.argv[1], "wb").write(d)
PY
printf 'partial!' > p.raw
truncate -s 1536 p.raw
"$VIMG" convert -n -f raw -O qed p.raw w.qed
qemu-io -f qed -c 'read -v 0 8' w.qed | grep -q '70 61 72 74 69 61 6c 21' ||
    fail "partial write lost"
qemu-io -f qed -c 'read -P 0 8 1528' w.qed | grep -q '^read' || fail "zeros lost"
qemu-io -f qed -c 'read -P 0x11 1536 98k' w.qed | grep -q '^read' ||
    fail "the rest of a rewritten cluster changed"
qemu-io -f qed -c 'read -P 0x77 2M 64k' w.qed | grep -q '^read' ||
    fail "the backing file does not show through"
qemu_check_clean w.qed
"$VIMG" convert -n -f raw -O qed patch.raw w.qed
qemu-img compare -q -f raw -F qed patch.raw w.qed ||
    fail "writes into a qemu-made overlay read back wrong"
qemu_check_clean w.qed
same_map qed w.qed
zc='"start": 3145728, "length": [0-9]*, "depth": 0, "present": true,'
zc="$zc"' "zero": true, "data": false'
qemu-img map --output=json w.qed | grep -q "$zc" ||
    fail "zero writes did not make zero clusters"
[ "$(need_check w.qed)" = 0 ] || fail "need-check flag left set"

# resize grows as qemu-img does (the header alone changes); shrinking is
# refused; measure is unsupported by both.
cp q1.qed r-q.qed
cp q1.qed r-v.qed
qemu-img resize -q -f qed r-q.qed 1G
"$VIMG" resize -q -f qed r-v.qed 1G
cmp -s r-q.qed r-v.qed || fail "resize differs from qemu-img's"
expect_status 1 "$VIMG" resize -q -f qed --shrink r-v.qed 1M
grep -q 'Shrinking images is currently not supported' err || fail "$(cat err)"
expect_status 1 "$VIMG" measure -O qed --size 1G
grep -q "does not support" err || fail "measure: $(cat err)"

# rebase: -u writes the header qemu-img rebase -u writes; a safe rebase
# keeps what the guest sees (the header's change is flushed after the
# copied data).
cp q4.qed rb-q.qed
cp q4.qed rb-v.qed
for args in "-b base.qed -F qed" "-b base.raw -F raw" "-b ''"; do
    eval qemu-img rebase -u -f qed "$args" rb-q.qed
    eval "\"\$VIMG\"" rebase -u -f qed "$args" rb-v.qed
    cmp -s rb-q.qed rb-v.qed || fail "rebase -u $args differs"
done
cp q4.qed rb.qed
"$VIMG" rebase -f qed -b base.qed -F qed rb.qed
[ "$(qemu_sha rb.qed qed)" = "$(qemu_sha q4.qed qed)" ] ||
    fail "a safe rebase changed the guest bytes"
qemu_check_clean rb.qed

# Refused options, as qemu-img refuses them.
expect_status 1 "$VIMG" create -q -f qed -o cluster_size=3k x.qed 1M
grep -q 'cluster size must be within range \[4096, 67108864\]' err ||
    fail "$(cat err)"
expect_status 1 "$VIMG" create -q -f qed -o table_size=3 x.qed 1M
grep -q 'table size must be within range \[1, 16\]' err || fail "$(cat err)"
expect_status 1 "$VIMG" create -q -f qed -o cluster_size=4k,table_size=1 \
    x.qed 1T
expect_status 1 qemu-img create -q -f qed -o cluster_size=16M x.qed 1G
expect_status 1 "$VIMG" create -q -f qed -o cluster_size=16M x.qed 1G
grep -q 'which QEMU cannot open' err || fail "$(cat err)"
rm -f x.qed  # qemu-img leaves an empty file
expect_status 1 "$VIMG" create -q -f qed -b base.raw x.qed 1M
grep -q 'without backing format' err || fail "$(cat err)"
[ ! -e x.qed ] || fail "a refused create left a file"
exit 0
