#!/usr/bin/env python3
"""Write VMDK images qemu-img cannot create: a vmfsSparse disk (descriptor
and an ESX COWD extent) or a seSparse disk (descriptor and extent), and
the guest bytes they hold (NAME.expected, raw).

Usage: vmdk-gen.py cowd|sesparse DIR NAME [CORRUPTION]

Layouts as QEMU's block/vmdk.c reads them (vmdk_open_vmfs_sparse,
vmdk_open_se_sparse): COWD has a 2 KiB header of u32 fields, a directory
of u32 sectors and tables of 4096 u32 sector numbers placed among the
grains; seSparse has a constant and a volatile header of u64 fields, a
directory of u64 entries (0x10000000 in the top half, the table number
below), tables of 4096 u64 entries whose top nibble is the grain's type.
CORRUPTION names one damage for the hostile tests."""
import os
import random
import struct
import sys

S = 512
CAP = 40 << 20          # three tables of 16 MiB, the last one partial
rnd = random.Random(12)


def descriptor(create, etype, extent):
    return ('# Disk DescriptorFile\nversion=1\nCID=1a2b3c4d\n'
            'parentCID=ffffffff\ncreateType="%s"\n\n# Extent description\n'
            'RW %d %s "%s"\n\n# The Disk Data Base\n#DDB\n\n'
            'ddb.adapterType = "lsilogic"\n' % (create, CAP // S, etype,
                                                extent)).encode()


def grain_data(n):
    return bytes(rnd.getrandbits(8) for _ in range(n))


def cowd(corrupt):
    grain = 8                       # sectors: tables cover 16 MiB
    gbytes = grain * S
    per_gt = 4096 * gbytes
    tables = (CAP + per_gt - 1) // per_gt
    expected = {}
    f = bytearray(4 * S)            # header
    gd_sector = 4
    f += bytes(S)                   # directory: one sector
    gd = [0] * tables

    def alloc(nbytes):
        at = len(f) // S
        f.extend(bytes(nbytes))
        return at

    gts = {}
    # Tables 0 and 2 exist (table 1 has none: a hole); grains and tables
    # interleave as ESX allocates them.
    for t in (0, 2):
        gd[t] = alloc(4096 * 4)
        gts[t] = [0] * 4096
    for g in (0, 1, 7, 4095, 2 * 4096 + 3, 2 * 4096 + 100, 5):
        t, i = divmod(g, 4096)
        data = grain_data(gbytes)
        gts[t][i] = alloc(gbytes)
        f[gts[t][i] * S:gts[t][i] * S + gbytes] = data
        expected[g * gbytes] = data
    for t, e in gts.items():
        f[gd[t] * S:gd[t] * S + 4096 * 4] = struct.pack("<4096I", *e)
    f[gd_sector * S:gd_sector * S + 4 * tables] = struct.pack(
        "<%dI" % tables, *gd)
    entries = tables
    if corrupt == "gd-short":
        entries = 1
    struct.pack_into("<IIIIIIII", f, 0, 0x44574f43, 1, 3, CAP // S, grain,
                     gd_sector, entries, len(f) // S)
    if corrupt == "gte-past-eof":
        struct.pack_into("<I", f, gd[0] * S + 4, len(f) // S + 1000)
    if corrupt == "gd-past-eof":
        struct.pack_into("<I", f, 20, 1 << 30)
    return (f, {}, len(f)), expected, gbytes


def sesparse(corrupt):
    gbytes = 8 * S
    gt_bytes = 64 * S
    per_gt = 4096 * gbytes
    tables = (CAP + per_gt - 1) // per_gt
    gd_sector, gt_sector = 2, 8
    # Table numbers out of order: directory entry 0 names table 1, entry 2
    # names table 0; entry 1 has none.
    gd = [0x1000000000000001, 0, 0x1000000000000000]
    table_of = {0: 1, 2: 0}
    grains_sector = gt_sector + 2 * gt_bytes // S
    gts = {0: [0] * 4096, 2: [0] * 4096}
    expected = {}
    grains = []
    # Grains stored in the reverse of guest order, indices large enough
    # to use both parts of the scattered index.
    guest = [0, 1, 6, 4095, 2 * 4096 + 3, 2 * 4096 + 9]
    for n, g in enumerate(reversed(guest)):
        t, i = divmod(g, 4096)
        index = n if n < 4 else n + 4096   # index 4096+: the high bits
        gts[t][i] = ((3 << 60) | ((index & 0xfff) << 48) | (index >> 12))
        data = grain_data(gbytes)
        grains.append((index, data))
        expected[g * gbytes] = data
    gts[0][2] = 2 << 60                     # zero grain
    gts[0][3] = 1 << 60                     # SCSI-unmapped: zero too
    if corrupt == "gte-type":
        gts[0][5] = 5 << 60
    if corrupt == "gte-past-eof":
        gts[0][5] = (3 << 60) | 0xffffffffffff
    n_grains = max(i for i, _ in grains) + 1
    size = grains_sector * S + n_grains * gbytes
    f = bytearray(grains_sector * S)
    hdr = [0xcafebabe, 0x200000001, CAP // S, 8, 64, 0, 0, 0, 0, 0,
           1, 1,                    # volatile header
           2, 0, 2, 0,              # journal header, journal
           gd_sector, 1,
           gt_sector, 2 * gt_bytes // S,
           2, 0, 2, 0,              # free bitmap, back map
           grains_sector, n_grains * 8]
    if corrupt == "capacity-huge":
        hdr[2] = 1 << 50
    if corrupt == "gd-past-eof":
        hdr[16] = size // S + 10
    struct.pack_into("<26Q", f, 0, *hdr)
    struct.pack_into("<4Q", f, S, 0xcafecafe, 0, 1,
                     1 if corrupt == "dirty" else 0)
    if corrupt == "gde-bad":
        gd[2] = 0x2000000000000000
    struct.pack_into("<%dQ" % tables, f, gd_sector * S, *gd)
    for t, e in gts.items():
        at = gt_sector * S + table_of[t] * gt_bytes
        struct.pack_into("<4096Q", f, at, *e)
    # The grains go in after the metadata, leaving holes between them.
    placed = {grains_sector * S + index * gbytes: data
              for index, data in grains}
    return (f, placed, size), expected, gbytes


def main():
    kind, out, name = sys.argv[1:4]
    corrupt = sys.argv[4] if len(sys.argv) > 4 else None
    if kind == "cowd":
        extent, data, gbytes = cowd(corrupt)
        create, etype, ename = "vmfsSparse", "VMFSSPARSE", name + "-delta.vmdk"
    else:
        extent, data, gbytes = sesparse(corrupt)
        create, etype, ename = "seSparse", "SESPARSE", name + "-sesparse.vmdk"
    meta, placed, size = extent
    if corrupt == "truncated":
        meta, placed, size = meta[:300], {}, 300
    with open(os.path.join(out, ename), "wb") as f:
        f.write(meta)
        for off, d in placed.items():
            f.seek(off)
            f.write(d)
        f.truncate(size)
    with open(os.path.join(out, name + ".vmdk"), "wb") as f:
        f.write(descriptor(create, etype, ename))
    with open(os.path.join(out, name + ".expected"), "wb") as f:
        f.truncate(CAP)
        for off, d in data.items():
            f.seek(off)
            f.write(d)


main()
