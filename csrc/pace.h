/* Time for the engine: the monotonic clock, and the rate cap as a token bucket on it. */
#ifndef CODEARTSBUILD_PACE_H
#define CODEARTSBUILD_PACE_H

/* The monotonic clock, in nanoseconds and in milliseconds. */
long long cb_now_ns(void);
long long cb_now_ms(void);

/* A start takes a token; tokens come back at `rate` a second (0: no cap). */
typedef struct {
	double rate, tokens, capacity;
	long long at_ns; /* when tokens was last brought up to date */
} cb_pace;

void cb_pace_init(cb_pace *p, double rate, long long now_ns);
/* Takes a token for a start now (1), or says when the next one comes (0, *when_ns). */
int cb_pace_take(cb_pace *p, long long now_ns, long long *when_ns);

#endif
