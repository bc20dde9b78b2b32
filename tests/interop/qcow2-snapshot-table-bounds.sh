#!/bin/sh
# A snapshot table that starts inside the file but whose entries do not fit
# in it (a count too large, or a truncated file) is reported as running
# past the end, and one that starts past the end as lying past it. (QEMU
# reads the missing part as zeros and lists empty snapshots; vimg refuses
# the image, naming which of the two it is.)
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

img="$T/s.qcow2"
qemu-img create -q -f qcow2 "$img" 16M
qemu-io -c 'write -P 0x11 0 64k' "$img" >/dev/null
qemu-img snapshot -c s1 "$img"
"$VIMG" info --output=json "$img" > "$T/v.json"
[ "$(json_path "$T/v.json" snapshots)" != null ] || fail "no snapshot listed"

# patch FIELD-OFFSET STRUCT-FORMAT VALUE: a header field of a copy.
patch() {
    cp "$img" "$T/bad.qcow2"
    "$PY" - "$T/bad.qcow2" "$@" <<'PY'
import struct, sys
f = open(sys.argv[1], 'r+b')
f.seek(int(sys.argv[2])); f.write(struct.pack(sys.argv[3], int(sys.argv[4])))
PY
}

off=$("$PY" -c 'import struct,sys; print(struct.unpack_from(">Q", open(sys.argv[1],"rb").read(72), 64)[0])' "$img")
hex=$(printf '0x%x' "$off")

patch 60 '>I' 60000                        # nb_snapshots: 2.4 MB of entries
expect_status 1 "$VIMG" info "$T/bad.qcow2"
grep -q "snapshot table at $hex runs past the end of the file" "$T/err" ||
    { cat "$T/err" >&2; fail "count too large: wrong message"; }

cp "$img" "$T/bad.qcow2"
truncate -s $((off + 8)) "$T/bad.qcow2"    # the entry is cut short
expect_status 1 "$VIMG" info "$T/bad.qcow2"
grep -q "snapshot table at $hex runs past the end of the file" "$T/err" ||
    { cat "$T/err" >&2; fail "truncated table: wrong message"; }

patch 64 '>Q' $((1 << 30))                 # snapshots_offset past the end
expect_status 1 "$VIMG" info "$T/bad.qcow2"
grep -q "snapshot table at 0x40000000 lies past the end of the file" \
    "$T/err" || { cat "$T/err" >&2; fail "offset past the end: wrong message"; }
