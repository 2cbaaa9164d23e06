/* The HTTP engine: one libcurl multi handle, transfers in flight, a queue of finished ones.
 * No Lua here, and nothing here calls back into the caller: results wait in the done queue. */
#ifndef CODEARTSBUILD_TRANSPORT_H
#define CODEARTSBUILD_TRANSPORT_H

#include <stddef.h>
#include <curl/curl.h>

#include "buffer.h"

typedef struct {
	long timeout_ms;
	long connect_timeout_ms;
	size_t max_body;
	const char *ca_file;    /* NULL: the system's CA store */
	int insecure;           /* turns certificate and host name checks off */
	int allow_http;         /* permit http:// as well as https:// */
	const char *user_agent;
} cb_transport_options;

typedef struct cb_transfer cb_transfer;
struct cb_transfer {
	long long id;
	/* Filled in by the engine when the transfer ends. */
	CURLcode result;
	long status;        /* HTTP status, 0 when no response arrived */
	int body_too_large; /* stopped at max_body */
	cb_buffer body;
	char request_id[72];  /* X-Request-Id, sanitised */
	char retry_after[64]; /* Retry-After, sanitised */
	char error[CURL_ERROR_SIZE];
	void *user; /* user_size bytes of the caller's, zeroed, freed with the transfer */
	/* The engine's own. */
	CURL *easy;
	struct curl_slist *headers;
	size_t max_body;
	cb_transfer *prev, *next;
};

typedef struct cb_engine cb_engine;

cb_engine *cb_engine_new(const cb_transport_options *opts, char *err, size_t errlen);
void cb_engine_free(cb_engine *engine); /* aborts what is in flight */

/* Starts a GET. The engine owns headers from here on, whatever happens (they are wiped when
 * freed: they carry credentials). Returns NULL with a message in err on failure. */
cb_transfer *cb_engine_start(cb_engine *engine, const char *url, struct curl_slist *headers,
			     size_t user_size, char *err, size_t errlen);

/* Runs transfers until one has finished, nothing is in flight, or timeout_ms has passed
 * (0: do what can be done without waiting; negative: no limit). Returns 0, or -1 on a
 * libcurl multi failure (message in err). */
int cb_engine_run(cb_engine *engine, long timeout_ms, char *err, size_t errlen);

cb_transfer *cb_engine_next_done(cb_engine *engine);          /* oldest finished, or NULL */
cb_transfer *cb_engine_take_done(cb_engine *engine, long long id); /* that one if finished */
size_t cb_engine_in_flight(const cb_engine *engine);
size_t cb_engine_done_count(const cb_engine *engine);

void cb_transfer_free(cb_transfer *t); /* only for transfers taken out of the done queue */

#endif
