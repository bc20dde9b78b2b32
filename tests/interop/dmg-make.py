#!/usr/bin/env python3
"""Write a UDIF image (.dmg) holding the bytes of a raw file, as hdiutil
lays one out: the data fork (the chunks), an XML property list whose blkx
array holds one mish block per partition, and the koly trailer. Debian has
no DMG writer; this makes the test images for vimg, qemu-img and dmg2img.

usage: dmg-make.py RAW OUT [--types raw,zlib,bzip2,lzfse] [--chunk SECTORS]
                   [--parts N] [--rsrc] [--mish-base]

Chunks of all zeros become zero (UDZE) and ignore (UDIG) chunks in turn;
the others take the --types in turn. lzfse chunks hold their bytes
unchanged (nobody here can compress LZFSE): only a reader's refusal is
tested with them. --rsrc lists the mish blocks in a resource fork instead
of the property list; --mish-base makes chunk offsets count from a base in
each mish block, as the format allows."""
import base64
import bz2
import hashlib
import struct
import sys
import zlib

TYPES = {'zero': 0, 'raw': 1, 'ignore': 2, 'zlib': 0x80000005,
         'bzip2': 0x80000006, 'lzfse': 0x80000007}
SECTOR = 512


def main():
    args = sys.argv[1:]
    opts = {'types': 'raw,zlib,bzip2', 'chunk': '2048', 'parts': '2'}
    flags = set()
    pos = []
    while args:
        a = args.pop(0)
        if a in ('--rsrc', '--mish-base'):
            flags.add(a)
        elif a.startswith('--'):
            opts[a[2:]] = args.pop(0)
        else:
            pos.append(a)
    src, out = pos
    data = open(src, 'rb').read()
    assert len(data) % SECTOR == 0, 'the raw file must be whole sectors'
    sectors = len(data) // SECTOR
    kinds = opts['types'].split(',')
    per = int(opts['chunk'])
    nparts = int(opts['parts'])

    fork = bytearray()
    blocks = []
    zero_turn = 0
    kind_turn = 0
    part_len = -(-sectors // nparts)
    for p in range(nparts):
        first = p * part_len
        count = min(part_len, sectors - first)
        if count <= 0:
            break
        base = len(fork) if '--mish-base' in flags else 0
        chunks = []
        s = 0
        while s < count:
            n = min(per, count - s)
            raw = data[(first + s) * SECTOR:(first + s + n) * SECTOR]
            if raw.count(0) == len(raw):
                kind = ('zero', 'ignore')[zero_turn % 2]
                zero_turn += 1
                stored = b''
            else:
                kind = kinds[kind_turn % len(kinds)]
                kind_turn += 1
                stored = {'raw': raw, 'lzfse': raw,
                          'zlib': zlib.compress(raw),
                          'bzip2': bz2.compress(raw)}[kind]
            chunks.append((TYPES[kind], s, n, len(fork) - base, len(stored)))
            fork += stored
            s += n
        chunks.append((0xffffffff, count, 0, len(fork) - base, 0))
        mish = bytearray(204)
        struct.pack_into('>4sIQQQII', mish, 0, b'mish', 1, first, count,
                         base, per, p)
        struct.pack_into('>II', mish, 64, 2, 32)
        struct.pack_into('>I', mish, 200, len(chunks))
        for c in chunks:
            mish += struct.pack('>IIQQQQ', c[0], 0, c[1], c[2], c[3], c[4])
        blocks.append((p, bytes(mish)))

    xml = rsrc = b''
    if '--rsrc' in flags:
        res = b''.join(struct.pack('>I', len(m)) + m for _, m in blocks)
        rsrc = struct.pack('>IIII', 256, 256 + len(res), len(res), 0)
        rsrc += bytes(240) + res
    else:
        entries = ''
        for p, m in blocks:
            text = base64.b64encode(m).decode()
            lines = '\n'.join('\t\t\t\t' + text[i:i + 52]
                              for i in range(0, len(text), 52))
            name = 'disk image (Apple_HFS : %d)' % p
            entries += ('\t\t\t<dict>\n'
                        '\t\t\t\t<key>Attributes</key>\n'
                        '\t\t\t\t<string>0x0050</string>\n'
                        '\t\t\t\t<key>CFName</key>\n'
                        '\t\t\t\t<string>%s</string>\n'
                        '\t\t\t\t<key>Data</key>\n'
                        '\t\t\t\t<data>\n%s\n\t\t\t\t</data>\n'
                        '\t\t\t\t<key>ID</key>\n'
                        '\t\t\t\t<string>%d</string>\n'
                        '\t\t\t\t<key>Name</key>\n'
                        '\t\t\t\t<string>%s</string>\n'
                        '\t\t\t</dict>\n') % (name, lines, p - 1, name)
        plst = base64.b64encode(bytes(0x32c)).decode()
        xml = ('<?xml version="1.0" encoding="UTF-8"?>\n'
               '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" '
               '"http://www.apple.com/DTDs/PropertyList-1.0.dtd">\n'
               '<plist version="1.0">\n<dict>\n'
               '\t<key>resource-fork</key>\n\t<dict>\n'
               '\t\t<key>blkx</key>\n\t\t<array>\n%s\t\t</array>\n'
               '\t\t<key>plst</key>\n\t\t<array>\n\t\t\t<dict>\n'
               '\t\t\t\t<key>Data</key>\n\t\t\t\t<data>%s</data>\n'
               '\t\t\t</dict>\n\t\t</array>\n'
               '\t</dict>\n</dict>\n</plist>\n') % (entries, plst)
        xml = xml.encode()

    koly = bytearray(512)
    struct.pack_into('>4sIII', koly, 0, b'koly', 4, 512, 1)
    struct.pack_into('>QQQ', koly, 16, 0, 0, len(fork))
    meta = len(fork)
    struct.pack_into('>QQ', koly, 40, meta if rsrc else 0, len(rsrc))
    struct.pack_into('>II', koly, 56, 1, 1)
    koly[64:80] = hashlib.md5(fork).digest()  # a segment ID, reproducible
    struct.pack_into('>III', koly, 80, 2, 32, zlib.crc32(fork))
    struct.pack_into('>QQ', koly, 216, meta if xml else 0, len(xml))
    struct.pack_into('>IQ', koly, 488, 1, sectors)
    with open(out, 'wb') as f:
        f.write(fork + rsrc + xml + koly)


main()
