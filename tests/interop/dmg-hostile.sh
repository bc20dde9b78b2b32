#!/bin/sh
# Damaged and lying UDIF images: trailers, property lists and mish blocks
# that lie, chunks out of the disk or the file, chunks over QEMU's caps.
# Each is refused with one line naming the file and the problem, exit 1,
# quickly and within 128 MiB of address space; a damaged stream fails the
# read that needs it the same way.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/readonly.inc"

"$PY" -c 'import random, sys; r = random.Random(3); d = bytearray(1 << 18)
d[0:90000] = r.randbytes(90000); open(sys.argv[1], "wb").write(d)' \
    "$T/src.raw"
"$PY" "$(dirname "$0")/dmg-make.py" "$T/src.raw" "$T/good.dmg" \
    --types zlib,raw --chunk 64 --parts 2
"$PY" "$(dirname "$0")/dmg-make.py" "$T/src.raw" "$T/rsrc.dmg" \
    --types zlib,raw --chunk 64 --parts 2 --rsrc

damage() { # KIND OUT
    "$PY" - "$T/good.dmg" "$T/rsrc.dmg" "$2" "$1" <<'PY'
import base64, re, struct, sys
good, rsrc, out, kind = sys.argv[1:5]
b = bytearray(open(rsrc if kind.startswith('rsrc') else good, 'rb').read())
k = len(b) - 512
def q(off): return struct.unpack_from('>Q', b, len(b) - 512 + off)[0]
def set_q(off, v): struct.pack_into('>Q', b, len(b) - 512 + off, v)
xml_at, xml_len = q(216), q(224)
xml = bytes(b[xml_at:xml_at + xml_len]).decode()
datas = re.findall(r'<data>(.*?)</data>', xml, re.S) or ['']
mish = bytearray(base64.b64decode(datas[0]))
def put_xml(text):
    global b
    t = text.encode()
    b = b[:xml_at] + t + b[k:]
    set_q(224, len(t))
def put_mish():
    put_xml(xml.replace(datas[0], base64.b64encode(mish).decode(), 1))
def chunk(i, off, fmt, v):
    struct.pack_into(fmt, mish, 204 + 40 * i + off, v)
if kind == 'no-koly': b[k:k + 4] = b'kolx'
elif kind == 'koly-version': struct.pack_into('>I', b, k + 4, 5)
elif kind == 'xml-eof': set_q(224, 1 << 40)
elif kind == 'xml-huge':
    # A list past the 16 MiB cap, in a sparse file.
    b = b[:k] + bytes((17 << 20) - k) + b[k:]
    set_q(216, 0); set_q(224, 17 << 20)
elif kind == 'no-lists': set_q(224, 0)
elif kind == 'data-fork-eof': set_q(24, 1 << 40)
elif kind == 'sectors-huge': set_q(492, 1 << 62)
elif kind == 'no-blkx':
    put_xml(xml.replace('<key>blkx</key>', '<key>blk</key>'))
elif kind == 'blkx-dict':
    put_xml(xml.replace('<key>blkx</key>\n\t\t<array>',
                        '<key>blkx</key><dict>', 1))
elif kind == 'array-open': put_xml(xml.replace('</array>', ''))
elif kind == 'data-open':
    cut = xml.rindex('</data>', 0, xml.index('plst'))
    put_xml(xml[:cut] + '</array></dict></plist>')
elif kind == 'base64': put_xml(xml.replace(datas[0], '!!' + datas[0], 1))
elif kind == 'not-mish': mish[0:4] = b'MISH'; put_mish()
elif kind == 'count-lies':
    struct.pack_into('>I', mish, 200, 100000); put_mish()
elif kind == 'past-disk': set_q(492, 100)
elif kind == 'overlap': chunk(1, 8, '>Q', 10); put_mish()
elif kind == 'chunk-eof': chunk(0, 24, '>Q', 1 << 40); put_mish()
elif kind == 'chunk-long': chunk(0, 32, '>Q', 65 << 20); put_mish()
elif kind == 'chunk-sectors':
    chunk(0, 16, '>Q', (64 << 11) + 1); put_mish(); set_q(492, 1 << 30)
elif kind == 'raw-short': chunk(1, 32, '>Q', 100); put_mish()
elif kind == 'sector-wrap':
    struct.pack_into('>Q', mish, 8, (1 << 64) - 1); put_mish()
elif kind == 'stream': b[2:40] = bytes(38)
elif kind == 'rsrc-eof': set_q(48, 1 << 40)
elif kind == 'rsrc-data': struct.pack_into('>I', b, q(40) + 8, 1 << 30)
elif kind == 'rsrc-res': struct.pack_into('>I', b, q(40) + 256, 1 << 30)
elif kind == 'tiny': b = b[:100]
else: sys.exit('unknown damage ' + kind)
open(out, 'wb').write(b)
PY
}

refused() { # KIND WORDS
    damage "$1" "$T/bad.dmg"
    set +e
    (ulimit -v 131072; "$VIMG" convert -f dmg -O raw "$T/bad.dmg" \
        "$T/out.raw") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "$1: exit $rc: $(cat "$T/err")"
    one_line "^vimg: $T/bad.dmg: .*$2"
}

refused no-koly 'Could not locate UDIF trailer'
refused koly-version 'trailer version 5'
refused xml-eof 'property list .* past the trailer'
refused xml-huge 'property list of 17825792 bytes is larger than max'
refused no-lists 'no property list and no resource fork'
refused data-fork-eof 'data fork at 0x10000000000'
refused sectors-huge 'sector count .* too large'
refused no-blkx 'no blkx resource'
refused blkx-dict 'not followed by an array'
refused array-open 'blkx array is not closed'
refused data-open '<data> is not closed'
refused base64 'blkx entry 0 is not base64'
refused not-mish 'blkx entry 0 is not a mish block'
refused count-lies 'claims 100000 chunks'
refused past-disk 'past the end of the disk'
refused overlap 'overlap at sector 10'
refused chunk-eof 'lies past the data fork'
refused chunk-long 'length 68157440 .* larger than max'
refused chunk-sectors 'sector count 131073 .* larger than max'
refused raw-short 'raw chunk .* 100 bytes'
refused sector-wrap 'overflows'
refused stream 'zlib chunk 0 at 0x0 does not decompress'
refused rsrc-eof 'resource fork .* past the trailer'
refused rsrc-data 'resource fork data .* outside the fork'
refused rsrc-res 'resource at 0x100 .* bad length'
refused tiny 'at least 512 bytes'
