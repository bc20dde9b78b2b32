# Safety on rbd: images, on a one-node Ceph cluster of the test's own.
# An image another client has open for writing (a VM, qemu-io, rbd map)
# is not written, as a file another process holds is not: librbd's
# exclusive lock only takes turns between writers. A convert into a new
# image stopped by Ctrl-C or kill leaves no hidden half-made image in the
# pool and still dies of the signal.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/ceph.inc"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io nbdkit mkfifo
requires_qemu_rbd
ceph_start

qemu-img create -q -f qcow2 "$T/src.qcow2" 16M
qemu-io -f qcow2 -c 'write -P 0x5a 1M 1M' "$T/src.qcow2" > /dev/null
rbd create --size 16M rbd/busy

# qemu-io holds the image for writing while its commands wait on a FIFO.
mkfifo "$T/cmds"
qemu-io -f raw rbd:rbd/busy < "$T/cmds" > /dev/null 2>&1 & holder=$!
exec 3> "$T/cmds"
release() { exec 3>&-; wait "$holder" 2>/dev/null || true; }
on_exit release
i=0
while [ "$(rbd status --format json rbd/busy | grep -o '"address"' | wc -l)" -lt 1 ]; do
    i=$((i + 1)); [ $i -lt 100 ] || fail "qemu-io never opened the image"
    sleep 0.1
done
before=$(rbd_sha rbd/busy)
expect_status 1 "$VIMG" convert -n -O raw "$T/src.qcow2" rbd:rbd/busy
grep -q '^vimg: rbd:rbd/busy: Failed to get "write" lock' "$T/err" ||
    fail "writing an image in use: $(cat "$T/err")"
[ "$(rbd_sha rbd/busy)" = "$before" ] || fail "the image in use was changed"
expect_status 1 "$VIMG" resize -f raw rbd:rbd/busy 32M
grep -q 'Failed to get "write" lock' "$T/err" || fail "resize: $(cat "$T/err")"
# Readers share it.
"$VIMG" info rbd:rbd/busy | grep -q '^virtual size: 16 MiB' || fail "info of an image in use"
"$VIMG" compare -q rbd:rbd/busy rbd:rbd/busy || fail "compare of an image in use"
release
"$VIMG" convert -n -O raw "$T/src.qcow2" rbd:rbd/busy
"$VIMG" compare -q rbd:rbd/busy "$T/src.qcow2" || fail "write once released"

# A slow source (nbdkit's delay filter) keeps the convert running while it
# is interrupted, after the hidden image has appeared.
kserve "$T/slow.sock" --filter=delay pattern size=256M rdelay=200ms
for sig in INT:2 TERM:15; do
    num=${sig#*:}; sig=${sig%:*}
    # A background job of a script starts with SIGINT ignored: undo that.
    python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' \
        "$VIMG" convert -f raw -O raw "$(uri "$T/slow.sock")" rbd:rbd/sig & pid=$!
    i=0
    until rbd ls rbd | grep -q '^\.sig\.vimg-'; do
        i=$((i + 1)); [ $i -lt 200 ] || fail "no hidden image appeared"
        sleep 0.1
    done
    kill -"$sig" "$pid"
    set +e; wait "$pid"; st=$?; set -e
    [ "$st" -eq $((128 + num)) ] ||
        fail "SIG$sig: exit status $st, not death by the signal"
    left=$(rbd ls rbd | grep 'sig' || true)
    [ -z "$left" ] || fail "SIG$sig left images behind: $left"
done
echo PASS
