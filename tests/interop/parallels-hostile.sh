#!/bin/sh
# Damaged and lying Parallels images: each is refused with one line naming
# the file and the problem, exit 1, quickly and within 128 MiB of address
# space. Damage qemu-img check reports (an entry past the end of the file,
# space leaked, an image left in use) vimg check reports in the same
# words, with the same exit code, and check -r all repairs it; clusters
# sharing bytes of the file (which qemu-img 7.2 does not look for) are
# reported and given clusters of their own.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

good=$T/good.hdd
qemu-img create -q -f parallels -o cluster_size=64k "$good" 1M
qemu-io -f parallels -c 'write -P 0x11 0 1k' -c 'write -P 0x22 256k 1k' \
    -c 'write -P 0x33 512k 1k' "$good" >/dev/null

damage() { # KIND OUT
    "$PY" - "$good" "$2" "$1" <<'PY'
import struct, sys
src, out, kind = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
def le32(off, v): struct.pack_into('<I', b, off, v)
bat = 64
if kind == 'magic': b[0:4] = b'Nope'
elif kind == 'version': le32(16, 3)
elif kind == 'tracks-zero': le32(28, 0)
elif kind == 'tracks-huge': le32(28, 0x7fffffff)
elif kind == 'bat-huge': le32(32, 0xffffffff)
elif kind == 'bat-eof': le32(32, 1 << 24)
elif kind == 'size-huge': struct.pack_into('<Q', b, 36, 1 << 62)
elif kind == 'inuse': le32(44, 0x12345678)
elif kind == 'data-overlap': le32(32, 400); le32(48, 1)
elif kind == 'data-eof': le32(48, 1 << 30)
elif kind == 'entry-eof': le32(bat + 4 * 12, 100)
elif kind == 'entry-header':
    # Only the old magic (entries in sectors) can name the header.
    b[0:16] = b'WithoutFreeSpace'
    for i in range(16):
        e = struct.unpack_from('<I', b, bat + 4 * i)[0]
        le32(bat + 4 * i, e * 128)
    le32(bat + 4 * 4, 1)
elif kind == 'truncated': del b[len(b) - 4096:]
elif kind == 'tiny': del b[40:]
elif kind == 'bat-cut': del b[64 + 8:]
elif kind == 'leak': b += b'\x5a' * 3000
elif kind == 'unclean': le32(44, 0x746f6e59)
elif kind == 'shared':
    le32(bat + 4 * 8, struct.unpack_from('<I', b, bat + 4 * 4)[0])
else: sys.exit('unknown damage ' + kind)
open(out, 'wb').write(b)
PY
}

refused() { # KIND WORD
    damage "$1" "$T/bad.hdd"
    set +e
    (ulimit -v 131072; "$VIMG" convert -f parallels -O raw "$T/bad.hdd" \
        "$T/out.raw") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc: $(cat "$T/err")"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$1: not one line: $(cat "$T/err")"
    grep -q "^vimg: $T/bad.hdd: .*$2" "$T/err" ||
        fail "$1: message lacks '$2': $(cat "$T/err")"
}

refused magic 'bad magic'
refused version 'version 3'
refused tracks-zero 'cluster size of 0 sectors'
refused tracks-huge 'cluster size of 2147483647 sectors'
refused bat-huge 'BAT is too large'
refused bat-eof 'BAT (16777216 entries) lies past the end of the file'
refused size-huge 'too small for the disk size'
refused inuse 'in-use flag 0x12345678'
refused data-eof 'lies past the end of the file'
refused entry-eof 'BAT entry 12 points at 0x640000, past the end'
refused entry-header 'BAT entry 4 points at 0x200, into the header'
refused truncated 'past the end of the file'
refused tiny 'too small'
refused bat-cut 'BAT (16 entries) lies past the end of the file'
refused data-overlap 'data area at 0x200 overlaps the BAT'

# Check-level damage: the same report as qemu-img check, then repaired.
for kind in entry-eof leak unclean; do
    damage $kind "$T/bad.hdd"
    set +e
    qemu-img check -f parallels "$T/bad.hdd" > "$T/q.out" 2>&1; qrc=$?
    "$VIMG" check -f parallels "$T/bad.hdd" > "$T/v.out" 2>&1; vrc=$?
    set -e
    [ "$qrc" = "$vrc" ] || fail "check $kind: exit $vrc, qemu-img $qrc"
    sed 's/^qemu-img: //' "$T/q.out" | sort > "$T/q.sorted"
    sed 's/^vimg: //' "$T/v.out" | sort > "$T/v.sorted"
    diff "$T/q.sorted" "$T/v.sorted" >&2 || fail "check $kind output differs"
    "$VIMG" check -r all -f parallels "$T/bad.hdd" > /dev/null 2>&1 ||
        fail "check -r all $kind"
    qemu-img check -q -f parallels "$T/bad.hdd" ||
        fail "check -r all $kind: qemu-img still finds damage"
done

# Two entries naming one cluster: reported, then each given its own.
damage shared "$T/bad.hdd"
before=$(qemu_sha "$T/bad.hdd" parallels)
expect_status 2 "$VIMG" check -f parallels "$T/bad.hdd"
grep -q 'ERROR cluster 8 overlaps cluster 4 in the file' "$T/err" ||
    fail "shared: $(cat "$T/err")"
expect_status 0 "$VIMG" check -r all -f parallels "$T/bad.hdd"
qemu-img check -q -f parallels "$T/bad.hdd" || fail "shared: qemu-img check"
[ "$(qemu_sha "$T/bad.hdd" parallels)" = "$before" ] ||
    fail "shared: the repair changed guest data"

# A BAT at the cap (16 Mi entries, 64 MiB, a sparse file) is read and
# checked within the same 128 MiB of address space; one entry more is
# refused before anything is allocated.
cap() { # ENTRIES OUT
    "$PY" - "$@" <<'PY'
import struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
h = bytearray(64)
h[0:16] = b'WithouFreSpacExt'
data = (64 + 4 * n + 511) // 512
struct.pack_into('<IIIIIQII', h, 16, 2, 16, 0, 1, n, n, 0, data)
with open(out, 'wb') as f:
    f.write(h)
    f.truncate(data * 512)
PY
}
cap $((16 << 20)) "$T/cap.hdd"
(ulimit -v 131072; "$VIMG" check -f parallels "$T/cap.hdd" >/dev/null) ||
    fail "a BAT at the cap does not fit in 128 MiB"
cap $(((16 << 20) + 1)) "$T/cap.hdd"
set +e
(ulimit -v 131072; "$VIMG" info -f parallels "$T/cap.hdd") >/dev/null 2>"$T/err"
rc=$?
set -e
[ "$rc" = 1 ] && grep -q 'BAT is too large (16777217 entries' "$T/err" ||
    fail "past the cap: exit $rc: $(cat "$T/err")"
