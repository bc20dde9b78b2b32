#!/bin/sh
# Differencing VHD and VHDX: the parent is opened only through the open
# policy, and everything that goes wrong is one line and exit 1: a missing
# parent, a parent that is not the one the child was made from, a parent
# named outside the folder under --refs=same-dir, any parent under
# --untrusted (info still names it), writing, and lying locators and
# bitmaps.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/vhd.inc"
requires qemu-img qemu-io
MAKE="$(dirname "$0")/vhd-diff-make.py"

one_line() { # WORD: exit 1 and one line mentioning WORD
    [ "$(wc -l < "$T/err")" = 1 ] || fail "not one line: $(cat "$T/err")"
    grep -q "$1" "$T/err" || fail "message lacks '$1': $(cat "$T/err")"
}
refused() { # WORD CMD...
    word=$1; shift
    set +e
    (ulimit -v 262144; "$@") >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" = 1 ] || fail "'$*' exited $rc: $(cat "$T/err")"
    one_line "$word"
}
vc() { "$VIMG" "$@" "$T/out.raw"; }

mkdir "$T/sub" "$T/away"
qemu-img create -q -f vhdx -o block_size=1M "$T/p.vhdx" 4M
qemu-io -f vhdx -c 'write -P 0x11 0 4M' "$T/p.vhdx" >/dev/null
qemu-img create -q -f vpc "$T/p.vhd" 4M
qemu-io -f vpc -c 'write -P 0x22 0 4M' "$T/p.vhd" >/dev/null
for f in vhdx vpc; do
    e=$f; [ $f = vpc ] && e=vhd
    "$VIMG" convert -f $f -O raw "$T/p.$e" "$T/p.$e.raw"
    mk() { # OUT [OPTION...]
        out=$1; shift
        "$SYSPY" "$MAKE" $f "$T/p.$e" "$T/p.$e.raw" "$out" "$T/exp" "$@"
    }

    # Missing parent: the file that is missing is named.
    mk "$T/away/c.$e"
    refused "away/p.$e" vc convert -f $f -O raw "$T/away/c.$e"

    # Not the parent it was made from.
    mk "$T/bad.$e" --bad-link
    refused "not.*made from" vc convert -f $f -O raw "$T/bad.$e"

    # Under --untrusted nothing is opened; info names the parent.
    mk "$T/c.$e"
    "$VIMG" --untrusted info "$T/c.$e" | grep -q "^backing file: p.$e " ||
        fail "$f: --untrusted info does not name the parent"
    refused "backing file 'p.$e' was not opened" \
        vc --untrusted convert -f $f -O raw "$T/c.$e"

    # --refs=same-dir: ".." and absolute paths out of the folder refused;
    # the same child with its parent beside it reads.
    mk "$T/sub/up.$e" --rel "..\\p.$e"
    refused "outside the image's folder" \
        vc --refs=same-dir convert -f $f -O raw "$T/sub/up.$e"
    mk "$T/sub/abs.$e" --no-rel --abs "$T/p.$e"
    refused "outside the image's folder" \
        vc --refs=same-dir convert -f $f -O raw "$T/sub/abs.$e"
    "$VIMG" --refs=same-dir convert -f $f -O raw "$T/c.$e" "$T/out.raw"
    cmp -s "$T/out.raw" "$T/exp" || fail "$f: same-dir child misread"

    # Only Windows paths: nothing to open here, but for the VHD's parent
    # name (a file name beside it, as Virtual PC stores it).
    mk "$T/win.$e" --no-rel --abs 'C:\vms\p.'$e
    if [ $f = vhdx ]; then
        refused "no parent path" vc convert -f $f -O raw "$T/win.$e"
    else
        "$VIMG" convert -f $f -O raw "$T/win.$e" "$T/out.raw"
        cmp -s "$T/out.raw" "$T/exp" || fail "$f: parent name not followed"
    fi

    # Writing is refused (differencing images are read-only).
    refused "read-only" "$VIMG" resize -f $f "$T/c.$e" 8M
done

# Lying structures, each refused at open.
mk_damaged() { # FMT KIND EXT
    "$SYSPY" "$MAKE" "$1" "$T/p.$3" "$T/p.$3.raw" "$T/d.$3" "$T/exp"
    "$SYSPY" - "$T/d.$3" "$2" <<'PYEOF'
import struct, sys
path, kind = sys.argv[1:3]
b = bytearray(open(path, 'rb').read())
MIB = 1 << 20
def vhd_seal(at, n, csum):
    struct.pack_into('>I', b, at + csum, 0)
    s = ~sum(b[at:at + n]) & 0xffffffff
    struct.pack_into('>I', b, at + csum, s)
if kind == 'locator-key':       # VHDX: an entry's key past the locator
    md = 3 * MIB
    item = md + struct.unpack_from('<I', b, md + 32 + 32 * 5 + 16)[0]
    struct.pack_into('<I', b, item + 20, 0x7fff0000)
elif kind == 'locator-count':   # VHDX: more entries than the item holds
    md = 3 * MIB
    item = md + struct.unpack_from('<I', b, md + 32 + 32 * 5 + 16)[0]
    struct.pack_into('<H', b, item + 18, 5000)
elif kind == 'locator-huge':    # VHDX: a locator item of 1 MiB
    md = 3 * MIB
    struct.pack_into('<I', b, md + 32 + 32 * 5 + 20, MIB // 2)
elif kind == 'no-bitmap':       # VHDX: partial blocks, bitmap entry absent
    struct.pack_into('<Q', b, 2 * MIB + 4096 * 8, 0)
elif kind == 'vhd-locator':     # VHD: locator data past the end
    struct.pack_into('>Q', b, 512 + 576 + 16, 1 << 40)
    vhd_seal(512, 1024, 36)
open(path, 'wb').write(b)
PYEOF
}
mk_damaged vhdx locator-key vhdx
refused "outside the locator" vc convert -f vhdx -O raw "$T/d.vhdx"
mk_damaged vhdx locator-count vhdx
refused "entries, more than" vc convert -f vhdx -O raw "$T/d.vhdx"
mk_damaged vhdx locator-huge vhdx
refused "parent locator is .* bytes" vc convert -f vhdx -O raw "$T/d.vhdx"
mk_damaged vhdx no-bitmap vhdx
refused "sector bitmap is missing" vc convert -f vhdx -O raw "$T/d.vhdx"
mk_damaged vpc vhd-locator vhd
refused "parent locator of .* outside the file" \
    vc convert -f vpc -O raw "$T/d.vhd"
echo "ok"
