# Thin wrapper over meson + ninja. `make demo` and `make check` are the two
# commands a newcomer needs; both install missing Debian packages first.

BUILD      ?= build
BUILD_ASAN ?= build-asan
BUILD_TSAN ?= build-tsan
# Concurrency tests, also run under ThreadSanitizer.
TSAN_TESTS := unit-qcow2-threads unit-compress fuzz-nbd-server
TSAN_TARGETS := tests/unit/qcow2/test-qcow2-threads tests/unit/test-compress \
	fuzz/fuzz-nbd-server
MESON_OPTS ?=

# Every Debian package the build, tests, demo and benchmarks use.
DEB_PACKAGES := gcc make meson ninja-build pkg-config python3 \
	zlib1g-dev libzstd-dev libssl-dev libdeflate-dev \
	qemu-utils qemu-system-x86 e2fsprogs \
	xorriso genisoimage isolinux syslinux-common grub-rescue-pc \
	ovmf grub-efi-amd64-bin grub-common mtools \
	libnbd-bin fdisk \
	libnbd-dev nbdkit libfuse3-dev fuse3 libgnutls28-dev openssl \
	libvhdi-utils python3-libvhdi cryptsetup-bin \
	libvmdk-utils python3-libvmdk libqcow-utils python3-libqcow \
	man-db strace \
	librbd-dev ceph-mon ceph-osd ceph-common qemu-block-extra \
	libbz2-dev bximage cloop-utils dmg2img

.PHONY: all deps build check demo bench fuzz clean install

# `make install`: the binary, libvimg (shared and static), its header and
# pkg-config file, the man page and the bash completion, under PREFIX;
# DESTDIR stages the whole tree elsewhere (packaging).
PREFIX  ?= /usr/local
DESTDIR ?=

all: build

# Install what is missing; apt-get update only when something is.
deps:
	@missing=""; for p in $(DEB_PACKAGES); do \
	  dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' \
	    || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "Installing:$$missing"; \
	  if [ "$$(id -u)" != 0 ]; then SUDO=sudo; else SUDO=; fi; \
	  $$SUDO apt-get update && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y --no-install-recommends $$missing; \
	fi

$(BUILD)/build.ninja:
	meson setup $(BUILD) $(MESON_OPTS)

$(BUILD_ASAN)/build.ninja:
	meson setup $(BUILD_ASAN) -Db_sanitize=address,undefined -Db_lundef=false \
	  -Dbuildtype=debug $(MESON_OPTS)

$(BUILD_TSAN)/build.ninja:
	meson setup $(BUILD_TSAN) -Db_sanitize=thread -Db_lundef=false \
	  -Dbuildtype=debug $(MESON_OPTS)

build: $(BUILD)/build.ninja
	ninja -C $(BUILD)

# Every test: unit, interop and fuzz-corpus replay on the normal build, then
# unit and fuzz replay again under ASan+UBSan, and the concurrency tests
# under TSan. Ends with one summary line.
check: deps build $(BUILD_ASAN)/build.ninja $(BUILD_TSAN)/build.ninja
	ninja -C $(BUILD_ASAN)
	ninja -C $(BUILD_TSAN) $(TSAN_TARGETS)
	@rc=0; \
	meson test -C $(BUILD) --print-errorlogs --num-processes 2 || rc=1; \
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	meson test -C $(BUILD_ASAN) --suite unit --suite fuzz --print-errorlogs \
	  --num-processes 2 || rc=1; \
	TSAN_OPTIONS=halt_on_error=1 meson test -C $(BUILD_TSAN) --no-rebuild \
	  --print-errorlogs $(TSAN_TESTS) || rc=1; \
	python3 scripts/test-summary.py $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) \
	  || rc=1; \
	exit $$rc

demo: deps build
	@sh scripts/demo.sh $(BUILD)/cli/vimg

bench: deps build
	@sh bench/run.sh $(BUILD)/cli/vimg
	@sh bench/convert.sh $(BUILD)/cli/vimg
	@sh bench/qcow2.sh $(BUILD)/cli/vimg
	@sh bench/vmdk.sh $(BUILD)/cli/vimg
	@sh bench/iso.sh $(BUILD)/cli/vimg
	@sh bench/iso-read.sh $(BUILD)/cli/vimg
	@sh bench/nbd.sh $(BUILD)/cli/vimg
	@sh bench/rbd.sh $(BUILD)/cli/vimg

# libFuzzer builds of the fuzz targets (needs clang).
fuzz:
	CC=clang meson setup build-fuzz -Dfuzzing=true -Db_lundef=false 2>/dev/null || true
	ninja -C build-fuzz

install: $(BUILD)/build.ninja
	meson configure $(BUILD) -Dprefix=$(abspath $(PREFIX))
	meson install -C $(BUILD) $(if $(DESTDIR),--destdir "$(abspath $(DESTDIR))")

clean:
	rm -rf $(BUILD) $(BUILD_ASAN) $(BUILD_TSAN) build-fuzz
