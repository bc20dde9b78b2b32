#!/bin/sh
# UDIF images (.dmg) made by dmg-make.py (Debian has no DMG writer) read by
# vimg as qemu-img and dmg2img read them: zero, ignore, raw, zlib and bzip2
# chunks, mish blocks in the property list or the resource fork, chunk
# offsets from a mish base. Guest sha256 (vimg = qemu-img = dmg2img = the
# source), info, map, compare; found by its trailer only when named *.dmg.
# LZFSE chunks and writes are refused with one line.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/readonly.inc"
requires qemu-img dmg2img python3
mk() { "$PY" "$(dirname "$0")/dmg-make.py" --chunk 512 "$@"; }

"$PY" - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(15)
k = 1 << 18
d = bytearray(12 * k)
for i in (0, 1, 3, 4, 6, 7, 11):
    d[i * k:i * k + 70000] = r.randbytes(70000)
d[4 * k + 70000:5 * k] = b'text' * (k - 70000 >> 2)
open(sys.argv[1], 'wb').write(d)
PY
src=$(sha256sum < "$T/src.raw" | cut -d' ' -f1)

# qemu-img reads bzip2 chunks only with the dmg-bz2 module, which Debian's
# qemu-block-extra 7.2 does not ship: then it is left out for bzip2.
mk "$T/src.raw" "$T/bz.dmg" --types bzip2
if qemu-img convert -f dmg -O raw "$T/bz.dmg" "$T/q.raw" 2>/dev/null; then
    qemu_bz2=yes
else
    qemu_bz2=no
fi

check_image() { # FILE QEMU(yes|no) DMG2IMG(yes|no)
    [ "$(vimg_sha "$1" dmg)" = "$src" ] || fail "vimg misreads $1"
    "$VIMG" convert -O raw "$1" "$T/p.raw"
    cmp -s "$T/p.raw" "$T/src.raw" || fail "probed $1 reads differently"
    expect_status 0 "$VIMG" compare "$1" "$T/src.raw"
    if [ "$3" = yes ]; then
        rm -f "$T/m.raw"
        dmg2img "$1" "$T/m.raw" >/dev/null 2>&1 || fail "dmg2img failed"
        cmp -s "$T/m.raw" "$T/src.raw" || fail "dmg2img reads $1 otherwise"
    fi
    [ "$2" = yes ] || return 0
    [ "$(qemu_sha "$1" dmg 2>/dev/null)" = "$src" ] ||
        fail "qemu-img misreads $1"
    like_qemu "$1"
}

mk "$T/src.raw" "$T/rz.dmg" --types raw,zlib
check_image "$T/rz.dmg" yes yes
check_image "$T/bz.dmg" $qemu_bz2 yes
mk "$T/src.raw" "$T/all.dmg" --types zlib,bzip2,raw --chunk 77 --parts 3
check_image "$T/all.dmg" $qemu_bz2 yes
mk "$T/src.raw" "$T/base.dmg" --types raw,zlib --mish-base --chunk 300 --parts 3
check_image "$T/base.dmg" yes no
mk "$T/src.raw" "$T/rsrc.dmg" --types raw,zlib --rsrc
check_image "$T/rsrc.dmg" yes yes

# The trailer counts only with a .dmg name (qemu-img knows DMGs by the
# name alone): elsewhere the file is raw to both.
cp "$T/rz.dmg" "$T/rz.img"
"$VIMG" info "$T/rz.img" | grep -qx "file format: raw" ||
    fail "a DMG not named .dmg was not probed as raw"

mk "$T/src.raw" "$T/lz.dmg" --types zlib,lzfse
expect_status 0 "$VIMG" info "$T/lz.dmg"
expect_status 1 "$VIMG" convert -O raw "$T/lz.dmg" "$T/out.raw"
one_line "LZFSE .*cannot decompress"

refuses_writes "$T/rz.dmg" dmg
