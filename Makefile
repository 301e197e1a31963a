# portowners: `make` builds kmod/portowners.ko; `./check` is the whole test run.

VM_KVER := $(shell vm/kernel-version 2>/dev/null)
KVER ?= $(shell uname -r)
# The running kernel's build tree when it has one, else the headers of the
# kernel the VM boots (a container's own kernel often has none).
KDIR ?= $(if $(wildcard /lib/modules/$(KVER)/build/Makefile),/lib/modules/$(KVER)/build,/usr/src/linux-headers-$(VM_KVER))
VENV := .venv

.PHONY: all module module-werror clean lint checkpatch test-host test-vm test-console check bench demo install uninstall test-boot test-fresh

all: module

module:
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 modules

# What the tests build: any W=1 warning fails it.
module-werror:
	$(MAKE) -C $(KDIR) M=$(CURDIR) W=1 KCFLAGS=-Werror modules

clean:
	$(MAKE) -C $(KDIR) M=$(CURDIR) clean

# The kernel's own style checker, from Debian's linux-source (the reference).
CHECKPATCH_DIR := .cache/linux-source
CHECKPATCH := $(CHECKPATCH_DIR)/scripts/checkpatch.pl
$(CHECKPATCH):
	mkdir -p $(CHECKPATCH_DIR)
	src=$$(ls /usr/src/linux-source-*.tar.xz | sort -V | tail -n 1) && \
	tar -xJf "$$src" -C $(CHECKPATCH_DIR) --strip-components=1 --wildcards \
		'*/scripts/checkpatch.pl' '*/scripts/spelling.txt' '*/scripts/const_structs.checkpatch'
	touch $@

checkpatch: $(CHECKPATCH)
	$(CHECKPATCH) --strict --no-tree --quiet --terse \
		-f $(filter-out %.mod.c,$(wildcard kmod/*.c)) kmod/*.h kmod/uapi/*.h

lint: checkpatch
	$(VENV)/bin/ruff check portctl tests
	$(VENV)/bin/mypy

test-host:
	$(VENV)/bin/python -m pytest tests/host -q

# The VM boots the kernel the module was built for.
test-vm: module
	vm/run

# vm/console-check proven both ways in a real kernel (one short boot).
test-console:
	vm/console-selftest

# The README's newcomer commands on a fresh Debian 12 tree (issue 8).
test-fresh:
	vm/fresh-machine

check: module-werror lint test-host test-console test-vm test-boot test-fresh

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
