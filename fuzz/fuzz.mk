# SPDX-License-Identifier: GPL-3.0-or-later
# libFuzzer targets (fuzz/README.md), built with clang in their own
# directory: the library is compiled again there with the fuzzer's coverage
# instrumentation and ASan+UBSan.
#
#   make fuzz-build                   build every fuzzer in build-fuzz/
#   make check-fuzz                   replay every corpus once (part of the tests)
#   make fuzz FUZZ_TIME=600           fuzz each target, merge new coverage into its corpus
#   make fuzz FUZZ_TARGETS=config     ... one target only
#   make fuzz-cmin                    shrink every committed corpus to a minimal one
#   make fuzz-coverage                line/branch coverage of each corpus (llvm-cov)

FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_TARGETS ?= resources task_status storage_content guest guestconf config journal
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
FUZZ_CFLAGS   = $(WARNINGS) -g -O1 $(FUZZ_SAN) -Iinclude -DPROXREAP_VERSION='"$(VERSION)"' \
                -D_GNU_SOURCE -pthread $(PKG_CFLAGS) -MMD -MP
FUZZ_LIB      = $(FUZZ_BUILD)/libproxreap.a
FUZZ_BINS     = $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
# Every input runs under a deadline and a memory cap: a hang or a blow-up
# is a finding like a crash.
FUZZ_RUN_OPTS = -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
FUZZ_MAX_LEN ?= 8192
# Only for the fuzzers' own runs (never exported to the rest of the Makefile).
FUZZ_ENV      = ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
                LSAN_OPTIONS=suppressions=$(CURDIR)/fuzz/lsan.supp:print_suppressions=0 \
                UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

$(FUZZ_BUILD)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_BUILD)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_LIB): $(MODULES:%=$(FUZZ_BUILD)/src/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/fuzz/fuzz_%.o $(FUZZ_LIB)
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $^ $(PKG_LIBS)

fuzz-build: $(FUZZ_BINS)

# Each corpus file runs once (-runs=0: load the corpus, fuzz nothing); a
# crash, a leak, a UBSan report or a timeout fails.
check-fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz_$$t: $$(ls fuzz/corpus/$$t | wc -l) inputs"; \
		$(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_RUN_OPTS) -runs=0 \
			-artifact_prefix=$(FUZZ_BUILD)/replay-$$t- fuzz/corpus/$$t 2>$(FUZZ_BUILD)/replay-$$t.log || \
			{ cat $(FUZZ_BUILD)/replay-$$t.log >&2; echo "fuzz_$$t: replay FAILED" >&2; exit 1; }; \
		grep -E '^#[0-9]+[[:space:]]+DONE' $(FUZZ_BUILD)/replay-$$t.log | tail -n 1; \
	done

# Fuzzes in a scratch copy of the corpus, then merges only the inputs that
# add coverage into the committed one. Niced: it shares the machine.
fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "== fuzz_$$t for $(FUZZ_TIME)s"; \
		mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/artifacts; \
		cp -n fuzz/corpus/$$t/* $(FUZZ_BUILD)/corpus/$$t/ 2>/dev/null || true; \
		$(FUZZ_ENV) nice -n 10 $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_RUN_OPTS) -max_total_time=$(FUZZ_TIME) \
			-print_final_stats=1 -max_len=$(FUZZ_MAX_LEN) -dict=fuzz/$$t.dict \
			-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$t- $(FUZZ_BUILD)/corpus/$$t; \
		$(FUZZ_ENV) nice -n 10 $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_RUN_OPTS) -merge=1 \
			fuzz/corpus/$$t $(FUZZ_BUILD)/corpus/$$t; \
	done

# Rebuilds each committed corpus as the minimal set with the same coverage.
# Named files (seeds, edge cases, regressions) always stay; of the inputs
# fuzzing added (named by their SHA-1), only those that add coverage.
fuzz-cmin: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		rm -rf $(FUZZ_BUILD)/cmin/$$t; mkdir -p $(FUZZ_BUILD)/cmin/$$t; \
		for f in $$(ls fuzz/corpus/$$t | grep -v -E '^[0-9a-f]{40}$$'); do \
			cp fuzz/corpus/$$t/$$f $(FUZZ_BUILD)/cmin/$$t/; \
		done; \
		$(FUZZ_ENV) $(FUZZ_BUILD)/fuzz_$$t $(FUZZ_RUN_OPTS) -merge=1 $(FUZZ_BUILD)/cmin/$$t fuzz/corpus/$$t; \
		rm -f fuzz/corpus/$$t/*; cp $(FUZZ_BUILD)/cmin/$$t/* fuzz/corpus/$$t/; \
		echo "== fuzz_$$t: $$(ls fuzz/corpus/$$t | wc -l) inputs"; \
	done

# Source coverage of each corpus (clang's profile instrumentation, in
# build-fuzz/cov/, without sanitizers): regions, lines and branches of every
# function the target reaches in the files it is about. Needs llvm-profdata
# and llvm-cov (Debian: llvm).
FUZZ_COV        = $(FUZZ_BUILD)/cov
LLVM_PROFDATA  ?= llvm-profdata
LLVM_COV       ?= llvm-cov
FUZZ_COV_FLAGS  = -fprofile-instr-generate -fcoverage-mapping
FUZZ_COV_SRC_resources       = src/pve_decode.c
FUZZ_COV_SRC_task_status     = src/pve_api.c
FUZZ_COV_SRC_storage_content = src/pve_api.c
FUZZ_COV_SRC_guest           = src/pve_api.c src/pve.c
FUZZ_COV_SRC_config          = src/config.c
FUZZ_COV_SRC_journal         = src/journal.c src/ops.c

$(FUZZ_COV)/src/%.o: src/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(FUZZ_CFLAGS)) \
		-fsanitize=fuzzer-no-link $(FUZZ_COV_FLAGS) -c -o $@ $<

$(FUZZ_COV)/fuzz/%.o: fuzz/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(filter-out -fsanitize=% -fno-sanitize-recover=%,$(FUZZ_CFLAGS)) \
		-fsanitize=fuzzer-no-link -c -o $@ $<

$(FUZZ_COV)/libproxreap.a: $(MODULES:%=$(FUZZ_COV)/src/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

$(FUZZ_COV)/fuzz_%: $(FUZZ_COV)/fuzz/fuzz_%.o $(FUZZ_COV)/libproxreap.a
	$(FUZZ_CC) -fsanitize=fuzzer $(FUZZ_COV_FLAGS) -o $@ $^ $(PKG_LIBS)

fuzz-coverage: $(FUZZ_TARGETS:%=$(FUZZ_COV)/fuzz_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
		rm -f $(FUZZ_COV)/$$t.profraw; \
		LLVM_PROFILE_FILE=$(FUZZ_COV)/$$t.profraw $(FUZZ_COV)/fuzz_$$t -runs=0 \
			fuzz/corpus/$$t 2>/dev/null; \
		$(LLVM_PROFDATA) merge -sparse -o $(FUZZ_COV)/$$t.profdata $(FUZZ_COV)/$$t.profraw; \
		echo "== fuzz_$$t"; \
		case $$t in \
		resources) src="$(FUZZ_COV_SRC_resources)";; \
		task_status) src="$(FUZZ_COV_SRC_task_status)";; \
		storage_content) src="$(FUZZ_COV_SRC_storage_content)";; \
		guest) src="$(FUZZ_COV_SRC_guest)";; \
		config) src="$(FUZZ_COV_SRC_config)";; \
		journal) src="$(FUZZ_COV_SRC_journal)";; \
		esac; \
		$(LLVM_COV) report -show-functions $(FUZZ_COV)/fuzz_$$t \
			-instr-profile=$(FUZZ_COV)/$$t.profdata $$src | \
			awk '/^File|^Name/ || (NF == 10 && $$1 != "TOTAL" && $$7 != "0.00%")'; \
	done

.PHONY: fuzz-build check-fuzz fuzz fuzz-cmin fuzz-coverage

-include $(MODULES:%=$(FUZZ_BUILD)/src/%.d) $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz/fuzz_%.d)
