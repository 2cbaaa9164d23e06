/* Time for the engine (pace.h): the monotonic clock, and the rate cap's token bucket. */
#include "pace.h"

#include <time.h>

/* Waits are whole milliseconds (poll), so the bucket holds what 5 ms bring, plus one: a wait that
 * ends late starts the requests it owes, and the average stays exact (a spacing rounded to
 * milliseconds made 2,500/s mean no cap at all). */
#define BURST_NS 5000000.0

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

void cb_pace_init(cb_pace *p, double rate, long long now_ns)
{
	p->rate = rate > 0 ? rate : 0;
	p->capacity = 1 + p->rate * BURST_NS / 1e9;
	p->tokens = 1;
	p->at_ns = now_ns;
}

static void refill(cb_pace *p, long long now_ns)
{
	if (now_ns > p->at_ns) {
		p->tokens += (double)(now_ns - p->at_ns) * p->rate / 1e9;
		if (p->tokens > p->capacity)
			p->tokens = p->capacity;
		p->at_ns = now_ns;
	}
}

int cb_pace_take(cb_pace *p, long long now_ns, long long *when_ns)
{
	if (p->rate <= 0)
		return 1;
	refill(p, now_ns);
	if (p->tokens >= 1) {
		p->tokens -= 1;
		return 1;
	}
	*when_ns = now_ns + (long long)((1 - p->tokens) * 1e9 / p->rate) + 1;
	return 0;
}
