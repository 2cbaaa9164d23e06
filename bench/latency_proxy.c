/* bench/latency_proxy.c: a TCP proxy on 127.0.0.1 that holds the bytes of each direction for a
 * configured one-way time, for the distance bench (bench/distance.py). Built by `make bench` into
 * build/bench/latency_proxy.
 *
 *   latency_proxy ONE_WAY_US LISTEN_PORT:TARGET_PORT [...]
 *
 * Listens on 127.0.0.1:LISTEN_PORT (0: any free port) and forwards every connection to
 * 127.0.0.1:TARGET_PORT. Prints one line per mapping, `listen LISTEN_PORT TARGET_PORT`, then
 * `ready`. On SIGTERM or SIGINT it prints `accepted N ...` (connections accepted per mapping, in
 * the order given) and `late_us P50 P99 MAX CHUNKS` (how late chunks were written beyond their due
 * time, in 10 µs steps), and exits.
 *
 * Each chunk read is stamped with the time the kernel received it (SO_TIMESTAMPNS: a proxy that
 * gets to read late does not delay it further) and released when that time plus the one-way delay
 * has come, in order, by one event loop (epoll and an absolute-time timerfd, so that a release is
 * not rounded to milliseconds): chunks in flight overlap, as bytes on a long link do, and the
 * throughput is the loopback's. End of stream (FIN) travels the same way; resets are not delayed.
 *
 * The TCP handshake: the kernel completes the client's connect() with the proxy at once, which
 * would make a connection cost one round trip less than on a real link. So the first bytes from
 * the client are not forwarded before one round trip (SYN, SYN-ACK) after the accept plus the
 * one-way time: the server sees them when it would on a link of this length, and the client's
 * first answer comes one round trip for TCP later, as on that link.
 *
 * A direction that holds more than QUEUE_CAP bytes stops reading until it has drained (the TCP
 * window then holds the sender back). Loopback only. bench/harness.py runs it at a real-time
 * priority (chrt -f) when it may, so that a loaded machine does not make it late. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#define MAX_MAPPINGS 8
#define READ_SIZE 65536
#define QUEUE_CAP (4u << 20)

typedef struct chunk {
	struct chunk *next;
	uint64_t due_ns;
	size_t len, off;
	int eof; /* a FIN, no data */
	char data[];
} chunk;

typedef struct conn conn;

/* One direction: bytes read from `from`, written to `to`. */
typedef struct {
	int from, to;
	chunk *head, *tail;
	size_t queued;
	int read_done;  /* EOF read: stop reading */
	int write_wait; /* the last write would block: wait for EPOLLOUT on `to` */
	int shut;       /* the FIN was passed on */
} direction;

/* What epoll's data points at: one socket of a connection. */
typedef struct {
	conn *c;
	int side; /* 0: the client's socket, 1: the server's */
} endpoint;

struct conn {
	conn *next, *prev;
	int fd[2];
	direction d[2]; /* d[0]: client -> server, d[1]: server -> client */
	endpoint ep[2];
	uint64_t first_due_ns; /* nothing from the client before this (the TCP handshake) */
};

static uint64_t delay_ns;
static conn *conns;
static int epfd, timer_fd;
static volatile sig_atomic_t stop;
static struct {
	int fd, target;
	unsigned long accepted;
	endpoint ep;
} maps[MAX_MAPPINGS];
static int nmaps;
static endpoint timer_ep;
/* How late chunks were written, in 10 µs steps (the last bucket: 100 ms or more). */
#define LATE_BUCKETS 10001
static unsigned long late[LATE_BUCKETS], released;

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void on_signal(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what)
{
	perror(what);
	exit(1);
}

static void set_options(int fd)
{
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	setsockopt(fd, SOL_SOCKET, SO_TIMESTAMPNS, &one, sizeof one);
}

/* The events a socket waits for: input while its outgoing direction reads, output while its
 * incoming direction is blocked. */
static void update_interest(conn *c, int side)
{
	direction *out = &c->d[side], *in = &c->d[1 - side];
	struct epoll_event ev = { 0 };

	if (!out->read_done && out->queued < QUEUE_CAP)
		ev.events |= EPOLLIN;
	if (in->write_wait)
		ev.events |= EPOLLOUT;
	ev.data.ptr = &c->ep[side];
	epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd[side], &ev);
}

static void close_conn(conn *c)
{
	int i;

	for (i = 0; i < 2; i++) {
		chunk *k = c->d[i].head;
		while (k) {
			chunk *next = k->next;
			free(k);
			k = next;
		}
		close(c->fd[i]);
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c);
}

static void enqueue(direction *d, const char *data, size_t len, uint64_t due)
{
	chunk *k = malloc(sizeof *k + len);

	if (k == NULL)
		die("malloc");
	k->next = NULL;
	k->due_ns = due;
	k->len = len;
	k->off = 0;
	k->eof = len == 0;
	memcpy(k->data, data, len);
	if (d->tail)
		d->tail->next = k;
	else
		d->head = k;
	d->tail = k;
	d->queued += len;
}

/* Writes what is due in direction i of c. Returns -1 when the connection is gone. */
static int flush(conn *c, int i, uint64_t now)
{
	direction *d = &c->d[i];
	int was_waiting = d->write_wait, was_full = d->queued >= QUEUE_CAP;

	d->write_wait = 0;
	while (d->head && d->head->due_ns <= now) {
		chunk *k = d->head;
		if (k->off == 0) {
			uint64_t b = (now - k->due_ns) / 10000u;
			late[b < LATE_BUCKETS ? b : LATE_BUCKETS - 1]++;
			released++;
		}
		if (k->eof) {
			shutdown(d->to, SHUT_WR);
			d->shut = 1;
		} else {
			ssize_t n = write(d->to, k->data + k->off, k->len - k->off);
			if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
				d->write_wait = 1;
				break;
			}
			if (n < 0) {
				close_conn(c);
				return -1;
			}
			k->off += (size_t)n;
			d->queued -= (size_t)n;
			if (k->off < k->len) {
				d->write_wait = 1;
				break;
			}
		}
		d->head = k->next;
		if (d->head == NULL)
			d->tail = NULL;
		free(k);
	}
	if (c->d[0].shut && c->d[1].shut) {
		close_conn(c);
		return -1;
	}
	if (was_waiting != d->write_wait)
		update_interest(c, 1 - i);
	if (was_full && d->queued < QUEUE_CAP)
		update_interest(c, i);
	return 0;
}

/* When the kernel received the bytes just read (SO_TIMESTAMPNS, wall clock), on the monotonic
 * clock: a chunk's delay counts from its arrival, not from when this process got to read it. */
static uint64_t arrival_ns(struct msghdr *msg, uint64_t now)
{
	struct cmsghdr *cm;

	for (cm = CMSG_FIRSTHDR(msg); cm; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_TIMESTAMPNS) {
			struct timespec ts, real;
			uint64_t at, real_now;
			memcpy(&ts, CMSG_DATA(cm), sizeof ts);
			clock_gettime(CLOCK_REALTIME, &real);
			real_now = (uint64_t)real.tv_sec * 1000000000u + (uint64_t)real.tv_nsec;
			at = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
			if (at <= real_now && real_now - at < now)
				return now - (real_now - at);
		}
	}
	return now;
}

static void on_readable(conn *c, int side)
{
	static char buf[READ_SIZE];
	char control[CMSG_SPACE(sizeof(struct timespec)) + 64];
	struct iovec iov = { buf, sizeof buf };
	struct msghdr msg = { 0 };
	direction *d = &c->d[side];
	ssize_t n;
	uint64_t due;

	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = control;
	msg.msg_controllen = sizeof control;
	n = recvmsg(c->fd[side], &msg, 0);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n < 0) { /* a reset: passed on at once */
		close_conn(c);
		return;
	}
	if (n == 0 && d->read_done) { /* EPOLLHUP again while the other way drains: stop watching */
		epoll_ctl(epfd, EPOLL_CTL_DEL, c->fd[side], NULL);
		return;
	}
	due = (n > 0 ? arrival_ns(&msg, now_ns()) : now_ns()) + delay_ns;
	if (side == 0 && due < c->first_due_ns)
		due = c->first_due_ns;
	enqueue(d, buf, (size_t)n, due);
	if (n == 0)
		d->read_done = 1;
	if (n == 0 || d->queued >= QUEUE_CAP)
		update_interest(c, side);
}

static void on_accept(int m, uint64_t now)
{
	for (;;) {
		struct sockaddr_in to = { 0 };
		struct epoll_event ev = { 0 };
		conn *c;
		int i, cfd = accept4(maps[m].fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), sfd;

		if (cfd < 0)
			return;
		sfd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		to.sin_family = AF_INET;
		to.sin_port = htons((uint16_t)maps[m].target);
		to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (sfd < 0 || (connect(sfd, (struct sockaddr *)&to, sizeof to) < 0 && errno != EINPROGRESS)) {
			close(cfd);
			if (sfd >= 0)
				close(sfd);
			continue;
		}
		maps[m].accepted++;
		set_options(cfd);
		set_options(sfd);
		c = calloc(1, sizeof *c);
		if (c == NULL)
			die("calloc");
		c->fd[0] = cfd;
		c->fd[1] = sfd;
		c->d[0].from = c->d[1].to = cfd;
		c->d[0].to = c->d[1].from = sfd;
		c->first_due_ns = now + 3 * delay_ns; /* SYN and SYN-ACK, then the one-way time */
		c->next = conns;
		if (conns)
			conns->prev = c;
		conns = c;
		for (i = 0; i < 2; i++) {
			c->ep[i].c = c;
			c->ep[i].side = i;
			ev.events = EPOLLIN;
			ev.data.ptr = &c->ep[i];
			epoll_ctl(epfd, EPOLL_CTL_ADD, c->fd[i], &ev);
		}
	}
}

static int listen_on(int port, int *bound)
{
	struct sockaddr_in a = { 0 };
	socklen_t len = sizeof a;
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	a.sin_family = AF_INET;
	a.sin_port = htons((uint16_t)port);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(fd, 1024) < 0)
		die("bind/listen");
	getsockname(fd, (struct sockaddr *)&a, &len);
	*bound = ntohs(a.sin_port);
	return fd;
}

/* Arms the timer for the earliest chunk not yet due (absolute time), or disarms it. */
static void arm_timer(void)
{
	uint64_t next = UINT64_MAX;
	struct itimerspec its = { 0 };
	conn *c;
	int i;

	for (c = conns; c; c = c->next)
		for (i = 0; i < 2; i++)
			if (c->d[i].head && !c->d[i].write_wait && c->d[i].head->due_ns < next)
				next = c->d[i].head->due_ns;
	if (next != UINT64_MAX) {
		its.it_value.tv_sec = (time_t)(next / 1000000000u);
		its.it_value.tv_nsec = (long)(next % 1000000000u);
		if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
			its.it_value.tv_nsec = 1;
	}
	timerfd_settime(timer_fd, TFD_TIMER_ABSTIME, &its, NULL);
}

/* `late_us P50 P99 MAX CHUNKS`: how late chunks were written, beyond their due time. */
static void late_report(void)
{
	unsigned long seen = 0, p50 = 0, p99 = 0, max = 0;
	int b;

	for (b = 0; b < LATE_BUCKETS; b++) {
		if (late[b] == 0)
			continue;
		seen += late[b];
		if (!p50 && seen * 2 >= released)
			p50 = (unsigned long)b * 10 + 10;
		if (!p99 && seen * 100 >= released * 99)
			p99 = (unsigned long)b * 10 + 10;
		max = (unsigned long)b * 10 + 10;
	}
	printf("late_us %lu %lu %lu %lu\n", p50, p99, max, released);
}

int main(int argc, char **argv)
{
	struct sigaction sa = { 0 };
	struct epoll_event ev = { 0 };
	int i;

	if (argc < 3) {
		fprintf(stderr, "usage: %s ONE_WAY_US LISTEN_PORT:TARGET_PORT [...]\n", argv[0]);
		return 2;
	}
	delay_ns = strtoull(argv[1], NULL, 10) * 1000u;
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	epfd = epoll_create1(EPOLL_CLOEXEC);
	timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (epfd < 0 || timer_fd < 0)
		die("epoll/timerfd");
	timer_ep.side = -1;
	ev.events = EPOLLIN;
	ev.data.ptr = &timer_ep;
	epoll_ctl(epfd, EPOLL_CTL_ADD, timer_fd, &ev);
	for (i = 2; i < argc && nmaps < MAX_MAPPINGS; i++, nmaps++) {
		int port, bound;
		if (sscanf(argv[i], "%d:%d", &port, &maps[nmaps].target) != 2) {
			fprintf(stderr, "bad mapping %s\n", argv[i]);
			return 2;
		}
		maps[nmaps].fd = listen_on(port, &bound);
		maps[nmaps].ep.side = -2 - nmaps;
		ev.data.ptr = &maps[nmaps].ep;
		epoll_ctl(epfd, EPOLL_CTL_ADD, maps[nmaps].fd, &ev);
		printf("listen %d %d\n", bound, maps[nmaps].target);
	}
	printf("ready\n");
	fflush(stdout);

	while (!stop) {
		struct epoll_event events[64];
		int n = epoll_wait(epfd, events, 64, -1);
		uint64_t now = now_ns();
		conn *c, *next;

		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			endpoint *e = events[i].data.ptr;
			if (e == &timer_ep) {
				uint64_t expirations;
				if (read(timer_fd, &expirations, sizeof expirations) < 0) { /* nothing: raced */
				}
			} else if (e->side <= -2) {
				on_accept(-2 - e->side, now);
			} else {
				/* The connection may be gone: an earlier event of this batch closed it. */
				for (c = conns; c && c != e->c; c = c->next) {
				}
				if (c == NULL)
					continue;
				/* Output first: the sweep below flushes every connection anyway. */
				if ((events[i].events & EPOLLOUT) && flush(c, 1 - e->side, now) < 0)
					continue;
				if (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR))
					on_readable(c, e->side);
			}
		}
		now = now_ns();
		for (c = conns; c; c = next) {
			next = c->next;
			if (flush(c, 0, now) == 0)
				flush(c, 1, now);
		}
		arm_timer();
	}
	printf("accepted");
	for (i = 0; i < nmaps; i++)
		printf(" %lu", maps[i].accepted);
	printf("\n");
	late_report();
	fflush(stdout);
	while (conns)
		close_conn(conns);
	return 0;
}
