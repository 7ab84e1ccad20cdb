# SPDX-License-Identifier: GPL-3.0-or-later
# proxreap: a plain Makefile.
#
#   make                      build proxreapd and proxreap
#   make check                unit tests (cmocka) and system tests (pytest)
#   make check-asan           the same under ASan+UBSan, in build-asan/
#   make check-valgrind       unit tests under valgrind memcheck
#   make lint                 cppcheck and clang-tidy
#   make DEVELOPER=1 ...      warnings are errors
#   make SANITIZE=address,undefined BUILD=build-asan ...
#   make install DESTDIR=... PREFIX=...

VERSION      = 0.1.0

PREFIX      ?= /usr
SBINDIR     ?= $(PREFIX)/sbin
SYSCONFDIR  ?= /etc
UNITDIR     ?= /lib/systemd/system
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

MODULES      = util log config http pve pve_decode window policy observe status pve_api journal ops reaper notify
LIB_OBJS     = $(MODULES:%=$(BUILD)/src/%.o)
LIB          = $(BUILD)/libproxreap.a
BINS         = $(BUILD)/proxreapd $(BUILD)/proxreap

UNIT_TESTS   = $(patsubst tests/unit/%.c,$(BUILD)/tests/%,$(wildcard tests/unit/test_*.c))

all: $(BINS)

$(BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/tests/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -Itests/unit -c -o $@ $<

$(LIB): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/proxreapd: $(BUILD)/src/proxreapd.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/proxreap: $(BUILD)/src/proxreap.o $(BUILD)/src/proxreap_ops.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/test_%: $(BUILD)/tests/test_%.o $(LIB)
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS) $(CMOCKA_LIBS) -lm

# Tests run on a build of their own with the crash points compiled in;
# `make` and `make install` never have them.
TEST_BUILD  ?= build-test
check:
	$(MAKE) BUILD=$(TEST_BUILD) TEST_HOOKS=1 check-unit check-system

check-unit: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do \
		echo "== $$t"; \
		PROXREAP_TESTDATA=tests/data $$t; \
	done

check-system: $(BINS)
	PROXREAP_BUILD=$(abspath $(BUILD)) $(PYTHON) -m pytest -q -p no:cacheprovider tests/system

# Unit tests under valgrind memcheck: any error or leak fails.
check-valgrind: $(UNIT_TESTS)
	@set -e; for t in $(UNIT_TESTS); do \
		echo "== valgrind $$t"; \
		PROXREAP_TESTDATA=tests/data valgrind --quiet --error-exitcode=1 \
			--leak-check=full --show-leak-kinds=definite,indirect,possible \
			--errors-for-leak-kinds=definite,indirect,possible $$t > /dev/null; \
	done

check-asan:
	$(MAKE) TEST_BUILD=build-asan SANITIZE=address,undefined CFLAGS="-O1 -g" check

install: $(BINS)
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(SYSCONFDIR)/proxreap
	install -m 0755 $(BUILD)/proxreapd $(BUILD)/proxreap $(DESTDIR)$(SBINDIR)/
	@# An admin's edited configuration is never overwritten.
	test -e $(DESTDIR)$(SYSCONFDIR)/proxreap/proxreap.conf || \
		install -m 0640 conf/proxreap.conf $(DESTDIR)$(SYSCONFDIR)/proxreap/proxreap.conf

uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/proxreapd $(DESTDIR)$(SBINDIR)/proxreap

clean:
	rm -rf build build-test build-asan

format:
	clang-format -i src/*.c include/*.h tests/unit/*.c tests/unit/*.h

lint:
	cppcheck --quiet --error-exitcode=1 --enable=warning,portability --std=c11 \
		--inline-suppr --suppress=missingIncludeSystem --library=posix \
		--include=tests/lint/cppcheck.h -Iinclude src
	clang-tidy --quiet src/*.c -- $(WARNINGS) -Iinclude -DPROXREAP_VERSION='"$(VERSION)"' -D_GNU_SOURCE $(PKG_CFLAGS)

.PHONY: all check check-unit check-system check-asan check-valgrind install uninstall clean format lint
.SECONDARY:

-include $(LIB_OBJS:.o=.d) $(BUILD)/src/proxreapd.d $(BUILD)/src/proxreap.d
