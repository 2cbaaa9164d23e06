# codeartsbuild: build the C core for one Lua (LUA=lua5.4 by default), test it, run the demo.
#   make            build build/<version>/codeartsbuild/core.so
#   make test       install what is missing (Debian/Ubuntu), build, run the busted suite
#   make demo       install, build, run examples/quickstart.lua against the bundled emulator
#   make test-all   the suite under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT, each with its own build
#   make static     build/<version>/libcodeartsbuild.a, for hosts that link the module in
#   make nvim       the Lua 5.1 build at lua/codeartsbuild/core.so: the checkout is a Neovim plugin
#   make deps       install the Debian packages the build and the tests need
#   make lint       luacheck and cppcheck
#   make clean

LUA ?= lua5.4
PKG_CONFIG ?= pkg-config

ifeq ($(LUA),luajit)
LUA_VERSION := luajit
LUA_PC := luajit
LUA_DEV := libluajit-5.1-dev
else
LUA_VERSION := $(patsubst lua%,%,$(LUA))
LUA_PC := lua$(LUA_VERSION)
LUA_DEV := $(if $(filter 5.1,$(LUA_VERSION)),liblua5.1-0-dev,liblua$(LUA_VERSION)-dev)
endif
ALL_LUAS := lua5.1 lua5.2 lua5.3 lua5.4 luajit

BUILD := build/$(LUA_VERSION)
MODULE := $(BUILD)/codeartsbuild/core.so
SOURCES := $(wildcard csrc/*.c)
HEADERS := $(wildcard csrc/*.h)
OBJECTS := $(patsubst csrc/%.c,$(BUILD)/obj/%.o,$(SOURCES))

CFLAGS ?= -O2 -g
WARNINGS := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes
MODULE_CFLAGS := -std=c99 -D_POSIX_C_SOURCE=200809L -fPIC -fvisibility=hidden $(WARNINGS) \
	$(shell $(PKG_CONFIG) --cflags $(LUA_PC) libcurl openssl 2>/dev/null)
# The module never links liblua: the host that loads it provides the Lua API.
MODULE_LIBS := $(shell $(PKG_CONFIG) --libs libcurl libcrypto 2>/dev/null || echo -lcurl -lcrypto)

BUSTED := $(LUA) /usr/bin/busted
LUA_ENV := LUA_PATH='lua/?.lua;lua/?/init.lua;;' LUA_CPATH='$(BUILD)/?.so;;'

# The suite also builds the Neovim module (Lua 5.1 headers), runs it in Neovim, and packs the rock
# for Lua 5.1 too.
DEB_PACKAGES := gcc make pkg-config $(LUA) $(LUA_DEV) lua-cjson lua-busted lua-check luarocks \
	libcurl4-openssl-dev libssl-dev python3 openssl curl cppcheck git \
	lua5.1 liblua5.1-0-dev neovim
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

STATIC := $(BUILD)/libcodeartsbuild.a
EMBED := examples/embed/embed

.PHONY: all static embed-example nvim test test-all demo deps lint clean

all: $(MODULE)

$(BUILD)/obj/%.o: csrc/%.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(MODULE_CFLAGS) -c -o $@ $<

$(MODULE): $(OBJECTS)
	@mkdir -p $(dir $@)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJECTS) $(MODULE_LIBS)

static: $(STATIC)

$(STATIC): $(OBJECTS)
	$(AR) rcs $@ $(OBJECTS)

# A Lua 5.4 host with the module linked in (examples/embed/main.c); the suite builds and runs it.
$(EMBED): examples/embed/main.c csrc/codeartsbuild.h $(STATIC)
	$(CC) $(CFLAGS) -std=c99 $(WARNINGS) -Icsrc $(shell $(PKG_CONFIG) --cflags $(LUA_PC)) -o $@ $< $(STATIC) \
		$(shell $(PKG_CONFIG) --libs $(LUA_PC)) $(MODULE_LIBS) -lm

embed-example: $(EMBED)

# Neovim (LuaJIT) loads the module built against the PUC 5.1 headers; it finds it in the
# plugin's lua/ folder.
nvim:
	@$(MAKE) --no-print-directory LUA=lua5.1 all
	@# A new file, not overwritten in place: a running Neovim may have the old one mapped.
	cp build/5.1/codeartsbuild/core.so lua/codeartsbuild/core.so.new
	mv -f lua/codeartsbuild/core.so.new lua/codeartsbuild/core.so

deps:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

test: deps
	@$(MAKE) --no-print-directory all
	$(BUSTED)

# The soak test runs once, under the default Lua (make test); the other runs leave it out.
test-all:
	@for lua in $(ALL_LUAS); do $(MAKE) --no-print-directory LUA=$$lua deps || exit 1; done
	@status=0; for lua in $(ALL_LUAS); do \
		echo "== $$lua"; \
		$(MAKE) --no-print-directory LUA=$$lua all || exit 1; \
		tags=; [ $$lua = $(LUA) ] || tags=--exclude-tags=soak; \
		$$lua /usr/bin/busted $$tags || status=1; \
	done; exit $$status

demo: deps
	@$(MAKE) --no-print-directory all
	$(LUA_ENV) spec/support/with-emulator --tls -- $(LUA) examples/quickstart.lua

lint:
	luacheck lua spec examples
	cppcheck --quiet --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
		$(shell $(PKG_CONFIG) --cflags-only-I libcurl 2>/dev/null) csrc

clean:
	rm -rf build $(EMBED)
