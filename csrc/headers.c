/* The headers of one attempt, made as it starts so that a signature is always fresh: the
 * credential (X-Auth-Token, or an SDK-HMAC-SHA256 signature), the project, the date; and
 * core.sign, the signer for everyone. */
#include <stdio.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "private.h"

/***
 * @module codeartsbuild.core
 */

static const char *client_date(cb_client *c)
{
	time_t now = time(NULL);

	if (now != c->date_time) {
		cb_sdk_date(now, c->date);
		c->date_time = now;
	}
	return c->date;
}

static int append_header(struct curl_slist **list, cb_buffer *line, const char *name, const char *value)
{
	struct curl_slist *next;

	cb_buffer_clear(line);
	cb_buffer_append_str(line, name);
	cb_buffer_append_str(line, ": ");
	cb_buffer_append_str(line, value);
	if (line->failed || (next = curl_slist_append(*list, line->data)) == NULL)
		return -1;
	*list = next;
	return 0;
}

static int sign_into(cb_client *c, const cb_transfer *t, const char *host, int with_project,
		     struct curl_slist **headers, cb_buffer *line)
{
	cb_kv signed_headers[4];
	size_t n = 0;
	cb_sign_input in;
	cb_sign_output out;
	const char *error;
	int rc;

#define SIGNED(name_, value_) \
	signed_headers[n].name = name_, signed_headers[n].name_len = sizeof name_ - 1, \
	signed_headers[n].value = value_, signed_headers[n].value_len = strlen(value_), n++
	SIGNED("host", host);
	SIGNED("x-sdk-date", client_date(c));
	if (with_project && c->cfg.project_id)
		SIGNED("x-project-id", c->cfg.project_id);
	if (c->cfg.security_token)
		SIGNED("x-security-token", c->cfg.security_token);
#undef SIGNED
	memset(&in, 0, sizeof in);
	memset(&out, 0, sizeof out);
	in.method = "GET";
	in.path = t->path;
	in.path_len = strlen(t->path);
	in.canonical_query = t->query ? t->query : "";
	in.headers = signed_headers;
	in.header_count = n;
	in.ak = c->cfg.ak;
	in.key = c->key;
	rc = cb_sign(&in, &out, &error);
	if (rc == 0) {
		rc |= append_header(headers, line, "X-Sdk-Date", out.sdk_date);
		if (c->cfg.security_token)
			rc |= append_header(headers, line, "X-Security-Token", c->cfg.security_token);
		rc |= append_header(headers, line, "Authorization", out.authorization.data);
	}
	cb_sign_output_free(&out);
	return rc;
}

/* Requests to IAM go to its own host: the token request carries no credential, the project
 * lookup is signed. */
struct curl_slist *cb_headers_prepare(void *client, cb_transfer *t)
{
	cb_client *c = client;
	request_ctx *ctx = t->user;
	int to_iam = ctx->kind == REQUEST_IAM_TOKEN || ctx->kind == REQUEST_IAM_PROJECTS;
	const char *host = to_iam ? c->cfg.iam_host : c->cfg.host;
	struct curl_slist *headers = NULL, *h;
	cb_buffer line = CB_BUFFER_INIT;
	int rc = 0;

	/* libcurl writes Host itself; an explicit one only where it is signed, so that the signed
	 * value is the one on the wire (libcurl's leaves out a default port). */
	if (ctx->kind != REQUEST_IAM_TOKEN && !c->cfg.token && c->cfg.ak)
		rc |= append_header(&headers, &line, "Host", host);
	rc |= append_header(&headers, &line, "Accept", "application/json");
	if (ctx->kind == REQUEST_IAM_TOKEN)
		rc |= append_header(&headers, &line, "Content-Type", "application/json;charset=utf8");
	else if (!to_iam && c->cfg.project_id)
		rc |= append_header(&headers, &line, "X-Project-Id", c->cfg.project_id);
	if (ctx->kind == REQUEST_IAM_TOKEN) {
		/* no credential */
	} else if (c->cfg.token) {
		rc |= append_header(&headers, &line, "X-Auth-Token", c->cfg.token);
		ctx->token_generation = c->credentials.token_generation;
	} else if (c->cfg.ak) {
		rc |= sign_into(c, t, host, !to_iam, &headers, &line);
	} else {
		rc = -1; /* an IAM user without a token: the gate should have held this request back */
	}
	cb_buffer_wipe(&line);
	if (rc == 0)
		return headers;
	for (h = headers; h != NULL; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(headers);
	return NULL;
}

/***
 * Signs a request with SDK-HMAC-SHA256, as the API gateway checks it: for tests, debugging, and
 * requests to other Huawei Cloud services.
 * @function sign
 * @tparam table request `{method =, path =, query =, headers =, body =, ak =, sk =}` (`method`
 *   defaults to GET; `query` a map or a list of `{key, value}`; `headers` a map)
 * @treturn string the Authorization value
 * @treturn string the canonical request
 * @treturn string the string to sign
 * @treturn string the X-Sdk-Date that was signed
 * @usage local authorization = cb.sign{ path = "/v3/jobs/x/1/record-info", ak = AK, sk = SK,
 *   headers = { host = "cloudbuild-ext.cn-north-4.myhuaweicloud.com" } }
 */
static int module_sign(lua_State *L)
{
	cb_kv query[CB_MAX_QUERY_PAIRS], headers[64];
	size_t nquery, nheaders = 0, ak_len, sk_len;
	cb_sign_input in;
	cb_sign_output out;
	const char *error, *sk;
	char date[CB_SDK_DATE_LEN + 1];
	int rc;

	luaL_checktype(L, 1, LUA_TTABLE);
	lua_settop(L, 1);
	memset(&in, 0, sizeof in);
	memset(&out, 0, sizeof out);
	lua_getfield(L, 1, "method"); /* 2 */
	in.method = luaL_optstring(L, 2, "GET");
	lua_getfield(L, 1, "path"); /* 3 */
	in.path = luaL_checklstring(L, 3, &in.path_len);
	lua_getfield(L, 1, "body"); /* 4 */
	in.body = luaL_optlstring(L, 4, "", &in.body_len);
	lua_getfield(L, 1, "ak"); /* 5 */
	in.ak = luaL_checklstring(L, 5, &ak_len);
	lua_getfield(L, 1, "sk"); /* 6 */
	sk = luaL_checklstring(L, 6, &sk_len);
	lua_getfield(L, 1, "headers"); /* 7 */
	if (!lua_isnil(L, 7)) {
		luaL_checktype(L, 7, LUA_TTABLE);
		lua_pushnil(L);
		while (lua_next(L, 7) != 0) {
			if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
				return luaL_error(L, "headers: names and values must be strings");
			if (nheaders == sizeof headers / sizeof headers[0])
				return luaL_error(L, "headers: too many");
			headers[nheaders].name = lua_tolstring(L, -2, &headers[nheaders].name_len);
			headers[nheaders].value = lua_tolstring(L, -1, &headers[nheaders].value_len);
			nheaders++;
			lua_pop(L, 1); /* the strings stay referenced by the headers table */
		}
	}
	lua_getfield(L, 1, "query"); /* 8 */
	nquery = cb_check_query(L, 8, query);
	cb_sdk_date(time(NULL), date);
	in.query = query;
	in.query_count = nquery;
	in.headers = headers;
	in.header_count = nheaders;
	in.sdk_date = date;
	in.key = cb_hmac_key_new(sk, sk_len);
	if (in.key == NULL)
		return luaL_error(L, "cannot set up HMAC-SHA256 (OpenSSL)");
	rc = cb_sign(&in, &out, &error);
	cb_hmac_key_free(in.key);
	if (rc != 0) {
		cb_sign_output_free(&out);
		return luaL_error(L, "sign: %s", error);
	}
	lua_pushlstring(L, out.authorization.data, out.authorization.len);
	lua_pushlstring(L, out.canonical_request.data, out.canonical_request.len);
	lua_pushlstring(L, out.string_to_sign.data, out.string_to_sign.len);
	lua_pushstring(L, out.sdk_date);
	cb_sign_output_free(&out);
	return 4;
}

void cb_headers_open(lua_State *L, int state, int module)
{
	(void)state;
	lua_pushcfunction(L, module_sign);
	lua_setfield(L, module, "sign");
}
