# Sourced by every interop test: `. "$(dirname "$0")/functions.sh"`.
# Gives a scratch folder $T removed on exit, `requires` (exit 77 = skip),
# and small assertion helpers. $VIMG is the vimg binary under test.
set -eu
: "${VIMG:?VIMG must name the vimg binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/vimg-test.XXXXXX")
# Tests that bound memory with `ulimit -v` must not depend on how many
# malloc arenas (64 MiB of address space each) convert's worker threads
# happen to create under load: one arena, as a constant.
export MALLOC_ARENA_MAX=1
cleanup_hooks=""
cleanup() {
    for h in $cleanup_hooks; do $h || true; done
    rm -rf "$T"
}
trap cleanup EXIT INT TERM
on_exit() { cleanup_hooks="$cleanup_hooks $1"; }

# requires CMD...: skip the test (exit 77) unless every command exists.
requires() {
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || { echo "SKIP: $c not installed"; exit 77; }
    done
}

fail() { echo "FAIL: $*" >&2; exit 1; }

# expect_status N CMD...: run CMD, fail unless it exits N. Output goes to
# $T/out and $T/err for later checks.
expect_status() {
    want=$1; shift
    set +e
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    set -e
    [ "$got" = "$want" ] || { cat "$T/out" "$T/err" >&2; fail "'$*' exited $got, expected $want"; }
}

# Guest-visible sha256 of an image, read by qemu-img (ground truth).
qemu_sha() { qemu-img convert -U -f "$2" -O raw "$1" "$T/.sha.raw" && sha256sum < "$T/.sha.raw" | cut -d' ' -f1; rm -f "$T/.sha.raw"; }
# The same, read by vimg.
vimg_sha() { "$VIMG" convert -U -f "$2" -O raw "$1" "$T/.sha.raw" && sha256sum < "$T/.sha.raw" | cut -d' ' -f1; rm -f "$T/.sha.raw"; }

# json_get FILE KEY: a top-level scalar from JSON (python3 is a meson dep).
json_get() { python3 -c 'import json,sys; v=json.load(open(sys.argv[1])).get(sys.argv[2]); print("null" if v is None else (str(v).lower() if isinstance(v,bool) else v))' "$1" "$2"; }

# allocated KiB of a file
du_k() { du -k "$1" | cut -f1; }

# data_map FILE: the file's data extents (SEEK_DATA/SEEK_HOLE), one
# "start end" line each. Unlike du, it does not count the file system's own
# extent-tree blocks, whose presence depends on writeback timing.
data_map() {
    python3 - "$1" <<'PY'
import os, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
end, pos = os.fstat(fd).st_size, 0
while pos < end:
    try:
        start = os.lseek(fd, pos, os.SEEK_DATA)
    except OSError:
        break
    pos = os.lseek(fd, start, os.SEEK_HOLE)
    print(start, pos)
PY
}

# serve_nbd SOCK QEMU-NBD-ARGS...: serve an image with qemu-nbd on the unix
# socket SOCK until the test ends; returns once the socket is there.
nbd_pid=""
stop_nbd() { [ -z "$nbd_pid" ] || { kill "$nbd_pid" 2>/dev/null; wait "$nbd_pid" 2>/dev/null; }; }
serve_nbd() {
    sock=$1; shift
    qemu-nbd -k "$sock" "$@" & nbd_pid=$!
    on_exit stop_nbd
    i=0
    while [ ! -S "$sock" ]; do
        i=$((i + 1)); [ $i -lt 100 ] || fail "qemu-nbd did not start"; sleep 0.1
    done
}

# boot_iso ISO MARKER SECONDS [QEMU-ARGS...]: boot ISO in QEMU (TCG, serial
# to a log) until MARKER (a grep pattern) appears on the serial port, then
# stop it; fails with the log if MARKER does not appear within SECONDS.
qemu_pid=""
stop_qemu() { [ -z "$qemu_pid" ] || { kill "$qemu_pid" 2>/dev/null; wait "$qemu_pid" 2>/dev/null; }; qemu_pid=""; }
boot_iso() {
    iso=$1 marker=$2 secs=$3; shift 3
    log=$T/serial.log
    : > "$log"
    case " $cleanup_hooks " in *" stop_qemu "*) ;; *) on_exit stop_qemu ;; esac
    timeout $((secs + 30)) qemu-system-x86_64 -accel tcg -display none \
        -nodefaults -serial "file:$log" -m 256 -no-reboot -cdrom "$iso" "$@" &
    qemu_pid=$!
    i=0
    while [ $i -lt $((secs * 2)) ] && ! grep -q "$marker" "$log"; do
        sleep 0.5; i=$((i + 1))
    done
    stop_qemu
    grep -q "$marker" "$log" || { cat -v "$log"; fail "no '$marker' on the serial port booting $iso $*"; }
}
