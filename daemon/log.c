#include "daemon/log.h"

#include <event2/event.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/addr.h"
#include "conf/conf.h"

#define LOG_LINE_MAX 2048

static int log_level = LOG_INFO;
static bool log_to_tty;

static void log_from_libevent(int severity, const char *msg)
{
	int level = severity == EVENT_LOG_DEBUG ? LOG_DEBUG
		  : severity == EVENT_LOG_MSG ? LOG_INFO
		  : severity == EVENT_LOG_WARN ? LOG_WARNING : LOG_ERR;

	log_write(level, NULL, "libevent: %s", msg);
}

void log_init(void)
{
	log_to_tty = isatty(STDERR_FILENO);
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

static size_t append_prefix(char *buf, int level)
{
	struct timespec now;
	struct tm tm;
	char stamp[32];

	if (!log_to_tty)
		return append(buf, 0, "<%d>", level);
	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	return append(buf, 0, "%s.%03ld %s: ", stamp, now.tv_nsec / 1000000, log_level_name(level));
}

void log_write(int level, const struct log_context *ctx, const char *fmt, ...)
{
	char buf[LOG_LINE_MAX];
	size_t used;
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	used = append_prefix(buf, level);
	va_start(ap, fmt);
	n = vsnprintf(buf + used, LOG_LINE_MAX - used, fmt, ap);
	va_end(ap);
	if (n > 0)
		used = used + (size_t)n < LOG_LINE_MAX ? used + (size_t)n : LOG_LINE_MAX - 1;
	if (ctx != NULL)
		used = append_context(buf, used, ctx);
	/* A message must stay one record: journald and syslog split on newlines. */
	for (size_t i = 0; i < used; i++)
		if (buf[i] == '\n')
			buf[i] = ' ';
	buf[used++] = '\n';
	/* One write per line keeps lines whole when several writers share stderr. */
	if (write(STDERR_FILENO, buf, used) < 0)
		return;
}
