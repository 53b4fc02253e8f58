/* `chassisd reload|status|stop|reopen`: the client side of the control
 * socket (daemon/control.h has the protocol). */
#ifndef CHASSISD_CONTROL_CLIENT_H
#define CHASSISD_CONTROL_CLIENT_H

#include <stdbool.h>

/* Exit statuses of the client. */
enum {
	CONTROL_CLIENT_DONE = 0,
	CONTROL_CLIENT_FAILED = 1,	/* the daemon answered: it did not apply */
	CONTROL_CLIENT_UNREACHABLE = 2,	/* no daemon, or no answer in time */
};

bool control_client_is_command(const char *word);
/* Sends command to the daemon at path and prints its answer: warnings and
 * errors on stderr, the rest on stdout. timeout bounds each wait for the
 * daemon; after stop, it waits for the daemon to exit up to stop_wait
 * seconds more. Returns one of the statuses above. */
int control_client_run(const char *path, const char *command, unsigned timeout, unsigned stop_wait);

#endif
