/* Pacing: when the next thing may go, on CLOCK_MONOTONIC deadlines.
 *
 * A pacer is a one-shot timer armed at an absolute deadline, never a
 * fixed period (a period drifts by the time each wakeup is late). A
 * precise pacer keeps its own timerfd, so a deadline is met to within
 * the scheduler's wakeup latency (libevent's epoll backend rounds every
 * timeout up to a whole millisecond, and its precise-timer flag would
 * cost every loop iteration of the daemon a syscall); a coarse one uses
 * a libevent timer and is right to a millisecond. A pace is the
 * arithmetic: units (bytes, datagrams) allowed since the start at a rate,
 * with a late wakeup caught up by at most `burst` units at once; debt
 * beyond that is forgiven and counted, not sent in a burst. */
#ifndef CHASSISD_PACER_H
#define CHASSISD_PACER_H

#include <stdbool.h>
#include <stdint.h>

struct event_base;
struct pacer;

#define PACER_NS_PER_SECOND 1000000000ull

uint64_t pacer_now_ns(void);

/* fire(arg, now) runs once per pacer_at(). NULL when out of fds or memory. */
struct pacer *pacer_new(struct event_base *base, bool precise, void (*fire)(void *arg, uint64_t now_ns), void *arg);
/* Arms (or re-arms) the pacer for `deadline` (pacer_now_ns() time); a
 * deadline in the past fires on the next loop pass. */
void pacer_at(struct pacer *pacer, uint64_t deadline_ns);
void pacer_cancel(struct pacer *pacer);
bool pacer_armed(const struct pacer *pacer);
void pacer_free(struct pacer *pacer);

struct pace {
	uint64_t rate;			/* units per second; 0 = no limit */
	uint64_t burst;			/* units a late wakeup may send at once */
	uint64_t start_ns;		/* of the current run of allowances */
	uint64_t sent;			/* units since start_ns */
	uint64_t forgiven;		/* units of debt dropped after late wakeups */
	uint64_t late;			/* wakeups that owed more than burst */
};

void pace_start(struct pace *pace, uint64_t rate, uint64_t burst, uint64_t now_ns);
/* Units that may go now (UINT64_MAX without a rate). */
uint64_t pace_allowance(struct pace *pace, uint64_t now_ns);
void pace_sent(struct pace *pace, uint64_t units);
/* When `units` more may go. */
uint64_t pace_deadline(const struct pace *pace, uint64_t units);

#endif
