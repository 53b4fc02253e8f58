/* A queue of spooled objects in front of one program at a time. The
 * objects are unnamed files (O_TMPFILE, receive.c), so the queue holds an
 * fd and a few numbers each, never the bytes: memory stays bounded by
 * command-queue whatever the objects' sizes, and a crash leaves nothing
 * behind on disk. A program's stdin is the object's file itself (a dup of
 * the fd): it reads the bytes and then EOF, at its own pace. */
#include "protocols/srm/command.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/chassis.h"
#include "daemon/child.h"
#include "daemon/log.h"
#include "protocols/srm/common.h"
#include "protocols/support/child_spec.h"

/* The daemon-wide cap on children was reached: the next try is after. */
#define SRM_COMMAND_RETRY_MS 200
/* Stopped: how often it looks whether the daemon stops (its grace then). */
#define SRM_COMMAND_WATCH_MS 100

struct srm_object_out {
	int fd;
	uint64_t size;
	uint32_t session, object;
	size_t name_len;
	uint8_t name[SRM_NAME_STORE_MAX];
};

struct srm_command {
	struct event_base *base;
	struct chassis *chassis;
	char *unit;
	struct child_spec spec;
	struct child_pool *pool;
	struct srm_object_out *queue;	/* a ring of cap */
	size_t cap, head, count;
	struct srm_object_out current;	/* the one the program has */
	struct child *running;
	struct event *kick;		/* start the next (at once, or after a refusal) */
	struct event *watch, *grace;
	bool detached, holding, stopping, capped;
	struct srm_command_counters counters;
};

static void srm_command_log(const struct srm_command *cmd, int level, const char *what,
			    const struct srm_object_out *o)
{
	srm_log_named(NULL, cmd->unit, level, what, o->session, o->object, o->name, o->name_len);
}

static void srm_command_free(struct srm_command *cmd)
{
	if (cmd->kick != NULL)
		event_free(cmd->kick);
	if (cmd->watch != NULL)
		event_free(cmd->watch);
	if (cmd->grace != NULL)
		event_free(cmd->grace);
	if (cmd->running != NULL)
		child_abandon(cmd->running);
	for (size_t i = 0; cmd->queue != NULL && i < cmd->count; i++)
		close(cmd->queue[(cmd->head + i) % cmd->cap].fd);
	free(cmd->queue);
	child_pool_release(cmd->pool);
	child_spec_free(&cmd->spec);
	free(cmd->unit);
	if (cmd->holding)
		chassis_release(cmd->chassis);
	free(cmd);
}

static void srm_command_kick(struct srm_command *cmd, unsigned after_ms)
{
	struct timeval tv = { after_ms / 1000, (after_ms % 1000) * 1000 };

	evtimer_add(cmd->kick, &tv);
}

/* The program's stdout is nobody's: read and dropped, so that it never
 * blocks on a full pipe. */
static void srm_command_output(void *owner, struct evbuffer *data)
{
	(void)owner;
	evbuffer_drain(data, evbuffer_get_length(data));
}

static void srm_command_finished(void *owner, enum child_end end)
{
	struct srm_command *cmd = owner;
	int status = child_wait_status(cmd->running);
	char what[128];

	cmd->running = NULL;
	if (end == CHILD_OK) {
		cmd->counters.delivered++;
		srm_command_log(cmd, LOG_INFO, "delivered to the command", &cmd->current);
	} else {
		cmd->counters.failed++;
		if (end == CHILD_TIMED_OUT)
			snprintf(what, sizeof(what), "the command timed out (command-timeout)");
		else if (WIFEXITED(status))
			snprintf(what, sizeof(what), "the command exited with status %d", WEXITSTATUS(status));
		else if (WIFSIGNALED(status))
			snprintf(what, sizeof(what), "the command was killed by signal %d", WTERMSIG(status));
		else
			snprintf(what, sizeof(what), "the command failed");
		srm_command_log(cmd, LOG_WARNING, what, &cmd->current);
	}
	/* The runner frees the child after this hook: the pool's count of
	 * live children falls then, and the next may start. */
	srm_command_kick(cmd, 0);
}

static const struct child_hooks srm_command_hooks = {
	.output = srm_command_output,
	.finished = srm_command_finished,
};

/* The head of the queue to a fresh run of the program. False when the
 * cap on children refused it: it stays at the head. */
static bool srm_command_start(struct srm_command *cmd)
{
	struct srm_object_out *o = &cmd->queue[cmd->head];
	char name[sizeof(o->name) + 16], size[48], session[32], object[32], err[256], what[320];
	char *env[5];
	size_t n = 0;
	struct child_io io = { .socket = -1, .has_input = true, .input = o->fd, .environment = env };

	if (o->name_len > 0) {
		snprintf(name, sizeof(name), "SRM_NAME=%.*s", (int)o->name_len, (const char *)o->name);
		env[n++] = name;
	}
	snprintf(size, sizeof(size), "SRM_SIZE=%" PRIu64, o->size);
	snprintf(session, sizeof(session), "SRM_SESSION=%" PRIu32, o->session);
	snprintf(object, sizeof(object), "SRM_OBJECT=%" PRIu32, o->object);
	env[n++] = size;
	env[n++] = session;
	env[n++] = object;
	env[n] = NULL;
	if (lseek(o->fd, 0, SEEK_SET) < 0) {
		snprintf(err, sizeof(err), "cannot rewind its spool file: %s", strerror(errno));
		cmd->running = NULL;
	} else {
		cmd->running = child_spawn_io(cmd->base, &cmd->spec, cmd->pool, cmd->unit, &io, &srm_command_hooks, cmd,
					      err, sizeof(err));
		if (cmd->running == NULL && errno == EAGAIN) {
			if (!cmd->capped)
				srm_command_log(cmd, LOG_INFO, "waits for the daemon-wide max-children", o);
			cmd->capped = true;
			return false;
		}
	}
	cmd->capped = false;
	cmd->current = *o;
	cmd->head = (cmd->head + 1) % cmd->cap;
	cmd->count--;
	/* The program has its own copy as stdin. */
	close(cmd->current.fd);
	cmd->current.fd = -1;
	if (cmd->running == NULL) {
		cmd->counters.failed++;
		snprintf(what, sizeof(what), "not delivered to the command (%s)", err);
		srm_command_log(cmd, LOG_WARNING, what, &cmd->current);
	}
	return true;
}

/* The next waiting object to the program, if none has it; one that
 * cannot start is counted failed and the next tried; a refusal by the
 * cap on children is tried again later. */
static void srm_command_pump(struct srm_command *cmd)
{
	while (cmd->running == NULL && cmd->count > 0)
		if (!srm_command_start(cmd)) {
			srm_command_kick(cmd, SRM_COMMAND_RETRY_MS);
			return;
		}
}

static void srm_command_on_kick(evutil_socket_t fd, short what, void *arg)
{
	struct srm_command *cmd = arg;

	(void)fd;
	(void)what;
	srm_command_pump(cmd);
	if (cmd->detached && cmd->running == NULL && cmd->count == 0)
		srm_command_free(cmd);
}

/* Shutdown grace is over: the program is killed (SIGTERM, SIGKILL after
 * kill-grace) and what waits is not delivered. */
static void srm_command_on_grace(evutil_socket_t fd, short what, void *arg)
{
	struct srm_command *cmd = arg;

	(void)fd;
	(void)what;
	if (cmd->running != NULL) {
		cmd->counters.failed++;
		srm_command_log(cmd, LOG_WARNING, "not delivered to the command (shutdown grace over: killed)",
				&cmd->current);
	}
	for (size_t i = 0; i < cmd->count; i++)
		srm_command_log(cmd, LOG_WARNING, "not delivered to the command (shutdown grace over)",
				&cmd->queue[(cmd->head + i) % cmd->cap]);
	srm_command_free(cmd);
}

static void srm_command_on_watch(evutil_socket_t fd, short what, void *arg)
{
	struct srm_command *cmd = arg;
	unsigned grace_s;
	struct timeval tv = { 0, 0 };

	(void)fd;
	(void)what;
	if (cmd->stopping || !chassis_stopping(cmd->chassis, &grace_s))
		return;
	cmd->stopping = true;
	tv.tv_sec = grace_s;
	evtimer_add(cmd->grace, &tv);
}

void srm_command_detach(struct srm_command *cmd)
{
	struct timeval every = { 0, SRM_COMMAND_WATCH_MS * 1000 };

	if (cmd == NULL)
		return;
	cmd->detached = true;
	if (cmd->running == NULL && cmd->count == 0) {
		srm_command_free(cmd);
		return;
	}
	log_write(LOG_INFO, &(struct log_context){ .listener = cmd->unit, .protocol = "srm" },
		  "the listener stopped; %zu object%s still to deliver to the command go on", cmd->count + (cmd->running != NULL),
		  cmd->count + (cmd->running != NULL) == 1 ? "" : "s");
	chassis_hold(cmd->chassis);
	cmd->holding = true;
	evtimer_add(cmd->watch, &every);
}

bool srm_command_add(struct srm_command *cmd, int fd, uint64_t size, uint32_t session, uint32_t object,
		     const uint8_t *name, size_t name_len)
{
	struct srm_object_out *o;

	if (name_len > sizeof(o->name))
		name_len = 0;
	/* The program may be free since its last run ended (its kick has
	 * not come yet): the head goes to it first, making room. */
	if (!cmd->capped)
		srm_command_pump(cmd);
	if (cmd->count == cmd->cap) {
		struct srm_object_out dropped = { .session = session, .object = object, .name_len = name_len };

		if (name_len > 0)
			memcpy(dropped.name, name, name_len);
		close(fd);
		cmd->counters.dropped++;
		srm_command_log(cmd, LOG_WARNING, "dropped: the command's queue is full (command-queue)", &dropped);
		return false;
	}
	o = &cmd->queue[(cmd->head + cmd->count) % cmd->cap];
	*o = (struct srm_object_out){ .fd = fd, .size = size, .session = session, .object = object,
				      .name_len = name_len };
	if (name_len > 0)
		memcpy(o->name, name, name_len);
	cmd->count++;
	if (!cmd->capped)
		srm_command_pump(cmd);
	return true;
}

static bool srm_spec_copy(struct child_spec *to, const struct child_spec *from)
{
	size_t n = 0;

	*to = *from;
	to->argv = NULL;
	to->workdir = NULL;
	while (from->argv[n] != NULL)
		n++;
	to->argv = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; to->argv != NULL && i < n; i++)
		if ((to->argv[i] = strdup(from->argv[i])) == NULL)
			return false;
	to->workdir = strdup(from->workdir);
	return to->argv != NULL && to->workdir != NULL;
}

struct srm_command *srm_command_new(const struct unit_env *env, const struct child_spec *spec, size_t queue)
{
	struct srm_command *cmd = calloc(1, sizeof(*cmd));

	if (cmd == NULL)
		return NULL;
	cmd->base = env->base;
	cmd->chassis = env->chassis;
	cmd->cap = queue;
	cmd->current.fd = -1;
	cmd->unit = strdup(env->unit);
	cmd->pool = child_pool_new();
	cmd->queue = calloc(queue, sizeof(*cmd->queue));
	cmd->kick = evtimer_new(env->base, srm_command_on_kick, cmd);
	cmd->watch = event_new(env->base, -1, EV_PERSIST, srm_command_on_watch, cmd);
	cmd->grace = evtimer_new(env->base, srm_command_on_grace, cmd);
	if (!srm_spec_copy(&cmd->spec, spec) || cmd->unit == NULL || cmd->pool == NULL || cmd->queue == NULL ||
	    cmd->kick == NULL || cmd->watch == NULL || cmd->grace == NULL) {
		srm_command_free(cmd);
		return NULL;
	}
	return cmd;
}

const struct srm_command_counters *srm_command_counters(const struct srm_command *cmd)
{
	return &cmd->counters;
}

size_t srm_command_waiting(const struct srm_command *cmd)
{
	return cmd->count;
}
