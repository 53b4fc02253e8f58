#include "daemon/pacer.h"

#include <event2/event.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

struct pacer {
	int fd;				/* timerfd, precise pacers only */
	bool must_read;			/* no edge-triggered events: clear it */
	struct event *ev;
	bool armed;
	void (*fire)(void *arg, uint64_t now_ns);
	void *arg;
};

uint64_t pacer_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * PACER_NS_PER_SECOND + (uint64_t)ts.tv_nsec;
}

static void pacer_on_fire(evutil_socket_t fd, short what, void *arg)
{
	struct pacer *pacer = arg;
	uint64_t expirations;

	if (pacer->must_read && read(pacer->fd, &expirations, sizeof(expirations)) < 0)
		return;			/* re-armed since: not this deadline */
	/* The timerfd is edge-triggered and never read: re-arming it resets
	 * its count, and a syscall per deadline is worth saving at
	 * thousands of deadlines a second. */
	pacer->armed = false;
	pacer->fire(pacer->arg, pacer_now_ns());
	(void)fd;
	(void)what;
}

struct pacer *pacer_new(struct event_base *base, bool precise, void (*fire)(void *arg, uint64_t now_ns), void *arg)
{
	struct pacer *pacer = calloc(1, sizeof(*pacer));

	if (pacer == NULL)
		return NULL;
	pacer->fd = -1;
	pacer->fire = fire;
	pacer->arg = arg;
	if (precise) {
		/* poll and select have no edge trigger (EVENT_NOEPOLL set). */
		pacer->must_read = !(event_base_get_features(base) & EV_FEATURE_ET);
		pacer->fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
		if (pacer->fd >= 0)
			pacer->ev = event_new(base, pacer->fd, EV_READ | EV_PERSIST | (pacer->must_read ? 0 : EV_ET),
					      pacer_on_fire, pacer);
	} else {
		pacer->ev = evtimer_new(base, pacer_on_fire, pacer);
	}
	if (pacer->ev == NULL || (pacer->fd >= 0 && event_add(pacer->ev, NULL) < 0)) {
		pacer_free(pacer);
		return NULL;
	}
	return pacer;
}

void pacer_at(struct pacer *pacer, uint64_t deadline_ns)
{
	pacer->armed = true;
	if (pacer->fd >= 0) {
		/* 0 would disarm the timer: a past deadline is 1 ns. */
		uint64_t at = deadline_ns ? deadline_ns : 1;
		struct itimerspec spec = {
			.it_value = { (time_t)(at / PACER_NS_PER_SECOND), (long)(at % PACER_NS_PER_SECOND) },
		};
		timerfd_settime(pacer->fd, TFD_TIMER_ABSTIME, &spec, NULL);
	} else {
		uint64_t now = pacer_now_ns();
		uint64_t in = deadline_ns > now ? deadline_ns - now : 0;
		struct timeval tv = { (time_t)(in / PACER_NS_PER_SECOND),
				      (suseconds_t)((in % PACER_NS_PER_SECOND + 999) / 1000) };
		evtimer_add(pacer->ev, &tv);
	}
}

void pacer_cancel(struct pacer *pacer)
{
	pacer->armed = false;
	if (pacer->fd >= 0) {
		struct itimerspec off;
		memset(&off, 0, sizeof(off));
		timerfd_settime(pacer->fd, 0, &off, NULL);
	} else {
		evtimer_del(pacer->ev);
	}
}

bool pacer_armed(const struct pacer *pacer)
{
	return pacer->armed;
}

void pacer_free(struct pacer *pacer)
{
	if (pacer == NULL)
		return;
	if (pacer->ev != NULL)
		event_free(pacer->ev);
	if (pacer->fd >= 0)
		close(pacer->fd);
	free(pacer);
}

/* ---- pace ---- */

void pace_start(struct pace *pace, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
	memset(pace, 0, sizeof(*pace));
	pace->rate = rate;
	pace->burst = burst ? burst : 1;
	pace->start_ns = now_ns;
}

/* Units earned from start_ns to now; 128-bit so that hours at 10 Gbit/s
 * do not overflow. */
static uint64_t pace_earned(const struct pace *pace, uint64_t now_ns)
{
	unsigned __int128 earned = (unsigned __int128)(now_ns - pace->start_ns) * pace->rate;

	return (uint64_t)(earned / PACER_NS_PER_SECOND);
}

uint64_t pace_allowance(struct pace *pace, uint64_t now_ns)
{
	unsigned __int128 back;
	uint64_t earned, owed;

	if (pace->rate == 0)
		return UINT64_MAX;
	if (now_ns < pace->start_ns)
		return 0;
	earned = pace_earned(pace, now_ns);
	owed = earned > pace->sent ? earned - pace->sent : 0;
	if (owed <= pace->burst)
		return owed;
	/* Woken far too late: send a burst's worth and start counting
	 * afresh from now, rather than flood the receiver with the debt. */
	pace->late++;
	pace->forgiven += owed - pace->burst;
	back = (unsigned __int128)pace->burst * PACER_NS_PER_SECOND / pace->rate;
	pace->start_ns = back < now_ns ? now_ns - (uint64_t)back : 0;
	pace->sent = 0;
	return pace->burst;
}

void pace_sent(struct pace *pace, uint64_t units)
{
	pace->sent += units;
}

uint64_t pace_deadline(const struct pace *pace, uint64_t units)
{
	unsigned __int128 ns;

	if (pace->rate == 0)
		return 0;
	/* The first nanosecond at which sent + units have been earned. */
	ns = ((unsigned __int128)(pace->sent + units) * PACER_NS_PER_SECOND + pace->rate - 1) / pace->rate;
	return pace->start_ns + (uint64_t)ns;
}
