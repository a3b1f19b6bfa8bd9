# Cumulus build. `make` builds build/cumulus; `make check` installs the
# dependencies, builds normal and sanitizer (ASan+UBSan) variants and runs
# every test; `make demo` installs, builds and runs the main job.

CC      ?= cc
PKGS    := libsodium sqlite3 libmicrohttpd libcurl jansson libfyaml libseccomp libarchive libpng
PKG_CFLAGS = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS   = $(shell pkg-config --libs $(PKGS) 2>/dev/null)

WARN    := -Wall -Wextra -Werror -Wshadow -Wpointer-arith -Wformat=2 -Wno-format-nonliteral \
           -Wstrict-prototypes -Wmissing-prototypes -Wno-missing-field-initializers
CFLAGS  ?= -O2 -g
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Isrc $(WARN) $(CFLAGS) $(PKG_CFLAGS) -pthread -MMD -MP
LDLIBS  = $(PKG_LIBS) -pthread -lm
SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined

B       := build
LIB_SRC := $(filter-out %_test.c src/cli/main.c,$(wildcard src/*/*.c))
TEST_SRC := $(wildcard src/*/*_test.c tests/unit/*_test.c)

OBJ      := $(LIB_SRC:%.c=$(B)/obj/%.o)
ASAN_OBJ := $(LIB_SRC:%.c=$(B)/asan/obj/%.o)
TESTS    := $(foreach t,$(TEST_SRC),$(B)/asan/test/$(basename $(notdir $(t))))

.PHONY: all asan tests check demo deps clean format
all: $(B)/cumulus $(B)/examples/fractal

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(B)/asan/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O1 $(SAN) -c $< -o $@

$(B)/libcumulus.a: $(OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/asan/libcumulus.a: $(ASAN_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(B)/cumulus: $(B)/obj/src/cli/main.o $(B)/libcumulus.a
	$(CC) $(ALL_CFLAGS) -o $@ $^ $(LDLIBS)

$(B)/asan/cumulus: $(B)/asan/obj/src/cli/main.o $(B)/asan/libcumulus.a
	$(CC) $(ALL_CFLAGS) $(SAN) -o $@ $^ $(LDLIBS)

# The demo's task program: a plain C program that renders one fractal tile.
# It is uploaded to the exchange as an input blob and runs in the sandbox.
$(B)/examples/fractal: examples/fractal/fractal.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $< -lm

# The supervisor of a warm sandbox (src/fabric/warm.h): a static program,
# so it runs on the host view and in any OCI root alike; embedded into the
# library by src/fabric/warm_blob.c (.incbin), so nothing is installed.
$(B)/warm-init: src/fabric/init/warm_init.c src/fabric/warm_proto.h
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -D_GNU_SOURCE -Isrc $(WARN) -Os -static -s -o $@ $<

$(B)/obj/src/fabric/warm_blob.o $(B)/asan/obj/src/fabric/warm_blob.o: $(B)/warm-init
$(B)/obj/src/fabric/warm_blob.o $(B)/asan/obj/src/fabric/warm_blob.o: \
	ALL_CFLAGS += -DCU_WARM_INIT_BIN='"$(B)/warm-init"'

define unit_rule
$(B)/asan/test/$(basename $(notdir $(1))): $(1) $(B)/asan/libcumulus.a
	@mkdir -p $$(dir $$@)
	$$(CC) $$(ALL_CFLAGS) -O1 $$(SAN) -o $$@ $$< $(B)/asan/libcumulus.a $$(LDLIBS) $$(shell pkg-config --libs cmocka)
endef
$(foreach t,$(TEST_SRC),$(eval $(call unit_rule,$(t))))

# The sandbox's tests once more against the release library: without ASan
# a sandbox's first process is spawned another way (fabric/sandbox.c
# spawn_child), and that path must be tested too. tests/run.sh runs these
# as "NAME-release".
REL_TEST_SRC := src/fabric/sandbox_test.c src/fabric/warm_test.c
REL_TESTS := $(foreach t,$(REL_TEST_SRC),$(B)/test/$(basename $(notdir $(t))))
$(B)/test/%_test: src/fabric/%_test.c $(B)/libcumulus.a
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $< $(B)/libcumulus.a $(LDLIBS) $(shell pkg-config --libs cmocka)

asan: $(B)/asan/cumulus
tests: $(TESTS) $(REL_TESTS)

deps:
	./scripts/install-deps.sh

check: deps
	$(MAKE) all asan tests
	./tests/run.sh

demo: deps
	$(MAKE) all
	./$(B)/cumulus demo

# Benchmarks (issue 6): every bench/*.c is one program, linked with the
# helpers in bench/lib against the library, run in turn by bench/run.sh.
# Each prints one JSON line on stdout. `make check` never runs them;
# `make bench-smoke` runs them all with tiny sizes.
BENCH_BIN := $(patsubst bench/%.c,$(B)/bench/%,$(wildcard bench/*.c))

$(B)/bench/obj/%.o: bench/%.c bench/lib/benchlib.h
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -O2 -Ibench/lib -c $< -o $@

$(B)/bench/%: $(B)/bench/obj/%.o $(B)/bench/obj/lib/benchlib.o $(B)/libcumulus.a
	$(CC) $(ALL_CFLAGS) -O2 -o $@ $^ $(LDLIBS)

# The CPU-bound task of e2e_cpu: uploaded as an input and run in the sandbox.
$(B)/bench/tasks/spin: bench/tasks/spin.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $<

.PRECIOUS: $(B)/bench/obj/%.o
.PHONY: bench bench-smoke
bench: $(B)/cumulus $(BENCH_BIN) $(B)/bench/tasks/spin
	./bench/run.sh

bench-smoke: $(B)/cumulus $(BENCH_BIN) $(B)/bench/tasks/spin
	./bench/run.sh --smoke

format:
	clang-format -i $(wildcard src/*/*.c src/*/*.h)

clean:
	rm -rf $(B)

-include $(REL_TESTS:=.d) $(OBJ:.o=.d) $(ASAN_OBJ:.o=.d) $(B)/obj/src/cli/main.d $(B)/asan/obj/src/cli/main.d

# Fuzzing (libFuzzer, clang): every tests/fuzz/fuzz_*.c is one harness,
# linked with the library sources it needs, compiled here with clang and
# the fuzzer + ASan/UBSan instrumentation (never the gcc objects).
# `make fuzz` runs each for FUZZ_SECONDS, growing a corpus in
# build/fuzz/corpus/<name>/ from the seeds in tests/fuzz/corpus/<name>/
# (left untouched); crash inputs land in build/fuzz/artifacts/. `make fuzz-smoke` only replays the seeds (a few
# seconds). Neither is part of `make check`.
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 30
FUZZ_SAN     := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
FUZZ_CFLAGS   = -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -Isrc $(WARN) -O1 -g \
                $(PKG_CFLAGS) -pthread $(FUZZ_SAN)
FUZZ_LIB_SRC := $(addprefix src/,base/buf.c base/err.c base/json.c base/log.c base/util.c \
                crypto/hash.c crypto/ident.c crypto/reqsign.c market/spec.c \
                client/jobspec.c client/png.c)
FUZZ_NAMES   := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BIN     := $(FUZZ_NAMES:%=$(B)/fuzz/%)

$(B)/fuzz/%: tests/fuzz/%.c $(FUZZ_LIB_SRC) $(wildcard src/*/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(FUZZ_LIB_SRC) $(LDLIBS)

.PHONY: fuzz fuzz-build fuzz-smoke
fuzz-build: $(FUZZ_BIN)

fuzz: $(FUZZ_BIN)
	@mkdir -p $(B)/fuzz/artifacts
	@set -e; for f in $(FUZZ_NAMES); do \
	    mkdir -p $(B)/fuzz/corpus/$$f; \
	    echo "== $$f ($(FUZZ_SECONDS) s)"; \
	    $(B)/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -print_final_stats=1 \
	        -artifact_prefix=$(B)/fuzz/artifacts/$$f- \
	        $(B)/fuzz/corpus/$$f tests/fuzz/corpus/$$f; \
	done

fuzz-smoke: $(FUZZ_BIN)
	@set -e; for f in $(FUZZ_NAMES); do \
	    echo "== $$f (seeds)"; \
	    $(B)/fuzz/$$f tests/fuzz/corpus/$$f/*; \
	done
