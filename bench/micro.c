/* bench/micro.c: the C hot path, one operation at a time, for callgrind's instruction counts.
 *
 * Built by `make bench-micro` from the module's own objects (build/<version>/obj/sign.o,
 * record.o, buffer.o) and liblua; run by bench/micro.py under
 *
 *     valgrind --tool=callgrind --collect-atstart=no ./micro N CAMEL.json SNAKE.json
 *
 * For each operation it runs a warm-up, then N iterations between CALLGRIND_ZERO_STATS and
 * CALLGRIND_DUMP_STATS_AT("<operation>"), so each dump holds exactly those N iterations; "empty"
 * is the same loop calling a function that does nothing (the loop's own cost, subtracted by
 * micro.py). Outside valgrind the client requests are no-ops: it prints each operation's
 * wall time per iteration instead (`micro.py --time`), which depends on the machine and its load.
 *
 * The operations are what the client does per request, with the inputs the client uses:
 *   sign              cb_sign() of a record-info GET (host, x-sdk-date, x-project-id signed), as
 *                     core.c's sign_into() calls it, with the client's key (cb_hmac_key_new once)
 *   decode            the private lua-cjson instance's decode (cjson.safe.new(), max depth 64, as
 *                     core.c sets it up) of one 1.25 KB v3 document, through lua_pcall
 *   normalise_camel   cb_record_push() of the decoded `result` of a camelCase document
 *   normalise_snake   the same for a snake_case document
 *   decode_normalise  decode + `result` + cb_record_push, camelCase: the general path of
 *                     core.c's push_outcome() minus the envelope checks
 *   read_camel        cb_record_read() of the camelCase document: the direct path push_outcome()
 *                     takes for a successful record-info body (envelope checks included)
 *   read_snake        the same for the snake_case document
 * Records and decoded tables become garbage at once: the Lua GC's share is in each figure. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <valgrind/callgrind.h>

#include "record.h"
#include "sign.h"

#define WARM_UP 500

typedef struct {
	lua_State *L;
	int decode, names, keys, mt; /* stack slots */
	int camel_result, snake_result;
	const char *camel_doc, *snake_doc;
	size_t camel_len, snake_len;
	cb_sign_input in;
	cb_kv headers[3];
	char date[CB_SDK_DATE_LEN + 1];
	char path[96];
} bench;

static void die(const char *what)
{
	fprintf(stderr, "micro: %s\n", what);
	exit(1);
}

static char *read_file(const char *name, size_t *len)
{
	FILE *f = fopen(name, "rb");
	char *data;
	long n;

	if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0)
		die(name);
	data = malloc((size_t)n + 1);
	if (data == NULL || fread(data, 1, (size_t)n, f) != (size_t)n)
		die(name);
	data[n] = '\0';
	fclose(f);
	*len = (size_t)n;
	return data;
}

/* ---- the operations ---- */

static void __attribute__((noinline)) op_empty(bench *b)
{
	__asm__ volatile("" : : "r"(b) : "memory");
}

static void __attribute__((noinline)) op_sign(bench *b)
{
	cb_sign_output out;
	const char *error;

	memset(&out, 0, sizeof out);
	if (cb_sign(&b->in, &out, &error) != 0)
		die(error);
	cb_sign_output_free(&out);
}

/* Leaves the decoded document on the stack. */
static void decode(bench *b, const char *doc, size_t len)
{
	lua_pushvalue(b->L, b->decode);
	lua_pushlstring(b->L, doc, len);
	if (lua_pcall(b->L, 1, 1, 0) != 0 || !lua_istable(b->L, -1))
		die("decode failed");
}

static void __attribute__((noinline)) op_decode(bench *b)
{
	decode(b, b->camel_doc, b->camel_len);
	lua_pop(b->L, 1);
}

static void normalise(bench *b, int result)
{
	char msg[256];

	if (cb_record_push(b->L, result, b->names, b->keys, b->mt, msg, sizeof msg) != 0)
		die(msg);
	lua_pop(b->L, 1);
}

static void __attribute__((noinline)) op_normalise_camel(bench *b)
{
	normalise(b, b->camel_result);
}

static void __attribute__((noinline)) op_normalise_snake(bench *b)
{
	normalise(b, b->snake_result);
}

static void __attribute__((noinline)) op_decode_normalise(bench *b)
{
	decode(b, b->camel_doc, b->camel_len);
	lua_getfield(b->L, -1, "result");
	normalise(b, lua_gettop(b->L));
	lua_pop(b->L, 2);
}

static void read_record(bench *b, const char *doc, size_t len)
{
	if (cb_record_read(b->L, doc, len, b->keys, b->mt) != 1)
		die("cb_record_read did not read the document");
	lua_pop(b->L, 1);
}

static void __attribute__((noinline)) op_read_camel(bench *b)
{
	read_record(b, b->camel_doc, b->camel_len);
}

static void __attribute__((noinline)) op_read_snake(bench *b)
{
	read_record(b, b->snake_doc, b->snake_len);
}

static const struct {
	const char *name;
	void (*fn)(bench *);
} ops[] = {
	{"empty", op_empty},
	{"sign", op_sign},
	{"decode", op_decode},
	{"normalise_camel", op_normalise_camel},
	{"normalise_snake", op_normalise_snake},
	{"decode_normalise", op_decode_normalise},
	{"read_camel", op_read_camel},
	{"read_snake", op_read_snake},
};

/* ---- set-up ---- */

static void setup_lua(bench *b, const char *camel_file, const char *snake_file)
{
	lua_State *L = luaL_newstate();

	if (L == NULL)
		die("no Lua state");
	luaL_openlibs(L);
	b->L = L;
	/* The decoder core.c's push_decoder() makes: a private cjson.safe instance. */
	if (luaL_dostring(L, "local c = require('cjson.safe').new(); c.decode_max_depth(64); "
			     "c.decode_invalid_numbers(false); return c.decode") != 0)
		die(lua_tostring(L, -1));
	b->decode = lua_gettop(L);
	cb_record_push_tables(L); /* names, keys, metatable */
	b->mt = lua_gettop(L);
	b->keys = b->mt - 1;
	b->names = b->mt - 2;

	b->camel_doc = read_file(camel_file, &b->camel_len);
	decode(b, b->camel_doc, b->camel_len);
	lua_getfield(L, -1, "result");
	b->camel_result = lua_gettop(L);
	b->snake_doc = read_file(snake_file, &b->snake_len);
	decode(b, b->snake_doc, b->snake_len);
	lua_getfield(L, -1, "result");
	b->snake_result = lua_gettop(L);
	if (!lua_istable(L, b->camel_result) || !lua_istable(L, b->snake_result))
		die("a document has no result object");
}

static void setup_sign(bench *b)
{
	static const char sk[] = "benchSKexample000000000000000000000000000";

	cb_sdk_date(time(NULL), b->date);
	snprintf(b->path, sizeof b->path, "/v3/jobs/%s/%d/record-info", "cb5fa20de5fd4cf8be681d4bd6fdd2f6", 61);
#define HEADER(i, n, v) \
	b->headers[i].name = n, b->headers[i].name_len = strlen(n), b->headers[i].value = v, \
	b->headers[i].value_len = strlen(v)
	HEADER(0, "host", "cloudbuild-ext.cn-north-4.myhuaweicloud.com");
	HEADER(1, "x-sdk-date", b->date);
	HEADER(2, "x-project-id", "0b2e8d6c1f4a4e3d9c7b5a3f1e2d4c6b");
#undef HEADER
	memset(&b->in, 0, sizeof b->in);
	b->in.method = "GET";
	b->in.path = b->path;
	b->in.path_len = strlen(b->path);
	b->in.canonical_query = "";
	b->in.headers = b->headers;
	b->in.header_count = 3;
	b->in.ak = "BENCHAKEXAMPLE0000000";
	b->in.key = cb_hmac_key_new(sk, sizeof sk - 1);
	if (b->in.key == NULL)
		die("cb_hmac_key_new failed");
}

int main(int argc, char **argv)
{
	bench b;
	long n, i;
	size_t k;

	if (argc != 4 || (n = strtol(argv[1], NULL, 10)) < 1)
		die("usage: micro N CAMEL_DOCUMENT SNAKE_DOCUMENT");
	memset(&b, 0, sizeof b);
	setup_lua(&b, argv[2], argv[3]);
	setup_sign(&b);
	for (k = 0; k < sizeof ops / sizeof ops[0]; k++) {
		struct timespec t0, t1;

		for (i = 0; i < WARM_UP; i++)
			ops[k].fn(&b);
		lua_gc(b.L, LUA_GCCOLLECT, 0); /* every operation starts from the same heap */
		CALLGRIND_ZERO_STATS;
		CALLGRIND_TOGGLE_COLLECT;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		for (i = 0; i < n; i++)
			ops[k].fn(&b);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		CALLGRIND_TOGGLE_COLLECT;
		CALLGRIND_DUMP_STATS_AT(ops[k].name);
		printf("%s %.1f ns\n", ops[k].name,
		       ((double)(t1.tv_sec - t0.tv_sec) * 1e9 + (double)(t1.tv_nsec - t0.tv_nsec)) / (double)n);
	}
	cb_hmac_key_free(b.in.key);
	lua_close(b.L);
	return 0;
}
