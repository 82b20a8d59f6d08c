# The README's two commands: `make demo` (the main job) and `make test` (the
# whole suite). Both install missing Debian packages (run as root or with
# sudo), build what is missing, and reuse cached builds.
#
# Other targets: build, qemu, guest, bench, test-<suite> (unit, functional,
# qtest, e2e, packaging, gpu), fuzz (FUZZ_SECONDS per target), clean;
# qemu-10.0 and test-qtest-10.0 (QEMU 10.0 with the device, and its qtests);
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
# QEMU 7.2 (Debian 12's) in $(BUILD)/qemu is the default: demo, e2e, install
# and packages use it. QEMU 10.0 (Debian 13's) goes to $(BUILD)/qemu-10.0; its
# qtests are suite qtest-10.0. VGPU_QEMU_VERSION=10.0 makes `make qemu` and
# `make test-qtest` take 10.0.
VGPU_QEMU_VERSION ?= 7.2
ifneq ($(filter-out 7.2 10.0,$(VGPU_QEMU_VERSION)),)
$(error VGPU_QEMU_VERSION=$(VGPU_QEMU_VERSION): 7.2 or 10.0)
endif
QTEST_SUITE = $(if $(filter 7.2,$(VGPU_QEMU_VERSION)),qtest,qtest-$(VGPU_QEMU_VERSION))
# `make test` builds QEMU 10.0 too (once, cached: 8-14 minutes on two cores)
# and runs suite qtest-10.0; QEMU10=0 leaves both out.
QEMU10 ?= 1
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

.PHONY: all deps build qemu qemu-7.2 qemu-10.0 guest test demo bench fuzz clean install \
        install-guest debs test-unit test-functional test-qtest test-qtest-10.0 test-e2e \
        test-packaging test-gpu

all: build

deps:
	@scripts/deps.sh build

$(BUILD)/build.ninja:
	@scripts/deps.sh build
	meson setup $(BUILD) $(MESON_OPTS)

build: $(BUILD)/build.ninja
	@scripts/deps.sh build
	ninja -C $(BUILD)

qemu: qemu-$(VGPU_QEMU_VERSION)

qemu-7.2: build
	@VGPU_QEMU_VERSION=7.2 scripts/build-qemu.sh $(BUILD)/qemu

qemu-10.0: build
	@VGPU_QEMU_VERSION=10.0 scripts/build-qemu.sh $(BUILD)/qemu-10.0

guest: build
	@guest/build-image.sh $(BUILD)/guest

# promtool (package prometheus) checks /metrics; without it that check is skipped.
TESTTOOLS = scripts/deps.sh testtools || echo ">> promtool not installed: the /metrics format check is skipped"

test: build qemu-7.2 $(if $(filter 1,$(QEMU10)),qemu-10.0) guest
	@$(TESTTOOLS)
	@VGPU_TEST_QEMU10=$(QEMU10) scripts/run-tests.sh $(BUILD)

test-unit test-functional test-e2e test-packaging test-gpu test-qtest-10.0: build
	@$(TESTTOOLS)
	@scripts/run-tests.sh $(BUILD) $(patsubst test-%,%,$@)
test-qtest: build
	@$(TESTTOOLS)
	@scripts/run-tests.sh $(BUILD) $(QTEST_SUITE)
# The e2e suite boots VMs: it needs QEMU with vgpu-stub and the guest image;
# the packaging suite packs that QEMU. QEMU 10.0's qtests need it built.
test-e2e: qemu-7.2 guest
test-packaging: qemu-7.2
test-qtest-10.0: qemu-10.0
ifneq ($(VGPU_QEMU_VERSION),7.2)
test-qtest: qemu-$(VGPU_QEMU_VERSION)
endif

install: build qemu-7.2
	@$(INSTALL_VARS) scripts/install.sh $(BUILD) host qemu

install-guest: build
	@$(INSTALL_VARS) scripts/install.sh $(BUILD) guest

debs: build qemu-7.2
	@scripts/build-debs.sh $(BUILD) $(BUILD)/debs

demo: build qemu-7.2 guest
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
