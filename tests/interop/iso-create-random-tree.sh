#!/bin/sh
# vimg iso create on a seeded random tree: names of random bytes (any but
# '/' and NUL, up to 255), sizes from 0 to 300 KB around sector edges,
# random modes, nested folders, relative symlinks and hard links. xorriso
# (restoring hard links from the Rock Ridge serial numbers) and vimg's own
# reader both give back the same tree, and the Joliet and plain ISO 9660
# views hold every file.
. "$(dirname "$0")/functions.sh"
requires xorriso python3
python3 - "$T/src" <<'PY'
import os, random, sys
root = sys.argv[1]
rnd = random.Random(20261124)
def name():
    n = rnd.choice([1, 2, 8, 12, 31, 64, 65, 100, 200, 255])
    while True:
        b = bytes(rnd.choice([rnd.randrange(1, 256), rnd.randrange(97, 123),
                              0x2e]) for _ in range(n)).replace(b'/', b'_')
        if b not in (b'.', b'..'):
            return b
dirs = [root.encode()]
os.mkdir(root)
files = []
for i in range(300):
    d = rnd.choice(dirs)
    p = os.path.join(d, name())
    if os.path.lexists(p):
        continue
    kind = rnd.random()
    if kind < 0.2:
        os.mkdir(p, rnd.choice([0o755, 0o700, 0o555]))
        dirs.append(p)
    elif kind < 0.3 and files:
        os.symlink(os.path.relpath(rnd.choice(files), d), p)
    elif kind < 0.35 and files:
        os.link(rnd.choice(files), p)
    else:
        size = rnd.choice([0, 1, 2047, 2048, 2049, 4096, 300000])
        with open(p, 'wb') as f:
            f.write(rnd.randbytes(size))
        os.chmod(p, rnd.choice([0o644, 0o600, 0o755, 0o444]))
        files.append(p)
for d in dirs[1:]:
    os.chmod(d, 0o755)   # readable for the walk and the comparison
PY
"$VIMG" iso create -o "$T/t.iso" "$T/src"
meta() { (cd "$1" && find . -printf '%p %y %m %s %l %n\n' | LC_ALL=C sort); }
meta "$T/src" > "$T/want"

mkdir "$T/x"
xorriso -hardlinks on -osirrox on -indev "$T/t.iso" -extract / "$T/x" \
    > "$T/xo" 2>&1 ||
    { cat "$T/xo"; fail "xorriso"; }
! grep -E 'WARNING|SORRY|FAILURE' "$T/xo" || fail "xorriso complained"
diff -r --no-dereference "$T/src" "$T/x" > /dev/null || fail "xorriso: contents"
meta "$T/x" > "$T/got"
diff "$T/want" "$T/got" > /dev/null || fail "xorriso: names, modes, sizes, links"

mkdir "$T/y"
"$VIMG" iso extract "$T/t.iso" "$T/y" || fail "vimg iso extract"
diff -r --no-dereference "$T/src" "$T/y" > /dev/null || fail "vimg: contents"

# Joliet holds every regular file and folder; the plain ISO 9660 tree
# (with Rock Ridge on) every entry. Names may hold newlines: count bytes.
count() { (cd "$T/src" && find . \( "$@" \) -printf x | wc -c); }
for view in "norock $(count -type f -o -type d)" "ecma119 $(count -true)"; do
    set -- $view
    xorriso -read_fs "$1" -indev "$T/t.iso" -find / 2>/dev/null |
        grep -c "^'/" > "$T/n" || true
    [ "$(cat "$T/n")" = "$2" ] || fail "$1 view has $(cat "$T/n") of $2 entries"
done
