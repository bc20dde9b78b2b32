#!/bin/sh
# vimg iso create: a tree with long and non-ASCII names, modes, symlinks
# (relative, absolute, multi-component, 400-char targets), hard links, a
# FIFO, a socket, a device (as root), a 400-file folder and a 12-level
# deep tree reads back identically through xorriso and isoinfo's Rock
# Ridge view, without warnings, and passes isovfy.
. "$(dirname "$0")/functions.sh"
requires xorriso isoinfo isovfy
src=$T/src
mkdir -p "$src"
d=$src; for i in $(seq 1 12); do d=$d/level$i; done
mkdir -p "$d" && echo deep > "$d/bottom.txt"
long=$(printf 'n%.0s' $(seq 1 200))
echo long > "$src/$long.txt"
printf 'caf\303\251 & spaces\n' > "$src/caf$(printf '\303\251') menu.txt"
touch "$src/.hidden" "$src/CaseA" "$src/casea" "$src/x.tar.gz" "$src/empty"
mkdir "$src/many" && for i in $(seq 1 400); do echo "$i" > "$src/many/file_$i.conf"; done
echo secret > "$src/private" && chmod 600 "$src/private"
echo tool > "$src/tool" && chmod 4755 "$src/tool"
mkdir "$src/locked" && chmod 750 "$src/locked"
ln -s ../x.tar.gz "$src/many/rel"
ln -s /etc/passwd "$src/abs"
ln -s "$(printf 'seg%d/' $(seq 1 80))end" "$src/longlink"
ln -s "/$long/../a/./b/c" "$src/oddlink"
echo shared > "$src/hard1" && ln "$src/hard1" "$src/many/hard2"
mkfifo "$src/fifo"
python3 -c 'import socket, sys; socket.socket(socket.AF_UNIX).bind(sys.argv[1])' \
    "$src/sock"
# Devices need root to create (and xorriso to restore).
dev=false
if [ "$(id -u)" = 0 ] && mknod "$src/null" c 1 3 2>/dev/null; then dev=true; fi
head -c 300000 /dev/urandom > "$src/random.bin"

"$VIMG" iso create -o "$T/t.iso" "$src"
mkdir "$T/x"
xorriso -osirrox on:device_files -indev "$T/t.iso" -extract / "$T/x" \
    > "$T/xo" 2>&1
! grep -E 'WARNING|SORRY|FAILURE' "$T/xo" || fail "xorriso complained"
diff -r --no-dereference -x fifo -x sock -x null "$src" "$T/x" ||
    fail "contents differ"
if $dev; then
    [ "$(stat -c '%F %t:%T' "$T/x/null")" = "character special file 1:3" ] ||
        fail "device node: $(stat -c '%F %t:%T' "$T/x/null")"
fi
# xorriso does not restore sockets: isoinfo checks that one below.
meta() { (cd "$1" && find . ! -name sock -printf '%p %y %m %s %U %G %l\n' |
          LC_ALL=C sort); }
meta "$src" > "$T/m1"; meta "$T/x" > "$T/m2"
diff "$T/m1" "$T/m2" || fail "names, modes, sizes, owners or link targets differ"

# isoinfo's Rock Ridge view: the same paths, no complaints.
isoinfo -R -f -i "$T/t.iso" 2>"$T/ie" | LC_ALL=C sort > "$T/names"
[ ! -s "$T/ie" ] || { cat "$T/ie"; fail "isoinfo -R printed errors"; }
(cd "$src" && find . -mindepth 1 | sed 's/^\.//' | LC_ALL=C sort) > "$T/want"
diff "$T/want" "$T/names" || fail "isoinfo -R names differ"
# The plain ISO 9660 view is valid too.
isoinfo -l -i "$T/t.iso" > /dev/null 2>"$T/ie"
[ ! -s "$T/ie" ] || { cat "$T/ie"; fail "isoinfo -l printed errors"; }

isoinfo -R -l -i "$T/t.iso" | grep -q '^s[-rwx]\{9\} .* sock *$' ||
    fail "socket not recorded"

# The plain ISO 9660 tree through libisofs: every entry, no complaints.
xorriso -read_fs ecma119 -indev "$T/t.iso" -find / > "$T/e" 2>&1
! grep -E 'WARNING|SORRY|FAILURE' "$T/e" || fail "xorriso (ISO 9660 names)"
[ "$(grep -c "^'/" "$T/e")" = "$(cd "$src" && find . | wc -l)" ] ||
    fail "ISO 9660 tree has a different number of entries"

# genisoimage's verifier: records, path tables and order are consistent.
isovfy "$T/t.iso" > "$T/v" 2>&1
tail -1 "$T/v" | grep -qx 'No errors found' || { cat "$T/v"; fail "isovfy"; }

# Hard links: one extent, link count 2.
isoinfo -R -l -i "$T/t.iso" | grep -E ' (hard1|hard2) *$' > "$T/h"
[ "$(wc -l < "$T/h")" = 2 ] || fail "hard links not listed"
[ "$(awk '{print $2}' "$T/h" | sort -u)" = 2 ] || fail "hard link count"
[ "$(sed 's/.*\[ *\([0-9]*\) .*/\1/' "$T/h" | sort -u | wc -l)" = 1 ] ||
    fail "hard links do not share their data"
