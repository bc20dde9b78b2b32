# Sourced by every interop test: `. "$(dirname "$0")/functions.sh"`.
# Gives a scratch folder $T removed on exit, `requires` (exit 77 = skip),
# and small assertion helpers. $VIMG is the vimg binary under test.
set -eu
: "${VIMG:?VIMG must name the vimg binary}"
T=$(mktemp -d "${TMPDIR:-/tmp}/vimg-test.XXXXXX")
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
