/* The HTTP engine: one libcurl multi handle per client, and every transfer it owns from submission
 * to the moment its owner takes it back. No Lua here, and the engine never calls back into Lua.
 *
 * A transfer's life: queued (until its start time has come and the concurrency cap, the rate and
 * the gate allow it) -> in flight -> queued again for a retry, or finished. The binding settles
 * each finished transfer (sends it again, or delivers it) and a delivered transfer waits, done,
 * until its owner takes it: poll() takes the oldest that is not held, take(id) any one. */
#ifndef CODEARTSBUILD_TRANSPORT_H
#define CODEARTSBUILD_TRANSPORT_H

#include <stddef.h>
#include <curl/curl.h>

#include "buffer.h"
#include "codes.h"
#include "pace.h"

typedef struct cb_transfer cb_transfer;

/* Builds the request headers for one attempt, at the moment it starts (so a signature is
 * always fresh). Returns NULL when it cannot. The engine wipes and frees the list. */
typedef struct curl_slist *(*cb_prepare_fn)(void *ctx, cb_transfer *t);

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

typedef enum {
	CB_QUEUED = 1, /* waiting to start (or to start again) */
	CB_IN_FLIGHT,
	CB_FINISHED, /* its last attempt ended: waits for the binding to settle it */
	CB_SETTLING, /* handed to the binding by cb_engine_next_finished */
	CB_DONE,     /* delivered: waits for its owner */
} cb_transfer_state;

/* Flags of cb_engine_submit. */
enum {
	CB_HELD = 1,    /* poll never returns it: its owner takes it by id */
	CB_UNGATED = 2, /* starts while the gate is closed: the sign-in the others wait for */
	CB_STREAM = 4,  /* a file: its body goes to its owner a chunk at a time (see "Streams" below) */
};

/* How a streamed transfer's attempt treats its body, decided at its first byte. */
enum {
	CB_STREAM_UNDECIDED = 0,
	CB_STREAM_FLOWING,   /* a 2xx answer that is not JSON: the bytes go to t->stream */
	CB_STREAM_BUFFERING, /* an error or a JSON answer: into t->body, up to max_body, as any other */
};

/* A stream hands its owner at most this many bytes at a time: the write callback pauses the
 * transfer when the next piece would not fit, until the owner has read what is there. */
#define CB_STREAM_CHUNK 65536

struct cb_transfer {
	long long id;
	int flags;    /* CB_HELD, CB_UNGATED */
	int attempts; /* attempts started so far */
	long long submitted_ms, finished_ms; /* monotonic clock */
	/* The outcome of the last attempt, filled in when the transfer is finished. */
	CURLcode result;
	long status;        /* HTTP status, 0 when no response arrived */
	int body_too_large; /* stopped at max_body */
	int unsent;         /* finished by cb_engine_fail_queued, without an attempt */
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
	/* CB_STREAM: the bytes its owner has not read yet (at most about CB_STREAM_CHUNK), how many
	 * went into the stream over all attempts, and how many of this attempt's body were seen: an
	 * attempt after a failure skips what the ones before it gave (no byte twice, none lost, when
	 * the server sends the same file again). */
	cb_buffer stream;
	long long streamed, attempt_seen;
	int stream_mode; /* CB_STREAM_UNDECIDED, _FLOWING or _BUFFERING, for this attempt */
	int paused;      /* the write callback paused the transfer: the stream is full */
	int signalled;   /* new stream bytes since cb_engine_run last looked */
	/* The engine's own. */
	cb_transfer_state state;
	int cancelled; /* cancelled while the binding settled it: freed by cb_engine_deliver/_resubmit */
	char *url;
	long long not_before_ns;
	CURL *easy;
	int posted; /* easy has POSTFIELDS set: return_easy_handle turns it back into a GET */
	struct curl_slist *headers;
	size_t max_body;
	cb_transfer *prev, *next; /* in the list of its state */
	cb_transfer *index_next;  /* in its bucket of the engine's id index */
};

typedef struct cb_engine cb_engine;

cb_engine *cb_engine_new(const cb_transport_options *opts, char *err, size_t errlen);
void cb_engine_free(cb_engine *engine); /* drops every transfer it owns */

/* After fork(), in the child: closes the engine's sockets without a word to the peer (no TLS
 * close_notify, nothing read: they are the parent's connections too) and leaves the rest of its
 * memory alone. Returns the last id it gave, so that a new engine never gives one again. */
long long cb_engine_abandon(cb_engine *engine);
void cb_engine_continue_ids(cb_engine *engine, long long last_id);

/* Queues a GET of base + path (+ '?' + query); base NULL: the engine's base_url. Returns NULL
 * with a message on failure. Set t->request_body before the next run to make it a POST. */
cb_transfer *cb_engine_submit(cb_engine *engine, const char *base, const char *path, const char *query,
			      int flags, size_t user_size, char *err, size_t errlen);

/* Runs transfers until at least one has finished or a stream got new bytes, nothing is left that
 * could run, or timeout_ms has passed (0: one pass without waiting; negative: no limit). Returns
 * how many are finished (waiting for cb_engine_next_finished), or -1 on a libcurl multi failure. */
int cb_engine_run(cb_engine *engine, long timeout_ms, char *err, size_t errlen);

/* Settling: the oldest finished transfer, handed to the binding, which gives it back with exactly
 * one of resubmit (another attempt at once; path NULL keeps the path), deliver (done: it waits for
 * its owner) or drop (freed). A transfer cancelled meanwhile is freed by any of the three; the
 * binding may still read it until then, and must not touch it after. */
cb_transfer *cb_engine_next_finished(cb_engine *engine);
int cb_engine_resubmit(cb_engine *engine, cb_transfer *t, const char *path);
void cb_engine_deliver(cb_engine *engine, cb_transfer *t);
void cb_engine_drop(cb_engine *engine, cb_transfer *t);

/* Points a transfer of this engine (queued, or being settled) at another path of the engine's base,
 * keeping its query: 0, or -1 (out of memory). */
int cb_engine_set_path(cb_engine *engine, cb_transfer *t, const char *path);
/* Calls fn on every queued transfer (fn may set its path, not move it). */
void cb_engine_each_queued(cb_engine *engine, void (*fn)(cb_engine *e, cb_transfer *t, void *ctx), void *ctx);

/* Taking: a done transfer leaves the engine; the caller frees it with cb_transfer_free. */
cb_transfer *cb_engine_next_done(cb_engine *engine);   /* the oldest that is not held, or NULL */
cb_transfer *cb_engine_take(cb_engine *engine, long long id); /* that one if done, or NULL */
void cb_transfer_free(cb_transfer *t);

/* The transfer with this id while the engine owns it (look at its state), or NULL. */
cb_transfer *cb_engine_find(const cb_engine *engine, long long id);
long long cb_engine_last_id(const cb_engine *engine);

/* A queued transfer starts no earlier than delay_ms from now (a poll interval, without a sleep in
 * the caller: the engine's waits sleep until then). */
void cb_engine_defer(cb_engine *engine, cb_transfer *t, long delay_ms);

/* ---- Streams (CB_STREAM) ----
 * A streamed transfer (always held) hands the body of a 2xx answer that is not JSON to its owner
 * a chunk at a time: the write callback appends to t->stream and pauses the transfer
 * (CURL_WRITEFUNC_PAUSE) when the next piece would not fit; the owner reads t->stream (at any
 * state of the transfer: bytes of a failed attempt stay readable) and calls
 * cb_engine_stream_consumed, which empties it and resumes the transfer. max_body does not apply
 * to those bodies, compressed encodings are accepted (libcurl's zlib), and `timeout_ms` bounds
 * the time without a byte instead of the whole transfer (a 50 MB log may take longer than one
 * request should, and a paused transfer is not slow). A stream runs over HTTP/1.1 on a connection
 * of its own, in the engine's second multi handle (stream.c says why). An error answer, or a JSON one (a file
 * route that answers JSON has failed: SERVICE-CONTRACTS section 5.1), is read into t->body as any
 * other. cb_engine_run also returns when a stream got new bytes. A paused stream does not count
 * against max_in_flight: its owner may send other requests before it reads on. */
void cb_engine_stream_consumed(cb_transfer *t);

/* Drops the transfer with this id wherever it is; 1 if there was one. */
int cb_engine_cancel(cb_engine *engine, long long id);

/* Whether anything could still start or finish: a transfer in flight, or one queued that the gate
 * lets through. */
int cb_engine_can_progress(const cb_engine *engine);

/* Transfers the engine owns, held (held != 0) or not. */
size_t cb_engine_count(const cb_engine *engine, int held);

/* The gate: while closed, only CB_UNGATED transfers start; the others wait in the queue. */
void cb_engine_gate(cb_engine *engine, int closed);

/* Lets the oldest queued transfer that the gate holds back through it (CB_UNGATED); returns it,
 * or NULL when there is none. */
cb_transfer *cb_engine_promote(cb_engine *engine);

/* Finishes every queued transfer that the gate holds back, unsent, calling fail(t, ctx) on each
 * (to say why). Returns how many. */
size_t cb_engine_fail_queued(cb_engine *engine, void (*fail)(cb_transfer *t, void *ctx), void *ctx);

/* Whether an attempt that ended like this is worth another (network, timeout, a failed TLS
 * handshake, 429, 5xx, a throttling code whatever the status; not a 5xx whose code says it is
 * permanent): the one rule for what is retried, which err.retryable reads too. */
int cb_transfer_retryable(const cb_transfer *t);

/* The error code of a finished transfer's body (codes.h), and what it means. */
cb_code_meaning cb_response_code(const cb_transfer *t, char *code, size_t len);

/* Epoch seconds of an ISO 8601 UTC time such as 2026-11-28T21:24:19.000000Z, or -1. */
long long cb_parse_iso_utc(const char *text);

/* Seconds from a Retry-After value (delta-seconds or an HTTP date), or -1. */
long cb_parse_retry_after(const char *value, long long now_s);

#endif
