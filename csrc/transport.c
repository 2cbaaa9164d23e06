/* The HTTP engine (transport.h): libcurl's multi interface, the queue, retries, the rate, the
 * gate, and the transfers it owns (found by id through index.c; paced by pace.c). Its easy
 * handles are easy.c's; what a response holds and says of the next attempt, response.c's. */
#include "transport.h"
#include "easy.h"
#include "index.h"
#include "sockets.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>

#define MAX_POLL_WAIT_MS 1000

typedef struct {
	cb_transfer *head, *tail;
	size_t count;
} transfer_list;

struct cb_engine {
	cb_transport_options opts; /* strings below are the engine's own copies */
	CURLM *multi;
	cb_sockets sockets; /* what the engine waits on: libcurl's sockets and timer */
	cb_stream_multi streams; /* the streams' own (stream.c): in_flight counts them */
	cb_easy_pool pool;
	long long next_id;
	cb_pace pace; /* the rate cap */
	int gate_closed;
	int stream_signal; /* a stream that got new bytes left the in-flight list since run looked */
	unsigned long long jitter_state;
	transfer_list queued, in_flight, finished, done;
	cb_index index; /* every transfer the engine owns, by id */
};

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

	if ((t->flags & CB_STREAM) && (t->state == CB_IN_FLIGHT) != (state == CB_IN_FLIGHT))
		e->streams.in_flight += state == CB_IN_FLIGHT ? 1 : (size_t)-1;
	if (from)
		list_remove(from, t);
	t->state = state;
	if (to)
		list_append(to, t);
}

/* ---- the id index ---- */

cb_transfer *cb_engine_find(const cb_engine *e, long long id)
{
	return cb_index_find(&e->index, id);
}

size_t cb_engine_count(const cb_engine *e, int held)
{
	return e->index.owned[held != 0];
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
	cb_buffer_free(&t->stream);
	cb_buffer_wipe(&t->subject_token);
	cb_buffer_wipe(&t->request_body);
	free(t->path);
	free(t->query);
	free(t->url);
	free(t);
}

/* ---- engine ---- */

/* The multi handle a transfer runs in: a stream's own, or the one every other request shares. */
static CURLM *multi_of(const cb_engine *e, const cb_transfer *t)
{
	return (t->flags & CB_STREAM) ? e->streams.multi : e->multi;
}

/* By default libcurl keeps 4 idle connections per easy handle in the multi handle at the moment
 * a transfer ends; ours leave it between attempts, so when few were left (the first request alone,
 * a walk's tail, a slow refill) it closed connections the next wave needed again, each a new TCP
 * and TLS handshake (seen in the distance bench). One per concurrent request, and one for IAM. */
static void keep_connections(CURLM *multi, int max_in_flight)
{
	curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)max_in_flight + 1);
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
	cb_pace_init(&e->pace, e->opts.rate, cb_now_ns());
	e->jitter_state = (unsigned long long)cb_now_ns() * 6364136223846793005ULL ^ (unsigned long long)(size_t)e;
	e->multi = curl_multi_init();
	if (e->multi != NULL) {
		keep_connections(e->multi, e->opts.max_in_flight);
		cb_sockets_attach(&e->sockets, e->multi);
	}
	if (cb_easy_pool_init(&e->pool, &e->opts) != 0 || e->multi == NULL || cb_stream_multi_init(&e->streams) != 0 ||
	    !e->opts.base_url ||
	    (opts->ca_file && !e->opts.ca_file) || (opts->user_agent && !e->opts.user_agent) || cb_index_init(&e->index) != 0) {
		snprintf(err, errlen, "cannot create the HTTP engine (out of memory)");
		cb_engine_free(e);
		return NULL;
	}
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

	if (e == NULL)
		return;
	for (t = e->in_flight.head; t != NULL; t = t->next) {
		curl_multi_remove_handle(multi_of(e, t), t->easy);
		curl_easy_cleanup(t->easy);
	}
	free_list(&e->in_flight);
	free_list(&e->queued);
	free_list(&e->finished);
	free_list(&e->done);
	if (e->multi) /* closes the kept connections, through the pool's sockets */
		curl_multi_cleanup(e->multi);
	cb_stream_multi_free(&e->streams);
	cb_sockets_free(&e->sockets);
	cb_easy_pool_free(&e->pool);
	cb_index_free(&e->index);
	free((char *)e->opts.base_url);
	free((char *)e->opts.ca_file);
	free((char *)e->opts.user_agent);
	free(e);
}

/* The engines a forked child let go of. Their memory is a copy of the parent's live engine: freeing
 * it through libcurl would shut the parent's TLS sessions down (SSL_shutdown writes close_notify,
 * and libcurl reads what is waiting first), so it stays allocated, and reachable from here. */
static cb_engine *volatile abandoned[8]; /* volatile: stores to a list nobody reads must stay */
static size_t abandoned_count;

long long cb_engine_abandon(cb_engine *e)
{
	cb_easy_pool_let_go(&e->pool);
	if (abandoned_count < sizeof abandoned / sizeof abandoned[0])
		abandoned[abandoned_count++] = e;
	return e->next_id;
}

/* ---- starting attempts ---- */

/* A stream's unread bytes and its count stay: they belong to the whole transfer, not the attempt. */
static void reset_outcome(cb_transfer *t)
{
	t->result = CURLE_OK;
	t->status = 0;
	t->body_too_large = 0;
	t->attempt_seen = 0;
	t->stream_mode = CB_STREAM_UNDECIDED;
	t->paused = 0;
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
	if (cb_easy_take(&e->pool, t, &rc) == NULL) {
		wipe_headers(&t->headers);
		fail_to_start(e, t, curl_easy_strerror(rc));
		return;
	}
	if (curl_multi_add_handle(multi_of(e, t), t->easy) != CURLM_OK) {
		cb_easy_return(&e->pool, t);
		wipe_headers(&t->headers);
		fail_to_start(e, t, "libcurl refused the transfer");
		return;
	}
	move_to(e, t, CB_IN_FLIGHT);
}

/* The transfers in flight that count against the cap: a paused stream does not, so that its owner
 * may send other requests before it reads on (with concurrency 1 it would wait for ever). */
static size_t counted_in_flight(const cb_engine *e)
{
	const cb_transfer *t;
	size_t n = e->in_flight.count;

	for (t = e->in_flight.head; e->streams.in_flight > 0 && t != NULL; t = t->next)
		if ((t->flags & CB_STREAM) && t->paused)
			n--;
	return n;
}

/* Starts the queued transfers whose time has come, as far as the gate, the cap and the rate
 * allow. Returns the nanoseconds until the next one could start (-1: none is waiting on time). */
static long long start_ready(cb_engine *e)
{
	long long now = cb_now_ns(), next = -1;
	cb_transfer *t = e->queued.head;
	size_t busy = counted_in_flight(e);

	while (t != NULL && busy < (size_t)e->opts.max_in_flight) {
		cb_transfer *following = t->next;
		long long when = t->not_before_ns;

		if (e->gate_closed && !(t->flags & CB_UNGATED)) {
			/* waits for the gate */
		} else if (when > now) {
			if (next < 0 || when < next)
				next = when;
		} else if (!cb_pace_take(&e->pace, now, &when)) {
			if (next < 0 || when < next)
				next = when;
			break;
		} else {
			start_attempt(e, t);
			busy += t->state == CB_IN_FLIGHT;
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
	    cb_index_add(&e->index, t) != 0) {
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

int cb_engine_set_path(cb_engine *e, cb_transfer *t, const char *path)
{
	/* base_url + path + the query it had */
	const char *q = strchr(t->url + strlen(e->opts.base_url), '?');
	char *copy = cb_strdup(path);

	if (copy == NULL || set_url(t, e->opts.base_url, path, q ? q + 1 : NULL) != 0) {
		free(copy);
		return -1;
	}
	free(t->path);
	t->path = copy;
	return 0;
}

void cb_engine_each_queued(cb_engine *e, void (*fn)(cb_engine *e, cb_transfer *t, void *ctx), void *ctx)
{
	cb_transfer *t;

	for (t = e->queued.head; t != NULL; t = t->next)
		fn(e, t, ctx);
}

int cb_engine_resubmit(cb_engine *e, cb_transfer *t, const char *path)
{
	if (drop_if_cancelled(e, t))
		return 0;
	if (path && cb_engine_set_path(e, t, path) != 0)
		return -1;
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
	cb_index_remove(&e->index, t);
	cb_transfer_free(t);
}

/* ---- finishing attempts ---- */

static void finish_attempt(cb_engine *e, cb_transfer *t, CURLcode result)
{
	if (t->signalled) { /* it leaves the in-flight list, where run looks for new stream bytes */
		t->signalled = 0;
		e->stream_signal = 1;
	}
	t->result = result;
	curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &t->status);
	curl_multi_remove_handle(multi_of(e, t), t->easy);
	cb_easy_return(&e->pool, t);
	wipe_headers(&t->headers);
	if (t->attempts <= e->opts.retries && cb_transfer_retryable(t)) {
		t->not_before_ns = cb_now_ns() + (long long)cb_retry_delay_ms(t, e->opts.backoff_ms, e->opts.max_backoff_ms, &e->jitter_state) * 1000000;
		move_to(e, t, CB_QUEUED);
	} else {
		finish(e, t);
	}
}

static void collect_finished_in(cb_engine *e, CURLM *multi)
{
	CURLMsg *msg;
	int left;

	while ((msg = curl_multi_info_read(multi, &left)) != NULL) {
		cb_transfer *t = NULL;
		if (msg->msg != CURLMSG_DONE)
			continue;
		curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
		finish_attempt(e, t, msg->data.result);
	}
}

static void collect_finished(cb_engine *e)
{
	collect_finished_in(e, e->multi);
	collect_finished_in(e, e->streams.multi);
}

/* Whether a stream got new bytes since the last look (and forgets it): its owner may read them. */
static int take_stream_signals(cb_engine *e)
{
	cb_transfer *t;
	int any = e->stream_signal;

	e->stream_signal = 0;
	for (t = e->in_flight.head; t != NULL; t = t->next) {
		if (t->signalled) {
			t->signalled = 0;
			any = 1;
		}
	}
	return any;
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

/* The shortest of: the poll cap, the next start, libcurl's timers, the deadline (0 when past). */
static long long wait_ns_for(cb_engine *e, long long next_start, long long deadline)
{
	long long now = cb_now_ns(), wait_ns = (long long)MAX_POLL_WAIT_MS * 1000000,
		  timer = cb_sockets_timer_in(&e->sockets, now),
		  stream_timer = cb_sockets_timer_in(&e->streams.sockets, now);

	if (next_start >= 0 && next_start < wait_ns)
		wait_ns = next_start;
	if (timer >= 0 && timer < wait_ns)
		wait_ns = timer;
	if (stream_timer >= 0 && stream_timer < wait_ns)
		wait_ns = stream_timer;
	if (deadline >= 0 && deadline - now < wait_ns)
		wait_ns = deadline > now ? deadline - now : 0;
	return wait_ns;
}

int cb_engine_run(cb_engine *e, long timeout_ms, char *err, size_t errlen)
{
	long long deadline = timeout_ms >= 0 ? cb_now_ns() + (long long)timeout_ms * 1000000 : -1;
	int looked = 0; /* at the sockets: with a timeout of 0, once */

	for (;;) {
		long long next_start;
		CURLMcode mrc;

		start_ready(e);
		mrc = cb_sockets_run_timer(&e->sockets, e->multi); /* an attempt just added starts here */
		if (mrc == CURLM_OK)
			mrc = cb_sockets_run_timer(&e->streams.sockets, e->streams.multi); /* and a stream resumed */
		if (mrc != CURLM_OK)
			return multi_failure(mrc, err, errlen);
		collect_finished(e);
		if (e->finished.count > 0 || take_stream_signals(e) || !cb_engine_can_progress(e))
			return (int)(e->finished.count > 0x7fffffff ? 0x7fffffff : e->finished.count);
		if (looked && deadline >= 0 && cb_now_ns() >= deadline)
			return 0;
		next_start = start_ready(e); /* retries due now, and slots just freed */
		/* With nothing in flight this just sleeps until the next start time. */
		mrc = cb_stream_multi_wait(&e->streams, &e->sockets, e->multi, wait_ns_for(e, next_start, deadline));
		if (mrc != CURLM_OK)
			return multi_failure(mrc, err, errlen);
		looked = 1;
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
	cb_index_remove(&e->index, t);
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
		curl_multi_remove_handle(multi_of(e, t), t->easy);
		cb_easy_return(&e->pool, t);
	}
	move_to(e, t, CB_SETTLING); /* out of its list */
	cb_index_remove(&e->index, t);
	cb_transfer_free(t);
	return 1;
}

void cb_engine_defer(cb_engine *e, cb_transfer *t, long delay_ms)
{
	(void)e;
	if (t->state == CB_QUEUED && delay_ms > 0)
		t->not_before_ns = cb_now_ns() + (long long)delay_ms * 1000000;
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
