/* What libcurl's callbacks keep of a response (the body up to max_body, X-Request-Id, Retry-After,
 * an IAM token), and what a response says of the next attempt: whether there is one (the one rule
 * of what is retried) and how long to wait for it. */
#include "easy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Sizes the body buffer once from Content-Length instead of growing it by doubling (each growth
 * copies and wipes the buffer). Only for bodies of a record's size: a server announcing a large
 * body and sending little would otherwise make every transfer hold that much. */
#define BODY_RESERVED_AT_MOST 65536
static void reserve_announced_body(cb_transfer *t)
{
#if LIBCURL_VERSION_NUM >= 0x073700 /* 7.55.0 */
	curl_off_t announced = -1;

	if (curl_easy_getinfo(t->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &announced) == CURLE_OK &&
	    announced > 0 && announced <= BODY_RESERVED_AT_MOST && (curl_off_t)t->max_body >= announced)
		cb_buffer_reserve_exact(&t->body, (size_t)announced);
#else
	(void)t;
#endif
}

/* A streamed transfer's attempt streams the body of a 2xx answer that is not JSON, and reads any
 * other as every transfer does (transport.h, "Streams"). */
static int stream_flows(cb_transfer *t)
{
	long status = 0;
	char *type = NULL;

	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
	curl_easy_getinfo(t->easy, CURLINFO_CONTENT_TYPE, &type);
	t->status = status; /* known before the transfer ends: the credentials worked (mailbox.c) */
	if (status < 200 || status > 299)
		return 0;
	if (type == NULL)
		return 1;
	while (*type == ' ')
		type++;
	return strncasecmp(type, "application/json", 16) != 0;
}

/* Appends a piece of the body to the stream, after the bytes earlier attempts gave (skipped), or
 * pauses the transfer when it would not fit: libcurl then keeps the whole piece and hands it over
 * again once cb_engine_stream_consumed resumes the transfer. An empty stream takes any piece. */
static size_t stream_body(cb_transfer *t, char *data, size_t n)
{
	long long behind = t->streamed - t->attempt_seen; /* bytes of this piece the stream has already */
	size_t skip = behind <= 0 ? 0 : behind < (long long)n ? (size_t)behind : n;

	if (n > skip && t->stream.len > 0 && t->stream.len + (n - skip) > CB_STREAM_CHUNK) {
		t->paused = 1;
		return CURL_WRITEFUNC_PAUSE;
	}
	if (t->stream.cap == 0 && cb_buffer_reserve_exact(&t->stream, CB_STREAM_CHUNK) != 0)
		return 0;
	if (cb_buffer_append(&t->stream, data + skip, n - skip) != 0)
		return 0; /* out of memory: libcurl fails the transfer */
	t->attempt_seen += (long long)n;
	t->streamed += (long long)(n - skip);
	if (n > skip)
		t->signalled = 1;
	return n;
}

size_t cb_response_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	cb_transfer *t = userdata;
	size_t n = size * nmemb;

	if (t->flags & CB_STREAM) {
		if (t->stream_mode == CB_STREAM_UNDECIDED)
			t->stream_mode = stream_flows(t) ? CB_STREAM_FLOWING : CB_STREAM_BUFFERING;
		if (t->stream_mode == CB_STREAM_FLOWING)
			return stream_body(t, data, n);
	}
	if (n > t->max_body - t->body.len) {
		t->body_too_large = 1;
		return 0; /* libcurl stops the transfer */
	}
	if (t->body.cap == 0)
		reserve_announced_body(t);
	if (cb_buffer_append(&t->body, data, n) != 0)
		return 0;
	return n;
}

/* Keeps the printable characters of a header value (no quotes or backslashes), up to dstlen. */
static void copy_header_value(char *dst, size_t dstlen, const char *value, size_t n)
{
	size_t i, j = 0;

	for (i = 0; i < n && j + 1 < dstlen; i++) {
		unsigned char c = (unsigned char)value[i];
		if (c > 32 && c < 127 && c != '"' && c != '\\')
			dst[j++] = (char)c;
		else if (c == ' ' && j > 0)
			dst[j++] = ' ';
	}
	while (j > 0 && dst[j - 1] == ' ')
		j--;
	dst[j] = '\0';
}

static int header_is(const char *line, size_t n, const char *name, const char **value, size_t *vlen)
{
	size_t len = strlen(name);

	if (n <= len || line[len] != ':' || strncasecmp(line, name, len) != 0)
		return 0;
	*value = line + len + 1;
	*vlen = n - len - 1;
	return 1;
}

/* An X-Subject-Token goes back out in a header: printable, no spaces, of a sane size. */
static int header_token_ok(const char *value, size_t n)
{
	size_t i;

	if (n == 0 || n > 32768)
		return 0;
	for (i = 0; i < n; i++)
		if ((unsigned char)value[i] <= 32 || (unsigned char)value[i] >= 127)
			return 0;
	return 1;
}

size_t cb_response_header(char *line, size_t size, size_t nmemb, void *userdata)
{
	cb_transfer *t = userdata;
	size_t n = size * nmemb;
	const char *value;
	size_t vlen;

	if (n >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response: forget the last one's */
		t->request_id[0] = t->retry_after[0] = '\0';
	} else if (header_is(line, n, "x-request-id", &value, &vlen)) {
		copy_header_value(t->request_id, sizeof t->request_id, value, vlen);
	} else if (header_is(line, n, "retry-after", &value, &vlen)) {
		copy_header_value(t->retry_after, sizeof t->retry_after, value, vlen);
	} else if (header_is(line, n, "x-subject-token", &value, &vlen)) {
		while (vlen > 0 && (*value == ' ' || *value == '\t'))
			value++, vlen--;
		while (vlen > 0 && (value[vlen - 1] == '\r' || value[vlen - 1] == '\n' || value[vlen - 1] == ' '))
			vlen--;
		cb_buffer_wipe(&t->subject_token);
		if (header_token_ok(value, vlen))
			cb_buffer_append(&t->subject_token, value, vlen);
	}
	return n;
}

/* A successful response that carries an error code is a short error document (E5); a record is
 * not, and is not searched. */
#define SHORT_BODY 1024

cb_code_meaning cb_response_code(const cb_transfer *t, char *code, size_t len)
{
	int success = t->status >= 200 && t->status <= 299;

	code[0] = '\0';
	if (t->body.len == 0 || (success && t->body.len > SHORT_BODY))
		return CB_CODE_OTHER;
	cb_code_in_body(t->body.data, t->body.len, success, code, len);
	return cb_code_meaning_of(code);
}

int cb_transfer_retryable(const cb_transfer *t)
{
	char code[64];

	if (t->body_too_large)
		return 0;
	switch (t->result) {
	case CURLE_OK:
		switch (cb_response_code(t, code, sizeof code)) {
		case CB_CODE_THROTTLED: /* whatever the status: CB.00060211 comes with 500 or 400 */
			return 1;
		case CB_CODE_PERMANENT:
			return 0;
		default:
			return t->status == 429 || t->status == 500 || t->status == 502 || t->status == 503 ||
			       t->status == 504;
		}
	case CURLE_SSL_CONNECT_ERROR: /* the handshake failed: a reset, mostly; certificates are 60 */
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return 1;
	default:
		return 0;
	}
}

static int days_from_civil(int y, int m, int d)
{
	int era, yoe, doy, doe;

	y -= m <= 2;
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

long long cb_parse_iso_utc(const char *text)
{
	int year, month, day, hour, minute, second, consumed = 0;

	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &month, &day, &hour, &minute, &second, &consumed) != 6 ||
	    consumed != 19 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
		return -1;
	return (long long)days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second;
}

long cb_parse_retry_after(const char *value, long long now_s)
{
	static const char months[] = "JanFebMarAprMayJunJulAugSepOctNovDec";
	char month[4];
	int day, year, hour, minute, second, consumed = 0;
	const char *p;
	long long when;

	if (*value && strspn(value, "0123456789") == strlen(value))
		return strlen(value) > 9 ? 999999999L : strtol(value, NULL, 10);
	/* IMF-fixdate: "Sun, 06 Nov 1994 08:49:37 GMT" */
	p = strchr(value, ',');
	if (p == NULL || sscanf(p + 1, " %2d %3s %4d %2d:%2d:%2d GMT%n", &day, month, &year, &hour, &minute,
				&second, &consumed) != 6 || consumed == 0)
		return -1;
	p = strstr(months, month);
	if (p == NULL || (p - months) % 3 != 0 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60)
		return -1;
	when = (long long)days_from_civil(year, (int)(p - months) / 3 + 1, day) * 86400 + hour * 3600 + minute * 60 +
	       second;
	return when <= now_s ? 0 : when - now_s > 999999999 ? 999999999L : (long)(when - now_s);
}

static long long next_random(unsigned long long *state)
{
	/* xorshift64*: jitter needs spread, not secrecy */
	*state ^= *state >> 12;
	*state ^= *state << 25;
	*state ^= *state >> 27;
	return (long long)((*state * 2685821657736338717ULL) >> 1);
}

/* Full jitter: a random wait up to base * 2^(attempt-1), capped; Retry-After wins, capped too. */
long cb_retry_delay_ms(const cb_transfer *t, long backoff_ms, long max_backoff_ms, unsigned long long *jitter)
{
	long long cap = max_backoff_ms, ceiling = backoff_ms;
	long after = t->retry_after[0] ? cb_parse_retry_after(t->retry_after, (long long)time(NULL)) : -1;
	int i;

	if (after >= 0)
		return after * 1000LL > cap ? (long)cap : after * 1000L;
	for (i = 1; i < t->attempts && ceiling < cap; i++)
		ceiling *= 2;
	if (ceiling > cap)
		ceiling = cap;
	return ceiling > 0 ? (long)(next_random(jitter) % (ceiling + 1)) : 0;
}

