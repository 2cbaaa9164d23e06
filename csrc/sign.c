#include "sign.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define MAX_SIGNED_HEADERS 64

/* Everything signing needs, fetched and keyed once per client: OpenSSL 3 looks algorithms up
 * by name, which costs more than hashing a canonical request. */
struct cb_hmac_key {
	EVP_MAC *mac;
	EVP_MAC_CTX *ctx; /* keyed with the SK; re-initialised (same key) for each signature */
	EVP_MD *sha256;
	EVP_MD_CTX *md_ctx;
};

cb_hmac_key *cb_hmac_key_new(const char *sk, size_t sk_len)
{
	char digest[] = "SHA256";
	OSSL_PARAM params[2];
	cb_hmac_key *key = calloc(1, sizeof *key);

	if (key == NULL)
		return NULL;
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	key->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	key->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
	key->md_ctx = EVP_MD_CTX_new();
	if (key->mac)
		key->ctx = EVP_MAC_CTX_new(key->mac);
	/* An empty SK is refused by configuration before we get here; HMAC wants a non-NULL key. */
	if (key->ctx == NULL || key->sha256 == NULL || key->md_ctx == NULL ||
	    !EVP_MAC_init(key->ctx, (const unsigned char *)(sk_len ? sk : ""), sk_len, params)) {
		cb_hmac_key_free(key);
		return NULL;
	}
	return key;
}

void cb_hmac_key_free(cb_hmac_key *key)
{
	if (key == NULL)
		return;
	EVP_MAC_CTX_free(key->ctx); /* OpenSSL cleanses the key material it holds */
	EVP_MAC_free(key->mac);
	EVP_MD_CTX_free(key->md_ctx);
	EVP_MD_free(key->sha256);
	free(key);
}

void cb_sdk_date(time_t t, char *out)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, CB_SDK_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

#define SHA256_HEX_LEN 64

/* Every GET signs an empty body: its hash is a constant. */
static const char empty_body_sha256[] = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/* By byte: 1 unreserved in a URI (A-Za-z0-9-_.~), 2 allowed in a header name (RFC 7230 tchar),
 * 4 refused in a header value (NUL, LF, CR), 8 '/'. Bytes from 128 up are none of these. */
#define CH_UNRESERVED 1
#define CH_TCHAR 2
#define CH_BAD_VALUE 4
#define CH_SLASH 8
static const unsigned char char_class[256] = {
	4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 2, 0, 2, 2, 2, 2, 2, 0, 0, 2, 2, 0, 3, 3, 8, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 0, 0, 0,
	0, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 0, 0, 2, 3,
	2, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 0, 2, 0, 3, 0,
};

/* Appends into room reserved up front; cb_buffer_append grows the buffer if an estimate was short. */
static int put(cb_buffer *b, const char *s, size_t n)
{
	if (n >= b->cap - b->len) /* also when nothing is allocated yet (cap == len == 0) */
		return cb_buffer_append(b, s, n);
	memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

static int put_char(cb_buffer *b, char c)
{
	if (b->cap - b->len < 2)
		return cb_buffer_append_char(b, c);
	b->data[b->len++] = c;
	b->data[b->len] = '\0';
	return 0;
}

static int hmac_hex(cb_hmac_key *key, const char *msg, size_t len, cb_buffer *out)
{
	unsigned char mac[EVP_MAX_MD_SIZE];
	size_t mac_len = 0;

	/* A NULL key restarts HMAC with the key already set. */
	if (!EVP_MAC_init(key->ctx, NULL, 0, NULL) || !EVP_MAC_update(key->ctx, (const unsigned char *)msg, len) ||
	    !EVP_MAC_final(key->ctx, mac, &mac_len, sizeof mac))
		return -1;
	return cb_buffer_append_hex(out, mac, mac_len);
}

static int sha256_hex(cb_hmac_key *key, const char *data, size_t len, cb_buffer *out)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int md_len = 0;

	if (!EVP_DigestInit_ex2(key->md_ctx, key->sha256, NULL) || !EVP_DigestUpdate(key->md_ctx, data, len) ||
	    !EVP_DigestFinal_ex(key->md_ctx, md, &md_len))
		return -1;
	return cb_buffer_append_hex(out, md, md_len);
}

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static int upper_hex_value(char c)
{
	return c >= 'a' && c <= 'f' ? -1 : hex_value(c);
}

/* Whether decoding then encoding path gives path back: every byte is unreserved or '/', or a
 * %XX in upper case of a byte that is neither (as cb_canonical_uri writes it). */
static int path_is_canonical(const char *path, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)path[i];
		if (char_class[c] & (CH_UNRESERVED | CH_SLASH))
			continue;
		if (c == '%' && i + 2 < len) {
			int hi = upper_hex_value(path[i + 1]), lo = upper_hex_value(path[i + 2]);
			if (hi >= 0 && lo >= 0) {
				c = (unsigned char)(hi * 16 + lo);
				if (!(char_class[c] & (CH_UNRESERVED | CH_SLASH))) {
					i += 2;
					continue;
				}
			}
		}
		return 0;
	}
	return 1;
}

static int canonical_uri(cb_buffer *b, const char *path, size_t len, int trailing_slash, int canonical)
{
	cb_buffer decoded = CB_BUFFER_INIT;
	size_t i, start;
	int rc = 0;

	if (canonical) {
		if (len == 0)
			rc |= put_char(b, '/');
		else
			rc |= put(b, path, len);
		if (rc == 0 && trailing_slash && b->data[b->len - 1] != '/')
			rc |= put_char(b, '/');
		return rc ? -1 : 0;
	}
	rc |= cb_buffer_reserve(&decoded, len);
	for (i = 0; i < len; i++) {
		int hi, lo;
		if (path[i] == '%' && i + 2 < len && (hi = hex_value(path[i + 1])) >= 0 &&
		    (lo = hex_value(path[i + 2])) >= 0) {
			rc |= cb_buffer_append_char(&decoded, (char)(hi * 16 + lo));
			i += 2;
		} else {
			rc |= cb_buffer_append_char(&decoded, path[i]);
		}
	}
	if (decoded.len == 0)
		rc |= cb_buffer_append_char(&decoded, '/');
	for (i = start = 0; rc == 0 && i <= decoded.len; i++) {
		if (i == decoded.len || decoded.data[i] == '/') {
			rc |= cb_buffer_append_uri_encoded(b, decoded.data + start, i - start);
			if (i < decoded.len)
				rc |= cb_buffer_append_char(b, '/');
			start = i + 1;
		}
	}
	if (rc == 0 && trailing_slash && (b->len == 0 || b->data[b->len - 1] != '/'))
		rc |= cb_buffer_append_char(b, '/');
	cb_buffer_free(&decoded);
	return rc ? -1 : 0;
}

/* Like the SDKs: the path is percent-decoded first, then every segment is encoded again. A path
 * already in that form (the client's own) is copied as it is. */
int cb_canonical_uri(cb_buffer *b, const char *path, size_t len, int trailing_slash)
{
	return canonical_uri(b, path, len, trailing_slash, path_is_canonical(path, len));
}

static int compare_bytes(const char *a, size_t alen, const char *b, size_t blen)
{
	int c = memcmp(a, b, alen < blen ? alen : blen);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int compare_query(const void *pa, const void *pb)
{
	const cb_kv *a = pa, *b = pb;
	int c = compare_bytes(a->name, a->name_len, b->name, b->name_len);
	return c ? c : compare_bytes(a->value, a->value_len, b->value, b->value_len);
}

/* Pairs sorted by key, then value (byte order), each side encoded, joined with '&'. */
int cb_canonical_query(cb_buffer *b, const cb_kv *query, size_t count)
{
	cb_kv *sorted;
	size_t i;
	int rc = 0;

	if (count == 0)
		return 0;
	sorted = malloc(count * sizeof *sorted);
	if (sorted == NULL)
		return -1;
	memcpy(sorted, query, count * sizeof *sorted);
	qsort(sorted, count, sizeof *sorted, compare_query);
	for (i = 0; i < count; i++) {
		if (i > 0)
			rc |= cb_buffer_append_char(b, '&');
		rc |= cb_buffer_append_uri_encoded(b, sorted[i].name, sorted[i].name_len);
		rc |= cb_buffer_append_char(b, '=');
		rc |= cb_buffer_append_uri_encoded(b, sorted[i].value, sorted[i].value_len);
	}
	free(sorted);
	return rc ? -1 : 0;
}

int cb_header_name_ok(const char *name, size_t len)
{
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++)
		if (!(char_class[(unsigned char)name[i]] & CH_TCHAR))
			return 0;
	return 1;
}

int cb_header_value_ok(const char *value, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (char_class[(unsigned char)value[i]] & CH_BAD_VALUE)
			return 0;
	return 1;
}

typedef struct {
	char name[128]; /* lower-case */
	size_t name_len;
	const char *value; /* trimmed */
	size_t value_len;
} signed_header;

static int compare_signed_header(const signed_header *a, const signed_header *b)
{
	return compare_bytes(a->name, a->name_len, b->name, b->name_len);
}

static void trim(const char **s, size_t *len)
{
	while (*len > 0 && (**s == ' ' || **s == '\t')) {
		(*s)++;
		(*len)--;
	}
	while (*len > 0 && ((*s)[*len - 1] == ' ' || (*s)[*len - 1] == '\t'))
		(*len)--;
}

static int add_signed_header(signed_header *list, size_t *count, const char *name, size_t name_len,
			     const char *value, size_t value_len, const char **error)
{
	signed_header *h;
	size_t i;

	if (*count == MAX_SIGNED_HEADERS) {
		*error = "too many headers to sign";
		return -1;
	}
	if (name_len >= sizeof list->name) {
		*error = "header name too long";
		return -1;
	}
	h = &list[*count];
	for (i = 0; i < name_len; i++) {
		char c = name[i];
		h->name[i] = (char)(c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c);
	}
	h->name[name_len] = '\0';
	h->name_len = name_len;
	for (i = 0; i < *count; i++) {
		if (list[i].name_len == name_len && memcmp(list[i].name, h->name, name_len) == 0) {
			*error = "a header is given twice";
			return -1;
		}
	}
	trim(&value, &value_len);
	h->value = value;
	h->value_len = value_len;
	(*count)++;
	return 0;
}

/* Fills list, and sorted with pointers into it in byte order of the names (unique: any sort gives
 * the same order; insertion sort, as there are a handful). */
static int collect_signed_headers(const cb_sign_input *in, signed_header *list, const signed_header **sorted,
				  size_t *count, cb_sign_output *out, const char **error)
{
	const signed_header *date = NULL;
	size_t i, j;

	*count = 0;
	for (i = 0; i < in->header_count; i++) {
		const cb_kv *h = &in->headers[i];
		if (!cb_header_name_ok(h->name, h->name_len) || !cb_header_value_ok(h->value, h->value_len)) {
			*error = "invalid header name or value";
			return -1;
		}
		if (memchr(h->name, '_', h->name_len) != NULL)
			continue;
		if (add_signed_header(list, count, h->name, h->name_len, h->value, h->value_len, error) != 0)
			return -1;
	}
	for (i = 0; i < *count; i++)
		if (list[i].name_len == 10 && memcmp(list[i].name, "x-sdk-date", 10) == 0)
			date = &list[i];
	if (date == NULL) {
		if (in->sdk_date == NULL) {
			*error = "no X-Sdk-Date to sign";
			return -1;
		}
		if (add_signed_header(list, count, "x-sdk-date", 10, in->sdk_date, strlen(in->sdk_date), error) != 0)
			return -1;
		date = &list[*count - 1];
	}
	if (date->value_len >= sizeof out->sdk_date) {
		*error = "X-Sdk-Date too long";
		return -1;
	}
	memcpy(out->sdk_date, date->value, date->value_len);
	out->sdk_date[date->value_len] = '\0';
	for (i = 0; i < *count; i++) {
		const signed_header *h = &list[i];
		for (j = i; j > 0 && compare_signed_header(sorted[j - 1], h) > 0; j--)
			sorted[j] = sorted[j - 1];
		sorted[j] = h;
	}
	return 0;
}

/* Each part is reserved once, at its final size, before it is written: growing would copy and
 * cleanse, and an exact size leaves no slack for the wipe to cleanse. The canonical URI and query
 * are estimated from above when they must be re-encoded. */
static int build_canonical_request(const cb_sign_input *in, const signed_header *const *headers, size_t count,
				   cb_sign_output *out)
{
	cb_buffer *cr = &out->canonical_request, *sh = &out->signed_headers;
	size_t method_len = strlen(in->method), query_len = 0, headers_len = 0, sh_len = count - 1, uri_len, i;
	int canonical = path_is_canonical(in->path, in->path_len);
	int rc = 0;

	for (i = 0; i < count; i++) {
		headers_len += headers[i]->name_len + headers[i]->value_len + 2;
		sh_len += headers[i]->name_len;
	}
	uri_len = canonical ? (in->path_len ? in->path_len : 1) + 1 : 3 * in->path_len + 2;
	if (in->canonical_query)
		query_len = strlen(in->canonical_query);
	else
		for (i = 0; i < in->query_count; i++)
			query_len += 3 * (in->query[i].name_len + in->query[i].value_len) + 2;
	/* An estimate that wrapped around is only short: every append still checks its room. */
	rc |= cb_buffer_reserve_exact(sh, sh_len);
	rc |= cb_buffer_reserve_exact(cr, method_len + uri_len + query_len + headers_len + sh_len + SHA256_HEX_LEN + 5);
	if (rc != 0)
		return -1;

	rc |= put(cr, in->method, method_len);
	rc |= put_char(cr, '\n');
	rc |= canonical_uri(cr, in->path, in->path_len, 1, canonical);
	rc |= put_char(cr, '\n');
	if (in->canonical_query)
		rc |= put(cr, in->canonical_query, query_len);
	else
		rc |= cb_canonical_query(cr, in->query, in->query_count);
	rc |= put_char(cr, '\n');
	for (i = 0; i < count; i++) {
		rc |= put(cr, headers[i]->name, headers[i]->name_len);
		rc |= put_char(cr, ':');
		rc |= put(cr, headers[i]->value, headers[i]->value_len);
		rc |= put_char(cr, '\n');
		if (i > 0)
			rc |= put_char(sh, ';');
		rc |= put(sh, headers[i]->name, headers[i]->name_len);
	}
	rc |= put_char(cr, '\n');
	rc |= put(cr, sh->data, sh->len);
	rc |= put_char(cr, '\n');
	if (in->body_len == 0)
		rc |= put(cr, empty_body_sha256, SHA256_HEX_LEN);
	else
		rc |= sha256_hex(in->key, in->body, in->body_len, cr);
	return rc ? -1 : 0;
}

int cb_sign(const cb_sign_input *in, cb_sign_output *out, const char **error)
{
	signed_header headers[MAX_SIGNED_HEADERS];
	const signed_header *sorted[MAX_SIGNED_HEADERS];
	size_t count, date_len, ak_len;
	cb_buffer *sts = &out->string_to_sign, *auth = &out->authorization, *sh = &out->signed_headers;
	int rc = 0;

	*error = "out of memory";
	if (collect_signed_headers(in, headers, sorted, &count, out, error) != 0)
		return -1;
	if (build_canonical_request(in, sorted, count, out) != 0)
		return -1;

	date_len = strlen(out->sdk_date);
	rc |= cb_buffer_reserve_exact(sts, sizeof CB_SIGN_ALGORITHM "\n" - 1 + date_len + 1 + SHA256_HEX_LEN);
	rc |= put(sts, CB_SIGN_ALGORITHM "\n", sizeof CB_SIGN_ALGORITHM "\n" - 1);
	rc |= put(sts, out->sdk_date, date_len);
	rc |= put_char(sts, '\n');
	rc |= sha256_hex(in->key, out->canonical_request.data, out->canonical_request.len, sts);

	ak_len = strlen(in->ak);
#define AUTH_ACCESS CB_SIGN_ALGORITHM " Access="
#define AUTH_HEADERS ", SignedHeaders="
#define AUTH_SIGNATURE ", Signature="
	rc |= cb_buffer_reserve_exact(auth, sizeof AUTH_ACCESS - 1 + ak_len + sizeof AUTH_HEADERS - 1 + sh->len +
						    sizeof AUTH_SIGNATURE - 1 + SHA256_HEX_LEN);
	rc |= put(auth, AUTH_ACCESS, sizeof AUTH_ACCESS - 1);
	rc |= put(auth, in->ak, ak_len);
	rc |= put(auth, AUTH_HEADERS, sizeof AUTH_HEADERS - 1);
	rc |= put(auth, sh->data, sh->len);
	rc |= put(auth, AUTH_SIGNATURE, sizeof AUTH_SIGNATURE - 1);
#undef AUTH_ACCESS
#undef AUTH_HEADERS
#undef AUTH_SIGNATURE
	if (rc == 0 && hmac_hex(in->key, sts->data, sts->len, auth) != 0) {
		*error = "HMAC-SHA256 failed";
		return -1;
	}
	return rc ? -1 : 0;
}

/* The canonical request holds every signed header's value, X-Security-Token included. */
void cb_sign_output_free(cb_sign_output *out)
{
	cb_buffer_wipe(&out->canonical_request);
	cb_buffer_wipe(&out->string_to_sign);
	cb_buffer_wipe(&out->signed_headers);
	cb_buffer_wipe(&out->authorization);
}
