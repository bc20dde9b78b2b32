#!/bin/sh
# Bad sizes (negative, overflowing, fractional bytes, unknown suffix),
# unknown options and commands: exit 1, one line on stderr, no file made.
# qemu-img rejects the same sizes.
. "$(dirname "$0")/functions.sh"
requires qemu-img
img=$T/x.img
for size in -1 99999999999999999999 16E 8E 1.5 12Q 1G5 "" 0x 0x1.5k 1e3; do
    expect_status 1 qemu-img create -q -f raw "$img" -- "$size"
    rm -f "$img"
    expect_status 1 "$VIMG" create -q -f raw "$img" -- "$size"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "size '$size': $(cat "$T/err")"
    grep -q "^vimg: invalid image size '$size'" "$T/err" || fail "size '$size': $(cat "$T/err")"
    [ ! -e "$img" ] || fail "size '$size' made a file"
done
# The largest size qemu-img accepts is fine; 1.5G is a whole number of bytes.
"$VIMG" create -q -f raw "$img" 1.5G
[ "$(stat -c %s "$img")" = 1610612736 ] || fail "1.5G"
"$VIMG" create -q -f raw "$T/hex.img" 0x100000
[ "$(stat -c %s "$T/hex.img")" = 1048576 ] || fail "hexadecimal size"
expect_status 1 "$VIMG" resize -f raw "$img" 12Q
expect_status 1 "$VIMG" resize -f raw --shrink -- "$img" -2G
grep -q "^vimg: .*x.img: " "$T/err" || fail "shrink below 0: $(cat "$T/err")"
[ "$(stat -c %s "$img")" = 1610612736 ] || fail "failed resize changed the size"
expect_status 1 "$VIMG" convert -S 1Q -f raw "$img" "$T/y.img"
expect_status 1 "$VIMG" convert -m 0 -f raw "$img" "$T/y.img"
expect_status 1 "$VIMG" convert -m 65 -f raw "$img" "$T/y.img"
[ ! -e "$T/y.img" ] || fail "bad convert options made a file"

# Exit 1 for usage errors, compare included (qemu-img's error_exit); a
# wrong number of arguments prints the problem, then the whole usage.
for cmd in create info convert compare map resize check measure bitmap amend \
           dd bench; do
    expect_status 1 "$VIMG" $cmd --no-such-option "$img"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$cmd: $(cat "$T/err")"
    grep -q "^vimg: $cmd: unrecognized option '--no-such-option'$" "$T/err" ||
        fail "$cmd: $(cat "$T/err")"
    expect_status 1 qemu-img $cmd
    expect_status 1 "$VIMG" $cmd
    [ "$(sed -n 1p "$T/err")" = "vimg: wrong number of arguments" ] &&
        grep -q "^Usage: vimg $cmd " "$T/err" ||
        fail "$cmd without arguments: $(cat "$T/err")"
    "$VIMG" $cmd --help > "$T/help"
    sed 1d "$T/err" | cmp -s - "$T/help" ||
        fail "$cmd without arguments: not the whole usage: $(cat "$T/err")"
done
expect_status 1 "$VIMG" info -f
grep -q "^vimg: info: option requires an argument -- 'f'$" "$T/err" || fail "$(cat "$T/err")"
expect_status 1 "$VIMG" frobnicate "$img"
grep -q "^vimg: unknown command 'frobnicate'$" "$T/err" || fail "$(cat "$T/err")"
expect_status 1 "$VIMG"
expect_status 0 "$VIMG" --help
expect_status 0 "$VIMG" info --help
grep -q '^Usage: vimg info' "$T/out" || fail "info --help"
