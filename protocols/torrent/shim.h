/* The C face of libtorrent-rasterbar: the only C++ in the tree is behind
 * it. No C++ type crosses; every exception is caught inside and comes out
 * as -1 (or NULL) with the reason in err. */
#ifndef CHASSISD_TORRENT_SHIM_H
#define CHASSISD_TORRENT_SHIM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct torrent_session;

struct torrent_session_options {
	const char *listen;		/* libtorrent's "IP:PORT,[IP6]:PORT" */
	bool dht, lsd, upnp, natpmp, utp;
	int upload_rate;		/* bytes per second, 0 = unlimited */
	int max_peers;			/* connections per session */
};

/* What a made torrent carries beyond its files (each may be NULL). */
struct torrent_make_options {
	const char *tracker;
	const char *web_seed;
	bool v1_only;
};

/* Starts libtorrent's threads: call after the privilege drop. Whenever
 * alerts wait, libtorrent writes 1 to notify_fd (an eventfd) from its
 * own thread; the owner then calls torrent_session_alerts() on its own. */
struct torrent_session *torrent_session_new(const struct torrent_session_options *opts, int notify_fd, char *err,
					    size_t err_len);

/* Applies changed options to the running session: listen addresses are
 * bound anew, peers of the others stay. */
int torrent_session_apply(struct torrent_session *s, const struct torrent_session_options *opts, char *err,
			  size_t err_len);

/* Makes the .torrent of path (a file or a folder) into out_file. Hashes
 * every byte: the caller caches the result. */
int torrent_make(const char *path, const struct torrent_make_options *opts, const char *out_file, char *err,
		 size_t err_len);

/* A thread of its own that makes torrents, so that hashing a large file
 * never holds up the loop. torrent_maker_fd() becomes readable when results
 * wait; torrent_maker_results() hands them over on the caller's thread.
 * torrent_maker_free() returns at once: a torrent being made is finished
 * (or the process ends) on the thread, and its result dropped. */
struct torrent_maker;
struct torrent_maker *torrent_maker_new(char *err, size_t err_len);
int torrent_maker_fd(const struct torrent_maker *m);
int torrent_maker_queue(struct torrent_maker *m, const char *path, const struct torrent_make_options *opts,
			const char *out_file, char *err, size_t err_len);
/* error is NULL when out_file was made. */
typedef void torrent_made_fn(void *arg, const char *path, const char *out_file, const char *error);
void torrent_maker_results(struct torrent_maker *m, torrent_made_fn *fn, void *arg);
void torrent_maker_free(struct torrent_maker *m);

/* Seeds torrent_file with its data in save_dir, in seed mode (pieces are
 * checked when first asked for, so a large folder starts at once). The
 * 40-hex v1 infohash and the name go to info_hash and name. */
int torrent_session_add(struct torrent_session *s, const char *torrent_file, const char *save_dir,
			char info_hash[41], char *name, size_t name_len, char *err, size_t err_len);
int torrent_session_remove(struct torrent_session *s, const char *info_hash, char *err, size_t err_len);

/* Hands every waiting alert to fn on the caller's thread: a syslog level
 * (LOG_WARNING for listen, tracker and file errors; LOG_DEBUG per peer)
 * and a line of text. Refreshes what torrent_session_status() shows. */
typedef void torrent_alert_fn(void *arg, int level, const char *text);
void torrent_session_alerts(struct torrent_session *s, torrent_alert_fn *fn, void *arg);
/* Asks for fresh per-torrent figures (they come as an alert). */
void torrent_session_post_updates(struct torrent_session *s);

struct torrent_figures {
	char info_hash[41];
	char state[24];			/* "seeding", "checking" ... */
	unsigned peers;
	uint64_t uploaded;		/* payload bytes, since added */
	unsigned upload_rate;		/* bytes per second */
};
/* The last figures of the torrent with info_hash; false when unknown. */
bool torrent_session_figures(const struct torrent_session *s, const char *info_hash, struct torrent_figures *out);

/* Stops the session without blocking: libtorrent winds down on a thread
 * of its own, which writes 1 to done_fd when it is over. The session is
 * gone on return. -1 when no thread could be started (it was then stopped
 * here, blocking). */
int torrent_session_stop(struct torrent_session *s, int done_fd);

#ifdef __cplusplus
}
#endif

#endif
