/* The streams' own multi handle (transport.h, "Streams"): a stream's connection is one no other
 * request may use, and it uses no other request's. libcurl 7.88 mixes the two badly when they share
 * a multi handle's connections: over HTTP/2, a stream paused while others ran on its connection
 * stayed stuck once resumed; over HTTP/1.1 beside an HTTP/2 connection to the same host, a record
 * request was sent on the stream's connection in the middle of its body. So streams go on
 * connections of their own, over HTTP/1.1 (easy.c), in this second multi handle of the same
 * engine: the same queue, rate, retries, signing and mailbox. Its sockets and timer are watched as
 * the other multi handle's are (sockets.c), in the same waits. No Lua here. */
#include "easy.h"

#include <stdlib.h>

/* Connections of finished streams kept for the next one. */
#define STREAM_CONNECTIONS_KEPT 2L

int cb_stream_multi_init(cb_stream_multi *s)
{
	s->multi = curl_multi_init();
	if (s->multi == NULL)
		return -1;
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, STREAM_CONNECTIONS_KEPT);
	cb_sockets_attach(&s->sockets, s->multi);
	return 0;
}

void cb_stream_multi_free(cb_stream_multi *s)
{
	if (s->multi) /* closes the kept connections, through the pool's sockets */
		curl_multi_cleanup(s->multi);
	s->multi = NULL;
	cb_sockets_free(&s->sockets);
	free(s->all);
	s->all = NULL;
	s->all_cap = 0;
}

CURLMcode cb_stream_multi_wait(cb_stream_multi *s, cb_sockets *others, CURLM *others_multi, long long wait_ns)
{
	size_t i, n_others = others->count, n = n_others + s->sockets.count;
	int got, running;

	if (s->sockets.count == 0)
		return cb_sockets_wait(others, others_multi, wait_ns);
	if (n > s->all_cap) {
		struct pollfd *all = realloc(s->all, n * sizeof *all);
		if (all == NULL)
			return CURLM_OUT_OF_MEMORY;
		s->all = all;
		s->all_cap = n;
	}
	/* A copy of both watch lists: libcurl changes them while it is told of a ready socket. */
	for (i = 0; i < n_others; i++)
		s->all[i] = others->fds[i];
	for (i = n_others; i < n; i++)
		s->all[i] = s->sockets.fds[i - n_others];
	got = poll(s->all, n, (int)((wait_ns + 999999) / 1000000)); /* rounded up, as sockets.c does */
	if (got <= 0)
		return CURLM_OK; /* a timeout, or EINTR: the caller looks again */
	for (i = 0; i < n; i++) {
		CURLMcode rc;
		if (!s->all[i].revents)
			continue;
		rc = curl_multi_socket_action(i < n_others ? others_multi : s->multi, s->all[i].fd,
					      cb_sockets_select_bits(s->all[i].revents), &running);
		if (rc == CURLM_OK && (others->failed || s->sockets.failed))
			rc = CURLM_OUT_OF_MEMORY; /* a socket the callback could not add to its list */
		if (rc != CURLM_OK) {
			others->failed = s->sockets.failed = 0;
			return rc;
		}
	}
	return CURLM_OK;
}

void cb_engine_stream_consumed(cb_transfer *t)
{
	cb_buffer_clear(&t->stream);
	/* Outside any libcurl callback: libcurl may call the write callback from here at once with
	 * what it kept, which goes into the stream just emptied (and may pause it again); it runs its
	 * timer for the rest, which the engine's next run sees. */
	if (t->paused && t->easy) {
		t->paused = 0;
		if (curl_easy_pause(t->easy, CURLPAUSE_CONT) != CURLE_OK)
			t->paused = 1; /* the next read tries again */
	}
}
