#!/bin/sh
# A preallocating resize (full or falloc) that runs out of space fails and
# leaves the image as it was, as qemu-img's does: a raw file keeps its
# length, a qcow2 image keeps its virtual size, data and file length, and
# `qemu-img check` finds no leaked cluster; the space is given back (a
# file that fits can then be made). Runs on a 40 MiB tmpfs; skips when
# tmpfs cannot be mounted here.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io
m=$T/mnt
mkdir "$m"
mount -t tmpfs -o size=40m vimgtest "$m" 2>/dev/null || { echo "SKIP: cannot mount tmpfs"; exit 77; }
unmount() { umount "$m"; }
on_exit unmount

same_as_before() { # same_as_before FILE FMT LENGTH SHA WHAT
    # qemu-img may keep a cluster more of a qcow2; vimg keeps none.
    [ "$tool" = qemu-img ] || [ "$(stat -c %s "$1")" = "$3" ] ||
        fail "$5: file is $(stat -c %s "$1") bytes, was $3"
    [ "$(qemu_sha "$1" "$2")" = "$4" ] || fail "$5: data changed"
}

for mode in full falloc; do
    for tool in qemu-img "$VIMG"; do
        img=$m/r.raw
        qemu-img create -q -f raw "$img" 16M
        qemu-io -f raw -c 'write -P 3 0 1M' "$img" >/dev/null
        len=$(stat -c %s "$img") sha=$(qemu_sha "$img" raw)
        expect_status 1 "$tool" resize -f raw --preallocation=$mode "$img" 80M
        same_as_before "$img" raw "$len" "$sha" "$tool raw $mode"
        rm "$img"
    done
    # qcow2: 512-byte clusters make the preallocation need new L2 tables,
    # refcount blocks and refcount tables.
    for cs in 64k 512; do
        img=$m/q.qcow2
        qemu-img create -q -f qcow2 -o cluster_size=$cs "$img" 16M
        qemu-io -c 'write -P 3 0 1M' -c 'write -P 4 15M 1M' "$img" >/dev/null
        len=$(stat -c %s "$img") sha=$(qemu_sha "$img" qcow2)
        expect_status 1 qemu-img resize --preallocation=$mode "$img" 80M
        rm "$img"
        qemu-img create -q -f qcow2 -o cluster_size=$cs "$img" 16M
        qemu-io -c 'write -P 3 0 1M' -c 'write -P 4 15M 1M' "$img" >/dev/null
        expect_status 1 "$VIMG" resize --preallocation=$mode "$img" 80M
        what="qcow2 cluster_size=$cs $mode"
        qemu-img check "$img" > "$T/chk" 2>&1 ||
            fail "$what: $(grep -v '^Leaked' "$T/chk")"
        qemu-img info --output=json "$img" > "$T/i.json"
        [ "$(json_get "$T/i.json" virtual-size)" = 16777216 ] ||
            fail "$what: virtual size changed"
        tool=vimg same_as_before "$img" qcow2 "$len" "$sha" "$what"
        rm "$img"
    done
done

# A preallocating resize that fits: clean, the same data as qemu-img's,
# every new cluster allocated, and the space it reserved and did not use
# given back.
for mode_cs in full,64k falloc,512; do
    mode=${mode_cs%,*} cs=${mode_cs#*,}
    what="qcow2 cluster_size=$cs $mode, fitting"
    for tool in qemu-img "$VIMG"; do
        img=$m/$(basename "$tool").qcow2
        qemu-img create -q -f qcow2 -o cluster_size=$cs "$img" 16M
        qemu-io -c 'write -P 3 0 1M' -c 'write -P 4 15M 1M' "$img" >/dev/null
        expect_status 0 "$tool" resize --preallocation=$mode "$img" 24M
        qemu-img check "$img" > "$T/chk" 2>&1 ||
            fail "$what: $tool: $(grep -v '^Leaked' "$T/chk")"
    done
    q=$m/qemu-img.qcow2 v=$m/vimg.qcow2
    [ "$(qemu_sha "$v" qcow2)" = "$(qemu_sha "$q" qcow2)" ] || fail "$what: data"
    qemu-img map --output=json "$v" > "$T/map.json"
    python3 -c 'import json, sys
sys.exit(any(e["start"] >= 16 << 20 and not e["data"]
         for e in json.load(open(sys.argv[1]))))' "$T/map.json" ||
        fail "$what: unallocated clusters in the new part"
    [ "$(du_k "$v")" -le $(($(du_k "$q") + 256)) ] ||
        fail "$what: uses $(du_k "$v") KiB, qemu-img's $(du_k "$q") KiB"
    rm "$q" "$v"
done
# Nothing is held back: 36 MiB still fit.
"$VIMG" create -q -f raw -o preallocation=full "$m/fits.img" 36M
