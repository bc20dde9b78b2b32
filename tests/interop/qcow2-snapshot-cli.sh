#!/bin/sh
# vimg snapshot answers as qemu-img snapshot: exit codes and messages for
# every action and mistake, IDs numbered the same way (duplicate names
# allowed), -a looking up IDs before names and -d names before IDs, the
# JSON list equal to info's "snapshots", and refcount_bits=1 (no room for
# a second reference) refused without changing the image.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# same TOOL-ARGS...: qemu-img and vimg exit alike and print the same
# (stderr with the program name and qemu-img's "Try ..." hint taken
# out), each on a copy of $T/base.
same() {
    cp "$T/base.qcow2" "$T/q.qcow2"
    cp "$T/base.qcow2" "$T/v.qcow2"
    set +e
    qemu-img snapshot "$@" "$T/q.qcow2" > "$T/q.out" 2> "$T/q.err"
    qr=$?
    "$VIMG" snapshot "$@" "$T/v.qcow2" > "$T/v.out" 2> "$T/v.err"
    vr=$?
    set -e
    [ "$qr" = "$vr" ] || { cat "$T/q.err" "$T/v.err" >&2;
                           fail "snapshot $*: exit $vr, qemu-img $qr"; }
    sed -e 's/^qemu-img: //' -e "s|$T/q.qcow2|IMG|g" -e '/^Try /d' \
        "$T/q.err" > "$T/q.e"
    sed -e 's/^vimg: //' -e "s|$T/v.qcow2|IMG|g" "$T/v.err" > "$T/v.e"
    diff "$T/q.e" "$T/v.e" >&2 || fail "snapshot $*: messages differ"
    diff "$T/q.out" "$T/v.out" >&2 || fail "snapshot $*: output differs"
    [ "$(qemu_sha "$T/q.qcow2" qcow2)" = "$(qemu_sha "$T/v.qcow2" qcow2)" ] ||
        fail "snapshot $*: contents differ"
    qemu-img snapshot -l "$T/q.qcow2" | cut -c1-36 > "$T/q.list"
    qemu-img snapshot -l "$T/v.qcow2" | cut -c1-36 > "$T/v.list"
    diff "$T/q.list" "$T/v.list" >&2 || fail "snapshot $*: lists differ"
    qemu_clean "$T/v.qcow2"
}

qemu-img create -q -f qcow2 "$T/base.qcow2" 4M
qemu-io -c 'write -P 1 0 1M' "$T/base.qcow2" >/dev/null
same -l
same
same -c first
# Names may repeat, and a name may look like another snapshot's ID.
qemu-img snapshot -c dup "$T/base.qcow2"
qemu-io -c 'write -P 2 0 64k' "$T/base.qcow2" >/dev/null
qemu-img snapshot -c dup "$T/base.qcow2"
qemu-io -c 'write -P 3 0 64k' "$T/base.qcow2" >/dev/null
qemu-img snapshot -c 1 "$T/base.qcow2"
qemu-io -c 'write -P 4 0 64k' "$T/base.qcow2" >/dev/null
same -c dup
same -a dup
same -a 1
same -a 2
same -d 1
same -d dup
same -d 2
same -a nope
same -d nope
same -c ''
same -c a -d b
same -c a -l

# The JSON list is info's "snapshots" array.
"$VIMG" snapshot -l --output=json "$T/base.qcow2" > "$T/v.json"
qemu-img info --output=json "$T/base.qcow2" > "$T/q.json"
"$PY" - "$T/q.json" "$T/v.json" <<'PY' || fail "JSON lists differ"
import json, sys
q = json.load(open(sys.argv[1]))["snapshots"]
v = json.load(open(sys.argv[2]))
sys.exit(0 if q == v and len(v) == 3 else 1)
PY

# A read-only listing does not take the write lock; a change does.
qemu-io -r -c 'sleep 20000' "$T/base.qcow2" & holder=$!
stop_holder() { kill "$holder" 2>/dev/null; }
on_exit stop_holder
sleep 0.5
expect_status 0 "$VIMG" snapshot -U -l "$T/base.qcow2"
expect_status 1 "$VIMG" snapshot -c busy "$T/base.qcow2"
kill $holder; wait $holder 2>/dev/null || true

# One-bit refcounts cannot count a snapshot's second reference: refused
# by both, the image as it was.
qemu-img create -q -f qcow2 -o refcount_bits=1 "$T/rc1.qcow2" 4M
qemu-io -c 'write -P 5 0 1M' "$T/rc1.qcow2" >/dev/null
h=$(qemu_sha "$T/rc1.qcow2" qcow2)
expect_status 1 "$VIMG" snapshot -c s "$T/rc1.qcow2"
grep -q "Could not create snapshot 's':.*exceed 1" "$T/err" ||
    { cat "$T/err" >&2; fail "no reason given"; }
qemu_clean "$T/rc1.qcow2"
[ "$(qemu_sha "$T/rc1.qcow2" qcow2)" = "$h" ] || fail "rc1 image changed"
[ -z "$(qemu-img snapshot -l "$T/rc1.qcow2")" ] || fail "rc1 snapshot made"
expect_status 1 qemu-img snapshot -c s "$T/rc1.qcow2"

# Persistent bitmaps would not know what an apply changes: refused, as
# qemu-img refuses it (even with the bitmap disabled); create and delete
# work.
qemu-img bitmap --add "$T/base.qcow2" b1
same -a dup
same -c withbitmap
! qemu-img info --output=json "$T/v.qcow2" | grep -q in-use ||
    fail "the bitmap was left in use"
qemu-img bitmap --disable "$T/base.qcow2" b1
same -a 1
qemu-img snapshot -c gone "$T/base.qcow2"
same -d gone

# Formats without internal snapshots.
qemu-img create -q -f raw "$T/r.img" 1M
expect_status 1 "$VIMG" snapshot --image-opts -c s \
    driver=raw,file.filename="$T/r.img"
grep -q "Could not create snapshot 's':.*does not support internal snapshots" \
    "$T/err" || { cat "$T/err" >&2; fail "raw -c message"; }
expect_status 1 "$VIMG" snapshot --image-opts -a s \
    driver=raw,file.filename="$T/r.img"
grep -q "Could not apply snapshot 's': Block driver does not support snapshots" \
    "$T/err" || { cat "$T/err" >&2; fail "raw -a message"; }
expect_status 0 "$VIMG" snapshot -l "$T/r.img"
[ ! -s "$T/out" ] || fail "raw image lists snapshots"
echo "PASS"
