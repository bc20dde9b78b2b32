#!/bin/sh
# A backing file without a backing format is refused, as by qemu-img 7.2:
# create -b / -o backing_file= without -F / backing_fmt, and convert -B /
# -o backing_file= without one. The image would otherwise have its backing
# file probed at every open, and a guest writing a qcow2 header into a raw
# backing file could make it read a host file. Same exit status as
# qemu-img, nothing left behind, an existing target kept; with a format
# both succeed and record it.
. "$(dirname "$0")/functions.sh"
requires qemu-img
cd "$T"
qemu-img create -q -f raw base.raw 4M
qemu-img create -q -f qcow2 base.qcow2 4M
qemu-img create -q -f qcow2 src.qcow2 4M
echo "old contents" > keep.qcow2
keep=$(sha256sum < keep.qcow2)

no_leftovers() {
    left=$(ls -A | grep -v -e '^base\.' -e '^src.qcow2$' -e '^keep.qcow2$' \
                        -e '^out$' -e '^err$' || true)
    [ -z "$left" ] || fail "$*: left behind: $left"
    [ "$(sha256sum < keep.qcow2)" = "$keep" ] || fail "$*: changed keep.qcow2"
}
refused() { # refused ARGS...: both tools exit 1 and leave nothing
    for tool in qemu-img "$VIMG"; do
        expect_status 1 "$tool" "$@"
        no_leftovers "$tool $*"
    done
}
t=new.qcow2
refused create -f qcow2 -b base.raw "$t"
grep -q "^vimg: $t: Backing file specified without backing format" err ||
    fail "message: $(cat err)"
refused create -f qcow2 -b base.raw "$t" 4M
refused create -f qcow2 -b base.qcow2 "$t" 4M
refused create -f qcow2 -o backing_file=base.raw "$t" 4M
refused create -f qcow2 -o backing_file=base.raw,size=4M "$t"
refused convert -O qcow2 -B base.raw src.qcow2 "$t"
refused convert -O qcow2 -B base.qcow2 src.qcow2 "$t"
refused convert -O qcow2 -o backing_file=base.raw src.qcow2 "$t"
refused create -f raw -b base.raw -F raw "$t" 4M
# An existing target stays as it was.
refused create -f qcow2 -b base.raw keep.qcow2 4M
refused convert -O qcow2 -B base.raw src.qcow2 keep.qcow2

# With the format, both succeed and record it.
for tool in qemu-img "$VIMG"; do
    for args in "create -q -f qcow2 -b base.raw -F raw ov.qcow2" \
                "create -q -f qcow2 -o backing_file=base.qcow2,backing_fmt=qcow2 ov.qcow2" \
                "convert -O qcow2 -B base.raw -F raw src.qcow2 ov.qcow2" \
                "convert -O qcow2 -B base.raw -o backing_fmt=raw src.qcow2 ov.qcow2"; do
        # shellcheck disable=SC2086
        expect_status 0 "$tool" $args
        qemu-img info --output=json ov.qcow2 > info.json
        want=raw; case $args in *fmt=qcow2*) want=qcow2 ;; esac
        [ "$(json_get info.json backing-filename-format)" = "$want" ] ||
            fail "$tool $args: backing format not recorded"
        rm -f ov.qcow2 info.json
    done
done
