#!/bin/sh
# vimg in one minute: build a small ext4 disk image from a folder of files,
# copy it sparsely (and through qcow2 when this build has it), prove the
# copies identical, show info and map, and sum up what happened.
# Usage: scripts/demo.sh path/to/vimg     (run by `make demo`)
set -eu
[ $# = 1 ] || { echo "usage: $0 path/to/vimg" >&2; exit 2; }
case $1 in /*) VIMG=$1 ;; *) VIMG=$(pwd)/$1 ;; esac
[ -x "$VIMG" ] || { echo "demo: $VIMG is not an executable" >&2; exit 1; }
PATH=$PATH:/sbin:/usr/sbin
for tool in mkfs.ext4 debugfs; do
    command -v $tool >/dev/null ||
        { echo "demo: $tool is missing (e2fsprogs; 'make deps' installs it)" >&2; exit 1; }
done
D=$(mktemp -d "${TMPDIR:-/tmp}/vimg-demo.XXXXXX")
trap 'rm -rf "$D"' EXIT INT TERM
cd "$D"

if [ -t 1 ]; then bold=$(printf '\033[1m') plain=$(printf '\033[0m'); else bold= plain=; fi
step() { printf '\n%s== %s%s\n' "$bold" "$*" "$plain"; }
now() { date +%s.%N; }
elapsed() { echo "$1 $(now)" | awk '{ printf "%.2f", $2 - $1 }'; }
kib() { du -k "$1" | cut -f1; }

step "A folder of files to put on the disk"
mkdir -p files/etc files/data
echo "Hello from inside a vimg disk image." > files/hello.txt
printf 'name=demo\nsize=64M\n' > files/etc/demo.conf
head -c 3145728 /dev/urandom > files/data/random.bin
seq 1 20000 > files/data/numbers.txt
find files -type f -exec ls -l {} + | awk '{ print "  " $5 "\t" $9 }'

step "vimg create: a 64 MiB sparse raw disk, formatted as ext4 with the files"
"$VIMG" create -f raw disk.img 64M
mkfs.ext4 -q -F -L vimgdemo -d files disk.img
echo "disk.img: $(stat -c %s disk.img) bytes, $(kib disk.img) KiB allocated"

step "vimg info"
"$VIMG" info disk.img

step "vimg map: where the data lives (everything else is a hole)"
"$VIMG" map -f raw disk.img | head -12
extents=$("$VIMG" map --output=json -f raw disk.img | grep -c '"data": true')
echo "($extents data extents)"

step "vimg convert: raw -> raw, keeping holes sparse"
t=$(now)
"$VIMG" convert -p -f raw -O raw disk.img copy.img
t_raw=$(elapsed "$t")
echo "copy.img: $(kib copy.img) KiB allocated, in $t_raw s"

formats=$("$VIMG" --help | sed -n 's/^Formats://p')
t_qcow2=""
case " $formats " in
*" qcow2 "*)
    step "vimg convert: raw -> qcow2 -> raw"
    t=$(now)
    "$VIMG" convert -f raw -O qcow2 disk.img disk.qcow2
    "$VIMG" convert -f qcow2 -O raw disk.qcow2 back.img
    t_qcow2=$(elapsed "$t")
    "$VIMG" info disk.qcow2
    "$VIMG" compare -f raw -F raw disk.img back.img
    if command -v qemu-img >/dev/null; then
        printf 'qemu-img reads the qcow2 as the same disk: '
        qemu-img compare -f raw -F qcow2 disk.img disk.qcow2
        qemu-img check -q disk.qcow2 && echo "qemu-img check: no errors"
    fi
    ;;
esac

step "vimg compare: the copy is what a guest would read from the original"
"$VIMG" compare -f raw -F raw disk.img copy.img
if command -v qemu-img >/dev/null; then
    printf 'qemu-img agrees: '
    qemu-img compare -f raw -F raw disk.img copy.img
fi

step "Reading a file back out of the copy (debugfs)"
debugfs -R "cat /hello.txt" copy.img 2>/dev/null
debugfs -R "cat /data/random.bin" copy.img 2>/dev/null > random.out
cmp -s random.out files/data/random.bin
echo "data/random.bin: identical to the original (3 MiB of random bytes)"

step "Summary"
echo "  disk image:   64 MiB virtual, $(kib disk.img) KiB allocated, $extents data extents"
echo "  sparse copy:  $(kib copy.img) KiB allocated (zero blocks left as holes)," \
     "converted in $t_raw s, identical"
if [ -n "$t_qcow2" ]; then
    echo "  qcow2:        $(kib disk.qcow2) KiB file; raw -> qcow2 -> raw in $t_qcow2 s, identical"
fi
echo "  formats in this build:$formats"
echo "All steps succeeded; the scratch folder is removed on exit."
