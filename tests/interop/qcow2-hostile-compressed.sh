#!/bin/sh
# A compressed L2 descriptor whose byte span covers the image's own
# metadata (header, refcount table, refcount block, L1, L2) must not make
# an ordinary write free and punch that metadata. vimg refuses the write
# with one line, marks the image corrupt and changes nothing else: the
# file stays a qcow2 whose bytes are unchanged but for the corrupt bit.
# Both the data path (a pattern) and the zero path (a zero source) are
# tried. qemu-io on the same images keeps them qcow2s too.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io python3

yes 'vimg hostile compressed' | head -c 1M > "$T/src.raw"
yes 'pattern!' | head -c 1M > "$T/pattern.raw"
head -c 1M /dev/zero > "$T/zeros.raw"
qemu-img convert -c -f raw -O qcow2 "$T/src.raw" "$T/c.qcow2"
# With a snapshot whose L2 table is no longer shared with the active one.
cp "$T/c.qcow2" "$T/s.qcow2"
qemu-img snapshot -c s1 "$T/s.qcow2"
qemu-io -f qcow2 -c 'write -P 0x33 960k 64k' "$T/s.qcow2" >/dev/null

# hostile SRC DIR WHAT...: DIR/h-WHAT.qcow2 is SRC with guest cluster 0's
# descriptor pointing at WHAT (header, rt, rb, l1, l2, or snapl2: the
# L2 table of the first snapshot), for two clusters' worth of sectors
# over the header (cluster 1 is the refcount table) and one cluster over
# the others.
hostile() {
    python3 - "$@" <<'PYEOF'
import struct, sys
src, out, whats = sys.argv[1], sys.argv[2], sys.argv[3:]
base = open(src, 'rb').read()
cb = struct.unpack_from('>I', base, 20)[0]
l1 = struct.unpack_from('>Q', base, 40)[0]
rt = struct.unpack_from('>Q', base, 48)[0]
rb = struct.unpack_from('>Q', base, rt)[0]
l2 = struct.unpack_from('>Q', base, l1)[0] & 0x00fffffffffffe00
snapl2 = None
if struct.unpack_from('>I', base, 60)[0]:
    sn = struct.unpack_from('>Q', base, 64)[0]
    snl1 = struct.unpack_from('>Q', base, sn)[0]
    snapl2 = struct.unpack_from('>Q', base, snl1)[0] & 0x00fffffffffffe00
    assert snapl2 != l2
x = 62 - (cb - 8)
for what in whats:
    b = bytearray(base)
    host = {'header': 0, 'rt': rt, 'rb': rb, 'l1': l1, 'l2': l2,
            'snapl2': snapl2}[what]
    sectors = (1 << (cb - 8)) if what == 'header' else (1 << (cb - 9))
    struct.pack_into('>Q', b, l2, (1 << 62) | ((sectors - 1) << x) | host)
    open('%s/h-%s.qcow2' % (out, what), 'wb').write(b)
PYEOF
}

# same_but_corrupt_bit DIR IMG...: each IMG (named h-WHAT-SRC.qcow2) has
# the corrupt bit set (bit 1 of the incompatible features at byte 72) and
# equals DIR/h-WHAT.qcow2 once it is cleared.
same_but_corrupt_bit() {
    python3 - "$@" <<'PYEOF'
import os, sys
for p in sys.argv[2:]:
    what = os.path.basename(p).split('-')[1]
    a = open('%s/h-%s.qcow2' % (sys.argv[1], what), 'rb').read()
    b = bytearray(open(p, 'rb').read())
    if not b[79] & 2:
        sys.exit("FAIL: %s: corrupt bit not set" % p)
    b[79] &= ~2
    if bytes(b) != a:
        diff = [i for i in range(min(len(a), len(b))) if a[i] != b[i]][:4]
        sys.exit("FAIL: %s changed: lengths %d/%d, first differences at %s"
                 % (p, len(a), len(b), diff))
PYEOF
}

spans="header rt rb l1 l2 snapl2"
mkdir "$T/orig"
hostile "$T/c.qcow2" "$T/orig" header rt rb l1 l2
hostile "$T/s.qcow2" "$T/orig" snapl2
for what in $spans; do
    for src in pattern zeros; do
        img="$T/h-$what-$src.qcow2"
        cp "$T/orig/h-$what.qcow2" "$img"
        expect_status 1 "$VIMG" convert -n -f raw -O qcow2 \
            "$T/$src.raw" "$img"
        [ "$(wc -l < "$T/err")" = 1 ] ||
            { cat "$T/err"; fail "$what/$src: not one line"; }
        grep -q 'Preventing invalid free of clusters 0x[0-9a-f]*\.\.0x[0-9a-f]* that overlap with' "$T/err" ||
            { cat "$T/err"; fail "$what/$src: wrong message"; }
    done
done
same_but_corrupt_bit "$T/orig" "$T"/h-*-*.qcow2
for what in $spans; do
    img="$T/h-$what-pattern.qcow2"
    qemu-img info --output=json "$img" > "$T/info.json"
    [ "$(json_get "$T/info.json" format)" = qcow2 ] ||
        fail "$what: no longer probes as qcow2"
    "$VIMG" info "$img" > "$T/vinfo" || fail "$what: vimg info"
    grep -q 'corrupt: true' "$T/vinfo" ||
        fail "$what: vimg info does not say corrupt"
    qemu-io -r -f qcow2 -c 'read 64k 960k' "$img" >/dev/null ||
        fail "$what: qemu-io cannot read the image"
    # What qemu-io does with the same image: the write succeeds and the
    # file stays a qcow2 (readable, but for the span over the L2 table,
    # where QEMU 7.2 reuses the freed table and its write reads back as
    # EIO: vimg refuses instead).
    cp "$T/orig/h-$what.qcow2" "$T/q.qcow2"
    qemu-io -f qcow2 -c 'write -P 0x61 0 1M' "$T/q.qcow2" >/dev/null
    qemu-img info --output=json "$T/q.qcow2" > "$T/info.json"
    [ "$(json_get "$T/info.json" format)" = qcow2 ] ||
        fail "$what: qemu-io made it something else"
    [ $what = l2 ] ||
        qemu-io -r -f qcow2 -c 'read -P 0x61 0 1M' "$T/q.qcow2" >/dev/null ||
        fail "$what: qemu-io lost its own write"
done

# An honest compressed image is still written over (its compressed
# clusters freed) and stays clean.
cp "$T/c.qcow2" "$T/ok.qcow2"
"$VIMG" convert -n -f raw -O qcow2 "$T/pattern.raw" "$T/ok.qcow2"
[ "$(qemu_sha "$T/ok.qcow2" qcow2)" = \
  "$(sha256sum < "$T/pattern.raw" | cut -d' ' -f1)" ] ||
    fail "honest image: data differs"
qemu-img check "$T/ok.qcow2" > "$T/out" ||
    { cat "$T/out"; fail "honest image: qemu-img check"; }

# A compressed cluster a cluster or more past the end of the file: check
# counts it as a corruption like qemu-img, and a write over it is refused
# instead of freeing past the end.
python3 - "$T/c.qcow2" "$T/past.qcow2" <<'PYEOF'
import struct, sys
b = bytearray(open(sys.argv[1], 'rb').read())
cb = struct.unpack_from('>I', b, 20)[0]
l1 = struct.unpack_from('>Q', b, 40)[0]
l2 = struct.unpack_from('>Q', b, l1)[0] & 0x00fffffffffffe00
host = (len(b) + (3 << cb)) & ~511
struct.pack_into('>Q', b, l2, (1 << 62) | host)
open(sys.argv[2], 'wb').write(b)
PYEOF
qemu-img check --output=json "$T/past.qcow2" > "$T/q.json" 2>/dev/null || true
"$VIMG" check --output=json "$T/past.qcow2" > "$T/v.json" 2>/dev/null || true
[ "$(json_get "$T/q.json" corruptions)" -gt 0 ] ||
    fail "qemu-img check finds no corruption"
[ "$(json_get "$T/q.json" corruptions)" = "$(json_get "$T/v.json" corruptions)" ] ||
    fail "check corruptions differ from qemu-img's"
expect_status 1 "$VIMG" convert -n -f raw -O qcow2 "$T/pattern.raw" \
    "$T/past.qcow2"
grep -q 'lies past the end of the file' "$T/err" ||
    { cat "$T/err"; fail "span past the end: wrong message"; }
