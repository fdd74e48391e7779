# smdlm — plain Makefile. Targets: all (default), test, debug, bench, fixtures, clean,
# install, uninstall.
# Knobs: CC, OPT (default -O2), SAN (set by `make debug`), BUILD (output directory),
# MPI (1 default; 0 builds without MPI: `train` then runs one process), PREFIX (/usr/local)
# and DESTDIR for `make install`.

CC      ?= gcc
OPT     ?= -O2
BUILD   ?= build
BLASDIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp

# No -march=native: hot kernels carry target_clones(avx512f, avx2, default) and the
# loader picks one at run time.
CFLAGS  := -std=c11 $(OPT) -g -fno-math-errno -fopenmp -fPIC -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers \
           -D_GNU_SOURCE -Iinclude -Isrc $(shell pkg-config --cflags libcjson libpcre2-8 libmicrohttpd) $(SAN)
# the core library's libraries; training adds MPI, evaluation the sandbox. OpenBLAS (with its
# LAPACK) is not linked: gemm_openblas.c loads it with dlopen after choosing its kernels.
CORE_LIBS := $(shell pkg-config --libs libcjson libpcre2-8 libutf8proc) -lz -lm -lpthread -ldl
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
CORE_OBJ  := $(CORE_SRC:%.c=$(BUILD)/%.o)
TRAIN_OBJ := $(TRAIN_SRC:%.c=$(BUILD)/%.o)
EVAL_OBJ  := $(EVAL_SRC:%.c=$(BUILD)/%.o)
SERVER_OBJ := $(SERVER_SRC:%.c=$(BUILD)/%.o) $(BUILD)/src/server/playground.o
CLI_OBJ   := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN  := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
LIBS      := $(BUILD)/libsmdlm-server.a $(BUILD)/libsmdlm-eval.a $(BUILD)/libsmdlm-train.a $(BUILD)/libsmdlm.a

.PHONY: all test debug bench fixtures clean fuzz bad-files repro repro-quick install uninstall FORCE
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

test: $(TEST_BIN) $(BUILD)/smdlm tests/browser/node_modules/.package-lock.json
	@BUILD=$(BUILD) MAKE='$(MAKE)' sh tests/run_tests.sh $(TEST_BIN) tests/test_install.sh \
	    tests/test_playground.sh

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
	/usr/bin/python3 tests/gen_float_fixtures.py
	/usr/bin/python3 tests/gen_train_fixtures.py
	/usr/bin/python3 tests/gen_optim_fixtures.py
	/usr/bin/python3 tests/gen_gpt2_fixtures.py
	/usr/bin/python3 tests/gen_dream_fixtures.py
	/usr/bin/python3 tests/gen_generate_fixtures.py
	/usr/bin/python3 tests/gen_evaluator_fixtures.py
	/usr/bin/python3 tests/gen_mauve_fixtures.py
	/usr/bin/python3 tests/gen_codeeval_fixtures.py

clean:
	rm -rf build build-debug smdlm
.SECONDARY:

# libFuzzer targets (clang + compiler-rt: apt-get install clang libclang-rt-14-dev); see fuzz/README.md
FUZZ_FLAGS := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -D_GNU_SOURCE -Isrc
fuzz: $(BUILD)/fuzz/fuzz_safetensors $(BUILD)/fuzz/fuzz_npy $(BUILD)/fuzz/fuzz_tokenizer $(BUILD)/fuzz/fuzz_config
$(BUILD)/fuzz/fuzz_safetensors: fuzz/fuzz_safetensors.c src/formats/safetensors.c src/base/util.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) $^ -lcjson -lm -o $@
$(BUILD)/fuzz/fuzz_npy: fuzz/fuzz_npy.c src/formats/npy.c src/base/util.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) $^ -lm -o $@
$(BUILD)/fuzz/fuzz_tokenizer: fuzz/fuzz_tokenizer.c src/text/tokenizer.c src/base/jsonutil.c src/base/util.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) $^ -lcjson -lpcre2-8 -lutf8proc -lpthread -lm -o $@

$(BUILD)/fuzz/fuzz_config: fuzz/fuzz_config.c src/models/dit.c src/softmask/softmask.c src/base/jsonutil.c src/compute/kernels.c src/compute/kernels_ref.c src/compute/gemm_openblas.c src/compute/cpu.c src/formats/safetensors.c src/base/util.c
	@mkdir -p $(dir $@)
	clang $(FUZZ_FLAGS) -fopenmp -DSMDLM_OPENBLAS_LIB='"$(BLASDIR)/libopenblas.so.0"' $^ -lcjson -lm -ldl -o $@

# regenerate the hand-made broken files of tests/bad (plain python3 / python3-torch)
bad-files:
	python3 tests/make_bad_files.py
	/usr/bin/python3 tests/make_bad_models.py
