#include "daemon/log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/addr.h"
#include "conf/conf.h"
#include "systemd/journal.h"

#define LOG_LINE_MAX 2048

/* Chosen once at start: where a record goes and how it is dressed. */
enum log_sink {
	LOG_SINK_PIPE,		/* "<N>" prefix, the reader adds time */
	LOG_SINK_TTY,		/* a person at a terminal: local timestamps */
	LOG_SINK_JOURNAL,	/* native journald fields */
};

static int log_level = LOG_INFO;
static enum log_sink log_sink = LOG_SINK_PIPE;

static void log_from_libevent(int severity, const char *msg)
{
	int level = severity == EVENT_LOG_DEBUG ? LOG_DEBUG
		  : severity == EVENT_LOG_MSG ? LOG_INFO
		  : severity == EVENT_LOG_WARN ? LOG_WARNING : LOG_ERR;

	log_write(level, NULL, "libevent: %s", msg);
}

void log_init(void)
{
	if (journal_stderr_is_journal())
		log_sink = LOG_SINK_JOURNAL;
	else if (isatty(STDERR_FILENO))
		log_sink = LOG_SINK_TTY;
	event_set_log_callback(log_from_libevent);
}

void log_set_level(int level)
{
	log_level = level;
}

bool log_enabled(int level)
{
	return level <= log_level;
}

static size_t append(char *buf, size_t used, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static size_t append(char *buf, size_t used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (used >= LOG_LINE_MAX)
		return used;
	va_start(ap, fmt);
	n = vsnprintf(buf + used, LOG_LINE_MAX - used, fmt, ap);
	va_end(ap);
	if (n < 0)
		return used;
	return used + (size_t)n < LOG_LINE_MAX ? used + (size_t)n : LOG_LINE_MAX - 1;
}

static size_t append_context(char *buf, size_t used, const struct log_context *ctx)
{
	char peer[ADDR_TEXT_MAX];

	if (ctx->listener)
		used = append(buf, used, " listener=%s", ctx->listener);
	if (ctx->protocol)
		used = append(buf, used, " protocol=%s", ctx->protocol);
	if (ctx->transport)
		used = append(buf, used, " transport=%s", ctx->transport);
	if (ctx->peer)
		used = append(buf, used, " peer=%s", addr_format(ctx->peer, true, peer, sizeof(peer)));
	if (ctx->generation)
		used = append(buf, used, " generation=%u", ctx->generation);
	return used;
}

/* "<N>" for a pipe (and for the journal's own stream when journald did not
 * take a record), a local time and level for a person at a terminal. */
static void format_prefix(char *buf, size_t len, enum log_sink sink, int level)
{
	struct timespec now;
	struct tm tm;
	char stamp[32];

	if (sink != LOG_SINK_TTY) {
		snprintf(buf, len, "<%d>", level);
		return;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, len, "%s.%03ld %s: ", stamp, now.tv_nsec / 1000000, log_level_name(level));
}

static void log_emit(enum log_sink sink, int level, const struct log_context *ctx, const char *fmt,
		     va_list ap)
{
	char text[LOG_LINE_MAX], prefix[64], line[LOG_LINE_MAX + sizeof(prefix) + 1];
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	size_t used = n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;

	/* The context stays in the text too: `journalctl -u chassisd` shows
	 * only MESSAGE, and the reader should not have to ask for -o verbose. */
	if (ctx != NULL && !ctx->bare_text)
		used = append_context(text, used, ctx);
	/* A message must stay one record: journald and syslog split on newlines. */
	for (size_t i = 0; i < used; i++)
		if (text[i] == '\n')
			text[i] = ' ';
	text[used] = '\0';
	if (sink == LOG_SINK_JOURNAL && journal_send(level, text, ctx) == 0)
		return;
	format_prefix(prefix, sizeof(prefix), sink, level);
	n = snprintf(line, sizeof(line), "%s%s\n", prefix, text);
	/* One write per line keeps lines whole when several writers share stderr. */
	if (n > 0 && write(STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_write(int level, const struct log_context *ctx, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	log_emit(log_sink, level, ctx, fmt, ap);
	va_end(ap);
}
