# A raw client (python3) sends vimg serve garbage, oversized and
# out-of-range requests, malformed options and disconnects mid-request:
# each gets an error reply or a dropped connection, the server keeps
# serving others, the image stays clean and unchanged outside the valid
# writes, and a silent client is dropped after the handshake limit.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
requires qemu-img qemu-io nbdinfo python3
qemu-img create -q -f qcow2 "$T/d.qcow2" 1M
qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' "$T/d.qcow2" >/dev/null
vserve "$T/s.sock" -t -e 8 --handshake-limit=1 -f qcow2 "$T/d.qcow2"
python3 - "$T/s.sock" <<'PY' || fail "hostile client: see above"
import socket, struct, sys
path = sys.argv[1]
SIZE = 1 << 20

def conn():
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(path)
    return s

def recvn(s, n):
    b = b""
    while len(b) < n:
        c = s.recv(n - len(b))
        if not c:
            raise EOFError("closed after %d of %d bytes" % (len(b), n))
        b += c
    return b

def dropped(s):
    """True when the server closed the connection."""
    try:
        while True:
            if not s.recv(65536):
                return True
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False

def option(s, opt, data=b""):
    s.sendall(struct.pack(">QII", 0x49484156454F5054, opt, len(data)) + data)

def opt_reply(s):
    magic, opt, typ, ln = struct.unpack(">QIII", recvn(s, 20))
    assert magic == 0x3e889045565a9, hex(magic)
    return opt, typ, recvn(s, ln)

def hello(s):
    magic, ihave, flags = struct.unpack(">QQH", recvn(s, 18))
    assert magic == 0x4e42444d41474943 and ihave == 0x49484156454F5054
    s.sendall(struct.pack(">I", 3))

def go(s, contexts=()):
    option(s, 8)
    assert opt_reply(s)[1] == 1
    if contexts:
        q = b"".join(struct.pack(">I", len(c)) + c for c in contexts)
        option(s, 10, struct.pack(">I", 0) + struct.pack(">I", len(contexts)) + q)
        while opt_reply(s)[1] != 1:
            pass
    option(s, 7, struct.pack(">IH", 0, 0))
    while True:
        _, typ, data = opt_reply(s)
        if typ == 1:
            return
        assert typ == 3, typ

def request(s, typ, off, ln, flags=0, payload=b"", cookie=1):
    s.sendall(struct.pack(">IHHQQI", 0x25609513, flags, typ, cookie, off, ln) + payload)

def reply(s):
    """(error, data) of a whole reply, simple or structured."""
    magic = struct.unpack(">I", recvn(s, 4))[0]
    if magic == 0x67446698:
        err, cookie = struct.unpack(">IQ", recvn(s, 12))
        return err, b""
    assert magic == 0x668e33ef, hex(magic)
    err, data = 0, b""
    while True:
        flags, typ, cookie, ln = struct.unpack(">HHQI", recvn(s, 16))
        body = recvn(s, ln)
        if typ & 0x8000:
            err = struct.unpack(">I", body[:4])[0]
        elif typ == 1:
            data += body[8:]
        elif typ == 2:
            data += bytes(struct.unpack(">QI", body)[1])
        if flags & 1:
            return err, data
        magic = struct.unpack(">I", recvn(s, 4))[0]
        assert magic == 0x668e33ef

EPERM, EINVAL, ENOSPC = 1, 22, 28
s = conn(); hello(s); go(s)
checks = [
    ("oversized read", (0, 0, 64 << 20), EINVAL),
    ("read past the end", (0, SIZE, 512), EINVAL),
    ("read wrapping around", (0, (1 << 64) - 512, 1024), EINVAL),
    ("trim past the end", (4, SIZE - 512, 1024), EINVAL),
    ("zeroes past the end", (6, SIZE, 1), ENOSPC),
    ("unknown command", (99, 0, 512), EINVAL),
    ("unknown flag", (0, 0, 512, 0x8000), EINVAL),
    ("REQ_ONE on a read", (0, 0, 512, 8), EINVAL),
    ("block status without contexts", (7, 0, 512), EINVAL),
]
for what, args, want in checks:
    request(s, *args)
    err, _ = reply(s)
    if err != want:
        sys.exit("%s: error %d, expected %d" % (what, err, want))
request(s, 1, SIZE - 256, 512, payload=b"\xff" * 512)
err, _ = reply(s)
assert err == ENOSPC, "write past the end: %d" % err
request(s, 0, 4096, 4096)
err, data = reply(s)
assert err == 0 and data == b"\x5a" * 4096, "valid read after errors"
# A WRITE too large to buffer drops the connection.
request(s, 1, 0, 64 << 20)
assert dropped(s), "oversized write not dropped"

# Framing garbage: dropped, not answered.
for junk in (b"\x00" * 64, b"GET / HTTP/1.0\r\n\r\n", b"\xff" * 4):
    s = conn(); recvn(s, 18); s.sendall(junk)
    assert dropped(s), "garbage %r not dropped" % junk[:8]
s = conn(); hello(s); s.sendall(b"X" * 16)
assert dropped(s), "bad option magic"
s = conn(); hello(s); option(s, 1, b"nosuch")
assert dropped(s), "unknown export via EXPORT_NAME"

# Malformed options get error replies and the session goes on.
s = conn(); hello(s)
for opt, data in ((7, struct.pack(">I", 1000) + b"ab"),          # name too long
                  (7, struct.pack(">IH", 0, 5)),                 # short list
                  (6, struct.pack(">I", 0)),                     # too short
                  (3, b"x"),                                     # LIST with data
                  (10, struct.pack(">II", 0, 1)),                # SET before SR
                  (8, b"x"),                                     # SR with data
                  (77, b"whatever")):                            # unknown
    option(s, opt, data)
    _, typ, _ = opt_reply(s)
    assert typ & 0x80000000, "option %d accepted: %d" % (opt, typ)
option(s, 8); assert opt_reply(s)[1] == 1
option(s, 10, struct.pack(">II", 0, 2) + struct.pack(">I", 100) + b"base:")
assert opt_reply(s)[1] == 0x80000003, "query past the option's end"
option(s, 6, struct.pack(">I", 3) + b"bad" + struct.pack(">H", 0))
assert opt_reply(s)[1] == 0x80000006, "unknown export via INFO"
go(s, [b"base:allocation"])
request(s, 7, SIZE - 512, 1024)
assert reply(s)[0] == EINVAL, "block status past the end"
request(s, 7, 0, SIZE, 8)
assert reply(s)[0] == 0, "block status REQ_ONE"
# Disconnect in the middle of a write's payload.
request(s, 1, 0, 65536, payload=b"\x01" * 100)
s.close()

# A client that says nothing is dropped after the handshake limit.
s = conn(); recvn(s, 18)
assert dropped(s), "silent client kept"
PY
# The server survived all of that and still serves correct data.
nbdinfo --size "$(uri "$T/s.sock")" > "$T/size" || fail "server gone"
[ "$(cat "$T/size")" = 1048576 ] || fail "size $(cat "$T/size")"
stop_servers
qemu-img check -q "$T/d.qcow2" || fail "image not clean"
qemu-io -f qcow2 -c 'read -P 0x5a 0 1M' "$T/d.qcow2" | grep -q '^read' ||
    fail "image contents changed"
exit 0
