# vimg mount of an ext4 file system inside a qcow2 overlay: a file reads
# back; a write through --rw lands in the overlay (qemu-img compare sees
# it, qemu-img check is clean); a partition is mounted with --partition;
# a failed mount and every umount leave no loop device, FUSE mount or
# state folder behind.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img mkfs.ext4 debugfs sfdisk
need_fuse_loop
mnt=$T/mnt
mkdir "$mnt"
umount_all() { mountpoint -q "$mnt" && "$VIMG" umount "$mnt"; true; }
on_exit umount_all
truncate -s 64M "$T/fs.raw"
mkfs.ext4 -q -F "$T/fs.raw"
echo "hello from ext4" > "$T/hello.txt"
debugfs -w -R "write $T/hello.txt hello.txt" "$T/fs.raw" >/dev/null 2>&1
qemu-img convert -O qcow2 "$T/fs.raw" "$T/base.qcow2"
qemu-img create -q -f qcow2 -b "$T/base.qcow2" -F qcow2 "$T/ov.qcow2"

"$VIMG" mount "$T/ov.qcow2" "$mnt"
[ "$(cat "$mnt/hello.txt")" = "hello from ext4" ] || fail "file content"
touch "$mnt/x" 2>/dev/null && fail "read-only mount was writable"
"$VIMG" umount "$mnt"
no_leftovers
qemu-img compare -q "$T/ov.qcow2" "$T/base.qcow2" || fail "ro mount changed the image"

"$VIMG" mount --rw "$T/ov.qcow2" "$mnt"
echo "written through vimg" > "$mnt/new.txt"
"$VIMG" umount "$mnt"
no_leftovers
qemu-img check -q "$T/ov.qcow2" || fail "overlay not clean"
expect_status 1 qemu-img compare "$T/ov.qcow2" "$T/base.qcow2"
qemu-img convert -O raw "$T/ov.qcow2" "$T/after.raw"
debugfs -R "cat new.txt" "$T/after.raw" 2>/dev/null | grep -q "written through vimg" ||
    fail "written file not in the image"

# A partitioned disk: partition 1 at 1 MiB.
truncate -s 64M "$T/disk.raw"
echo 'start=2048, type=83' | sfdisk -q "$T/disk.raw" >/dev/null
mkfs.ext4 -q -F -E offset=1048576 "$T/disk.raw" 60M
qemu-img convert -O qcow2 "$T/disk.raw" "$T/disk.qcow2"
"$VIMG" mount --partition 1 "$T/disk.qcow2" "$mnt"
mountpoint -q "$mnt" || fail "partition 1 not mounted"
"$VIMG" umount "$mnt"
no_leftovers
# A step that fails undoes the ones before it.
expect_status 1 "$VIMG" mount --partition 7 "$T/disk.qcow2" "$mnt"
grep -q 'no partition 7' "$T/err" || fail "$(cat "$T/err")"
no_leftovers
expect_status 1 "$VIMG" mount "$T/disk.qcow2" "$mnt"   # no file system
no_leftovers
mountpoint -q "$mnt" && fail "mounted after a failure"
exit 0
