# LUKS key slots changed by amend, for -f luks and qcow2 with
# encrypt.format=luks: a passphrase vimg adds opens the image in qemu-img
# and qemu-io beside the old one (and in cryptsetup for -f luks); a slot
# vimg erases no longer opens it; a passphrase qemu-img amend (or
# cryptsetup luksAddKey) adds opens it in vimg; the refusals carry qemu-img's words, the last key is kept
# without --force, and the guest data never changes.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/crypto.inc"
requires qemu-img qemu-io

# A third passphrase, sec2, given wherever sec1 is (qsha and vsha too).
SEC2="$SEC2 --object secret,id=sec2,data=third-key"
for fmt in luks qcow2; do
    f="$T/k.$fmt"
    case $fmt in
    luks) p= ; c="key-secret=sec0,iter-time=10" ;;
    qcow2) p=encrypt. ; c="encrypt.format=luks,encrypt.key-secret=sec0,encrypt.iter-time=10" ;;
    esac
    expect_status 0 "$VIMG" create -q -f $fmt $SEC -o "$c" "$f" 4M
    qemu-io $SEC --image-opts "$(iopts $fmt "$f")" \
        -c 'write -P 0x5a 0 100k' > /dev/null
    sum=$(qsha $fmt "$f")
    # vimg adds PASS2 (first free slot: 1); both open it in qemu-img.
    expect_status 0 "$VIMG" amend $SEC $SEC2 --image-opts \
        -o "${p}state=active,${p}new-secret=sec1,${p}iter-time=10" \
        "$(iopts $fmt "$f")"
    [ "$(qsha $fmt "$f" sec1)" = "$sum" ] || fail "$fmt: new key in qemu-img"
    [ "$(qsha $fmt "$f" sec0)" = "$sum" ] || fail "$fmt: old key in qemu-img"
    qemu-io $SEC2 --image-opts "$(iopts $fmt "$f" sec1)" \
        -c 'read -P 0x5a 0 100k' > /dev/null || fail "$fmt: qemu-io new key"
    if [ $fmt = luks ] && command -v cryptsetup > /dev/null; then
        cryptsetup luksDump "$f" > "$T/dump" || fail "luksDump refused"
        grep -q 'Key Slot 1: ENABLED' "$T/dump" || fail "dump: $(cat "$T/dump")"
        printf %s "$PASS2" | cryptsetup open --test-passphrase \
            --key-file=- "$f" || fail "cryptsetup rejects the new key"
    fi
    # Refusals, each one line in qemu-img's words, changing nothing.
    cp "$f" "$T/before"
    expect_status 1 "$VIMG" amend $SEC $SEC2 --image-opts \
        -o "${p}state=active,${p}new-secret=sec1,${p}keyslot=1" \
        "$(iopts $fmt "$f")"
    grep -q 'Refusing to overwrite active keyslot 1 - please erase it first' \
        "$T/err" || fail "$fmt: overwrite: $(cat "$T/err")"
    expect_status 1 "$VIMG" amend $SEC $SEC2 --image-opts \
        -o "${p}state=inactive,${p}old-secret=sec2" "$(iopts $fmt "$f")"
    grep -q 'No keyslots match given (old) password' "$T/err" ||
        fail "$fmt: no match: $(cat "$T/err")"
    expect_status 1 "$VIMG" amend $SEC --image-opts \
        -o "${p}state=inactive" "$(iopts $fmt "$f")"
    grep -q 'To erase keyslot(s), either explicit keyslot index' "$T/err" ||
        fail "$fmt: erase what: $(cat "$T/err")"
    expect_status 1 "$VIMG" amend $SEC --image-opts \
        -o "${p}new-secret=sec0" "$(iopts $fmt "$f")"
    grep -q "Parameter 'state' is missing" "$T/err" ||
        fail "$fmt: state: $(cat "$T/err")"
    cmp -s "$f" "$T/before" || fail "$fmt: a refused amend changed the file"
    # vimg erases the old key's slot; qemu-img refuses the old key.
    expect_status 0 "$VIMG" amend $SEC $SEC2 --image-opts \
        -o "${p}state=inactive,${p}old-secret=sec0" "$(iopts $fmt "$f" sec1)"
    expect_status 1 qemu-img convert $SEC --image-opts -O raw \
        "$(iopts $fmt "$f")" "$T/x.raw"
    grep -q 'Invalid password' "$T/err" || fail "$fmt: old key: $(cat "$T/err")"
    [ "$(qsha $fmt "$f" sec1)" = "$sum" ] || fail "$fmt: data after erase"
    # The last key stays unless --force.
    expect_status 1 "$VIMG" amend $SEC2 --image-opts \
        -o "${p}state=inactive,${p}keyslot=1" "$(iopts $fmt "$f" sec1)"
    grep -q 'Attempt to erase the only active keyslot 1' "$T/err" ||
        fail "$fmt: last key: $(cat "$T/err")"
    # A third passphrase in slot 5 from the peers: qemu-img amend (qcow2;
    # it spends a second timing PBKDF2) or cryptsetup luksAddKey (luks);
    # vimg opens the image with it.
    if [ $fmt = qcow2 ] || ! command -v cryptsetup > /dev/null; then
        qcrypt amend $SEC2 --image-opts \
            -o "${p}state=active,${p}new-secret=sec2,${p}keyslot=5,${p}iter-time=10" \
            "$(iopts $fmt "$f" sec1)"
    else
        printf %s "$PASS2" > "$T/k1"
        printf %s third-key | cryptsetup luksAddKey -q --key-slot 5 \
            --pbkdf-force-iterations 1000 --key-file "$T/k1" "$f" - ||
            fail "cryptsetup luksAddKey"
    fi
    [ "$(vsha $fmt "$f" sec2)" = "$sum" ] || fail "$fmt: qemu-img's key"
    # --force erases the last ones too (then nothing opens the image).
    expect_status 0 "$VIMG" amend --force $SEC2 --image-opts \
        -o "${p}state=inactive,${p}keyslot=1" "$(iopts $fmt "$f" sec1)"
    expect_status 1 "$VIMG" amend $SEC2 --image-opts \
        -o "${p}state=inactive,${p}keyslot=5" "$(iopts $fmt "$f" sec2)"
    expect_status 0 "$VIMG" amend --force $SEC2 --image-opts \
        -o "${p}state=inactive,${p}keyslot=5" "$(iopts $fmt "$f" sec2)"
    expect_status 1 qemu-img convert $SEC2 --image-opts -O raw \
        "$(iopts $fmt "$f" sec2)" "$T/x.raw"
done
exit 0
