# qcow2 with encrypt.format=luks made by vimg (create, convert) passes
# qemu-img check and reads identically in qemu-img and qemu-io; writes
# through vimg serve (unaligned, partial clusters, zeroes, overwrites in
# place) land as qemu-io's own writes on a copy do.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/nbd.inc"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io python3

o=encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10
python3 -c 'import os,sys; open(sys.argv[1],"wb").write(os.urandom(3<<20) + bytes(1<<20) + os.urandom(123*512))' "$T/src.raw"
expect_status 0 "$VIMG" convert $SEC -f raw -O qcow2 -o "$o" "$T/src.raw" \
    "$T/c.qcow2"
qemu-img check $SEC --image-opts "$(iopts qcow2 "$T/c.qcow2")" > "$T/check" ||
    { cat "$T/check"; fail "qemu-img check of vimg's converted image"; }
[ "$(qsha qcow2 "$T/c.qcow2")" = "$(sha_of "$T/src.raw")" ] ||
    fail "qemu-img reads other bytes than vimg wrote"
qemu-img compare $SEC --image-opts "$(iopts qcow2 "$T/c.qcow2")" \
    "driver=raw,file.filename=$T/src.raw" > /dev/null ||
    fail "qemu-img compare"

# An empty image made by vimg create, written through vimg serve.
expect_status 0 "$VIMG" create -q -f qcow2 $SEC -o "$o,cluster_size=64k" \
    "$T/w.qcow2" 16M
cp "$T/w.qcow2" "$T/ref.qcow2"
cmds="-c 'write -P 0x44 0 64k' -c 'write -P 0x55 1000 3000' \
 -c 'write -P 0x66 70000 200000' -c 'write -P 0x77 100 50' \
 -c 'write -z 2M 128k' -c 'write -P 0x12 15M 1M' -c 'write -P 0x13 15M 700'"
vserve "$T/s.sock" $SEC --image-opts "$(iopts qcow2 "$T/w.qcow2")"
eval qemu-io -f raw $cmds "'$(uri "$T/s.sock")'" > "$T/io.out"
wait $servers
servers=""
eval qemu-io $SEC --image-opts $cmds "$(iopts qcow2 "$T/ref.qcow2")" > /dev/null
qemu-img check $SEC --image-opts "$(iopts qcow2 "$T/w.qcow2")" > "$T/check" ||
    { cat "$T/check"; fail "qemu-img check after writes through vimg"; }
[ "$(qsha qcow2 "$T/w.qcow2")" = "$(qsha qcow2 "$T/ref.qcow2")" ] ||
    fail "writes through vimg read differently in qemu-img"
[ "$(vsha qcow2 "$T/w.qcow2")" = "$(qsha qcow2 "$T/ref.qcow2")" ] ||
    fail "writes through vimg read differently in vimg"
qemu-io $SEC --image-opts "$(iopts qcow2 "$T/w.qcow2")" \
    -c 'read -P 0x55 1000 3000' -c 'read -P 0x13 15M 700' \
    -c 'read -P 0 2M 128k' > "$T/io.out"
[ "$(grep -c '^read' "$T/io.out")" = 3 ] || fail "qemu-io: $(cat "$T/io.out")"

# Compressed clusters are never encrypted: refused, as qemu-img does.
expect_status 1 "$VIMG" convert -c $SEC -f raw -O qcow2 -o "$o" \
    "$T/src.raw" "$T/x.qcow2"
grep -q 'compression and encryption' "$T/err" || fail "-c: $(cat "$T/err")"
[ ! -e "$T/x.qcow2" ] || fail "-c left a file"

# measure counts the LUKS header's clusters as qemu-img does.
for m in "" ",encrypt.cipher-alg=aes-128,encrypt.cipher-mode=cbc"; do
    "$VIMG" measure -O qcow2 -o "$o$m" --size 1G > "$T/vm"
    qcrypt measure $SEC -O qcow2 -o "$o$m" --size 1G > "$T/qm"
    cmp -s "$T/vm" "$T/qm" || fail "measure$m: $(cat "$T/vm" "$T/qm")"
done
exit 0
