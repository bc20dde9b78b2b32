#!/usr/bin/env python3
"""The compatibility table: run qemu-img and vimg on the same inputs, one
invocation per row, and compare what a script would see.

For each row, the inputs it names are copied from a fixture folder (built
once with qemu-img and qemu-io) into two fresh folders, q/ and v/; the
row's arguments run there with qemu-img and with vimg. Compared:
  rc       the exit code
  stdout   the standard output, byte for byte after the row's
           normalisations (timings, the tool's own name), or field by
           field when the row says it is JSON (json:PATH keys)
  stderr   whether each tool wrote an error (messages are worded
           differently); byte for byte when the row asks for it
  file:NAME:MODE  a file the command made or changed, judged by qemu-img:
           bytes (identical file), guest (qemu-img compare: the same
           guest-visible bytes), info (qemu-img info --output=json),
           map (qemu-img map --output=json), check (qemu-img check),
           size (file size), exists (present in both or neither)
A difference fails the test unless compat-allowlist.txt lists it (row and
key, shell-style patterns), with its reason; an allow-list entry that no
row needs any more fails too, so the list stays true.

Usage: compat-table.py VIMG [ROW-PATTERN...]  (qemu-img from $PATH)
"""
import concurrent.futures
import fnmatch
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


class Row:
    def __init__(self, rid, args, inputs=(), files=None, out="exact",
                 err="presence", norm=(), shell=False, stdin=None):
        self.id = rid
        self.args = args          # after the tool's name
        self.inputs = inputs      # fixture names copied into the folder
        self.files = files or {}  # NAME -> "MODE[:FMT] ..." checks
        self.out = out            # exact | json | ignore
        self.err = err            # presence | exact | ignore
        self.norm = norm          # (regex, replacement) on stdout
        self.shell = shell        # args is shell text ($TOOL = the tool)
        self.stdin = stdin


# Inputs, made with qemu-img and qemu-io only, so both tools start from
# the same bytes. Each is a shell command run in the fixture folder.
FIXTURES = [
    # 8 MiB raw: data at 0-1M and 3M-4M, a hole elsewhere.
    "qemu-img create -q -f raw data.raw 8M && "
    "qemu-io -f raw -c 'write -P 0x11 0 1M' -c 'write -P 0x22 3M 1M' "
    "data.raw >/dev/null",
    "qemu-img convert -f raw -O qcow2 data.raw data.qcow2",
    "qemu-img create -q -f raw small.raw 1M && "
    "qemu-io -f raw -c 'write -P 0x33 64k 128k' small.raw >/dev/null",
    "qemu-img create -q -f raw odd.raw 1000000 && "
    "qemu-io -f raw -c 'write -P 0x44 0 512' odd.raw >/dev/null",
    "qemu-img create -q -f raw big.raw 2M",
    "qemu-img create -q -f qcow2 base.qcow2 4M && "
    "qemu-io -f qcow2 -c 'write -P 0x55 0 2M' base.qcow2 >/dev/null",
    "qemu-img create -q -f qcow2 -b base.qcow2 -F qcow2 overlay.qcow2 && "
    "qemu-io -f qcow2 -c 'write -P 0x66 1M 64k' -c 'write -z 3M 64k' "
    "overlay.qcow2 >/dev/null",
    "qemu-img create -q -f qcow2 empty.qcow2 4M",
    "qemu-img create -q -f qcow2 zero.qcow2 4M && "
    "qemu-io -f qcow2 -c 'write -P 0x77 0 1M' -c 'write -z 512k 256k' "
    "zero.qcow2 >/dev/null",
    "qemu-img create -q -f qcow2 -o preallocation=metadata meta.qcow2 4M",
    "qemu-img create -q -f qcow2 -o compat=0.10 v2.qcow2 4M && "
    "qemu-io -f qcow2 -c 'write -P 0x12 0 64k' v2.qcow2 >/dev/null",
    "qemu-img convert -c -f raw -O qcow2 data.raw comp.qcow2",
    # Two compressed clusters whose bytes are garbage: reads fail (EIO).
    "qemu-img create -q -f raw pat.raw 1M && "
    "qemu-io -f raw -c 'write -P 0x41 0 512k' pat.raw >/dev/null && "
    "qemu-img convert -c -f raw -O qcow2 pat.raw bad.qcow2 && "
    "python3 \"$HERE/compat-damage.py\" compressed bad.qcow2 1 5",
    # A leaked cluster: one more refcount on a cluster nobody uses.
    "cp data.qcow2 leak.qcow2 && "
    "python3 \"$HERE/compat-damage.py\" leak leak.qcow2",
    "head -c 4096 /dev/zero > notanimage.txt && echo hello >> notanimage.txt",
    "mkdir iso && echo hello > iso/hello.txt && "
    "xorriso -as mkisofs -quiet -R -V VOL -o vol.iso iso 2>/dev/null",
]

R = Row
# -p prints "    (NN.NN/100%)\r" lines; vimg's percentages count every
# byte of the disk where qemu-img's count allocated data, so the lines are
# compared as one token (their format, where they start and end).
PROGRESS = [(r"(    \(\d{1,3}\.\d\d/100%\)\r)+", "[progress]\r")]
TIME = [(r"in \d+\.\d{3} seconds", "in T seconds")]
ROWS = [
    # ---- create ------------------------------------------------------
    R("create-raw", "create -f raw out.img 1M", files={"out.img": "bytes"}),
    R("create-raw-default-fmt", "create out.img 64k",
      files={"out.img": "bytes"}),
    R("create-raw-falloc", "create -f raw -o preallocation=falloc out.img 1M",
      files={"out.img": "bytes"}),
    R("create-raw-full", "create -f raw -o preallocation=full out.img 1M",
      files={"out.img": "bytes"}),
    R("create-raw-odd-size", "create -f raw out.img 1000",
      files={"out.img": "size"}),
    R("create-qcow2", "create -f qcow2 out.qcow2 64M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-q", "create -q -f qcow2 out.qcow2 1G",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-opts",
      "create -f qcow2 -o cluster_size=4k,lazy_refcounts=on,compat=1.1 "
      "out.qcow2 16M", files={"out.qcow2": "bytes"}),
    R("create-qcow2-v2", "create -f qcow2 -o compat=0.10 out.qcow2 16M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-v3-name", "create -f qcow2 -o compat=v3 out.qcow2 16M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-refcount-bits",
      "create -f qcow2 -o refcount_bits=64 out.qcow2 16M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-zstd",
      "create -f qcow2 -o compression_type=zstd out.qcow2 16M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-size-opt", "create -f qcow2 -o size=1M out.qcow2",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-metadata",
      "create -f qcow2 -o preallocation=metadata out.qcow2 4M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-falloc",
      "create -f qcow2 -o preallocation=falloc out.qcow2 4M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-full",
      "create -f qcow2 -o preallocation=full out.qcow2 4M",
      files={"out.qcow2": "bytes"}),
    R("create-qcow2-multiple-o",
      "create -f qcow2 -o cluster_size=512 -o lazy_refcounts=on out.qcow2 1M",
      files={"out.qcow2": "bytes"}),
    R("create-backing", "create -f qcow2 -b base.qcow2 -F qcow2 out.qcow2",
      inputs=["base.qcow2"], files={"out.qcow2": "bytes"}),
    R("create-backing-size",
      "create -f qcow2 -b base.qcow2 -F qcow2 out.qcow2 8M",
      inputs=["base.qcow2"], files={"out.qcow2": "bytes"}),
    R("create-backing-opt",
      "create -f qcow2 -o backing_file=base.qcow2,backing_fmt=qcow2 "
      "out.qcow2", inputs=["base.qcow2"], files={"out.qcow2": "bytes"}),
    R("create-backing-no-fmt", "create -f qcow2 -b base.qcow2 out.qcow2",
      inputs=["base.qcow2"], files={"out.qcow2": "exists"}),
    R("create-backing-missing",
      "create -f qcow2 -b missing.qcow2 -F qcow2 out.qcow2",
      files={"out.qcow2": "exists"}),
    R("create-unsafe-missing-backing",
      "create -u -f qcow2 -b missing.qcow2 -F qcow2 out.qcow2 1M",
      files={"out.qcow2": "bytes"}),
    R("create-unsafe-no-fmt",
      "create -u -f qcow2 -b base.qcow2 out.qcow2 1M",
      inputs=["base.qcow2"], files={"out.qcow2": "exists"}),
    R("create-unsafe-no-size", "create -u -f qcow2 -b base.qcow2 -F qcow2 "
      "out.qcow2", inputs=["base.qcow2"], files={"out.qcow2": "exists"}),
    R("create-unsafe-existing", "create -u -f qcow2 -b base.qcow2 -F qcow2 "
      "out.qcow2 8M", inputs=["base.qcow2"], files={"out.qcow2": "bytes"}),
    R("create-size-twice", "create -f qcow2 -o size=1M out.qcow2 2M",
      files={"out.qcow2": "exists"}),
    R("create-backing-comma", "create -f qcow2 -u -b 'a,b.qcow2' -F qcow2 "
      "out.qcow2 1M", files={"out.qcow2": "bytes"}),
    R("create-bare-bool", "create -f qcow2 -o lazy_refcounts out.qcow2 1M",
      files={"out.qcow2": "bytes"}),
    R("create-bool-words",
      "create -f qcow2 -o lazy_refcounts=yes,extended_l2=false out.qcow2 1M",
      files={"out.qcow2": "bytes"}),
    R("create-size-suffixes", "create -f qcow2 -o cluster_size=2k out.qcow2 "
      "1.5M", files={"out.qcow2": "bytes"}),
    R("create-o-trailing-comma", "create -f qcow2 -o cluster_size=4k, "
      "out.qcow2 1M", files={"out.qcow2": "exists"}),
    R("create-no-size", "create -f qcow2 out.qcow2",
      files={"out.qcow2": "exists"}),
    R("create-bad-size", "create -f raw out.img 12Q",
      files={"out.img": "exists"}),
    R("create-negative-size", "create -f raw out.img -- -1",
      files={"out.img": "exists"}),
    R("create-bad-option", "create -f qcow2 -o bogus=1 out.qcow2 1M",
      files={"out.qcow2": "exists"}),
    R("create-bad-cluster-size",
      "create -f qcow2 -o cluster_size=3000 out.qcow2 1M",
      files={"out.qcow2": "exists"}),
    R("create-empty-o", "create -f qcow2 -o '' out.qcow2 1M",
      files={"out.qcow2": "exists"}),
    R("create-unknown-fmt", "create -f nosuch out.img 1M",
      files={"out.img": "exists"}),
    R("create-no-args", "create"),
    R("create-too-many-args", "create -f raw a.img 1M extra",
      files={"a.img": "exists"}),
    R("create-o-help-raw", "create -f raw -o help"),
    R("create-o-help-qcow2", "create -f qcow2 -o help"),
    R("create-o-question-qcow2", "create -f qcow2 -o ? out.qcow2 1M",
      files={"out.qcow2": "exists"}),
    R("create-o-help-mixed", "create -f qcow2 -o cluster_size=4k,help"),
    R("create-existing-replaced", "create -f raw data.raw 1M",
      inputs=["data.raw"], files={"data.raw": "bytes"}),

    # ---- info --------------------------------------------------------
    R("info-raw", "info data.raw", inputs=["data.raw"]),
    R("info-raw-json", "info --output=json data.raw", inputs=["data.raw"],
      out="json"),
    R("info-qcow2", "info data.qcow2", inputs=["data.qcow2"]),
    R("info-qcow2-json", "info --output json data.qcow2",
      inputs=["data.qcow2"], out="json"),
    R("info-qcow2-v2", "info v2.qcow2", inputs=["v2.qcow2"]),
    R("info-f", "info -f qcow2 data.qcow2", inputs=["data.qcow2"]),
    R("info-wrong-f", "info -f qcow2 data.raw", inputs=["data.raw"]),
    R("info-overlay", "info overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"]),
    R("info-overlay-json", "info --output=json overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"], out="json"),
    R("info-chain", "info --backing-chain overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"]),
    R("info-chain-json", "info --backing-chain --output=json overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"], out="json"),
    R("info-U", "info -U data.qcow2", inputs=["data.qcow2"]),
    R("info-force-share", "info --force-share data.qcow2",
      inputs=["data.qcow2"]),
    R("info-missing-backing", "info overlay.qcow2",
      inputs=["overlay.qcow2"]),
    R("info-compressed-json", "info --output=json comp.qcow2",
      inputs=["comp.qcow2"], out="json"),
    R("info-missing-file", "info nosuch.img"),
    R("info-bad-output", "info --output=xml data.raw", inputs=["data.raw"]),
    R("info-no-args", "info"),
    R("info-two-args", "info data.raw data.raw", inputs=["data.raw"]),
    R("info-odd-raw", "info odd.raw", inputs=["odd.raw"]),
    R("info-text-file", "info notanimage.txt", inputs=["notanimage.txt"]),
    R("info-iso", "info vol.iso", inputs=["vol.iso"]),
    R("info-iso-json", "info --output=json vol.iso", inputs=["vol.iso"],
      out="json"),

    # ---- map ---------------------------------------------------------
    R("map-raw", "map data.raw", inputs=["data.raw"]),
    R("map-raw-json", "map --output=json data.raw", inputs=["data.raw"],
      out="json"),
    R("map-qcow2", "map data.qcow2", inputs=["data.qcow2"]),
    R("map-qcow2-json", "map --output=json data.qcow2",
      inputs=["data.qcow2"], out="json"),
    R("map-overlay", "map overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"]),
    R("map-overlay-json", "map --output=json overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"], out="json"),
    R("map-zero-json", "map --output=json zero.qcow2",
      inputs=["zero.qcow2"], out="json"),
    R("map-metadata-json", "map --output=json meta.qcow2",
      inputs=["meta.qcow2"], out="json"),
    R("map-metadata", "map meta.qcow2", inputs=["meta.qcow2"]),
    R("map-compressed-json", "map --output=json comp.qcow2",
      inputs=["comp.qcow2"], out="json"),
    R("map-range", "map --start-offset=1M --max-length=3M data.qcow2",
      inputs=["data.qcow2"]),
    R("map-range-json",
      "map --output=json --start-offset 512k --max-length 1M data.raw",
      inputs=["data.raw"], out="json"),
    R("map-f", "map -f raw data.raw", inputs=["data.raw"]),
    R("map-no-args", "map"),

    # ---- check -------------------------------------------------------
    R("check-clean", "check data.qcow2", inputs=["data.qcow2"]),
    R("check-clean-json", "check --output=json data.qcow2",
      inputs=["data.qcow2"], out="json"),
    R("check-raw", "check data.raw", inputs=["data.raw"]),
    R("check-leak", "check leak.qcow2", inputs=["leak.qcow2"]),
    R("check-leak-json", "check --output=json leak.qcow2",
      inputs=["leak.qcow2"], out="json"),
    R("check-leak-repair", "check -r leaks leak.qcow2",
      inputs=["leak.qcow2"], files={"leak.qcow2": "check"}),
    R("check-leak-repair-all", "check -r all leak.qcow2",
      inputs=["leak.qcow2"], files={"leak.qcow2": "check"}),
    R("check-bad-r", "check -r some data.qcow2", inputs=["data.qcow2"]),
    R("check-q", "check -q leak.qcow2", inputs=["leak.qcow2"]),
    R("check-compressed", "check comp.qcow2", inputs=["comp.qcow2"]),
    R("check-no-args", "check"),
    R("check-empty", "check empty.qcow2", inputs=["empty.qcow2"]),
    R("check-q-raw", "check -q data.raw", inputs=["data.raw"]),

    # ---- measure -----------------------------------------------------
    R("measure-size-qcow2", "measure -O qcow2 --size 1G"),
    R("measure-size-raw", "measure -O raw --size 1G"),
    R("measure-image", "measure -O qcow2 data.raw", inputs=["data.raw"]),
    R("measure-image-json", "measure --output=json -O qcow2 data.qcow2",
      inputs=["data.qcow2"], out="json"),
    R("measure-opts",
      "measure -O qcow2 -o cluster_size=4k,preallocation=metadata "
      "--size 100M"),
    R("measure-overlay", "measure -O qcow2 overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"]),
    R("measure-both", "measure -O qcow2 --size 1M data.raw",
      inputs=["data.raw"]),
    R("measure-neither", "measure -O qcow2"),

    # ---- resize ------------------------------------------------------
    R("resize-raw-grow", "resize -f raw data.raw 16M", inputs=["data.raw"],
      files={"data.raw": "bytes"}),
    R("resize-raw-plus", "resize -f raw data.raw +1M", inputs=["data.raw"],
      files={"data.raw": "bytes"}),
    R("resize-raw-shrink-refused", "resize -f raw data.raw 1M",
      inputs=["data.raw"], files={"data.raw": "bytes"}),
    R("resize-raw-shrink", "resize -f raw --shrink data.raw 2M",
      inputs=["data.raw"], files={"data.raw": "bytes"}),
    R("resize-raw-minus", "resize -f raw --shrink data.raw -- -2M",
      inputs=["data.raw"], files={"data.raw": "bytes"}),
    R("resize-raw-minus-no-dashdash", "resize -f raw --shrink data.raw -2M",
      inputs=["data.raw"], files={"data.raw": "bytes"}),
    R("resize-qcow2-minus-no-dashdash", "resize --shrink data.qcow2 -32k",
      inputs=["data.qcow2"], files={"data.qcow2": "bytes"}),
    R("resize-qcow2-grow", "resize data.qcow2 +100M", inputs=["data.qcow2"],
      files={"data.qcow2": "bytes"}),
    R("resize-qcow2-shrink", "resize --shrink data.qcow2 2M",
      inputs=["data.qcow2"], files={"data.qcow2": "bytes"}),
    R("resize-qcow2-falloc", "resize --preallocation=falloc data.qcow2 12M",
      inputs=["data.qcow2"], files={"data.qcow2": "bytes"}),
    R("resize-qcow2-metadata",
      "resize --preallocation=metadata data.qcow2 12M",
      inputs=["data.qcow2"], files={"data.qcow2": "bytes"}),
    R("resize-raw-falloc", "resize -f raw --preallocation=falloc data.raw 9M",
      inputs=["data.raw"], files={"data.raw": "bytes"}),
    R("resize-bad-prealloc", "resize --preallocation=lots data.qcow2 9M",
      inputs=["data.qcow2"], files={"data.qcow2": "bytes"}),
    R("resize-q", "resize -q data.qcow2 9M", inputs=["data.qcow2"],
      files={"data.qcow2": "bytes"}),
    R("resize-probed-raw", "resize data.raw 9M", inputs=["data.raw"],
      files={"data.raw": "bytes"}),
    R("resize-no-size", "resize data.raw", inputs=["data.raw"]),
    R("resize-no-args", "resize"),
    R("resize-options-after", "resize data.qcow2 --shrink -q 2M",
      inputs=["data.qcow2"], files={"data.qcow2": "bytes"}),

    # ---- compare -----------------------------------------------------
    R("compare-same", "compare data.raw data.qcow2",
      inputs=["data.raw", "data.qcow2"]),
    R("compare-f", "compare -f raw -F qcow2 data.raw data.qcow2",
      inputs=["data.raw", "data.qcow2"]),
    R("compare-differ", "compare data.raw small.raw",
      inputs=["data.raw", "small.raw"]),
    R("compare-strict", "compare -s data.raw data.qcow2",
      inputs=["data.raw", "data.qcow2"]),
    R("compare-sizes", "compare big.raw small.raw",
      inputs=["big.raw", "small.raw"]),
    R("compare-sizes-same-data", "compare base.qcow2 data.raw",
      inputs=["base.qcow2", "data.raw"]),
    R("compare-sizes-strict", "compare -s big.raw small.raw",
      inputs=["big.raw", "small.raw"]),
    R("compare-q", "compare -q data.raw small.raw",
      inputs=["data.raw", "small.raw"]),
    R("compare-overlay", "compare overlay.qcow2 base.qcow2",
      inputs=["overlay.qcow2", "base.qcow2"]),
    R("compare-progress", "compare -p data.raw data.qcow2",
      inputs=["data.raw", "data.qcow2"], norm=PROGRESS),
    R("compare-progress-differ", "compare -p data.raw small.raw",
      inputs=["data.raw", "small.raw"], norm=PROGRESS),
    R("compare-progress-q", "compare -q -p data.raw data.qcow2",
      inputs=["data.raw", "data.qcow2"]),
    R("compare-bad-option", "compare -x data.raw data.raw",
      inputs=["data.raw"]),
    R("compare-read-error", "compare bad.qcow2 pat.raw",
      inputs=["bad.qcow2", "pat.raw"]),
    R("compare-missing", "compare data.raw nosuch.raw",
      inputs=["data.raw"]),
    R("compare-one-arg", "compare data.raw", inputs=["data.raw"]),

    # ---- convert -----------------------------------------------------
    R("convert-raw-qcow2", "convert -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "bytes"}),
    R("convert-qcow2-raw", "convert -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}),
    R("convert-default-raw", "convert data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}),
    R("convert-f", "convert -f qcow2 -O qcow2 data.qcow2 out.qcow2",
      inputs=["data.qcow2"], files={"out.qcow2": "bytes"}),
    R("convert-overlay", "convert -O qcow2 overlay.qcow2 out.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"], files={"out.qcow2": "bytes"}),
    R("convert-o", "convert -O qcow2 -o cluster_size=4k data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "bytes"}),
    R("convert-o-compat", "convert -O qcow2 -o compat=0.10 zero.qcow2 "
      "out.qcow2", inputs=["zero.qcow2"], files={"out.qcow2": "bytes"}),
    R("convert-c", "convert -c -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "guest:qcow2 map:qcow2"}),
    R("convert-c-zstd",
      "convert -c -O qcow2 -o compression_type=zstd data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "guest:qcow2 info:qcow2"}),
    R("convert-c-raw", "convert -c -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("convert-S0", "convert -S 0 -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "bytes"}),
    R("convert-S64k", "convert -S 64k -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}),
    R("convert-S-odd", "convert -S 1000 -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("convert-S-huge", "convert -S 1G -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("convert-S-max", "convert -S 16M -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "bytes"}),
    R("convert-S-bad", "convert -S x -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("convert-m", "convert -m 2 -W -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "guest:qcow2 check:qcow2"}),
    R("convert-m-bad", "convert -m 0 -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "exists"}),
    R("convert-t-T", "convert -t none -T none -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}),
    R("convert-t-bad", "convert -t bogus -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "exists"}),
    R("convert-U", "convert -U -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}),
    R("convert-q", "convert -q -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}),
    R("convert-p", "convert -p -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}, norm=PROGRESS),
    R("convert-p-qcow2", "convert -p -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "bytes"}, norm=PROGRESS),
    R("convert-p-q", "convert -q -p -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "bytes"}),
    R("convert-n", "convert -n -O raw data.qcow2 big.raw",
      inputs=["data.qcow2", "big.raw"], files={"big.raw": "bytes"}),
    R("convert-n-larger", "convert -n -O raw small.raw data.raw",
      inputs=["small.raw", "data.raw"], files={"data.raw": "bytes"}),
    R("convert-n-missing", "convert -n -O raw data.qcow2 out.raw",
      inputs=["data.qcow2"], files={"out.raw": "exists"}),
    R("convert-B", "convert -O qcow2 -B base.qcow2 -F qcow2 overlay.qcow2 "
      "out.qcow2", inputs=["base.qcow2", "overlay.qcow2"],
      files={"out.qcow2": "guest:qcow2 info:qcow2 check:qcow2"}),
    R("convert-B-no-F", "convert -O qcow2 -B base.qcow2 overlay.qcow2 "
      "out.qcow2", inputs=["base.qcow2", "overlay.qcow2"],
      files={"out.qcow2": "exists"}),
    R("convert-o-backing",
      "convert -O qcow2 -o backing_file=base.qcow2,backing_fmt=qcow2 "
      "overlay.qcow2 out.qcow2", inputs=["base.qcow2", "overlay.qcow2"],
      files={"out.qcow2": "guest:qcow2 info:qcow2 check:qcow2"}),
    R("convert-o-backing-no-fmt",
      "convert -O qcow2 -o backing_file=base.qcow2 overlay.qcow2 out.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"], files={"out.qcow2": "exists"}),
    R("convert-target-is-zero",
      "convert -n --target-is-zero -O qcow2 data.raw empty8.qcow2",
      inputs=["data.raw", "empty8.qcow2"],
      files={"empty8.qcow2": "guest:qcow2 map:qcow2"}),
    R("convert-target-is-zero-no-n",
      "convert --target-is-zero -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("convert-target-is-zero-backing",
      "convert -n --target-is-zero -O qcow2 base.qcow2 overlay.qcow2",
      inputs=["base.qcow2", "overlay.qcow2"],
      files={"overlay.qcow2": "bytes"}),
    R("convert-salvage", "convert --salvage -O raw bad.qcow2 out.raw",
      inputs=["bad.qcow2"], files={"out.raw": "bytes"}, err="ignore"),
    R("convert-salvage-ordered", "convert --salvage -m 1 -O raw bad.qcow2 "
      "out.raw", inputs=["bad.qcow2"], files={"out.raw": "bytes"},
      err="exact", norm=()),
    R("convert-read-error", "convert -O raw bad.qcow2 out.raw",
      inputs=["bad.qcow2"], files={"out.raw": "exists"}),
    R("convert-C-raw", "convert -C -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "guest:raw"}),
    R("convert-C-qcow2", "convert -C -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "guest:qcow2"}),
    R("convert-C-c", "convert -C -c -O qcow2 data.raw out.qcow2",
      inputs=["data.raw"], files={"out.qcow2": "exists"}),
    R("convert-r", "convert -r 1G -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "bytes"}),
    R("convert-r-bad", "convert -r abc -O raw data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("convert-two-sources", "convert -O raw small.raw data.raw out.raw",
      inputs=["small.raw", "data.raw"], files={"out.raw": "bytes"}),
    R("convert-three-sources-qcow2",
      "convert -O qcow2 data.qcow2 odd.raw small.raw out.qcow2",
      inputs=["data.qcow2", "odd.raw", "small.raw"],
      files={"out.qcow2": "guest:qcow2 info:qcow2"}),
    R("convert-sources-c",
      "convert -c -O qcow2 odd.raw small.raw out.qcow2",
      inputs=["odd.raw", "small.raw"], files={"out.qcow2": "guest:qcow2"}),
    R("convert-o-help", "convert -O qcow2 -o help"),
    R("convert-o-help-raw", "convert -O raw -o help data.raw out.raw",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("convert-existing-target", "convert -O raw small.raw data.raw",
      inputs=["small.raw", "data.raw"], files={"data.raw": "bytes"}),
    R("convert-missing-source", "convert -O raw nosuch.raw out.raw",
      files={"out.raw": "exists"}),
    R("convert-one-arg", "convert data.raw", inputs=["data.raw"]),
    R("convert-odd-raw-qcow2", "convert -O qcow2 odd.raw out.qcow2",
      inputs=["odd.raw"], files={"out.qcow2": "bytes"}),
    R("convert-zero-clusters", "convert -O qcow2 zero.qcow2 out.qcow2",
      inputs=["zero.qcow2"], files={"out.qcow2": "bytes"}),
    R("convert-metadata", "convert -O qcow2 -o preallocation=metadata "
      "data.raw out.qcow2", inputs=["data.raw"],
      files={"out.qcow2": "bytes"}),

    # ---- dd ----------------------------------------------------------
    R("dd-raw", "dd if=small.raw of=out.raw",
      inputs=["small.raw"], files={"out.raw": "guest:raw size"}),
    R("dd-bs-count-skip", "dd if=data.raw of=out.raw bs=1M count=4 skip=2",
      inputs=["data.raw"], files={"out.raw": "guest:raw size"}),
    R("dd-qcow2", "dd -f raw -O qcow2 if=data.raw of=out.qcow2 bs=64k",
      inputs=["data.raw"], files={"out.qcow2": "guest:qcow2 check:qcow2"}),
    R("dd-from-qcow2", "dd -f qcow2 if=overlay.qcow2 of=out.raw bs=4k "
      "skip=256 count=768", inputs=["base.qcow2", "overlay.qcow2"],
      files={"out.raw": "guest:raw size"}),
    R("dd-odd-bs", "dd if=odd.raw of=out.raw bs=1000 skip=3",
      inputs=["odd.raw"], files={"out.raw": "guest:raw size"}),
    R("dd-count-0", "dd if=data.raw of=out.raw count=0",
      inputs=["data.raw"], files={"out.raw": "size"}),
    R("dd-skip-past-end", "dd if=data.raw of=out.raw bs=1M skip=100",
      inputs=["data.raw"], files={"out.raw": "size"}),
    R("dd-last-wins", "dd if=data.raw of=out.raw bs=1M count=2 count=3 "
      "skip=1", inputs=["data.raw"], files={"out.raw": "guest:raw size"}),
    R("dd-bs-0", "dd if=data.raw of=out.raw bs=0", inputs=["data.raw"],
      files={"out.raw": "exists"}),
    R("dd-bs-bad", "dd if=data.raw of=out.raw bs=1x", inputs=["data.raw"],
      files={"out.raw": "exists"}),
    R("dd-count-negative", "dd if=data.raw of=out.raw count=-1",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("dd-bad-operand", "dd if=data.raw of=out.raw foo=1",
      inputs=["data.raw"], files={"out.raw": "exists"}),
    R("dd-no-of", "dd if=data.raw", inputs=["data.raw"]),
    R("dd-extra", "dd if=data.raw of=out.raw extra", inputs=["data.raw"],
      files={"out.raw": "exists"}),
    R("dd-missing-input", "dd if=nosuch.raw of=out.raw",
      files={"out.raw": "exists"}),
    R("dd-existing-output", "dd if=small.raw of=data.raw",
      inputs=["small.raw", "data.raw"], files={"data.raw": "guest:raw size"}),

    # ---- bench -------------------------------------------------------
    R("bench-read", "bench -c 1000 data.qcow2", inputs=["data.qcow2"],
      norm=TIME),
    R("bench-write", "bench -w -c 500 -d 8 -s 8k -o 64k -S 12k "
      "--pattern=0x5a data.qcow2", inputs=["data.qcow2"],
      files={"data.qcow2": "guest:qcow2 check:qcow2"},
      norm=TIME),
    R("bench-write-flush", "bench -w -c 100 -d 4 --flush-interval=8 "
      "-f raw data.raw", inputs=["data.raw"], files={"data.raw": "bytes"},
      norm=TIME),
    R("bench-write-no-drain", "bench -w -c 100 -d 4 --flush-interval=4 "
      "--no-drain -t none -n data.qcow2", inputs=["data.qcow2"],
      files={"data.qcow2": "guest:qcow2"},
      norm=TIME),
    R("bench-wrap", "bench -c 300 -s 64k -S 128k big.raw",
      inputs=["big.raw"],
      norm=TIME),
    R("bench-q-U", "bench -q -U -c 10 data.qcow2", inputs=["data.qcow2"],
      norm=TIME),
    R("bench-past-end", "bench -c 1 -o 100M data.qcow2",
      inputs=["data.qcow2"]),
    R("bench-flush-read", "bench -c 10 --flush-interval=64 data.qcow2",
      inputs=["data.qcow2"]),
    R("bench-flush-small", "bench -w -c 10 --flush-interval=2 data.qcow2",
      inputs=["data.qcow2"]),
    R("bench-bad-pattern", "bench -w --pattern=300 data.qcow2",
      inputs=["data.qcow2"]),
    R("bench-bad-count", "bench -c -1 data.qcow2", inputs=["data.qcow2"]),
    R("bench-bad-cache", "bench -t bogus data.qcow2",
      inputs=["data.qcow2"]),
    R("bench-no-args", "bench"),

    # ---- --image-opts, --target-image-opts, --object ----------------
    R("image-opts-info", "info --image-opts driver=qcow2,file.filename="
      "data.qcow2", inputs=["data.qcow2"]),
    R("image-opts-info-probe", "info --image-opts file.filename=data.qcow2",
      inputs=["data.qcow2"]),
    R("image-opts-unknown-key", "info --image-opts driver=qcow2,"
      "file.filename=data.qcow2,bogus=1", inputs=["data.qcow2"]),
    R("image-opts-map", "map --output=json --image-opts driver=qcow2,"
      "file.driver=file,file.filename=data.qcow2", inputs=["data.qcow2"],
      out="json"),
    R("image-opts-runtime", "map --image-opts driver=qcow2,file.filename="
      "data.qcow2,l2-cache-size=65536", inputs=["data.qcow2"]),
    R("image-opts-check", "check --image-opts driver=qcow2,file.filename="
      "leak.qcow2", inputs=["leak.qcow2"]),
    R("image-opts-compare", "compare --image-opts driver=raw,file.filename="
      "data.raw driver=qcow2,file.filename=data.qcow2",
      inputs=["data.raw", "data.qcow2"]),
    R("image-opts-convert", "convert --image-opts -O qcow2 driver=raw,"
      "file.filename=data.raw out.qcow2", inputs=["data.raw"],
      files={"out.qcow2": "bytes"}),
    R("image-opts-dd", "dd --image-opts if=driver=qcow2,file.filename="
      "data.qcow2 of=out.raw bs=1M count=4", inputs=["data.qcow2"],
      files={"out.raw": "guest:raw size"}),
    R("image-opts-bench", "bench -c 10 --image-opts driver=qcow2,"
      "file.filename=data.qcow2", inputs=["data.qcow2"], norm=TIME),
    R("target-image-opts", "convert -n --target-image-opts "
      "data.raw driver=qcow2,file.filename=empty8.qcow2",
      inputs=["data.raw", "empty8.qcow2"],
      files={"empty8.qcow2": "guest:qcow2"}),

    # ---- global options and arguments -------------------------------
    R("no-command", ""),
    R("unknown-command", "frobnicate"),
    R("version", "--version", out="ignore"),
    R("info-output-after-file", "info data.qcow2 --output=json",
      inputs=["data.qcow2"], out="json"),
    R("map-output-after-file", "map data.qcow2 --output json",
      inputs=["data.qcow2"], out="json"),
]


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def run(argv, cwd, stdin=None, shell=False, env=None):
    p = subprocess.run(argv, cwd=cwd, shell=shell, env=env,
                       stdin=subprocess.DEVNULL if stdin is None else None,
                       input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout, p.stderr


def json_diffs(a, b, path=""):
    """Keys (json:PATH) where two parsed JSON documents differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in list(a) + [k for k in b if k not in a]:
            p = f"{path}.{k}" if path else k
            if k not in a or k not in b:
                out.append(p)
            else:
                out += json_diffs(a[k], b[k], p)
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [path + "[len]"]
        out = []
        for i, (x, y) in enumerate(zip(a, b)):
            out += json_diffs(x, y, f"{path}[{i}]")
        return out
    return [] if a == b else [path]


def qemu_json(args, cwd):
    rc, out, _ = run(["qemu-img"] + args, cwd)
    if rc != 0:
        return None
    return json.loads(out)


def file_diffs(name, spec, qdir, vdir):
    """Keys where the file NAME made by each tool differs (judged by
    qemu-img), with a short explanation each."""
    diffs = []
    qp, vp = os.path.join(qdir, name), os.path.join(vdir, name)
    qe, ve = os.path.exists(qp), os.path.exists(vp)
    if qe != ve:
        return [(f"file:{name}:exists",
                 f"qemu-img {'made' if qe else 'left no'} {name}, vimg "
                 f"{'made' if ve else 'left no'}")]
    if not qe:
        return []
    for check in spec.split():
        mode, _, fmt = check.partition(":")
        key = f"file:{name}:{mode}"
        if mode == "exists":
            continue
        if mode == "bytes":
            if sha256(qp) != sha256(vp):
                diffs.append((key, "files differ byte for byte"))
        elif mode == "size":
            if os.path.getsize(qp) != os.path.getsize(vp):
                diffs.append((key, f"sizes {os.path.getsize(qp)} and "
                              f"{os.path.getsize(vp)}"))
        elif mode == "guest":
            rc, out, err = run(["qemu-img", "compare", "-U", "-f", fmt,
                                "-F", fmt, qp, vp], qdir)
            if rc != 0:
                diffs.append((key, (out + err).decode(errors="replace")
                              .strip()))
        elif mode in ("info", "map"):
            a = qemu_json([mode, "-U", "--output=json", "-f", fmt, name],
                          qdir)
            b = qemu_json([mode, "-U", "--output=json", "-f", fmt, name],
                          vdir)
            for p in json_diffs(a, b):
                diffs.append((f"{key}:{p}", f"qemu-img {mode} differs at "
                              f"{p or 'top'}"))
        elif mode == "check":
            a = run(["qemu-img", "check", "-U", "-f", fmt, name], qdir)[0]
            b = run(["qemu-img", "check", "-U", "-f", fmt, name], vdir)[0]
            if a != b:
                diffs.append((key, f"qemu-img check exits {a} on "
                              f"qemu-img's file, {b} on vimg's"))
        else:
            raise ValueError(f"unknown file check {mode}")
    return diffs


def normalise(text, row, tool):
    s = text.decode(errors="replace")
    for pat, rep in row.norm:
        s = re.sub(pat, rep, s)
    return s


def compare_row(row, work, vimg, fixtures):
    results = {}
    for tool, exe in (("q", "qemu-img"), ("v", vimg)):
        d = os.path.join(work, row.id, tool)
        os.makedirs(d)
        for name in row.inputs:
            src = os.path.join(fixtures, name)
            subprocess.run(["cp", "--sparse=always", src, d], check=True)
        if row.shell:
            env = dict(os.environ, TOOL=exe)
            results[tool] = run(row.args, d, row.stdin, True, env)
        else:
            results[tool] = run([exe] + shlex.split(row.args), d, row.stdin)
    (qrc, qout, qerr), (vrc, vout, verr) = results["q"], results["v"]
    diffs = []
    if qrc != vrc:
        diffs.append(("rc", f"exit codes {qrc} (qemu-img) and {vrc} (vimg)"))
    qs, vs = normalise(qout, row, "q"), normalise(vout, row, "v")
    if row.out == "json":
        try:
            a, b = json.loads(qs), json.loads(vs)
        except ValueError as e:
            diffs.append(("stdout", f"not JSON: {e}"))
        else:
            for p in json_diffs(a, b):
                diffs.append((f"json:{p}", "JSON differs"))
    elif row.out == "exact" and qs != vs:
        diffs.append(("stdout", "standard output differs:\n" +
                      show_diff(qs, vs)))
    qe, ve = normalise(qerr, row, "q"), normalise(verr, row, "v")
    if row.err == "presence" and bool(qe) != bool(ve):
        diffs.append(("stderr", f"qemu-img {'wrote' if qe else 'wrote no'} "
                      f"error, vimg {'wrote' if ve else 'wrote none'}:\n"
                      f"  qemu-img: {qe.strip()[:300]}\n"
                      f"  vimg:     {ve.strip()[:300]}"))
    if row.err == "exact" and \
            qe.replace("qemu-img: ", "TOOL: ") != \
            ve.replace("vimg: ", "TOOL: "):
        diffs.append(("stderr", "standard error differs:\n" +
                      show_diff(qe, ve)))
    qdir, vdir = (os.path.join(work, row.id, t) for t in "qv")
    for name, spec in row.files.items():
        diffs += file_diffs(name, spec, qdir, vdir)
    return diffs


def show_diff(a, b):
    import difflib
    lines = list(difflib.unified_diff(a.splitlines(), b.splitlines(),
                                      "qemu-img", "vimg", lineterm="", n=1))
    return "\n".join("    " + x for x in lines[:40])


def load_allowlist(path):
    entries = []
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.rstrip("\n")
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = line.split(None, 2)
            if len(parts) < 3:
                sys.exit(f"{path}:{n}: want 'ROW KEY REASON'")
            entries.append({"row": parts[0], "key": parts[1],
                            "reason": parts[2], "line": n, "used": False})
    return entries


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    vimg = os.path.abspath(sys.argv[1])
    patterns = sys.argv[2:]
    allow = load_allowlist(os.path.join(HERE, "compat-allowlist.txt"))
    ids = [r.id for r in ROWS]
    dup = {i for i in ids if ids.count(i) > 1}
    if dup:
        sys.exit(f"duplicate row ids: {sorted(dup)}")
    rows = [r for r in ROWS
            if not patterns or any(fnmatch.fnmatch(r.id, p)
                                   for p in patterns)]
    work = tempfile.mkdtemp(prefix="vimg-compat.")
    failed = allowed = 0
    try:
        fixtures = os.path.join(work, "fixtures")
        os.makedirs(fixtures)
        env = dict(os.environ, HERE=HERE)
        for cmd in FIXTURES:
            subprocess.run(cmd, shell=True, cwd=fixtures, env=env,
                           check=True)
        # A target that must exist for -n: 8 MiB empty qcow2.
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2",
                        "empty8.qcow2", "8M"], cwd=fixtures, check=True)
        # Rows are independent (each has its own folders): run two at a
        # time, report in table order.
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            results = list(pool.map(
                lambda r: compare_row(r, work, vimg, fixtures), rows))
        for row, diffs in zip(rows, results):
            for key, why in diffs:
                hit = [e for e in allow
                       if fnmatch.fnmatch(row.id, e["row"])
                       and fnmatch.fnmatch(key, e["key"])]
                for e in hit:
                    e["used"] = True
                if hit:
                    allowed += 1
                    continue
                failed += 1
                print(f"DIFF {row.id} [{key}]: {row.args}\n  {why}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    stale = [e for e in allow if not e["used"] and
             (not patterns or any(fnmatch.fnmatch(r.id, e["row"])
                                  for r in rows))]
    for e in stale:
        print(f"STALE compat-allowlist.txt:{e['line']}: {e['row']} "
              f"{e['key']}: no such difference any more")
    print(f"{len(rows)} rows: {failed} unexpected differences, "
          f"{allowed} allowed, {len(stale)} stale allow-list entries")
    return 1 if failed or stale else 0


if __name__ == "__main__":
    sys.exit(main())
