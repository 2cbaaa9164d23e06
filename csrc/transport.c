/* The HTTP engine (transport.h): libcurl's multi interface, the queue, retries, the rate, the
 * gate, and the index by which every transfer it owns is found. */
#include "transport.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <openssl/crypto.h>

#define IDLE_HANDLES_KEPT 64
#define MAX_POLL_WAIT_MS 1000
#define INDEX_MIN_BUCKETS 64

typedef struct {
	cb_transfer *head, *tail;
	size_t count;
} transfer_list;

/* The rate cap as a token bucket on the monotonic clock: a start takes a token, tokens come back
 * at `rate` a second. Waits are whole milliseconds (curl_multi_poll), so the bucket holds what
 * 5 ms bring, plus one: a wait that ends late starts the requests it owes, and the average stays
 * exact (a spacing rounded to milliseconds made 2,500/s mean no cap at all). */
#define RATE_BURST_NS 5000000.0
typedef struct {
	double tokens, capacity;
	long long at_ns; /* when tokens was last brought up to date */
} token_bucket;

struct cb_engine {
	cb_transport_options opts; /* strings below are the engine's own copies */
	CURLM *multi;
	CURLSH *share; /* TLS sessions and DNS answers outlive the easy handles */
	CURL *idle[IDLE_HANDLES_KEPT]; /* easy handles kept for the next attempts */
	char *proxy[2], *noproxy; /* from the environment, "" for none: [0] http://, [1] https:// */
	size_t idle_count;
	long long next_id;
	token_bucket bucket;
	int gate_closed;
	unsigned long long jitter_state;
	transfer_list queued, in_flight, finished, done;
	/* Every transfer the engine owns, by id (ids are consecutive: id & mask spreads them). */
	cb_transfer **index;
	size_t index_mask, owned[2]; /* owned[held]: transfers in the index */
	/* The sockets libcurl opened through us, for cb_engine_abandon. */
	curl_socket_t *sockets;
	size_t socket_count, socket_cap;
};

long long cb_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

long long cb_now_ms(void)
{
	return cb_now_ns() / 1000000;
}

/* ---- lists ---- */

static void list_append(transfer_list *list, cb_transfer *t)
{
	t->next = NULL;
	t->prev = list->tail;
	if (list->tail)
		list->tail->next = t;
	else
		list->head = t;
	list->tail = t;
	list->count++;
}

static void list_remove(transfer_list *list, cb_transfer *t)
{
	if (t->prev)
		t->prev->next = t->next;
	else
		list->head = t->next;
	if (t->next)
		t->next->prev = t->prev;
	else
		list->tail = t->prev;
	t->prev = t->next = NULL;
	list->count--;
}

static transfer_list *list_of(cb_engine *e, cb_transfer_state state)
{
	switch (state) {
	case CB_QUEUED:
		return &e->queued;
	case CB_IN_FLIGHT:
		return &e->in_flight;
	case CB_FINISHED:
		return &e->finished;
	case CB_DONE:
		return &e->done;
	default:
		return NULL; /* CB_SETTLING: with the binding */
	}
}

/* Moves t (out of its list, if any) into the list of `state`. */
static void move_to(cb_engine *e, cb_transfer *t, cb_transfer_state state)
{
	transfer_list *from = list_of(e, t->state), *to = list_of(e, state);

	if (from)
		list_remove(from, t);
	t->state = state;
	if (to)
		list_append(to, t);
}

/* ---- the id index ---- */

static int index_grow(cb_engine *e)
{
	size_t buckets = e->index ? 2 * (e->index_mask + 1) : INDEX_MIN_BUCKETS, i;
	cb_transfer **index = calloc(buckets, sizeof *index);

	if (index == NULL)
		return -1;
	for (i = 0; e->index && i <= e->index_mask; i++) {
		cb_transfer *t = e->index[i], *following;
		for (; t != NULL; t = following) {
			following = t->index_next;
			t->index_next = index[(size_t)t->id & (buckets - 1)];
			index[(size_t)t->id & (buckets - 1)] = t;
		}
	}
	free(e->index);
	e->index = index;
	e->index_mask = buckets - 1;
	return 0;
}

static int index_add(cb_engine *e, cb_transfer *t)
{
	cb_transfer **bucket;

	if ((e->index == NULL || e->owned[0] + e->owned[1] > 2 * e->index_mask) && index_grow(e) != 0 &&
	    e->index == NULL)
		return -1;
	bucket = &e->index[(size_t)t->id & e->index_mask];
	t->index_next = *bucket;
	*bucket = t;
	e->owned[(t->flags & CB_HELD) != 0]++;
	return 0;
}

static void index_remove(cb_engine *e, cb_transfer *t)
{
	cb_transfer **p = &e->index[(size_t)t->id & e->index_mask];

	while (*p != t)
		p = &(*p)->index_next;
	*p = t->index_next;
	t->index_next = NULL;
	e->owned[(t->flags & CB_HELD) != 0]--;
}

cb_transfer *cb_engine_find(const cb_engine *e, long long id)
{
	cb_transfer *t;

	if (e->index == NULL || id <= 0)
		return NULL;
	for (t = e->index[(size_t)id & e->index_mask]; t != NULL && t->id != id; t = t->index_next)
		;
	return t;
}

size_t cb_engine_count(const cb_engine *e, int held)
{
	return e->owned[held != 0];
}

long long cb_engine_last_id(const cb_engine *e)
{
	return e->next_id;
}

void cb_engine_continue_ids(cb_engine *e, long long last_id)
{
	if (last_id > e->next_id)
		e->next_id = last_id;
}

/* ---- memory ---- */

/* The request headers carry the Authorization or X-Auth-Token value. */
static void wipe_headers(struct curl_slist **headers)
{
	struct curl_slist *h;

	for (h = *headers; h != NULL; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(*headers);
	*headers = NULL;
}

void cb_transfer_free(cb_transfer *t)
{
	if (t == NULL)
		return;
	wipe_headers(&t->headers);
	cb_buffer_free(&t->body);
	cb_buffer_wipe(&t->subject_token);
	cb_buffer_wipe(&t->request_body);
	free(t->path);
	free(t->query);
	free(t->url);
	free(t);
}

/* ---- sockets: opened and closed through us, so that a forked child can let go of them ---- */

static curl_socket_t open_socket(void *engine, curlsocktype purpose, struct curl_sockaddr *address)
{
	cb_engine *e = engine;
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

static int close_socket(void *engine, curl_socket_t s)
{
	cb_engine *e = engine;
	size_t i;

	for (i = 0; i < e->socket_count; i++) {
		if (e->sockets[i] == s) {
			e->sockets[i] = e->sockets[--e->socket_count];
			break;
		}
	}
	return close(s);
}

/* ---- engine ---- */

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

cb_engine *cb_engine_new(const cb_transport_options *opts, char *err, size_t errlen)
{
	cb_engine *e = calloc(1, sizeof *e);

	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->opts = *opts;
	e->opts.base_url = cb_strdup(opts->base_url);
	e->opts.ca_file = cb_strdup(opts->ca_file);
	e->opts.user_agent = cb_strdup(opts->user_agent);
	if (e->opts.max_in_flight < 1)
		e->opts.max_in_flight = 1;
	if (e->opts.rate > 0) {
		e->bucket.capacity = 1 + e->opts.rate * RATE_BURST_NS / 1e9;
		e->bucket.tokens = 1;
		e->bucket.at_ns = cb_now_ns();
	}
	e->jitter_state = (unsigned long long)cb_now_ns() * 6364136223846793005ULL ^ (unsigned long long)(size_t)e;
	e->proxy[0] = env_proxy(0);
	e->proxy[1] = env_proxy(1);
	e->noproxy = env_noproxy();
	e->multi = curl_multi_init();
	e->share = curl_share_init();
	if (e->multi == NULL || e->share == NULL || !e->opts.base_url || (opts->ca_file && !e->opts.ca_file) ||
	    (opts->user_agent && !e->opts.user_agent) || !e->proxy[0] || !e->proxy[1] || !e->noproxy ||
	    index_grow(e) != 0) {
		snprintf(err, errlen, "cannot create the HTTP engine (out of memory)");
		cb_engine_free(e);
		return NULL;
	}
	curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return e;
}

static void free_list(transfer_list *list)
{
	while (list->head) {
		cb_transfer *t = list->head;
		list_remove(list, t);
		cb_transfer_free(t);
	}
}

void cb_engine_free(cb_engine *e)
{
	cb_transfer *t;
	size_t i;

	if (e == NULL)
		return;
	for (t = e->in_flight.head; t != NULL; t = t->next) {
		curl_multi_remove_handle(e->multi, t->easy);
		curl_easy_cleanup(t->easy);
	}
	free_list(&e->in_flight);
	free_list(&e->queued);
	free_list(&e->finished);
	free_list(&e->done);
	for (i = 0; i < e->idle_count; i++)
		curl_easy_cleanup(e->idle[i]);
	if (e->multi) /* closes the kept connections, through close_socket */
		curl_multi_cleanup(e->multi);
	if (e->share) /* after every easy handle that used it is gone */
		curl_share_cleanup(e->share);
	free(e->index);
	free(e->sockets);
	free((char *)e->opts.base_url);
	free((char *)e->opts.ca_file);
	free((char *)e->opts.user_agent);
	cb_free_secret(&e->proxy[0]);
	cb_free_secret(&e->proxy[1]);
	cb_free_secret(&e->noproxy);
	free(e);
}

/* The engines a forked child let go of. Their memory is a copy of the parent's live engine: freeing
 * it through libcurl would shut the parent's TLS sessions down (SSL_shutdown writes close_notify,
 * and libcurl reads what is waiting first), so it stays allocated, and reachable from here. */
static cb_engine *abandoned[8];
static size_t abandoned_count;

long long cb_engine_abandon(cb_engine *e)
{
	size_t i;

	for (i = 0; i < e->socket_count; i++)
		close(e->sockets[i]); /* only this process's descriptor: the parent's connection lives on */
	e->socket_count = 0;
	if (abandoned_count < sizeof abandoned / sizeof abandoned[0])
		abandoned[abandoned_count++] = e;
	return e->next_id;
}

/* ---- callbacks (no Lua, no engine state beyond the transfer) ---- */

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

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	cb_transfer *t = userdata;
	size_t n = size * nmemb;

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

static size_t on_header(char *line, size_t size, size_t nmemb, void *userdata)
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

/* ---- starting attempts ---- */

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
static int proxy_per_scheme(const cb_engine *e)
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
static CURL *new_easy_handle(cb_engine *e)
{
	const cb_transport_options *o = &e->opts;
	CURL *c = curl_easy_init();
	CURLcode rc = CURLE_OK;

	if (c == NULL)
		return NULL;
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_HEADERFUNCTION, on_header);
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

static CURL *take_easy_handle(cb_engine *e)
{
	if (e->idle_count > 0)
		return e->idle[--e->idle_count];
	return new_easy_handle(e);
}

/* Takes t's handle back. A kept handle is left as new_easy_handle made it: nothing of t's (its
 * memory goes with it), and a GET again if t was a POST. */
static void return_easy_handle(cb_engine *e, cb_transfer *t)
{
	CURL *c = t->easy;
	CURLcode rc = CURLE_OK;

	t->easy = NULL;
	SET(CURLOPT_HTTPHEADER, (struct curl_slist *)NULL);
	SET(CURLOPT_ERRORBUFFER, (char *)NULL);
	SET(CURLOPT_PRIVATE, (void *)NULL);
	if (t->posted) {
		t->posted = 0;
		SET(CURLOPT_POSTFIELDS, (char *)NULL); /* this one makes it a POST again... */
		SET(CURLOPT_POSTFIELDSIZE, -1L);
		SET(CURLOPT_HTTPGET, 1L); /* ...and this a GET */
	}
	if (rc == CURLE_OK && e->idle_count < IDLE_HANDLES_KEPT)
		e->idle[e->idle_count++] = c;
	else
		curl_easy_cleanup(c);
}

/* The options of one attempt, on a handle from take_easy_handle. */

static CURLcode configure(cb_engine *e, cb_transfer *t)
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
	return rc;
}
#undef SET

static void reset_outcome(cb_transfer *t)
{
	t->result = CURLE_OK;
	t->status = 0;
	t->body_too_large = 0;
	cb_buffer_clear(&t->body);
	t->request_id[0] = t->retry_after[0] = t->error[0] = '\0';
	cb_buffer_wipe(&t->subject_token);
}

static void finish(cb_engine *e, cb_transfer *t)
{
	t->finished_ms = cb_now_ms();
	move_to(e, t, CB_FINISHED);
}

/* A transfer that cannot even start is finished, with the reason in its error buffer. */
static void fail_to_start(cb_engine *e, cb_transfer *t, const char *why)
{
	snprintf(t->error, sizeof t->error, "%s", why);
	t->result = CURLE_FAILED_INIT;
	finish(e, t);
}

static void start_attempt(cb_engine *e, cb_transfer *t)
{
	CURLcode rc;

	reset_outcome(t);
	t->attempts++;
	t->headers = e->opts.prepare(e->opts.prepare_ctx, t);
	if (t->headers == NULL) {
		fail_to_start(e, t, "cannot prepare the request headers");
		return;
	}
	t->easy = take_easy_handle(e);
	if (t->easy == NULL) {
		wipe_headers(&t->headers);
		fail_to_start(e, t, "cannot create a libcurl handle");
		return;
	}
	rc = configure(e, t);
	if (rc != CURLE_OK || curl_multi_add_handle(e->multi, t->easy) != CURLM_OK) {
		curl_easy_cleanup(t->easy);
		t->easy = NULL;
		t->posted = 0;
		wipe_headers(&t->headers);
		fail_to_start(e, t, rc != CURLE_OK ? curl_easy_strerror(rc) : "libcurl refused the transfer");
		return;
	}
	move_to(e, t, CB_IN_FLIGHT);
}

/* ---- the rate ---- */

static void refill(token_bucket *b, long long now_ns, double rate)
{
	if (now_ns > b->at_ns) {
		b->tokens += (double)(now_ns - b->at_ns) * rate / 1e9;
		if (b->tokens > b->capacity)
			b->tokens = b->capacity;
		b->at_ns = now_ns;
	}
}

/* Takes a token for a start now (1), or says when the next one comes (0, *when_ns). */
static int rate_allows(cb_engine *e, long long now_ns, long long *when_ns)
{
	token_bucket *b = &e->bucket;

	if (e->opts.rate <= 0)
		return 1;
	refill(b, now_ns, e->opts.rate);
	if (b->tokens >= 1) {
		b->tokens -= 1;
		return 1;
	}
	*when_ns = now_ns + (long long)((1 - b->tokens) * 1e9 / e->opts.rate) + 1;
	return 0;
}

/* Starts the queued transfers whose time has come, as far as the gate, the cap and the rate
 * allow. Returns the nanoseconds until the next one could start (-1: none is waiting on time). */
static long long start_ready(cb_engine *e)
{
	long long now = cb_now_ns(), next = -1;
	cb_transfer *t = e->queued.head;

	while (t != NULL && (int)e->in_flight.count < e->opts.max_in_flight) {
		cb_transfer *following = t->next;
		long long when = t->not_before_ns;

		if (e->gate_closed && !(t->flags & CB_UNGATED)) {
			/* waits for the gate */
		} else if (when > now) {
			if (next < 0 || when < next)
				next = when;
		} else if (!rate_allows(e, now, &when)) {
			if (next < 0 || when < next)
				next = when;
			break;
		} else {
			start_attempt(e, t);
		}
		t = following;
	}
	return next < 0 ? -1 : next - now;
}

/* ---- submitting ---- */

static int set_url(cb_transfer *t, const char *base, const char *path, const char *query)
{
	cb_buffer url = CB_BUFFER_INIT;

	cb_buffer_append_str(&url, base);
	cb_buffer_append_str(&url, path);
	if (query && *query) {
		cb_buffer_append_char(&url, '?');
		cb_buffer_append_str(&url, query);
	}
	if (url.failed) {
		cb_buffer_free(&url);
		return -1;
	}
	free(t->url);
	t->url = url.data; /* the buffer's memory now belongs to the transfer */
	return 0;
}

cb_transfer *cb_engine_submit(cb_engine *e, const char *base, const char *path, const char *query,
			      int flags, size_t user_size, char *err, size_t errlen)
{
	cb_transfer *t = calloc(1, sizeof *t + user_size);

	if (t == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->user = user_size ? (void *)(t + 1) : NULL;
	t->flags = flags;
	t->max_body = e->opts.max_body;
	t->path = cb_strdup(path);
	t->query = query && *query ? cb_strdup(query) : NULL;
	t->id = e->next_id + 1;
	if (!t->path || (query && *query && !t->query) || set_url(t, base ? base : e->opts.base_url, path, query) != 0 ||
	    index_add(e, t) != 0) {
		snprintf(err, errlen, "out of memory");
		cb_transfer_free(t);
		return NULL;
	}
	e->next_id = t->id;
	t->submitted_ms = cb_now_ms();
	t->not_before_ns = cb_now_ns();
	move_to(e, t, CB_QUEUED);
	return t;
}

/* A transfer the binding settles and that was cancelled meanwhile goes now. */
static int drop_if_cancelled(cb_engine *e, cb_transfer *t)
{
	if (!t->cancelled)
		return 0;
	cb_engine_drop(e, t);
	return 1;
}

int cb_engine_resubmit(cb_engine *e, cb_transfer *t, const char *path)
{
	if (drop_if_cancelled(e, t))
		return 0;
	if (path) {
		/* base_url + path + the query it had */
		const char *q = strchr(t->url + strlen(e->opts.base_url), '?');
		char *copy = cb_strdup(path);
		if (copy == NULL || set_url(t, e->opts.base_url, path, q ? q + 1 : NULL) != 0) {
			free(copy);
			return -1;
		}
		free(t->path);
		t->path = copy;
	}
	t->unsent = 0;
	t->not_before_ns = cb_now_ns();
	move_to(e, t, CB_QUEUED);
	return 0;
}

void cb_engine_deliver(cb_engine *e, cb_transfer *t)
{
	if (!drop_if_cancelled(e, t))
		move_to(e, t, CB_DONE);
}

void cb_engine_drop(cb_engine *e, cb_transfer *t)
{
	move_to(e, t, CB_SETTLING); /* out of any list */
	index_remove(e, t);
	cb_transfer_free(t);
}

/* ---- retries ---- */

int cb_transfer_retryable(const cb_transfer *t)
{
	if (t->body_too_large)
		return 0;
	switch (t->result) {
	case CURLE_OK:
		return t->status == 429 || t->status == 500 || t->status == 502 || t->status == 503 || t->status == 504;
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

static long long next_random(cb_engine *e)
{
	/* xorshift64*: jitter needs spread, not secrecy */
	e->jitter_state ^= e->jitter_state >> 12;
	e->jitter_state ^= e->jitter_state << 25;
	e->jitter_state ^= e->jitter_state >> 27;
	return (long long)((e->jitter_state * 2685821657736338717ULL) >> 1);
}

/* Full jitter: a random wait up to base * 2^(attempt-1), capped; Retry-After wins, capped too. */
static long retry_delay_ms(cb_engine *e, const cb_transfer *t)
{
	long long cap = e->opts.max_backoff_ms, ceiling = e->opts.backoff_ms;
	long after = t->retry_after[0] ? cb_parse_retry_after(t->retry_after, (long long)time(NULL)) : -1;
	int i;

	if (after >= 0)
		return after * 1000LL > cap ? (long)cap : after * 1000L;
	for (i = 1; i < t->attempts && ceiling < cap; i++)
		ceiling *= 2;
	if (ceiling > cap)
		ceiling = cap;
	return ceiling > 0 ? (long)(next_random(e) % (ceiling + 1)) : 0;
}

/* ---- finishing attempts ---- */

static void finish_attempt(cb_engine *e, cb_transfer *t, CURLcode result)
{
	t->result = result;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	curl_multi_remove_handle(e->multi, t->easy);
	return_easy_handle(e, t);
	wipe_headers(&t->headers);
	if (t->attempts <= e->opts.retries && cb_transfer_retryable(t)) {
		t->not_before_ns = cb_now_ns() + (long long)retry_delay_ms(e, t) * 1000000;
		move_to(e, t, CB_QUEUED);
	} else {
		finish(e, t);
	}
}

static void collect_finished(cb_engine *e)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
		cb_transfer *t = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		finish_attempt(e, t, msg->data.result);
	}
}

int cb_engine_can_progress(const cb_engine *e)
{
	const cb_transfer *t;

	if (e->in_flight.count > 0 || (e->queued.count > 0 && !e->gate_closed))
		return 1;
	for (t = e->queued.head; t != NULL; t = t->next)
		if (t->flags & CB_UNGATED)
			return 1;
	return 0;
}

static int multi_failure(CURLMcode mrc, char *err, size_t errlen)
{
	snprintf(err, errlen, "libcurl multi failure: %s", curl_multi_strerror(mrc));
	return -1;
}

int cb_engine_run(cb_engine *e, long timeout_ms, char *err, size_t errlen)
{
	long long deadline = timeout_ms >= 0 ? cb_now_ns() + (long long)timeout_ms * 1000000 : -1;

	for (;;) {
		int running = 0;
		long long wait_ns = (long long)MAX_POLL_WAIT_MS * 1000000, next_start;
		CURLMcode mrc;

		start_ready(e);
		mrc = curl_multi_perform(e->multi, &running);
		if (mrc != CURLM_OK)
			return multi_failure(mrc, err, errlen);
		collect_finished(e);
		if (e->finished.count > 0 || !cb_engine_can_progress(e))
			return (int)(e->finished.count > 0x7fffffff ? 0x7fffffff : e->finished.count);
		next_start = start_ready(e); /* retries due now, and slots just freed */
		if (next_start >= 0 && next_start < wait_ns)
			wait_ns = next_start;
		if (deadline >= 0) {
			long long left = deadline - cb_now_ns();
			if (left <= 0)
				return 0;
			if (left < wait_ns)
				wait_ns = left;
		}
		/* Whole milliseconds, rounded up: a wait never ends before the start it waits for. With
		 * nothing in flight this just sleeps until the next start time. */
		mrc = curl_multi_poll(e->multi, NULL, 0, (int)((wait_ns + 999999) / 1000000), NULL);
		if (mrc != CURLM_OK)
			return multi_failure(mrc, err, errlen);
	}
}

/* ---- settling and taking ---- */

cb_transfer *cb_engine_next_finished(cb_engine *e)
{
	cb_transfer *t = e->finished.head;

	if (t)
		move_to(e, t, CB_SETTLING);
	return t;
}

static cb_transfer *leave_engine(cb_engine *e, cb_transfer *t)
{
	list_remove(&e->done, t);
	t->state = CB_SETTLING; /* in no list: the caller's */
	index_remove(e, t);
	return t;
}

cb_transfer *cb_engine_next_done(cb_engine *e)
{
	cb_transfer *t;

	for (t = e->done.head; t != NULL && (t->flags & CB_HELD); t = t->next)
		;
	return t ? leave_engine(e, t) : NULL;
}

cb_transfer *cb_engine_take(cb_engine *e, long long id)
{
	cb_transfer *t = cb_engine_find(e, id);

	return t && t->state == CB_DONE ? leave_engine(e, t) : NULL;
}

int cb_engine_cancel(cb_engine *e, long long id)
{
	cb_transfer *t = cb_engine_find(e, id);

	if (t == NULL || t->cancelled)
		return 0;
	if (t->state == CB_SETTLING) { /* the binding holds it: deliver or resubmit will drop it */
		t->cancelled = 1;
		return 1;
	}
	if (t->state == CB_IN_FLIGHT) {
		curl_multi_remove_handle(e->multi, t->easy);
		return_easy_handle(e, t);
	}
	move_to(e, t, CB_SETTLING); /* out of its list */
	index_remove(e, t);
	cb_transfer_free(t);
	return 1;
}

void cb_engine_gate(cb_engine *e, int closed)
{
	e->gate_closed = closed;
}

cb_transfer *cb_engine_promote(cb_engine *e)
{
	cb_transfer *t;

	for (t = e->queued.head; t != NULL && (t->flags & CB_UNGATED); t = t->next)
		;
	if (t)
		t->flags |= CB_UNGATED;
	return t;
}

size_t cb_engine_fail_queued(cb_engine *e, void (*fail)(cb_transfer *t, void *ctx), void *ctx)
{
	cb_transfer *t = e->queued.head;
	size_t n = 0;

	while (t != NULL) {
		cb_transfer *following = t->next;
		if (!(t->flags & CB_UNGATED)) {
			reset_outcome(t);
			t->unsent = 1;
			fail(t, ctx);
			finish(e, t);
			n++;
		}
		t = following;
	}
	return n;
}
