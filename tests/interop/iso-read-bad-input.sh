#!/bin/sh
# Damaged ISOs: each fails with exit 1 and one line naming the image and
# the problem (never a crash or a hang); vimg info still describes the
# image as raw, without ISO facts when the volume is unreadable.
. "$(dirname "$0")/functions.sh"
requires xorriso python3 timeout
damage="python3 $(dirname "$0")/iso-damage.py"
mkdir -p "$T/s/d/e"
echo hi > "$T/s/f.txt"
ln -s f.txt "$T/s/l"
echo g > "$T/s/d/e/g"
long=$(printf 'n%.0s' $(seq 1 200))
echo long > "$T/s/$long"
xorriso -as mkisofs -quiet -no-pad -R -J -o "$T/good.iso" "$T/s" 2>/dev/null
size=$(stat -c %s "$T/good.iso")

# bad NAME PATTERN MUTATION [ARGS]
bad() {
    name=$1 pattern=$2; shift 2
    $damage "$T/good.iso" "$T/$name.iso" "$@"
    expect_status 1 timeout 20 "$VIMG" iso ls -R "$T/$name.iso"
    grep -q "^vimg: $T/$name.iso: .*$pattern" "$T/err" ||
        fail "$name: message '$(cat "$T/err")' lacks '$pattern'"
    [ "$(wc -l < "$T/err")" = 1 ] || fail "$name: not one line: $(cat "$T/err")"
    expect_status 0 timeout 20 "$VIMG" info "$T/$name.iso"
}
bad no-terminator 'ends without a terminator' no-terminator
bad many-descriptors 'no terminator within 64 descriptors' many-descriptors
bad short-record 'shorter than 34' short-record
bad overrun 'overruns its sector' overrun
bad dir-loop 'directory /d/e points back at an ancestor' dir-loop e
bad past-end '/f.txt: extent at LBA .* lies past the end of the image' past-end f.txt
bad ce-loop 'continuation chain longer than 32 areas' ce-loop
bad truncated "extent at LBA .* lies past the end of the image" truncate $((size - 2048))
bad truncated-descriptors "descriptor set runs past the end" truncate 36864
bad tiny 'no ISO 9660 volume descriptor' truncate 1000

# info of an unreadable volume is plain raw: no ISO facts.
"$VIMG" info --output=json "$T/no-terminator.iso" > "$T/info.json"
! grep -q iso9660 "$T/info.json" || fail "info describes a broken volume"
"$VIMG" info --output=json "$T/good.iso" | grep -q '"type": "iso9660"' ||
    fail "info of the good image"
# A file that is no ISO at all.
head -c 100000 /dev/zero > "$T/zero.img"
expect_status 1 "$VIMG" iso ls "$T/zero.img"
grep -q 'zero.img: no ISO 9660 volume descriptor' "$T/err" || fail "non-ISO message"
