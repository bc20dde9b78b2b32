#!/bin/sh
# Images damaged on purpose (refcounts bumped, zeroed, an L2 entry moved or
# stripped of its COPIED flag, a leaked cluster): `vimg check` and
# `qemu-img check` report the same counts and exit codes, and
# `vimg check -r all` / `-r leaks` repair what qemu-img repairs, leaving an
# image qemu-img finds clean with the guest data intact.
. "$(dirname "$0")/functions.sh"
. "$(dirname "$0")/qcow2.inc"
requires qemu-img qemu-io

fields="corruptions leaks check-errors corruptions-fixed leaks-fixed
image-end-offset total-clusters allocated-clusters"

# checks ARGS...: run both checks with ARGS on copies of $T/bad.qcow2;
# exit codes and counts must agree.
checks() {
    cp "$T/bad.qcow2" "$T/q.qcow2"
    cp "$T/bad.qcow2" "$T/v.qcow2"
    set +e
    qemu-img check "$@" --output=json "$T/q.qcow2" > "$T/q.json" 2>/dev/null
    qs=$?
    "$VIMG" check "$@" --output=json "$T/v.qcow2" > "$T/v.json" 2>"$T/v.err"
    vs=$?
    set -e
    [ "$qs" = "$vs" ] || { cat "$T/v.json" "$T/v.err" >&2
        fail "$what: check $* exited $vs, qemu-img $qs"; }
    # Exit 1: the check could not complete; neither prints counts.
    [ "$qs" != 1 ] || return 0
    # shellcheck disable=SC2086
    json_diff "$T/q.json" "$T/v.json" --null0 $fields ||
        fail "$what: check $* counts differ (qemu-img != vimg)"
}

for cfg in "1.1 4k 16" "1.1 512 64" "1.1 64k 16" "0.10 4k 16"; do
    set -- $cfg
    o="compat=$1,cluster_size=$2,refcount_bits=$3"
    qemu-img create -q -f qcow2 -o "$o" "$T/good.qcow2" 1M
    qemu-io -c 'write -P 0x11 0 64k' -c 'write -P 0x22 512k 4k' \
        "$T/good.qcow2" >/dev/null
    good=$(qemu_sha "$T/good.qcow2" qcow2)
    for kind in leak-used leak-free rc-zero copied l2-unaligned l2-overlap; do
        what="$kind ($o)"
        cp "$T/good.qcow2" "$T/bad.qcow2"
        damage "$T/bad.qcow2" "$kind"
        checks
        checks -r leaks
        checks -r all
        case $kind in
            l2-unaligned) continue ;; # qemu-img cannot repair it either
        esac
        qemu_clean "$T/v.qcow2"
        case $kind in
            l2-*) ;;
            *) [ "$(qemu_sha "$T/v.qcow2" qcow2)" = "$good" ] ||
                   fail "$what: repair changed the guest data" ;;
        esac
        echo "ok: $what"
    done
done
