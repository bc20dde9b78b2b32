# Secrets for vimg serve and vimg fuse, given as qemu-nbd takes them
# (--object secret, --image-opts): an encrypted qcow2 served with -s (its
# temporary overlay gets the key as backing.encrypt.key-secret) reads in
# qemu-img over NBD as qemu-img reads the file, takes writes without
# changing it; the same image and a luks one as a FUSE view read the same
# bytes. Each part skips alone when its tool is missing.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io

o=encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10
expect_status 0 "$VIMG" create -q -f qcow2 $SEC -o "$o" "$T/e.qcow2" 4M
qemu-io $SEC --image-opts "$(iopts qcow2 "$T/e.qcow2")" \
    -c 'write -P 0x5a 64k 1M' > /dev/null
want=$(qsha qcow2 "$T/e.qcow2")
cp "$T/e.qcow2" "$T/orig.qcow2"

vserve "$T/s.sock" -t -s $SEC --image-opts "$(iopts qcow2 "$T/e.qcow2")"
qemu-img convert -f raw -O raw "$(uri "$T/s.sock")" "$T/nbd.raw"
[ "$(sha_of "$T/nbd.raw")" = "$want" ] || fail "serve -s: bytes differ"
qemu-io -f raw -c 'write -P 0x11 0 4k' "$(uri "$T/s.sock")" > /dev/null ||
    fail "serve -s: write refused"
stop_servers
cmp -s "$T/e.qcow2" "$T/orig.qcow2" || fail "serve -s changed the image"
# Without the key the server does not start, in one line.
expect_status 1 "$VIMG" serve -k "$T/n.sock" -s "$T/e.qcow2" < /dev/null
grep -q 'backing.encrypt.key-secret=ID' "$T/err" ||
    fail "serve -s without key: $(cat "$T/err")"

if ! command -v fusermount3 > /dev/null ||
   ! { [ -c /dev/fuse ] && (: < /dev/fuse) 2>/dev/null; }; then
    echo "SKIP (part): FUSE is not usable here"
    exit 0
fi
view=$T/view
unmount_view() { grep -q " $view fuse" /proc/mounts && fusermount3 -u "$view"; true; }
on_exit unmount_view
qcrypt create -q -f luks $SEC -o key-secret=sec0,iter-time=10 "$T/e.luks" 2M
qemu-io $SEC --image-opts "$(iopts luks "$T/e.luks")" \
    -c 'write -P 0x66 4k 100k' > /dev/null
for img in qcow2:"$T/e.qcow2" luks:"$T/e.luks"; do
    fmt=${img%%:*} f=${img#*:}
    : > "$view"
    expect_status 0 "$VIMG" fuse $SEC --image-opts "$(iopts $fmt "$f")" "$view"
    [ "$(sha_of "$view")" = "$(qsha $fmt "$f")" ] || fail "fuse $fmt: bytes"
    fusermount3 -u "$view"
done
exit 0
