#include "systemd/notify.h"

#include <event2/event.h>
#include <systemd/sd-daemon.h>
#include <time.h>

void notify_ready(const char *status)
{
	sd_notifyf(0, "READY=1\nSTATUS=%s", status);
}

void notify_reloading(void)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading",
		   (unsigned long long)now.tv_sec * 1000000ull + (unsigned long long)now.tv_nsec / 1000);
}

void notify_stopping(void)
{
	sd_notify(0, "STOPPING=1\nSTATUS=stopping");
}

void notify_status(const char *status)
{
	sd_notifyf(0, "STATUS=%s", status);
}

void notify_extend_timeout(uint64_t usec)
{
	sd_notifyf(0, "EXTEND_TIMEOUT_USEC=%llu", (unsigned long long)usec);
}

static void notify_on_watchdog(evutil_socket_t fd, short what, void *arg)
{
	sd_notify(0, "WATCHDOG=1");
	(void)fd;
	(void)what;
	(void)arg;
}

struct event *notify_watchdog_start(struct event_base *base)
{
	uint64_t usec = 0;
	struct timeval half;
	struct event *timer;

	/* 0: keep WATCHDOG_USEC in the environment; children we spawn get a
	 * minimal environment of their own anyway. */
	if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0)
		return NULL;
	half.tv_sec = (time_t)(usec / 2 / 1000000);
	half.tv_usec = (suseconds_t)(usec / 2 % 1000000);
	timer = event_new(base, -1, EV_PERSIST, notify_on_watchdog, NULL);
	if (timer != NULL && event_add(timer, &half) < 0) {
		event_free(timer);
		return NULL;
	}
	sd_notify(0, "WATCHDOG=1");
	return timer;
}
