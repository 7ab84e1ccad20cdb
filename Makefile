# SPDX-License-Identifier: GPL-3.0-or-later
# proxreap: a plain Makefile.
#
#   make                      build proxreapd and proxreap
#   make check                package, lint, unit tests (also under valgrind),
#                             fuzz corpus replay, system tests (pytest)
#   make check-asan           unit and system tests under ASan+UBSan, in build-asan/
#   make check-valgrind       unit tests under valgrind memcheck
#   make lint                 cppcheck and clang-tidy (part of make check)
#   make check-fuzz           replay the fuzz corpora (fuzz/); make fuzz fuzzes
#   make DEVELOPER=1 ...      warnings are errors
#   make SANITIZE=address,undefined BUILD=build-asan ...
#   make install DESTDIR=... PREFIX=...
#   make uninstall DESTDIR=... PREFIX=...  (keeps the configuration and the journal)
#   make deb                  Debian package for this host's release (Debian 12:
#                             0.2.0-1~deb12u1) in build-deb/, checked by lintian
#   make deb-trixie           Debian 13 package (0.2.0-1~deb13u1) in build-deb/trixie/,
#                             built and lintian-checked in a Debian 13 root (mmdebstrap)
#   make check-trixie         deb-trixie, plus in that root the DEVELOPER build with
#                             GCC 14 and the unit tests; then the package installed
#                             into a clean Debian 13 root and tried there
#   make bench                the benchmark (bench/bench.py): results in build-bench/

VERSION      = 0.2.0

PREFIX      ?= /usr
SBINDIR     ?= $(PREFIX)/sbin
SYSCONFDIR  ?= /etc
DATADIR     ?= $(PREFIX)/share
MANDIR      ?= $(DATADIR)/man
DOCDIR      ?= $(DATADIR)/doc/proxreap
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
# Where systemd looks, whatever PREFIX is, as systemd.pc says: /lib on
# Debian 12 (dh_installsystemd of debhelper 13.11 only looks there),
# /usr/lib on Debian 13 (its lintian refuses units in /lib).
UNITDIR     ?= $(shell $(PKG_CONFIG) --variable=systemdsystemunitdir systemd 2>/dev/null || echo /lib/systemd/system)
SYSUSERSDIR ?= /usr/lib/sysusers.d
TMPFILESDIR ?= /usr/lib/tmpfiles.d
DESTDIR     ?=

CC          ?= cc
PKG_CONFIG  ?= pkg-config
PYTHON      ?= /usr/bin/python3
BUILD       ?= build

PKGS         = libcurl jansson libconfig libsystemd yajl
PKG_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(PKGS))
PKG_LIBS    := $(shell $(PKG_CONFIG) --libs $(PKGS)) -lm -pthread
CMOCKA_LIBS := $(shell $(PKG_CONFIG) --libs cmocka 2>/dev/null || echo -lcmocka)

CFLAGS      ?= -O2 -g
WARNINGS     = -std=gnu11 -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes \
               -Wmissing-prototypes -Wwrite-strings -Wvla
ifeq ($(DEVELOPER),1)
WARNINGS    += -Werror
endif
# Not added to CFLAGS: a CFLAGS given on the command line (check-asan
# passes one) would silently drop them.
BUILD_CFLAGS =
ifneq ($(SANITIZE),)
BUILD_CFLAGS += -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
LDFLAGS     += -fsanitize=$(SANITIZE)
endif
# Test builds compile in the crash points (util.h crash_point()).
ifeq ($(TEST_HOOKS),1)
BUILD_CFLAGS += -DPROXREAP_TEST_HOOKS
endif
ALL_CFLAGS   = $(WARNINGS) $(CFLAGS) $(BUILD_CFLAGS) -Iinclude -DPROXREAP_VERSION='"$(VERSION)"' -D_GNU_SOURCE \
               -D_FORTIFY_SOURCE=2 -fstack-protector-strong -pthread $(PKG_CFLAGS) -MMD -MP

MODULES      = util log config http pve pve_decode window policy observe status pve_api statedir journal ops guestconf preflight cluster saga reaper notify vmidmap archives history
LIB_OBJS     = $(MODULES:%=$(BUILD)/src/%.o)
LIB          = $(BUILD)/libproxreap.a
BINS         = $(BUILD)/proxreapd $(BUILD)/proxreap

UNIT_TESTS   = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

all: $(BINS)

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CPPFLAGS) $(ALL_CFLAGS) -Itests/unit -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/proxreapd: $(BUILD)/src/proxreapd.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/proxreap: $(BUILD)/src/proxreap.o $(BUILD)/src/proxreap_ops.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS) -lm

BENCH_DIR    = build-bench
BENCH_FLOOR  = $(BENCH_DIR)/floor
BENCH_ARGS  ?=

# Tests run on a build of their own with the crash points compiled in;
# `make` and `make install` never have them.
TEST_BUILD  ?= build-test
ASAN_BUILD  ?= build-asan
SANDBOX     ?= 0
# The system tests mostly wait (for polls, tasks, timeouts), so they run in
# parallel (pytest-xdist) even on 2 cores.
TEST_JOBS   ?= 6
PYTEST       = $(PYTHON) -m pytest -q -p no:cacheprovider $(if $(filter-out 0 1,$(TEST_JOBS)),-n $(TEST_JOBS))
SYSTEM_TESTS ?= tests/system
SYSTEM_SKIP ?=

# The normal pass: the package (built and lintian-checked first: test_package
# installs it), the static analysers, the unit tests natively and under
# valgrind memcheck, the fuzz corpora replayed, then the system tests with
# the daemons under the unit's restrictions (tests/sandbox/proxreap-sandbox).
check:
	$(MAKE) deb
	$(MAKE) BUILD=$(TEST_BUILD) TEST_HOOKS=1 check-trixie
	$(MAKE) lint
	$(MAKE) BUILD=$(TEST_BUILD) TEST_HOOKS=1 check-unit check-valgrind
	$(MAKE) check-fuzz
	$(MAKE) BUILD=$(TEST_BUILD) TEST_HOOKS=1 SANDBOX=1 check-system

# The ASan+UBSan pass: unit and system tests. Its daemons run unsandboxed
# (LeakSanitizer needs ptrace, which the filter denies: docs/hardening.md).
# Left out: what does not depend on the build (the package, the docs) and
# what cannot run under ASan (valgrind).
check-asan:
	$(MAKE) BUILD=$(ASAN_BUILD) TEST_HOOKS=1 SANITIZE=address,undefined CFLAGS="-O1 -g" SANDBOX=0 \
		SYSTEM_SKIP="test_package.py test_docs.py test_valgrind.py test_bench.py" check-unit check-system

check-unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do \
		echo "== $$t"; \
		PROXREAP_TESTDATA=tests/data $$t; \
	done

check-system: $(BINS) $(BENCH_FLOOR)
	PROXREAP_BUILD=$(abspath $(BUILD)) PROXREAP_FLOOR=$(abspath $(BENCH_FLOOR)) \
		PROXREAP_SANDBOX=$(SANDBOX) $(PYTEST) \
		$(foreach f,$(SYSTEM_SKIP),--ignore=tests/system/$(f)) $(SYSTEM_TESTS)

# Unit tests under valgrind memcheck: any error or leak fails. (The daemon
# under memcheck is tests/system/test_valgrind.py.)
check-valgrind: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do \
		echo "== valgrind $$t"; \
		PROXREAP_TESTDATA=tests/data valgrind --quiet --error-exitcode=1 \
			--leak-check=full --show-leak-kinds=definite,indirect,possible \
			--errors-for-leak-kinds=definite,indirect,possible $$t > /dev/null; \
	done

# The benchmark (bench/bench.py, docs/performance.md): proxreapd against the
# Python reference and the floor (bench/floor.c), on fleets of 100 to
# 50,000 simulated guests. Results in build-bench/. Not part of make check,
# which runs its smoke test (tests/system/test_bench.py).
$(BENCH_FLOOR): bench/floor.c
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -O2 -g -o $@ $< $(shell $(PKG_CONFIG) --cflags --libs libcurl jansson yajl)

bench: $(BINS) $(BENCH_FLOOR)
	$(PYTHON) bench/bench.py --build $(abspath $(BUILD)) --floor $(abspath $(BENCH_FLOOR)) \
		--out $(abspath $(BENCH_DIR)) $(BENCH_ARGS)

# The files of a system installation; the Debian package is exactly these
# (debian/rules runs this target), plus what debhelper adds itself.
MAN8         = man/proxreapd.8 man/proxreap.8
MAN5         = man/proxreap.conf.5
DOCS         = README.md $(wildcard docs/*.md) $(wildcard docs/*.png)

install: $(BINS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/proxreap $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(SYSUSERSDIR) $(DESTDIR)$(TMPFILESDIR) $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(DOCDIR)
	install -m 0755 $(BUILD)/proxreapd $(BUILD)/proxreap $(DESTDIR)$(SBINDIR)/
	@# An admin's edited configuration is never overwritten. It holds no
	@# secret (the token is a file of its own), and the daemon, running as
	@# user proxreap, must be able to read it.
	test -e $(DESTDIR)$(SYSCONFDIR)/proxreap/proxreap.conf || \
		install -m 0644 conf/proxreap.conf $(DESTDIR)$(SYSCONFDIR)/proxreap/proxreap.conf
	@# ExecStart= names the daemon where this install puts it.
	sed 's|/usr/sbin/proxreapd|$(SBINDIR)/proxreapd|' systemd/proxreapd.service > $(DESTDIR)$(UNITDIR)/proxreapd.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/proxreapd.service
	install -m 0644 systemd/proxreap.sysusers $(DESTDIR)$(SYSUSERSDIR)/proxreap.conf
	install -m 0644 systemd/proxreap.tmpfiles $(DESTDIR)$(TMPFILESDIR)/proxreap.conf
	install -m 0644 $(MAN8) $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 $(MAN5) $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 completion/proxreap $(DESTDIR)$(BASHCOMPDIR)/proxreap
	@# bash-completion loads completions/NAME for command NAME.
	ln -sf proxreap $(DESTDIR)$(BASHCOMPDIR)/proxreapd
	install -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	@# Outside a package the user and /var/lib/proxreap come from
	@# `systemd-sysusers proxreap.conf` and `systemd-tmpfiles --create
	@# proxreap.conf`; install changes no system state itself.

# Never removes the configuration (it may be edited) nor /var/lib/proxreap:
# the journal there is the only record of how to restore reaped guests.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/proxreapd $(DESTDIR)$(SBINDIR)/proxreap \
		$(DESTDIR)$(UNITDIR)/proxreapd.service \
		$(DESTDIR)$(SYSUSERSDIR)/proxreap.conf $(DESTDIR)$(TMPFILESDIR)/proxreap.conf \
		$(addprefix $(DESTDIR)$(MANDIR)/man8/,$(notdir $(MAN8))) \
		$(addprefix $(DESTDIR)$(MANDIR)/man5/,$(notdir $(MAN5))) \
		$(DESTDIR)$(BASHCOMPDIR)/proxreap $(DESTDIR)$(BASHCOMPDIR)/proxreapd \
		$(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true

# The Debian package, built from a copy of the source tree: dpkg-buildpackage
# writes its results next to the tree it builds, so the copy is
# $(DEB_DIR)/proxreap-$(VERSION) and the .deb lands in $(DEB_DIR). The copy is
# the working tree as git sees it (tracked and new files, not ignored ones),
# or, outside a git checkout, the tree without build outputs. The build runs
# in a clean environment: the variables of this make (DEVELOPER, BUILD,
# TEST_HOOKS, SANITIZE, CFLAGS from check-asan...) must not reach the
# package build, which uses dpkg-buildflags. packaging/deb-build gives the
# package the version of its release (0.2.0-1~deb12u1 on Debian 12) and
# runs lintian. Each target removes only its own results: build-deb/trixie/
# outlives `make deb` and the other way round.
DEB_DIR     ?= build-deb
DEB_SRC      = $(DEB_DIR)/proxreap-$(VERSION)
DEB_ENV      = PATH="$$PATH" HOME="$$HOME" $${DEB_BUILD_OPTIONS:+"DEB_BUILD_OPTIONS=$$DEB_BUILD_OPTIONS"}
define copy_tree
	mkdir -p $(1)
	test "$$(dpkg-parsechangelog -l debian/changelog -S Version | sed 's/-[^-]*$$//')" = "$(VERSION)" || \
		{ echo "debian/changelog is not at version $(VERSION)-N (Makefile VERSION)" >&2; exit 1; }
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z --cached --others --exclude-standard | \
			tar --null --verbatim-files-from --ignore-failed-read -T - -cf -; \
	else \
		tar --exclude=./.git --exclude='./build*' --exclude=__pycache__ -cf - .; \
	fi | tar -xf - -C $(1)
endef
deb:
	rm -rf $(DEB_SRC) $(DEB_DIR)/proxreap_* $(DEB_DIR)/proxreap-dbgsym_*
	$(call copy_tree,$(DEB_SRC))
	cd $(DEB_SRC) && env -i $(DEB_ENV) packaging/deb-build

# The Debian 13 package (Proxmox VE 9), built on any Debian machine as root:
# in a Debian 13 root made by mmdebstrap from the Debian mirror this host's
# apt uses (packaging/debian-root), with the build dependencies of
# debian/control, lintian, and systemd for its systemd-analyze. The root's
# tarball is cached in $(ROOTS_DIR) (reused while its package list is the
# same); the unpacked root is removed after each build. Results in
# $(TRIXIE_DIR). TRIXIE_UNIT_TESTS=1 also builds the tree with this make's
# DEVELOPER (GCC 14, -Werror) and runs the unit tests in that root, against
# Debian 13's libraries (libconfig 1.7).
ROOTS_DIR   ?= build-roots
TRIXIE_DIR   = $(DEB_DIR)/trixie
TRIXIE_ROOT_PKGS = build-essential lintian systemd
TRIXIE_UNIT_TESTS ?= 0
deb-trixie:
	rm -rf $(TRIXIE_DIR)
	$(call copy_tree,$(TRIXIE_DIR)/proxreap-$(VERSION))
	tarball=$$(packaging/debian-root tarball trixie apt $(ROOTS_DIR) --build-deps debian/control \
			$(TRIXIE_ROOT_PKGS)) && \
		packaging/debian-root run "$$tarball" $(TRIXIE_DIR)/root packaging/release-build \
			$(TRIXIE_DIR) proxreap-$(VERSION) $(if $(filter 1,$(TRIXIE_UNIT_TESTS)),"$(DEVELOPER)") || \
		{ rm -rf $(TRIXIE_DIR)/root; exit 1; }
	rm -rf $(TRIXIE_DIR)/root
	dpkg-deb -f $(TRIXIE_DIR)/proxreap_$(VERSION)-*_$$(dpkg --print-architecture).deb Version Depends

# What users of Proxmox VE 9 install, tried: the Debian 13 package built,
# its DEVELOPER build and unit tests in the build root, then
# tests/system/test_package.py for release trixie (the package installed with
# apt into a clean Debian 13 root, the README demo run with its binaries,
# the unit checked by Debian 13's systemd-analyze). The host's build is for
# test_package's comparison with `make install`.
check-trixie: $(BINS)
	$(MAKE) deb-trixie TRIXIE_UNIT_TESTS=1
	PROXREAP_RELEASE=trixie PROXREAP_BUILD=$(abspath $(BUILD)) PROXREAP_ROOTS=$(abspath $(ROOTS_DIR)) \
		$(PYTHON) -m pytest -q -p no:cacheprovider tests/system/test_package.py

clean:
	rm -rf build build-test build-asan build-deb build-fuzz build-bench build-roots

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c tests/unit/*.h

# clang-tidy analyses one translation unit per process: in one process
# its analyser carries state from one file into the next (clang-tidy 14
# then reports va_lists "uninitialized" in files that are clean alone).
LINT_JOBS   ?= 2
lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
		--inline-suppr --suppress=missingIncludeSystem --library=posix \
		--include=tests/lint/cppcheck.h -Iinclude src
	printf '%s\n' src/*.c | xargs -P $(LINT_JOBS) -I{} clang-tidy --quiet {} -- \
		$(WARNINGS) -Iinclude -DPROXREAP_VERSION='"$(VERSION)"' -D_GNU_SOURCE $(PKG_CFLAGS)

.PHONY: all check check-unit check-system check-asan check-valgrind install uninstall deb deb-trixie check-trixie \
	clean format lint bench
.SECONDARY:

include fuzz/fuzz.mk

-include $(LIB_OBJS:.o=.d) $(BUILD)/src/proxreapd.d $(BUILD)/src/proxreap.d $(BUILD)/src/proxreap_ops.d \
	$(UNIT_TESTS:%=%.d)
