/* libFuzzer harness: response headers and bodies as libcurl hands them to csrc/response.c.
 *
 * The callbacks (cb_response_header, cb_response_body), the wait before a retry
 * (cb_retry_delay_ms) and the date parsers are public; the header helpers they use
 * (copy_header_value, header_is, ...) are static, so this file includes response.c itself: the
 * statics become reachable here and the module's surface stays as it is. The price: when one of
 * those functions changes its signature, this harness must follow.
 *
 * Input: 8 bytes of parameters (max_body, attempts, backoff base and cap, a clock), then header
 * lines separated by '\n', each passed to cb_response_header as libcurl would (one complete line with its
 * terminator); the same bytes are then fed to cb_response_body in chunks. Findings are memory/UB errors
 * (leaks too: what the callbacks kept is freed as the module frees it) and broken
 * contracts: a kept X-Request-Id or Retry-After that is unterminated or holds other than
 * printable ASCII without quotes or backslashes, an X-Subject-Token kept with a space or a
 * control character (it is sent back out as a header), a Retry-After parsed outside
 * [-1, 999999999], a retry delay outside [0, max_backoff], a body longer than max_body. */
#include "../../csrc/response.c"

#include <stdint.h>

static void fail(const char *what)
{
	fprintf(stderr, "fuzz_headers: %s\n", what);
	abort();
}

static void check_value(const char *s, size_t cap)
{
	size_t n = strnlen(s, cap), i;

	if (n == cap)
		fail("header value not terminated within its buffer");
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 32 || c >= 127 || c == '"' || c == '\\')
			fail("unsanitised character kept from a header");
	}
	if (n > 0 && (s[0] == ' ' || s[n - 1] == ' '))
		fail("header value kept with leading or trailing spaces");
}

static void check_retry_after(long seconds)
{
	if (seconds < -1 || seconds > 999999999L)
		fail("Retry-After parsed out of range");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A token kept for sending back out: printable ASCII without spaces, NUL-terminated. */
static void check_token(const cb_buffer *b)
{
	size_t i;

	if (b->data == NULL || b->len == 0)
		return;
	if (b->data[b->len] != '\0')
		fail("kept token not terminated");
	for (i = 0; i < b->len; i++)
		if ((unsigned char)b->data[i] <= 32 || (unsigned char)b->data[i] >= 127)
			fail("kept X-Subject-Token holds a space or a control character");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	cb_transfer *t = calloc(1, sizeof *t); /* as the module holds it */
	long backoff_ms = 200, max_backoff_ms = 20000;
	unsigned long long jitter = 0x9e3779b97f4a7c15ULL;
	const uint8_t *p = data, *end = data + size;
	char value[256];
	long long now_s = 1700000000;
	long delay;
	size_t n;

	if (t == NULL)
		return 0;
	t->max_body = 4096;
	if (size >= 8) {
		t->max_body = 1 + ((size_t)data[0] << 8 | data[1]);
		t->attempts = data[2] % 32;
		backoff_ms = (long)data[3] * 37;
		max_backoff_ms = (long)(data[4] << 8 | data[5]) * 60;
		now_s += ((long long)data[6] << 8 | data[7]) * 86400;
		p += 8;
	}

	/* Header lines, each with its terminator, as libcurl passes them. */
	while (p < end) {
		const uint8_t *nl = memchr(p, '\n', (size_t)(end - p));
		size_t len = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
		char *line = malloc(len ? len : 1); /* an exact-size copy: ASan sees any overread */
		if (line == NULL)
			break;
		memcpy(line, p, len);
		if (cb_response_header(line, 1, len, t) != len)
			fail("the header callback did not take the whole line");
		free(line);
		check_value(t->request_id, sizeof t->request_id);
		check_value(t->retry_after, sizeof t->retry_after);
		check_token(&t->subject_token);
		p += len;
	}
	if (t->retry_after[0])
		check_retry_after(cb_parse_retry_after(t->retry_after, now_s));

	/* The retry wait: Retry-After when there is one, else full jitter; never above the cap. */
	delay = cb_retry_delay_ms(t, backoff_ms, max_backoff_ms, &jitter);
	if (delay < 0 || delay > (max_backoff_ms > 0 ? max_backoff_ms : 0))
		fail("retry delay outside [0, max_backoff]");

	/* The raw bytes as a Retry-After value too, without the header sanitising in front. */
	n = size < sizeof value - 1 ? size : sizeof value - 1;
	memcpy(value, data, n);
	value[n] = '\0';
	check_retry_after(cb_parse_retry_after(value, now_s));
	/* And as an IAM token's expires_at (read from a token body in iam.c), which shares the
	 * date arithmetic: -1 or a time within years -9999..9999. */
	{
		long long when = cb_parse_iso_utc(value);
		if (when != -1 && (when < -377705116800LL || when > 253402300800LL))
			fail("expires_at parsed out of range");
	}

	/* The body callback: chunks of the input until max_body stops it. */
	for (p = data; p < end;) {
		size_t chunk = 1 + (size_t)(*p % 64) * 16;
		size_t taken;
		if (chunk > (size_t)(end - p))
			chunk = (size_t)(end - p);
		taken = cb_response_body((char *)p, 1, chunk, t);
		if (t->body.len > t->max_body)
			fail("body kept beyond max_body");
		if (taken != chunk) {
			if (!t->body_too_large)
				fail("the body callback refused a chunk without saying the body is too large");
			break;
		}
		p += chunk;
	}
	if (t->body.len > 0 && memcmp(t->body.data, data, t->body.len) != 0)
		fail("the body callback kept other bytes than it was given");
	/* What the callbacks filled in, freed as cb_transfer_free (transport.c) frees it. */
	cb_buffer_free(&t->body);
	cb_buffer_wipe(&t->subject_token);
	free(t);
	return 0;
}
