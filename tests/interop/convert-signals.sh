#!/bin/sh
# A convert interrupted by SIGINT, SIGTERM, SIGHUP or SIGKILL leaves
# nothing in the target's folder and keeps the old target, with the new
# file built without a name (O_TMPFILE); on a file system without
# O_TMPFILE (emulated by an LD_PRELOAD shim) the named temporary is removed
# by the signal handlers (not after SIGKILL, which no process can catch).
# The convert is slowed by the same shim (a pause per write) so that the
# signal lands while it runs; the first progress line says it started.
. "$(dirname "$0")/functions.sh"
requires cc python3
cat > "$T/shim.c" <<'EOF'
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

/* SHIM_NO_TMPFILE: open(O_TMPFILE) fails as on a file system without it.
 * SHIM_WRITE_DELAY_US: pause before each pwrite, to slow a convert. */
static int shim_open(const char *name, const char *file, int flags,
                     int mode)
{
    int (*real)(const char *, int, ...) =
        (int (*)(const char *, int, ...))dlsym(RTLD_NEXT, name);
    if ((flags & O_TMPFILE) == O_TMPFILE && getenv("SHIM_NO_TMPFILE")) {
        errno = EOPNOTSUPP;
        return -1;
    }
    return real(file, flags, mode);
}
#define MODE_ARG(flags) \
    int mode = 0; \
    if ((flags & O_CREAT) || (flags & O_TMPFILE) == O_TMPFILE) { \
        va_list ap; va_start(ap, flags); mode = va_arg(ap, int); va_end(ap); \
    }
int open(const char *f, int flags, ...) { MODE_ARG(flags); return shim_open("open", f, flags, mode); }
int open64(const char *f, int flags, ...) { MODE_ARG(flags); return shim_open("open64", f, flags, mode); }

static void delay(void)
{
    const char *d = getenv("SHIM_WRITE_DELAY_US");
    if (d) {
        usleep((useconds_t)atoi(d));
    }
}
ssize_t pwrite(int fd, const void *b, size_t n, off_t o)
{
    ssize_t (*real)(int, const void *, size_t, off_t) =
        (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite");
    delay();
    return real(fd, b, n, o);
}
ssize_t pwrite64(int fd, const void *b, size_t n, off_t o)
{
    ssize_t (*real)(int, const void *, size_t, off_t) =
        (ssize_t (*)(int, const void *, size_t, off_t))dlsym(RTLD_NEXT, "pwrite64");
    delay();
    return real(fd, b, n, o);
}
EOF
${CC:-cc} -shared -fPIC -o "$T/shim.so" "$T/shim.c" -ldl 2>"$T/cc.err" ||
    { cat "$T/cc.err"; echo "SKIP: cannot build the LD_PRELOAD shim"; exit 77; }
# An ASan build of vimg must tolerate a library loaded before its runtime.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0"

# 32 MiB of data: sixteen 2 MiB writes at 100 ms each, over a second.
head -c 33554432 /dev/urandom > "$T/src.img"
d=$T/out
mkdir "$d"

# interrupt SIGNAL [ENV...]: start a convert over $d/target.img, wait for
# its first progress line, send SIGNAL; the target must be as before.
interrupt() {
    sig=$1; shift
    echo "old target" > "$d/target.img"
    before=$(ls -A "$d")
    mkfifo "$T/progress"
    # A background job of a script starts with SIGINT ignored (and vimg
    # keeps an ignored signal ignored, as nohup expects): restore it.
    python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' \
        env "$@" SHIM_WRITE_DELAY_US=100000 LD_PRELOAD="$T/shim.so" \
        "$VIMG" convert -m 1 --progress=json -f raw -O raw "$T/src.img" \
        "$d/target.img" > "$T/progress" 2> "$T/err" &
    pid=$!
    exec 3< "$T/progress"
    read -r first <&3 || fail "$sig: no progress line: $(cat "$T/err")"
    case $first in *'"done": 33554432'*) fail "$sig: convert finished before the signal" ;; esac
    # Under way: a nameless new file, or with the shim a hidden named one.
    during=$(ls -A "$d" | tr '\n' ' ')
    case "$*:$during" in
        *SHIM_NO_TMPFILE*:".target.img.vimg-"????????" target.img ") ;;
        :"target.img ") ;;
        *) fail "$sig $*: in the folder while converting: $during" ;;
    esac
    kill -s "$sig" "$pid"
    cat <&3 > /dev/null
    exec 3<&-
    rm -f "$T/progress"
    set +e
    wait "$pid"
    rc=$?
    set -e
    [ $rc -gt 128 ] || fail "$sig: convert exited $rc, not by the signal"
    [ "$(ls -A "$d")" = "$before" ] || fail "$sig: left in the folder: $(ls -A "$d")"
    [ "$(cat "$d/target.img")" = "old target" ] || fail "$sig: old target changed"
}

for sig in INT TERM HUP KILL; do
    interrupt $sig
done
# Without O_TMPFILE: a named temporary, removed by the signal handlers.
for sig in INT TERM HUP; do
    interrupt $sig SHIM_NO_TMPFILE=1
done
# A finished convert through the fallback leaves only the target.
env SHIM_NO_TMPFILE=1 LD_PRELOAD="$T/shim.so" \
    "$VIMG" convert -f raw -O raw "$T/src.img" "$d/target.img"
cmp "$T/src.img" "$d/target.img" || fail "convert through the fallback differs"
[ "$(ls -A "$d")" = target.img ] || fail "left in the folder: $(ls -A "$d")"
