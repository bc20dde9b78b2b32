#!/bin/sh
# `check` and the dirty-bit repair of a read-write open use memory for what
# an image references, not for its file's apparent size: a 512-byte-cluster
# qcow2 of a few hundred KiB truncated to 1000 GiB (qemu-img check needs
# 4 GB for it) is checked and repaired in under 64 MiB, with qemu-img's
# counts (taken on a copy truncated to 20 GiB: the tail is unreferenced).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# An address-space limit stops a regression from taking gigabytes (it fails
# with "out of memory" instead); ASan reserves terabytes, so not there.
asan=false
ldd "$VIMG" 2>/dev/null | grep -q asan && asan=true
have_time=false
[ -x /usr/bin/time ] && have_time=true

# bounded STATUS ARGS...: vimg ARGS exits STATUS with a peak RSS < 64 MiB;
# stdout in $T/out, stderr in $T/err.
bounded() {
    want=$1; shift
    set +e
    (
        $asan || ulimit -v 262144
        if $have_time; then
            exec /usr/bin/time -f %M -o "$T/rss" "$VIMG" "$@"
        fi
        exec "$VIMG" "$@"
    ) >"$T/out" 2>"$T/err"
    got=$?
    set -e
    [ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2
        fail "vimg $* exited $got, expected $want"; }
    if $have_time && ! $asan; then
        rss=$(tail -n 1 "$T/rss")
        [ "$rss" -lt 65536 ] || fail "vimg $* peaked at $rss KiB"
    fi
}

fields="corruptions leaks check-errors corruptions-fixed leaks-fixed
image-end-offset total-clusters allocated-clusters fragmented-clusters"

# A leaked cluster (refcount 2 for one reference) gives nonzero counts.
qemu-img create -q -f qcow2 -o cluster_size=512 "$T/a.qcow2" 64M
qemu-io -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 4k' \
    -c 'write -P 0x33 32M 512' "$T/a.qcow2" >/dev/null
damage "$T/a.qcow2" leak-used
cp "$T/a.qcow2" "$T/q.qcow2"
truncate -s 20G "$T/q.qcow2"
truncate -s 1000G "$T/a.qcow2"

set +e
qemu-img check --output=json "$T/q.qcow2" > "$T/q.json" 2>/dev/null
qs=$?
set -e
bounded "$qs" check --output=json "$T/a.qcow2"
cp "$T/out" "$T/v.json"
# shellcheck disable=SC2086
json_diff "$T/q.json" "$T/v.json" --null0 $fields ||
    fail "check counts differ (qemu-img != vimg)"

set +e
qemu-img check -r all --output=json "$T/q.qcow2" > "$T/q.json" 2>/dev/null
qs=$?
set -e
bounded "$qs" check -r all --output=json "$T/a.qcow2"
cp "$T/out" "$T/v.json"
# shellcheck disable=SC2086
json_diff "$T/q.json" "$T/v.json" --null0 $fields ||
    fail "check -r all counts differ (qemu-img != vimg)"
truncate -s 20G "$T/a.qcow2"
qemu_clean "$T/a.qcow2"

# Lazy refcounts left dirty with refcounts lost: opening read-write
# repairs it (through a rebuild of the refcount structure).
qemu-img create -q -f qcow2 -o cluster_size=512,lazy_refcounts=on \
    "$T/d.qcow2" 64M
qemu-io -c 'write -P 0x11 0 64k' -c 'write -P 0x22 1M 4k' \
    -c 'write -P 0x33 32M 512' "$T/d.qcow2" >/dev/null
good=$(qemu_sha "$T/d.qcow2" qcow2)
"$PY" - "$T/d.qcow2" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b'); b = f.read()
inc = struct.unpack_from('>Q', b, 72)[0]
f.seek(72); f.write(struct.pack('>Q', inc | 1))          # dirty bit
rt = struct.unpack_from('>Q', b, 48)[0]
rb = struct.unpack_from('>Q', b, rt)[0]
f.seek(rb + 2 * 20); f.write(bytes(2 * 40))               # refcounts lost
PY
truncate -s 1000G "$T/d.qcow2"
bounded 0 resize "$T/d.qcow2" 65M
truncate -s 20G "$T/d.qcow2"
qemu_clean "$T/d.qcow2"
qemu-img info --output=json "$T/d.qcow2" > "$T/i.json"
[ "$(json_get "$T/i.json" dirty-flag)" = false ] || fail "still dirty"
[ "$(json_get "$T/i.json" virtual-size)" = $((65 << 20)) ] ||
    fail "not resized"
qemu-img resize -q --shrink "$T/d.qcow2" 64M
[ "$(qemu_sha "$T/d.qcow2" qcow2)" = "$good" ] || fail "repair changed data"
$have_time || echo "note: /usr/bin/time missing, only the address-space bound"
