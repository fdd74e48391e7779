# smdlm — plain Makefile. Targets: all (default), test, debug, bench, fixtures, clean.
# Knobs: CC, OPT (default -O2), SAN (set by `make debug`), BUILD (output directory).

CC      ?= gcc
OPT     ?= -O2
BUILD   ?= build
BLASDIR ?= /usr/lib/x86_64-linux-gnu/openblas-openmp

# No -march=native: hot kernels carry target_clones(avx512f, avx2, default) and the
# loader picks one at run time.
CFLAGS  := -std=c11 $(OPT) -g -fopenmp -fPIC -Wall -Wextra -Wshadow -Wno-unused-parameter -Wno-missing-field-initializers \
           -D_GNU_SOURCE -Iinclude -Isrc $(shell pkg-config --cflags libcjson libpcre2-8) $(SAN)
LDLIBS  := -L$(BLASDIR) -Wl,-rpath,$(BLASDIR) -lopenblas \
           $(shell pkg-config --libs libcjson libpcre2-8) -lm -lpthread
LDFLAGS := -fopenmp $(SAN)

LIB_SRC  := $(sort $(wildcard src/*.c))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/test_*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

.PHONY: all test debug bench fixtures clean
all: $(BUILD)/smdlm smdlm

$(BUILD)/libsmdlm.a: $(LIB_OBJ)
	ar rcs $@ $^

$(BUILD)/smdlm: $(CLI_OBJ) $(BUILD)/libsmdlm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# convenience link at the top of the tree (ignored by git)
smdlm: $(BUILD)/smdlm
	ln -sf $(BUILD)/smdlm smdlm

$(BUILD)/%.o: %.c $(wildcard src/*.h include/*.h cli/*.h tests/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(BUILD)/tests/testutil.o $(BUILD)/libsmdlm.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcmocka

test: $(TEST_BIN) $(BUILD)/smdlm
	@BUILD=$(BUILD) sh tests/run_tests.sh $(TEST_BIN)

debug:
	$(MAKE) BUILD=build-debug OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: all
	sh bench/bench_forward.sh

fixtures:
	/usr/bin/python3 tests/gen_fixtures.py

clean:
	rm -rf build build-debug smdlm
.SECONDARY:
