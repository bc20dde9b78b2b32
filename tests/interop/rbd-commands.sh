# Every command on rbd: images, on a one-node Ceph cluster of the test's
# own: compare, measure and snapshots (read-only) as qemu-img has them,
# resize, serve (writes through NBD land in the cluster), namespaces, name
# options (conf=, id=, any Ceph option, backslash escapes), errors that
# name the image, a failed create that leaves no image behind, and the
# open policy: a backing file named rbd:... in image metadata is refused
# though qemu-img follows it.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/ceph.inc"
. "$(dirname "$0")/nbd.inc"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io
requires_qemu_rbd
ceph_start

qemu-img create -q -f qcow2 "$T/src.qcow2" 64M
qemu-io -f qcow2 -c 'write -P 0x11 1M 2M' -c 'write -P 0x22 40M 64k' \
    "$T/src.qcow2" > /dev/null
qemu-img convert -O raw "$T/src.qcow2" "$T/src.raw"
src_sha=$(sha256sum < "$T/src.raw" | cut -d' ' -f1)
"$VIMG" convert -O raw "$T/src.qcow2" rbd:rbd/v

# compare and measure answer as qemu-img does.
"$VIMG" compare -q rbd:rbd/v "$T/src.qcow2" || fail "compare with the source"
qemu-img convert -O raw "$T/src.qcow2" rbd:rbd/w
qemu-io -f raw -c 'write -P 0x33 50M 4k' rbd:rbd/w > /dev/null
expect_status 1 "$VIMG" compare rbd:rbd/v rbd:rbd/w
mv "$T/out" "$T/vcmp"
expect_status 1 qemu-img compare rbd:rbd/v rbd:rbd/w
diff "$T/out" "$T/vcmp" || fail "compare's message differs from qemu-img's"
"$VIMG" measure --output=json -O qcow2 rbd:rbd/v > "$T/vmeasure"
qemu-img measure --output=json -O qcow2 rbd:rbd/v > "$T/qmeasure"
json_diff "$T/qmeasure" "$T/vmeasure" required fully-allocated ||
    fail "measure differs from qemu-img's"

# serve --fork: the child opens the image itself (librados's threads do
# not survive a fork; a server forked after opening it hung).
stop_forked() {
    [ -s "$T/serve.pid" ] || return 0
    p=$(cat "$T/serve.pid"); rm -f "$T/serve.pid"
    kill "$p" 2>/dev/null || return 0
    i=0
    while kill -0 "$p" 2>/dev/null && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL "$p" 2>/dev/null || true
}
on_exit stop_forked
"$VIMG" serve --fork --pid-file "$T/serve.pid" -r -t -k "$T/f.sock" -f raw rbd:rbd/v
timeout 60 qemu-img compare -q -f raw -F raw "$(uri "$T/f.sock")" "$T/src.raw" ||
    fail "serve --fork"
stop_forked
expect_status 1 "$VIMG" serve --fork -r -k "$T/g.sock" -f raw rbd:rbd/nope
grep -q "no image 'nope'" "$T/err" || fail "serve --fork: $(cat "$T/err")"

# Snapshots open read-only and keep their bytes.
rbd snap create rbd/w@before 2>/dev/null
"$VIMG" convert -n -O raw "$T/src.qcow2" rbd:rbd/w
[ "$(rbd_sha rbd/w)" = "$src_sha" ] || fail "-n into an image with a snapshot"
qemu-img convert -O raw rbd:rbd/w@before "$T/q-before.raw"
"$VIMG" convert -O raw rbd:rbd/w@before "$T/v-before.raw"
cmp "$T/q-before.raw" "$T/v-before.raw" || fail "snapshot bytes"
! cmp -s "$T/src.raw" "$T/v-before.raw" || fail "the snapshot shows the head"
expect_status 1 "$VIMG" convert -n -O raw "$T/src.qcow2" rbd:rbd/w@before
grep -q "rbd:rbd/w@before: snapshot 'before' is read-only" "$T/err" ||
    fail "writing a snapshot: $(cat "$T/err")"
"$VIMG" info rbd:rbd/w@before | grep -q '^virtual size: 64 MiB' || fail "info of a snapshot"

# resize grows and, with --shrink, shrinks the image.
"$VIMG" resize -q -f raw rbd:rbd/w 96M
rbd info --format json rbd/w | grep -q '"size":100663296' || fail "resize +"
"$VIMG" resize -q -f raw --shrink rbd:rbd/w 48M
rbd info --format json rbd/w | grep -q '"size":50331648' || fail "resize -"

# serve: NBD clients read the image and their writes reach the cluster.
rbd create --size 64M rbd/s
vserve "$T/s.sock" -t --discard=unmap -f raw rbd:rbd/s
u=$(uri "$T/s.sock")
qemu-img convert -n -O raw "$T/src.qcow2" "$u"
# Data, thick zeros, and a discard of one whole object (librbd drops it).
ops="-c 'write -P 0x44 8M 64k' -c 'write -z 1M 1M' -c 'write -P 0x45 16M 4M' -c 'discard 16M 4M'"
eval qemu-io -f raw "$ops" "$u" > /dev/null
eval qemu-io -f raw "$ops" "$T/src.raw" > /dev/null
qemu-img compare -q -f raw -F raw "$u" "$T/src.raw" || fail "serve: reads"
stop_servers
[ "$(rbd_sha rbd/s)" = "$(sha256sum < "$T/src.raw" | cut -d' ' -f1)" ] ||
    fail "serve: writes did not reach the cluster"

# Namespaces.
rbd namespace create rbd/ns1
"$VIMG" convert -O raw "$T/src.qcow2" rbd:rbd/ns1/img
[ "$(rbd_sha rbd/ns1/img)" = "$(qemu_sha rbd:rbd/ns1/img raw)" ] || fail "namespace"
! rbd ls rbd | grep -q img || fail "the namespace's image is in the pool's root"

# Name options: conf= and id= without $CEPH_CONF; any Ceph option, with
# backslash escapes (the monitor's address), as qemu-img takes them.
conf=$CEPH_CONF
env -u CEPH_CONF "$VIMG" info "rbd:rbd/v:conf=$conf:id=admin" > /dev/null ||
    fail "conf= and id="
mon=$(sed -n 's/^mon host = \[v2:\(.*\)\]$/\1/p' "$conf" | sed 's/:/\\:/g')
name="rbd:rbd/v:mon_host=[v2\\:$mon]:auth_client_required=none"
env -u CEPH_CONF "$VIMG" info --output=json "$name" > "$T/vi" ||
    fail "mon_host= with escapes"
env -u CEPH_CONF qemu-img info --output=json "$name" > "$T/qi" ||
    fail "qemu-img with the same name"
json_diff "$T/qi" "$T/vi" virtual-size cluster-size || fail "info by mon_host="
expect_status 1 "$VIMG" info rbd:rbd/v:no_such_option=1
grep -q 'rbd:rbd/v:no_such_option=1: Ceph option no_such_option=1: no such option' \
    "$T/err" || fail "unknown option: $(cat "$T/err")"
# --image-opts with QEMU's rbd keys, bare or under a format.
"$VIMG" --image-opts info --output=json driver=rbd,pool=rbd,image=v > "$T/vi"
qemu-img info --output=json --image-opts driver=rbd,pool=rbd,image=v > "$T/qi"
json_diff "$T/qi" "$T/vi" virtual-size cluster-size || fail "--image-opts info"
"$VIMG" --image-opts compare -q "driver=raw,file.driver=rbd,file.pool=rbd,file.image=w,file.snapshot=before,file.conf=$conf" \
    "driver=qcow2,file.filename=$T/v-before.raw" 2>/dev/null && fail "compare: a raw file as qcow2"
"$VIMG" --image-opts compare -q "driver=raw,file.driver=rbd,file.pool=rbd,file.image=w,file.snapshot=before,file.conf=$conf" \
    "driver=raw,file.filename=$T/v-before.raw" || fail "--image-opts file.driver=rbd"
rbd create --size 1M 'rbd/a:b'
"$VIMG" info 'rbd:rbd/a\:b' | grep -q '^virtual size: 1 MiB' || fail "escaped image name"

# Errors name the image; a failed create leaves no image behind.
expect_status 1 "$VIMG" info rbd:rbd/nope
grep -q "^vimg: rbd:rbd/nope: no image 'nope' in pool 'rbd'" "$T/err" || fail "$(cat "$T/err")"
expect_status 1 "$VIMG" info rbd:nopool/x
grep -q "^vimg: rbd:nopool/x: cannot open pool 'nopool'" "$T/err" || fail "$(cat "$T/err")"
expect_status 1 "$VIMG" convert -O raw "$T/src.qcow2" rbd:rbd/v
grep -q "rbd:rbd/v: the image exists already" "$T/err" || fail "$(cat "$T/err")"
[ "$(rbd_sha rbd/v)" = "$src_sha" ] || fail "an existing image was touched"
expect_status 1 "$VIMG" convert -O qcow2 -o cluster_size=4M "$T/src.qcow2" rbd:rbd/bad
! rbd ls | grep -q 'bad' || fail "a failed create left $(rbd ls | grep bad)"

# The open policy: only the command line names a cluster. qemu-img
# follows a backing file named rbd:...; vimg refuses it.
qemu-img create -q -f qcow2 -b rbd:rbd/v -F raw "$T/top.qcow2"
[ "$(qemu_sha "$T/top.qcow2" qcow2)" = "$src_sha" ] || fail "qemu-img's view of top"
expect_status 1 "$VIMG" convert -O raw "$T/top.qcow2" "$T/x.raw"
grep -q "refers to 'rbd:rbd/v', a protocol or json: name" "$T/err" ||
    fail "convert: $(cat "$T/err")"
expect_status 2 "$VIMG" compare "$T/top.qcow2" rbd:rbd/v
grep -q "refers to 'rbd:rbd/v', a protocol or json: name" "$T/err" ||
    fail "compare: $(cat "$T/err")"
# info opens no backing file: it names it.
"$VIMG" info "$T/top.qcow2" | grep -q '^backing file: rbd:rbd/v$' ||
    fail "info names the backing file"
exit 0
