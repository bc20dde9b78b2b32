#!/bin/sh
# vimg iso create fails cleanly when the output cannot grow (ulimit -f):
# exit 1 with a message naming the output, an existing OUT left as it was,
# and no temporary file left behind.
. "$(dirname "$0")/functions.sh"
mkdir "$T/src" "$T/o"
head -c 3000000 /dev/urandom > "$T/src/data"
echo previous > "$T/o/t.iso"
# ulimit -f counts 512-byte blocks for sh: 2 MB.
(ulimit -f 4096; exec "$VIMG" iso create -o "$T/o/t.iso" "$T/src") \
    > "$T/log" 2> "$T/err" && fail "succeeded past the file size limit"
grep -q "^vimg: $T/o/t.iso: .*File too large" "$T/err" ||
    { cat "$T/err"; fail "message"; }
[ "$(cat "$T/o/t.iso")" = previous ] || fail "existing output changed"
[ "$(ls "$T/o")" = t.iso ] || fail "left behind: $(ls "$T/o")"

# A missing source and an unreadable file fail before anything is written.
expect_status 1 "$VIMG" iso create -o "$T/o/u.iso" "$T/nonexistent"
grep -q "nonexistent" "$T/err" || fail "missing source not named"
[ "$(ls "$T/o")" = t.iso ] || fail "left behind: $(ls "$T/o")"
