/* The error codes that change what a failure means (codes.h), each with its source in
 * ../shared/reference/SERVICE-CONTRACTS.md: DOC (the service's documentation), LIVE (observed on a
 * real tenant), TF (Huawei's Terraform provider). */
#include "codes.h"

#include <string.h>

static const struct {
	const char *code;
	cb_code_meaning meaning;
} known[] = {
	/* §8.2: 422 for a job that does not exist, DEVCB. on v1 routes (LIVE; TF maps exactly this to
	 * "not found"), CB. on v3 routes (LIVE). */
	{"DEVCB.00031006", CB_CODE_JOB_MISSING},
	{"CB.00031006", CB_CODE_JOB_MISSING},
	/* §8.2: 403 "task not built yet or history deleted" (LIVE). */
	{"CB.00031059", CB_CODE_BUILD_MISSING},
	/* §8.2: "too many requests, retry later", HTTP 500 in the English page, 400 in the Chinese (DOC). */
	{"CB.00060211", CB_CODE_THROTTLED},
	/* §8.3: the gateway's throttling, 429 (DOC). */
	{"APIG.0308", CB_CODE_THROTTLED},
	{"APIGW.0308", CB_CODE_THROTTLED},
	/* §8.3: bad, expired or missing token; signature mismatch; unknown AK (0301); app
	 * authentication, a signature date 15 minutes off (0303) (DOC). Spelt APIG. in bodies, APIGW.
	 * in the signing guide. */
	{"APIG.0301", CB_CODE_CREDENTIALS},
	{"APIGW.0301", CB_CODE_CREDENTIALS},
	{"APIG.0303", CB_CODE_CREDENTIALS},
	{"APIGW.0303", CB_CODE_CREDENTIALS},
	/* §8.3: 404, API not found or not published (DOC, LIVE); §8.2: 404 URL not found (DOC). */
	{"APIG.0101", CB_CODE_NO_API},
	{"APIGW.0101", CB_CODE_NO_API},
	{"CB.00060214", CB_CODE_NO_API},
	/* §8.2: 500 "calling the Octopus service failed", for builds that never ran: permanent (LIVE). */
	{"CB.00030004", CB_CODE_PERMANENT},
};

cb_code_meaning cb_code_meaning_of(const char *code)
{
	size_t i;

	for (i = 0; code && code[0] && i < sizeof known / sizeof known[0]; i++)
		if (strcmp(code, known[i].code) == 0)
			return known[i].meaning;
	return CB_CODE_OTHER;
}

/* The string after `"key"`, optional blanks, ':' and blanks, as far as its closing quote. */
static size_t string_after(const char *body, size_t len, const char *key, const char **value)
{
	size_t key_len = strlen(key), i = 0;

	while (i + key_len <= len) {
		const char *hit = memchr(body + i, '"', len - i), *p, *end = body + len;
		size_t n = 0;
		if (hit == NULL || (size_t)(end - hit) < key_len + 2)
			return 0;
		i = (size_t)(hit - body) + 1;
		if (memcmp(hit + 1, key, key_len) != 0 || hit[key_len + 1] != '"')
			continue;
		for (p = hit + key_len + 2; p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'); p++)
			;
		if (p >= end || *p++ != ':')
			continue;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
			p++;
		if (p >= end || *p++ != '"')
			continue;
		while (p + n < end && p[n] != '"' && p[n] != '\\')
			n++;
		if (p + n >= end || p[n] != '"')
			continue;
		*value = p;
		return n;
	}
	return 0;
}

size_t cb_code_in_body(const char *body, size_t len, int success, char *out, size_t outlen)
{
	static const char *const keys[] = {"error_code", "errorCode", "err_code", "code"};
	size_t k, n = 0, j = 0, i;
	const char *value = NULL;

	if (outlen == 0)
		return 0;
	out[0] = '\0';
	for (k = 0; body && k < (success ? 1 : sizeof keys / sizeof keys[0]) && n == 0; k++)
		n = string_after(body, len, keys[k], &value);
	for (i = 0; i < n && j + 1 < outlen; i++)
		if ((unsigned char)value[i] > 32 && (unsigned char)value[i] < 127)
			out[j++] = value[i];
	out[j] = '\0';
	return j;
}
