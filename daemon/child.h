/* The child-process runner: a configured program per request, run safely.
 *
 * Kamaelia ran `fortune` through a shell, relative to the working
 * directory, with no timeout, no output cap and no reaping discipline. Here
 * a child gets an argv (no shell), a minimal environment, a working
 * directory, only fds 0-2 (stdin /dev/null, stdout and stderr pipes), its
 * own process group (so a timeout kills what it started too), a deadline
 * (SIGTERM, then SIGKILL after a grace) and an output cap. A pidfd reaps it
 * from the event loop: no SIGCHLD handler, no zombie. */
#ifndef CHASSISD_CHILD_H
#define CHASSISD_CHILD_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct child;
struct event_base;
struct evbuffer;

/* What the config says (protocols/support/child_spec.h reads it);
 * immutable once loaded. */
struct child_spec {
	char **argv;			/* NULL-terminated; argv[0] absolute */
	char *workdir;
	unsigned timeout_ms;		/* 0 = none */
	unsigned kill_grace_ms;
	size_t output_limit;
	unsigned max_children;		/* per listener */
	bool busy_message;		/* over the cap: say so, else just close */
	/* Run as uid/gid, with gid as the only group (the daemon must still
	 * be root): switched in the child between fork and exec. */
	bool switch_user;
	uid_t uid;
	gid_t gid;
};

/* What one run adds to its spec: inetd's way of running a program. */
struct child_io {
	/* A connected socket as stdin and stdout, instead of /dev/null and a
	 * pipe: the program talks to the peer itself, no output hook runs.
	 * The caller keeps (and closes) its own copy. -1: none. */
	int socket;
	/* "KEY=value" entries on top of the runner's few (PATH, LANG, HOME),
	 * replacing one of the same name; NULL-terminated, or NULL. */
	char *const *environment;
	/* With has_input (and no socket): `input`, a readable fd (a spooled
	 * file), as stdin instead of /dev/null; the program reads it from the
	 * fd's offset to its end. The caller keeps (and closes) its own copy. */
	bool has_input;
	int input;
};

/* Per listener generation: the cap and the counters. A pool outlives its
 * owner while its children die: release it, and the last child frees it. */
struct child_pool {
	unsigned live;
	bool released;
	unsigned long long spawned, refused, failed, timed_out, cut;
};

struct child_pool *child_pool_new(void);
void child_pool_release(struct child_pool *pool);

enum child_end {
	CHILD_OK,			/* exit status 0 */
	CHILD_FAILED,			/* non-zero exit or killed by a signal */
	CHILD_TIMED_OUT,
	CHILD_CUT,			/* output reached the limit */
};

struct child_hooks {
	/* New stdout bytes. Take them all: a request's child is never
	 * paused, so its deadline measures the program, not a slow client;
	 * output-limit bounds what an owner may have to hold. (A stream's
	 * program has no deadline and is paused instead.) */
	void (*output)(void *owner, struct evbuffer *data);
	/* Once, after the process is reaped and its stdout drained. */
	void (*finished)(void *owner, enum child_end end);
};

/* NULL when over a cap (pool->refused counted, errno EAGAIN) or when the
 * spawn failed (pool->failed counted, reason in err). */
struct child *child_spawn(struct event_base *base, const struct child_spec *spec, struct child_pool *pool,
			  const char *listener, const struct child_hooks *hooks, void *owner, char *err,
			  size_t err_len);
/* The same with io (NULL: as child_spawn). */
struct child *child_spawn_io(struct event_base *base, const struct child_spec *spec, struct child_pool *pool,
			     const char *listener, const struct child_io *io, const struct child_hooks *hooks,
			     void *owner, char *err, size_t err_len);
/* A stream's program: stop reading its stdout while the stream has enough
 * (the pipe fills and the program waits), and go on later. */
void child_pause_output(struct child *child);
void child_resume_output(struct child *child);
/* The owner is gone: no more hooks; the process is killed and reaped. */
void child_abandon(struct child *child);
/* In the finished() hook: the wait status waitpid gave (WIFEXITED ...),
 * 0 when the process was never reaped as such. */
int child_wait_status(const struct child *child);

/* Daemon-wide cap on children alive at once (global max-children). */
void child_set_global_limit(unsigned max);
unsigned child_live_count(void);
/* At exit: SIGKILL every child still alive and wait for it. */
void child_kill_all(void);

#endif
