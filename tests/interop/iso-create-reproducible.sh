#!/bin/sh
# vimg iso create with SOURCE_DATE_EPOCH: two builds of equal trees made in
# different orders, in different folders and at different times give
# byte-identical images; file times after the epoch are clamped to it, and
# access and change times are not recorded.
. "$(dirname "$0")/functions.sh"
requires xorriso
export TZ=UTC
make_tree() {   # make_tree DIR ORDER...
    dir=$1; shift
    mkdir -p "$dir/etc" "$dir/boot"
    for f in "$@"; do printf '%s\n' "$f" > "$dir/etc/$f"; done
    head -c 3000 /dev/zero | tr '\0' 'b' > "$dir/boot/loader.bin"
    ln -sf ../etc/a "$dir/boot/link"
    touch -d '2001-02-03 04:05:06' "$dir/etc/a"
}
make_tree "$T/one" a b c d e f
sleep 1
make_tree "$T/two/nested" f e d c b a
export SOURCE_DATE_EPOCH=1700000000
"$VIMG" iso create -o "$T/1.iso" -V REPRO -b boot/loader.bin "$T/one"
sleep 1
"$VIMG" iso create -o "$T/2.iso" -V REPRO -b boot/loader.bin "$T/two/nested"
cmp "$T/1.iso" "$T/2.iso" || fail "images differ"

# Times: a's own time survives; newer ones are clamped to the epoch.
xorriso -indev "$T/1.iso" -lsl /etc/a /etc/b > "$T/ls" 2>/dev/null
grep -q 'Feb  3  2001 .*/etc/a' "$T/ls" || { cat "$T/ls"; fail "old time lost"; }
grep -q 'Nov 14  2023 .*/etc/b' "$T/ls" || { cat "$T/ls"; fail "new time not clamped"; }
# The volume dates are the epoch (2023-11-14 22:13:20 UTC).
dd if="$T/1.iso" bs=1 skip=$((16 * 2048 + 813)) count=16 2>/dev/null > "$T/d"
[ "$(cat "$T/d")" = 2023111422132000 ] || fail "creation date $(cat "$T/d")"

# An epoch in the future clamps nothing, yet access and change times
# (moved by reading and by chmod) do not leak into the image.
export SOURCE_DATE_EPOCH=4000000000
"$VIMG" iso create -o "$T/4.iso" "$T/one"
sleep 1
cat "$T/one/etc/b" > /dev/null; touch -a "$T/one/etc/c"
chmod 600 "$T/one/etc/d"; chmod 644 "$T/one/etc/d"
"$VIMG" iso create -o "$T/5.iso" "$T/one"
cmp "$T/4.iso" "$T/5.iso" || fail "access or change times recorded"

SOURCE_DATE_EPOCH=12x expect_status 1 "$VIMG" iso create -o "$T/3.iso" "$T/one"
grep -q 'SOURCE_DATE_EPOCH' "$T/err" || fail "bad SOURCE_DATE_EPOCH accepted"
