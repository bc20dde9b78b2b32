#!/bin/sh
# While qemu-nbd serves a qcow2 image read-write, every command that opens
# it without -U is refused with qemu-img's exit status (readers of qcow2
# do not share writes: the metadata could change under them), naming the
# file and the lock; with -U reads work.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-nbd
"$VIMG" --help | grep -q '^Formats:.* qcow2' || { echo "SKIP: no qcow2 in this build"; exit 77; }
img=$T/disk.qcow2 sock=$T/nbd.sock
"$VIMG" create -q -f qcow2 "$img" 64M
serve_nbd "$sock" -f qcow2 "$img"
before=$(sha256sum < "$img")
for cmd in "info $img" "map $img" "compare $img $img" "check $img" \
           "convert -O raw $img $T/out.raw" "resize $img 128M" \
           "create -f qcow2 $img 1M"; do
    set +e
    # shellcheck disable=SC2086
    qemu-img $cmd > /dev/null 2>&1; qrc=$?
    # shellcheck disable=SC2086
    "$VIMG" $cmd > "$T/out" 2> "$T/err"; vrc=$?
    set -e
    [ $qrc != 0 ] || fail "qemu-img $cmd succeeded"
    [ $vrc = $qrc ] || fail "$cmd: vimg exit $vrc, qemu-img $qrc"
    [ "$(wc -l < "$T/err")" = 1 ] &&
        grep -q "^vimg: $img: Failed to get .*lock" "$T/err" || fail "$cmd: $(cat "$T/err")"
done
[ ! -e "$T/out.raw" ] || fail "refused convert left its target"
[ "$(sha256sum < "$img")" = "$before" ] || fail "image changed"
expect_status 0 "$VIMG" info -U "$img"
expect_status 0 "$VIMG" check -U "$img"
expect_status 0 "$VIMG" convert -U -O raw "$img" "$T/out.raw"
expect_status 0 qemu-img compare -U -f qcow2 -F raw "$img" "$T/out.raw"
