/* daemon/pacer.c: the pace arithmetic, and deadlines met on a real loop. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "daemon/pacer.h"

#define MS (1000ull * 1000)

Test(pace, allowance_grows_with_time_at_the_rate)
{
	struct pace p;

	pace_start(&p, 1000, 1000, 10 * PACER_NS_PER_SECOND);
	cr_assert_eq(pace_allowance(&p, 10 * PACER_NS_PER_SECOND), 0);
	cr_assert_eq(pace_allowance(&p, 10 * PACER_NS_PER_SECOND + 500 * MS), 500);
	pace_sent(&p, 300);
	cr_assert_eq(pace_allowance(&p, 10 * PACER_NS_PER_SECOND + 500 * MS), 200);
	cr_assert_eq(p.late, 0);
}

Test(pace, deadline_is_when_the_units_have_been_earned)
{
	struct pace p;

	pace_start(&p, 250000, 5000, 0);	/* 2 Mbit/s in bytes */
	cr_assert_eq(pace_deadline(&p, 1316), 5264000);	/* 1316 / 250000 s */
	pace_sent(&p, 1316);
	cr_assert_eq(pace_deadline(&p, 1316), 10528000);
	/* At its deadline the allowance is exactly enough. */
	cr_assert_geq(pace_allowance(&p, pace_deadline(&p, 1316)), 1316);
	cr_assert_lt(pace_allowance(&p, pace_deadline(&p, 1316) - 1), 1316);
}

Test(pace, a_late_wakeup_sends_at_most_a_burst_and_forgives_the_rest)
{
	struct pace p;
	uint64_t now = 100 * MS;

	pace_start(&p, 1000, 40, 0);
	cr_assert_eq(pace_allowance(&p, now), 40);	/* 100 owed */
	cr_assert_eq(p.late, 1);
	cr_assert_eq(p.forgiven, 60);
	pace_sent(&p, 40);
	/* And then the rate again, from now: one unit a millisecond. */
	cr_assert_eq(pace_allowance(&p, now), 0);
	cr_assert_eq(pace_allowance(&p, now + 10 * MS), 10);
	cr_assert_eq(pace_deadline(&p, 1), now + 1 * MS);
}

Test(pace, no_rate_is_no_limit)
{
	struct pace p;

	pace_start(&p, 0, 0, 0);
	cr_assert_eq(pace_allowance(&p, 0), UINT64_MAX);
	cr_assert_eq(pace_deadline(&p, 1000000), 0);
}

Test(pace, hours_at_ten_gigabit_do_not_overflow)
{
	struct pace p;
	uint64_t hours = 10 * 3600 * PACER_NS_PER_SECOND;

	pace_start(&p, 1250000000ull, UINT64_MAX / 2, 0);
	cr_assert_eq(pace_allowance(&p, hours), 1250000000ull * 36000);
}

struct run {
	struct event_base *base;
	struct pacer *pacer;
	uint64_t start, period;
	unsigned fired, wanted;
	uint64_t lateness_sum, lateness_max;
	uint64_t lateness[512];
};

static int compare_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return (x > y) - (x < y);
}

static uint64_t median_lateness(struct run *r)
{
	qsort(r->lateness, r->fired, sizeof(r->lateness[0]), compare_u64);
	return r->lateness[r->fired / 2];
}

static void on_fire(void *arg, uint64_t now)
{
	struct run *r = arg;
	uint64_t due = r->start + (uint64_t)(r->fired + 1) * r->period;
	uint64_t late = now > due ? now - due : 0;

	cr_assert_geq(now, due, "fired %llu ns early", (unsigned long long)(due - now));
	r->lateness_sum += late;
	if (r->fired < sizeof(r->lateness) / sizeof(r->lateness[0]))
		r->lateness[r->fired] = late;
	if (late > r->lateness_max)
		r->lateness_max = late;
	if (++r->fired == r->wanted)
		event_base_loopbreak(r->base);
	else
		pacer_at(r->pacer, due + r->period);
}

static void run_pacer(bool precise, struct run *r)
{
	r->base = event_base_new();
	r->pacer = pacer_new(r->base, precise, on_fire, r);
	cr_assert_not_null(r->pacer);
	r->start = pacer_now_ns();
	pacer_at(r->pacer, r->start + r->period);
	cr_assert(pacer_armed(r->pacer));
	event_base_dispatch(r->base);
	cr_assert_eq(r->fired, r->wanted);
	pacer_free(r->pacer);
	event_base_free(r->base);
}

/* Deadlines are absolute: lateness does not add up over the run, and a
 * precise pacer meets them to well under a millisecond (the median: on a
 * busy machine some wakeups are late; libevent's own timers would round
 * every one up to the next millisecond). */
Test(pacer, precise_deadlines_are_met_without_drift)
{
	struct run r = { .period = 2 * MS + 137000, .wanted = 300 };

	run_pacer(true, &r);
	cr_assert_lt(median_lateness(&r), 500000, "median lateness %llu ns",
		     (unsigned long long)median_lateness(&r));
	cr_assert_lt(pacer_now_ns() - r.start, r.period * r.wanted + 50 * MS);
}

/* How late this machine wakes a thread now: the median of absolute
 * clock_nanosleep()s at the pacer's period. A busy machine makes every
 * wakeup late, the pacer's too; this measures the machine, not the code. */
static uint64_t machine_lateness(uint64_t period, unsigned count)
{
	uint64_t late[64], due = pacer_now_ns();

	for (unsigned i = 0; i < count && i < 64; i++) {
		struct timespec ts;

		due += period;
		ts.tv_sec = (time_t)(due / PACER_NS_PER_SECOND);
		ts.tv_nsec = (long)(due % PACER_NS_PER_SECOND);
		while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) != 0)
			;
		late[i] = pacer_now_ns() - due;
	}
	qsort(late, count, sizeof(late[0]), compare_u64);
	return late[count / 2];
}

/* The median, within a millisecond or two (libevent's rounding) of what
 * the machine itself manages, measured before and after the run. Up to
 * three runs: a neighbour that loads the machine during one run only
 * (CI: 3.4 ms median against the machine's 0.09 ms measured before it)
 * fails that run; a pacer that is late fails all three. */
Test(pacer, coarse_deadlines_are_met_to_a_millisecond)
{
	uint64_t median = 0, machine = 0;

	for (int attempt = 0; attempt < 3; attempt++) {
		struct run r = { .period = 5 * MS, .wanted = 40 };
		uint64_t after;

		machine = machine_lateness(5 * MS, 40);
		run_pacer(false, &r);
		after = machine_lateness(5 * MS, 40);
		if (after > machine)
			machine = after;
		median = median_lateness(&r);
		if (median < machine + 3 * MS)
			break;
	}
	cr_assert_lt(median, machine + 3 * MS, "median lateness %llu ns, the machine's %llu ns",
		     (unsigned long long)median, (unsigned long long)machine);
}

Test(pacer, a_past_deadline_fires_at_once_and_cancel_stops_it)
{
	struct run r = { .period = 0, .wanted = 1 };

	r.base = event_base_new();
	r.pacer = pacer_new(r.base, true, on_fire, &r);
	r.start = pacer_now_ns() - 10 * MS;
	pacer_at(r.pacer, 1);
	event_base_loop(r.base, EVLOOP_ONCE);
	cr_assert_eq(r.fired, 1);
	pacer_at(r.pacer, pacer_now_ns() + 5 * MS);
	pacer_cancel(r.pacer);
	cr_assert_not(pacer_armed(r.pacer));
	event_base_loop(r.base, EVLOOP_NONBLOCK);
	cr_assert_eq(r.fired, 1);
	pacer_free(r.pacer);
	event_base_free(r.base);
}
