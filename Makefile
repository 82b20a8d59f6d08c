# The README's two commands: `make demo` (the main job) and `make test` (the
# whole suite). Both install missing Debian packages (run as root or with
# sudo), build what is missing, and reuse cached builds.
#
# Other targets: build, qemu, guest, bench, test-<suite> (unit, functional,
# qtest, e2e, packaging, gpu), fuzz (FUZZ_SECONDS per target), clean;
# install (host: mediator, tools, unit, config, docs, and QEMU with
# vgpu-stub as $(PREFIX)/lib/vgpu/qemu-system-x86_64; PREFIX, DESTDIR),
# install-guest (the guest-side pieces), debs (Debian packages in
# $(BUILD)/debs: vgpu-mediator, vgpu-qemu, vgpu-guest).

BUILD      ?= build
MESON_OPTS ?=
ifeq ($(WERROR),1)
MESON_OPTS += -Dwerror=true
endif
# Where the QEMU build (with vgpu-stub) and the guest image land; the
# expensive parts are cached outside the clone (see scripts/build-qemu.sh).
export VGPU_QEMU      ?= $(CURDIR)/$(BUILD)/qemu/qemu-system-x86_64
export VGPU_GUEST_DIR ?= $(CURDIR)/$(BUILD)/guest
export VGPU_BUILD_DIR  = $(CURDIR)/$(BUILD)

# make install: where things go (scripts/install.sh has the full list).
PREFIX     ?= /usr/local
DESTDIR    ?=
SYSCONFDIR ?= /etc
INSTALL_VARS = DESTDIR="$(DESTDIR)" PREFIX="$(PREFIX)" SYSCONFDIR="$(SYSCONFDIR)" \
    $(foreach v,BINDIR LIBDIR DATADIR DOCDIR MANDIR INCLUDEDIR UNITDIR UDEVDIR MODLOADDIR,\
      $(if $($(v)),$(v)="$($(v))"))

.PHONY: all deps build qemu guest test demo bench fuzz clean install install-guest debs \
        test-unit test-functional test-qtest test-e2e test-packaging test-gpu

all: build

deps:
	@scripts/deps.sh build

$(BUILD)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

build: $(BUILD)/build.ninja
	@scripts/deps.sh build
	ninja -C $(BUILD)

qemu: build
	@scripts/build-qemu.sh $(BUILD)/qemu

guest: build
	@guest/build-image.sh $(BUILD)/guest

# promtool (package prometheus) checks /metrics; without it that check is skipped.
TESTTOOLS = scripts/deps.sh testtools || echo ">> promtool not installed: the /metrics format check is skipped"

test: build qemu guest
	@$(TESTTOOLS)
	@scripts/run-tests.sh $(BUILD)

test-unit test-functional test-qtest test-e2e test-packaging test-gpu: build
	@$(TESTTOOLS)
	@scripts/run-tests.sh $(BUILD) $(patsubst test-%,%,$@)
# The e2e suite boots VMs: it needs QEMU with vgpu-stub and the guest image;
# the packaging suite packs that QEMU.
test-e2e: qemu guest
test-packaging: qemu

install: build qemu
	@$(INSTALL_VARS) scripts/install.sh $(BUILD) host qemu

install-guest: build
	@$(INSTALL_VARS) scripts/install.sh $(BUILD) guest

debs: build qemu
	@scripts/build-debs.sh $(BUILD) $(BUILD)/debs

demo: build qemu guest
	@scripts/demo.sh

bench: build
	@bench/run.sh $(BUILD)

# libFuzzer builds of tests/fuzz (clang) in their own dir, each run for
# FUZZ_SECONDS; `make test` only replays them (suite unit, fuzz-*).
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
fuzz: deps
	@FUZZ_SECONDS=$(FUZZ_SECONDS) tests/fuzz/run-fuzz.sh $(FUZZ_BUILD)

clean:
	rm -rf $(BUILD)
