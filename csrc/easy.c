/* The easy handles of one engine: configured once with the options every attempt shares and
 * kept between attempts (curl_easy_reset and setting them again cost more than the transfer's own
 * options); the proxy variables read once; the sockets libcurl opens, tracked so that a forked
 * child can let go of them. */
#include "easy.h"

#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>

/* libcurl reads these for every transfer (5 getenv a record); read once, by its rules (lib/url.c,
 * detect_proxy): the scheme's own variable, upper case too except HTTP_PROXY, then all_proxy or
 * ALL_PROXY; no_proxy or NO_PROXY; an empty variable is as good as none. */
static const char *env_value(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

static char *env_proxy(int https)
{
	const char *v = env_value(https ? "https_proxy" : "http_proxy");

	if (v == NULL && https)
		v = env_value("HTTPS_PROXY");
	if (v == NULL)
		v = env_value("all_proxy");
	if (v == NULL)
		v = env_value("ALL_PROXY");
	return cb_strdup(v ? v : "");
}

static char *env_noproxy(void)
{
	const char *v = env_value("no_proxy");

	if (v == NULL)
		v = env_value("NO_PROXY");
	return cb_strdup(v ? v : "");
}

/* ---- sockets: opened and closed through us ---- */

static curl_socket_t open_socket(void *pool, curlsocktype purpose, struct curl_sockaddr *address)
{
	cb_easy_pool *e = pool;
	curl_socket_t s;

	(void)purpose;
	if (e->socket_count == e->socket_cap) {
		size_t cap = e->socket_cap ? 2 * e->socket_cap : 16;
		curl_socket_t *grown = realloc(e->sockets, cap * sizeof *grown);
		if (grown == NULL)
			return CURL_SOCKET_BAD;
		e->sockets = grown;
		e->socket_cap = cap;
	}
#ifdef SOCK_CLOEXEC
	s = socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
#else
	s = socket(address->family, address->socktype, address->protocol);
	if (s != CURL_SOCKET_BAD)
		fcntl(s, F_SETFD, FD_CLOEXEC); /* a program the host runs does not inherit our connections */
#endif
	if (s != CURL_SOCKET_BAD)
		e->sockets[e->socket_count++] = s;
	return s;
}

static int close_socket(void *pool, curl_socket_t s)
{
	cb_easy_pool *e = pool;
	size_t i;

	for (i = 0; i < e->socket_count; i++) {
		if (e->sockets[i] == s) {
			e->sockets[i] = e->sockets[--e->socket_count];
			break;
		}
	}
	return close(s);
}

/* ---- the pool ---- */

int cb_easy_pool_init(cb_easy_pool *pool, const cb_transport_options *opts)
{
	memset(pool, 0, sizeof *pool);
	pool->opts = opts;
	pool->proxy[0] = env_proxy(0);
	pool->proxy[1] = env_proxy(1);
	pool->noproxy = env_noproxy();
	pool->share = curl_share_init();
	if (!pool->proxy[0] || !pool->proxy[1] || !pool->noproxy || !pool->share)
		return -1;
	curl_share_setopt(pool->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(pool->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return 0;
}

void cb_easy_pool_free(cb_easy_pool *pool)
{
	size_t i;

	for (i = 0; i < pool->idle_count; i++)
		curl_easy_cleanup(pool->idle[i]);
	pool->idle_count = 0;
	if (pool->share) /* after every easy handle that used it is gone */
		curl_share_cleanup(pool->share);
	pool->share = NULL;
	free(pool->sockets);
	pool->sockets = NULL;
	cb_free_secret(&pool->proxy[0]); /* a proxy URL may hold a password */
	cb_free_secret(&pool->proxy[1]);
	cb_free_secret(&pool->noproxy);
}

void cb_easy_pool_let_go(cb_easy_pool *pool)
{
	size_t i;

	for (i = 0; i < pool->socket_count; i++)
		close(pool->sockets[i]); /* only this process's descriptor: the parent's connection lives on */
	pool->socket_count = 0;
}

/* ---- handles ---- */

#define SET(option, value) \
	if (rc == CURLE_OK)  \
	rc = curl_easy_setopt(c, option, value)

/* The proxy options, where libcurl has them (it reads no variable without proxy support either). */
static CURLcode set_proxy_option(CURL *c, CURLoption option, const char *value)
{
	CURLcode rc = curl_easy_setopt(c, option, value);

	return rc == CURLE_UNKNOWN_OPTION || rc == CURLE_NOT_BUILT_IN ? CURLE_OK : rc;
}

/* Whether the proxy depends on the URL's scheme (the endpoint and IAM may differ). */
static int proxy_per_scheme(const cb_easy_pool *e)
{
	return strcmp(e->proxy[0], e->proxy[1]) != 0;
}

/* libcurl (7.88) allocates its receive buffer at the start of every transfer and frees it at the
 * end. At the default 16 KB that block usually comes from the top of the heap, and freeing it
 * there lets glibc trim the heap after the Lua collector has freed memory below it; the next
 * records then fault those pages in again. 8 KB blocks are found among the heap's free chunks
 * instead: a records() walk made 0.04 page faults per record instead of 0.2 to 0.6, and needed a
 * third less CPU (bench/PROFILE.md). Record bodies are about 1.3 KB: one read still takes one. */
#define RECEIVE_BUFFER_SIZE 8192L

/* A new easy handle with the options every attempt of this engine shares. Kept handles keep
 * them: curl_easy_reset and setting them again cost more than the transfer's own options. */
static CURL *new_easy_handle(cb_easy_pool *e)
{
	const cb_transport_options *o = e->opts;
	CURL *c = curl_easy_init();
	CURLcode rc = CURLE_OK;

	if (c == NULL)
		return NULL;
	SET(CURLOPT_WRITEFUNCTION, cb_response_body);
	SET(CURLOPT_HEADERFUNCTION, cb_response_header);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_body);
	SET(CURLOPT_SHARE, e->share);
	SET(CURLOPT_OPENSOCKETFUNCTION, open_socket);
	SET(CURLOPT_OPENSOCKETDATA, (void *)e);
	SET(CURLOPT_CLOSESOCKETFUNCTION, close_socket);
	SET(CURLOPT_CLOSESOCKETDATA, (void *)e);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_BUFFERSIZE, RECEIVE_BUFFER_SIZE);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	/* HTTP/2 where the server offers it (libcurl's default since 7.62, asked for in case it is
	 * older), and a transfer that finds a connection still handshaking waits for it to say whether
	 * it multiplexes instead of opening its own: a walk is then one connection, its concurrency
	 * streams on it (a 400-build walk at 40 ms opened 16 connections and used one). */
	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
	SET(CURLOPT_PIPEWAIT, 1L);
	SET(CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
	if (o->ca_file)
		SET(CURLOPT_CAINFO, o->ca_file);
	if (o->user_agent)
		SET(CURLOPT_USERAGENT, o->user_agent);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, o->allow_http ? "https,http" : "https");
#else
	SET(CURLOPT_PROTOCOLS, o->allow_http ? (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP) : (long)CURLPROTO_HTTPS);
#endif
	/* Set, even to "", these stop libcurl's look-ups; the values are the ones it would find. */
	if (rc == CURLE_OK)
		rc = set_proxy_option(c, CURLOPT_NOPROXY, e->noproxy);
	if (rc == CURLE_OK && !proxy_per_scheme(e))
		rc = set_proxy_option(c, CURLOPT_PROXY, e->proxy[0]);
	if (rc != CURLE_OK) {
		curl_easy_cleanup(c);
		return NULL;
	}
	return c;
}


/* Takes t's handle back. A kept handle is left as new_easy_handle made it: nothing of t's (its
 * memory goes with it), and a GET again if t was a POST. A stream's handle is not kept: it has a
 * stream's options, and it may have been paused with bytes libcurl still holds for t. */
void cb_easy_return(cb_easy_pool *e, cb_transfer *t)
{
	CURL *c = t->easy;
	CURLcode rc = CURLE_OK;

	t->easy = NULL;
	if (t->flags & CB_STREAM) {
		curl_easy_cleanup(c);
		return;
	}
	SET(CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	SET(CURLOPT_ERRORBUFFER, (char *)NULL);
	SET(CURLOPT_PRIVATE, (void *)NULL);
	if (t->posted) {
		t->posted = 0;
		SET(CURLOPT_POSTFIELDS, (char *)NULL); /* this one makes it a POST again... */
		SET(CURLOPT_POSTFIELDSIZE, -1L);
		SET(CURLOPT_HTTPGET, 1L); /* ...and this a GET */
	}
	if (rc == CURLE_OK && e->idle_count < CB_IDLE_HANDLES_KEPT)
		e->idle[e->idle_count++] = c;
	else
		curl_easy_cleanup(c);
}

/* A stream's options (transport.h, "Streams"): HTTP/1.1 on a connection of its own (stream.c),
 * no size limit (the write callback applies max_body to what it does not stream), any encoding
 * libcurl can decode (Accept-Encoding lists them), and the timeout as the time allowed without a
 * byte, which a paused transfer does not count. */
static CURLcode configure_stream(cb_easy_pool *e, CURL *c)
{
	long idle_s = (e->opts->timeout_ms + 999) / 1000;
	CURLcode rc = CURLE_OK;

	SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1); /* stream.c says why */
	SET(CURLOPT_PIPEWAIT, 0L);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)0);
	SET(CURLOPT_TIMEOUT_MS, 0L);
	SET(CURLOPT_LOW_SPEED_LIMIT, 1L);
	SET(CURLOPT_LOW_SPEED_TIME, idle_s > 0 ? idle_s : 1L);
	SET(CURLOPT_ACCEPT_ENCODING, "");
	return rc;
}

/* The options of one attempt. */
static CURLcode configure(cb_easy_pool *e, cb_transfer *t)
{
	CURL *c = t->easy;
	CURLcode rc = CURLE_OK;

	SET(CURLOPT_URL, t->url);
	SET(CURLOPT_HTTPHEADER, t->headers);
	SET(CURLOPT_PRIVATE, (void *)t);
	SET(CURLOPT_WRITEDATA, (void *)t);
	SET(CURLOPT_HEADERDATA, (void *)t);
	SET(CURLOPT_ERRORBUFFER, t->error);
	if (rc == CURLE_OK && proxy_per_scheme(e))
		rc = set_proxy_option(c, CURLOPT_PROXY, e->proxy[strncmp(t->url, "https://", 8) == 0]);
	if (t->request_body.data) {
		t->posted = 1;
		SET(CURLOPT_POSTFIELDSIZE, (long)t->request_body.len);
		SET(CURLOPT_POSTFIELDS, t->request_body.data);
	}
	if (rc == CURLE_OK && (t->flags & CB_STREAM))
		rc = configure_stream(e, c);
	return rc;
}
CURL *cb_easy_take(cb_easy_pool *e, cb_transfer *t, CURLcode *rc)
{
	t->easy = e->idle_count > 0 ? e->idle[--e->idle_count] : new_easy_handle(e);
	if (t->easy == NULL) {
		*rc = CURLE_OUT_OF_MEMORY;
		return NULL;
	}
	*rc = configure(e, t);
	if (*rc != CURLE_OK) {
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
		t->posted = 0;
	}
	return t->easy;
}
#undef SET

