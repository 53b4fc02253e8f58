/* torrent: BitTorrent seeding, through libtorrent-rasterbar (shim.h).
 * Kamaelia wrapped the Mainline client in a thread that polled it; here
 * libtorrent runs its own threads and tells the loop through an eventfd
 * when alerts wait, which are then read on the loop's thread. A stream of
 * this protocol is its own source and its peers come to it: every file and
 * folder of `directory` becomes a v1 torrent, made once and cached in
 * `state` under its path, size and mtime; or, with `torrents`, only the
 * .torrent files listed are seeded, their data under `directory`, checked
 * before it is served. The resume data of every torrent is written to
 * `state` when the stream stops, and every resume-interval seconds for
 * those that changed (a crash loses no more), and read when it is added
 * again. */
#include <arpa/inet.h>
#include <confuse.h>
#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/protocol.h"
#include "protocols/torrent/options.h"
#include "protocols/torrent/shim.h"

#define TORRENT_LISTEN_MAX 1024
/* How often the per-torrent figures are asked for. */
#define TORRENT_FIGURES_SECONDS 1

struct torrent_settings {
	char *listen;			/* joined with commas, libtorrent's way */
	char *directory, *state, *tracker, *web_seed;
	bool v1_only, watch, dht, lsd, upnp, natpmp, utp;
	long upload_rate, max_peers, max_torrents;
	long resume_interval;		/* seconds between saves of the resume data, 0: at stop only */
	/* torrents = {...}: the .torrent files seeded instead of the
	 * directory's files, and their v1 infohashes as read at config time
	 * (a reload compares them: a file that names another torrent now is
	 * seeded anew). n_torrents 0: the directory's files. */
	char **torrents;
	char (*torrent_hashes)[41];
	size_t n_torrents;
};

/* One file or folder of the directory, seeded. */
struct seeded {
	char *path;
	char *cache_key;		/* the .torrent it is seeded from */
	char info_hash[41];
	char name[256];
	bool seen;			/* in the directory (or torrents) at the last look */
	bool making;			/* its .torrent is being made: not seeded yet */
	bool given;			/* listed in torrents: path is the .torrent */
};

struct torrent_stream {
	struct torrent_settings cfg;	/* a copy: the state may outlive the settings */
	struct event_base *base;
	struct chassis *chassis;
	char *unit;
	struct torrent_session *session;
	struct torrent_maker *maker;
	int notify_fd, inotify_fd;
	struct event *begin, *notified, *figures, *directory_changed, *made, *resume;
	struct seeded *seeded;
	size_t n_seeded, cap_seeded;
	uint64_t rejected;		/* files that could not be made or seeded */
	char resume_tag[17];		/* its resume files' prefix in state */
};

/* The wind-down of a stopped session, which the daemon waits for. */
struct torrent_stopping {
	struct chassis *chassis;
	char *unit;			/* for the log line of the report */
	int done_fd;
	struct event *done;
	struct torrent_stop_report report;	/* written by the wind-down's thread before done_fd */
};

static void torrent_vlog(const char *unit, int level, const char *fmt, va_list ap) __attribute__((format(printf, 3, 0)));

static void torrent_vlog(const char *unit, int level, const char *fmt, va_list ap)
{
	struct log_context ctx = { .stream = unit, .protocol = "torrent" };
	char text[1024];

	if (!log_enabled(level))
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	log_write(level, &ctx, "stream %s: %s", unit, text);
}

static void torrent_log(const struct torrent_stream *ts, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void torrent_log(const struct torrent_stream *ts, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	torrent_vlog(ts->unit, level, fmt, ap);
	va_end(ap);
}

/* The same for a stream already gone: its wind-down's report. */
static void stopped_log(const char *unit, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void stopped_log(const char *unit, int level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	torrent_vlog(unit, level, fmt, ap);
	va_end(ap);
}

static void publish_list(struct torrent_stream *ts);

static struct torrent_session_options session_options(const struct torrent_settings *cfg)
{
	return (struct torrent_session_options){
		.listen = cfg->listen, .dht = cfg->dht, .lsd = cfg->lsd, .upnp = cfg->upnp, .natpmp = cfg->natpmp,
		.utp = cfg->utp, .upload_rate = (int)cfg->upload_rate, .max_peers = (int)cfg->max_peers,
	};
}

/* ---- the directory ---- */

static uint64_t fnv1a(uint64_t h, const char *text)
{
	for (; *text != '\0'; text++)
		h = (h ^ (unsigned char)*text) * 1099511628211ull;
	return (h ^ 0xff) * 1099511628211ull;	/* the end of a field */
}

/* The cached .torrent of path as it is now, and as the options that go
 * into a torrent say: a changed file, tracker, web-seed or v1-only gets a
 * new one. */
static char *cache_file(const struct torrent_stream *ts, const char *path, const struct stat *st)
{
	uint64_t key = fnv1a(14695981039346656037ull, path);
	char *file = NULL;

	key = fnv1a(fnv1a(fnv1a(key, ts->cfg.tracker), ts->cfg.web_seed), ts->cfg.v1_only ? "v1" : "hybrid");
	if (asprintf(&file, "%s/%016" PRIx64 "-%jd-%jd.torrent", ts->cfg.state, key, (intmax_t)st->st_size,
		     (intmax_t)st->st_mtime) < 0)
		return NULL;
	return file;
}

static struct seeded *find_seeded(struct torrent_stream *ts, const char *path)
{
	for (size_t i = 0; i < ts->n_seeded; i++)
		if (strcmp(ts->seeded[i].path, path) == 0)
			return &ts->seeded[i];
	return NULL;
}

/* Drops entry i from the table, whatever the session has of it. */
static void forget(struct torrent_stream *ts, size_t i)
{
	free(ts->seeded[i].path);
	free(ts->seeded[i].cache_key);
	ts->seeded[i] = ts->seeded[--ts->n_seeded];
}

/* A file gone from the directory. */
static void unseed(struct torrent_stream *ts, size_t i)
{
	struct seeded *s = &ts->seeded[i];
	char err[256];

	if (s->making)
		torrent_log(ts, LOG_INFO, "%s: gone before its torrent was made", s->path);
	else if (torrent_session_remove(ts->session, s->info_hash, err, sizeof(err)) < 0)
		torrent_log(ts, LOG_WARNING, "%s: cannot stop seeding: %s", s->path, err);
	else
		torrent_log(ts, LOG_INFO, "%s: no longer seeded", s->path);
	forget(ts, i);
}

static bool room_for_one_more(struct torrent_stream *ts)
{
	struct seeded *grown;
	size_t cap;

	if (ts->n_seeded < ts->cap_seeded)
		return true;
	cap = ts->cap_seeded ? 2 * ts->cap_seeded : 16;
	grown = realloc(ts->seeded, cap * sizeof(*grown));
	if (grown == NULL)
		return false;
	ts->seeded = grown;
	ts->cap_seeded = cap;
	return true;
}

/* Adds the .torrent of s (made, or given) to the session; false when it
 * cannot be. */
static bool start_seeding(struct torrent_stream *ts, struct seeded *s)
{
	struct torrent_add add = { .torrent_file = s->cache_key, .save_dir = ts->cfg.directory, .check = s->given };
	bool resumed = false;
	char err[256];

	if (torrent_session_add(ts->session, &add, s->info_hash, s->name, sizeof(s->name), &resumed, err,
				sizeof(err)) < 0) {
		torrent_log(ts, LOG_WARNING, "%s: cannot seed %s: %s", s->path, s->cache_key, err);
		ts->rejected++;
		return false;
	}
	/* The name goes into line-based status text. */
	for (char *c = s->name; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
	s->making = false;
	if (s->given)
		torrent_log(ts, LOG_INFO, "%s: added as %s, served once its data is checked%s", s->path, s->info_hash,
			    resumed ? " (against its resume data)" : "");
	else
		torrent_log(ts, LOG_INFO, "%s: seeding as %s%s", s->path, s->info_hash,
			    resumed ? " (with its resume data)" : "");
	return true;
}

/* A .torrent made before, or given in torrents, is seeded at once;
 * otherwise the maker's thread hashes the file and on_made() seeds it.
 * Takes file. */
static void seed(struct torrent_stream *ts, const char *path, char *file, bool given)
{
	struct torrent_make_options make = {
		.tracker = ts->cfg.tracker, .web_seed = ts->cfg.web_seed, .v1_only = ts->cfg.v1_only,
	};
	struct seeded *s;
	char err[256];

	if (ts->n_seeded >= (size_t)ts->cfg.max_torrents) {
		torrent_log(ts, LOG_WARNING, "%s: not seeded: max-torrents (%ld) reached", path, ts->cfg.max_torrents);
		ts->rejected++;
		free(file);
		return;
	}
	if (!room_for_one_more(ts)) {
		free(file);
		return;
	}
	s = &ts->seeded[ts->n_seeded];
	*s = (struct seeded){ .path = strdup(path), .cache_key = file, .seen = true, .making = true, .given = given };
	if (s->path == NULL) {
		free(file);
		return;
	}
	ts->n_seeded++;
	if (given || access(file, R_OK) == 0) {
		if (!start_seeding(ts, s))
			forget(ts, (size_t)(s - ts->seeded));
		return;
	}
	if (torrent_maker_queue(ts->maker, path, &make, file, err, sizeof(err)) < 0) {
		torrent_log(ts, LOG_WARNING, "%s: cannot make a torrent: %s", path, err);
		ts->rejected++;
		forget(ts, (size_t)(s - ts->seeded));
	}
}

static void on_made_one(void *arg, const char *path, const char *out_file, const char *error)
{
	struct torrent_stream *ts = arg;
	struct seeded *s = find_seeded(ts, path);

	/* Removed or changed while it was made: a later scan has it. */
	if (s == NULL || !s->making || strcmp(s->cache_key, out_file) != 0)
		return;
	if (error != NULL) {
		torrent_log(ts, LOG_WARNING, "%s: cannot make a torrent: %s", path, error);
		ts->rejected++;
		forget(ts, (size_t)(s - ts->seeded));
		return;
	}
	torrent_log(ts, LOG_INFO, "%s: made %s", path, out_file);
	if (!start_seeding(ts, s))
		forget(ts, (size_t)(s - ts->seeded));
}

static void on_made(evutil_socket_t fd, short what, void *arg)
{
	struct torrent_stream *ts = arg;

	torrent_maker_results(ts->maker, on_made_one, ts);
	publish_list(ts);
}

static void scan_entry(struct torrent_stream *ts, const char *name)
{
	char path[PATH_MAX];
	struct stat st;
	struct seeded *known;
	char *file;

	if (name[0] == '.' || snprintf(path, sizeof(path), "%s/%s", ts->cfg.directory, name) >= (int)sizeof(path))
		return;
	if (stat(path, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
		return;
	file = cache_file(ts, path, &st);
	if (file == NULL)
		return;
	known = find_seeded(ts, path);
	if (known != NULL && strcmp(known->cache_key, file) == 0) {
		known->seen = true;
		free(file);
		return;
	}
	if (known != NULL)
		unseed(ts, (size_t)(known - ts->seeded));
	seed(ts, path, file, false);
}

/* What an HTTP "torrents" route lists (http/torrents.c): a line
 * "tr\tTRACKER", then "INFOHASH\tTORRENT-FILE\tNAME" per torrent. Names
 * have no control characters left (seed()), so tabs and newlines part. */
static void publish_list(struct torrent_stream *ts)
{
	char name[300];
	size_t len = strlen(ts->cfg.tracker) + 8, used;
	char *text;

	for (size_t i = 0; i < ts->n_seeded; i++)
		len += 41 + strlen(ts->seeded[i].cache_key) + strlen(ts->seeded[i].name) + 3;
	text = malloc(len);
	if (text == NULL)
		return;
	used = (size_t)snprintf(text, len, "tr\t%s\n", ts->cfg.tracker);
	for (size_t i = 0; i < ts->n_seeded && used < len; i++)
		if (!ts->seeded[i].making)
			used += (size_t)snprintf(text + used, len - used, "%s\t%s\t%s\n", ts->seeded[i].info_hash,
					 ts->seeded[i].cache_key, ts->seeded[i].name);
	snprintf(name, sizeof(name), "torrent:%s", ts->unit);
	chassis_publish(ts->chassis, name, "text/plain", text, ts);
	free(text);
}

/* Seeds what is new or changed in the directory, and stops what is gone. */
static void scan_directory(struct torrent_stream *ts)
{
	DIR *dir = opendir(ts->cfg.directory);
	struct dirent *e;

	if (dir == NULL) {
		torrent_log(ts, LOG_WARNING, "cannot read directory %s: %s", ts->cfg.directory, strerror(errno));
		return;
	}
	for (size_t i = 0; i < ts->n_seeded; i++)
		ts->seeded[i].seen = false;
	while ((e = readdir(dir)) != NULL)
		scan_entry(ts, e->d_name);
	closedir(dir);
	for (size_t i = ts->n_seeded; i-- > 0;)
		if (!ts->seeded[i].seen)
			unseed(ts, i);
	publish_list(ts);
}

/* Whether the given torrent s is to be added anew: its file names another
 * torrent now, or its data did not match (it may have been put right). */
static bool given_changed(const struct torrent_stream *ts, const struct seeded *s, const char *hash)
{
	struct torrent_figures f;

	if (strcmp(s->info_hash, hash) != 0)
		return true;
	return torrent_session_figures(ts->session, s->info_hash, &f) && strcmp(f.state, "mismatch") == 0;
}

/* torrents = {...}: seeds what is new or changed in the list, and stops
 * what is no longer in it; the others go on untouched. */
static void sync_given(struct torrent_stream *ts)
{
	for (size_t i = 0; i < ts->n_seeded; i++)
		ts->seeded[i].seen = false;
	for (size_t j = 0; j < ts->cfg.n_torrents; j++) {
		const char *path = ts->cfg.torrents[j];
		struct seeded *known = find_seeded(ts, path);
		char *file;

		if (known != NULL && !given_changed(ts, known, ts->cfg.torrent_hashes[j])) {
			known->seen = true;
			continue;
		}
		if (known != NULL)
			unseed(ts, (size_t)(known - ts->seeded));
		file = strdup(path);
		if (file != NULL)
			seed(ts, path, file, true);
	}
	for (size_t i = ts->n_seeded; i-- > 0;)
		if (!ts->seeded[i].seen)
			unseed(ts, i);
	publish_list(ts);
}

static void on_directory_changed(evutil_socket_t fd, short what, void *arg)
{
	char events[4096] __attribute__((aligned(__alignof__(struct inotify_event))));

	/* Which file changed matters not: a scan compares them all. */
	while (read(fd, events, sizeof(events)) > 0)
		;
	scan_directory(arg);
}

/* A file counts once it is whole: written and closed, or moved in. */
static void watch_directory(struct torrent_stream *ts)
{
	ts->inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (ts->inotify_fd < 0 ||
	    inotify_add_watch(ts->inotify_fd, ts->cfg.directory,
			      IN_CLOSE_WRITE | IN_MOVED_TO | IN_MOVED_FROM | IN_DELETE) < 0) {
		torrent_log(ts, LOG_WARNING, "cannot watch directory %s: %s; new files are seeded at reload",
			    ts->cfg.directory, strerror(errno));
		return;
	}
	ts->directory_changed = event_new(ts->base, ts->inotify_fd, EV_READ | EV_PERSIST, on_directory_changed, ts);
	if (ts->directory_changed != NULL)
		event_add(ts->directory_changed, NULL);
}

/* ---- the session ---- */

static void arm_resume(struct torrent_stream *ts);

/* The options the running session takes as they change (torrent_same()
 * leaves them out). */
static bool apply_session_options(struct torrent_stream *ts, const struct torrent_settings *now)
{
	struct torrent_session_options opts;
	char *listen = strdup(now->listen), err[256];

	if (listen == NULL)
		return false;
	free(ts->cfg.listen);
	ts->cfg.listen = listen;
	ts->cfg.dht = now->dht;
	ts->cfg.lsd = now->lsd;
	ts->cfg.upnp = now->upnp;
	ts->cfg.natpmp = now->natpmp;
	ts->cfg.utp = now->utp;
	ts->cfg.upload_rate = now->upload_rate;
	ts->cfg.max_peers = now->max_peers;
	if (ts->cfg.resume_interval != now->resume_interval) {
		ts->cfg.resume_interval = now->resume_interval;
		arm_resume(ts);
	}
	opts = session_options(&ts->cfg);
	if (ts->session != NULL && torrent_session_apply(ts->session, &opts, err, sizeof(err)) < 0) {
		torrent_log(ts, LOG_WARNING, "cannot apply the new options: %s", err);
		return false;
	}
	return true;
}

static bool copy_given(struct torrent_settings *dst, const struct torrent_settings *src);
static void release_given(struct torrent_settings *s);

/* What the session's writer did with the last periods' resume data. */
static void log_resume_report(struct torrent_stream *ts)
{
	struct torrent_stop_report r;

	torrent_session_resume_report(ts->session, &r);
	if (r.saved > 0)
		torrent_log(ts, LOG_DEBUG, "resume data saved for %u torrents", r.saved);
	if (r.failed > 0)
		torrent_log(ts, LOG_WARNING, "resume data of %u torrents not saved: %s", r.failed, r.error);
}

static void on_resume(evutil_socket_t fd, short what, void *arg)
{
	struct torrent_stream *ts = arg;

	log_resume_report(ts);
	torrent_session_save_resume(ts->session);
}

/* (Re)starts the periodic save at resume-interval, or stops it at 0. */
static void arm_resume(struct torrent_stream *ts)
{
	const struct timeval every = { ts->cfg.resume_interval, 0 };

	if (ts->session == NULL)
		return;
	event_del(ts->resume);
	if (ts->cfg.resume_interval > 0 && event_add(ts->resume, &every) < 0)
		torrent_log(ts, LOG_WARNING, "cannot start the periodic save of resume data: resume data saved at stop only");
}

/* A reload that kept the stream: the session takes the options that may
 * change, and the directory is read again (what inotify has not seen: a
 * file written in place and not yet closed, or watch = false), or the
 * torrents list taken as it is now. */
static void torrent_reloaded(void *state, const void *settings)
{
	struct torrent_stream *ts = state;
	const struct torrent_settings *now = settings;

	if (strcmp(now->listen, ts->cfg.listen) != 0)
		torrent_log(ts, LOG_INFO, "listening on %s from now on", now->listen);
	apply_session_options(ts, now);
	if (ts->cfg.n_torrents > 0) {
		struct torrent_settings list = { .n_torrents = 0 };

		/* The old list stays when the new one cannot be copied. */
		if (!copy_given(&list, now)) {
			torrent_log(ts, LOG_WARNING, "out of memory: the torrents list is as before");
			return;
		}
		release_given(&ts->cfg);
		ts->cfg.torrents = list.torrents;
		ts->cfg.torrent_hashes = list.torrent_hashes;
		ts->cfg.n_torrents = list.n_torrents;
		if (ts->session != NULL)
			sync_given(ts);
		return;
	}
	if (ts->session != NULL && ts->maker != NULL)
		scan_directory(ts);
}

static void on_alert(void *arg, int level, const char *text)
{
	torrent_log(arg, level, "%s", text);
}

static void on_notified(evutil_socket_t fd, short what, void *arg)
{
	struct torrent_stream *ts = arg;
	uint64_t count;

	/* Read first: alerts that come meanwhile notify again. */
	if (read(fd, &count, sizeof(count)) < 0 && errno != EAGAIN)
		torrent_log(ts, LOG_WARNING, "alert notification: %s", strerror(errno));
	torrent_session_alerts(ts->session, on_alert, ts);
}

static void on_figures(evutil_socket_t fd, short what, void *arg)
{
	struct torrent_stream *ts = arg;

	torrent_session_post_updates(ts->session);
}

/* Runs from the loop, so after the privilege drop: libtorrent's threads
 * never run as root. */
static void begin_seeding(evutil_socket_t fd, short what, void *arg)
{
	struct torrent_stream *ts = arg;
	struct torrent_session_options opts = session_options(&ts->cfg);
	const struct timeval every = { TORRENT_FIGURES_SECONDS, 0 };
	char err[256];

	if (mkdir(ts->cfg.state, 0750) < 0 && errno != EEXIST)
		torrent_log(ts, LOG_WARNING, "cannot make state directory %s: %s", ts->cfg.state, strerror(errno));
	opts.resume_dir = ts->cfg.state;
	opts.resume_tag = ts->resume_tag;
	ts->session = torrent_session_new(&opts, ts->notify_fd, err, sizeof(err));
	if (ts->session == NULL) {
		torrent_log(ts, LOG_ERR, "libtorrent would not start: %s", err);
		return;
	}
	ts->maker = torrent_maker_new(err, sizeof(err));
	if (ts->maker != NULL)
		ts->made = event_new(ts->base, torrent_maker_fd(ts->maker), EV_READ | EV_PERSIST, on_made, ts);
	if (ts->made == NULL || event_add(ts->made, NULL) < 0) {
		torrent_log(ts, LOG_ERR, "cannot start making torrents: %s", ts->maker ? "out of memory" : err);
		return;
	}
	event_add(ts->notified, NULL);
	event_add(ts->figures, &every);
	arm_resume(ts);
	if (ts->cfg.n_torrents > 0) {
		sync_given(ts);
		return;
	}
	scan_directory(ts);
	if (ts->cfg.watch)
		watch_directory(ts);
}

/* ---- the unit ---- */

static void release_given(struct torrent_settings *s)
{
	for (size_t i = 0; i < s->n_torrents; i++)
		free(s->torrents[i]);
	free(s->torrents);
	free(s->torrent_hashes);
	s->torrents = NULL;
	s->torrent_hashes = NULL;
	s->n_torrents = 0;
}

/* The torrents list of src into dst (which holds none); false, with
 * none, when out of memory. */
static bool copy_given(struct torrent_settings *dst, const struct torrent_settings *src)
{
	size_t n = src->n_torrents;

	dst->torrents = NULL;
	dst->torrent_hashes = NULL;
	dst->n_torrents = 0;
	if (n == 0)
		return true;
	dst->torrents = calloc(n, sizeof(*dst->torrents));
	dst->torrent_hashes = calloc(n, sizeof(*dst->torrent_hashes));
	if (dst->torrents == NULL || dst->torrent_hashes == NULL) {
		free(dst->torrents);
		free(dst->torrent_hashes);
		dst->torrents = NULL;
		dst->torrent_hashes = NULL;
		return false;
	}
	for (dst->n_torrents = 0; dst->n_torrents < n; dst->n_torrents++) {
		dst->torrents[dst->n_torrents] = strdup(src->torrents[dst->n_torrents]);
		if (dst->torrents[dst->n_torrents] == NULL) {
			release_given(dst);
			return false;
		}
		memcpy(dst->torrent_hashes[dst->n_torrents], src->torrent_hashes[dst->n_torrents], 41);
	}
	return true;
}

/* Any copy that fails leaves a NULL (a list: none of it), which
 * torrent_start() checks. */
static bool settings_copy(struct torrent_settings *dst, const struct torrent_settings *src)
{
	*dst = *src;
	dst->listen = strdup(src->listen);
	dst->directory = strdup(src->directory);
	dst->state = strdup(src->state);
	dst->tracker = strdup(src->tracker);
	dst->web_seed = strdup(src->web_seed);
	return copy_given(dst, src);
}

static void settings_release(struct torrent_settings *s)
{
	free(s->listen);
	free(s->directory);
	free(s->state);
	free(s->tracker);
	free(s->web_seed);
	release_given(s);
}

static void torrent_free(struct torrent_stream *ts)
{
	for (size_t i = 0; i < ts->n_seeded; i++) {
		free(ts->seeded[i].path);
		free(ts->seeded[i].cache_key);
	}
	free(ts->seeded);
	if (ts->begin != NULL)
		event_free(ts->begin);
	if (ts->notified != NULL)
		event_free(ts->notified);
	if (ts->figures != NULL)
		event_free(ts->figures);
	if (ts->resume != NULL)
		event_free(ts->resume);
	if (ts->directory_changed != NULL)
		event_free(ts->directory_changed);
	/* The event first: the maker's fd closes with it. */
	if (ts->made != NULL)
		event_free(ts->made);
	torrent_maker_free(ts->maker);
	if (ts->inotify_fd >= 0)
		close(ts->inotify_fd);
	if (ts->notify_fd >= 0)
		close(ts->notify_fd);
	settings_release(&ts->cfg);
	free(ts->unit);
	free(ts);
}

static void *torrent_start(const void *settings, const struct unit_env *env)
{
	struct torrent_stream *ts = calloc(1, sizeof(*ts));
	bool listed;

	if (ts == NULL)
		return NULL;
	ts->inotify_fd = -1;
	ts->base = env->base;
	ts->chassis = env->chassis;
	ts->unit = strdup(env->unit);
	listed = settings_copy(&ts->cfg, settings);
	ts->notify_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (ts->notify_fd >= 0) {
		ts->notified = event_new(env->base, ts->notify_fd, EV_READ | EV_PERSIST, on_notified, ts);
		ts->figures = event_new(env->base, -1, EV_PERSIST, on_figures, ts);
		ts->resume = event_new(env->base, -1, EV_PERSIST, on_resume, ts);
		ts->begin = evtimer_new(env->base, begin_seeding, ts);
	}
	if (!listed || ts->unit == NULL || ts->cfg.listen == NULL || ts->cfg.directory == NULL || ts->cfg.state == NULL ||
	    ts->cfg.tracker == NULL || ts->cfg.web_seed == NULL || ts->notified == NULL || ts->figures == NULL ||
	    ts->resume == NULL || ts->begin == NULL) {
		torrent_free(ts);
		return NULL;
	}
	/* Resume files by stream: two streams may share a state directory,
	 * and each drops only its own stale ones. */
	snprintf(ts->resume_tag, sizeof(ts->resume_tag), "%016" PRIx64, fnv1a(14695981039346656037ull, ts->unit));
	event_active(ts->begin, EV_TIMEOUT, 0);
	return ts;
}

/* What the wind-down did with the resume data. */
static void log_report(const char *unit, const struct torrent_stop_report *r)
{
	if (r->saved > 0 || r->dropped > 0)
		stopped_log(unit, LOG_INFO, "resume data saved for %u torrents, %u files of torrents no longer seeded dropped",
			    r->saved, r->dropped);
	if (r->failed > 0)
		stopped_log(unit, LOG_WARNING, "resume data of %u torrents not saved: %s", r->failed, r->error);
}

static void stopping_free(struct torrent_stopping *stopping)
{
	if (stopping->done != NULL)
		event_free(stopping->done);
	if (stopping->done_fd >= 0)
		close(stopping->done_fd);
	free(stopping->unit);
	free(stopping);
}

static void on_stopped(evutil_socket_t fd, short what, void *arg)
{
	struct torrent_stopping *stopping = arg;

	log_report(stopping->unit, &stopping->report);
	chassis_release(stopping->chassis);
	stopping_free(stopping);
}

/* What the loop waits on for a stopping session; NULL when it cannot. */
static struct torrent_stopping *stopping_new(struct torrent_stream *ts)
{
	struct torrent_stopping *stopping = calloc(1, sizeof(*stopping));

	if (stopping == NULL)
		return NULL;
	stopping->chassis = ts->chassis;
	stopping->unit = strdup(ts->unit);
	stopping->done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (stopping->done_fd >= 0)
		stopping->done = event_new(ts->base, stopping->done_fd, EV_READ, on_stopped, stopping);
	if (stopping->unit == NULL || stopping->done == NULL || event_add(stopping->done, NULL) < 0) {
		stopping_free(stopping);
		return NULL;
	}
	return stopping;
}

/* The resume data is written and libtorrent says goodbye to trackers and
 * peers on a thread of its own; the daemon is held meanwhile (within its
 * shutdown-grace), the loop never. Short of memory or a thread, it is all
 * done here, blocking. */
static void stop_session(struct torrent_stream *ts)
{
	struct torrent_stopping *stopping = stopping_new(ts);
	struct torrent_stop_report report = { .saved = 0 };

	if (stopping == NULL) {
		torrent_session_stop(ts->session, -1, &report);
		log_report(ts->unit, &report);
		return;
	}
	if (torrent_session_stop(ts->session, stopping->done_fd, &stopping->report) < 0) {
		log_report(ts->unit, &stopping->report);
		stopping_free(stopping);
		return;
	}
	chassis_hold(ts->chassis);
}

static void torrent_stop(void *state)
{
	struct torrent_stream *ts = state;
	char name[300];

	snprintf(name, sizeof(name), "torrent:%s", ts->unit);
	chassis_unpublish(ts->chassis, name, ts);

	if (ts->session != NULL)
		stop_session(ts);
	torrent_free(ts);
}

static bool same_text(const char *a, const char *b)
{
	return strcmp(a, b) == 0;
}

/* The session's own options (listen, discovery, uTP, rates, peers,
 * resume-interval) and the entries of torrents are applied to it as it runs
 * (torrent_reloaded()); any other change restarts it, as does going from
 * the directory's files to torrents or back: its peers reconnect, and the
 * torrents are seeded again from their resume data without hashing. */
static bool torrent_same(const void *old_settings, const void *new_settings)
{
	const struct torrent_settings *a = old_settings, *b = new_settings;

	return (a->n_torrents > 0) == (b->n_torrents > 0) && same_text(a->directory, b->directory) &&
	       same_text(a->state, b->state) &&
	       same_text(a->tracker, b->tracker) && same_text(a->web_seed, b->web_seed) && a->v1_only == b->v1_only &&
	       a->watch == b->watch && a->max_torrents == b->max_torrents;
}

static void torrent_status(const void *state, char *buf, size_t len)
{
	const struct torrent_stream *ts = state;
	struct torrent_figures f;
	unsigned peers = 0;
	uint64_t uploaded = 0;

	for (size_t i = 0; ts->session != NULL && i < ts->n_seeded; i++) {
		if (torrent_session_figures(ts->session, ts->seeded[i].info_hash, &f)) {
			peers += f.peers;
			uploaded += f.uploaded;
		}
	}
	snprintf(buf, len, "torrents=%zu connected_peers=%u uploaded_bytes=%" PRIu64 " rejected=%" PRIu64,
		 ts->n_seeded, peers, uploaded, ts->rejected);
}

/* Appends one formatted line; false once buf is full (the line left out). */
static bool append_line(char *buf, size_t len, size_t *used, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static bool append_line(char *buf, size_t len, size_t *used, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*used >= len)
		return false;
	va_start(ap, fmt);
	n = vsnprintf(buf + *used, len - *used, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *used) {
		buf[*used] = '\0';
		return false;
	}
	*used += (size_t)n;
	return true;
}

/* A row per torrent, named by its infohash (file names have spaces). */
static void torrent_status_rows(const void *state, char *buf, size_t len)
{
	const struct torrent_stream *ts = state;
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; ts->session != NULL && i < ts->n_seeded; i++) {
		struct torrent_figures f = { .peers = 0 };

		if (ts->seeded[i].making)
			continue;
		torrent_session_figures(ts->session, ts->seeded[i].info_hash, &f);
		if (!append_line(buf, len, &used, "torrent %s peers=%u uploaded_bytes=%" PRIu64 " upload_rate=%u\n",
				 ts->seeded[i].info_hash, f.peers, f.uploaded, f.upload_rate))
			break;
	}
}

/* Per torrent, in words: "INFOHASH state name". */
static void torrent_status_text(const void *state, char *buf, size_t len)
{
	const struct torrent_stream *ts = state;
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; ts->session != NULL && i < ts->n_seeded; i++) {
		struct torrent_figures f = { .state = "adding" };

		if (ts->seeded[i].making)
			continue;
		torrent_session_figures(ts->session, ts->seeded[i].info_hash, &f);
		if (!append_line(buf, len, &used, "%s %s %s\n", ts->seeded[i].info_hash, f.state,
				 ts->seeded[i].name))
			break;
	}
}

/* ---- the config ---- */

static char *default_listen[] = { "0.0.0.0:6881", "[::]:6881" };

static cfg_opt_t torrent_options[] = {
	TORRENT_OPTIONS,
	CFG_END()
};

static void torrent_settings_free(void *settings)
{
	struct torrent_settings *s = settings;

	if (s == NULL)
		return;
	settings_release(s);
	free(s);
}

/* One listen entry: an IPv4 address or a bracketed IPv6 one, a colon and
 * a port from 1 to 65535 (libtorrent would take a device name, or a port
 * of 0 for any: the doc promises neither, and peers must know the port). */
static bool listen_address_ok(const char *one, const char **why)
{
	const char *colon = strrchr(one, ':'), *host = one;
	char addr[INET6_ADDRSTRLEN + 2], *end;
	unsigned char buf[sizeof(struct in6_addr)];
	size_t len;
	long port;

	*why = "must be IP:PORT or [IPv6]:PORT";
	if (colon == NULL || strchr(one, ',') != NULL || colon == one)
		return false;
	len = (size_t)(colon - one);
	if (one[0] == '[') {
		if (len < 3 || one[len - 1] != ']')
			return false;
		host = one + 1;
		len -= 2;
	}
	if (len >= sizeof(addr))
		return false;
	memcpy(addr, host, len);
	addr[len] = '\0';
	if (inet_pton(host == one ? AF_INET : AF_INET6, addr, buf) != 1)
		return false;
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] < '0' || colon[1] > '9' || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
		*why = "the port must be a number from 1 to 65535";
		return false;
	}
	return true;
}

/* The default goes into the section too, so that -T prints it. */
static unsigned listen_default(cfg_t *sec)
{
	if (sec != NULL && cfg_setmulti(sec, "listen", 2, default_listen) != CFG_SUCCESS)
		return 0;
	return 2;
}

static char *join_listen(cfg_t *sec, struct conf_scope *scope)
{
	unsigned n = sec ? cfg_size(sec, "listen") : 0;
	char joined[TORRENT_LISTEN_MAX] = "";
	size_t used = 0;
	const char *why;

	/* Written as {}: a mistake (libconfuse records no line for it: the
	 * error is at the section's); not written: the default. */
	if (n == 0 && sec != NULL && (cfg_getopt(sec, "listen")->flags & CFGF_MODIFIED))
		conf_scope_error(scope, "listen", "listen needs at least one address, as \"IP:PORT\"");
	else if (n == 0)
		n = listen_default(sec);
	for (unsigned i = 0; i < n; i++) {
		const char *one = sec ? cfg_getnstr(sec, "listen", i) : default_listen[i];
		int w = snprintf(joined + used, sizeof(joined) - used, "%s%s", i ? "," : "", one);

		if (!listen_address_ok(one, &why))
			conf_scope_error(scope, "listen", "bad listen address \"%s\": %s", one, why);
		if (w < 0 || (size_t)w >= sizeof(joined) - used) {
			conf_scope_error(scope, "listen", "too many listen addresses");
			break;
		}
		used += (size_t)w;
	}
	return strdup(joined);
}

static char *absolute_path(cfg_t *sec, struct conf_scope *scope, const char *option, const char *fallback)
{
	const char *path = sec ? cfg_getstr(sec, option) : fallback;

	if (path == NULL) {
		conf_scope_error(scope, option, "missing \"%s\": the directory whose files are seeded", option);
		return strdup("");
	}
	if (path[0] != '/')
		conf_scope_error(scope, option, "%s must be an absolute path, not \"%s\"", option, path);
	return strdup(path);
}

/* One entry of torrents, read now: a mistake is an error at its line in
 * `chassisd -t` and a refused reload, not a warning once running. */
static void read_given_one(struct conf_scope *scope, struct torrent_settings *s, const char *path)
{
	char *hash = s->torrent_hashes[s->n_torrents], name[256], err[256];

	if (path[0] != '/') {
		conf_scope_error(scope, "torrents", "torrents must be absolute paths, not \"%s\"", path);
		return;
	}
	if (torrent_file_read(path, hash, name, sizeof(name), err, sizeof(err)) < 0) {
		conf_scope_error(scope, "torrents", "torrent file \"%s\": %s", path, err);
		return;
	}
	for (size_t i = 0; i < s->n_torrents; i++)
		if (strcmp(s->torrent_hashes[i], hash) == 0) {
			if (strcmp(s->torrents[i], path) == 0)
				conf_scope_error(scope, "torrents", "torrent file \"%s\" is listed twice", path);
			else
				conf_scope_error(scope, "torrents", "torrent file \"%s\" is the same torrent as \"%s\"",
						 path, s->torrents[i]);
			return;
		}
	s->torrents[s->n_torrents] = strdup(path);
	if (s->torrents[s->n_torrents] != NULL)
		s->n_torrents++;
}

/* torrents = {...}: only those .torrent files are seeded, their data
 * under directory. Written but empty is a mistake, not the directory. */
static void read_given(cfg_t *sec, struct conf_scope *scope, struct torrent_settings *s)
{
	unsigned n = sec ? cfg_size(sec, "torrents") : 0;

	if (n == 0) {
		/* A list written as {} is only marked modified (libconfuse
		 * records no line for it: the error is at the section's). */
		if (sec != NULL && (cfg_getopt(sec, "torrents")->flags & CFGF_MODIFIED))
			conf_scope_error(scope, "torrents", "torrents needs at least one .torrent file");
		return;
	}
	s->torrents = calloc(n, sizeof(*s->torrents));
	s->torrent_hashes = calloc(n, sizeof(*s->torrent_hashes));
	if (s->torrents == NULL || s->torrent_hashes == NULL) {
		conf_scope_error(scope, "torrents", "out of memory");
		return;
	}
	for (unsigned i = 0; i < n; i++)
		read_given_one(scope, s, cfg_getnstr(sec, "torrents", i));
}

static void *torrent_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct torrent_settings *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->listen = join_listen(sec, scope);
	s->directory = absolute_path(sec, scope, "directory", NULL);
	s->state = absolute_path(sec, scope, "state", TORRENT_DEFAULT_STATE);
	s->tracker = strdup(sec ? cfg_getstr(sec, "tracker") : "");
	s->web_seed = strdup(sec ? cfg_getstr(sec, "web-seed") : "");
	read_given(sec, scope, s);
	s->v1_only = sec ? cfg_getbool(sec, "v1-only") : true;
	s->watch = sec ? cfg_getbool(sec, "watch") : true;
	s->dht = sec && cfg_getbool(sec, "dht");
	s->lsd = sec && cfg_getbool(sec, "lsd");
	s->upnp = sec && cfg_getbool(sec, "upnp");
	s->natpmp = sec && cfg_getbool(sec, "natpmp");
	s->utp = sec && cfg_getbool(sec, "utp");
	s->max_peers = TORRENT_DEFAULT_MAX_PEERS;
	s->max_torrents = TORRENT_DEFAULT_MAX_TORRENTS;
	s->resume_interval = TORRENT_DEFAULT_RESUME_INTERVAL;
	if (sec != NULL) {
		conf_scope_int(scope, sec, "upload-rate", 0, INT_MAX, &s->upload_rate);
		conf_scope_int(scope, sec, "max-peers", 1, 65535, &s->max_peers);
		conf_scope_int(scope, sec, "max-torrents", 1, 1000000, &s->max_torrents);
		conf_scope_int(scope, sec, "resume-interval", 0, TORRENT_MAX_RESUME_INTERVAL, &s->resume_interval);
	}
	if (s->listen == NULL || s->directory == NULL || s->state == NULL || s->tracker == NULL ||
	    s->web_seed == NULL) {
		torrent_settings_free(s);
		return NULL;
	}
	return s;
}

const struct protocol protocol_torrent = {
	.config = {
		.name = "torrent",
		.options = torrent_options,
		.transports = UNIT_STREAM_BIT | UNIT_STREAM_SELF_BIT,
		.configure = torrent_configure,
		.settings_free = torrent_settings_free,
	},
	.start = torrent_start,
	.stop = torrent_stop,
	.same = torrent_same,
	.reloaded = torrent_reloaded,
	.status = torrent_status,
	.status_rows = torrent_status_rows,
	.status_text = torrent_status_text,
};
