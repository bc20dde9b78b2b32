#!/bin/sh
# Damaged and lying VHDs: each is refused with one line naming the file and
# the problem, exit 1, quickly and within 128 MiB of address space.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

good=$T/good.vhd
qemu-img create -q -f vpc "$good" 9M
qemu-io -f vpc -c 'write -P 0x11 0 1k' -c 'write -P 0x22 4M 1k' "$good" \
    >/dev/null

# damage KIND OUT: a copy of $good with one lie; checksums are recomputed
# unless the lie is the checksum.
damage() {
    "$PY" - "$good" "$2" "$1" <<'PY'
import struct, sys
src, out, kind = sys.argv[1:4]
b = bytearray(open(src, 'rb').read())
def csum(off, n, at):
    struct.pack_into('>I', b, off + at, 0)
    struct.pack_into('>I', b, off + at, ~sum(b[off:off + n]) & 0xffffffff)
dyn = struct.unpack_from('>Q', b, 16)[0]
bat = struct.unpack_from('>Q', b, dyn + 16)[0]
e0 = struct.unpack_from('>I', b, bat)[0]
fix_footer = fix_dyn = True
if kind == 'footer-checksum':
    b[100] ^= 1; fix_footer = False
elif kind == 'dyn-checksum':
    b[dyn + 100] ^= 1; fix_dyn = False
elif kind == 'dyn-cookie':
    b[dyn:dyn + 8] = b'xxxxxxxx'
elif kind == 'dyn-offset-eof':
    struct.pack_into('>Q', b, 16, 1 << 40)
elif kind == 'bat-huge':
    struct.pack_into('>I', b, dyn + 28, 0xffffffff)
elif kind == 'bat-small':
    struct.pack_into('>I', b, dyn + 28, 1)
elif kind == 'bat-eof':
    struct.pack_into('>Q', b, dyn + 16, 1 << 40)
elif kind == 'block-size':
    struct.pack_into('>I', b, dyn + 32, 3 << 20)
elif kind == 'block-huge':
    struct.pack_into('>I', b, dyn + 32, 1 << 31)
elif kind == 'entry-eof':
    struct.pack_into('>I', b, bat + 4, 0x7fffffff)
elif kind == 'entry-overlap':
    struct.pack_into('>I', b, bat, bat // 512)
elif kind == 'differencing':
    struct.pack_into('>I', b, 60, 4)
elif kind == 'size-huge':
    b[28:32] = b'qem2'
    struct.pack_into('>Q', b, 48, 1 << 62)
elif kind == 'truncated':
    fix_footer = fix_dyn = False
    del b[e0 * 512 + 4096:]
elif kind == 'tiny':
    fix_footer = fix_dyn = False
    del b[300:]
else:
    sys.exit('unknown damage ' + kind)
if fix_footer:
    csum(0, 512, 64)
if fix_dyn:
    csum(dyn, 1024, 36)
open(out, 'wb').write(b)
PY
}

refused() { # KIND WORD
    damage "$1" "$T/bad.vhd"
    set +e
    (ulimit -v 131072; "$VIMG" convert -f vpc -O raw "$T/bad.vhd" \
        "$T/out.raw") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc: $(cat "$T/err")"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$1: not one line: $(cat "$T/err")"
    grep -q "^vimg: $T/bad.vhd: .*$2" "$T/err" ||
        fail "$1: message lacks '$2': $(cat "$T/err")"
}

refused footer-checksum 'footer at 0x0 has checksum'
refused dyn-checksum 'dynamic disk header at 0x200 has checksum'
refused dyn-cookie 'no dynamic disk header'
refused dyn-offset-eof 'header offset .* outside the file'
refused bat-huge 'too large'
refused bat-small 'too small for the virtual size'
refused bat-eof 'outside the file'
refused block-size 'not a power of two'
refused block-huge 'not a power of two'
refused entry-eof 'past the end of the file'
refused entry-overlap 'overlaps'
refused differencing 'differencing VHD'
refused size-huge 'exceeds 2040 GiB'
refused truncated 'past the end of the file'
refused tiny 'footer'
