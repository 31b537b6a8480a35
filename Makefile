# csvup: `make` builds the C module; `make demo` and `make test` set up a fresh
# Debian 12 machine first (see `deps`). Every path can be overridden.
LUA ?= lua5.4
LUA_VERSION ?= 5.4
PKG_CONFIG ?= pkg-config
CC ?= cc
CFLAGS ?= -O2 -g
PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build/lua$(LUA_VERSION)
LIBDIR ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
SHAREDIR ?= $(PREFIX)/share/lua/$(LUA_VERSION)
BINDIR ?= $(PREFIX)/bin

DEBIAN_PACKAGES = gcc make pkg-config lua5.4 liblua5.4-dev libcurl4-openssl-dev \
	lua-cjson lua-busted lua-socket luarocks

# Deferred (=), so that pkg-config runs after `deps` has installed it.
MODULE_CFLAGS = -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden \
	-Wall -Wextra -Werror $(shell $(PKG_CONFIG) --cflags lua$(LUA_VERSION) libcurl)
# Never link liblua: the interpreter that loads the module provides it.
MODULE_LIBS = $(shell $(PKG_CONFIG) --libs libcurl) -lpthread -lm

SOURCES = $(wildcard src/*.c)
HEADERS = $(wildcard src/*.h)
OBJECTS = $(SOURCES:src/%.c=$(BUILD)/obj/%.o)
MODULE = $(BUILD)/csvup/core.so
LUA_MODULES = $(shell find lua/csvup -name '*.lua')

export LUA_PATH = $(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;
export LUA_CPATH = $(CURDIR)/$(BUILD)/?.so;;

.PHONY: all deps test demo bench install clean

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
	$(MAKE) --no-print-directory $(MODULE)
	@test "$$(nm -D --defined-only $(MODULE) | awk '$$2 == "T" { print $$3 }')" = luaopen_csvup_core \
	  || { echo "core.so exports more than luaopen_csvup_core"; exit 1; }
	busted
	sh spec/packaging.sh

demo: deps
	$(MAKE) --no-print-directory $(MODULE)
	sh spec/examples/demo.sh

# Figures, never pass/fail: see the README's Performance section.
bench: deps
	$(MAKE) --no-print-directory $(MODULE)
	@mkdir -p build/bench
	$(LUA) spec/bench/csv_bench.lua build/bench

install: $(MODULE)
	install -d $(DESTDIR)$(LIBDIR)/csvup $(DESTDIR)$(BINDIR)
	install -m 755 $(MODULE) $(DESTDIR)$(LIBDIR)/csvup/core.so
	for f in $(LUA_MODULES:lua/%=%); do install -D -m 644 lua/$$f $(DESTDIR)$(SHAREDIR)/$$f; done
	install -m 755 lua/bin/csvup $(DESTDIR)$(BINDIR)/csvup

clean:
	rm -rf build
