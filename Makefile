# codeartsbuild: build the C core for one Lua (LUA=lua5.4 by default), test it, run the demo.
#   make            build build/<version>/codeartsbuild/core.so
#   make test       install what is missing (Debian/Ubuntu), build, run the busted suite (all but
#                   the #soak specs, which `make test-soak` and .ci/run run)
#   make demo       install what the demo needs, build, run examples/quickstart.lua against the
#                   bundled emulator
#   make test-all   the suite under Lua 5.1, 5.2, 5.3, 5.4 and LuaJIT, each with its own build
#   make env        prints the LUA_PATH_5_4/LUA_CPATH_5_4 (...) exports that run the checkout's module
#   make static     build/<version>/libcodeartsbuild.a, for hosts that link the module in
#   make nvim       the Lua 5.1 build at lua/codeartsbuild/core.so: the checkout is a Neovim plugin
#   make deps       install the Debian packages the build and the tests need
#   make lint       luacheck and cppcheck
#   make clean      leaves the tree as cloned (build/, what `luarocks make` and `make nvim` left)

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

# The suite also builds the Neovim module (Lua 5.1 headers), runs it in Neovim, packs the rock
# for Lua 5.1 too, runs the shell completions in bash and zsh and the man page through groff, and
# talks HTTP/2 to nginx (spec/http2_spec.lua: the emulator speaks HTTP/1.1 only).
DEB_PACKAGES := gcc make pkg-config $(LUA) $(LUA_DEV) lua-cjson lua-busted lua-check luarocks \
	libcurl4-openssl-dev libssl-dev python3 openssl curl cppcheck git \
	lua5.1 liblua5.1-0-dev neovim bash zsh groff-base nginx-light lua-socket
# What `make demo` needs, and no more: the build, lua-cjson, and the emulator's python3, openssl, curl.
DEMO_DEB_PACKAGES := gcc make pkg-config $(LUA) $(LUA_DEV) lua-cjson libcurl4-openssl-dev libssl-dev \
	python3 openssl curl
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

STATIC := $(BUILD)/libcodeartsbuild.a
EMBED := examples/embed/embed

.PHONY: all static embed-example nvim test test-soak test-all deps-all demo deps deps-demo lint clean env

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
NVIM_MODULE := lua/codeartsbuild/core.so

nvim:
	@$(MAKE) --no-print-directory LUA=lua5.1 all
	@$(MAKE) --no-print-directory $(NVIM_MODULE)

# A new file renamed over the old one, never overwritten in place: a running Neovim may have the
# old one mapped. The new file's name ends with the shell's PID: specs running side by side (and
# CI's lanes) may all run `make nvim` at once.
$(NVIM_MODULE): build/5.1/codeartsbuild/core.so
	cp $< $@.$$$$ && mv -f $@.$$$$ $@

deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEB_PACKAGES)"

deps-demo:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(DEMO_DEB_PACKAGES)"

.PHONY: install-packages
install-packages:
	@missing=$$(for p in $(PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# The #soak specs (20,000 requests through one client; a 100,000-build walk whose memory must
# stay flat) take minutes: `make test-soak` runs them, and .ci/run does.
# The suite runs as one busted per spec file, TEST_JOBS at a time (spec/support/busted-parallel):
# the specs mostly wait on servers and child processes.
TEST_JOBS ?= 2
PARALLEL = spec/support/busted-parallel $(TEST_JOBS)

# The Neovim build too, before the specs that use it run side by side: each would build it.
test: deps
	@$(MAKE) --no-print-directory all nvim
	$(PARALLEL) $(BUSTED) --exclude-tags=soak

test-soak: deps
	@$(MAKE) --no-print-directory all
	$(BUSTED) --tags=soak

# make test-all: make test (the default Lua, all but the soak), then the suite under each other
# interpreter, one target each (test-lua5.1, ...), so that `make -j2 -O test-all` runs two at a
# time. Those runs leave out the soak (slow) and the specs tagged "once": they test a host that
# does not depend on the Lua running busted (the emulator, Neovim, the C program embedding 5.4).
OTHER_LUAS := $(filter-out $(LUA),$(ALL_LUAS))

test-all: test $(addprefix test-,$(OTHER_LUAS))

deps-all:
	@for lua in $(ALL_LUAS); do $(MAKE) --no-print-directory LUA=$$lua deps || exit 1; done

$(addprefix test-,$(OTHER_LUAS)): test-%: deps-all
	@$(MAKE) --no-print-directory LUA=$* all
	@echo "== $*"
	$(PARALLEL) $* /usr/bin/busted --exclude-tags=soak,once

demo: deps-demo
	@$(MAKE) --no-print-directory all
	$(LUA_ENV) spec/support/with-emulator --tls -- $(LUA) examples/quickstart.lua
	@echo
	@echo "the module is in $(BUILD)/; bin/codeartsbuild uses it. Next: the README's Quickstart."

# eval "$(make -s env)": the checkout's modules for $(LUA), in the variables only that Lua reads
# (LUA_PATH_5_4, ...; Lua 5.1 and LuaJIT read LUA_PATH and LUA_CPATH, and get those).
ENV_SUFFIX := $(if $(filter 5.1 luajit,$(LUA_VERSION)),,_$(subst .,_,$(LUA_VERSION)))
env:
	@echo "export LUA_PATH$(ENV_SUFFIX)='$(CURDIR)/lua/?.lua;$(CURDIR)/lua/?/init.lua;;'" \
		"LUA_CPATH$(ENV_SUFFIX)='$(CURDIR)/$(BUILD)/?.so;;'"

lint:
	luacheck lua spec examples bin plugin types
	cppcheck --quiet --enable=warning,performance,portability --inline-suppr --error-exitcode=1 \
		$(shell $(PKG_CONFIG) --cflags-only-I libcurl 2>/dev/null) csrc

# As cloned: also what `luarocks make` leaves (./codeartsbuild/core.so, which a Lua started here
# would find first through ./?.so, and csrc/*.o) and `make nvim`'s lua/codeartsbuild/core.so.
clean:
	rm -rf build $(EMBED) codeartsbuild/core.so csrc/*.o $(NVIM_MODULE) $(NVIM_MODULE).*
	@rmdir codeartsbuild 2>/dev/null || true

# ---------------------------------------------------------------------------------------------
# Hardening (issue 4): memory checks and fuzzing. Slow, so not part of `make test`.
#   make check-memory   the suite under valgrind, under ASan+UBSan, and with an aggressive GC
#                       (check-valgrind, check-asan and check-gc run one pass each)
#   make fuzz           each libFuzzer harness of spec/fuzz/ for FUZZ_SECONDS (default 60)
#   make fuzz-crashes   replays the saved crashes of spec/fuzz/crashes/ (fails while one crashes)
#   make wipecheck      build/<version>/wipecheck, the secret-wipe checker spec/secrets_spec.lua runs
#   make deps-check     the Debian packages these need
# spec/fuzz/README.md says more.

CHECK_DEB_PACKAGES := valgrind clang libclang-rt-14-dev gcc libasan8 libubsan1 $(LUA_DEV) lua-cjson

# The #soak specs (20,000 and 100,000 requests, memory must stay flat) take minutes under
# valgrind, and ASan's quarantine grows the RSS on purpose: the three passes leave them out; the
# #timing specs too (a rate of 2,000 requests a second, the CPU of a wait: under valgrind the
# client itself is too slow for them), and the #once specs too (their hosts, the emulator, Neovim
# and the C example, run in processes the checks do not follow), and the #builds specs (luarocks
# compiling the module in child processes: two minutes under each check, nothing checked).
CHECK_BUSTED_FLAGS := --exclude-tags=soak,once,timing,builds

VALGRIND := valgrind --quiet --error-exitcode=1 --leak-check=full \
	--show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect --num-callers=40

# The sanitizer build uses gcc: its -fsanitize runtime is a shared library (libasan.so) that can be
# preloaded into the uninstrumented lua5.4; float-cast-overflow is not in gcc's "undefined" group.
SAN_CC := gcc
SAN_FLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-omit-frame-pointer
SAN_BUILD := build/asan-$(LUA_VERSION)
SAN_PRELOAD = $(shell $(SAN_CC) -print-file-name=libasan.so):$(CURDIR)/$(SAN_BUILD)/unpreload.so
SAN_ENV = CODEARTSBUILD_BUILD_DIR=$(SAN_BUILD) CODEARTSBUILD_PRELOAD='$(SAN_PRELOAD)' LD_PRELOAD='$(SAN_PRELOAD)' \
	ASAN_OPTIONS=detect_leaks=1:detect_stack_use_after_return=1:check_initialization_order=1:strict_init_order=1 \
	LSAN_OPTIONS=use_tls=0:print_suppressions=0:suppressions=$(CURDIR)/spec/fuzz/lsan.supp \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1

FUZZ_CC := clang
FUZZ_BUILD := build/fuzz-$(LUA_VERSION)
FUZZ_HARNESSES := fuzz_record fuzz_headers fuzz_sign
FUZZ_SECONDS ?= 60
FUZZ_CFLAGS := -g -O1 -std=c99 -D_POSIX_C_SOURCE=200809L -Wall -Wextra \
	-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# One process each (no -jobs/-fork): the machine is shared. Inputs it finds go to the scratch
# corpus in $(FUZZ_BUILD); spec/fuzz/corpus/ holds the seeds and is only read.
FUZZ_RUN_FLAGS := -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
	-print_final_stats=1

WIPECHECK := $(BUILD)/wipecheck

.PHONY: deps-check check-memory check-valgrind check-asan check-gc fuzz fuzz-build fuzz-crashes wipecheck

deps-check: deps
	@missing=$$(for p in $(CHECK_DEB_PACKAGES); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | \
		grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing:" $$missing; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

# All three passes run even when one fails; each says how long it took.
check-memory: deps-check
	@$(MAKE) --no-print-directory all
	@status=0; for check in check-valgrind check-asan check-gc; do \
		start=$$(date +%s); \
		if $(MAKE) --no-print-directory $$check; then result=passed; else result=FAILED; status=1; fi; \
		echo "== $$check: $$result in $$(( $$(date +%s) - start )) s"; \
	done; exit $$status

check-valgrind: all
	$(PARALLEL) $(VALGRIND) $(BUSTED) $(CHECK_BUSTED_FLAGS)

check-asan: all $(SAN_BUILD)/unpreload.so
	@$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) CC=$(SAN_CC) CFLAGS="-O1 -g $(SAN_FLAGS)" \
		LDFLAGS="$(SAN_FLAGS)" all
	$(PARALLEL) env $(SAN_ENV) $(BUSTED) $(CHECK_BUSTED_FLAGS)

$(SAN_BUILD)/unpreload.so: spec/fuzz/unpreload.c
	@mkdir -p $(dir $@)
	$(SAN_CC) -shared -fPIC -O1 -std=c99 -D_POSIX_C_SOURCE=200809L $(WARNINGS) -o $@ $<

check-gc: all
	$(PARALLEL) $(BUSTED) --helper=spec/support/aggressive_gc.lua $(CHECK_BUSTED_FLAGS)

wipecheck: $(WIPECHECK)

$(WIPECHECK): spec/fuzz/wipe_check.c $(OBJECTS)
	$(CC) $(CFLAGS) -std=c99 $(WARNINGS) $(shell $(PKG_CONFIG) --cflags $(LUA_PC)) -rdynamic -o $@ $< \
		$(OBJECTS) $(shell $(PKG_CONFIG) --libs $(LUA_PC)) $(MODULE_LIBS) -ldl -lm

fuzz-build: $(FUZZ_HARNESSES:%=$(FUZZ_BUILD)/%)

RECORD_SOURCES := csrc/record.c csrc/reader.c csrc/envelope.c

$(FUZZ_BUILD)/fuzz_record: spec/fuzz/fuzz_record.c $(RECORD_SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(shell $(PKG_CONFIG) --cflags $(LUA_PC)) -o $@ spec/fuzz/fuzz_record.c $(RECORD_SOURCES) \
		$(shell $(PKG_CONFIG) --libs $(LUA_PC)) -lm

# fuzz_headers includes csrc/response.c itself, to reach its static header parsing.
$(FUZZ_BUILD)/fuzz_headers: spec/fuzz/fuzz_headers.c csrc/response.c csrc/buffer.c csrc/codes.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(shell $(PKG_CONFIG) --cflags libcurl openssl) -o $@ spec/fuzz/fuzz_headers.c \
		csrc/buffer.c csrc/codes.c $(MODULE_LIBS)

$(FUZZ_BUILD)/fuzz_sign: spec/fuzz/fuzz_sign.c csrc/sign.c csrc/buffer.c $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(shell $(PKG_CONFIG) --cflags openssl) -o $@ spec/fuzz/fuzz_sign.c csrc/sign.c \
		csrc/buffer.c $(MODULE_LIBS)

# Each harness in turn; its full log is in $(FUZZ_BUILD)/<harness>.log, a crash input in
# $(FUZZ_BUILD)/artifacts/. All harnesses run even when one finds something.
fuzz: deps-check fuzz-build
	@status=0; for h in $(FUZZ_HARNESSES); do \
		mkdir -p $(FUZZ_BUILD)/corpus/$$h $(FUZZ_BUILD)/artifacts spec/fuzz/corpus/$$h; \
		echo "== $$h: fuzzing for $(FUZZ_SECONDS) s"; \
		if UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_BUILD)/$$h $(FUZZ_RUN_FLAGS) -dict=spec/fuzz/$$h.dict \
			-artifact_prefix=$(FUZZ_BUILD)/artifacts/$$h- $(FUZZ_BUILD)/corpus/$$h spec/fuzz/corpus/$$h \
			>$(FUZZ_BUILD)/$$h.log 2>&1; then \
			grep -E '^(Done|stat::number_of_executed_units|stat::new_units_added)' $(FUZZ_BUILD)/$$h.log; \
		else \
			status=1; echo "== $$h FOUND SOMETHING:"; \
			sed -n '/^==[0-9]*==ERROR\|runtime error\|^fuzz_\|deadly signal/,$$p' $(FUZZ_BUILD)/$$h.log | head -60; \
		fi; \
	done; exit $$status

fuzz-crashes: fuzz-build
	@status=0; for h in $(FUZZ_HARNESSES); do \
		for f in spec/fuzz/crashes/$$h/*; do \
			[ -f "$$f" ] || continue; \
			if UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_BUILD)/$$h "$$f" >$(FUZZ_BUILD)/replay.log 2>&1; then echo "fixed:   $$f"; \
			else echo "crashes: $$f"; status=1; fi; \
		done; \
	done; exit $$status

# ---------------------------------------------------------------------------------------------
# For people at the keyboard (issue 7): the REPL and the API reference.
#   make repl   lua5.4 -i with the module on the path and `client` connected to the bundled emulator
#   make docs   the API reference into docs/ (LDoc, Debian's lua-ldoc), and the man page and the
#               shell completions into share/; both are committed, and spec/docs_spec.lua and
#               spec/cli_spec.lua check that they are what the sources give
DEB_PACKAGES += lua-ldoc lua-markdown
# lua-markdown is packaged for Lua 5.1 only: LDoc runs under lua5.1 to find it.
LDOC := lua5.1 /usr/bin/ldoc
LDOC_OUTPUT := docs/index.html docs/ldoc.css docs/modules docs/examples

.PHONY: repl docs

repl: deps
	@$(MAKE) --no-print-directory -s all
	@$(LUA_ENV) spec/support/with-emulator -- $(LUA) -i examples/repl.lua

# The man page and the shell completions, made by the command-line tool from its own table of
# commands (spec/cli_spec.lua checks that they are what it makes); the rock copies share/.
SHARE_OUTPUT := share/man/man1/codeartsbuild.1 share/bash-completion/completions/codeartsbuild \
	share/zsh/site-functions/_codeartsbuild

docs: deps
	rm -rf $(LDOC_OUTPUT)
	$(LDOC) --testing --quiet .
	@$(MAKE) --no-print-directory -s all
	@mkdir -p $(dir $(SHARE_OUTPUT))
	$(LUA_ENV) $(LUA) bin/codeartsbuild man > share/man/man1/codeartsbuild.1
	$(LUA_ENV) $(LUA) bin/codeartsbuild completion bash > share/bash-completion/completions/codeartsbuild
	$(LUA_ENV) $(LUA) bin/codeartsbuild completion zsh > share/zsh/site-functions/_codeartsbuild

# ---------------------------------------------------------------------------------------------
# Benchmarks (issues 6 and 15), not part of `make test`; bench/README.md says more.
#   make bench         wrk, h2load, curl and codeartsbuild against nginx on this machine, over plain
#                      HTTP, over TLS, and over TLS through a latency proxy (20 and 80 ms round
#                      trips): bench/RESULTS.md, bench/results.png, bench/distance.png; about 10
#                      minutes (BENCH_FLAGS="--only distance ..." passes options to bench/run.py)
#   make bench-engine  the CPU of a blocking wait and the accuracy of `rate`: bench/ENGINE.md
#   make bench-micro   callgrind instruction counts of signing one request and decoding and
#                      normalising one record (BENCH_MICRO_FLAGS="--annotate --time")
BENCH_DEB_PACKAGES := $(LUA) $(LUA_DEV) lua-cjson lua-system python3 curl nginx-light wrk gnuplot-nox time \
	valgrind nghttp2-client openssl
BENCH_MICRO := $(BUILD)/bench/micro
# The distance bench's latency proxy (one for every Lua build: it does not link Lua).
LATENCY_PROXY := build/bench/latency_proxy

.PHONY: bench bench-micro bench-engine

bench:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_DEB_PACKAGES)"
	@$(MAKE) --no-print-directory all $(LATENCY_PROXY)
	python3 bench/run.py $(BENCH_FLAGS)

$(LATENCY_PROXY): bench/latency_proxy.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c99 $(WARNINGS) -o $@ $<

# The engine's waits and rate (bench/engine.lua), into bench/ENGINE.md; about a minute.
bench-engine:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_DEB_PACKAGES)"
	@$(MAKE) --no-print-directory all
	LUA_PATH='lua/?.lua;lua/?/init.lua;./?.lua;;' LUA_CPATH='$(BUILD)/?.so;;' $(LUA) bench/engine.lua > bench/ENGINE.md.new
	mv bench/ENGINE.md.new bench/ENGINE.md

bench-micro:
	@$(MAKE) --no-print-directory deps DEB_PACKAGES="$(BENCH_DEB_PACKAGES)"
	@$(MAKE) --no-print-directory $(BENCH_MICRO)
	python3 bench/micro.py $(BENCH_MICRO) $(BENCH_MICRO_FLAGS)

# The micro benchmark links the module's own objects: it measures exactly what core.so runs.
$(BENCH_MICRO): bench/micro.c $(BUILD)/obj/sign.o $(BUILD)/obj/record.o $(BUILD)/obj/reader.o $(BUILD)/obj/envelope.o \
		$(BUILD)/obj/buffer.o $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -std=c99 -D_POSIX_C_SOURCE=200809L $(WARNINGS) -Icsrc $(shell $(PKG_CONFIG) --cflags $(LUA_PC)) \
		-o $@ bench/micro.c $(filter %.o,$^) $(shell $(PKG_CONFIG) --libs $(LUA_PC)) $(MODULE_LIBS) -lm
