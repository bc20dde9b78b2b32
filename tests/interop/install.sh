#!/bin/sh
# make install (staged with DESTDIR) puts the binary, libvimg (shared and
# static), the header, libvimg.pc, the man page and the bash completion
# under the prefix; `man -M PREFIX/share/man vimg` shows the manual, and a
# small program builds against the installed library through pkg-config,
# linked shared and static.
. "$(dirname "$0")/functions.sh"
requires make meson pkg-config cc python3
: "${SRCDIR:=$(dirname "$0")/../..}"
B=$(cd "$(dirname "$VIMG")/.." && pwd)
[ -f "$B/build.ninja" ] || { echo "SKIP: $B is not a meson build folder"; exit 77; }
# The build's own prefix, so that make install's reconfiguration changes
# nothing; DESTDIR stages the tree in the scratch folder.
prefix=$(meson introspect --buildoptions "$B" | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "prefix"))')
libdir=$(meson introspect --buildoptions "$B" | python3 -c '
import json, sys
print(next(o["value"] for o in json.load(sys.stdin) if o["name"] == "libdir"))')
make -s -C "$SRCDIR" install BUILD="$B" PREFIX="$prefix" DESTDIR="$T/root" \
    > "$T/install.log" 2>&1 || { cat "$T/install.log"; fail "make install"; }
P=$T/root$prefix
L=$P/$libdir
for f in bin/vimg include/vimg/vimg.h share/man/man1/vimg.1 \
         share/bash-completion/completions/vimg; do
    [ -f "$P/$f" ] || fail "make install did not install $f"
done
for f in libvimg.a libvimg.so pkgconfig/libvimg.pc; do
    [ -e "$L/$f" ] || fail "make install did not install $libdir/$f"
done
LD_LIBRARY_PATH=$L "$P/bin/vimg" --version | grep -q '^vimg version' ||
    fail "the installed vimg does not run"
bash -n "$P/share/bash-completion/completions/vimg" ||
    fail "the bash completion does not parse"

# The manual, as `man vimg` finds it once PREFIX/share/man is searched.
if command -v man >/dev/null; then
    MANPAGER=cat MANWIDTH=80 man -M "$P/share/man" vimg > "$T/man.txt" 2>&1 ||
        { cat "$T/man.txt"; fail "man -M $P/share/man vimg"; }
    grep -q "create, inspect, convert and check" "$T/man.txt" ||
        fail "man shows something else: $(head -5 "$T/man.txt")"
    grep -q "^ *dd" "$T/man.txt" || fail "the installed manual has no dd"
else
    echo "man is not installed (Debian: man-db): manual not checked"
fi

# A client of the installed library, through pkg-config.
cat > "$T/prog.c" <<'C'
#include <stdio.h>
#include <vimg/vimg.h>

int main(int argc, char **argv)
{
    struct vimg_image *img = vimg_open(argv[1], NULL);
    if (argc != 2 || !img) {
        fprintf(stderr, "%s\n", img ? "usage" : vimg_get_error());
        return 1;
    }
    printf("%s %lld\n", vimg_get_format(img), (long long)vimg_get_size(img));
    return vimg_close(img) < 0;
}
C
export PKG_CONFIG_PATH="$L/pkgconfig"
pc() { pkg-config --define-variable=prefix="$P" "$@" libvimg; }
# shellcheck disable=SC2046
cc -o "$T/prog" "$T/prog.c" $(pc --cflags --libs) ||
    fail "cannot build against the installed libvimg"
"$VIMG" create -q -f qcow2 "$T/disk.qcow2" 1M
[ "$(LD_LIBRARY_PATH=$L "$T/prog" "$T/disk.qcow2")" = "qcow2 1048576" ] ||
    fail "the shared client prints the wrong facts"
# shellcheck disable=SC2046
cc -o "$T/prog-static" "$T/prog.c" $(pc --cflags) "$L/libvimg.a" \
    $(pc --static --libs | sed 's/-lvimg\b//') ||
    fail "cannot link the installed static libvimg"
[ "$("$T/prog-static" "$T/disk.qcow2")" = "qcow2 1048576" ] ||
    fail "the static client prints the wrong facts"
