/* The daemon's one logger.
 *
 * Call sites pass a level, an optional context (which listener, protocol,
 * peer, config line, event) and a message. The sink is chosen once: a TTY
 * gets timestamps; a pipe or file gets "<N>" priority prefixes that journald
 * and syslog understand, and no timestamp (the reader adds its own). The
 * context is printed as key=value pairs; a journald sink can turn the same
 * context into native fields without any call site changing. */
#ifndef CHASSISD_LOG_H
#define CHASSISD_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <syslog.h>

/* Events worth a stable identity (journald MESSAGE_ID). */
enum log_event {
	LOG_EVENT_NONE,
	LOG_EVENT_STARTED,
	LOG_EVENT_STOPPING,
	LOG_EVENT_RELOAD_APPLIED,
	LOG_EVENT_RELOAD_FAILED,
	LOG_EVENT_LISTENER_BOUND,
	LOG_EVENT_LISTENER_BIND_FAILED,
	LOG_EVENT_ACCEPT_PAUSED,
	LOG_EVENT_LIMIT_HIT,
};

/* A record's own journald field (HTTP_STATUS=200); the text has it already. */
struct log_field {
	const char *name;
	const char *value;
};

struct log_context {
	const char *listener;
	const char *stream;
	const char *protocol;
	const char *transport;
	const struct sockaddr *peer;
	const char *config_file;
	int config_line;
	unsigned generation;
	enum log_event event;
	const struct log_field *fields;
	size_t n_fields;
	/* The message is a fixed format (an access log line): keep the context
	 * out of its text; journald still gets it as fields. */
	bool bare_text;
};

void log_init(void);
/* log-file: records go to path (created 0640, appended to) instead of
 * stderr, each with an ISO 8601 local time. "" goes back to stderr. On
 * failure -1 with errno, and the records keep going where they went. */
int log_use_file(const char *path);
/* The log-file's path, "" for stderr. */
const char *log_file_in_use(void);
/* The same path opened again, after logrotate renamed the file (SIGUSR2,
 * `chassisd reopen`). 0 when there is no log-file. */
int log_reopen_file(void);
/* The file to the user the daemon becomes, so that it can reopen it. */
int log_chown_file(uid_t uid, gid_t gid);
void log_set_level(int level);
bool log_enabled(int level);
void log_write(int level, const struct log_context *ctx, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Each line of text (a status table) as a record of its own, after
 * prefix. */
void log_lines(int level, const struct log_context *ctx, const char *prefix, const char *text);

/* While a tee is set, every record (whatever the log level) is handed to
 * it as well, escaped and with its context: the control socket answers a
 * command with what the daemon logged while it ran. One at a time; NULL
 * ends it. */
typedef void log_tee_fn(int level, const struct log_context *ctx, const char *text, void *arg);
void log_tee(log_tee_fn *fn, void *arg);

#define log_err(...) log_write(LOG_ERR, NULL, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, NULL, __VA_ARGS__)
#define log_notice(...) log_write(LOG_NOTICE, NULL, __VA_ARGS__)
#define log_info(...) log_write(LOG_INFO, NULL, __VA_ARGS__)
#define log_debug(...) log_write(LOG_DEBUG, NULL, __VA_ARGS__)

#endif
