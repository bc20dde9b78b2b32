# vimg serve -B NAME (qemu-nbd's -B): persistent dirty bitmaps of a qcow2
# image as qemu:dirty-bitmap:NAME contexts. The same image served by
# qemu-nbd -B gives the same context lists and the same extents, through
# nbdinfo --map, qemu-img map's x-dirty-bitmap and a raw client asking
# for every context in one request (unaligned ranges, REQ_ONE); the dirty
# ranges are the ones written; a bitmap of a backing image is found;
# writes through the export show at once; an unknown or inconsistent
# bitmap is one line and exit 1.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
. "$(dirname "$0")/bitmap.inc"
requires qemu-img qemu-io qemu-nbd nbdinfo python3
qemu-img create -q -f qcow2 "$T/d.qcow2" 64M
qemu-img bitmap --add "$T/d.qcow2" b1
qemu-img bitmap --add -g 4096 "$T/d.qcow2" b2
qemu-io -f qcow2 -c 'write 1000 10' -c 'write 3M 1M' -c 'write 40000k 5k' \
    -c 'write 67108000 100' "$T/d.qcow2" >/dev/null
qemu-img bitmap --add -g 512 --disable "$T/d.qcow2" b3

# Unknown bitmap: refused before listening.
expect_status 1 "$VIMG" serve -r -f qcow2 -B b1 -B nope -k "$T/x.sock" \
    "$T/d.qcow2"
[ "$(cat "$T/err")" = "vimg: Bitmap 'nope' is not found" ] ||
    fail "unknown bitmap: $(cat "$T/err")"
[ ! -e "$T/x.sock" ] || fail "listening despite an unknown bitmap"

# An inconsistent bitmap (left in use by a crash): refused, as by
# qemu-nbd. The in-use flag is bit 0 of the first directory entry's flags.
cp "$T/d.qcow2" "$T/bad.qcow2"
python3 - "$T/bad.qcow2" <<'PY'
import struct, sys
with open(sys.argv[1], "r+b") as f:
    h = f.read(1 << 16)
    at = struct.unpack(">I", h[100:104])[0]
    while True:
        typ, ln = struct.unpack(">II", h[at:at + 8])
        if typ == 0x23852875:
            d = struct.unpack(">Q", h[at + 24:at + 32])[0]
            break
        at += 8 + (ln + 7) // 8 * 8
    f.seek(d + 12)
    flags = struct.unpack(">I", f.read(4))[0]
    f.seek(d + 12)
    f.write(struct.pack(">I", flags | 1))
PY
expect_status 1 qemu-nbd -r -f qcow2 -B b1 -k "$T/x.sock" "$T/bad.qcow2"
expect_status 1 "$VIMG" serve -r -f qcow2 -B b1 -k "$T/x.sock" "$T/bad.qcow2"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q "Bitmap 'b1' is inconsistent" "$T/err" ||
    fail "inconsistent bitmap: $(cat "$T/err")"

vserve "$T/v.sock" -t -r -A -f qcow2 -B b1 -B b2 -B b3 "$T/d.qcow2"
qserve "$T/q.sock" -t -r -A -f qcow2 -B b1 -B b2 -B b3 "$T/d.qcow2"
for s in v q; do
    nbdinfo --list "$(uri "$T/$s.sock")" | sed -n '/contexts:/,/^\t[a-z]/p' \
        > "$T/$s.list"
    for b in b1 b2 b3; do
        nbdinfo --map="qemu:dirty-bitmap:$b" "$(uri "$T/$s.sock")" \
            > "$T/$s.$b"
    done
done
diff "$T/q.list" "$T/v.list" || fail "context lists differ from qemu-nbd's"
for b in b1 b2 b3; do
    diff "$T/q.$b" "$T/v.$b" || fail "$b: extents differ from qemu-nbd's"
done
# The writes, rounded out to each granularity (64 KiB, 4 KiB); nothing
# was written after b3 was added.
dirty() { awk '$4 == "dirty" { print $1, $2 }' "$1" | tr '\n' ' '; }
[ "$(dirty "$T/v.b1")" = "0 65536 3145728 1048576 40960000 65536 67043328 65536 " ] ||
    fail "b1 dirty: $(dirty "$T/v.b1")"
[ "$(dirty "$T/v.b2")" = "0 4096 3145728 1048576 40960000 8192 67104768 4096 " ] ||
    fail "b2 dirty: $(dirty "$T/v.b2")"
[ -z "$(dirty "$T/v.b3")" ] || fail "b3 dirty: $(dirty "$T/v.b3")"

# qemu's own consumer of the context.
for s in v q; do
    qemu-img map --output=json --image-opts \
        "driver=nbd,server.type=unix,server.path=$T/$s.sock,x-dirty-bitmap=qemu:dirty-bitmap:b2" \
        > "$T/$s.qmap"
done
diff "$T/q.qmap" "$T/v.qmap" || fail "qemu-img map x-dirty-bitmap differs"

# A raw client: list queries and every context in one block status
# request, answers compared with qemu-nbd's.
python3 - "$T/v.sock" "$T/q.sock" <<'PY' || fail "raw client: see above"
import socket, struct, sys

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed")
        b += c
    return b

def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(data)) + data)
    replies = []
    while True:
        _, _, typ, ln = struct.unpack(">QIII", recvn(s, 20))
        replies.append((typ, recvn(s, ln)))
        if typ == 1 or typ & 0x80000000:
            return replies

def meta(s, opt, queries):
    q = b"".join(struct.pack(">I", len(x)) + x for x in queries)
    out = {}
    for typ, data in option(s, opt, struct.pack(">II", 0, len(queries)) + q):
        if typ == 4:
            out[struct.unpack(">I", data[:4])[0] if opt == 10 else
                data[4:].decode()] = data[4:].decode()
    return out

def session(path):
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(10)
    s.connect(path)
    recvn(s, 18)
    s.sendall(struct.pack(">I", 3))
    option(s, 8)
    res = {}
    for i, qs in enumerate(([], [b"qemu:"], [b"qemu:dirty-bitmap:"],
                            [b"base:"], [b"qemu:dirty-bitmap:b2"])):
        res["list%d" % i] = sorted(meta(s, 9, qs).values())
    res["set-none"] = sorted(meta(s, 10, [b"qemu:", b"qemu:dirty-bitmap:x"])
                             .values())
    ids = meta(s, 10, [b"qemu:dirty-bitmap:b2", b"base:allocation",
                       b"qemu:allocation-depth", b"qemu:dirty-bitmap:b1"])
    res["set"] = sorted(ids.values())
    option(s, 7, struct.pack(">IH", 0, 0))
    for off, ln, flags in ((0, 64 << 20, 0), (1005, 70000, 0),
                           (3 << 20, 5000, 0), (3145000, 3000, 8),
                           (40962000, 100, 0), (67108000, 864, 0),
                           (65536, 4096, 8), (123, 3 << 20, 8)):
        s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, 7, 1, off, ln))
        got = {}
        while True:
            magic, cflags, typ, _, ln2 = struct.unpack(">IHHQI",
                                                       recvn(s, 20))
            body = recvn(s, ln2)
            assert typ == 5, "chunk type %d" % typ
            ctx = ids[struct.unpack(">I", body[:4])[0]]
            got[ctx] = list(struct.unpack(">%dI" % ((ln2 - 4) // 4),
                                          body[4:]))
            if cflags & 1:
                break
        assert sorted(got) == res["set"], got
        res["bs %d+%d/%d" % (off, ln, flags)] = got
    return res

v, q = session(sys.argv[1]), session(sys.argv[2])
for k in q:
    if v.get(k) != q[k]:
        sys.exit("%s:\n  vimg     %s\n  qemu-nbd %s" % (k, v.get(k), q[k]))
PY
stop_servers

# A bitmap of the backing image (qemu-nbd looks down the chain), and
# writes through a writable export marking the top image's bitmap.
qemu-img create -q -f qcow2 -b "$T/d.qcow2" -F qcow2 "$T/top.qcow2"
qemu-img bitmap --add -g 65536 "$T/top.qcow2" t1
cp "$T/top.qcow2" "$T/top2.qcow2"
vserve "$T/v.sock" -t -f qcow2 -B b2 -B t1 "$T/top.qcow2"
qemu-io -f raw -c 'write 5M 1k' -c 'write 9M 128k' "$(uri "$T/v.sock")" \
    >/dev/null
nbdinfo --map=qemu:dirty-bitmap:b2 "$(uri "$T/v.sock")" > "$T/v.b2"
nbdinfo --map=qemu:dirty-bitmap:t1 "$(uri "$T/v.sock")" > "$T/v.t1"
diff "$T/q.b2" "$T/v.b2" || fail "b2 through the backing chain"
[ "$(dirty "$T/v.t1")" = "5242880 65536 9437184 131072 " ] ||
    fail "t1 after writes through the export: $(dirty "$T/v.t1")"
stop_servers
qemu-io -f qcow2 -c 'write 5M 1k' -c 'write 9M 128k' "$T/top2.qcow2" \
    >/dev/null
same_dirty "$T/top.qcow2" "$T/top2.qcow2" t1
exit 0
