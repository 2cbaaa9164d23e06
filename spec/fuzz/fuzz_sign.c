/* libFuzzer harness: the SDK-HMAC-SHA256 canonical request builder (csrc/sign.c) with fuzzed
 * method, path, query, headers and body.
 *
 * Input, lines separated by '\n' (a value may hold any byte but '\n'):
 *   method \n path \n query \n ak \n sk \n header lines "Name: value" \n (empty line) \n body
 * The query line is "k=v&k2=v2" (split on '&' and the first '='), or, when it starts with '?',
 * a ready canonical query used as is. The X-Sdk-Date signed is a fixed date unless a header
 * gives one. spec/fuzz/corpus/fuzz_sign/ holds the published signing vectors in this form.
 *
 * Besides memory/UB errors, a finding is any broken property of a successful signature:
 *   - the string to sign is "SDK-HMAC-SHA256\n<date>\n" + hex SHA-256 of the canonical request;
 *   - the signature is HMAC-SHA256(sk, string to sign), recomputed here with OpenSSL's HMAC();
 *   - Authorization is "SDK-HMAC-SHA256 Access=<ak>, SignedHeaders=<list>, Signature=<hex>";
 *   - the canonical URI holds only unreserved characters, %XX and '/', ends with '/', and
 *     building it again from itself gives the same text (decode + encode is idempotent);
 *   - signed header names are lower case, sorted, unique and never hold '_';
 *   - signing twice gives the same output. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#include "../../csrc/sign.h"

#define MAX_PAIRS 64
#define MAX_HEADERS 80 /* more than sign.c signs, to reach "too many headers" */
#define DATE "20240102T030405Z"

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_sign: %s\n", what);
	abort();
}

typedef struct {
	const char *p, *end;
} cursor;

/* The next '\n'-terminated line (without it); 0 when the input is used up. */
static int next_line(cursor *c, const char **s, size_t *len)
{
	const char *nl;

	if (c->p >= c->end)
		return 0;
	nl = memchr(c->p, '\n', (size_t)(c->end - c->p));
	*s = c->p;
	*len = nl ? (size_t)(nl - c->p) : (size_t)(c->end - c->p);
	c->p = nl ? nl + 1 : c->end;
	return 1;
}

static char *copy_z(const char *s, size_t len)
{
	char *p = malloc(len + 1);

	if (p == NULL)
		fail("out of memory");
	memcpy(p, s, len);
	p[len] = '\0';
	return p;
}

static void hex(const unsigned char *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
	       c == '.' || c == '~';
}

static int is_hex_upper(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static void check_encoded(const char *s, size_t len, const char *extra)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (s[i] == '%') {
			if (i + 2 >= len)
				fail("truncated percent escape");
			if (!is_hex_upper(s[i + 1]) || !is_hex_upper(s[i + 2]))
				fail("bad percent escape");
			i += 2;
		} else if (!unreserved((unsigned char)s[i]) && strchr(extra, s[i]) == NULL) {
			fail("unencoded character in the canonical request");
		}
	}
}

/* The properties a successful signature must have (see the top of this file). */
static void check_output(const cb_sign_input *in, const char *sk, size_t sk_len, const cb_sign_output *out)
{
	const char *cr = out->canonical_request.data, *nl1, *nl2;
	unsigned char digest[SHA256_DIGEST_LENGTH], mac[EVP_MAX_MD_SIZE];
	unsigned int mac_len = 0;
	char digest_hex[2 * SHA256_DIGEST_LENGTH + 1], mac_hex[2 * EVP_MAX_MD_SIZE + 1];
	char *expected;
	size_t n, i;

	/* Method line, then the URI line. */
	n = strlen(in->method);
	if (strncmp(cr, in->method, n) != 0 || cr[n] != '\n')
		fail("canonical request does not start with the method");
	nl1 = cr + n + 1;
	nl2 = strchr(nl1, '\n');
	if (nl2 == NULL || nl2 == nl1 || nl2[-1] != '/')
		fail("canonical URI missing or without its trailing '/'");
	check_encoded(nl1, (size_t)(nl2 - nl1), "/");
	{
		/* Idempotence: the canonical URI of the canonical URI is itself. */
		cb_buffer again = CB_BUFFER_INIT;
		if (cb_canonical_uri(&again, nl1, (size_t)(nl2 - nl1), 1) != 0)
			fail("canonical URI of a canonical URI failed");
		if (again.len != (size_t)(nl2 - nl1) || memcmp(again.data, nl1, again.len) != 0)
			fail("canonical URI is not idempotent");
		cb_buffer_free(&again);
	}
	if (in->canonical_query == NULL) {
		const char *q = nl2 + 1, *qe = strchr(q, '\n');
		if (qe == NULL)
			fail("canonical query line missing");
		check_encoded(q, (size_t)(qe - q), "&=");
	}

	/* Signed headers: lower case, sorted, unique, no '_'. */
	for (i = 0; i < out->signed_headers.len; i++) {
		char c = out->signed_headers.data[i];
		if ((c >= 'A' && c <= 'Z') || c == '_')
			fail("signed header name with upper case or '_'");
	}
	{
		const char *a = out->signed_headers.data, *b;
		while ((b = strchr(a, ';')) != NULL) {
			const char *c = strchr(b + 1, ';');
			size_t la = (size_t)(b - a), lb = c ? (size_t)(c - b - 1) : strlen(b + 1);
			int cmp = memcmp(a, b + 1, la < lb ? la : lb);
			if (cmp > 0 || (cmp == 0 && la >= lb))
				fail("signed headers not sorted or not unique");
			a = b + 1;
		}
	}

	/* String to sign, from the canonical request. */
	SHA256((const unsigned char *)cr, out->canonical_request.len, digest);
	hex(digest, sizeof digest, digest_hex);
	n = strlen(CB_SIGN_ALGORITHM "\n") + strlen(out->sdk_date) + 1 + strlen(digest_hex);
	expected = malloc(n + 1);
	if (expected == NULL)
		fail("out of memory");
	snprintf(expected, n + 1, "%s\n%s\n%s", CB_SIGN_ALGORITHM, out->sdk_date, digest_hex);
	if (out->string_to_sign.len != n || memcmp(out->string_to_sign.data, expected, n) != 0)
		fail("string to sign does not match the canonical request");
	free(expected);

	/* Authorization, with the signature recomputed independently. */
	if (HMAC(EVP_sha256(), sk_len ? sk : "", (int)sk_len, (const unsigned char *)out->string_to_sign.data,
		 out->string_to_sign.len, mac, &mac_len) == NULL)
		fail("HMAC() failed");
	hex(mac, mac_len, mac_hex);
	n = strlen(CB_SIGN_ALGORITHM " Access=") + strlen(in->ak) + strlen(", SignedHeaders=") +
	    out->signed_headers.len + strlen(", Signature=") + strlen(mac_hex);
	expected = malloc(n + 1);
	if (expected == NULL)
		fail("out of memory");
	snprintf(expected, n + 1, "%s Access=%s, SignedHeaders=%s, Signature=%s", CB_SIGN_ALGORITHM, in->ak,
		 out->signed_headers.data ? out->signed_headers.data : "", mac_hex);
	if (out->authorization.len != n || memcmp(out->authorization.data, expected, n) != 0)
		fail("Authorization differs from an independent HMAC-SHA256");
	free(expected);
}

static int same_buffer(const cb_buffer *a, const cb_buffer *b)
{
	return a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cursor c = {(const char *)data, (const char *)data + size};
	const char *s, *error = NULL, *error2 = NULL;
	size_t len, sk_len = 0, nquery = 0, nheaders = 0;
	char *method = NULL, *path = NULL, *query_line = NULL, *ak = NULL, *sk = NULL;
	cb_kv query[MAX_PAIRS], headers[MAX_HEADERS];
	cb_sign_input in;
	cb_sign_output out, out2;
	cb_hmac_key *key = NULL;
	int rc, rc2;

	memset(&in, 0, sizeof in);
	memset(&out, 0, sizeof out);
	memset(&out2, 0, sizeof out2);
	if (!next_line(&c, &s, &len))
		return 0;
	method = copy_z(s, len);
	path = next_line(&c, &s, &len) ? copy_z(s, len) : copy_z("/", 1);
	in.path_len = strlen(path); /* the module passes C strings: no NUL inside */
	query_line = next_line(&c, &s, &len) ? copy_z(s, len) : copy_z("", 0);
	ak = next_line(&c, &s, &len) ? copy_z(s, len) : copy_z("AK", 2);
	if (next_line(&c, &s, &len)) {
		sk = copy_z(s, len);
		sk_len = len;
	} else {
		sk = copy_z("SK", 2);
		sk_len = 2;
	}

	if (query_line[0] == '?') {
		in.canonical_query = query_line + 1;
	} else if (query_line[0]) {
		char *q = query_line;
		while (q && nquery < MAX_PAIRS) {
			char *amp = strchr(q, '&'), *eq;
			size_t qlen = amp ? (size_t)(amp - q) : strlen(q);
			eq = memchr(q, '=', qlen);
			query[nquery].name = q;
			query[nquery].name_len = eq ? (size_t)(eq - q) : qlen;
			query[nquery].value = eq ? eq + 1 : q + qlen;
			query[nquery].value_len = eq ? qlen - (size_t)(eq - q) - 1 : 0;
			nquery++;
			q = amp ? amp + 1 : NULL;
		}
	}

	/* Header lines until an empty one; what follows is the body. */
	while (nheaders < MAX_HEADERS && next_line(&c, &s, &len) && len > 0) {
		const char *colon = memchr(s, ':', len);
		headers[nheaders].name = s;
		headers[nheaders].name_len = colon ? (size_t)(colon - s) : len;
		headers[nheaders].value = colon ? colon + 1 : s + len;
		headers[nheaders].value_len = colon ? len - (size_t)(colon - s) - 1 : 0;
		nheaders++;
	}

	in.method = method;
	in.path = path;
	in.query = query;
	in.query_count = nquery;
	in.headers = headers;
	in.header_count = nheaders;
	in.body = c.p;
	in.body_len = (size_t)(c.end - c.p);
	in.ak = ak;
	in.sdk_date = DATE;
	key = cb_hmac_key_new(sk, sk_len);
	if (key == NULL)
		fail("cb_hmac_key_new failed");
	in.key = key;

	rc = cb_sign(&in, &out, &error);
	rc2 = cb_sign(&in, &out2, &error2);
	if (rc != rc2)
		fail("signing twice gave different verdicts");
	if (rc == 0) {
		if (!same_buffer(&out.authorization, &out2.authorization) ||
		    !same_buffer(&out.canonical_request, &out2.canonical_request))
			fail("signing twice gave different signatures");
		check_output(&in, sk, sk_len, &out);
	} else if (error == NULL || error[0] == '\0') {
		fail("cb_sign failed without saying why");
	}

	cb_sign_output_free(&out);
	cb_sign_output_free(&out2);
	cb_hmac_key_free(key);
	free(method);
	free(path);
	free(query_line);
	free(ak);
	free(sk);
	return 0;
}
