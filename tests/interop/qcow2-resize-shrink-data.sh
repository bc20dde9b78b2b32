#!/bin/sh
# resize --shrink of a qcow2 with data past the new end discards that data
# and succeeds, as qemu-img 7.2 does (the help and man page say the data is
# lost): same guest data and virtual size as qemu-img's shrink, a file no
# longer than its, and `qemu-img check` finds no leak, also when an internal
# snapshot shares the clusters (the snapshot keeps them: applying it gives
# its data back). Without --shrink both refuse and change nothing (vimg
# naming the first byte of data that would be lost); a v2 image with
# snapshots is not resized at all.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

mk() { # mk FILE CLUSTER_SIZE SNAPSHOT(0|1): 4 MiB of data, some rewritten
    qemu-img create -q -f qcow2 -o cluster_size="$2" "$1" 4M
    qemu-io -c 'write -P 1 0 4M' "$1" >/dev/null
    [ "$3" = 0 ] || qemu-img snapshot -c snap1 "$1"
    qemu-io -c 'write -P 2 1M 1M' -c 'write -P 5 3584k 512k' "$1" >/dev/null
}
clean() { # clean FILE: both checkers find nothing wrong
    expect_status 0 qemu-img check "$1"
    expect_status 0 "$VIMG" check "$1"
}

for cs in 64k 512; do
    for snap in 0 1; do
        for new in 1536k 1049088; do
            q=$T/q.qcow2 v=$T/v.qcow2
            mk "$q" $cs $snap
            cp "$q" "$v"
            expect_status 1 "$VIMG" resize "$v" "$new"
            grep -q -- '--shrink' "$T/err" || fail "no hint: $(cat "$T/err")"
            cmp -s "$q" "$v" || fail "a refused shrink changed the image"
            qemu-img resize -q --shrink "$q" "$new"
            expect_status 0 "$VIMG" resize --shrink "$v" "$new"
            what="cluster_size=$cs snapshot=$snap size=$new"
            clean "$v"
            [ "$(qemu_sha "$v" qcow2)" = "$(qemu_sha "$q" qcow2)" ] ||
                fail "$what: data differs from qemu-img's shrink"
            qemu-img info --output=json "$q" > "$T/qi.json"
            qemu-img info --output=json "$v" > "$T/vi.json"
            json_diff "$T/qi.json" "$T/vi.json" virtual-size ||
                fail "$what: virtual size"
            [ "$(stat -c %s "$v")" -le "$(stat -c %s "$q")" ] ||
                fail "$what: file $(stat -c %s "$v") bytes, qemu-img's $(stat -c %s "$q")"
            if [ $snap = 1 ]; then
                qemu-img snapshot -a snap1 "$q"
                qemu-img snapshot -a snap1 "$v"
                clean "$v"
                [ "$(qemu_sha "$v" qcow2)" = "$(qemu_sha "$q" qcow2)" ] ||
                    fail "$what: the snapshot lost data"
            fi
        done
    done
done

# A v2 snapshot does not record its size: both refuse to resize such an
# image either way and leave it as it was.
img=$T/v2.qcow2
qemu-img create -q -f qcow2 -o compat=0.10 "$img" 4M
qemu-io -c 'write -P 1 0 4M' "$img" >/dev/null
qemu-img snapshot -c snap1 "$img"
cp "$img" "$T/v2-copy.qcow2"
for args in "--shrink $img 1M" "$img 8M"; do
    # shellcheck disable=SC2086
    expect_status 1 qemu-img resize $args
    # shellcheck disable=SC2086
    expect_status 1 "$VIMG" resize $args
    grep -q "Can't resize a v2 image which has snapshots" "$T/err" ||
        fail "v2 message: $(cat "$T/err")"
    cmp -s "$img" "$T/v2-copy.qcow2" || fail "resize $args changed the v2 image"
done

# Without --shrink the refusal names the first byte of data past the new
# end (here 1M + 12k: the data at 1M+8k is zeroed, the tail before it
# unallocated), or says that there is none (qemu-img refuses both with
# "Use the --shrink option").
img=$T/tail.qcow2
qemu-img create -q -f qcow2 -o cluster_size=4k "$img" 4M
qemu-io -c 'write -P 1 0 1M' -c 'write -P 2 1032k 12k' \
    -c 'write -z 1032k 4k' -c 'write -P 3 3M 4k' "$img" >/dev/null
expect_status 1 "$VIMG" resize "$img" 1M
grep -q "would lose the data at offset 1060864 and after: use --shrink" \
    "$T/err" || fail "tail message: $(cat "$T/err")"
expect_status 1 "$VIMG" resize "$img" 3076k
grep -q "needs --shrink (no data lies past the new end)" "$T/err" ||
    fail "empty tail message: $(cat "$T/err")"
expect_status 1 qemu-img resize "$img" 3076k
