#!/bin/sh
# Extended L2 entries written by vimg: the same subcluster writes, zero
# writes and discards sent through `vimg serve` into an image vimg created
# and straight into one qemu-img created leave the same guest disk and the
# same map; qemu-img check finds nothing wrong; convert -o extended_l2=on
# and measure agree with qemu-img.
. "$(dirname "$0")/functions.sh"
requires qemu-img qemu-io

stop_vimg() { [ -z "$pid" ] || kill "$pid" 2>/dev/null || true; }
pid=""
on_exit stop_vimg

# create: the same bytes as qemu-img's, and its refusals.
for cs in 16k 64k 2M; do
    "$VIMG" create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$T/v.qcow2" 1G
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$T/q.qcow2" 1G
    cmp -s "$T/v.qcow2" "$T/q.qcow2" || fail "$cs: create differs"
done
for o in cluster_size=8k compat=0.10; do
    set +e
    qemu-img create -q -f qcow2 -o "extended_l2=on,$o" "$T/q.qcow2" 1M \
        2>"$T/qe"; qs=$?
    "$VIMG" create -q -f qcow2 -o "extended_l2=on,$o" "$T/q.qcow2" 1M \
        2>"$T/ve"; vs=$?
    set -e
    [ "$qs" = 1 ] && [ "$vs" = 1 ] || fail "create $o exited $vs, qemu-img $qs"
    [ "$(sed 's/^[^:]*: //' "$T/qe")" = "$(sed 's/^[^:]*: //' "$T/ve")" ] ||
        { cat "$T/qe" "$T/ve" >&2; fail "create $o message"; }
done

for cs in 16k 64k 2M; do
    sc=$(( $(echo "$cs" | sed 's/k$/*1024/; s/M$/*1048576/') / 32 ))
    qemu-img create -q -f qcow2 "$T/base.qcow2" 8M
    qemu-io -c "write -P 0x11 0 8M" "$T/base.qcow2" >/dev/null
    "$VIMG" create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        -b "$T/base.qcow2" -F qcow2 "$T/top.qcow2" 8M
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        -b "$T/base.qcow2" -F qcow2 "$T/ref.qcow2" 8M
    set -- -c "write -P 0x22 $sc $sc" \
           -c "write -P 0x33 $((5 * sc + sc / 4)) $((sc / 2))" \
           -c "write -P 0x44 $((29 * sc)) $((6 * sc))" \
           -c "write -z $((2 * sc)) $((2 * sc))" \
           -c "write -z $((40 * sc)) $((3 * sc))" \
           -c "write -P 0x55 $((64 * sc)) $((32 * sc))" \
           -c "write -z $((66 * sc)) $sc" \
           -c "write -P 0x66 $((67 * sc + 512)) 512" \
           -c "discard $((96 * sc)) $((32 * sc))" \
           -c "write -P 0x77 $((7 * sc)) $((sc / 2))"
    qemu-io "$@" "$T/ref.qcow2" >/dev/null
    rm -f "$T/pid" "$T/s.sock"
    "$VIMG" serve --fork --pid-file="$T/pid" --discard=unmap -k "$T/s.sock" \
        -f qcow2 "$T/top.qcow2"
    pid=$(cat "$T/pid")
    qemu-io -f raw "$@" "nbd+unix:///?socket=$T/s.sock" >/dev/null
    # The server ends when its one client leaves.
    i=0; while kill -0 "$pid" 2>/dev/null; do
        i=$((i + 1)); [ $i -lt 100 ] || fail "server did not stop"; sleep 0.05; done
    qemu-img check -q "$T/top.qcow2" || fail "$cs: qemu-img check failed"
    "$VIMG" check -q "$T/top.qcow2" || fail "$cs: vimg check failed"
    qemu-img compare -q "$T/ref.qcow2" "$T/top.qcow2" || fail "$cs: compare"
    qemu-io -c "read -P 0x22 $sc $sc" -c "read -P 0x11 $((5 * sc)) $((sc / 4))" \
            -c "read -P 0x33 $((5 * sc + sc / 4)) $((sc / 2))" \
            -c "read -P 0 $((2 * sc)) $((2 * sc))" \
            -c "read -P 0x77 $((7 * sc)) $((sc / 2))" \
            -c "read -P 0x11 $((7 * sc + sc / 2)) $((sc / 2))" \
            -c "read -P 0 $((66 * sc)) $sc" \
            -c "read -P 0x66 $((67 * sc + 512)) 512" \
            "$T/top.qcow2" | grep "Pattern verification failed" >&2 &&
        fail "$cs: qemu-io read -P"
    qemu-img map --output=json "$T/ref.qcow2" |
        sed 's/, "offset": [0-9]*//' >"$T/q.map"
    qemu-img map --output=json "$T/top.qcow2" |
        sed 's/, "offset": [0-9]*//' >"$T/v.map"
    cmp -s "$T/q.map" "$T/v.map" || { diff "$T/q.map" "$T/v.map" >&2; fail "$cs: allocation differs"; }

    # convert into a new extended_l2 image, and into an existing one.
    "$VIMG" convert -O qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$T/ref.qcow2" "$T/conv.qcow2"
    qemu-img check -q "$T/conv.qcow2" || fail "$cs: check after convert"
    qemu-img compare -q "$T/ref.qcow2" "$T/conv.qcow2" || fail "$cs: convert"
    qemu-img info "$T/conv.qcow2" | grep -q "extended l2: true" ||
        fail "$cs: convert lost extended_l2"
    qemu-img create -q -f qcow2 -o "extended_l2=on,cluster_size=$cs" \
        "$T/n.qcow2" 8M
    "$VIMG" convert -n --target-is-zero -O qcow2 "$T/ref.qcow2" "$T/n.qcow2"
    qemu-img check -q "$T/n.qcow2" || fail "$cs: check after convert -n"
    qemu-img compare -q "$T/ref.qcow2" "$T/n.qcow2" || fail "$cs: convert -n"

    # measure of a source holding data, zeros and holes.
    for o in "extended_l2=on,cluster_size=$cs" "extended_l2=on"; do
        qemu-img measure --output=json -O qcow2 -o "$o" "$T/ref.qcow2" >"$T/qm"
        "$VIMG" measure --output=json -O qcow2 -o "$o" "$T/ref.qcow2" >"$T/vm"
        cmp -s "$T/qm" "$T/vm" || { diff "$T/qm" "$T/vm" >&2; fail "$cs: measure $o"; }
    done
done
echo ok
