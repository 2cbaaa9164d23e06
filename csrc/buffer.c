#include "buffer.h"

#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

/* Grows to cap bytes. Not realloc: a buffer may hold a secret (a canonical request holds
 * X-Security-Token), and realloc would leave the old block in freed memory as it was. */
static int grow(cb_buffer *b, size_t cap)
{
	char *p = malloc(cap);

	if (p == NULL) {
		b->failed = 1;
		return -1;
	}
	if (b->data) {
		memcpy(p, b->data, b->len + 1);
		OPENSSL_cleanse(b->data, b->cap);
		free(b->data);
	}
	b->data = p;
	b->cap = cap;
	return 0;
}

int cb_buffer_reserve(cb_buffer *b, size_t extra)
{
	size_t need, cap;

	if (b->failed)
		return -1;
	if (extra > (size_t)-1 - b->len - 1) {
		b->failed = 1;
		return -1;
	}
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 256;
	while (cap < need)
		cap = cap > (size_t)-1 / 2 ? need : cap * 2;
	return grow(b, cap);
}

int cb_buffer_reserve_exact(cb_buffer *b, size_t extra)
{
	if (b->failed)
		return -1;
	if (extra > (size_t)-1 - b->len - 1) {
		b->failed = 1;
		return -1;
	}
	if (b->len + extra + 1 <= b->cap)
		return 0;
	return grow(b, b->len + extra + 1);
}

int cb_buffer_append(cb_buffer *b, const char *data, size_t n)
{
	if (cb_buffer_reserve(b, n) != 0)
		return -1;
	if (n > 0)
		memcpy(b->data + b->len, data, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

int cb_buffer_append_str(cb_buffer *b, const char *s)
{
	return cb_buffer_append(b, s, strlen(s));
}

int cb_buffer_append_char(cb_buffer *b, char c)
{
	return cb_buffer_append(b, &c, 1);
}

void cb_buffer_clear(cb_buffer *b)
{
	b->len = 0;
	b->failed = 0;
	if (b->data)
		b->data[0] = '\0';
}

void cb_buffer_free(cb_buffer *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->failed = 0;
}

void cb_buffer_wipe(cb_buffer *b)
{
	if (b->data)
		OPENSSL_cleanse(b->data, b->cap);
	cb_buffer_free(b);
}

/* Each byte's two digits: one load per byte instead of two shifts and two lookups. */
static const char hex_pairs[] =
	"000102030405060708090a0b0c0d0e0f"
	"101112131415161718191a1b1c1d1e1f"
	"202122232425262728292a2b2c2d2e2f"
	"303132333435363738393a3b3c3d3e3f"
	"404142434445464748494a4b4c4d4e4f"
	"505152535455565758595a5b5c5d5e5f"
	"606162636465666768696a6b6c6d6e6f"
	"707172737475767778797a7b7c7d7e7f"
	"808182838485868788898a8b8c8d8e8f"
	"909192939495969798999a9b9c9d9e9f"
	"a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"
	"b0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
	"c0c1c2c3c4c5c6c7c8c9cacbcccdcecf"
	"d0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
	"e0e1e2e3e4e5e6e7e8e9eaebecedeeef"
	"f0f1f2f3f4f5f6f7f8f9fafbfcfdfeff";

int cb_buffer_append_hex(cb_buffer *b, const unsigned char *bytes, size_t n)
{
	char *p;
	size_t i;

	if (cb_buffer_reserve(b, 2 * n) != 0)
		return -1;
	p = b->data + b->len;
	for (i = 0; i < n; i++)
		memcpy(p + 2 * i, hex_pairs + 2 * bytes[i], 2);
	p[2 * n] = '\0';
	b->len += 2 * n;
	return 0;
}

static int is_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

int cb_buffer_append_uri_encoded(cb_buffer *b, const char *s, size_t n)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t i;

	if (cb_buffer_reserve(b, 3 * n) != 0)
		return -1;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (is_unreserved(c)) {
			b->data[b->len++] = (char)c;
		} else {
			b->data[b->len++] = '%';
			b->data[b->len++] = digits[c >> 4];
			b->data[b->len++] = digits[c & 15];
		}
	}
	b->data[b->len] = '\0';
	return 0;
}

char *cb_strndup(const char *s, size_t n)
{
	char *p;

	if (s == NULL || (p = malloc(n + 1)) == NULL)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *cb_strdup(const char *s)
{
	return s ? cb_strndup(s, strlen(s)) : NULL;
}

void cb_free_secret(char **s)
{
	if (*s) {
		OPENSSL_cleanse(*s, strlen(*s));
		free(*s);
		*s = NULL;
	}
}
