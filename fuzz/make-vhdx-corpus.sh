#!/bin/sh
# Regenerate fuzz/corpus/vhdx/: small VHDXs made by qemu-img and qemu-io
# (dynamic, fixed, 1 MiB blocks, a few KiB of data), one made by vimg, one
# left with a log to replay, and hostile variants; each stored in the
# fuzz target's compact form (the non-zero 512-byte sectors, plus the
# last sector so the file keeps its size). See fuzz/fuzz-vhdx.c.
# Usage: fuzz/make-vhdx-corpus.sh [OUTDIR] [VIMG]
#   (needs qemu-img, qemu-io, python3; VIMG defaults to build/cli/vimg)
set -eu
here=$(dirname "$0")
out=${1:-$here/corpus/vhdx}
vimg=${2:-$here/../build/cli/vimg}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
mkdir -p "$out"
q() { qemu-img "$@" >/dev/null; }
io() { qemu-io -f vhdx "$@" >/dev/null; }

q create -f vhdx -o block_size=1M "$t/dynamic" 4M
io -c 'write -P 0x11 0 1k' -c 'write -P 0x22 3M 512' "$t/dynamic"
q create -f vhdx -o subformat=fixed,block_state_zero=off,block_size=1M \
    "$t/fixed" 2M
io -c 'write -P 0x33 1M 1k' "$t/fixed"
q create -f vhdx -o block_size=1M,block_state_zero=off "$t/not-present" 3M
printf 'vimg wrote this' > "$t/src"
truncate -s 2M "$t/src"
"$vimg" convert -f raw -O vhdx -o block_size=1M "$t/src" "$t/by-vimg"

python3 - "$t" "$out" <<'PY'
import struct, sys, zlib
t, out = sys.argv[1:3]
T = []
for i in range(256):
    c = i
    for _ in range(8):
        c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
    T.append(c)
def crc32c(b):
    c = 0xffffffff
    for x in b:
        c = T[(c ^ x) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff
def seal(b, off, n):
    struct.pack_into('<I', b, off + 4, 0)
    struct.pack_into('<I', b, off + 4, crc32c(bytes(b[off:off + n])))
def encode(b):
    recs, n, i = [], len(b), 0
    while i < n:
        if not any(b[i:i + 512]):
            i += 512
            continue
        j = i
        while j < n and any(b[j:j + 512]) and j - i < 60 * 1024:
            j += 512
        recs.append(struct.pack('<IH', i // 512, j - i) + bytes(b[i:j]))
        i = j
    last = (n - 1) // 512 * 512
    recs.append(struct.pack('<IH', last // 512, n - last) + bytes(b[last:]))
    return b''.join(recs)
def save(name, b):
    open(out + '/' + name, 'wb').write(encode(b))
base = {}
for name in ('dynamic', 'fixed', 'not-present', 'by-vimg'):
    base[name] = bytearray(open(t + '/' + name, 'rb').read())
    save(name, base[name])
H, R = (64 << 10, 128 << 10), (192 << 10, 256 << 10)
b0 = base['dynamic']
bat = struct.unpack_from('<Q', b0, R[0] + 16 + 16)[0]
def variant(name, edit, reseal=True):
    b = bytearray(b0)
    edit(b)
    if reseal:
        for h in H: seal(b, h, 4096)
        for r in R: seal(b, r, 65536)
    save('hostile-' + name, b)
def both_headers_bad(b):
    b[H[0] + 99] ^= 1; b[H[1] + 99] ^= 1
variant('headers', both_headers_bad, False)
variant('region-count', lambda b: [struct.pack_into('<I', b, r + 8, 9999) for r in R])
variant('bat-eof', lambda b: struct.pack_into('<Q', b, bat, (1 << 36) | 6))
variant('bat-overlap', lambda b: struct.pack_into('<Q', b, bat, (1 << 20) | 6))
variant('log-offset', lambda b: [struct.pack_into('<Q', b, h + 72, 4096) for h in H])
# A log entry that points block 1 at a new block holding 1 KiB of data,
# named by both headers: the in-memory replay path.
b = bytearray(b0)
block = (len(b) + (1 << 20) - 1) >> 20 << 20
b.extend(bytes(block + (1 << 20) - len(b)))
b[block:block + 1024] = b'\x5c' * 1024
sector = bytearray(b[bat:bat + 4096])
struct.pack_into('<Q', sector, 8, block | 6)
guid, seq, size = bytes(range(1, 17)), 5, len(b)
e = bytearray(8192)
struct.pack_into('<4sIIIQII16sQQ', e, 0, b'loge', 0, 8192, 0, seq, 1, 0,
                 guid, size, size)
struct.pack_into('<4s4s8sQQ', e, 64, b'desc', bytes(sector[4092:]),
                 bytes(sector[:8]), bat, seq)
struct.pack_into('<4sI', e, 4096, b'data', 0)
e[4104:8188] = sector[8:4092]
struct.pack_into('<I', e, 8188, seq)
seal(e, 0, 8192)
log = struct.unpack_from('<Q', b, H[0] + 72)[0]
b[log:log + 8192] = e
for h in H:
    b[h + 48:h + 64] = guid
    seal(b, h, 4096)
save('dirty-log', b)
forged = bytearray(b)
for s in range(1, 60):
    forged[log + s * 4096:log + s * 4096 + 64] = e[:64]
save('hostile-log-forged', forged)
# A differencing disk: HasParent, a parent locator, block 0 partially
# present (sectors 0 and 1 from its bitmap), the rest the parent's.
b = bytearray(b0)
md = struct.unpack_from('<Q', b, R[0] + 16 + 32 + 16)[0]
n = struct.unpack_from('<H', b, md + 10)[0]
params = md + struct.unpack_from('<I', b, md + 32 + 16)[0]
struct.pack_into('<I', b, params + 4, 2)
def u16(s):
    return s.encode('utf-16-le')
kv = [('parent_linkage', '{83ed0ec3-24c8-49a6-a959-5e4bf1288bfb}'),
      ('relative_path', '.\\parent.vhdx')]
loc = bytearray(bytes.fromhex('b7ef4ab09ed1814ab78925b8e9445913'))
loc += struct.pack('<HH', 0, len(kv))
strs, at = bytearray(), 20 + 12 * len(kv)
for k, v in kv:
    loc += struct.pack('<IIHH', at + len(strs), at + len(strs) + len(u16(k)),
                       len(u16(k)), len(u16(v)))
    strs += u16(k) + u16(v)
loc += strs
item = 512 << 10
b[md + item:md + item + len(loc)] = loc
e = md + 32 + 32 * n
b[e:e + 16] = bytes.fromhex('2d5fd3a80bb34d45abf7d3d84834ab0c')
struct.pack_into('<III', b, e + 16, item, len(loc), 4)
struct.pack_into('<H', b, md + 10, n + 1)
e0 = struct.unpack_from('<Q', b, bat)[0]
struct.pack_into('<Q', b, bat, e0 & ~7 | 7)
sb = (len(b) + (1 << 20) - 1) >> 20 << 20
b.extend(bytes(sb + (1 << 20) - len(b)))
b[sb] = 0x03
struct.pack_into('<Q', b, bat + 4096 * 8, sb | 6)
save('differencing', b)
PY
ls "$out" | wc -l
du -cb "$out"/* | tail -1
