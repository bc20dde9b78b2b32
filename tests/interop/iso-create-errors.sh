#!/bin/sh
# vimg iso create refuses bad parameters with one clear line and writes
# nothing: volume id length and characters, boot images that are missing
# or not files or empty, a catalog in a missing folder, a bad load size.
. "$(dirname "$0")/functions.sh"
mkdir -p "$T/src/boot"
head -c 4096 /dev/urandom > "$T/src/boot/img"
head -c 32 /dev/urandom > "$T/src/tiny"
: > "$T/src/empty"
check() {   # check PATTERN ARGS...
    pat=$1; shift
    expect_status 1 "$VIMG" iso create -o "$T/o.iso" "$@" "$T/src"
    [ "$(wc -l < "$T/err")" = 1 ] || { cat "$T/err"; fail "not one line: $*"; }
    grep -q "$pat" "$T/err" || { cat "$T/err"; fail "message for $*"; }
    [ ! -e "$T/o.iso" ] || fail "output written for $*"
}
check "volume id '123456789012345678901234567890123' must be 1 to 32" \
    -V 123456789012345678901234567890123
check "volume id .* must be printable ASCII" -V "$(printf 'a\tb')"
check "BIOS boot image 'nope' is not a regular file" -b nope
check "BIOS boot image 'boot' is not a regular file" -b boot
check "EFI boot image 'boot/missing' is not a regular file" -e boot/missing
check "boot catalog 'no/where.cat': its folder is not in the image" \
    -b boot/img -c no/where.cat
check "boot catalog 'boot' exists and is not a regular file" \
    -b boot/img -c boot
check "too small for a boot information table" -b tiny
check "EFI boot image 'empty' is empty" -e empty
check "floppy emulation needs" -b boot/img --floppy-emul
check "boot-load-size must be 1 to 65535" -b boot/img --boot-load-size 0
check "publisher" --publisher "$(head -c 129 /dev/zero | tr '\0' x)"
