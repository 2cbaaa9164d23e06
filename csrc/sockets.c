/* The engine's sockets and libcurl's timer (sockets.h). Only libcurl calls the two callbacks,
 * from inside curl_multi_socket_action and curl_multi_add_handle/_remove_handle: they touch
 * nothing but the watch list. */
#include "sockets.h"
#include "transport.h"

#include <stdlib.h>

static long find(const cb_sockets *s, curl_socket_t fd)
{
	size_t i;

	for (i = 0; i < s->count; i++) /* a few sockets: one per connection */
		if (s->fds[i].fd == fd)
			return (long)i;
	return -1;
}

static int grow(cb_sockets *s)
{
	size_t cap = s->cap ? 2 * s->cap : 16;
	struct pollfd *fds = realloc(s->fds, cap * sizeof *fds), *ready;

	if (fds == NULL)
		return -1;
	s->fds = fds;
	ready = realloc(s->ready, cap * sizeof *ready);
	if (ready == NULL)
		return -1;
	s->ready = ready;
	s->cap = cap;
	return 0;
}

static int on_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	cb_sockets *s = userp;
	long i = find(s, fd);

	(void)easy;
	(void)socketp;
	if (what == CURL_POLL_REMOVE) {
		if (i >= 0)
			s->fds[i] = s->fds[--s->count];
		return 0;
	}
	if (i < 0) {
		if (s->count == s->cap && grow(s) != 0) {
			s->failed = 1;
			return -1;
		}
		i = (long)s->count++;
		s->fds[i].fd = fd;
	}
	s->fds[i].events = (short)(((what & CURL_POLL_IN) ? POLLIN : 0) | ((what & CURL_POLL_OUT) ? POLLOUT : 0));
	s->fds[i].revents = 0;
	return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp)
{
	cb_sockets *s = userp;

	(void)multi;
	s->timer_ns = timeout_ms < 0 ? -1 : cb_now_ns() + (long long)timeout_ms * 1000000;
	return 0;
}

void cb_sockets_attach(cb_sockets *s, CURLM *multi)
{
	s->timer_ns = -1;
	curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
	curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, (void *)s);
	curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
	curl_multi_setopt(multi, CURLMOPT_TIMERDATA, (void *)s);
}

void cb_sockets_free(cb_sockets *s)
{
	free(s->fds);
	free(s->ready);
	s->fds = s->ready = NULL;
	s->count = s->cap = 0;
}

/* A socket the callback could not add to the list: the engine fails rather than wait for ever. */
static CURLMcode out_of_memory_or(cb_sockets *s, CURLMcode rc)
{
	if (s->failed) {
		s->failed = 0;
		return CURLM_OUT_OF_MEMORY;
	}
	return rc;
}

long long cb_sockets_timer_in(const cb_sockets *s, long long now_ns)
{
	if (s->timer_ns < 0)
		return -1;
	return s->timer_ns > now_ns ? s->timer_ns - now_ns : 0;
}

CURLMcode cb_sockets_run_timer(cb_sockets *s, CURLM *multi)
{
	int running;

	if (s->timer_ns < 0 || s->timer_ns > cb_now_ns())
		return CURLM_OK;
	s->timer_ns = -1; /* libcurl sets it again if it wants */
	return out_of_memory_or(s, curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running));
}

int cb_sockets_select_bits(short revents)
{
	return ((revents & (POLLIN | POLLHUP)) ? CURL_CSELECT_IN : 0) | ((revents & POLLOUT) ? CURL_CSELECT_OUT : 0) |
	       ((revents & (POLLERR | POLLNVAL)) ? CURL_CSELECT_ERR : 0);
}

CURLMcode cb_sockets_wait(cb_sockets *s, CURLM *multi, long long wait_ns)
{
	size_t i, n = 0, count = s->count;
	int got, running;

	/* Whole milliseconds, rounded up: a wait never ends before what it waits for. */
	got = poll(s->fds, count, (int)((wait_ns + 999999) / 1000000));
	if (got <= 0)
		return CURLM_OK; /* a timeout, or EINTR: the caller looks again */
	for (i = 0; i < count; i++)
		if (s->fds[i].revents)
			s->ready[n++] = s->fds[i];
	for (i = 0; i < n; i++) {
		CURLMcode rc = out_of_memory_or(s, curl_multi_socket_action(multi, s->ready[i].fd,
									     cb_sockets_select_bits(s->ready[i].revents),
									     &running));
		if (rc != CURLM_OK)
			return rc;
	}
	return CURLM_OK;
}
