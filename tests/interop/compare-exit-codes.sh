#!/bin/sh
# compare exits 0/1/2 and prints what qemu-img compare prints: identical,
# a content mismatch at the same offset, a size mismatch with a zero tail
# (identical without -s, different with -s), a non-zero tail, a missing file.
. "$(dirname "$0")/functions.sh"
requires qemu-img
a=$T/a.img b=$T/b.img big=$T/big.img
"$VIMG" create -q -f raw "$a" 8M
dd if=/dev/urandom of="$a" bs=64k seek=5 count=2 conv=notrunc 2>/dev/null
cp "$a" "$b"
printf 'x' | dd of="$b" bs=1 seek=400000 conv=notrunc 2>/dev/null
cp "$a" "$big"
truncate -s 9M "$big"

both() { # both STATUS ARGS...: same status and stdout from both tools
    want=$1; shift
    expect_status "$want" qemu-img compare "$@"; cp "$T/out" "$T/qout"
    expect_status "$want" "$VIMG" compare "$@"
    cmp -s "$T/out" "$T/qout" || { diff "$T/out" "$T/qout" >&2; fail "output of compare $*"; }
}
both 0 -f raw -F raw "$a" "$a"
grep -q '^Images are identical.$' "$T/out" || fail "identical message"
both 1 -f raw -F raw "$a" "$b"
grep -q '^Content mismatch at offset 399872!$' "$T/out" || fail "mismatch offset"
both 0 -f raw -F raw "$a" "$big"
both 0 -f raw -F raw "$big" "$a"
both 1 -s -f raw -F raw "$a" "$big"
printf 'y' | dd of="$big" bs=1 seek=$((8 * 1048576 + 1000)) conv=notrunc 2>/dev/null
both 1 -f raw -F raw "$a" "$big"
both 1 -f raw -F raw "$big" "$a"
both 0 -q -f raw -F raw "$a" "$a"
[ ! -s "$T/out" ] || fail "-q printed something"
expect_status 2 qemu-img compare "$a" "$T/missing.img"
expect_status 2 "$VIMG" compare "$a" "$T/missing.img"
[ "$(wc -l < "$T/err")" = 1 ] && grep -q 'missing.img' "$T/err" || fail "missing-file message"
# Usage errors exit 1, as qemu-img's do.
expect_status 1 qemu-img compare "$a"
expect_status 1 "$VIMG" compare "$a"
expect_status 1 qemu-img compare --bogus "$a" "$b"
expect_status 1 "$VIMG" compare --bogus "$a" "$b"
