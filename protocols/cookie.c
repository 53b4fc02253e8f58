/* Audio cookie and video cookie: one short clip per connection, then close.
 *
 * Kamaelia's AudioCookieProtocol and SimpleVideoCookieServer paced a clip at
 * a bit rate and never closed. Here a clip comes from a directory (a random
 * file with one of the configured extensions, sent with sendfile) or from a
 * program whose stdout is the clip (espeak-ng, ffmpeg ...). Pacing at
 * `bitrate` is optional, so a player can play the stream as it arrives.
 * Producing the clip (feed.h) is kept apart from the TCP framing here, so
 * the HTTP module can serve the same clips. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/file.h"
#include "daemon/log.h"
#include "daemon/protocol.h"
#include "protocols/bodies.h"
#include "protocols/support/child_spec.h"
#include "protocols/support/feed.h"
#include "protocols/support/oneshot.h"

#define COOKIE_FILES_MAX 100000

struct cookie_settings {
	struct child_spec child;	/* command mode */
	char *directory;		/* directory mode */
	char **files;			/* full paths, found at load and reload */
	size_t n_files;
	unsigned long pace;		/* bytes per second, 0 unpaced */
};

struct cookie_state {
	const struct cookie_settings *settings;
	struct event_base *base;
	char *listener;
	struct child_pool *pool;
	struct oneshot_counters counters;
};

#define COOKIE_OPTIONS(extensions)                                             \
	CHILD_OPTIONS(16 << 20),                                                \
	CFG_STR("directory", NULL, CFGF_NODEFAULT),                             \
	CFG_STR_LIST("extensions", extensions, CFGF_NONE),                      \
	CFG_INT("bitrate", 0, CFGF_NONE),                                       \
	CFG_END()

cfg_opt_t audio_cookie_options[] = { COOKIE_OPTIONS("{wav}") };
cfg_opt_t video_cookie_options[] = { COOKIE_OPTIONS("{ts}") };

/* --- configuration -------------------------------------------------- */

static void cookie_settings_free(void *p)
{
	struct cookie_settings *settings = p;

	if (settings == NULL)
		return;
	child_spec_free(&settings->child);
	for (size_t i = 0; i < settings->n_files; i++)
		free(settings->files[i]);
	free(settings->files);
	free(settings->directory);
	free(settings);
}

static bool has_extension(const char *name, cfg_t *sec)
{
	const char *dot = strrchr(name, '.');

	if (dot == NULL || dot == name)
		return false;
	for (unsigned i = 0; i < cfg_size(sec, "extensions"); i++)
		if (strcasecmp(dot + 1, cfg_getnstr(sec, "extensions", i)) == 0)
			return true;
	return false;
}

static bool cookie_add_file(struct cookie_settings *settings, const char *dir, const char *name)
{
	char **grown = realloc(settings->files, (settings->n_files + 1) * sizeof(char *));

	if (grown == NULL)
		return false;
	settings->files = grown;
	if (asprintf(&grown[settings->n_files], "%s/%s", dir, name) < 0)
		return false;
	settings->n_files++;
	return true;
}

static int compare_paths(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The list is taken at load and reload: a new clip is served after the
 * next reload, and no request pays for a directory scan. */
static bool cookie_scan(struct cookie_settings *settings, cfg_t *sec, struct conf_scope *scope)
{
	const char *dir = cfg_getstr(sec, "directory");
	DIR *d = opendir(dir);
	struct dirent *entry;
	struct stat st;
	bool ok = true;

	if (dir[0] != '/' || d == NULL) {
		conf_scope_error(scope, "directory", "cannot use directory %s: %s", dir,
				 dir[0] != '/' ? "not an absolute path" : strerror(errno));
		if (d != NULL)
			closedir(d);
		return false;
	}
	settings->directory = strdup(dir);
	while (ok && (entry = readdir(d)) != NULL && settings->n_files < COOKIE_FILES_MAX) {
		if (entry->d_name[0] == '.' || !has_extension(entry->d_name, sec))
			continue;
		if (fstatat(dirfd(d), entry->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
			ok = cookie_add_file(settings, dir, entry->d_name);
	}
	closedir(d);
	if (ok && settings->n_files == 0) {
		conf_scope_error(scope, "directory", "no clips in %s with the configured extensions", dir);
		ok = false;
	}
	if (ok)
		qsort(settings->files, settings->n_files, sizeof(char *), compare_paths);
	return ok && settings->directory != NULL;
}

static void *cookie_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct cookie_settings *settings = calloc(1, sizeof(*settings));
	bool from_dir = cfg_getstr(sec, "directory") != NULL, from_command = cfg_size(sec, "command") > 0;
	long bitrate = cfg_getint(sec, "bitrate");
	bool ok;

	if (settings == NULL)
		return NULL;
	if (from_dir == from_command) {
		conf_scope_error(scope, from_dir ? "command" : NULL,
				 "give exactly one source: directory = \"...\" or command = {...}");
		ok = false;
	} else if (from_dir) {
		ok = cookie_scan(settings, sec, scope);
	} else {
		ok = child_spec_configure(&settings->child, sec, scope, NULL);
	}
	if (bitrate < 0 || bitrate > 10000000000L) {
		conf_scope_error(scope, "bitrate", "bitrate must be from 0 (unpaced) to 10000000000 bits/s");
		ok = false;
	}
	settings->pace = (unsigned long)bitrate / 8;
	if (bitrate > 0 && settings->pace == 0)
		settings->pace = 1;
	if (!ok) {
		cookie_settings_free(settings);
		return NULL;
	}
	return settings;
}

/* --- tcp -------------------------------------------------------------- */

static struct feed *cookie_feed_file(struct cookie_state *state, const struct feed_sink *sink, void *arg,
				     char *err, size_t err_len)
{
	const struct cookie_settings *settings = state->settings;
	const char *path = settings->files[arc4random_uniform((uint32_t)settings->n_files)];
	struct stat st;
	char why[128];
	/* The clip may have been replaced by a FIFO since the load. */
	int fd = file_open_regular(path, &st, why, sizeof(why));

	if (fd < 0) {
		snprintf(err, err_len, "%s: %s", path, why);
		errno = ENOENT;
		return NULL;
	}
	return feed_file(state->base, fd, st.st_size, settings->pace, sink, arg);
}

static struct feed *cookie_body(void *p, const struct feed_sink *sink, void *arg, char *err, size_t err_len)
{
	struct cookie_state *state = p;
	const struct cookie_settings *settings = state->settings;

	if (settings->n_files > 0)
		return cookie_feed_file(state, sink, arg, err, err_len);
	return feed_command(state->base, &settings->child, state->pool, state->listener, settings->pace, sink, arg,
			    err, err_len);
}

static int cookie_open(struct conn *conn)
{
	struct cookie_state *state = conn_service_state(conn);

	return oneshot_conn_open(conn, &state->counters, "clip", cookie_body, state,
				 state->settings->child.busy_message);
}

/* --- per listener ----------------------------------------------------- */

static void cookie_stop(void *p)
{
	struct cookie_state *state = p;

	child_pool_release(state->pool);
	free(state->listener);
	free(state);
}

static void *cookie_start(const void *settings, const struct unit_env *env)
{
	struct cookie_state *state = calloc(1, sizeof(*state));

	if (state == NULL)
		return NULL;
	state->settings = settings;
	state->base = env->base;
	state->listener = strdup(env->unit);
	state->pool = child_pool_new();
	if (state->listener == NULL || state->pool == NULL) {
		cookie_stop(state);
		return NULL;
	}
	return state;
}

static void cookie_status(const void *p, char *buf, size_t len)
{
	const struct cookie_state *state = p;

	snprintf(buf, len, "clips=%llu failed=%llu busy=%llu children=%u spawned=%llu timed_out=%llu cut=%llu",
		 state->counters.served, state->counters.failed, state->counters.busy, state->pool->live, state->pool->spawned,
		 state->pool->timed_out, state->pool->cut);
}

#define COOKIE_PROTOCOL(protocol_name, option_table, type)                     \
	{                                                                       \
		.config = {                                                     \
			.name = protocol_name,                                  \
			.transports = TRANSPORT_BIT(TRANSPORT_TCP),             \
			.options = option_table,                                \
			.configure = cookie_configure,                          \
			.settings_free = cookie_settings_free,                  \
		},                                                              \
		.start = cookie_start,                                          \
		.stop = cookie_stop,                                            \
		.status = cookie_status,                                        \
		.conn = {                                                       \
			.open = cookie_open,                                    \
			.input = oneshot_conn_input,                            \
			.end_of_input = oneshot_conn_end_of_input,              \
			.drained = oneshot_conn_drained,                        \
			.close = oneshot_conn_close,                            \
		},                                                              \
		.body = cookie_body,                                            \
		.content_type = type,                                           \
	}

const struct protocol protocol_audio_cookie = COOKIE_PROTOCOL("audio-cookie", audio_cookie_options, "audio/wav");
const struct protocol protocol_video_cookie = COOKIE_PROTOCOL("video-cookie", video_cookie_options, "video/mp2t");
