#!/bin/sh
# An iso extract that fails part way (here past RLIMIT_FSIZE, as on a full
# disk) removes the file it was writing and says, on its one error line,
# what the extraction left behind.
. "$(dirname "$0")/functions.sh"
requires xorriso

mkdir -p "$T/s/sub"
echo first > "$T/s/a-small"
echo second > "$T/s/sub/b-small"
head -c 3000000 /dev/urandom > "$T/s/sub/c-big"
echo last > "$T/s/z-small"
xorriso -as mkisofs -quiet -R -o "$T/t.iso" "$T/s" 2>/dev/null

# ulimit -f counts 512-byte blocks for sh: 1 MiB.
mkdir "$T/x"
(ulimit -f 2048; exec "$VIMG" iso extract "$T/t.iso" "$T/x") \
    > "$T/out" 2> "$T/err" && fail "succeeded past the file size limit"
[ "$(wc -l < "$T/err")" = 1 ] || fail "not one line: $(cat "$T/err")"
grep -q "^vimg: $T/t.iso: /sub/c-big: cannot write: File too large (removed the incomplete entry; 3 entries extracted before the error remain in $T/x)$" \
    "$T/err" || fail "message: $(cat "$T/err")"
[ ! -e "$T/x/sub/c-big" ] || fail "the partial file was left behind"
[ "$(cd "$T/x" && find . | sort | tr '\n' ' ')" = ". ./a-small ./sub ./sub/b-small " ] ||
    fail "left: $(cd "$T/x" && find . | sort | tr '\n' ' ')"

# A failure before anything is written says so.
mkdir "$T/y"
(ulimit -f 2048; exec "$VIMG" iso extract "$T/t.iso" /sub/c-big "$T/y") \
    > "$T/out" 2> "$T/err" && fail "succeeded past the file size limit"
grep -q "File too large (removed the incomplete entry; nothing else was extracted)$" \
    "$T/err" || fail "message: $(cat "$T/err")"
[ -z "$(ls -A "$T/y")" ] || fail "left: $(ls -A "$T/y")"
