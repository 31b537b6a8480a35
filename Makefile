# csvup: `make` builds the C module; `make demo` and `make test` set up a fresh
# Debian 12 machine first (see `deps`). Every path can be overridden.
LUA ?= lua5.4
LUA_VERSION ?= 5.4
LUA_PKG ?= lua$(LUA_VERSION)
PKG_CONFIG ?= pkg-config
CC ?= cc
CFLAGS ?= -O2 -g
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build/lua$(LUA_VERSION)
LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
BINDIR ?= $(PREFIX)/bin
MANDIR ?= $(PREFIX)/share/man

DEBIAN_PACKAGES = gcc make pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev \
	lua-cjson lua-argparse lua-busted lua-socket luarocks nginx openssl valgrind clang libclang-rt-14-dev curl \
	libnginx-mod-http-lua libluajit2-5.1-dev luajit2 lua-check libsqlite3-dev sqlite3 lua-ldoc vmtouch \
	libssl-dev strace time

# Deferred (=), so that pkg-config runs after `deps` has installed it.
MODULE_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden \
	-Wall -Wextra -Werror $(shell $(PKG_CONFIG) --cflags $(LUA_PKG) libcurl sqlite3 libcrypto)
# Never link liblua: the interpreter that loads the module provides it.
MODULE_LIBS = $(shell $(PKG_CONFIG) --libs libcurl sqlite3 libcrypto) -lpthread -lm

SOURCES = $(wildcard src/*.c)
HEADERS = $(wildcard src/*.h)
OBJECTS = $(SOURCES:src/%.c=$(BUILD)/obj/%.o)
MODULE = $(BUILD)/csvup/core.so
LUA_MODULES = $(shell find lua/csvup -name '*.lua')

export LUA_PATH = $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export LUA_CPATH = $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps test demo bench check-asan check-valgrind fuzz luajit install install-luajit docs clean

all: $(MODULE)

$(BUILD)/obj/%.o: src/%.c $(HEADERS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(MODULE_CFLAGS) -c $< -o $@

$(MODULE): $(OBJECTS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -shared -o $@ $(OBJECTS) $(LDFLAGS) $(MODULE_LIBS)

# Installs the Debian packages that are missing, and nothing when none is.
deps:
	@missing=; for p in $(DEBIAN_PACKAGES); do \
	  dpkg-query -W -f '$${Status}\n' $$p 2>/dev/null | grep -q 'ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  sudo=; [ "$$(id -u)" = 0 ] || sudo=sudo; \
	  echo "installing:$$missing"; \
	  $$sudo apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$sudo apt-get install -y -qq $$missing; \
	fi

test: deps
	$(MAKE) --no-print-directory $(MODULE) luajit
	@test "$$(nm -D --defined-only $(MODULE) | awk '$$2 == "T" { print $$3 }')" = luaopen_csvup_core \
	  || { echo "core.so exports more than luaopen_csvup_core"; exit 1; }
	luacheck -q lua spec
	busted
	sh spec/packaging.sh

demo: deps
	$(MAKE) --no-print-directory $(MODULE)
	sh spec/examples/demo.sh

# The whole spec suite against a module built with AddressSanitizer and
# UBSan (preloaded into the uninstrumented lua5.4); any report fails it.
# Leaks are valgrind's part: the interpreter exits without freeing its state.
ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
check-asan: deps
	$(MAKE) --no-print-directory luajit
	$(MAKE) --no-print-directory BUILD=build/asan CFLAGS="$(ASAN_FLAGS)" LDFLAGS="$(ASAN_FLAGS)" build/asan/csvup/core.so
	LD_PRELOAD="$$($(CC) -print-file-name=libasan.so)" ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CSVUP_BUILD=build/asan busted --cpath="build/asan/?.so"

# The whole spec suite under memcheck, child lua5.4 processes included (the
# sandbox, pure Lua serving the specs, LuaJIT, whose JIT code memcheck
# misreads, and the tools the specs call are skipped).
# The tools the specs call, which memcheck skips (their own leaks are not csvup's).
VALGRIND_SKIP_TOOLS = script ls id kill mkdir rm truncate yes head seq sleep make nginx openssl luajit python3 \
	tar sort git cc gcc cc1 as ld collect2 luarocks groff man ldoc sqlite3 cp find cat grep sed env mktemp stty \
	timeout printf wc tr cut curl strace install chown mount umount dd
empty =
comma = ,
VALGRIND_SKIP = $(subst $(empty) $(empty),$(comma),$(strip $(VALGRIND_SKIP_TOOLS:%=*/%)))
check-valgrind: deps
	$(MAKE) --no-print-directory $(MODULE) luajit
	valgrind --quiet --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
	  --show-leak-kinds=definite --trace-children=yes --trace-children-skip-by-arg=sandbox \
	  --trace-children-skip='$(VALGRIND_SKIP)' \
	  $(LUA) $$(command -v busted) --ignore-lua

# libFuzzer targets for the C that parses or encodes; each runs FUZZ_SECONDS.
# Seeds are spec/fuzz/corpus/<target>; what the fuzzers find stays in build/.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS = utf8 number csv json scan reader check pass chain
FUZZ_CFLAGS = -g -O1 -fsanitize=fuzzer,address,undefined -Isrc
# a target that includes a source file (to reach its static functions) must not link it too
FUZZ_INCLUDES_number = src/csv.c

build/fuzz/fuzz_%: spec/fuzz/fuzz_%.c $(SOURCES) $(HEADERS)
	@mkdir -p $(@D)
	clang $(FUZZ_CFLAGS) $(shell $(PKG_CONFIG) --cflags lua$(LUA_VERSION) libcurl sqlite3 libcrypto) -o $@ $< \
	  $(filter-out $(FUZZ_INCLUDES_$*),$(SOURCES)) -llua$(LUA_VERSION) $(MODULE_LIBS)

fuzz: deps
	$(MAKE) --no-print-directory $(FUZZ_TARGETS:%=build/fuzz/fuzz_%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  echo "fuzz_$$t: $(FUZZ_SECONDS) s"; \
	  build/fuzz/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/$$t- \
	    build/fuzz/corpus/$$t spec/fuzz/corpus/$$t >build/fuzz/$$t.log 2>&1 \
	    || { tail -40 build/fuzz/$$t.log; exit 1; }; \
	  grep -E '^Done|#[0-9]+ *DONE' build/fuzz/$$t.log | tail -1; \
	done

# Figures, never pass/fail: see the README's Performance section.
bench: deps
	$(MAKE) --no-print-directory $(MODULE) luajit
	@mkdir -p build/bench
	@echo "csvup $$(git describe --always 2>/dev/null), $$(nproc) cores, $$(uname -sr), $$(date -u +%F)"
	@LUA_PATH="lua/?.lua;lua/?/init.lua;spec/?.lua;;" $(LUA) spec/bench/run.lua

# The same sources against LuaJIT 2.1, for OpenResty: build/luajit/csvup/core.so.
luajit:
	$(MAKE) --no-print-directory BUILD=build/luajit LUA_PKG=luajit build/luajit/csvup/core.so

# The library for OpenResty; the command and its man page are the Lua 5.4 install's.
install-luajit:
	$(MAKE) --no-print-directory BUILD=build/luajit LUA_PKG=luajit LUA_VERSION=5.1 MAN_PAGE= install

# The API reference (LDoc, from stubs that csvup.docs writes: the client
# methods exist only at run time) and the man page (from the parser of --help).
DOCS = build/docs
docs: $(DOCS)/api/index.html $(DOCS)/csvup.1

$(DOCS)/api/index.html: $(MODULE) $(LUA_MODULES)
	@rm -rf $(DOCS)/ldoc $(DOCS)/api && mkdir -p $(DOCS)/ldoc
	$(LUA) -e 'assert(require("csvup.docs").write_ldoc_input("$(DOCS)/ldoc"))'
	ldoc -q -c $(DOCS)/ldoc/config.ld -d $(CURDIR)/$(DOCS)/api .
	@# LDoc's page template leaves the product name empty: the project's name and description
	sed -i 's|<big><b></b></big>|<big><b>csvup</b></big>|; s|<div id="product_description"></div>|<div id="product_description">Upload CSV data to Yandex Metrica and Carrot quest</div>|' \
	  $(DOCS)/api/index.html $(DOCS)/api/*/*.html

# Needs only the module and lua-argparse, so that `make install` needs no ldoc.
$(DOCS)/csvup.1: $(MODULE) $(LUA_MODULES)
	@mkdir -p $(@D)
	$(LUA) -e 'io.write(require("csvup.docs").man_page())' >$@.tmp && mv $@.tmp $@

# The installed csvup finds the modules beside it (PREFIX/share, PREFIX/lib):
# no LUA_PATH needed, whatever PREFIX is.
MAN_PAGE = $(DOCS)/csvup.1
install: $(MODULE) $(MAN_PAGE)
	install -d "$(DESTDIR)$(LIBDIR)/csvup" "$(DESTDIR)$(BINDIR)"
	install -m 755 $(MODULE) "$(DESTDIR)$(LIBDIR)/csvup/core.so"
	for f in $(LUA_MODULES:lua/%=%); do install -D -m 644 lua/$$f "$(DESTDIR)$(SHAREDIR)/$$f"; done
	install -m 755 lua/bin/csvup "$(DESTDIR)$(BINDIR)/csvup"
	$(if $(MAN_PAGE),install -D -m 644 $(MAN_PAGE) "$(DESTDIR)$(MANDIR)/man1/csvup.1")

clean:
	rm -rf build
