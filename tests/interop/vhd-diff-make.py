#!/usr/bin/env python3
"""Make a differencing VHD or VHDX over a parent, for the interop tests.

Neither qemu-img nor any Debian tool writes differencing VHD/VHDX, so this
lays one out from the specifications (Microsoft's "Virtual Hard Disk Image
Format Specification" 1.0 and [MS-VHDX]) and writes beside it the guest
bytes it must read as: the parent's, overlaid with the child's own sectors.

  vhd-diff-make.py vpc|vhdx PARENT PARENT_RAW OUT EXPECTED [options]

PARENT is the parent image (its identity is read from it), PARENT_RAW its
guest bytes. Options:
  --rel NAME     relative path stored (Windows separators; default
                 .\\<parent's file name>)
  --abs PATH     absolute path stored too (W2ku and MacX / absolute_win32_path)
  --no-rel       store no relative path
  --zero-block   one block in the ZERO state (VHDX; readers differ there)
  --bad-link     store a parent identity that does not match
  --coarse       VHD bitmaps in runs of whole bytes (8 sectors): libvhdi
                 20210425 misreads a VHD bitmap byte that mixes set and
                 clear bits (it shifts without masking)
  --size BYTES   virtual size (default: the parent's)
"""
import os
import struct
import sys
import uuid

SECTOR = 512


def pattern(block, length):
    """The child's own bytes for BLOCK: distinct from any parent's."""
    seed = (0x5a ^ (block * 37)) & 0xff
    return bytes(((seed + i * 7) & 0xff) | 0x01 for i in range(256)) * \
        (length // 256)


def present_map(kind, sectors, coarse=False):
    """Which sectors of a block the child holds, by KIND. COARSE keeps
    runs to whole bitmap bytes (8 sectors)."""
    if coarse and kind == 'mixed':
        return [(i // 8) % 5 < 2 or 40 <= i < 296 for i in range(sectors)]
    if kind == 'all':
        return [True] * sectors
    if kind == 'none':
        return [False] * sectors
    if kind == 'last':
        return [i == sectors - 1 for i in range(sectors)]
    # mixed: runs of different lengths, crossing byte boundaries
    return [(i % 13) < 5 or 40 <= i < 300 for i in range(sectors)]


def utf16(s, enc='utf-16-le'):
    return s.encode(enc)


# ---- VHD -------------------------------------------------------------------

def vhd_checksum(b, at):
    return ~sum(x for i, x in enumerate(b) if not at <= i < at + 4) & \
        0xffffffff


def make_vpc(parent, raw, out, opts):
    with open(parent, 'rb') as f:
        pf = f.read(512)
        if pf[:8] != b'conectix':
            f.seek(-512, 2)
            pf = f.read(512)
    size = opts['size']
    block = 2 << 20
    nblocks = (size + block - 1) // block
    bitmap = 512  # bytes: 4096 sectors, one sector
    kinds = ['all', 'mixed', None, 'none', 'last', None, 'mixed', None]
    kinds = (kinds * ((nblocks + len(kinds) - 1) // len(kinds)))[:nblocks]

    footer = bytearray(512)
    footer[0:8] = b'conectix'
    struct.pack_into('>IIQI4sI4sQQ', footer, 8, 2, 0x00010000, 512,
                     0, b'win ', 0x000a0000, b'Wi2k', size, size)
    footer[56:60] = pf[56:60]  # geometry: sizes come from current_size
    struct.pack_into('>I', footer, 60, 4)
    footer[68:84] = uuid.uuid4().bytes

    bat_off = 1536
    bat_bytes = (nblocks * 4 + 511) // 512 * 512
    pos = bat_off + bat_bytes
    locs = []
    name = os.path.basename(parent)
    if not opts['no_rel']:
        locs.append((b'W2ru', utf16(opts['rel'] or '.\\' + name)))
    if opts['abs']:
        locs.append((b'W2ku', utf16(opts['abs'].replace('/', '\\'))))
        locs.append((b'MacX', ('file://' + opts['abs']).encode()))
    loc_at = []
    for code, data in locs:
        loc_at.append(pos)
        pos += (len(data) + 511) // 512 * 512
    dyn = bytearray(1024)
    dyn[0:8] = b'cxsparse'
    struct.pack_into('>QQIII', dyn, 8, 0xffffffffffffffff, bat_off,
                     0x00010000, nblocks, block)
    ident = bytearray(pf[68:84])
    if opts['bad_link']:
        ident[0] ^= 0xff
    dyn[40:56] = ident
    dyn[56:60] = pf[24:28]  # the parent's time stamp
    nm = utf16(name, 'utf-16-be')[:512]
    dyn[64:64 + len(nm)] = nm
    for i, ((code, data), at) in enumerate(zip(locs, loc_at)):
        space = (len(data) + 511) // 512 * 512
        struct.pack_into('>4sIIIQ', dyn, 576 + 24 * i, code, space,
                         len(data), 0, at)
    struct.pack_into('>I', dyn, 36, vhd_checksum(dyn, 36))
    struct.pack_into('>I', footer, 64, vhd_checksum(footer, 64))

    img = bytearray(footer) + dyn
    img += b'\xff' * (bat_off + bat_bytes - len(img))
    for (code, data), at in zip(locs, loc_at):
        img += b'\0' * (at - len(img)) + data
    img += b'\0' * ((len(img) + 511) // 512 * 512 - len(img))
    exp = bytearray(raw[:size].ljust(size, b'\0'))
    for b, kind in enumerate(kinds):
        if kind is None:
            continue
        struct.pack_into('>I', img, bat_off + 4 * b, len(img) // 512)
        length = min(block, size - b * block)
        sectors = block // SECTOR
        pm = present_map(kind, sectors, opts['coarse'])
        bm = bytearray(bitmap)
        for i, p in enumerate(pm):
            if p:
                bm[i // 8] |= 0x80 >> (i % 8)  # most significant bit first
        data = bytearray(b'\xee' * block)  # absent sectors: junk
        own = pattern(b, block)
        for i, p in enumerate(pm):
            if p:
                data[i * SECTOR:(i + 1) * SECTOR] = \
                    own[i * SECTOR:(i + 1) * SECTOR]
                if i * SECTOR < length:
                    exp[b * block + i * SECTOR:
                        b * block + min((i + 1) * SECTOR, length)] = \
                        own[i * SECTOR:min((i + 1) * SECTOR, length)]
        img += bm + data
    img += footer
    return img, exp


# ---- VHDX ------------------------------------------------------------------

CRC = []
for n in range(256):
    c = n
    for _ in range(8):
        c = (c >> 1) ^ 0x82f63b78 if c & 1 else c >> 1
    CRC.append(c)


def crc32c(b):
    c = 0xffffffff
    for x in b:
        c = CRC[(c ^ x) & 0xff] ^ (c >> 8)
    return c ^ 0xffffffff


def seal(buf, at=4):
    struct.pack_into('<I', buf, at, 0)
    struct.pack_into('<I', buf, at, crc32c(bytes(buf)))


def guid_bytes(text):
    return uuid.UUID(text).bytes_le


def guid_text(b):
    return '{' + str(uuid.UUID(bytes_le=bytes(b))) + '}'


MIB = 1 << 20
G_BAT = guid_bytes('2dc27766-f623-4200-9d64-115e9bfd4a08')
G_MD = guid_bytes('8b7ca206-4790-4b9a-b8fe-575f050f886e')
G_PARAMS = guid_bytes('caa16737-fa36-4d43-b3b6-33f0aa44e76b')
G_SIZE = guid_bytes('2fa54224-cd1b-4876-b211-5dbed83bf4b8')
G_PAGE83 = guid_bytes('beca12ab-b2e6-4523-93ef-c309e000c746')
G_LOGICAL = guid_bytes('8141bf1d-a96f-4709-ba47-f233a8faab5f')
G_PHYSICAL = guid_bytes('cda348c7-445d-4471-9cc9-e9885251c556')
G_PARENT = guid_bytes('a8d35f2d-b30b-454d-abf7-d3d84834ab0c')
G_LOCATOR = guid_bytes('b04aefb7-d19e-4a81-b789-25b8e9445913')


def vhdx_data_write_guid(path):
    with open(path, 'rb') as f:
        f.seek(64 << 10)
        h = [f.read(4096)]
        f.seek(128 << 10)
        h.append(f.read(4096))
    cur = max(h, key=lambda x: struct.unpack_from('<Q', x, 8)[0])
    return cur[32:48]


def locator(entries):
    head = bytearray(20)
    head[0:16] = G_LOCATOR
    struct.pack_into('<HH', head, 16, 0, len(entries))
    table = bytearray()
    strings = bytearray()
    base = 20 + 12 * len(entries)
    for k, v in entries:
        kb, vb = utf16(k), utf16(v)
        ko = base + len(strings)
        strings += kb
        vo = base + len(strings)
        strings += vb
        table += struct.pack('<IIHH', ko, vo, len(kb), len(vb))
    return bytes(head + table + strings)


def make_vhdx(parent, raw, out, opts):
    size = opts['size']
    block = MIB
    ls = SECTOR
    chunk_ratio = (1 << 23) * ls // block
    nblocks = (size + block - 1) // block
    entries = (nblocks + chunk_ratio - 1) // chunk_ratio * (chunk_ratio + 1)
    kinds = ['all', 'mixed', None, 'none', 'zero', 'all', 'last', None]
    kinds = (kinds * ((nblocks + len(kinds) - 1) // len(kinds)))[:nblocks]
    if not opts['zero_block']:
        kinds = [None if k == 'zero' else k for k in kinds]
    log_off, bat_off, md_off, data_off = MIB, 2 * MIB, 3 * MIB, 4 * MIB
    assert entries * 8 <= MIB

    img = bytearray(data_off)
    img[0:8] = b'vhdxfile'
    cr = utf16('vimg tests')
    img[8:8 + len(cr)] = cr
    for i, at in enumerate((64 << 10, 128 << 10)):
        h = bytearray(4096)
        h[0:4] = b'head'
        struct.pack_into('<Q', h, 8, 10 + i)
        h[16:32] = uuid.uuid4().bytes
        h[32:48] = uuid.uuid4().bytes
        struct.pack_into('<HHIQ', h, 64, 0, 1, MIB, log_off)
        seal(h)
        img[at:at + 4096] = h
    rt = bytearray(64 << 10)
    rt[0:4] = b'regi'
    struct.pack_into('<I', rt, 8, 2)
    rt[16:32] = G_BAT
    struct.pack_into('<QII', rt, 32, bat_off, MIB, 1)
    rt[48:64] = G_MD
    struct.pack_into('<QII', rt, 64, md_off, MIB, 1)
    seal(rt)
    img[192 << 10:256 << 10] = rt
    img[256 << 10:320 << 10] = rt

    link = bytearray(vhdx_data_write_guid(parent))
    if opts['bad_link']:
        link[0] ^= 0xff
    locs = [('parent_linkage', guid_text(link))]
    if not opts['no_rel']:
        locs.append(('relative_path',
                     opts['rel'] or '.\\' + os.path.basename(parent)))
    if opts['abs']:
        locs.append(('absolute_win32_path', opts['abs']))
    items = [
        (G_PARAMS, struct.pack('<II', block, 2), 4),
        (G_SIZE, struct.pack('<Q', size), 6),
        (G_PAGE83, uuid.uuid4().bytes, 6),
        (G_LOGICAL, struct.pack('<I', ls), 6),
        (G_PHYSICAL, struct.pack('<I', 4096), 6),
        (G_PARENT, locator(locs), 4),
    ]
    md = bytearray(MIB)
    md[0:8] = b'metadata'
    struct.pack_into('<H', md, 10, len(items))
    at = 64 << 10
    for i, (g, data, flags) in enumerate(items):
        e = 32 + 32 * i
        md[e:e + 16] = g
        struct.pack_into('<III', md, e + 16, at, len(data), flags)
        md[at:at + len(data)] = data
        at += len(data)
    img[md_off:md_off + MIB] = md
    img += b'\0' * (data_off - len(img))

    bat = bytearray(entries * 8)
    sb_at = len(img)
    sb = bytearray(MIB)
    img += sb  # filled below
    exp = bytearray(raw[:size].ljust(size, b'\0'))
    for b, kind in enumerate(kinds):
        idx = b + b // chunk_ratio
        if kind is None:
            continue
        if kind == 'zero':
            struct.pack_into('<Q', bat, idx * 8, 2)
            exp[b * block:min((b + 1) * block, size)] = \
                bytes(min(block, size - b * block))
            continue
        length = min(block, size - b * block)
        own = pattern(b, block)
        at = len(img)
        if kind == 'all':
            struct.pack_into('<Q', bat, idx * 8, at | 6)
            img += own
            exp[b * block:b * block + length] = own[:length]
            continue
        struct.pack_into('<Q', bat, idx * 8, at | 7)
        pm = present_map(kind, block // ls)
        bmo = (b % chunk_ratio) * (block // ls // 8)
        data = bytearray(b'\xee' * block)
        for i, p in enumerate(pm):
            if not p:
                continue
            sb[bmo + i // 8] |= 1 << (i % 8)  # bit 0 is the first sector
            data[i * ls:(i + 1) * ls] = own[i * ls:(i + 1) * ls]
            if i * ls < length:
                exp[b * block + i * ls:b * block + min((i + 1) * ls, length)] \
                    = own[i * ls:min((i + 1) * ls, length)]
        img += data
    img[sb_at:sb_at + MIB] = sb
    struct.pack_into('<Q', bat, (chunk_ratio) * 8, sb_at | 6)
    img[bat_off:bat_off + len(bat)] = bat
    return img, exp


def main():
    args = sys.argv[1:]
    fmt, parent, raw_path, out, expected = args[:5]
    opts = {'rel': None, 'abs': None, 'no_rel': False, 'zero_block': False,
            'bad_link': False, 'size': None, 'coarse': False}
    rest = args[5:]
    while rest:
        a = rest.pop(0)
        if a in ('--rel', '--abs', '--size'):
            opts[a[2:]] = rest.pop(0)
        else:
            opts[a[2:].replace('-', '_')] = True
    raw = open(raw_path, 'rb').read()
    opts['size'] = int(opts['size']) if opts['size'] else len(raw)
    make = make_vpc if fmt == 'vpc' else make_vhdx
    img, exp = make(parent, raw, out, opts)
    open(out, 'wb').write(img)
    open(expected, 'wb').write(exp)


main()
