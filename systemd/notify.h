/* The service manager's notify protocol (sd_notify). Every call is a no-op
 * when NOTIFY_SOCKET is unset, so the daemon runs the same outside systemd. */
#ifndef CHASSISD_NOTIFY_H
#define CHASSISD_NOTIFY_H

void notify_ready(const char *status);
/* RELOADING=1 with MONOTONIC_USEC=, which systemd >= 253 requires for
 * Type=notify-reload and older versions ignore. */
void notify_reloading(void);
void notify_stopping(void);
void notify_status(const char *status);

#endif
