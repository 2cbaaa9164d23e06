/* The streams' own multi handle (transport.h, "Streams"): a stream's connection is one no other
 * request may use, and it uses no other request's. libcurl 7.88 mixes the two badly when they share
 * a multi handle's connections: over HTTP/2, a stream paused while others ran on its connection
 * stayed stuck once resumed; over HTTP/1.1 beside an HTTP/2 connection to the same host, a record
 * request was sent on the stream's connection in the middle of its body. So streams go on
 * connections of their own, over HTTP/1.1 (easy.c), in this second multi handle of the same
 * engine: the same queue, rate, retries, signing and mailbox. No Lua here. */
#include "easy.h"

#include <sys/select.h>

/* Connections of finished streams kept for the next one. */
#define STREAM_CONNECTIONS_KEPT 2L

int cb_stream_multi_init(cb_stream_multi *s)
{
	s->multi = curl_multi_init();
	s->in_flight = 0;
	if (s->multi == NULL)
		return -1;
	curl_multi_setopt(s->multi, CURLMOPT_MAXCONNECTS, STREAM_CONNECTIONS_KEPT);
	return 0;
}

void cb_stream_multi_free(cb_stream_multi *s)
{
	if (s->multi) /* closes the kept connections, through the pool's sockets */
		curl_multi_cleanup(s->multi);
	s->multi = NULL;
}

int cb_stream_multi_waitfds(cb_stream_multi *s, struct curl_waitfd *fds, int cap, long *timeout_ms)
{
	fd_set r, w, x;
	int maxfd = -1, fd, n = 0;

	*timeout_ms = -1;
	if (s->in_flight == 0)
		return 0;
	curl_multi_timeout(s->multi, timeout_ms);
	FD_ZERO(&r);
	FD_ZERO(&w);
	FD_ZERO(&x);
	if (curl_multi_fdset(s->multi, &r, &w, &x, &maxfd) != CURLM_OK)
		maxfd = -1;
	for (fd = 0; fd <= maxfd && n < cap; fd++) {
		short events = (short)((FD_ISSET(fd, &r) ? CURL_WAIT_POLLIN : 0) | (FD_ISSET(fd, &w) ? CURL_WAIT_POLLOUT : 0) |
				       (FD_ISSET(fd, &x) ? CURL_WAIT_POLLPRI : 0));
		if (events) {
			fds[n].fd = fd;
			fds[n].events = events;
			fds[n].revents = 0;
			n++;
		}
	}
	return n;
}

void cb_engine_stream_consumed(cb_transfer *t)
{
	cb_buffer_clear(&t->stream);
	/* Outside any libcurl callback: libcurl may call the write callback from here at once with
	 * what it kept, which goes into the stream just emptied (and may pause it again). */
	if (t->paused && t->easy) {
		t->paused = 0;
		if (curl_easy_pause(t->easy, CURLPAUSE_CONT) != CURLE_OK)
			t->paused = 1; /* the next read tries again */
	}
}
