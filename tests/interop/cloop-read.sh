#!/bin/sh
# cloop images made by create_compressed_fs (random data, zeros and a tail
# that is not a whole block) read by vimg exactly as qemu-img and
# extract_compressed_fs read them: guest sha256, info, map, compare,
# probing, two block sizes. Writes are refused with one line.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/readonly.inc"
requires qemu-img create_compressed_fs extract_compressed_fs

"$PY" - "$T/src.raw" <<'PY'
import random, sys
r = random.Random(15)
d = bytearray(3 << 20 | 12345)
for off, n in ((0, 70000), (1 << 20, 512), ((2 << 20) + 100, 200000)):
    d[off:off + n] = r.randbytes(n)
d[-1000:] = b'tail' * 250
open(sys.argv[1], 'wb').write(d)
PY

for bs in 65536 4096; do
    img=$T/c$bs.cloop
    create_compressed_fs -q -B $bs "$T/src.raw" "$img" >/dev/null 2>&1 ||
        fail "create_compressed_fs -B $bs failed"
    rm -f "$T/x.raw" # it does not truncate an existing file
    extract_compressed_fs "$img" "$T/x.raw" >/dev/null 2>&1 ||
        fail "extract_compressed_fs failed"
    want=$(sha256sum < "$T/x.raw" | cut -d' ' -f1)
    # The last block is padded with zeros to a whole block.
    cmp -s -n "$(stat -c %s "$T/src.raw")" "$T/x.raw" "$T/src.raw" ||
        fail "extract_compressed_fs disagrees with the source"
    [ "$(qemu_sha "$img" cloop)" = "$want" ] || fail "qemu-img misreads $img"
    [ "$(vimg_sha "$img" cloop)" = "$want" ] || fail "vimg misreads $img"
    "$VIMG" convert -O raw "$img" "$T/p.raw" # probed, not named
    cmp -s "$T/p.raw" "$T/x.raw" || fail "probed $img reads differently"
    like_qemu "$img"
    expect_status 0 "$VIMG" compare "$img" "$T/x.raw"
done

refuses_writes "$img" cloop
