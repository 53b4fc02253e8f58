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
	/* Where the resume data is kept, one file per torrent:
	 * RESUME_DIR/RESUME_TAG-INFOHASH.resume. Taken at
	 * torrent_session_new() only; the tag keeps apart the streams that
	 * share a state directory. */
	const char *resume_dir, *resume_tag;
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

/* Reads a .torrent file as torrent_session_add() would, for the config
 * check: its 40-hex v1 infohash and its name; -1 with the reason in err
 * when libtorrent does not take it (a v2-only torrent neither: torrents
 * are known by their v1 infohash). */
int torrent_file_read(const char *torrent_file, char info_hash[41], char *name, size_t name_len, char *err,
		      size_t err_len);

struct torrent_add {
	const char *torrent_file;
	const char *save_dir;		/* where its data is */
	/* false: a torrent made here from its data, added in seed mode
	 * (pieces checked when first asked for, so a large folder starts at
	 * once). true: a .torrent given by the administrator, which may not
	 * match the data: hashed before it is served, never downloaded to,
	 * and paused with a warning when pieces are missing or differ. */
	bool check;
};

/* Seeds add->torrent_file, with its resume data when there is some (and,
 * for a checked torrent, when it was written after every file of the
 * torrent last changed: libtorrent compares sizes only). The 40-hex v1
 * infohash and the name go to info_hash and name; resumed says whether
 * resume data was taken. */
int torrent_session_add(struct torrent_session *s, const struct torrent_add *add, char info_hash[41], char *name,
			size_t name_len, bool *resumed, char *err, size_t err_len);
/* Stops seeding the torrent and drops its resume data. */
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
	char state[24];			/* "seeding", "checking" ..., "mismatch":
					 * a checked torrent whose data did not match */
	unsigned peers;
	uint64_t uploaded;		/* payload bytes, all time (resume data) */
	unsigned upload_rate;		/* bytes per second */
};
/* The last figures of the torrent with info_hash; false when unknown. */
bool torrent_session_figures(const struct torrent_session *s, const char *info_hash, struct torrent_figures *out);

/* What a stop did with the resume data, for the log. */
struct torrent_stop_report {
	unsigned saved;			/* files written */
	unsigned failed;		/* torrents whose resume data was not written */
	unsigned dropped;		/* files of torrents no longer seeded, removed */
	char error[256];		/* the first failure */
};

/* A periodic save of the resume data, without blocking: asks it of every
 * seeding torrent whose upload total moved since the last time, or that
 * libtorrent says needs it (need_save_resume_data(), through the
 * only_if_modified flag); a torrent being checked, or whose data did not
 * match, is left out, as at a stop. The data comes as alerts, taken in
 * torrent_session_alerts(), and is written on a thread of the session's,
 * each file as at a stop (temporary file, fsync, rename). Returns how many
 * torrents were asked. */
unsigned torrent_session_save_resume(struct torrent_session *s);
/* What that thread wrote, and failed to, since the last call (dropped is
 * always 0). */
void torrent_session_resume_report(struct torrent_session *s, struct torrent_stop_report *out);

/* Stops the session without blocking: on a thread of its own, the resume
 * data of every seeding torrent is written (each file atomically, within
 * TORRENT_RESUME_SECONDS), the files of this tag's torrents no longer in
 * the session are dropped, then libtorrent says goodbye to trackers and
 * peers. The report is filled in, then 1 written to done_fd. The session
 * is gone on return. -1 when it was all done here, blocking: done_fd < 0,
 * or no thread could be started. */
#define TORRENT_RESUME_SECONDS 5
int torrent_session_stop(struct torrent_session *s, int done_fd, struct torrent_stop_report *report);

#ifdef __cplusplus
}
#endif

#endif
