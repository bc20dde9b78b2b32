#!/usr/bin/env python3
"""Damage a qcow2 image on purpose for the compatibility table.

  compat-damage.py compressed IMG CLUSTER...  overwrite the first bytes of
      these guest clusters' compressed data (reads of them then fail)
  compat-damage.py leak IMG  give one cluster past the end of the file a
      refcount of 1 (a leak that check reports and -r leaks repairs)
"""
import struct
import sys


def main():
    kind, path = sys.argv[1], sys.argv[2]
    with open(path, "r+b") as f:
        b = f.read()
        cb = struct.unpack_from(">I", b, 20)[0]
        cs = 1 << cb
        l1 = struct.unpack_from(">Q", b, 40)[0]
        rt = struct.unpack_from(">Q", b, 48)[0]
        l2 = struct.unpack_from(">Q", b, l1)[0] & 0x00fffffffffffe00
        if kind == "compressed":
            for c in map(int, sys.argv[3:]):
                e = struct.unpack_from(">Q", b, l2 + 8 * c)[0]
                assert e & (1 << 62), f"cluster {c} is not compressed"
                off = e & ((1 << (62 - (cb - 8))) - 1)
                f.seek(off)
                f.write(b"\xff" * 16)
        elif kind == "leak":
            # 16-bit refcounts (the default) in the first refcount block.
            end = (len(b) + cs - 1) // cs
            rb = struct.unpack_from(">Q", b, rt)[0]
            f.truncate((end + 1) * cs)
            f.seek(rb + 2 * end)
            f.write(struct.pack(">H", 1))
        else:
            sys.exit(__doc__)


main()
