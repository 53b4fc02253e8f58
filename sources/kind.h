/* Inside sources/: what every source kind shares with source.c. A kind
 * appends what it reads to src->buffer and calls source_arrived(); it
 * stops reading while source_full() and goes on when its resume() hook
 * runs. Not for use outside sources/. */
#ifndef CHASSISD_SOURCE_KIND_H
#define CHASSISD_SOURCE_KIND_H

#include <stdbool.h>
#include <stddef.h>

#include "sources/source.h"

struct event;
struct event_base;

struct source_ops {
	/* Begin reading; -1 with err set when the source cannot run at all. */
	int (*start)(struct source *src, char *err, size_t err_len);
	/* The buffer fell below the low mark: read again. */
	void (*resume)(struct source *src);
	/* Stop and free the kind's state; no more calls follow. */
	void (*stop)(struct source *src);
};

struct source {
	struct conf_source *conf;		/* the source's own copy */
	struct event_base *base;
	char *unit;				/* for log lines */
	struct unit_env *env;			/* the stream's; valid while the source runs */
	const struct source_ops *ops;
	void *kind;				/* the kind's state */
	struct evbuffer *buffer;
	size_t high, low;			/* read-ahead marks */
	bool ended, discontinuity, notify_pending;
	uint64_t discontinuity_at;		/* counters.bytes when it happened */
	const char *state;
	char *title;
	struct source_counters counters;
	struct event *notify;			/* ready() outside the caller's stack */
	void (*ready)(void *arg);
	void *arg;
};

/* New bytes are in src->buffer (or the source ended): tell the stream. */
void source_arrived(struct source *src);
bool source_full(const struct source *src);
/* Logs a change of state once (a source that keeps failing the same way
 * logs once, not once per try). */
void source_set_state(struct source *src, const char *state, int level, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The ICY title as received, up to len bytes; NULL clears it (the
 * stream it named has ended). */
void source_set_title(struct source *src, const char *title, size_t len);
void source_mark_ended(struct source *src);
/* The bytes from here on follow a break (a loop, a reconnect, a new run
 * of the program): called before they are appended. */
void source_mark_discontinuity(struct source *src);
/* Milliseconds to wait before the next try: backoff_ms doubled per
 * failure in a row, capped at backoff_max_ms, with up to 25% jitter. */
unsigned source_backoff_ms(const struct source *src, unsigned failures_in_a_row);

extern const struct source_ops source_file_ops, source_command_ops, source_url_ops, source_listener_ops;

#endif
