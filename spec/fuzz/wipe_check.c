/* Not a fuzzer: a Lua host that proves the module wipes its secrets before freeing them
 * (issue 4, part 5). spec/secrets_spec.lua builds it (make wipecheck) and runs it.
 *
 *   build/<version>/wipecheck 'lua code'
 *
 * The module's objects are linked into this program, and this program defines free() and
 * realloc() itself, so every free in the process - the module's, libcurl's, OpenSSL's, Lua's
 * - comes through here first. Before a block goes back to the C library it is searched for the
 * secrets the Lua code registered with wipecheck.watch(s); a hit is counted against whoever
 * called free (found with dladdr on the return address). Then the block is zeroed, so a later
 * owner of the same memory never inherits stale bytes and a hit always belongs to the code that
 * freed the block. realloc is done as malloc + copy + free for the same reason.
 *
 * wipecheck.report() returns {checked =, module =, libcurl =, openssl =, lua =, other =}: the
 * number of frees seen and, per owner, of blocks freed with a secret still inside. Only
 * `module` is the module's own doing; the others are reported for information (a Lua string
 * holding an option the caller passed is freed by Lua, unwiped, whatever the module does). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <execinfo.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

int luaopen_codeartsbuild_core(lua_State *L);

#define MAX_SECRETS 16

enum { OWNER_MODULE, OWNER_CURL, OWNER_OPENSSL, OWNER_LUA, OWNER_OTHER, OWNERS };
static const char *const owner_names[OWNERS] = {"module", "libcurl", "openssl", "lua", "other"};

static void (*real_free)(void *);
static char *secrets[MAX_SECRETS];
static size_t secret_lens[MAX_SECRETS];
static int secret_count;
static unsigned long hits[OWNERS], checked;
static void *self_base; /* where this program (the module's objects) is loaded */
static int verbose;

/* Which library the code at this address belongs to. */
static int owner_of(const void *addr)
{
	Dl_info info;
	const char *name;

	if (!dladdr(addr, &info) || info.dli_fname == NULL)
		return OWNER_OTHER;
	if (info.dli_fbase == self_base)
		return OWNER_MODULE; /* this program is the module's objects plus this file */
	name = info.dli_fname;
	if (strstr(name, "libcurl"))
		return OWNER_CURL;
	if (strstr(name, "libcrypto") || strstr(name, "libssl"))
		return OWNER_OPENSSL;
	if (strstr(name, "liblua") || strstr(name, "libluajit"))
		return OWNER_LUA;
	return OWNER_OTHER;
}

/* Searches a block about to be freed, counts a hit against its owner, and zeroes it. */
static void inspect(void *p, const void *caller)
{
	size_t size = malloc_usable_size(p);
	int i;

	__atomic_add_fetch(&checked, 1, __ATOMIC_RELAXED);
	for (i = 0; i < secret_count; i++) {
		if (secret_lens[i] && memmem(p, size, secrets[i], secret_lens[i]) != NULL) {
			int owner = owner_of(caller);
			__atomic_add_fetch(&hits[owner], 1, __ATOMIC_RELAXED);
			if (verbose) { /* WIPECHECK_VERBOSE=1: where each hit was freed */
				void *frames[16];
				fprintf(stderr, "wipecheck: %s freed a block holding secret %d:\n", owner_names[owner], i + 1);
				backtrace_symbols_fd(frames, backtrace(frames, 16), 2);
			}
			break;
		}
	}
	memset(p, 0, size);
}

/* The C library's free, looked up on first use. dlsym may allocate and free while it
 * resolves: those few blocks are leaked (returns 0 then). */
static int resolve(void)
{
	static int resolving;

	if (real_free)
		return 1;
	if (resolving)
		return 0;
	resolving = 1;
	*(void **)&real_free = dlsym(RTLD_NEXT, "free");
	resolving = 0;
	if (real_free == NULL)
		abort();
	return 1;
}

void free(void *p)
{
	if (p == NULL || !resolve())
		return;
	inspect(p, __builtin_return_address(0));
	real_free(p);
}

/* Always moves a growing block, so that the old one is inspected and zeroed like any other. */
void *realloc(void *p, size_t n)
{
	size_t size;
	void *q;

	if (p == NULL)
		return malloc(n);
	if (n == 0) {
		free(p);
		return NULL;
	}
	size = malloc_usable_size(p);
	if (n <= size)
		return p;
	q = malloc(n);
	if (q == NULL)
		return NULL;
	memcpy(q, p, size);
	if (resolve()) {
		inspect(p, __builtin_return_address(0));
		real_free(p);
	}
	return q;
}

static int l_watch(lua_State *L)
{
	size_t len;
	const char *s = luaL_checklstring(L, 1, &len);

	luaL_argcheck(L, len >= 8, 1, "a secret to watch must have 8 bytes or more");
	if (secret_count == MAX_SECRETS)
		return luaL_error(L, "too many secrets");
	/* Never freed: the list itself must not count as a hit. */
	secrets[secret_count] = malloc(len);
	if (secrets[secret_count] == NULL)
		return luaL_error(L, "out of memory");
	memcpy(secrets[secret_count], s, len);
	secret_lens[secret_count++] = len;
	return 0;
}

static int l_report(lua_State *L)
{
	int i;

	lua_createtable(L, 0, OWNERS + 1);
	lua_pushinteger(L, (lua_Integer)__atomic_load_n(&checked, __ATOMIC_RELAXED));
	lua_setfield(L, -2, "checked");
	for (i = 0; i < OWNERS; i++) {
		lua_pushinteger(L, (lua_Integer)__atomic_load_n(&hits[i], __ATOMIC_RELAXED));
		lua_setfield(L, -2, owner_names[i]);
	}
	return 1;
}

int main(int argc, char **argv)
{
	lua_State *L;
	Dl_info self;
	int status;
	const char *v = getenv("WIPECHECK_VERBOSE");

	if (argc != 2) {
		fprintf(stderr, "usage: %s 'lua code'\n", argv[0]);
		return 2;
	}
	if (!dladdr((void *)owner_of, &self) || self.dli_fbase == NULL)
		return 2;
	self_base = self.dli_fbase;
	verbose = v != NULL && *v != '\0';
	L = luaL_newstate();
	luaL_openlibs(L);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, luaopen_codeartsbuild_core);
	lua_setfield(L, -2, "codeartsbuild.core");
	lua_pop(L, 2);
	lua_newtable(L);
	lua_pushcfunction(L, l_watch);
	lua_setfield(L, -2, "watch");
	lua_pushcfunction(L, l_report);
	lua_setfield(L, -2, "report");
	lua_setglobal(L, "wipecheck");
	status = luaL_dostring(L, argv[1]);
	if (status != 0)
		fprintf(stderr, "wipecheck: %s\n", lua_tostring(L, -1));
	lua_close(L);
	return status == 0 ? 0 : 1;
}
