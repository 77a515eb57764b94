# phi3c build. Plain make, out-of-tree build/, -MMD dependencies, per-file ISA flags.
# `make` builds; `make run` builds and generates text with the embedded demo model; `make test`
# runs the whole suite (release and ASan+UBSan builds, fuzz smoke runs, Python checks).

# The kernel folders' fragments below define rules too: keep `make` meaning `make all`.
.DEFAULT_GOAL := all

SHARED      ?= ../shared
BUILD       ?= build
CC          ?= cc
CLANG       ?= clang
PYTHON      ?= python3
VENV        ?= $(BUILD)/venv
FUZZ_SECONDS ?= 60

WARN := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wpointer-arith \
        -Wundef -Wwrite-strings -Wvla
INCLUDES := -Iinclude -Icommon -Iloaders -Iquant -Itokenizer -Ikernels -Ikernels/cpu \
            -Ikernels/clk -Ikernels/opencl -Ikernels/level_zero -Iengine -I$(BUILD)/gen -Itools/server
BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -fPIC -pthread -fno-fast-math $(WARN) $(INCLUDES)
OPT      ?= -O2 -g
CFLAGS   ?=
LDLIBS   := -ldl -lm -lpthread -lxxhash
# The CLI alone: libedit for chat's line editing and history, libmicrohttpd for `phi3c serve`
# (README: why the extra packages).
CLI_LDLIBS := -ledit -lmicrohttpd

ARCH := $(shell uname -m)

# Library sources: every .c of the module folders. ISA-specific kernels carry their ISA in the
# file name and get their flags below; nothing is built with -march=native.
LIB_DIRS := common loaders quant tokenizer kernels kernels/cpu kernels/clk kernels/opencl kernels/level_zero engine
LIB_SRC  := $(foreach d,$(LIB_DIRS),$(wildcard $(d)/*.c))
ifneq ($(ARCH),aarch64)
LIB_SRC  := $(filter-out %_neon.c,$(LIB_SRC))
endif
ifneq ($(ARCH),x86_64)
LIB_SRC  := $(filter-out %_avx2.c %_avx512.c %_amx.c,$(LIB_SRC))
endif
CLI_SRC  := $(wildcard tools/cli/*.c) $(wildcard tools/server/*.c)
TEST_SRC := $(wildcard tests/*.c)
EXAMPLE_SRC := $(wildcard tools/examples/*.c)

ISA_avx2   := -mavx2 -mfma -mf16c -mavxvnni
ISA_avx512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni
ISA_amx    := $(ISA_avx512) -mamx-tile -mamx-int8 -mgfni
ISA_neon   := -march=armv8.2-a+dotprod
isa_flags = $(if $(filter %_avx2.c,$1),$(ISA_avx2))$(if $(filter %_avx512.c,$1),$(ISA_avx512))$(if $(filter %_amx.c,$1),$(ISA_amx))$(if $(filter %_neon.c,$1),$(ISA_neon))

# Generated sources (embedded OpenCL/SPIR-V) may be added by kernel folders' make fragments.
# A generated source that depends on the machine (which tools are installed) also depends on a
# stamp of that, made by a FORCE rule with write_if_changed (OUT, COMMAND): the stamp's mtime
# moves only when COMMAND's output differs, so nothing is rebuilt while the machine stays the same.
GEN_SRC :=
.PHONY: FORCE
FORCE:
write_if_changed = $(2) >$(1).tmp && { cmp -s $(1).tmp $(1) && rm -f $(1).tmp || mv $(1).tmp $(1); }
-include kernels/opencl/build.mk
-include kernels/level_zero/build.mk

# Two flavours of every object: release in build/, ASan+UBSan in build/asan/.
REL  := $(BUILD)/rel
ASAN := $(BUILD)/asan
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer

objs = $(patsubst %.c,$(1)/%.o,$(2))

LIB_OBJ      := $(call objs,$(REL),$(LIB_SRC) $(GEN_SRC))
LIB_OBJ_ASAN := $(call objs,$(ASAN),$(LIB_SRC) $(GEN_SRC))

.PHONY: all lib install uninstall deps deps-test run test test-unit test-asan fuzz fuzz-smoke fuzz-long bench bench-lookup bench-tokenizer \
        llamacpp phi4-tokenizer format format-check check-layering clean venv fixtures info

all: $(BUILD)/phi3c $(BUILD)/libphi3c.a $(BUILD)/libphi3c.so $(BUILD)/phi3c.pc examples tools

Q ?= @
$(REL)/%.o: %.c
	@mkdir -p $(@D)
	@echo "CC $<"
	$(Q)$(CC) $(BASE_CFLAGS) $(OPT) $(CFLAGS) $(call isa_flags,$<) -MMD -MP -c $< -o $@

$(ASAN)/%.o: %.c
	@mkdir -p $(@D)
	@echo "CC [asan] $<"
	$(Q)$(CC) $(BASE_CFLAGS) -O1 -g $(SAN_FLAGS) -DP3_FAULT_INJECTION $(CFLAGS) $(call isa_flags,$<) -MMD -MP -c $< -o $@

$(BUILD)/libphi3c.a: $(LIB_OBJ)
	@mkdir -p $(@D)
	rm -f $@ && ar rcs $@ $^

# The shared library's SONAME carries the ABI version (bumped when phi3c.h breaks callers);
# build/libphi3c.so.0 points at it so programs linked in the tree run with LD_LIBRARY_PATH=build.
SOVERSION  := 0
LIBVERSION := 0.1.0
$(BUILD)/libphi3c.so: $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libphi3c.so.$(SOVERSION) -o $@ $^ $(LDLIBS)
	ln -sf libphi3c.so $(BUILD)/libphi3c.so.$(SOVERSION)

$(BUILD)/asan/libphi3c.a: $(LIB_OBJ_ASAN)
	rm -f $@ && ar rcs $@ $^

# The CLI includes `phi3c serve` (tools/server/, on libmicrohttpd); its chat page is embedded by
# .incbin, so page.o depends on the page.
$(BUILD)/phi3c: $(call objs,$(REL),$(CLI_SRC)) $(BUILD)/libphi3c.a
	$(CC) -pthread -o $@ $^ $(LDLIBS) $(CLI_LDLIBS)

$(BUILD)/asan/phi3c: $(call objs,$(ASAN),$(CLI_SRC)) $(BUILD)/asan/libphi3c.a
	$(CC) -pthread $(SAN_FLAGS) -o $@ $^ $(LDLIBS) $(CLI_LDLIBS)

$(REL)/tools/server/page.o $(ASAN)/tools/server/page.o: tools/server/chat.html

$(BUILD)/phi3c-tests: $(call objs,$(REL),$(TEST_SRC)) $(BUILD)/libphi3c.a
	$(CC) -pthread -o $@ $^ $(LDLIBS)

# The conformance suite alone, with only the kernels and what they need (no file-format libraries):
# tests/stages/neon.sh builds it for aarch64 (ARCH=aarch64 CC=aarch64-linux-gnu-gcc).
CONF_SRC := $(sort $(foreach d,common quant kernels kernels/cpu kernels/clk kernels/opencl kernels/level_zero,$(filter $(d)/%,$(LIB_SRC)))) \
            $(GEN_SRC) tests/harness.c tests/conformance.c tests/test_conformance.c
$(BUILD)/phi3c-conformance: $(call objs,$(REL),$(CONF_SRC))
	$(CC) -pthread -o $@ $^ -ldl -lm -lpthread

$(BUILD)/asan/phi3c-tests: $(call objs,$(ASAN),$(TEST_SRC)) $(BUILD)/asan/libphi3c.a
	$(CC) -pthread $(SAN_FLAGS) -o $@ $^ $(LDLIBS)

# pkg-config files: build/phi3c.pc for the build tree, and the installed one (make install).
pc_file = sed -e 's|@PREFIX@|$(1)|' -e 's|@LIBDIR@|$(2)|' -e 's|@INCLUDEDIR@|$(3)|' \
              -e 's|@VERSION@|$(LIBVERSION)|' tools/phi3c.pc.in
$(BUILD)/phi3c.pc: tools/phi3c.pc.in Makefile
	@mkdir -p $(@D)
	$(call pc_file,$(abspath $(BUILD)),$(abspath $(BUILD)),$(abspath include)) > $@

# ---- make install PREFIX=... [DESTDIR=...]: the CLI, the libraries (shared with its SONAME
# links, static), the header and a pkg-config file with the installed paths.
PREFIX  ?= /usr/local
DESTDIR ?=
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(BUILD)/phi3c $(DESTDIR)$(PREFIX)/bin/phi3c
	install -m 644 include/phi3c.h $(DESTDIR)$(PREFIX)/include/phi3c.h
	install -m 644 $(BUILD)/libphi3c.a $(DESTDIR)$(PREFIX)/lib/libphi3c.a
	install -m 755 $(BUILD)/libphi3c.so $(DESTDIR)$(PREFIX)/lib/libphi3c.so.$(LIBVERSION)
	ln -sf libphi3c.so.$(LIBVERSION) $(DESTDIR)$(PREFIX)/lib/libphi3c.so.$(SOVERSION)
	ln -sf libphi3c.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libphi3c.so
	$(call pc_file,$(PREFIX),$(PREFIX)/lib,$(PREFIX)/include) > $(DESTDIR)$(PREFIX)/lib/pkgconfig/phi3c.pc
	@echo "installed phi3c $(LIBVERSION) in $(DESTDIR)$(PREFIX)"

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/phi3c $(DESTDIR)$(PREFIX)/include/phi3c.h \
	      $(DESTDIR)$(PREFIX)/lib/libphi3c.a $(DESTDIR)$(PREFIX)/lib/libphi3c.so* \
	      $(DESTDIR)$(PREFIX)/lib/pkgconfig/phi3c.pc

# Measurement tools (C programs in tools/ linked against the library).
TOOLS := $(BUILD)/tools/quant_accuracy $(BUILD)/tools/synth_native $(BUILD)/tools/bench_tokenizer $(BUILD)/tools/npu_emit
tools: $(TOOLS)
$(BUILD)/tools/%: tools/%.c $(BUILD)/libphi3c.a
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ $< $(BUILD)/libphi3c.a $(LDLIBS)

EXAMPLES := $(patsubst tools/examples/%.c,$(BUILD)/examples/%,$(EXAMPLE_SRC))
examples: $(EXAMPLES)
$(BUILD)/examples/%: tools/examples/%.c $(BUILD)/libphi3c.a
	@mkdir -p $(@D)
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ $< $(BUILD)/libphi3c.a $(LDLIBS)

lib: $(BUILD)/libphi3c.a $(BUILD)/libphi3c.so

# ---- set-up: Debian packages (installed when root, else the exact command is printed) and venv
deps:
	@tools/deps.sh build
deps-test:
	@tools/deps.sh test

venv: $(VENV)/.stamp
$(VENV)/.stamp: tools/requirements-test.txt
	@tools/make_venv.sh $(VENV) tools/requirements-test.txt
	@touch $@

# ---- the two user commands
run: deps
	@$(MAKE) --no-print-directory all
	$(BUILD)/phi3c run -m tools/demo-model -p "And God said" -n 64 --seed 1

test: deps-test
	@[ -d "$(SHARED)/data" ] || { echo "phi3c test: the real tokenizer files and test vectors the suite \
	checks against are not at SHARED=$(SHARED) ($(SHARED)/data is missing); run make test \
	SHARED=/path/to/shared" >&2; exit 2; }
	@$(MAKE) --no-print-directory all $(BUILD)/phi3c-tests $(BUILD)/asan/phi3c-tests $(BUILD)/asan/phi3c \
	    $(PHI4_TOK)
	@SHARED=$(SHARED) BUILD=$(BUILD) VENV=$(VENV) FUZZ_SECONDS=$(FUZZ_SECONDS) MAKE="$(MAKE)" \
	    tests/run_all.sh

test-unit: all $(BUILD)/phi3c-tests
	PHI3C_SHARED=$(SHARED) PHI3C_BIN=$(BUILD)/phi3c $(BUILD)/phi3c-tests $(T)

test-asan: $(BUILD)/asan/phi3c-tests $(BUILD)/asan/phi3c
	PHI3C_SHARED=$(SHARED) PHI3C_BIN=$(BUILD)/asan/phi3c PHI3C_TEST_FAST=1 $(BUILD)/asan/phi3c-tests $(T)

# ---- fuzzing: libFuzzer targets in tests/fuzz/fuzz_*.c, built with clang
FUZZ_SRC := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BIN := $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_LIB_OBJ := $(call objs,$(BUILD)/fuzzobj,$(LIB_SRC) $(GEN_SRC))
# Every UBSan finding aborts (no recovery), so the fuzzer reports it as a crash like ASan's.
FUZZ_SAN := -fsanitize=address,undefined -fno-sanitize-recover=all
$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(@D)
	@echo "CC [fuzz] $<"
	$(Q)$(CLANG) $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer-no-link $(FUZZ_SAN) $(call isa_flags,$<) -MMD -MP -c $< -o $@
$(BUILD)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_OBJ)
	@mkdir -p $(@D)
	@echo "LD [fuzz] $@"
	$(Q)$(CLANG) $(BASE_CFLAGS) -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< $(FUZZ_LIB_OBJ) $(LDLIBS)
# fuzz_cli_args also links the CLI's parsers (every tools/cli file but main.c) and libedit.
FUZZ_CLI_OBJ := $(call objs,$(BUILD)/fuzzobj,$(filter-out tools/cli/main.c,$(wildcard tools/cli/*.c)))
$(BUILD)/fuzz/fuzz_cli_args: tests/fuzz/fuzz_cli_args.c $(FUZZ_LIB_OBJ) $(FUZZ_CLI_OBJ)
	@mkdir -p $(@D)
	@echo "LD [fuzz] $@"
	$(Q)$(CLANG) $(BASE_CFLAGS) -Itools/cli -O1 -g -fsanitize=fuzzer $(FUZZ_SAN) -o $@ $< \
	    $(FUZZ_CLI_OBJ) $(FUZZ_LIB_OBJ) $(LDLIBS) -ledit
fuzz: $(FUZZ_BIN)
# The short run of `make test` (FUZZ_SECONDS per target) and a long one for nightly use,
# `make fuzz-long FUZZ_SECONDS=3600`, whose corpus grows in build/fuzz-corpus/ across runs.
# In the short run, the CLI-argument and chat-message targets (small inputs: a command line, a
# few messages) take FUZZ_QUICK_SECONDS each, so they add ~10 s to `make test`.
FUZZ_QUICK_SECONDS ?= 5
fuzz-smoke: fuzz
	@FUZZ_QUICK="fuzz_cli_args fuzz_chat_template" FUZZ_QUICK_SECONDS=$(FUZZ_QUICK_SECONDS) \
	    tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS)
fuzz-long: fuzz
	@tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS) $(BUILD)/fuzz-corpus

# Regenerates the oracle fixtures with transformers (needs PyPI; see tests/fixtures/README.md).
fixtures: $(PHI4_TOK)
	@tools/make_venv.sh $(BUILD)/venv-fixtures tools/requirements-fixtures.txt
	$(BUILD)/venv-fixtures/bin/python tools/make_fixtures.py --out tests/fixtures
	$(BUILD)/venv-fixtures/bin/python tools/make_phi4_e2e_fixture.py $(BUILD)/phi4-tokenizer

bench: all
	@BUILD=$(BUILD) MAKE="$(MAKE)" tools/bench.sh

# llama.cpp's own llama-bench and llama-server, built once from the pinned PyPI sdist of
# llama-cpp-python into $(BUILD)/llamacpp/bin (tools/build_llamacpp.sh; ~30-60 min the first time).
llamacpp:
	@tools/build_llamacpp.sh $(BUILD)

# The tokenizer oracles' venv (HF tokenizers, jinja2, bpe-openai, tiktoken).
VENV_TOK := $(BUILD)/venv-tokenizer
$(VENV_TOK)/.stamp: tools/requirements-tokenizer.txt
	@tools/make_venv.sh $(VENV_TOK) tools/requirements-tokenizer.txt
	@touch $@

# A Phi-4-mini-style tokenizer.json (13 MB, not committed) from bpe-openai's o200k_base ranks.
PHI4_TOK := $(BUILD)/phi4-tokenizer/tokenizer.json
phi4-tokenizer: $(PHI4_TOK)
$(PHI4_TOK): tools/make_phi4_tokenizer.py $(VENV_TOK)/.stamp
	$(VENV_TOK)/bin/python tools/make_phi4_tokenizer.py $(@D)

# Prompt lookup on the demo model: generated tok/s with --lookup 8 against without on the fixed
# prompts of tools/lookup_prompts.txt (alternating A/B runs, medians; not part of `make test`).
bench-lookup: all
	BUILD=$(BUILD) $(PYTHON) tools/bench_lookup.py $(BENCH_LOOKUP_ARGS)

# Tokenizer encode throughput against HF tokenizers on the same 4 MB text, and Phi-4-mini's byte-level
# BPE against HF tokenizers, tiktoken and bpe-openai (one run, ratios printed).
bench-tokenizer: $(BUILD)/tools/bench_tokenizer $(VENV_TOK)/.stamp $(PHI4_TOK)
	$(BUILD)/venv-tokenizer/bin/python tools/bench_tokenizer.py --shared $(SHARED) --bin $(BUILD)/tools/bench_tokenizer

# The folder include rules (README, Architecture); GRAPH=1 also prints the folder include graph.
# tests/stages/layering.sh runs it in `make test` and shows it fails on planted bad includes.
check-layering:
	@tools/check_layering.sh $(if $(GRAPH),--graph)

format:
	clang-format-14 -i $$(git ls-files '*.c' '*.h' '*.cl')
format-check:
	clang-format-14 --dry-run --Werror $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
