#!/usr/bin/env python3
"""Write the seed inputs of fuzz-nbd-server: what a client sends, from the
flags after the server's greeting to the last request. Run from the source
root: python3 fuzz/make-nbd-server-corpus.py"""
import os
import struct

OUT = os.path.join(os.path.dirname(__file__), "corpus", "nbd-server")
IHAVEOPT = 0x49484156454F5054


def opt(o, data=b""):
    return struct.pack(">QII", IHAVEOPT, o, len(data)) + data


def req(typ, off, ln, flags=0, payload=b"", cookie=7):
    return struct.pack(">IHHQQI", 0x25609513, flags, typ, cookie, off,
                       ln) + payload


def meta(o, *queries):
    q = b"".join(struct.pack(">I", len(x)) + x for x in queries)
    return opt(o, struct.pack(">II", 0, len(queries)) + q)


def go(name=b"", infos=(3,)):
    return opt(7, struct.pack(">I", len(name)) + name +
               struct.pack(">H", len(infos)) +
               b"".join(struct.pack(">H", i) for i in infos))


seeds = {
    # Structured replies, both contexts, every command.
    "structured-all": struct.pack(">I", 3) + opt(3) + opt(8) +
    meta(9) + meta(9, b"base:", b"qemu:") +
    meta(10, b"base:allocation", b"qemu:allocation-depth") +
    opt(6, struct.pack(">IH", 0, 2) + struct.pack(">HH", 1, 2)) + go() +
    req(1, 4096, 512, payload=b"\xab" * 512) +
    req(0, 0, 8192) + req(0, 0, 4096, flags=4) +
    req(7, 0, 65536) + req(7, 0, 65536, flags=8) +
    req(6, 16384, 4096) + req(6, 20480, 4096, flags=2 | 16) +
    req(4, 32768, 4096, flags=1) + req(5, 0, 65536) + req(3, 0, 0) +
    req(0, 60000, 8192) + req(99, 0, 0) + req(2, 0, 0),
    # Dirty-bitmap contexts: list queries, then one set with every
    # context, and block status at unaligned ranges, with REQ_ONE, past
    # the end; a second set with one bitmap only.
    "bitmaps": struct.pack(">I", 3) + opt(8) +
    meta(9, b"qemu:dirty-bitmap:") + meta(9, b"qemu:") +
    meta(9, b"qemu:dirty-bitmap:b1", b"qemu:dirty-bitmap:nope") +
    meta(10, b"base:allocation", b"qemu:allocation-depth",
         b"qemu:dirty-bitmap:b0", b"qemu:dirty-bitmap:b1") + go() +
    req(7, 0, 65536) + req(7, 123, 40000) + req(7, 4000, 600, flags=8) +
    req(7, 65535, 1) + req(7, 65000, 1000) +
    req(1, 8192, 512, payload=b"\x01" * 512) + req(7, 0, 65536) +
    req(2, 0, 0),
    "bitmap-only": struct.pack(">I", 3) + opt(8) +
    meta(10, b"qemu:dirty-bitmap:b0", b"qemu:dirty-bitmap:b0") + go() +
    req(7, 1, 65535) + req(7, 0, 512, flags=8) + req(2, 0, 0),
    # Old clients: EXPORT_NAME and simple replies.
    "export-name": struct.pack(">I", 1) + opt(1) +
    req(1, 0, 16, payload=b"0123456789abcdef") + req(0, 0, 16) +
    req(0, 65530, 16) + req(2, 0, 0),
    # Option errors, then an abort.
    "options-bad": struct.pack(">I", 1) + opt(7, b"\x00\x00\x10\x00") +
    opt(10, struct.pack(">II", 0, 1)) + opt(5) + opt(8, b"x") +
    opt(6, struct.pack(">I", 4) + b"nope" + struct.pack(">H", 0)) +
    opt(2),
    # Framing garbage.
    "garbage": bytes(range(256)),
}

os.makedirs(OUT, exist_ok=True)
for name, data in seeds.items():
    with open(os.path.join(OUT, name), "wb") as f:
        f.write(data)
