#!/bin/sh
# Upgrading a compat=0.10 image with internal snapshots whose table
# entries lack the extra data version 3 requires (written by QEMU before
# 1.1: no VM state size of 64 bits, no disk size): vimg amend -o
# compat=1.1 rewrites the table first, as qemu-img amend does. Both
# tools' results check clean, list the same snapshots, and every
# snapshot reads as before; the downgrade back keeps them too (qemu-img
# allows it while each snapshot has the current disk size).
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

# strip IMG EXTRA: rewrite the snapshot table in place with EXTRA bytes of
# extra data per entry (0 or 8: what old QEMU wrote), the rest as it was.
strip() {
    "$PY" - "$1" "$2" <<'PYEOF'
import struct, sys
path, keep = sys.argv[1], int(sys.argv[2])
f = open(path, "r+b")
h = f.read(72)
nb, off = struct.unpack(">IQ", h[60:72])
f.seek(off)
raw = f.read(65536)
out, p = b"", 0
for _ in range(nb):
    fixed = bytearray(raw[p:p + 40])
    idl, namel = struct.unpack(">HH", fixed[12:16])
    extra = struct.unpack(">I", fixed[36:40])[0]
    names = raw[p + 40 + extra:p + 40 + extra + idl + namel]
    fixed[36:40] = struct.pack(">I", keep)
    e = bytes(fixed) + raw[p + 40:p + 40 + keep] + names
    out += e + b"\0" * (-len(e) % 8)
    p += 40 + extra + idl + namel
    p += -p % 8
f.seek(off)
f.write(out + b"\0" * (p - len(out)))
PYEOF
}

# snaps IMG: the snapshot table as qemu-img lists it.
snaps() { qemu-img snapshot -U -l "$1" | tail -n +3; }

# snap_shas IMG: each snapshot's guest bytes.
snap_shas() {
    for s in s1 s2 s3; do
        qemu-img convert -U -f qcow2 -l snapshot.name=$s -O raw "$1" \
            "$T/.s.raw"
        echo "$s $(sha256sum < "$T/.s.raw" | cut -d' ' -f1)"
    done
    rm -f "$T/.s.raw"
}

io() { qemu-io -f qcow2 "$@" "$T/old.qcow2" > /dev/null; }
qemu-img create -q -f qcow2 -o compat=0.10,cluster_size=4k "$T/old.qcow2" 4M
io -c 'write -P 1 0 1M'
qemu-img snapshot -c s1 "$T/old.qcow2"
io -c 'write -P 2 64k 128k' -c 'write -z 1M 64k'
qemu-img snapshot -c s2 "$T/old.qcow2"
io -c 'write -P 3 2M 512k' -c 'discard 0 64k'
qemu-img snapshot -c s3 "$T/old.qcow2"
io -c 'write -P 4 3M 4k'

for keep in 0 8; do
    cp "$T/old.qcow2" "$T/a.qcow2"
    strip "$T/a.qcow2" $keep
    qemu_clean "$T/a.qcow2"
    snaps "$T/a.qcow2" > "$T/list.before"
    snap_shas "$T/a.qcow2" > "$T/shas.before"
    active=$(qemu_sha "$T/a.qcow2" qcow2)
    cp "$T/a.qcow2" "$T/q.qcow2"
    cp "$T/a.qcow2" "$T/v.qcow2"
    qemu-img amend -o compat=1.1 "$T/q.qcow2"
    "$VIMG" amend -o compat=1.1 "$T/v.qcow2" ||
        fail "extra=$keep: vimg amend refused the upgrade"
    for x in q v; do
        qemu_clean "$T/$x.qcow2"
        qemu-img info -U "$T/$x.qcow2" | grep -q '^    compat: 1.1$' ||
            fail "extra=$keep: $x is not compat 1.1"
        snaps "$T/$x.qcow2" > "$T/list.$x"
        cmp -s "$T/list.before" "$T/list.$x" ||
            fail "extra=$keep: $x lists other snapshots: $(cat "$T/list.$x")"
        snap_shas "$T/$x.qcow2" > "$T/shas.$x"
        cmp -s "$T/shas.before" "$T/shas.$x" ||
            fail "extra=$keep: a snapshot of $x reads differently"
        [ "$(qemu_sha "$T/$x.qcow2" qcow2)" = "$active" ] ||
            fail "extra=$keep: the active disk of $x changed"
    done
    # Every entry now has the v3 extra data, as qemu-img's does.
    for x in q v; do
        "$PY" - "$T/$x.qcow2" <<'PYEOF' || fail "extra=$keep: $x: short entry"
import struct, sys
f = open(sys.argv[1], "rb").read()
nb, p = struct.unpack(">IQ", f[60:72])
for _ in range(nb):
    idl, namel = struct.unpack(">HH", f[p + 12:p + 16])
    extra = struct.unpack(">I", f[p + 36:p + 40])[0]
    assert extra >= 16, extra
    p += 40 + extra + idl + namel
    p += -p % 8
PYEOF
    done
    qemu-img info -U --output=json "$T/q.qcow2" > "$T/q.json"
    qemu-img info -U --output=json "$T/v.qcow2" > "$T/v.json"
    json_diff "$T/q.json" "$T/v.json" snapshots format-specific.data.compat ||
        fail "extra=$keep: the upgraded tables differ"
    # And back: both tools downgrade it with its snapshots.
    cp "$T/v.qcow2" "$T/q.qcow2"
    qemu-img amend -o compat=0.10 "$T/q.qcow2"
    "$VIMG" amend -o compat=0.10 "$T/v.qcow2"
    for x in q v; do
        qemu_clean "$T/$x.qcow2"
        qemu-img info -U "$T/$x.qcow2" | grep -q '^    compat: 0.10$' ||
            fail "extra=$keep: $x is not compat 0.10 after the downgrade"
        snap_shas "$T/$x.qcow2" > "$T/shas.$x"
        cmp -s "$T/shas.before" "$T/shas.$x" ||
            fail "extra=$keep: a snapshot of $x changed in the downgrade"
    done
done

# A compat=1.1 image whose entries lack that extra data is damaged:
# qemu-img check counts one corruption per entry, and so does vimg, with
# the same lines; vimg check -r all writes the table anew, and the result
# checks clean with every snapshot as it was.
qemu-img create -q -f qcow2 -o cluster_size=4k "$T/v3.qcow2" 4M
qemu-io -f qcow2 -c 'write -P 7 0 256k' "$T/v3.qcow2" > /dev/null
qemu-img snapshot -c s1 "$T/v3.qcow2"
qemu-img snapshot -c s2 "$T/v3.qcow2"
qemu-img snapshot -c s3 "$T/v3.qcow2"
snap_shas "$T/v3.qcow2" > "$T/shas.v3"
strip "$T/v3.qcow2" 0
expect_status 2 qemu-img check "$T/v3.qcow2"
cat "$T/out" "$T/err" | grep 'incomplete' > "$T/q.incomplete" || true
expect_status 2 "$VIMG" check "$T/v3.qcow2"
cat "$T/out" "$T/err" | grep 'incomplete' > "$T/v.incomplete" || true
[ "$(wc -l < "$T/v.incomplete")" -eq 3 ] &&
    cmp -s "$T/q.incomplete" "$T/v.incomplete" ||
    fail "check of short v3 entries: $(cat "$T/out")"
"$VIMG" check -q -r all "$T/v3.qcow2" > /dev/null
qemu_clean "$T/v3.qcow2"
snap_shas "$T/v3.qcow2" | cmp -s "$T/shas.v3" - ||
    fail "a snapshot changed in the repair of short v3 entries"
echo ok
