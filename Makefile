# ckptfs — one non-recursive GNU Makefile.
#
#   make                 libckpt (.a, .so), ckpt, ckptfs
#   make check           unit tests (cmocka), fuzz corpus replay, end-to-end tests
#   make bench           benchmarks (tests/bench/), ratios against baselines
#   make stress          the reliability suite (tests/stress/): kill storms, flips, faults
#   make fuzz            long libFuzzer runs of every fuzz target (tests/fuzz/run.sh)
#   make install         PREFIX=/usr/local DESTDIR= (library, headers, ckpt.pc, binaries,
#                        man pages ckpt(1) ckptfs(8), bash completion)
#   make deps            install missing Debian packages
#   make format          apply .clang-format
#   SANITIZER=address,undefined   build everything with sanitizers
#   WERROR=1             warnings are errors (CI)
#
# Sources are found by wildcard: a new core/*.c joins the library, a new
# tests/unit/*_test.c becomes a test, a new tests/e2e/*.sh runs in make check.

PREFIX  ?= /usr/local
DESTDIR ?=
B       ?= build
VERSION := 0.2.0
# The soname changes when a program built against an older libckpt could break:
# 1 = handler vtables gained a version field and moved to ckpt/sys/ (docs/api.md).
SOVERSION := 1

CC      ?= cc
OPT     ?= -O2 -g
WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla -Wformat=2 \
           -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif
PKGS    := sqlite3 libzstd libcjson libprotobuf-c zlib
DEP_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
DEP_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
FUSE_CFLAGS := $(shell pkg-config --cflags fuse3 2>/dev/null)
FUSE_LIBS   := $(shell pkg-config --libs fuse3 2>/dev/null)

SAN     :=
ifneq ($(SANITIZER),)
SAN     := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif
# LIBFUZZER=1 (with CC=clang, SANITIZER=address,undefined; `make fuzz` sets all three):
# everything is built with libFuzzer's coverage, and the fuzz targets link libFuzzer's
# driver instead of tests/fuzz/replay.c.
FUZZ_DRIVER := tests/fuzz/replay.c
ifeq ($(LIBFUZZER),1)
SAN     += -fsanitize=fuzzer-no-link
FUZZ_DRIVER := -fsanitize=fuzzer
endif

CFLAGS_ALL := -std=c11 -D_GNU_SOURCE -DCKPT_VERSION='"$(VERSION)"' $(OPT) $(WARN) $(SAN) \
              -fPIC -pthread -Icore/include $(DEP_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SAN) -pthread $(LDFLAGS)
LIBS    := $(DEP_LIBS) -lm

CORE_SRC  := $(sort $(wildcard core/*.c core/util/*.c core/handlers/*.c))
# Private headers are found by name from every layer (core/README.md says who may include what).
CORE_INC  := -Icore -Icore/util -Icore/handlers
CORE_OBJ  := $(CORE_SRC:%.c=$(B)/%.o)
TOOLS_SRC := $(sort $(wildcard tools/*.c))
TOOLS_OBJ := $(TOOLS_SRC:%.c=$(B)/%.o)
FS_SRC    := $(sort $(wildcard fs/*.c))
FS_OBJ    := $(FS_SRC:%.c=$(B)/%.o)
UNIT_SRC  := $(sort $(wildcard tests/unit/*_test.c))
UNIT_BIN  := $(UNIT_SRC:%.c=$(B)/%)
FUZZ_SRC  := $(sort $(wildcard tests/fuzz/*_fuzzer.c))
FUZZ_BIN  := $(FUZZ_SRC:%.c=$(B)/%)
E2E       := $(sort $(filter-out %lib.sh,$(wildcard tests/e2e/*.sh)))
HEADERS   := $(sort $(wildcard core/include/ckpt/*.h))
SYS_HEADERS := $(sort $(wildcard core/include/ckpt/sys/*.h))
# Test protos (tests/proto/*.proto) compiled by protoc-c into $(B)/gen, and
# test programs (tests/tools/*.c) that e2e tests run; both link them.
PROTO_SRC := $(sort $(wildcard tests/proto/*.proto))
PROTO_OBJ := $(PROTO_SRC:tests/proto/%.proto=$(B)/gen/%.pb-c.o)
TTOOL_SRC := $(sort $(wildcard tests/tools/*.c))
TTOOL_BIN := $(TTOOL_SRC:%.c=$(B)/%)

LIB_A   := $(B)/libckpt.a
LIB_SO  := $(B)/libckpt.so
CKPT    := $(B)/ckpt
CKPTFS  := $(B)/ckptfs

EXAMPLES := $(B)/examples/train $(B)/examples/multihost
# Handler plugins (ckpt/sys/handler.h): the example a user can copy, and the
# broken ones tests load. Shared objects calling back into the program that
# loads them, so the programs export libckpt's API: -rdynamic, and every
# object of the static library linked in (PLUGIN_HOST).
PLUGINS := $(B)/examples/handler_plugin.so $(patsubst tests/plugins/%.c,$(B)/tests/plugins/%.so,$(sort $(wildcard tests/plugins/*.c)))
PLUGIN_HOST := -rdynamic -Wl,--whole-archive $(LIB_A) -Wl,--no-whole-archive

# Man pages, generated from the programs' --help (tools/mkman.sh): one source.
MAN := $(B)/man/ckpt.1 $(if $(FS_SRC),$(B)/man/ckptfs.8)

all: $(LIB_A) $(LIB_SO) $(CKPT) $(if $(FS_SRC),$(CKPTFS)) $(B)/ckpt.pc $(EXAMPLES) $(PLUGINS) $(MAN)

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c $< -o $@

# The library exports only what its public headers mark CKPT_API (ckpt/common.h).
$(B)/core/%.o: core/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(CORE_INC) -fvisibility=hidden -MMD -MP -c $< -o $@

$(B)/fs/%.o: fs/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(FUSE_CFLAGS) -MMD -MP -c $< -o $@

$(LIB_A): $(CORE_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(CORE_OBJ)
	$(CC) -shared -Wl,-soname,libckpt.so.$(SOVERSION) $(LDFLAGS_ALL) -o $@ $^ $(LIBS)

$(CKPT): $(TOOLS_OBJ) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $(TOOLS_OBJ) $(PLUGIN_HOST) $(LIBS)

$(CKPTFS): $(FS_OBJ) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $(FS_OBJ) $(PLUGIN_HOST) $(FUSE_LIBS) $(LIBS)

$(B)/gen/%.pb-c.c $(B)/gen/%.pb-c.h: tests/proto/%.proto
	@mkdir -p $(B)/gen
	protoc-c --proto_path=tests/proto --c_out=$(B)/gen $<

# Generated code: compiled without our warning flags.
$(B)/gen/%.pb-c.o: $(B)/gen/%.pb-c.c
	$(CC) -std=c11 $(OPT) $(SAN) -fPIC $(DEP_CFLAGS) -I$(B)/gen -c $< -o $@

# Unit tests link the static library so they can reach private headers (-Icore).
# A test that loads plugins hosts them (TEST_HOST).
$(B)/tests/unit/%_test: tests/unit/%_test.c $(LIB_A) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(CORE_INC) -Itests -I$(B)/gen -o $@ $< $(PROTO_OBJ) \
	  $(if $(TEST_HOST),$(PLUGIN_HOST),$(LIB_A)) $(LDFLAGS_ALL) -lcmocka $(LIBS)
$(B)/tests/unit/handler_plugin_test $(B)/tests/tools/plugin_save: TEST_HOST := 1
$(B)/tests/unit/vnode_test: fs/vnode.c fs/view.h # it includes the daemon's file
$(B)/tests/unit/handler_plugin_test: $(PLUGINS)

# Test programs: public headers only, like a user's program.
$(B)/tests/tools/%: tests/tools/%.c $(LIB_A) $(PROTO_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -I$(B)/gen -o $@ $< $(PROTO_OBJ) $(if $(TEST_HOST),$(PLUGIN_HOST),$(LIB_A)) \
	  $(LDFLAGS_ALL) $(LIBS)

# Fuzz targets: built with a replay driver that runs every file of the corpus
# (libFuzzer's driver with LIBFUZZER=1).
$(B)/tests/fuzz/%_fuzzer: tests/fuzz/%_fuzzer.c tests/fuzz/replay.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) $(CORE_INC) -o $@ $< $(FUZZ_DRIVER) $(LIB_A) $(LDFLAGS_ALL) $(LIBS)

fuzz-targets: $(FUZZ_BIN)

# Long libFuzzer runs of every target (tests/fuzz/run.sh), one at a time, built in
# build-fuzz with clang, ASan and UBSan. FUZZ_SECONDS per target (default 600).
fuzz:
	$(MAKE) B=build-fuzz CC=clang SANITIZER=address,undefined LIBFUZZER=1 fuzz-targets
	B=$(abspath build-fuzz) bash tests/fuzz/run.sh

# The examples a user can copy (docs/examples/), built as a user would: public headers only.
$(B)/examples/%: docs/examples/%.c $(LIB_A)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -o $@ $< $(LIB_A) $(LDFLAGS_ALL) $(LIBS)

# Plugins: public headers only, libckpt not linked (the loading program provides it).
$(B)/examples/%.so: docs/examples/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $< $(LDFLAGS_ALL)

$(B)/tests/plugins/%.so: tests/plugins/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS_ALL) -shared -o $@ $< $(LDFLAGS_ALL)

# ckpt.pc names PREFIX: made again whenever PREFIX differs from the one it was made with
# (`make` then `make install PREFIX=/opt/ckpt` must not install /usr/local's).
$(B)/prefix.txt: FORCE
	@mkdir -p $(@D)
	@echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' > $@

$(B)/ckpt.pc: Makefile $(B)/prefix.txt
	@mkdir -p $(@D)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: ckpt\nDescription: ckptfs checkpoint library\nVersion: %s\nRequires.private: %s\nLibs: -L$${libdir} -lckpt\nCflags: -I$${includedir}\n' \
	  '$(PREFIX)' '$(VERSION)' '$(PKGS)' > $@

$(B)/man/ckpt.1: $(CKPT) tools/mkman.sh
	@mkdir -p $(@D)
	bash tools/mkman.sh ckpt $(CKPT) $(VERSION) > $@.tmp && mv $@.tmp $@

$(B)/man/ckptfs.8: $(CKPTFS) tools/mkman.sh
	@mkdir -p $(@D)
	bash tools/mkman.sh ckptfs $(CKPTFS) $(VERSION) > $@.tmp && mv $@.tmp $@

check: all $(UNIT_BIN) $(FUZZ_BIN) $(TTOOL_BIN)
	@bash tests/build/exports.sh $(LIB_SO) $(HEADERS) $(SYS_HEADERS)
	@bash tests/build/returns.sh $(HEADERS)
	@bash tests/build/layers.sh
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done
	@set -e; for f in $(FUZZ_BIN); do n=$$(basename $$f _fuzzer); \
	  echo "== fuzz replay $$n"; $$f tests/fuzz/corpus/$$n; done
	@set -e; for t in $(E2E); do echo "== $$t"; B=$(abspath $(B)) timeout 900 bash $$t; done
	@echo "make check: all passed"

unit: $(UNIT_BIN)
	@set -e; for t in $(UNIT_BIN); do echo "== $$t"; $$t; done

bench: all
	B=$(abspath $(B)) bash tests/bench/run.sh

# The reliability suite (tests/stress/run.sh): long versions of the checks make check runs short.
stress: all $(UNIT_BIN)
	B=$(abspath $(B)) bash tests/stress/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include/ckpt/sys \
	  $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(LIB_A) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/libckpt.so.$(SOVERSION)
	ln -sf libckpt.so.$(SOVERSION) $(DESTDIR)$(PREFIX)/lib/libckpt.so
	install -m 644 $(HEADERS) $(DESTDIR)$(PREFIX)/include/ckpt/
	install -m 644 $(SYS_HEADERS) $(DESTDIR)$(PREFIX)/include/ckpt/sys/
	install -m 644 $(B)/ckpt.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(CKPT) $(DESTDIR)$(PREFIX)/bin/
	if [ -f $(CKPTFS) ]; then install -m 755 $(CKPTFS) $(DESTDIR)$(PREFIX)/bin/; fi
	install -d $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/man/man8 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 644 $(B)/man/ckpt.1 $(DESTDIR)$(PREFIX)/share/man/man1/
	if [ -f $(B)/man/ckptfs.8 ]; then install -m 644 $(B)/man/ckptfs.8 $(DESTDIR)$(PREFIX)/share/man/man8/; fi
	install -m 644 tools/ckpt-completion.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/ckpt

DEB_PKGS := build-essential pkg-config libfuse3-dev fuse3 libsqlite3-dev libzstd-dev libcjson-dev zlib1g-dev \
            libprotobuf-c-dev protobuf-c-compiler libcmocka-dev attr python3-numpy \
            python3-h5py python3-zarr python3-msgpack python3-zstandard zstd strace \
            squashfuse squashfs-tools
deps:
	@bash tools/install-deps.sh $(DEB_PKGS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(B)

FORCE:

.PHONY: all check unit bench stress fuzz fuzz-targets install deps format clean FORCE
.SECONDARY: $(PROTO_OBJ) $(PROTO_OBJ:.o=.c) $(PROTO_OBJ:.o=.h)

-include $(shell find $(B) -name '*.d' 2>/dev/null)
