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

void cb_sdk_date(time_t t, char *out)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(out, CB_SDK_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
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

/* Like the SDKs: the path is percent-decoded first, then every segment is encoded again. */
int cb_canonical_uri(cb_buffer *b, const char *path, size_t len, int trailing_slash)
{
	cb_buffer decoded = CB_BUFFER_INIT;
	size_t i, start;
	int rc = 0;

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
	static const char extra[] = "!#$%&'*+-.^_`|~";
	size_t i;

	if (len == 0)
		return 0;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)name[i];
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      (c != '\0' && strchr(extra, c) != NULL)))
			return 0;
	}
	return 1;
}

int cb_header_value_ok(const char *value, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
			return 0;
	return 1;
}

typedef struct {
	char name[128]; /* lower-case */
	size_t name_len;
	const char *value; /* trimmed */
	size_t value_len;
} signed_header;

static int compare_signed_header(const void *pa, const void *pb)
{
	const signed_header *a = pa, *b = pb;
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

static int collect_signed_headers(const cb_sign_input *in, signed_header *list, size_t *count,
				  cb_sign_output *out, const char **error)
{
	const signed_header *date = NULL;
	size_t i;

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
	qsort(list, *count, sizeof *list, compare_signed_header);
	return 0;
}

static int build_canonical_request(const cb_sign_input *in, const signed_header *headers, size_t count,
				   cb_sign_output *out)
{
	cb_buffer *cr = &out->canonical_request;
	size_t i;
	int rc = 0;

	rc |= cb_buffer_append_str(cr, in->method);
	rc |= cb_buffer_append_char(cr, '\n');
	rc |= cb_canonical_uri(cr, in->path, in->path_len, 1);
	rc |= cb_buffer_append_char(cr, '\n');
	if (in->canonical_query)
		rc |= cb_buffer_append_str(cr, in->canonical_query);
	else
		rc |= cb_canonical_query(cr, in->query, in->query_count);
	rc |= cb_buffer_append_char(cr, '\n');
	for (i = 0; i < count; i++) {
		rc |= cb_buffer_append(cr, headers[i].name, headers[i].name_len);
		rc |= cb_buffer_append_char(cr, ':');
		rc |= cb_buffer_append(cr, headers[i].value, headers[i].value_len);
		rc |= cb_buffer_append_char(cr, '\n');
		if (i > 0)
			rc |= cb_buffer_append_char(&out->signed_headers, ';');
		rc |= cb_buffer_append(&out->signed_headers, headers[i].name, headers[i].name_len);
	}
	rc |= cb_buffer_append_char(cr, '\n');
	rc |= cb_buffer_append(cr, out->signed_headers.data, out->signed_headers.len);
	rc |= cb_buffer_append_char(cr, '\n');
	rc |= sha256_hex(in->key, in->body ? in->body : "", in->body_len, cr);
	return rc ? -1 : 0;
}

int cb_sign(const cb_sign_input *in, cb_sign_output *out, const char **error)
{
	signed_header headers[MAX_SIGNED_HEADERS];
	size_t count;
	cb_buffer *sts = &out->string_to_sign, *auth = &out->authorization;
	int rc = 0;

	*error = "out of memory";
	if (collect_signed_headers(in, headers, &count, out, error) != 0)
		return -1;
	if (build_canonical_request(in, headers, count, out) != 0)
		return -1;

	rc |= cb_buffer_append_str(sts, CB_SIGN_ALGORITHM "\n");
	rc |= cb_buffer_append_str(sts, out->sdk_date);
	rc |= cb_buffer_append_char(sts, '\n');
	rc |= sha256_hex(in->key, out->canonical_request.data, out->canonical_request.len, sts);

	rc |= cb_buffer_append_str(auth, CB_SIGN_ALGORITHM " Access=");
	rc |= cb_buffer_append_str(auth, in->ak);
	rc |= cb_buffer_append_str(auth, ", SignedHeaders=");
	rc |= cb_buffer_append(auth, out->signed_headers.data, out->signed_headers.len);
	rc |= cb_buffer_append_str(auth, ", Signature=");
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
