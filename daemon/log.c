#include "daemon/log.h"

#include <errno.h>
#include <event2/event.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/addr.h"
#include "conf/conf.h"
#include "conf/text.h"
#include "systemd/journal.h"

#define LOG_LINE_MAX 2048

/* Made once with `journalctl --new-id128`; never change one, because
 * administrators' filters and alerts key on them. */
static const char *const message_ids[] = {
	[LOG_EVENT_STARTED] = "cda243edc40549809734b542bc249610",
	[LOG_EVENT_STOPPING] = "f0cdb0ef8c0941a5895160411d23b453",
	[LOG_EVENT_RELOAD_APPLIED] = "c663a932280c4fa09b0e0fb469d4fb2f",
	[LOG_EVENT_RELOAD_FAILED] = "3e7fd68b83174817b70f914de43f5a28",
	[LOG_EVENT_LISTENER_BOUND] = "13666ceff02d412ca079631d14b2eefe",
	[LOG_EVENT_LISTENER_BIND_FAILED] = "e17ebe5907374888b53dedc383c395cd",
	[LOG_EVENT_ACCEPT_PAUSED] = "e128e5e4b11e4ee0b7f0aa4b59bb35fa",
	[LOG_EVENT_LIMIT_HIT] = "67836f1c16db427d8adf0ded5d604bd6",
};

/* Chosen once at start: where a record goes and how it is dressed. */
enum log_sink {
	LOG_SINK_PIPE,		/* "<N>" prefix, the reader adds time */
	LOG_SINK_TTY,		/* a person at a terminal: local timestamps */
	LOG_SINK_JOURNAL,	/* native journald fields */
};

static int log_level = LOG_INFO;
static enum log_sink log_sink = LOG_SINK_PIPE;
static int file_fd = -1;		/* log-file, or -1 for stderr */
static char *file_path;
static log_tee_fn *tee_fn;
static void *tee_arg;

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

static int log_open(const char *path)
{
	return open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0640);
}

int log_use_file(const char *path)
{
	char *copy = path[0] != '\0' ? strdup(path) : NULL;
	int fd = copy != NULL ? log_open(path) : -1;

	if (path[0] != '\0' && fd < 0) {
		int saved = copy == NULL ? ENOMEM : errno;
		free(copy);
		errno = saved;
		return -1;
	}
	if (file_fd >= 0)
		close(file_fd);
	free(file_path);
	file_fd = fd;
	file_path = copy;
	return 0;
}

const char *log_file_in_use(void)
{
	return file_path != NULL ? file_path : "";
}

/* A new file takes the place of the old one only once it is open: a
 * reopen that fails leaves the records going to the renamed file. */
int log_reopen_file(void)
{
	int fd;

	if (file_path == NULL)
		return 0;
	fd = log_open(file_path);
	if (fd < 0)
		return -1;
	close(file_fd);
	file_fd = fd;
	return 0;
}

int log_chown_file(uid_t uid, gid_t gid)
{
	return file_fd < 0 ? 0 : fchown(file_fd, uid, gid);
}

void log_tee(log_tee_fn *fn, void *arg)
{
	tee_fn = fn;
	tee_arg = arg;
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
	if (ctx->stream)
		used = append(buf, used, " stream=%s", ctx->stream);
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

/* log-file: a reader of the file has no other clock than ours. ISO 8601
 * with the UTC offset, to the millisecond. */
static void format_file_prefix(char *buf, size_t len, int level)
{
	struct timespec now;
	struct tm tm;
	char stamp[32], zone[8];

	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	snprintf(buf, len, "%s.%03ld%.3s:%.2s %s: ", stamp, now.tv_nsec / 1000000, zone, zone + 3,
		 log_level_name(level));
}

/* The context as journald fields an administrator can filter on. */
static int log_send_journal(int level, const char *message, const struct log_context *ctx)
{
	struct journal_record record = { .count = 0 };
	char addr[ADDR_TEXT_MAX];

	journal_field(&record, "MESSAGE=%s", message);
	journal_field(&record, "PRIORITY=%d", level);
	journal_field(&record, "SYSLOG_IDENTIFIER=chassisd");
	if (ctx == NULL)
		return journal_send(&record);
	if (ctx->event != LOG_EVENT_NONE && message_ids[ctx->event] != NULL)
		journal_field(&record, "MESSAGE_ID=%s", message_ids[ctx->event]);
	if (ctx->listener)
		journal_field(&record, "LISTENER=%s", ctx->listener);
	if (ctx->stream)
		journal_field(&record, "STREAM=%s", ctx->stream);
	if (ctx->protocol)
		journal_field(&record, "PROTOCOL=%s", ctx->protocol);
	if (ctx->transport)
		journal_field(&record, "TRANSPORT=%s", ctx->transport);
	if (ctx->peer) {
		journal_field(&record, "REMOTE_ADDR=%s", addr_format(ctx->peer, false, addr, sizeof(addr)));
		journal_field(&record, "REMOTE_PORT=%u", addr_port(ctx->peer));
	}
	if (ctx->config_file)
		journal_field(&record, "CONFIG_FILE=%s", ctx->config_file);
	if (ctx->config_line > 0)
		journal_field(&record, "CONFIG_LINE=%d", ctx->config_line);
	if (ctx->generation)
		journal_field(&record, "RELOAD_GENERATION=%u", ctx->generation);
	for (size_t i = 0; i < ctx->n_fields; i++) {
		char value[LOG_LINE_MAX];

		text_escape(ctx->fields[i].value, strlen(ctx->fields[i].value), value, sizeof(value));
		journal_field(&record, "%s=%s", ctx->fields[i].name, value);
	}
	return journal_send(&record);
}

static void log_emit(enum log_sink sink, int level, const struct log_context *ctx, const char *fmt,
		     va_list ap) __attribute__((format(printf, 4, 0)));

static void log_emit(enum log_sink sink, int level, const struct log_context *ctx, const char *fmt,
		     va_list ap)
{
	char text[LOG_LINE_MAX], safe[LOG_LINE_MAX], prefix[64], line[LOG_LINE_MAX + sizeof(prefix) + 1];
	int n = vsnprintf(text, sizeof(text), fmt, ap);
	size_t used = n < 0 ? 0 : (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1;

	/* The context stays in the text too: `journalctl -u chassisd` shows
	 * only MESSAGE, and the reader should not have to ask for -o verbose. */
	if (ctx != NULL && !ctx->bare_text)
		used = append_context(text, used, ctx);
	/* A message must stay one record, whatever the config or a peer put
	 * into it: journald and syslog split on newlines, and a terminal
	 * obeys escape sequences. */
	text_escape(text, used, safe, sizeof(safe));
	if (tee_fn != NULL)
		tee_fn(level, ctx, safe, tee_arg);
	if (!log_enabled(level))
		return;
	if (file_fd < 0 && sink == LOG_SINK_JOURNAL && log_send_journal(level, safe, ctx) == 0)
		return;
	if (file_fd >= 0)
		format_file_prefix(prefix, sizeof(prefix), level);
	else
		format_prefix(prefix, sizeof(prefix), sink, level);
	n = snprintf(line, sizeof(line), "%s%s\n", prefix, safe);
	/* One write per line keeps lines whole when several writers share
	 * stderr (or, with O_APPEND, the file). */
	if (n > 0 && write(file_fd >= 0 ? file_fd : STDERR_FILENO, line, (size_t)n) < 0)
		return;
}

void log_write(int level, const struct log_context *ctx, const char *fmt, ...)
{
	va_list ap;

	if (!log_enabled(level) && tee_fn == NULL)
		return;
	va_start(ap, fmt);
	log_emit(log_sink, level, ctx, fmt, ap);
	va_end(ap);
}

void log_lines(int level, const struct log_context *ctx, const char *prefix, const char *text)
{
	const char *end;

	for (const char *line = text; *line != '\0'; line = *end ? end + 1 : end) {
		end = strchrnul(line, '\n');
		log_write(level, ctx, "%s%.*s", prefix, (int)(end - line), line);
	}
}
