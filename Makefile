# gatehouse build. Plain make, pkg-config for every library.
#
#   make            release build: build/gatehouse, build/gatehouse-sandbox, build/sandbox-driver
#   make asan       AddressSanitizer + UBSan build: build/asan/gatehouse (and
#                   build/asan/gatehouse-sandbox, UBSan only: see the sandbox section)
#   make unit       build and run the cmocka unit tests
#   make unit-asan  the same under the sanitizers
#   make fuzz       libFuzzer targets (clang): build/fuzz/*
#   make format     clang-format every source file in place
#   make check-format
#   make bench      the performance benchmark against nginx and Portkey (bench/README.md)
#   make bench-tokens  Code Mode's input tokens against classic injection (bench/tokens/README.md)

VERSION := 0.1.0
PKGS := libevent libevent_pthreads libcurl jansson openssl sqlite3
CC ?= cc
CFLAGS_BASE := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
               -Isrc -DGATEHOUSE_VERSION='"$(VERSION)"' $(shell pkg-config --cflags $(PKGS))
LIBS := $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lpthread -lm

OPT_CFLAGS := -O2 -g
ASAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
               -fno-sanitize-recover=undefined

# src/sandbox/ is a separate program (gatehouse-sandbox) that embeds CPython; only its wire
# format (frame.c, no dependency but libc) is shared with the gateway's library.
SANDBOX_SRCS := $(filter-out src/sandbox/frame.c,$(wildcard src/sandbox/*.c))
SRCS := $(filter-out $(SANDBOX_SRCS),$(shell find src -name '*.c' | sort))
LIB_SRCS := $(filter-out src/main.c,$(SRCS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)

.PHONY: all asan unit unit-asan fuzz clean format check-format bench bench-tokens

all: build/gatehouse build/gatehouse-sandbox build/sandbox-driver

# ---- object rules, one tree per flavour --------------------------------------------------------

build/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(OPT_CFLAGS) -MMD -MP -c $< -o $@

build/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(ASAN_CFLAGS) -MMD -MP -c $< -o $@

REL_LIB_OBJS := $(LIB_SRCS:%.c=build/rel/%.o)
ASAN_LIB_OBJS := $(LIB_SRCS:%.c=build/asan/%.o)

# The modules go into an archive so that a unit test links only what it uses.
build/rel/libgatehouse.a: $(REL_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

build/asan/libgatehouse.a: $(ASAN_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

build/gatehouse: build/rel/src/main.o build/rel/libgatehouse.a
	$(CC) $(OPT_CFLAGS) -o $@ $^ $(LIBS)

build/asan/gatehouse: build/asan/src/main.o build/asan/libgatehouse.a
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS)

asan: build/asan/gatehouse build/asan/gatehouse-sandbox

# ---- gatehouse-sandbox: embedded CPython (Debian's libpython3.11) and libseccomp ---------------
#
# The harness (src/sandbox/harness.py) is compiled into the binary as a C array. The "asan"
# flavour of the sandbox is built with UBSan only, not AddressSanitizer: every sandbox child runs
# under RLIMIT_AS (256 MiB by default), and ASan's shadow memory reserves terabytes of address
# space, so an ASan child could not even start. Its frame reader is covered by ASan through
# the unit tests and the fuzz target instead.

SANDBOX_PKGS := python3-embed libseccomp jansson
SANDBOX_CFLAGS := $(shell pkg-config --cflags $(SANDBOX_PKGS)) -Ibuild/gen
SANDBOX_LIBS := $(shell pkg-config --libs $(SANDBOX_PKGS))
UBSAN_CFLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=undefined -fno-sanitize-recover=undefined
SANDBOX_ALL_SRCS := $(SANDBOX_SRCS) src/sandbox/frame.c
SANDBOX_REL_OBJS := $(SANDBOX_ALL_SRCS:%.c=build/rel/%.o)
SANDBOX_UBSAN_OBJS := $(SANDBOX_ALL_SRCS:%.c=build/ubsan/%.o)

build/gen/sandbox/harness_py.h: src/sandbox/harness.py
	@mkdir -p $(dir $@)
	@{ echo '/* generated from $< by the Makefile; do not edit */'; \
	  echo 'static const char sandbox_harness_py[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/ \([0-9a-f][0-9a-f]\)/0x\1,/g'; \
	  echo '0x00};'; } >$@

$(SANDBOX_REL_OBJS) $(SANDBOX_UBSAN_OBJS): build/gen/sandbox/harness_py.h
$(SANDBOX_REL_OBJS): CFLAGS_BASE += $(SANDBOX_CFLAGS)

build/ubsan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(SANDBOX_CFLAGS) $(UBSAN_CFLAGS) -MMD -MP -c $< -o $@

build/gatehouse-sandbox: $(SANDBOX_REL_OBJS)
	$(CC) $(OPT_CFLAGS) -o $@ $^ $(SANDBOX_LIBS)

build/asan/gatehouse-sandbox: $(SANDBOX_UBSAN_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(UBSAN_CFLAGS) -o $@ $^ $(SANDBOX_LIBS)

# The escape suite's driver (tests/sandbox/driver.c): plays the gateway's side of the wire format.
build/sandbox-driver: build/rel/tests/sandbox/driver.o build/rel/src/sandbox/frame.o
	$(CC) $(OPT_CFLAGS) -o $@ $^ $(shell pkg-config --libs jansson)

# ---- unit tests: one binary per tests/unit/test_*.c, linked with every module but main ---------

UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=build/rel/unit/%)
UNIT_ASAN_BINS := $(UNIT_SRCS:tests/unit/%.c=build/asan/unit/%)

build/rel/unit/%: build/rel/tests/unit/%.o build/rel/libgatehouse.a
	@mkdir -p $(dir $@)
	$(CC) $(OPT_CFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs cmocka)

build/asan/unit/%: build/asan/tests/unit/%.o build/asan/libgatehouse.a
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LIBS) $(shell pkg-config --libs cmocka)

unit: $(UNIT_BINS)
	@scripts/run-unit.sh $(UNIT_BINS)

unit-asan: $(UNIT_ASAN_BINS)
	@scripts/run-unit.sh $(UNIT_ASAN_BINS)

# ---- fuzz targets (clang + libFuzzer); each links the modules it needs -------------------------

FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=build/fuzz/%)
FUZZ_CFLAGS := -O1 -g -fsanitize=fuzzer,address,undefined -std=c11 -D_GNU_SOURCE -Isrc \
               -DGATEHOUSE_VERSION='"$(VERSION)"' \
               $(shell pkg-config --cflags $(PKGS))

build/fuzz/%: tests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	clang $(FUZZ_CFLAGS) -o $@ $^ $(LIBS)

fuzz: $(FUZZ_BINS)

# ---- housekeeping ------------------------------------------------------------------------------

format:
	clang-format -i $(SRCS) $(SANDBOX_SRCS) $(wildcard src/*/*.h) $(UNIT_SRCS) $(FUZZ_SRCS) \
	    $(wildcard tests/sandbox/*.c)

bench: all
	bench/run.sh

# Not part of bench: it needs ../shared/tool-catalogs, and its counts do not depend on the machine.
bench-tokens: all
	bench/tokens/run.sh

check-format:
	@scripts/check-format.sh

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
