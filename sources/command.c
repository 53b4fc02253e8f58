/* A command source: a program's stdout (ffmpeg -re, a capture tool),
 * run by the chassis child runner with no deadline. While the stream has
 * enough, its stdout is not read: the pipe fills and the program waits.
 * When it exits it is started again after a back-off that grows while it
 * keeps failing, and the state is logged once per change. */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/child.h"
#include "daemon/log.h"
#include "daemon/pacer.h"
#include "sources/kind.h"

#define COMMAND_KILL_GRACE_MS 2000
/* A run at least this long was a good one: the next exit backs off from
 * the start again. A program that keeps dying sooner backs off further
 * each time, output or not. */
#define COMMAND_GOOD_RUN_NS (10ull * 1000 * 1000 * 1000)

struct command_source {
	struct child_spec spec;
	struct child_pool *pool;
	struct child *child;
	struct event *restart;
	unsigned failures;
	bool produced;			/* since the last spawn */
	uint64_t spawned_ns;
};

static void command_spawn(struct source *src);

static void command_schedule_restart(struct source *src, const char *why)
{
	struct command_source *c = src->kind;
	unsigned delay = source_backoff_ms(src, ++c->failures);
	struct timeval tv = { delay / 1000, (delay % 1000) * 1000 };

	src->counters.failures++;
	/* Once per episode: a program that keeps dying says so once, then
	 * at debug level (its count is in the status). */
	source_set_state(src, "backing off", c->failures == 1 ? LOG_WARNING : LOG_DEBUG,
			 "%s %s; starting it again with back-off", c->spec.argv[0], why);
	evtimer_add(c->restart, &tv);
}

static void command_on_output(void *owner, struct evbuffer *data)
{
	struct source *src = owner;
	struct command_source *c = src->kind;
	size_t n = evbuffer_get_length(data);

	if (n == 0)
		return;
	evbuffer_add_buffer(src->buffer, data);
	src->counters.bytes += n;
	if (!c->produced) {
		c->produced = true;
		source_set_state(src, "reading", c->failures == 0 ? LOG_INFO : LOG_DEBUG, "reading the output of %s",
				 c->spec.argv[0]);
	}
	if (source_full(src))
		child_pause_output(c->child);
	source_arrived(src);
}

static void command_on_finished(void *owner, enum child_end end)
{
	struct source *src = owner;
	struct command_source *c = src->kind;

	c->child = NULL;
	source_mark_discontinuity(src);
	if (pacer_now_ns() - c->spawned_ns >= COMMAND_GOOD_RUN_NS)
		c->failures = 0;
	command_schedule_restart(src, end == CHILD_OK ? "exited" : "failed");
}

static const struct child_hooks command_hooks = {
	.output = command_on_output,
	.finished = command_on_finished,
};

static void command_spawn(struct source *src)
{
	struct command_source *c = src->kind;
	char err[256];

	c->produced = false;
	c->spawned_ns = pacer_now_ns();
	c->child = child_spawn(src->base, &c->spec, c->pool, src->unit, &command_hooks, src, err, sizeof(err));
	if (c->child == NULL) {
		command_schedule_restart(src, errno == EAGAIN ? "cannot start: over max-children" : err);
		return;
	}
	src->counters.restarts++;
}

static void command_on_restart(evutil_socket_t fd, short what, void *arg)
{
	command_spawn(arg);
	(void)fd;
	(void)what;
}

static int command_start(struct source *src, char *err, size_t err_len)
{
	struct command_source *c = calloc(1, sizeof(*c));

	if (c == NULL)
		return -1;
	src->kind = c;
	c->spec = (struct child_spec){
		.argv = src->conf->command,
		.workdir = "/",
		.kill_grace_ms = COMMAND_KILL_GRACE_MS,
		.output_limit = SIZE_MAX,
		.max_children = 1,
	};
	c->pool = child_pool_new();
	c->restart = evtimer_new(src->base, command_on_restart, src);
	if (c->pool == NULL || c->restart == NULL)
		return -1;
	source_set_state(src, "starting", LOG_INFO, "starting %s", c->spec.argv[0]);
	command_spawn(src);
	/* restarts counts the runs after the first. */
	if (src->counters.restarts > 0)
		src->counters.restarts--;
	(void)err;
	(void)err_len;
	return 0;
}

static void command_resume(struct source *src)
{
	struct command_source *c = src->kind;

	if (c->child != NULL)
		child_resume_output(c->child);
}

static void command_stop(struct source *src)
{
	struct command_source *c = src->kind;

	if (c == NULL)
		return;
	if (c->child != NULL)
		child_abandon(c->child);
	if (c->pool != NULL)
		child_pool_release(c->pool);
	if (c->restart != NULL)
		event_free(c->restart);
	free(c);
	src->kind = NULL;
}

const struct source_ops source_command_ops = {
	.start = command_start,
	.resume = command_resume,
	.stop = command_stop,
};
