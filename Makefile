# portowners: `make` builds kmod/portowners.ko; `./check` is the whole test run.

# KERNEL=6.1|6.1-rt|6.12|7.2|6.1-debug picks the kernel the VM boots
# (vm/kernel-version; default 6.1); the module is then built for it.
# KERNEL given on make's command line (make module KERNEL=6.12) is not in
# $(shell)'s environment (make 4.3): hand it over.
KERNEL_VERSION := $(if $(KERNEL),KERNEL=$(KERNEL) )vm/kernel-version
VM_KVER := $(shell $(KERNEL_VERSION) 2>/dev/null)
VM_KDIR := $(shell $(KERNEL_VERSION) --kdir 2>/dev/null)
# 7.2 builds in a sid root (gcc-16, glibc 2.38+): scripts/build-in-sid.
VM_CHROOT := $(shell $(KERNEL_VERSION) --chroot 2>/dev/null)
BUILD_WRAP := $(if $(VM_CHROOT),scripts/build-in-sid -s $(KERNEL),)
KVER ?= $(shell uname -r)
# Without KERNEL: the running kernel's build tree when it has one, else the
# headers of the kernel the VM boots (a container's own kernel often has none).
# With KERNEL: that kernel's headers.
ifeq ($(origin KERNEL),undefined)
KDIR ?= $(if $(wildcard /lib/modules/$(KVER)/build/Makefile),/lib/modules/$(KVER)/build,$(VM_KDIR))
else
KDIR ?= $(VM_KDIR)
endif
VENV := .venv
# Where the module is built: the checkout, or (vm/run-kernels, several
# kernels at once) a copy of Kbuild and kmod/ under .build/KERNEL.
MODDIR ?= $(CURDIR)
# Every kernel ./check runs the suite on (KERNELS= to choose fewer).
KERNELS ?= 6.1 6.1-rt 6.12 7.2

.PHONY: all module module-werror kdir-check clean lint checkpatch test-host test-vm test-kernels test-console check check-debug bench demo install uninstall test-boot test-fresh

all: module

module: kdir-check
	$(BUILD_WRAP) $(MAKE) -C $(KDIR) M=$(MODDIR) W=1 modules

# What the tests build: any W=1 warning fails it.
module-werror: kdir-check
	$(BUILD_WRAP) $(MAKE) -C $(KDIR) M=$(MODDIR) W=1 KCFLAGS=-Werror modules

clean: kdir-check
	$(BUILD_WRAP) $(MAKE) -C $(KDIR) M=$(MODDIR) clean

kdir-check:
	@test -n "$(KDIR)" || { $(KERNEL_VERSION); exit 1; }

# The kernel's own style checker, from Debian's linux-source (the reference).
CHECKPATCH_DIR := .cache/linux-source
CHECKPATCH := $(CHECKPATCH_DIR)/scripts/checkpatch.pl
$(CHECKPATCH):
	mkdir -p $(CHECKPATCH_DIR)
	src=$$(ls /usr/src/linux-source-*.tar.xz | sort -V | tail -n 1) && \
	tar -xJf "$$src" -C $(CHECKPATCH_DIR) --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
	touch $@

# kmod/compat.h is the one place for kernel version tests (an out-of-tree
# module builds for many kernels), so only there is LINUX_VERSION_CODE fine.
checkpatch: $(CHECKPATCH)
	$(CHECKPATCH) --strict --no-tree --quiet --terse \
		-f $(filter-out %.mod.c,$(wildcard kmod/*.c)) \
		$(filter-out kmod/compat.h,$(wildcard kmod/*.h)) kmod/uapi/*.h
	$(CHECKPATCH) --strict --no-tree --quiet --terse --ignore LINUX_VERSION_CODE \
		-f kmod/compat.h

lint: checkpatch
	$(VENV)/bin/ruff check portctl tests
	$(VENV)/bin/ruff format --check portctl tests
	$(VENV)/bin/mypy

test-host:
	$(VENV)/bin/python -m pytest tests/host -q

# The VM boots the kernel the module was built for (KERNEL=...).
test-vm: module
	vm/run

# The suite on every kernel in KERNELS, one boot each, with a per-kernel
# report (vm/run-kernels). scripts/setup --kernels installs them.
test-kernels:
	KERNELS="$(KERNELS)" vm/run-kernels

# vm/console-check proven both ways in a real kernel (one short boot).
test-console:
	vm/console-selftest

# The README's newcomer commands on a fresh Debian 12 tree (issue 8).
test-fresh:
	vm/fresh-machine

# ./check runs the suite on every kernel in KERNELS (README has the times).
# The real-boot and fresh-machine tests run side by side: one VM and one
# chroot, a CPU each on CI's 2-core machines.
check: module-werror lint test-host test-console test-kernels
	$(MAKE) module
	$(MAKE) -j2 test-boot test-fresh

# Issue 11: the kernel suite on a debug build of Debian's 6.1 source (KASAN,
# lockdep, kmemleak, ...; docs/debug-kernel.md). The kernel is built once
# into the cache (vm/debug-kernel, 20-60 min); scripts/setup --debug first.
check-debug:
	vm/debug-kernel >/dev/null
	KERNEL=6.1-debug $(MAKE) module-werror
	KERNEL=6.1-debug vm/run

# Issue 5: what the module costs on bind(), in the VM (bench/).
bench: module
	bench/run

# Issue 4: install, boot, demo (packaging/, demo/).
demo:
	demo/run

install:
	packaging/install

uninstall:
	packaging/uninstall

test-boot: module
	vm/realboot
