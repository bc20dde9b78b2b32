#!/bin/sh
# vimg iso create: Rock Ridge entries too long for a directory record go
# to continuation areas (CE), chained across sectors. 60 names of 250
# bytes and symlinks of 1000 and 2000 bytes read back through isoinfo -R,
# xorriso (up to its 1023-byte symlink limit) and vimg's own reader.
. "$(dirname "$0")/functions.sh"
requires xorriso isoinfo
mk_target() { python3 -c "import sys; print(('/'.join(['d' * 99] * 30))[:int(sys.argv[1]) - 1] + 'e')" "$1"; }
for set in a b; do mkdir "$T/$set"; done
for i in $(seq 10 69); do
    name=$(printf 'n%.0s' $(seq 1 248))$i
    echo "$i" > "$T/a/$name"
    cp "$T/a/$name" "$T/b/"
done
ln -s "$(mk_target 1000)" "$T/a/link1000"
ln -s "$(mk_target 1000)" "$T/b/link1000"
ln -s "$(mk_target 2000)" "$T/b/link2000"

"$VIMG" iso create -o "$T/a.iso" "$T/a"
"$VIMG" iso create -o "$T/b.iso" "$T/b"
mkdir "$T/xa" "$T/xb"
xorriso -osirrox on -indev "$T/a.iso" -extract / "$T/xa" > "$T/xo" 2>&1 ||
    { cat "$T/xo"; fail "xorriso"; }
diff -r --no-dereference "$T/a" "$T/xa" || fail "xorriso read differs"
"$VIMG" iso extract "$T/b.iso" "$T/xb" || fail "vimg iso extract"
diff -r --no-dereference "$T/b" "$T/xb" || fail "vimg read differs"
isoinfo -R -l -i "$T/b.iso" 2>"$T/ie" > "$T/l"
[ ! -s "$T/ie" ] || { cat "$T/ie"; fail "isoinfo printed errors"; }
[ "$(grep -c "^-.* $(printf 'n%.0s' $(seq 1 248))[1-6][0-9] *\$" "$T/l")" = 60 ] ||
    fail "isoinfo -R: long names"
[ "$(sed -n 's/.* link2000 -> //p' "$T/l" | tr -d ' \n')" = "$(mk_target 2000)" ] ||
    fail "isoinfo -R: 2000-byte symlink target"
