# smdlm — plain Makefile. Targets: all (default), test, debug, bench, fixtures, clean,
# install, uninstall.
# Knobs: CC, OPT (default -O2), SAN (set by `make debug`), BUILD (output directory),
# MPI (1 default; 0 builds without MPI: `train` then runs one process), PREFIX (/usr/local)
# and DESTDIR for `make install`.

CC      ?= gcc
OPT     ?= -O2
BUILD   ?= build
BLASDIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp

# No -march=native: the hot loops are built once per code path (*_simd.c, below) and smdlm
# picks one at run time from its own CPU detection (src/compute/cpu.c).
CFLAGS  := -std=c11 $(OPT) -g -fno-math-errno -fopenmp -fPIC -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers \
           -D_GNU_SOURCE -Iinclude -Isrc $(shell pkg-config --cflags libcjson libpcre2-8 libmicrohttpd) $(SAN)
# the core library's libraries; training adds MPI, evaluation the sandbox. OpenBLAS (with its
# LAPACK) is not linked: gemm_openblas.c loads it with dlopen after choosing its kernels.
CORE_LIBS := $(shell pkg-config --libs libcjson libpcre2-8 libutf8proc libzip) -lz -lm -lpthread -ldl
MPI     ?= 1
ifeq ($(MPI),0)
MPI_LIBS  :=
else
MPI_LIBS  := $(shell pkg-config --libs ompi-c)
endif
# the server's HTTP library (src/server)
SERVER_LIBS := $(shell pkg-config --libs libmicrohttpd)
LDLIBS  := $(SERVER_LIBS) $(MPI_LIBS) $(CORE_LIBS)

# The version (one place: the file VERSION) and, built from a git checkout, the commit.
VERSION := $(shell cat VERSION)
SOMAJOR := $(firstword $(subst ., ,$(VERSION)))
GIT_COMMIT := $(shell git -C '$(CURDIR)' rev-parse --short=12 HEAD 2>/dev/null)$(shell \
              git -C '$(CURDIR)' diff --quiet HEAD 2>/dev/null || echo -dirty)
# Installation directories (the installed binary knows DATADIR; see `install`)
PREFIX  ?= /usr/local
BINDIR  := $(PREFIX)/bin
LIBDIR  := $(PREFIX)/lib
INCLUDEDIR := $(PREFIX)/include
DATADIR := $(PREFIX)/share/smdlm
MANDIR  := $(PREFIX)/share/man
COMPLETIONDIR := $(PREFIX)/share/bash-completion/completions
LDFLAGS := -fopenmp $(SAN)

# The layers of src/ (docs/ARCHITECTURE.md): the core library, then training and evaluation.
CORE_DIRS := base formats text compute softmask models generate api
CORE_SRC  := $(sort $(foreach d,$(CORE_DIRS),$(wildcard src/$(d)/*.c)))
TRAIN_SRC := $(sort $(wildcard src/train/*.c))
EVAL_SRC  := $(sort $(wildcard src/eval/*.c))
SERVER_SRC := $(sort $(wildcard src/server/*.c))
CLI_SRC   := $(sort $(wildcard cli/*.c))
TEST_SRC  := $(sort $(wildcard tests/test_*.c))
# Files named *_simd.c are compiled once per code path, with -DSIMD_PATH=<path> and the path's
# flags; the three objects are linked side by side (src/compute/rows.h).
SIMD_PATHS := avx512 avx2 generic
SIMD_FLAGS_avx512 := -mavx512f
SIMD_FLAGS_avx2 := -mavx2 -mfma
SIMD_FLAGS_generic :=
objects_of = $(patsubst %.c,$(BUILD)/%.o,$(filter-out %_simd.c,$(1))) \
             $(foreach f,$(filter %_simd.c,$(1)),$(SIMD_PATHS:%=$(BUILD)/$(f:.c=).%.o))
CORE_OBJ  := $(call objects_of,$(CORE_SRC))
TRAIN_OBJ := $(call objects_of,$(TRAIN_SRC))
EVAL_OBJ  := $(EVAL_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/src/server/playground.o
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIBS      := $(BUILD)/libsmdlm-server.a $(BUILD)/libsmdlm-eval.a $(BUILD)/libsmdlm-train.a $(BUILD)/libsmdlm.a

.PHONY: all test debug bench fixtures clean fuzz fuzz-smoke bad-files repro repro-quick install uninstall openai-client FORCE
all: $(BUILD)/smdlm smdlm $(BUILD)/libsmdlm.so

# A generated file rewritten only when its text changes, so that what depends on it is
# rebuilt only then: $(call write_if_changed,FILE,TEXT)
write_if_changed = @mkdir -p $(dir $(1)); printf '%b' '$(2)' > $(1).new; \
                   if cmp -s $(1).new $(1); then rm -f $(1).new; else mv $(1).new $(1); fi
$(BUILD)/version.h: FORCE
	$(call write_if_changed,$@,#define SMDLM_VERSION "$(VERSION)"\n#define SMDLM_COMMIT "$(GIT_COMMIT)"\n)
$(BUILD)/mpi.stamp: FORCE
	$(call write_if_changed,$@,$(MPI)\n)
$(BUILD)/prefix.stamp: FORCE
	$(call write_if_changed,$@,$(PREFIX)\n)
$(BUILD)/cli/main.o: $(BUILD)/version.h
$(BUILD)/cli/main.o: CFLAGS += -I$(BUILD)

$(BUILD)/libsmdlm.a: $(CORE_OBJ)
	ar rcs $@ $^
$(BUILD)/libsmdlm-train.a: $(TRAIN_OBJ)
	ar rcs $@ $^
$(BUILD)/libsmdlm-eval.a: $(EVAL_OBJ)
	ar rcs $@ $^
$(BUILD)/libsmdlm-server.a: $(SERVER_OBJ)
	ar rcs $@ $^
# the commands without main(), for the fuzz targets of the readers that live in cli/
$(BUILD)/libsmdlm-cli.a: $(filter-out $(BUILD)/cli/main.o,$(CLI_OBJ))
	ar rcs $@ $^
# the web playground served at GET /, embedded with the assembler's .incbin (no run-time files)
$(BUILD)/src/server/playground.o: src/server/playground.S web/playground.html
	@mkdir -p $(dir $@)
	$(CC) -c -Wa,-I'$(CURDIR)' -o $@ $<
# The core library as a shared library: libsmdlm.so.VERSION, soname libsmdlm.so.MAJOR.
$(BUILD)/libsmdlm.so.$(VERSION): $(CORE_OBJ)
	$(CC) -shared $(LDFLAGS) -Wl,-soname,libsmdlm.so.$(SOMAJOR) -Wl,--no-undefined -o $@ $^ $(CORE_LIBS)
$(BUILD)/libsmdlm.so: $(BUILD)/libsmdlm.so.$(VERSION)
	ln -sf libsmdlm.so.$(VERSION) $(BUILD)/libsmdlm.so.$(SOMAJOR)
	ln -sf libsmdlm.so.$(SOMAJOR) $@
ifeq ($(MPI),0)
$(BUILD)/src/train/dist.o: CFLAGS += -DSMDLM_MPI=0
else
$(BUILD)/src/train/dist.o: CFLAGS += -DSMDLM_MPI=1 $(shell pkg-config --cflags ompi-c)
endif
$(BUILD)/src/train/dist.o: $(BUILD)/mpi.stamp

$(BUILD)/smdlm: $(CLI_OBJ) $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/src/compute/gemm_openblas.o: CFLAGS += -DSMDLM_OPENBLAS_LIB='"$(BLASDIR)/libopenblas.so.0"'

# `generate` without -m runs the bundled default model of this source tree; data files
# (data/codebench) are looked up in $$SMDLM_DATA_DIR, the installed DATADIR (installed
# binary only), then this source tree's data/.
SOURCE_PATHS := -DSMDLM_DEFAULT_MODEL='"$(CURDIR)/models/default"' -DSMDLM_SOURCE_DATADIR='"$(CURDIR)/data"'
$(BUILD)/cli/common.o: CFLAGS += $(SOURCE_PATHS)

# convenience link at the top of the tree (ignored by git)
smdlm: $(BUILD)/smdlm
	ln -sf $(BUILD)/smdlm smdlm

$(BUILD)/%.o: %.c $(wildcard src/*/*.h include/*.h cli/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

define SIMD_RULE
$(BUILD)/%.$(1).o: %.c $(wildcard src/*/*.h include/*.h)
	@mkdir -p $$(dir $$@)
	$$(CC) $$(CFLAGS) -DSIMD_PATH=$(1) $$(SIMD_FLAGS_$(1)) -c -o $$@ $$<
endef
$(foreach p,$(SIMD_PATHS),$(eval $(call SIMD_RULE,$(p))))

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testutil.o $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

# the server's tests talk HTTP through libcurl
$(BUILD)/tests/test_server: LDLIBS += $(shell pkg-config --libs libcurl)

# The public API as an outside program uses it: include/ alone (no src/ headers), the core
# library alone (no MPI, training or evaluation libraries).
PUBLIC_CFLAGS := -std=c11 $(OPT) -g -Wall -Wextra -Wshadow -D_POSIX_C_SOURCE=200809L -pthread \
                 -Iinclude $(SAN)
$(BUILD)/tests/test_api_public.o: tests/test_api_public.c include/smdlm.h
	@mkdir -p $(dir $@)
	$(CC) $(PUBLIC_CFLAGS) -c -o $@ $<
$(BUILD)/tests/test_api_public: $(BUILD)/tests/test_api_public.o $(BUILD)/libsmdlm.a
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CORE_LIBS) -lcmocka
$(BUILD)/tests/test_batch.o: tests/test_batch.c include/smdlm.h
	@mkdir -p $(dir $@)
	$(CC) $(PUBLIC_CFLAGS) -c -o $@ $<
$(BUILD)/tests/test_batch: $(BUILD)/tests/test_batch.o $(BUILD)/libsmdlm.a
	$(CC) $(LDFLAGS) -pthread -o $@ $^ $(CORE_LIBS) -lcmocka

test: $(TEST_BIN) $(BUILD)/smdlm openai-client tests/browser/node_modules/.package-lock.json
	@BUILD=$(BUILD) MAKE='$(MAKE)' SAN='$(SAN)' sh tests/run_tests.sh $(TEST_BIN) tests/test_install.sh \
	    tests/test_playground.sh

# The openai npm package for test_server's client test, as pinned by its package-lock.json;
# without npm, or offline, that test is skipped.
openai-client:
	@if command -v npm >/dev/null 2>&1 && [ ! -f tests/openai_client/node_modules/openai/package.json ]; then \
	    (cd tests/openai_client && npm ci --no-audit --no-fund --loglevel=error) || \
	    echo "npm ci failed: the openai client test will be skipped"; fi

# the browser test's driver (playwright-core, pinned by tests/browser/package-lock.json; it
# drives Debian's /usr/bin/chromium and downloads no browser)
tests/browser/node_modules/.package-lock.json: tests/browser/package.json tests/browser/package-lock.json
	npm ci --prefix tests/browser --no-audit --no-fund

# `make install PREFIX=… DESTDIR=…`. The installed binary is build/smdlm relinked with a
# common.o that knows DATADIR; the library is installed static and shared (with pkg-config's
# smdlm.pc: Libs.private/Requires.private serve static linking).
$(BUILD)/install/common.o: cli/common.c $(BUILD)/prefix.stamp $(wildcard src/*/*.h include/*.h cli/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SOURCE_PATHS) -DSMDLM_DATADIR='"$(DATADIR)"' -c -o $@ $<
$(BUILD)/install/smdlm: $(filter-out $(BUILD)/cli/common.o,$(CLI_OBJ)) $(BUILD)/install/common.o $(LIBS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/smdlm.pc: smdlm.pc.in VERSION $(BUILD)/prefix.stamp
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

install: $(BUILD)/install/smdlm $(BUILD)/libsmdlm.a $(BUILD)/libsmdlm.so $(BUILD)/smdlm.pc
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(INCLUDEDIR) \
	           $(DESTDIR)$(DATADIR)/codebench $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(COMPLETIONDIR)
	install -m 755 $(BUILD)/install/smdlm $(DESTDIR)$(BINDIR)/smdlm
	install -m 644 $(BUILD)/libsmdlm.a $(DESTDIR)$(LIBDIR)/libsmdlm.a
	install -m 755 $(BUILD)/libsmdlm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsmdlm.so.$(VERSION)
	ln -sf libsmdlm.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libsmdlm.so.$(SOMAJOR)
	ln -sf libsmdlm.so.$(SOMAJOR) $(DESTDIR)$(LIBDIR)/libsmdlm.so
	install -m 644 include/smdlm.h $(DESTDIR)$(INCLUDEDIR)/smdlm.h
	install -m 644 $(BUILD)/smdlm.pc $(DESTDIR)$(LIBDIR)/pkgconfig/smdlm.pc
	install -m 644 data/codebench/* $(DESTDIR)$(DATADIR)/codebench/
	install -m 644 docs/smdlm.1 $(DESTDIR)$(MANDIR)/man1/smdlm.1
	install -m 644 scripts/smdlm-completion.bash $(DESTDIR)$(COMPLETIONDIR)/smdlm

uninstall:
	rm -f $(DESTDIR)$(BINDIR)/smdlm $(DESTDIR)$(LIBDIR)/libsmdlm.a $(DESTDIR)$(LIBDIR)/libsmdlm.so* \
	      $(DESTDIR)$(INCLUDEDIR)/smdlm.h $(DESTDIR)$(LIBDIR)/pkgconfig/smdlm.pc \
	      $(DESTDIR)$(MANDIR)/man1/smdlm.1 $(DESTDIR)$(COMPLETIONDIR)/smdlm
	rm -rf $(DESTDIR)$(DATADIR)

debug:
	$(MAKE) BUILD=build-debug OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: all
	sh bench/bench_forward.sh

# The small-scale reproduction of the paper's claims (configuration: repro/repro.conf;
# writes docs/RESULTS.md); repro-quick is its ≤ 10-minute smoke test with sanity checks only.
repro: all
	sh scripts/repro.sh
repro-quick: all
	REPRO_QUICK=1 sh scripts/repro.sh

fixtures:
	/usr/bin/python3 tests/gen_fixtures.py
	/usr/bin/python3 tests/gen_semiar_fixtures.py
	/usr/bin/python3 tests/gen_decoder_fixtures.py
	/usr/bin/python3 tests/gen_float_fixtures.py
	/usr/bin/python3 tests/gen_train_fixtures.py
	/usr/bin/python3 tests/gen_optim_fixtures.py
	/usr/bin/python3 tests/gen_gpt2_fixtures.py
	/usr/bin/python3 tests/gen_dream_fixtures.py
	/usr/bin/python3 tests/gen_softmask_fixtures.py
	/usr/bin/python3 tests/gen_adapter_fixtures.py
	/usr/bin/python3 tests/gen_tfgrad_fixtures.py
	/usr/bin/python3 tests/gen_ckpt_fixtures.py
	/usr/bin/python3 tests/gen_generate_fixtures.py
	/usr/bin/python3 tests/gen_evaluator_fixtures.py
	/usr/bin/python3 tests/gen_mauve_fixtures.py
	/usr/bin/python3 tests/gen_codeeval_fixtures.py
	/usr/bin/python3 tests/gen_harness_fixtures.py

clean:
	rm -rf build build-debug smdlm
.SECONDARY:

# libFuzzer targets (fuzz/README.md; Debian: clang-14, libclang-rt-14-dev, libomp-14-dev). The
# libraries (and the commands' objects but main.o) are built again by clang into $(FUZZ_BUILD)/lib
# with ASan, UBSan and the fuzzer's coverage instrumentation, without MPI; each fuzz/fuzz_NAME.c
# is linked against them. `make fuzz-smoke` runs every target FUZZ_SECONDS from its seed corpus.
# Every fuzz/fuzz_*.c is a target, with its seeds in fuzz/corpus/<target>/.
FUZZ_CC      := $(if $(findstring clang,$(CC)),$(CC),$(if $(shell command -v clang-14),clang-14,clang))
FUZZ_BUILD   := $(BUILD)/fuzz
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer
FUZZ_SECONDS ?= 20
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_LIBS    := $(addprefix $(FUZZ_BUILD)/lib/,libsmdlm-cli.a libsmdlm-server.a libsmdlm-eval.a libsmdlm-train.a libsmdlm.a)
fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)
$(FUZZ_LIBS) &: FORCE
	@$(MAKE) --no-print-directory CC=$(FUZZ_CC) OPT=-O1 MPI=0 BUILD=$(FUZZ_BUILD)/lib \
	    SAN='-fsanitize=fuzzer-no-link $(FUZZ_SAN) -Wno-pass-failed -Wno-target-clones-mixed-specifiers -Wno-duplicate-decl-specifier' $(FUZZ_LIBS)
$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_util.h $(FUZZ_LIBS)
	$(FUZZ_CC) -std=c11 -g -O1 -fsanitize=fuzzer $(FUZZ_SAN) -D_GNU_SOURCE -Iinclude -Isrc -Icli \
	    -o $@ $< $(FUZZ_LIBS) -fopenmp $(CORE_LIBS)
fuzz-smoke: fuzz
	sh fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS) $(FUZZ_TARGETS)

# regenerate the hand-made broken files of tests/bad (plain python3 / python3-torch)
bad-files:
	python3 tests/make_bad_files.py
	/usr/bin/python3 tests/make_bad_models.py
