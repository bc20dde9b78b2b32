#!/bin/sh
# ESX sparse extents qemu-img cannot create: a vmfsSparse disk (an ESX
# "COWD" extent) and a seSparse disk, written byte by byte by vmdk-gen.py.
# vimg reads the bytes the generator put there and qemu-img reads; info
# and map agree with qemu-img's (libvmdk reads the COWD disk too); hostile
# variants are refused with one line, exit 1, in a small address space.
. "$(dirname "$0")/functions.sh"
requires qemu-img python3
GEN="$(cd "$(dirname "$0")" && pwd)/vmdk-gen.py"

cd "$T"
for kind in cowd sesparse; do
    rm -f d*
    python3 "$GEN" $kind . d
    exp_sha=$(sha256sum < d.expected | cut -d' ' -f1)
    [ "$(vimg_sha d.vmdk vmdk)" = "$exp_sha" ] ||
        fail "$kind: vimg reads other bytes than the generator wrote"
    [ "$(qemu_sha d.vmdk vmdk)" = "$exp_sha" ] ||
        fail "$kind: qemu-img reads other bytes than the generator wrote"
    "$VIMG" info --output=json d.vmdk > vi.json
    qemu-img info --output=json d.vmdk > qi.json
    for k in virtual-size cluster-size; do
        [ "$(json_get vi.json $k)" = "$(json_get qi.json $k)" ] ||
            fail "$kind: info $k differs"
    done
    python3 - vi.json qi.json <<'PY' || fail "$kind: format-specific info"
import json, sys
v, q = (json.load(open(f))["format-specific"]["data"] for f in sys.argv[1:])
for k in ("create-type", "cid", "parent-cid"):
    assert v[k] == q[k], k
ve, qe = v["extents"][0], q["extents"][0]
for k in ("virtual-size", "cluster-size", "format"):
    assert ve[k] == qe[k], k
PY
    "$VIMG" map --output=json d.vmdk > vm.json
    qemu-img map --output=json d.vmdk > qm.json
    cmp -s vm.json qm.json || { diff vm.json qm.json >&2; fail "$kind: map"; }
    expect_status 0 "$VIMG" check d.vmdk
    # libyal's libvmdk, a third reader, knows COWD (not seSparse).
    if [ $kind = cowd ] && /usr/bin/python3 -c 'import pyvmdk' 2>/dev/null
    then
        lib=$(/usr/bin/python3 -c 'import hashlib, pyvmdk
h = pyvmdk.handle(); h.open("d.vmdk"); h.open_extent_data_files()
print(hashlib.sha256(h.read_buffer_at_offset(h.get_media_size(), 0))
      .hexdigest())')
        [ "$lib" = "$exp_sha" ] || fail "libvmdk reads the COWD disk otherwise"
    fi
    # Read-only extents: opening them to write is refused with one line.
    truncate -s 40M z.raw
    expect_status 1 "$VIMG" convert -n -f raw -O vmdk z.raw d.vmdk
    grep -q "can only be opened read-only" "$T/err" ||
        { cat "$T/err"; fail "$kind: write not refused"; }
done

hostile() {
    rm -f h*
    python3 "$GEN" "$1" . h "$2"
    expect_status 1 sh -c "ulimit -v 300000; timeout 10 '$VIMG' convert \
        -O raw h.vmdk h.raw"
    [ "$(wc -l < "$T/err")" = 1 ] ||
        { cat "$T/err"; fail "$1 $2: not one line"; }
    grep -q "^vimg: h.vmdk: .*$3" "$T/err" ||
        { cat "$T/err"; fail "$1 $2: wrong message"; }
}
hostile cowd gd-short "too short"
hostile cowd gte-past-eof "outside the grains"
hostile cowd gd-past-eof "outside the file"
hostile cowd truncated "truncated"
hostile sesparse gte-type "cannot be read"
hostile sesparse gte-past-eof "cannot be read"
hostile sesparse capacity-huge "64 TiB"
hostile sesparse gd-past-eof "outside the file"
hostile sesparse dirty "journal"
hostile sesparse gde-bad "no grain table"
hostile sesparse truncated "truncated"
# A COWD file opened by itself has no descriptor (QEMU fails it too).
python3 "$GEN" cowd . c
expect_status 1 "$VIMG" info -f vmdk c-delta.vmdk
grep -q "descriptor file naming it" "$T/err" || fail "COWD alone"
