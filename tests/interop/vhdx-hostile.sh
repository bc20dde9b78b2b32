#!/bin/sh
# Damaged and lying VHDXs: each is refused with one line naming the file
# and the problem, exit 1, quickly and within 128 MiB of address space.
# Checksums are recomputed after each lie unless the lie is the checksum.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io

good=$T/good.vhdx
qemu-img create -q -f vhdx -o block_size=1M "$good" 9M
qemu-io -f vhdx -c 'write -P 0x11 0 1k' -c 'write -P 0x22 4M 1k' "$good" \
    >/dev/null

damage() { # KIND OUT
    "$SYSPY" - "$good" "$2" "$1" <<'PY'
import struct, sys
src, out, kind = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
    T.append(c)
def crc32c(x):
    c = 0xffffffff
    for y in x:
        c = T[(c ^ y) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff
def seal(off, n):
    struct.pack_into('<I', b, off + 4, 0)
    struct.pack_into('<I', b, off + 4, crc32c(bytes(b[off:off + n])))
H = (64 << 10, 128 << 10)
R = (192 << 10, 256 << 10)
def rt(i, field):
    return R[0] + 16 + 32 * i + field
def rts(fmt, i, field, v):
    for r in R:
        struct.pack_into(fmt, b, r - R[0] + rt(i, field), v)
bat = struct.unpack_from('<Q', b, rt(0, 16))[0]
md = struct.unpack_from('<Q', b, rt(1, 16))[0]
def md_item(k):
    return md + struct.unpack_from('<I', b, md + 32 + 32 * k + 16)[0]
seal_h = seal_r = True
if kind == 'headers-checksum':
    b[H[0] + 200] ^= 1; b[H[1] + 200] ^= 1; seal_h = False
elif kind == 'headers-version':
    for h in H: struct.pack_into('<H', b, h + 66, 2)
elif kind == 'log-offset':
    for h in H: struct.pack_into('<Q', b, h + 72, 12345)
elif kind == 'regions-checksum':
    b[R[0] + 100] ^= 1; b[R[1] + 100] ^= 1; seal_r = False
elif kind == 'regions-count':
    for r in R: struct.pack_into('<I', b, r + 8, 5000)
elif kind == 'region-eof':
    rts('<Q', 0, 16, 1 << 40)
elif kind == 'region-log':
    rts('<Q', 0, 16, 1 << 20)
elif kind == 'region-unknown':
    for r in R:
        b[r + 16 + 64:r + 16 + 96] = b'\x01' * 16 + struct.pack('<QII', 9 << 20, 1 << 20, 1)
        struct.pack_into('<I', b, r + 8, 3)
elif kind == 'metadata-sig':
    b[md:md + 8] = b'xxxxxxxx'
elif kind == 'metadata-missing':
    struct.pack_into('<H', b, md + 10, 4)
elif kind == 'block-size':
    struct.pack_into('<I', b, md_item(0), 3 << 20)
elif kind == 'parent':
    struct.pack_into('<I', b, md_item(0) + 4, 2)
elif kind == 'disk-huge':
    struct.pack_into('<Q', b, md_item(1), 1 << 60)
elif kind == 'sector-size':
    struct.pack_into('<I', b, md_item(3), 1024)
elif kind == 'bat-small':
    rts('<I', 0, 24, 0)
elif kind == 'bat-eof':
    struct.pack_into('<Q', b, bat, (1 << 40) | 6)
elif kind == 'bat-overlap':
    struct.pack_into('<Q', b, bat, md | 6)
elif kind == 'bat-state':
    struct.pack_into('<Q', b, bat + 8, 4)
elif kind == 'truncated':
    del b[len(b) - 4096:]
elif kind == 'tiny':
    del b[4096:]
    seal_h = seal_r = False
else:
    sys.exit('unknown damage ' + kind)
if seal_h:
    for h in H: seal(h, 4096)
if seal_r:
    for r in R: seal(r, 65536)
open(out, 'wb').write(b)
PY
}

refused() { # KIND WORD
    damage "$1" "$T/bad.vhdx"
    set +e
    (ulimit -v 131072; "$VIMG" convert -f vhdx -O raw "$T/bad.vhdx" \
        "$T/out.raw") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc: $(cat "$T/err")"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$1: not one line: $(cat "$T/err")"
    grep -q "^vimg: $T/bad.vhdx: .*$2" "$T/err" ||
        fail "$1: message lacks '$2': $(cat "$T/err")"
}

refused headers-checksum 'no valid VHDX header'
refused headers-version 'no valid VHDX header'
refused log-offset 'whole MiB'
refused regions-checksum 'no valid region table'
refused regions-count 'at most 2047'
refused region-eof 'inside the file'
refused region-log 'overlaps the log'
refused region-unknown 'required but unknown'
refused metadata-sig 'metadata table'
refused metadata-missing 'required metadata item is missing'
refused block-size 'power of two'
refused parent 'differencing'
refused disk-huge '64 TiB'
refused sector-size 'sector sizes'
refused bat-small 'too small'
refused bat-eof 'outside the file'
refused bat-overlap 'overlaps'
refused bat-state 'state 4'
refused truncated 'outside the file'
refused tiny 'too small'
