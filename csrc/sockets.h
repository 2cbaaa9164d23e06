/* What the engine waits on: the sockets libcurl asks to have watched, and libcurl's timer
 * (curl_multi_socket_action's half of the bargain). The engine polls them itself and tells libcurl
 * which socket is ready, so libcurl runs only the transfers on that socket: with
 * curl_multi_perform it ran every transfer in flight each time, and polled each one's socket with
 * a zero timeout to find out whether it had anything to do. */
#ifndef CODEARTSBUILD_SOCKETS_H
#define CODEARTSBUILD_SOCKETS_H

#include <poll.h>
#include <stddef.h>
#include <curl/curl.h>

typedef struct {
	struct pollfd *fds; /* the sockets libcurl watches, and for what */
	size_t count, cap;
	struct pollfd *ready; /* a copy of poll()'s answer: libcurl changes fds while it is told */
	long long timer_ns;   /* when libcurl wants its timer run (monotonic); -1: not at all */
	int failed;           /* out of memory in a callback: the engine reports it */
} cb_sockets;

/* Hands the multi handle's socket and timer callbacks to s (zeroed by the caller). */
void cb_sockets_attach(cb_sockets *s, CURLM *multi);
/* After curl_multi_cleanup, which may still call the socket callback. */
void cb_sockets_free(cb_sockets *s);

/* Runs libcurl's timer if it is due. */
CURLMcode cb_sockets_run_timer(cb_sockets *s, CURLM *multi);
/* Nanoseconds until libcurl's timer is due (0: now), or -1 when it has none. */
long long cb_sockets_timer_in(const cb_sockets *s, long long now_ns);
/* What poll()'s answer for one socket tells libcurl (CURL_CSELECT_*). */
int cb_sockets_select_bits(short revents);
/* Waits up to wait_ns for a watched socket to be ready, then tells libcurl of each one ready. */
CURLMcode cb_sockets_wait(cb_sockets *s, CURLM *multi, long long wait_ns);

#endif
