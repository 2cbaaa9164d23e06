/* The HTTP engine: one libcurl multi handle per client. A transfer waits in a queue until it
 * may start (its start time has come, the concurrency cap and the rate allow it), runs, and is
 * either queued again for a retry or put in the done queue. No Lua here, and the engine never
 * calls back into Lua: results wait in the done queue until the caller takes them. */
#ifndef CODEARTSBUILD_TRANSPORT_H
#define CODEARTSBUILD_TRANSPORT_H

#include <stddef.h>
#include <curl/curl.h>

#include "buffer.h"

typedef struct cb_transfer cb_transfer;

/* Builds the request headers for one attempt, at the moment it starts (so a signature is
 * always fresh). Returns NULL when it cannot. The engine wipes and frees the list. */
typedef struct curl_slist *(*cb_prepare_fn)(void *ctx, const cb_transfer *t);

typedef struct {
	const char *base_url; /* scheme://authority, no trailing slash */
	long timeout_ms;      /* per attempt */
	long connect_timeout_ms;
	size_t max_body;
	const char *ca_file; /* NULL: the system's CA store */
	int insecure;        /* turns certificate and host name checks off */
	int allow_http;      /* permit http:// as well as https:// */
	const char *user_agent;
	int max_in_flight; /* concurrency cap */
	double rate;       /* attempts started per second at most; 0: no cap */
	int retries;       /* further attempts after a retryable failure */
	long backoff_ms;   /* base of the exponential backoff, with full jitter */
	long max_backoff_ms; /* cap of the backoff and of Retry-After */
	cb_prepare_fn prepare;
	void *prepare_ctx;
} cb_transport_options;

struct cb_transfer {
	long long id;
	int attempts; /* attempts started so far */
	long long submitted_ms, finished_ms; /* monotonic clock */
	/* The outcome of the last attempt, filled in when the transfer is done. */
	CURLcode result;
	long status;        /* HTTP status, 0 when no response arrived */
	int body_too_large; /* stopped at max_body */
	cb_buffer body;
	char request_id[72];  /* X-Request-Id, sanitised */
	cb_buffer subject_token; /* X-Subject-Token (an IAM token: wiped when freed) */
	char retry_after[64]; /* Retry-After, sanitised */
	char error[CURL_ERROR_SIZE];
	void *user; /* user_size bytes of the caller's, zeroed, freed with the transfer */
	/* What is requested: the path as given, and the canonical query (or NULL); a POST when
	 * request_body is set (wiped when freed: it may hold a password). */
	char *path, *query;
	cb_buffer request_body;
	/* The engine's own. */
	char *url;
	long long not_before_ms;
	CURL *easy;
	int posted; /* easy has POSTFIELDS set: return_easy_handle turns it back into a GET */
	struct curl_slist *headers;
	size_t max_body;
	cb_transfer *prev, *next;
};

typedef struct cb_engine cb_engine;

cb_engine *cb_engine_new(const cb_transport_options *opts, char *err, size_t errlen);
void cb_engine_free(cb_engine *engine); /* drops everything queued, in flight or done */

/* Queues a GET of base + path (+ '?' + query); base NULL: the engine's base_url. Returns NULL
 * with a message on failure. Set t->request_body before the next run to make it a POST. */
cb_transfer *cb_engine_submit(cb_engine *engine, const char *base, const char *path, const char *query,
			      size_t user_size, char *err, size_t errlen);

/* Queues a done transfer again, at once, for another path (keeps its id and attempts). */
int cb_engine_resubmit(cb_engine *engine, cb_transfer *t, const char *path);

/* Runs transfers until one is done, nothing is pending, or timeout_ms has passed (0: only what
 * can be done without waiting; negative: no limit). Returns 0, or -1 on a libcurl multi failure. */
int cb_engine_run(cb_engine *engine, long timeout_ms, char *err, size_t errlen);

cb_transfer *cb_engine_next_done(cb_engine *engine);               /* oldest done, or NULL */
cb_transfer *cb_engine_take_done(cb_engine *engine, long long id); /* that one if done */

/* Drops the transfer with this id wherever it is; 1 if there was one. */
int cb_engine_cancel(cb_engine *engine, long long id);

size_t cb_engine_pending(const cb_engine *engine); /* queued + in flight + done */
size_t cb_engine_done_count(const cb_engine *engine);

void cb_transfer_free(cb_transfer *t); /* only for transfers taken out of the done queue */

/* Whether an attempt that ended like this is worth another (network, timeout, 429, 5xx). */
int cb_transfer_retryable(const cb_transfer *t);

/* Epoch seconds of an ISO 8601 UTC time such as 2026-11-28T21:24:19.000000Z, or -1. */
long long cb_parse_iso_utc(const char *text);

/* Seconds from a Retry-After value (delta-seconds or an HTTP date), or -1. */
long cb_parse_retry_after(const char *value, long long now_s);

#endif
