#!/bin/sh
# Every command that writes an image file (create, convert, convert -n,
# resize, check -r; iso create below), run by vimg and by qemu-img on the
# same kinds of target: a plain file, a symlink, a dangling symlink, a
# hard-linked file, a writable file in a folder the user may not write
# (run as nobody), a file of nobody's with mode 600, a root-owned mode 666
# file in a 777 folder written by nobody (an owner the user cannot give),
# an image held by qemu-io or qemu-nbd, and /dev/null (convert). Both
# tools must agree on the exit code, the link staying a link, the hard
# link staying whole, owner, group and mode, and the guest contents; a
# refused command leaves the file's bytes as they were.
# The one deliberate difference (docs/vimg.1, README): where a rename is
# safe (plain file, symlinked file, nobody's file written by root), vimg's
# create and convert replace the file by a new inode, so a failure keeps
# the old one; qemu-img truncates in place. Everywhere else both keep the
# inode. The nobody cases run the tools as user 65534 with setpriv: real
# permission checks, not an emulation; they need root to set up.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io qemu-nbd setpriv
[ "$(id -u)" = 0 ] || { echo "SKIP: needs root to make another user's files"; exit 77; }
chmod 755 "$T"
nobody="setpriv --reuid=65534 --regid=65534 --clear-groups"

qemu-img create -q -f raw "$T/src.raw" 1M
qemu-io -f raw -c 'write -P 0x5a 64k 128k' "$T/src.raw" > /dev/null
qemu-img create -q -f raw "$T/empty.raw" 0
qemu-img create -q -f qcow2 "$T/fixture.qcow2" 2M
qemu-io -f qcow2 -c 'write -P 0x33 0 256k' "$T/fixture.qcow2" > /dev/null
chmod 644 "$T/src.raw" "$T/empty.raw" "$T/fixture.qcow2"

holder=""
stop_holder() { [ -z "$holder" ] || { kill "$holder"; wait "$holder"; } 2>/dev/null || true; holder=""; }
on_exit stop_holder

# prepare CASE DIR: a fresh target of that kind in DIR; sets $img (the name
# given to the tool), $real (the file it resolves to) and $as (the user).
prepare() {
    c=$1 d=$2
    rm -rf "$d"
    mkdir "$d"
    as="" real=$d/real.img img=$d/real.img
    [ "$c" = dangling ] || [ "$c" = devnull ] || cp "$T/fixture.qcow2" "$real"
    case $c in
        plain) ;;
        symlink | dangling) ln -s real.img "$d/link.img"; img=$d/link.img ;;
        hardlink) ln "$real" "$d/other.img" ;;
        nobody600) chown 65534:65534 "$real"; chmod 600 "$real" ;;
        rofolder) chown -R 65534:65534 "$d"; chmod 555 "$d"; as=$nobody ;;
        otherowner) chmod 666 "$real"; chmod 777 "$d"; as=$nobody ;;
        qemu-io)
            qemu-io -f qcow2 -c 'sleep 100000' "$real" > /dev/null & holder=$!
            ino=$(stat -c %i "$real") i=0
            until grep -q ":$ino " /proc/locks; do
                i=$((i + 1)); [ $i -lt 100 ] || fail "qemu-io took no lock"; sleep 0.1
            done ;;
        qemu-nbd) serve_nbd "$d/nbd.sock" -f qcow2 "$real" ;;
        devnull) img=/dev/null real=/dev/null ;;
    esac
}

# run TOOL CMD: CMD on $img as $as; sets $rc.
run() {
    tool=$1
    case $2 in
        create) set -- create -q -f qcow2 "$img" 1M ;;
        convert) set -- convert -f raw -O qcow2 "$T/src.raw" "$img" ;;
        convert-n) set -- convert -n -f raw -O qcow2 "$T/src.raw" "$img" ;;
        resize) set -- resize -f qcow2 "$img" 3M ;;
        check-r) set -- check -r all -f qcow2 "$img" ;;
        convert-empty) set -- convert -f raw -O raw "$T/empty.raw" "$img" ;;
        convert-raw) set -- convert -f raw -O raw "$T/src.raw" "$img" ;;
        iso) set -- iso create -o "$img" "$T/isodir" ;;
    esac
    set +e
    # shellcheck disable=SC2086
    $as "$tool" "$@" > "$T/out" 2> "$T/err"
    rc=$?
    set -e
}

# outcome: what both tools must agree on, as one line.
outcome() {
    if [ -L "$img" ]; then kind=link; elif [ -e "$img" ]; then kind=file; else kind=none; fi
    own=- guest=- whole=-
    if [ -f "$real" ]; then
        own=$(stat -c '%U:%G:%a' "$real")
        [ "$rc" != 0 ] || [ "$cmd" = iso ] || guest=$(qemu_sha "$real" qcow2)
    fi
    if [ -e "$d/other.img" ]; then
        [ "$(stat -c %i "$d/other.img")" = "$(stat -c %i "$real")" ] && whole=yes || whole=no
    fi
    echo "exit=$rc img=$kind owner=$own guest=$guest hardlink-whole=$whole"
}

# inode_before / bytes_before of $real, or "-" when there is none.
snap() { if [ -f "$real" ]; then stat -c %i "$real"; sha256sum < "$real" | cut -c1-16; else echo - -; fi; }

# try CASE CMD TOOL: run one cell; sets $line and $inode (kept|new|-).
try() {
    case $1 in
        qemu-io | qemu-nbd) # one holder for every command: they are refused
            d=$T/$1 real=$T/$1/real.img img=$T/$1/real.img as=""
            [ -d "$d" ] || prepare "$1" "$d" ;;
        *) prepare "$1" "$T/$3" ;;
    esac
    set -- $(snap)
    ino0=$1 bytes0=$2
    run "$tool_bin" "$cmd"
    line=$(outcome)
    set -- $(snap)
    if [ "$ino0" = - ] || [ "$1" = - ]; then inode=-; elif [ "$1" = "$ino0" ]; then inode=kept; else inode=new; fi
    if [ "$rc" != 0 ] && [ "$2" != "$bytes0" ]; then
        fail "$tool_bin $cmd on $case failed (exit $rc) and changed the file: $(cat "$T/err")"
    fi
}

cases="plain symlink dangling hardlink nobody600 rofolder otherowner qemu-io qemu-nbd"
for cmd in create convert convert-n resize check-r; do
    for case in $cases; do
        tool_bin=qemu-img; try "$case" "$cmd" q; qline=$line qinode=$inode
        tool_bin=$VIMG; try "$case" "$cmd" v; vline=$line vinode=$inode
        [ "$vline" = "$qline" ] ||
            fail "$cmd on $case: vimg '$vline' ($(cat "$T/err")), qemu-img '$qline'"
        want=$qinode
        case $cmd.$case in
            create.plain | create.symlink | create.nobody600 | \
            convert.plain | convert.symlink | convert.nobody600) want=new ;;
        esac
        [ "$vinode" = "$want" ] || fail "$cmd on $case: inode $vinode, expected $want"
        case $case in
            qemu-io | qemu-nbd)
                [ "$rc" = 1 ] || fail "$cmd on $case: not refused"
                grep -q "lock" "$T/err" || fail "$cmd on $case: $(cat "$T/err")" ;;
        esac
    done
done

stop_holder
stop_nbd || true
nbd_pid=""
rm -rf "$T/qemu-io" "$T/qemu-nbd"

# /dev/null as a convert target: an empty source fits, a larger one does
# not (a device does not grow), for both tools; /dev/null stays a device.
for cmd in convert-empty convert-raw; do
    case=devnull
    tool_bin=qemu-img; try devnull "$cmd" q; qline=$line
    tool_bin=$VIMG; try devnull "$cmd" v; vline=$line
    [ "$vline" = "$qline" ] || fail "$cmd to /dev/null: vimg '$vline' ($(cat "$T/err")), qemu-img '$qline'"
done
[ -c /dev/null ] || fail "/dev/null is no longer a device"

# iso create has no qemu-img counterpart: the same cases against the
# documented behaviour (replaced where safe, else in place; held refused).
mkdir "$T/isodir"
echo hello > "$T/isodir/hello.txt"
chmod -R a+rX "$T/isodir"
tool_bin=$VIMG cmd=iso
for case in $cases; do
    try "$case" iso v
    case $case in
        qemu-io | qemu-nbd)
            [ "$rc" = 1 ] && grep -q lock "$T/err" || fail "iso create on $case: exit $rc: $(cat "$T/err")"
            continue ;;
    esac
    [ "$rc" = 0 ] || fail "iso create on $case: exit $rc: $(cat "$T/err")"
    [ "$(dd if="$real" bs=1 skip=32769 count=5 2>/dev/null)" = CD001 ] ||
        fail "iso create on $case: no ISO 9660 volume in $real"
    case $case in
        symlink | dangling) expect="img=link" ;;
        *) expect="img=file" ;;
    esac
    case $line in *"$expect "*) ;; *) fail "iso create on $case: $line" ;; esac
    case $case in
        plain | symlink | nobody600) want=new ;;
        dangling) want=- ;;
        *) want=kept ;;
    esac
    [ "$inode" = "$want" ] || fail "iso create on $case: inode $inode, expected $want"
    case $case:$line in
        nobody600:*"owner=nobody:nogroup:600 "*) ;;
        rofolder:*"owner=nobody:nogroup:644 "*) ;;
        otherowner:*"owner=root:root:666 "*) ;;
        hardlink:*"hardlink-whole=yes") ;;
        plain:* | symlink:* | dangling:*) ;;
        *) fail "iso create on $case: $line" ;;
    esac
done
