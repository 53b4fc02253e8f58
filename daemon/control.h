/* The control socket: an AF_UNIX stream socket on which an administrator
 * (`chassisd reload`, systemd's ExecReload=) asks the running daemon to
 * reload, report its status or stop, and hears the outcome.
 *
 * The protocol, one command per connection:
 *   client: a command word and "\n" (reload, status, stop, reopen)
 *   daemon: what it logged while it ran the command, one "<N>text\n" line
 *           each (N the syslog priority), then "ok\n" or "failed\n";
 *           then it closes, except after stop: that connection stays
 *           open until the daemon exits, so the client can wait for it.
 * The socket is mode 0600: whoever can connect can stop the daemon. */
#ifndef CHASSISD_CONTROL_H
#define CHASSISD_CONTROL_H

#include <stdbool.h>
#include <sys/types.h>

struct event_base;
struct control;

#define CONTROL_LINE_MAX 64	/* a command line, "\n" included: commands are single words */

/* What the daemon does for each command; each returns whether it did it. */
struct control_commands {
	bool (*reload)(void *arg);
	bool (*status)(void *arg);
	bool (*stop)(void *arg);
	bool (*reopen)(void *arg);	/* the log-file, after logrotate */
	void *arg;
};

struct control_limits {
	unsigned timeout;		/* seconds a client may take to ask */
	unsigned max_clients;
};

/* Binds path (0600, owned by owner/group when chown_to is set, so that the
 * daemon can still use it once it dropped root). A live socket answered by
 * another process is left alone, a stale one replaced. NULL (with a
 * warning logged) when the daemon has to do without. */
struct control *control_open(struct event_base *base, const char *path, const struct control_limits *limits,
			     const struct control_commands *commands);
int control_chown(struct control *control, uid_t owner, gid_t group);
const char *control_path(const struct control *control);
/* Closes every client (a waiting `stop` sees the end) and removes the
 * socket file if it is still ours. */
void control_free(struct control *control);

#endif
