#include "transport.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <openssl/crypto.h>

#define IDLE_HANDLES_KEPT 64

typedef struct {
	cb_transfer *head, *tail;
	size_t count;
} transfer_list;

struct cb_engine {
	CURLM *multi;
	CURLSH *share; /* TLS sessions and DNS answers outlive the easy handles */
	long timeout_ms, connect_timeout_ms;
	size_t max_body;
	char *ca_file, *user_agent;
	int insecure, allow_http;
	CURL *idle[IDLE_HANDLES_KEPT]; /* easy handles kept for the next transfers */
	size_t idle_count;
	long long next_id;
	transfer_list in_flight, done;
};

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

static char *copy_string(const char *s)
{
	char *p;
	size_t n;

	if (s == NULL)
		return NULL;
	n = strlen(s) + 1;
	p = malloc(n);
	if (p)
		memcpy(p, s, n);
	return p;
}

cb_engine *cb_engine_new(const cb_transport_options *opts, char *err, size_t errlen)
{
	cb_engine *e = calloc(1, sizeof *e);

	if (e == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	e->timeout_ms = opts->timeout_ms;
	e->connect_timeout_ms = opts->connect_timeout_ms;
	e->max_body = opts->max_body;
	e->insecure = opts->insecure;
	e->allow_http = opts->allow_http;
	e->ca_file = copy_string(opts->ca_file);
	e->user_agent = copy_string(opts->user_agent);
	e->multi = curl_multi_init();
	e->share = curl_share_init();
	if (e->multi == NULL || e->share == NULL || (opts->ca_file && !e->ca_file) ||
	    (opts->user_agent && !e->user_agent)) {
		snprintf(err, errlen, "cannot create the HTTP engine (out of memory)");
		cb_engine_free(e);
		return NULL;
	}
	curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_DNS);
	curl_share_setopt(e->share, CURLSHOPT_SHARE, CURL_LOCK_DATA_SSL_SESSION);
	return e;
}

/* The request headers carry the Authorization or X-Auth-Token value. */
static void wipe_headers(struct curl_slist **headers)
{
	struct curl_slist *h;

	for (h = *headers; h != NULL; h = h->next)
		OPENSSL_cleanse(h->data, strlen(h->data));
	curl_slist_free_all(*headers);
	*headers = NULL;
}

static void free_transfer_memory(cb_transfer *t)
{
	wipe_headers(&t->headers);
	cb_buffer_free(&t->body);
	free(t);
}

void cb_engine_free(cb_engine *e)
{
	size_t i;

	if (e == NULL)
		return;
	while (e->in_flight.head) {
		cb_transfer *t = e->in_flight.head;
		list_remove(&e->in_flight, t);
		curl_multi_remove_handle(e->multi, t->easy);
		curl_easy_cleanup(t->easy);
		free_transfer_memory(t);
	}
	while (e->done.head) {
		cb_transfer *t = e->done.head;
		list_remove(&e->done, t);
		free_transfer_memory(t);
	}
	for (i = 0; i < e->idle_count; i++)
		curl_easy_cleanup(e->idle[i]);
	if (e->multi)
		curl_multi_cleanup(e->multi);
	if (e->share) /* after every easy handle that used it is gone */
		curl_share_cleanup(e->share);
	free(e->ca_file);
	free(e->user_agent);
	free(e);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
	cb_transfer *t = userdata;
	size_t n = size * nmemb;

	if (n > t->max_body - t->body.len) {
		t->body_too_large = 1;
		return 0; /* libcurl stops the transfer */
	}
	if (cb_buffer_append(&t->body, data, n) != 0)
		return 0;
	return n;
}

/* Keeps the printable token characters of a header value, up to the field's size. */
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
	}
	return n;
}

static CURL *take_easy_handle(cb_engine *e)
{
	if (e->idle_count > 0) {
		CURL *easy = e->idle[--e->idle_count];
		curl_easy_reset(easy); /* options go; its caches stay */
		return easy;
	}
	return curl_easy_init();
}

static void return_easy_handle(cb_engine *e, CURL *easy)
{
	if (e->idle_count < IDLE_HANDLES_KEPT)
		e->idle[e->idle_count++] = easy;
	else
		curl_easy_cleanup(easy);
}

static CURLcode configure(cb_engine *e, cb_transfer *t, const char *url)
{
	CURL *c = t->easy;
	CURLcode rc = CURLE_OK;
	const char *protocols = e->allow_http ? "https,http" : "https";

#define SET(option, value) \
	if (rc == CURLE_OK)  \
	rc = curl_easy_setopt(c, option, value)
	SET(CURLOPT_URL, url);
	SET(CURLOPT_HTTPHEADER, t->headers);
	SET(CURLOPT_PRIVATE, (void *)t);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, (void *)t);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, (void *)t);
	SET(CURLOPT_ERRORBUFFER, t->error);
	SET(CURLOPT_NOSIGNAL, 1L);
	SET(CURLOPT_TIMEOUT_MS, e->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, e->connect_timeout_ms);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)e->max_body);
	SET(CURLOPT_SHARE, e->share);
	SET(CURLOPT_TCP_KEEPALIVE, 1L);
	SET(CURLOPT_FOLLOWLOCATION, 0L);
	SET(CURLOPT_SSL_VERIFYPEER, e->insecure ? 0L : 1L);
	SET(CURLOPT_SSL_VERIFYHOST, e->insecure ? 0L : 2L);
	if (e->ca_file)
		SET(CURLOPT_CAINFO, e->ca_file);
	if (e->user_agent)
		SET(CURLOPT_USERAGENT, e->user_agent);
#if LIBCURL_VERSION_NUM >= 0x075500
	SET(CURLOPT_PROTOCOLS_STR, protocols);
#else
	SET(CURLOPT_PROTOCOLS, e->allow_http ? (long)(CURLPROTO_HTTPS | CURLPROTO_HTTP) : (long)CURLPROTO_HTTPS);
	(void)protocols;
#endif
#undef SET
	return rc;
}

cb_transfer *cb_engine_start(cb_engine *e, const char *url, struct curl_slist *headers,
			     size_t user_size, char *err, size_t errlen)
{
	cb_transfer *t = calloc(1, sizeof *t + user_size);
	CURLcode rc;
	CURLMcode mrc;

	if (t == NULL) {
		wipe_headers(&headers);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	t->headers = headers;
	t->user = user_size ? (void *)(t + 1) : NULL;
	t->max_body = e->max_body;
	t->easy = take_easy_handle(e);
	if (t->easy == NULL) {
		snprintf(err, errlen, "cannot create a libcurl handle");
		free_transfer_memory(t);
		return NULL;
	}
	rc = configure(e, t, url);
	if (rc != CURLE_OK) {
		snprintf(err, errlen, "libcurl refused an option: %s", curl_easy_strerror(rc));
		curl_easy_cleanup(t->easy);
		free_transfer_memory(t);
		return NULL;
	}
	mrc = curl_multi_add_handle(e->multi, t->easy);
	if (mrc != CURLM_OK) {
		snprintf(err, errlen, "cannot start the transfer: %s", curl_multi_strerror(mrc));
		curl_easy_cleanup(t->easy);
		free_transfer_memory(t);
		return NULL;
	}
	t->id = ++e->next_id;
	list_append(&e->in_flight, t);
	return t;
}

/* Moves every transfer libcurl reports as finished to the done queue. */
static void collect_finished(cb_engine *e)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(e->multi, &left)) != NULL) {
		cb_transfer *t = NULL;

		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		t->result = msg->data.result;
		curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
		curl_multi_remove_handle(e->multi, t->easy);
		return_easy_handle(e, t->easy);
		t->easy = NULL;
		wipe_headers(&t->headers);
		list_remove(&e->in_flight, t);
		list_append(&e->done, t);
	}
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int cb_engine_run(cb_engine *e, long timeout_ms, char *err, size_t errlen)
{
	long long deadline = timeout_ms >= 0 ? now_ms() + timeout_ms : -1;

	for (;;) {
		int running = 0;
		long wait_ms = 1000;
		CURLMcode mrc = curl_multi_perform(e->multi, &running);

		if (mrc != CURLM_OK) {
			snprintf(err, errlen, "libcurl multi failure: %s", curl_multi_strerror(mrc));
			return -1;
		}
		collect_finished(e);
		if (e->done.count > 0 || e->in_flight.count == 0)
			return 0;
		if (deadline >= 0) {
			long long left = deadline - now_ms();
			if (left <= 0)
				return 0;
			if (left < wait_ms)
				wait_ms = (long)left;
		}
		mrc = curl_multi_poll(e->multi, NULL, 0, (int)wait_ms, NULL);
		if (mrc != CURLM_OK) {
			snprintf(err, errlen, "libcurl multi failure: %s", curl_multi_strerror(mrc));
			return -1;
		}
	}
}

cb_transfer *cb_engine_next_done(cb_engine *e)
{
	cb_transfer *t = e->done.head;

	if (t)
		list_remove(&e->done, t);
	return t;
}

cb_transfer *cb_engine_take_done(cb_engine *e, long long id)
{
	cb_transfer *t;

	for (t = e->done.head; t != NULL; t = t->next) {
		if (t->id == id) {
			list_remove(&e->done, t);
			return t;
		}
	}
	return NULL;
}

size_t cb_engine_in_flight(const cb_engine *e)
{
	return e->in_flight.count;
}

size_t cb_engine_done_count(const cb_engine *e)
{
	return e->done.count;
}

void cb_transfer_free(cb_transfer *t)
{
	if (t)
		free_transfer_memory(t);
}
