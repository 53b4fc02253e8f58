#include "sources/source.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/log.h"
#include "sources/kind.h"

#define SOURCE_DEFAULT_READ_AHEAD (256 * 1024)

static const struct source_ops *source_ops_of(enum source_kind kind)
{
	switch (kind) {
	case SOURCE_FILE:
		return &source_file_ops;
	case SOURCE_COMMAND:
		return &source_command_ops;
	case SOURCE_URL:
		return &source_url_ops;
	case SOURCE_LISTENER:
		return &source_listener_ops;
	case SOURCE_NONE:
		break;
	}
	return NULL;
}

static void source_on_notify(evutil_socket_t fd, short what, void *arg)
{
	struct source *src = arg;

	src->notify_pending = false;
	src->ready(src->arg);
	(void)fd;
	(void)what;
}

static void source_free(struct source *src)
{
	if (src->notify != NULL)
		event_free(src->notify);
	if (src->buffer != NULL)
		evbuffer_free(src->buffer);
	conf_source_free(src->conf);
	free(src->title);
	free(src->unit);
	free(src);
}

struct source *source_open(const struct conf_source *conf, const struct unit_env *env, void (*ready)(void *arg),
			   void *arg, char *err, size_t err_len)
{
	struct source *src = calloc(1, sizeof(*src));

	snprintf(err, err_len, "out of memory");
	if (src == NULL)
		return NULL;
	src->conf = conf_source_copy(conf);
	src->unit = strdup(env->unit);
	src->buffer = evbuffer_new();
	src->notify = event_new(env->base, -1, 0, source_on_notify, src);
	if (src->conf == NULL || src->unit == NULL || src->buffer == NULL || src->notify == NULL) {
		source_free(src);
		return NULL;
	}
	src->base = env->base;
	src->env = (struct unit_env *)env;
	src->ready = ready;
	src->arg = arg;
	src->high = conf->read_ahead ? conf->read_ahead : SOURCE_DEFAULT_READ_AHEAD;
	src->low = src->high / 2;
	src->state = "starting";
	src->ops = source_ops_of(conf->kind);
	if (src->ops == NULL) {
		snprintf(err, err_len, "no source { }");
		source_free(src);
		return NULL;
	}
	if (src->ops->start(src, err, err_len) < 0) {
		src->ops->stop(src);
		source_free(src);
		return NULL;
	}
	return src;
}

void source_close(struct source *src)
{
	if (src == NULL)
		return;
	src->ops->stop(src);
	source_free(src);
}

struct evbuffer *source_buffer(struct source *src)
{
	return src->buffer;
}

bool source_datagrams(const struct source *src)
{
	return src->conf->kind == SOURCE_LISTENER;
}

void source_taken(struct source *src)
{
	if (!src->ended && evbuffer_get_length(src->buffer) < src->low)
		src->ops->resume(src);
}

bool source_ended(const struct source *src)
{
	return src->ended;
}

bool source_take_discontinuity(struct source *src)
{
	bool was = src->discontinuity;

	src->discontinuity = false;
	return was;
}

const char *source_state(const struct source *src)
{
	return src->state;
}

const char *source_title(const struct source *src)
{
	return src->title;
}

const struct source_counters *source_counters(const struct source *src)
{
	return &src->counters;
}

/* ---- for the kinds ---- */

void source_arrived(struct source *src)
{
	if (!src->notify_pending) {
		src->notify_pending = true;
		event_active(src->notify, EV_TIMEOUT, 0);
	}
}

bool source_full(const struct source *src)
{
	return evbuffer_get_length(src->buffer) >= src->high;
}

void source_mark_discontinuity(struct source *src)
{
	src->discontinuity = true;
	src->discontinuity_at = src->counters.bytes;
}

uint64_t source_discontinuity_offset(const struct source *src)
{
	return src->discontinuity_at;
}

void source_mark_ended(struct source *src)
{
	src->ended = true;
	source_arrived(src);
}

void source_set_state(struct source *src, const char *state, int level, const char *fmt, ...)
{
	struct log_context ctx = { .stream = src->unit };
	char text[512];
	va_list ap;

	if (strcmp(src->state, state) == 0)
		return;
	src->state = state;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_write(level, &ctx, "source: %s", text);
}

void source_set_title(struct source *src, const char *title, size_t len)
{
	char *copy = title ? strndup(title, len) : NULL;

	if (title != NULL && copy == NULL)
		return;
	free(src->title);
	src->title = copy;
}

/* Jitter keeps many streams that lost the same origin from coming back
 * at the same instant. A weak generator is enough for that. */
static unsigned source_jitter(unsigned range)
{
	static unsigned long long state;

	if (state == 0) {
		struct timespec ts;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		state = ((unsigned long long)ts.tv_sec * 1000000007ull) ^ (unsigned long long)ts.tv_nsec ^ 1;
	}
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return range ? (unsigned)(state % range) : 0;
}

unsigned source_backoff_ms(const struct source *src, unsigned failures_in_a_row)
{
	unsigned long long delay = src->conf->backoff_ms;
	unsigned max = src->conf->backoff_max_ms;

	for (unsigned i = 1; i < failures_in_a_row && delay < max; i++)
		delay *= 2;
	if (delay > max)
		delay = max;
	return (unsigned)delay + source_jitter((unsigned)delay / 4 + 1);
}
