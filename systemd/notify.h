/* The service manager's notify protocol (sd_notify). Every call is a no-op
 * when NOTIFY_SOCKET is unset, so the daemon runs the same outside systemd. */
#ifndef CHASSISD_NOTIFY_H
#define CHASSISD_NOTIFY_H

#include <stdint.h>

struct event;
struct event_base;

void notify_ready(const char *status);
/* RELOADING=1 with MONOTONIC_USEC=, which systemd >= 253 requires for
 * Type=notify-reload and older versions ignore. */
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *status);
/* Asks for more time before a step that may be slow (a protocol's start). */
void notify_extend_timeout(uint64_t usec);
/* With WatchdogSec= set: a loop timer that sends WATCHDOG=1 at half the
 * interval, so that a stuck loop gets the service killed and restarted.
 * NULL when there is no watchdog. */
struct event *notify_watchdog_start(struct event_base *base);

#endif
