#!/usr/bin/env python3
"""Damage an ISO 9660 image on purpose, at known offsets (ECMA-119, SUSP,
RRIP), for vimg's bad-input tests and fuzz corpus.

usage: iso-damage.py IN OUT MUTATION [ARG]

Mutations (each names the structure it breaks):
  rename OLD NEW     Rock Ridge NM OLD -> NEW (same length: "zz" -> "..";
                     any bytes, not only UTF-8)
  no-terminator      terminator descriptor turned into another primary one
  many-descriptors   sectors 17..80 all copies of the primary descriptor
  short-record       first entry of the root shorter than 34 bytes
  overrun            root directory data length cut to 100 bytes, so the
                     third record runs past it
  dir-loop NAME      directory NAME's extent points back at the root
  past-end NAME      file NAME's extent points past the end of the image
  ce-loop            the first CE continuation area chains to itself
  dir-dag A B        in every directory, subdirectory B gets the extent of
                     its sibling A (a DAG: sibling directories sharing
                     extents, so the tree doubles at each level)
  share-extent F P   every file whose name starts with P gets file F's
                     extent (files sharing data without being links)
  truncate N         keep the first N bytes
"""
import os
import struct
import sys

SECTOR = 2048


def both32(v):
    return struct.pack('<I', v) + struct.pack('>I', v)


def root_record(img):
    pvd = 16 * SECTOR
    assert img[pvd + 1:pvd + 6] == b'CD001' and img[pvd] == 1
    return pvd + 156


def records(img, lba, length):
    """Yield (offset, record bytes) of a directory extent."""
    pos = 0
    while pos < length:
        off = lba * SECTOR + pos
        n = img[off]
        if n == 0:
            pos = (pos // SECTOR + 1) * SECTOR
            continue
        yield off, bytes(img[off:off + n])
        pos += n


def susp_entries(rec):
    name_len = rec[32]
    su = 33 + name_len + (1 - name_len % 2)
    while su + 4 <= len(rec):
        sig, n = rec[su:su + 2], rec[su + 2]
        if n < 4:
            break
        yield su, sig, rec[su:su + n]
        su += n


def rr_name(rec):
    for _, sig, e in susp_entries(rec):
        if sig == b'NM':
            return e[5:]
    return rec[33:33 + rec[32]]


def find(img, name):
    """Offset of the record named NAME (Rock Ridge or ISO name) anywhere."""
    r = root_record(img)
    todo = [(struct.unpack('<I', img[r + 2:r + 6])[0],
             struct.unpack('<I', img[r + 10:r + 14])[0])]
    seen = set()
    while todo:
        lba, length = todo.pop()
        if lba in seen:
            continue
        seen.add(lba)
        for off, rec in records(img, lba, length):
            if rec[32] == 1 and rec[33] in (0, 1):
                continue
            if rr_name(rec) == name or rec[33:33 + rec[32]].split(b';')[0] \
                    == name.upper():
                return off
            if rec[25] & 2:
                todo.append((struct.unpack('<I', rec[2:6])[0],
                             struct.unpack('<I', rec[10:14])[0]))
    sys.exit('iso-damage: no entry named %r' % name)


def walk(img):
    """Yield (directory LBA, offset, record bytes) of every record below
    the root, each directory extent read once."""
    r = root_record(img)
    todo = [(struct.unpack('<I', img[r + 2:r + 6])[0],
             struct.unpack('<I', img[r + 10:r + 14])[0])]
    seen = set()
    while todo:
        lba, length = todo.pop()
        if lba in seen:
            continue
        seen.add(lba)
        for off, rec in records(img, lba, length):
            if rec[32] == 1 and rec[33] in (0, 1):
                continue
            yield lba, off, rec
            if rec[25] & 2:
                todo.append((struct.unpack('<I', rec[2:6])[0],
                             struct.unpack('<I', rec[10:14])[0]))


def main():
    src, dst, what = sys.argv[1:4]
    args = sys.argv[4:]
    img = bytearray(open(src, 'rb').read())
    root = root_record(img)
    root_lba = struct.unpack('<I', img[root + 2:root + 6])[0]
    if what == 'rename':
        old, new = os.fsencode(args[0]), os.fsencode(args[1])
        assert len(old) == len(new)
        pat = b'NM' + bytes([5 + len(old), 1, 0]) + old
        i = img.find(pat)
        assert i >= 0, 'no NM entry %r' % old
        img[i + 5:i + 5 + len(new)] = new
    elif what == 'no-terminator':
        s = 17
        while img[s * SECTOR] != 255:
            s += 1
        img[s * SECTOR] = 1
    elif what == 'many-descriptors':
        pvd = bytes(img[16 * SECTOR:17 * SECTOR])
        for s in range(17, 16 + 64 + 1):
            img[s * SECTOR:(s + 1) * SECTOR] = pvd
    elif what == 'short-record':
        off, _ = list(records(img, root_lba, SECTOR))[2]
        img[off] = 20
    elif what == 'overrun':
        img[root + 10:root + 18] = both32(100)
    elif what == 'dir-loop':
        off = find(img, args[0].encode())
        img[off + 2:off + 10] = both32(root_lba)
    elif what == 'past-end':
        off = find(img, args[0].encode())
        img[off + 2:off + 10] = both32(len(img) // SECTOR + 10)
    elif what == 'ce-loop':
        for off, rec in records(img, root_lba, SECTOR):
            for su, sig, e in susp_entries(rec):
                if sig != b'CE':
                    continue
                blk = struct.unpack('<I', e[4:8])[0]
                ceoff = struct.unpack('<I', e[12:16])[0]
                celen = struct.unpack('<I', e[20:24])[0]
                area = blk * SECTOR + ceoff
                loop = b'CE\x1c\x01' + both32(blk) + both32(ceoff) + \
                    both32(celen + 28)
                img[area + celen:area + celen + 28] = loop
                img[off + su + 20:off + su + 28] = both32(celen + 28)
                break
            else:
                continue
            break
        else:
            sys.exit('iso-damage: no CE entry in the root directory')
    elif what == 'dir-dag':
        a, b = args[0].encode(), args[1].encode()
        by_dir = {}
        for lba, off, rec in list(walk(img)):
            if rec[25] & 2 and rr_name(rec) in (a, b):
                by_dir.setdefault(lba, {})[rr_name(rec)] = off
        n = 0
        for pair in by_dir.values():
            if a in pair and b in pair:
                img[pair[b] + 2:pair[b] + 18] = \
                    img[pair[a] + 2:pair[a] + 18]
                n += 1
        assert n, 'no directory holds both %r and %r' % (a, b)
    elif what == 'share-extent':
        src = find(img, args[0].encode())
        prefix = args[1].encode()
        n = 0
        for _, off, rec in list(walk(img)):
            if not rec[25] & 2 and rr_name(rec).startswith(prefix):
                img[off + 2:off + 18] = img[src + 2:src + 18]
                n += 1
        assert n, 'no file named %r...' % prefix
    elif what == 'truncate':
        del img[int(args[0]):]
    else:
        sys.exit(__doc__)
    open(dst, 'wb').write(img)


if __name__ == '__main__':
    main()
