#!/bin/sh
# El Torito: BIOS no-emulation (with boot-info-table) and UEFI entries made
# by xorriso and genisoimage are described by vimg info exactly as xorriso
# -report_el_torito reports them, with the path of each boot image.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/iso-fixtures.inc"
requires xorriso genisoimage python3
make_tree "$T/src"
xorriso -as mkisofs -quiet -R -J -V BOOTME -o "$T/x.iso" \
    -b boot/bios.bin -no-emul-boot -boot-load-size 4 -boot-info-table \
    -eltorito-alt-boot -e boot/efi.img -no-emul-boot "$T/src" 2>/dev/null
genisoimage -quiet -R -o "$T/g.iso" -b boot/bios.bin -no-emul-boot \
    -boot-load-size 4 -boot-info-table "$T/src" 2>/dev/null

eltorito_cmp "$T/x.iso"
grep -q '^1 bios y no-emulation 0 4 [0-9]* /boot/bios.bin$' "$T/et.vimg" ||
    fail "BIOS entry: $(cat "$T/et.vimg")"
grep -q '^2 uefi y no-emulation 0 [0-9]* [0-9]* /boot/efi.img$' "$T/et.vimg" ||
    fail "UEFI entry: $(cat "$T/et.vimg")"
eltorito_cmp "$T/g.iso"

"$VIMG" info --output=json "$T/x.iso" > "$T/info.json"
python3 - "$T/info.json" <<'PY' || fail "info facts"
import json, sys
i = json.load(open(sys.argv[1]))
assert i["format"] == "raw", i["format"]
d = i["format-specific"]["data"]
assert i["format-specific"]["type"] == "iso9660"
assert d["volume-id"] == "BOOTME", d
assert d["el-torito"] is True and d["rock-ridge"] is True, d
assert d["block-size"] == 2048 and d["volume-size"] == d["volume-blocks"] * 2048
assert d["volume-size"] <= i["virtual-size"]
assert d["hybrid"] == "none", d["hybrid"]
assert d["creation-date"][:2] == "20" and "T" in d["creation-date"]
PY
"$VIMG" info "$T/x.iso" > "$T/human"
grep -q '^ISO 9660 volume:$' "$T/human" &&
    grep -q '^    volume id: BOOTME$' "$T/human" &&
    grep -q '^            image path: /boot/efi.img$' "$T/human" ||
    fail "human info: $(cat "$T/human")"
# The volume descriptor's size agrees with isoinfo.
if command -v isoinfo >/dev/null; then
    want=$(isoinfo -d -i "$T/x.iso" | sed -n 's/^Volume size is: //p')
    grep -q "\"volume-blocks\": $want," "$T/info.json" || fail "volume size"
fi
