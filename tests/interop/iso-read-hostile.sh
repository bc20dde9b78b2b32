#!/bin/sh
# A hostile ISO cannot make vimg iso extract write outside DEST: entries
# named ".." or containing '/', symlinks pointing out (relative or
# absolute), and a directory sharing its name with an earlier symlink are
# refused with exit 1 and a message naming the entry; nothing appears
# outside DEST, and no symlink is followed.
. "$(dirname "$0")/functions.sh"
requires xorriso python3
damage="python3 $(dirname "$0")/iso-damage.py"

# check NAME IMAGE PATTERN: extraction fails with PATTERN in the message and
# the sandbox holds nothing but dest/.
check() {
    rm -rf "$T/box"
    mkdir -p "$T/box/dest"
    expect_status 1 "$VIMG" iso extract "$2" "$T/box/dest"
    grep -q "$3" "$T/err" || fail "$1: message '$(cat "$T/err")' lacks '$3'"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$1: not a one-line error"
    grep -q "$(basename "$2")" "$T/err" || fail "$1: message does not name the image"
    [ "$(ls -A "$T/box")" = dest ] || fail "$1: wrote outside DEST: $(ls -A "$T/box")"
    [ ! -e "$T/pwned" ] && [ ! -e "$T/box/pwned" ] || fail "$1: escaped"
}

mkdir -p "$T/s1" "$T/s2" "$T/s3" "$T/s4/d2" "$T/s4/sub"
echo a > "$T/s1/zz"
echo b > "$T/s1/qq1"
ln -s ../../pwned "$T/s2/up"
ln -s "$T/pwned" "$T/s3/abs"
ln -s sub "$T/s4/d1"
echo c > "$T/s4/d2/f"
mk() { xorriso -as mkisofs -quiet -R -o "$1" "$2" 2>/dev/null; }
mk "$T/s1.iso" "$T/s1"
mk "$T/s2.iso" "$T/s2"
mk "$T/s3.iso" "$T/s3"
mk "$T/s4.iso" "$T/s4"
$damage "$T/s1.iso" "$T/dotdot.iso" rename zz ..
$damage "$T/s1.iso" "$T/slash.iso" rename qq1 ../
$damage "$T/s4.iso" "$T/dup.iso" rename d2 d1

check dotdot "$T/dotdot.iso" '/\.\.: refusing to extract an entry named "\.\."'
check slash "$T/slash.iso" 'refusing to extract an entry named "\.\./"'
check relative-symlink "$T/s2.iso" '/up: refusing symlink to "\.\./\.\./pwned"'
check absolute-symlink "$T/s3.iso" '/abs: refusing symlink to "/'
check symlink-then-dir "$T/dup.iso" '/d1: cannot open directory'
[ ! -e "$T/box/dest/sub/f" ] || fail "followed a symlink while extracting"
# The listing itself still works: the names are only refused on disk.
"$VIMG" iso ls "$T/dotdot.iso" | grep -qx '\.\.' || fail "ls of the hostile image"
