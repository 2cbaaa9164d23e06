/* The easy handles of one engine (easy.c), and what libcurl's callbacks keep of a response
 * (response.c): the engine's own, shared by transport.c, easy.c and response.c. No Lua here. */
#ifndef CODEARTSBUILD_EASY_H
#define CODEARTSBUILD_EASY_H

#include <curl/curl.h>

#include "sockets.h"
#include "transport.h"

#define CB_IDLE_HANDLES_KEPT 64

/* Easy handles configured once with what every attempt of an engine shares, and kept between
 * attempts; the proxies from the environment, read once; the sockets libcurl opened through us. */
typedef struct {
	const cb_transport_options *opts; /* the engine's */
	CURLSH *share; /* TLS sessions and DNS answers outlive the easy handles */
	CURL *idle[CB_IDLE_HANDLES_KEPT];
	size_t idle_count;
	char *proxy[2], *noproxy; /* "" for none: [0] http://, [1] https:// */
	curl_socket_t *sockets;
	size_t socket_count, socket_cap;
} cb_easy_pool;

/* 0, or -1 (out of memory). */
int cb_easy_pool_init(cb_easy_pool *pool, const cb_transport_options *opts);
/* After the multi handle is gone (it closes the kept connections through the pool's sockets). */
void cb_easy_pool_free(cb_easy_pool *pool);
/* After fork(), in the child: closes the sockets, and only this process's descriptors of them. */
void cb_easy_pool_let_go(cb_easy_pool *pool);

/* A handle for t's attempt, configured (NULL, or a libcurl code in *rc); and back into the pool. */
CURL *cb_easy_take(cb_easy_pool *pool, cb_transfer *t, CURLcode *rc);
void cb_easy_return(cb_easy_pool *pool, cb_transfer *t);

/* stream.c: the streams' own multi handle (transport.h, "Streams"), its sockets and timer
 * (sockets.h), how many streams are in flight in it (transport.c counts them), and a scratch list
 * for the waits that watch its sockets and the other multi handle's together. */
typedef struct {
	CURLM *multi;
	cb_sockets sockets;
	size_t in_flight;
	struct pollfd *all;
	size_t all_cap;
} cb_stream_multi;

/* 0, or -1 (out of memory); s zeroed by the caller. */
int cb_stream_multi_init(cb_stream_multi *s);
void cb_stream_multi_free(cb_stream_multi *s);
/* cb_sockets_wait for both multi handles: waits up to wait_ns for a socket of either to be ready,
 * and tells the multi handle it belongs to. */
CURLMcode cb_stream_multi_wait(cb_stream_multi *s, cb_sockets *others, CURLM *others_multi, long long wait_ns);

/* response.c: libcurl's write and header callbacks (their data is the transfer), and the wait
 * before the next attempt: Retry-After, or full jitter from the backoff. */
size_t cb_response_body(char *data, size_t size, size_t nmemb, void *transfer);
size_t cb_response_header(char *line, size_t size, size_t nmemb, void *transfer);
long cb_retry_delay_ms(const cb_transfer *t, long backoff_ms, long max_backoff_ms, unsigned long long *jitter);

#endif
