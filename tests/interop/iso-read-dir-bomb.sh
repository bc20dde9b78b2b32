#!/bin/sh
# A directory bomb: a small ISO whose sibling directories share extents (a
# DAG, not a loop) lists as 2^21 entries if each path is followed. vimg
# enters each directory extent once: iso ls -R and iso extract stop at the
# first directory reached twice, with one line and little output. Files
# sharing one extent without being hard links are copied only up to
# max(4 x the image size, 1 GiB) in all.
. "$(dirname "$0")/functions.sh"
requires xorriso python3 timeout
damage="python3 $(dirname "$0")/iso-damage.py"

# 20 levels, each with folders a and b; then every b gets a's extent.
p=$T/s
for i in $(seq 1 20); do
    mkdir -p "$p/a" "$p/b"
    p=$p/a
done
xorriso -as mkisofs -quiet -R -o "$T/ok.iso" "$T/s" 2>/dev/null
$damage "$T/ok.iso" "$T/bomb.iso" dir-dag a b
[ "$(stat -c %s "$T/bomb.iso")" -lt 1048576 ] || fail "the bomb is not small"
# The undamaged tree has 40 folders.
[ "$("$VIMG" iso ls -R "$T/ok.iso" | wc -l)" = 40 ] || fail "listing of ok.iso"

pattern="^vimg: $T/bomb.iso: directory /a\(/a\)*/b shares its extent (LBA [0-9]*) with a directory already read"
expect_status 1 timeout 20 "$VIMG" iso ls -R "$T/bomb.iso"
grep -q "$pattern" "$T/err" || fail "ls message: $(cat "$T/err")"
[ "$(wc -l < "$T/err")" = 1 ] || fail "ls: not one line"
[ "$(wc -l < "$T/out")" -le 40 ] || fail "ls printed $(wc -l < "$T/out") lines"

mkdir "$T/x"
expect_status 1 timeout 20 "$VIMG" iso extract "$T/bomb.iso" "$T/x"
grep -q "$pattern.*entries extracted before the error remain in $T/x)$" \
    "$T/err" || fail "extract message: $(cat "$T/err")"
[ "$(wc -l < "$T/err")" = 1 ] || fail "extract: not one line"
[ "$(find "$T/x" | wc -l)" -le 41 ] || fail "extract made $(find "$T/x" | wc -l) entries"

# 1100 empty files all given the extent of a 1 MiB file: a 1.5 MiB image
# that would extract to 1.1 GiB. Zeros, so the copies are holes.
mkdir "$T/f"
head -c 1048576 /dev/zero > "$T/f/big"
python3 -c '
import sys
for i in range(1100):
    open("%s/f%04d" % (sys.argv[1], i), "w").close()' "$T/f"
xorriso -as mkisofs -quiet -R -o "$T/ok2.iso" "$T/f" 2>/dev/null
$damage "$T/ok2.iso" "$T/share.iso" share-extent big f
[ "$("$VIMG" iso ls "$T/share.iso" | wc -l)" = 1101 ] || fail "listing of share.iso"
mkdir "$T/y"
expect_status 1 timeout 30 "$VIMG" iso extract "$T/share.iso" "$T/y"
grep -q "^vimg: $T/share.iso: /f[0-9]*: extracting it would copy more than 1073741824 bytes in all" \
    "$T/err" || fail "copy budget message: $(cat "$T/err")"
[ "$(wc -l < "$T/err")" = 1 ] || fail "copy budget: not one line"
n=$(ls "$T/y" | wc -l)
[ "$n" -ge 1000 ] && [ "$n" -le 1024 ] || fail "$n files extracted"
