# vimg fuse: the guest disk of a qcow2 with a backing file as a regular
# file; its bytes equal qemu-img's conversion, it is read-only by default,
# --rw writes through to the image, and unmounting closes the image.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io fusermount3
[ -c /dev/fuse ] && (: < /dev/fuse) 2>/dev/null ||
    { echo "SKIP: /dev/fuse is missing or unusable"; exit 77; }
make_chain
view=$T/view
unmount_view() { grep -q " $view fuse" /proc/mounts && fusermount3 -u "$view"; true; }
on_exit unmount_view
"$VIMG" fuse --pid-file="$T/pid" "$T/top.qcow2" "$view"
[ "$(stat -c %s "$view")" = 67108864 ] || fail "size $(stat -c %s "$view")"
[ "$(sha256sum < "$view" | cut -d' ' -f1)" = "$(qemu_sha "$T/top.qcow2" qcow2)" ] ||
    fail "bytes differ"
( printf x | dd of="$view" conv=notrunc status=none ) 2>/dev/null &&
    fail "read-only view accepted a write"
pid=$(cat "$T/pid")
fusermount3 -u "$view"
i=0; while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || fail "view process kept running"; sleep 0.05; done

"$VIMG" fuse --rw --pid-file="$T/pid" "$T/top.qcow2" "$view"
printf 'ABCD' | dd of="$view" bs=1 seek=5000000 conv=notrunc status=none
pid=$(cat "$T/pid")
fusermount3 -u "$view"
i=0; while kill -0 "$pid" 2>/dev/null; do i=$((i+1)); [ $i -lt 100 ] || fail "view process kept running"; sleep 0.05; done
qemu-img check -q "$T/top.qcow2" || fail "not clean after --rw"
qemu-io -f qcow2 -c 'read -v 5000000 4' "$T/top.qcow2" | grep -q 'ABCD' ||
    fail "write did not reach the image"
exit 0
