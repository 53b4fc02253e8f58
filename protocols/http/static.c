/* Static files under a root.
 *
 * The request path is percent-decoded and normalised here, and the result
 * is opened with openat2(RESOLVE_BENEATH) against the root's descriptor,
 * so the kernel itself refuses any way out of the root that the string
 * checks might have missed ("..", a symlink pointing outside) unless
 * follow-symlinks is on. Bodies go out by sendfile through the chassis,
 * from an open-file cache that spares a repeated file its open and close. */
#include <dirent.h>
#include <errno.h>
#include <event2/buffer.h>
#include <fcntl.h>
#include <stdint.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "daemon/chassis.h"
#include "daemon/log.h"
#include "protocols/http/accept.h"
#include "protocols/http/handlers.h"
#include "protocols/http/mime.h"
#include "protocols/http/response.h"

#define STATIC_LISTING_MAX 10000
#define STATIC_OPEN_FILES_MAX 65536
#define STATIC_PREPARED_MAX (1L << 20)
/* Hits within one second before a file's answer is prepared: below it the
 * preparation's syscalls cost more than the sends they save. */
#define STATIC_PREPARE_AFTER 4

/* ETag, Last-Modified and the headers that carry them, worked out once
 * per opened file rather than formatted for every answer. */
struct static_validators {
	char etag[48];
	char modified[30];
	char headers[128];
};

/* A small file's whole 200 answer, head and body, in one memory file. */
struct static_prepared {
	struct evbuffer_file_segment *answer;
	char *head;			/* its head's bytes, to compare */
	size_t head_len;
	time_t made;			/* at most one preparation a second */
	time_t counted;			/* the second `hits` counts in */
	unsigned hits;
};

/* An open regular file: the cache's reference to its segment. */
struct static_cached {
	char *rel;
	struct evbuffer_file_segment *segment;
	int fd;				/* the segment's, while rel is set */
	struct stat st;
	struct static_validators validators;
	uint64_t checked_ns;		/* when the request that took st began */
	struct static_prepared prepared;
};

static void static_prepared_free(struct static_prepared *prepared)
{
	if (prepared->answer != NULL)
		evbuffer_file_segment_free(prepared->answer);	/* in-flight answers keep theirs */
	free(prepared->head);
	prepared->answer = NULL;
	prepared->head = NULL;
}

static void static_cache_evict(struct static_cached *slot)
{
	if (slot->rel == NULL)
		return;
	free(slot->rel);
	evbuffer_file_segment_free(slot->segment);	/* in-flight answers keep theirs */
	static_prepared_free(&slot->prepared);
	*slot = (struct static_cached){ 0 };
}

/* ---- configuration ---- */

static bool static_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	struct http_static *files = &route->files;
	const char *root = cfg_getstr(sec, "root");
	const char *index = cfg_getstr(sec, "index");
	long open_files, prepared_max;

	if (root == NULL || root[0] != '/') {
		conf_scope_error(scope, root ? "root" : NULL, "a static route needs root = \"/absolute/directory\"");
		return false;
	}
	files->root_fd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (files->root_fd < 0) {
		conf_scope_error(scope, "root", "cannot open root %s: %s", root, strerror(errno));
		return false;
	}
	if (index[0] == '\0' || strchr(index, '/') != NULL || strcmp(index, "..") == 0) {
		conf_scope_error(scope, "index", "index must be a file name, not \"%s\"", index);
		return false;
	}
	files->root = realpath(root, NULL);
	files->index = strdup(index);
	files->autoindex = cfg_getbool(sec, "autoindex");
	files->follow_symlinks = cfg_getbool(sec, "follow-symlinks");
	files->precompressed = cfg_getbool(sec, "precompressed");
	if (!conf_scope_int(scope, sec, "open-files", 0, STATIC_OPEN_FILES_MAX, &open_files))
		return false;
	if (!conf_scope_int(scope, sec, "prepared-max", 0, STATIC_PREPARED_MAX, &prepared_max))
		return false;
	files->prepared_max = (off_t)prepared_max;
	files->cache_size = (size_t)open_files;
	files->cache = open_files > 0 ? calloc(files->cache_size, sizeof(*files->cache)) : NULL;
	return files->root != NULL && files->index != NULL && (open_files == 0 || files->cache != NULL);
}

static void static_free(struct http_route *route)
{
	if (route->files.root_fd >= 0)
		close(route->files.root_fd);
	free(route->files.root);
	free(route->files.index);
	for (size_t i = 0; route->files.cache != NULL && i < route->files.cache_size; i++)
		static_cache_evict(&route->files.cache[i]);
	free(route->files.cache);
}

/* ---- the path ---- */

static int hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes and normalises `path` into "a/b/c" (no leading slash, "" for the
 * root). Refuses NUL, backslashes, bad escapes and any ".." that would
 * climb above the root, whatever the encoding. */
static bool static_clean_path(const char *path, size_t len, char *out, size_t cap, bool *trailing_slash)
{
	size_t o = 0, seg = 0;

	*trailing_slash = len == 0 || path[len - 1] == '/';
	for (size_t i = 0; i <= len; i++) {
		if (i < len) {
			char c = path[i];
			int hi, lo;

			if (c == '%') {
				if (i + 2 >= len || (hi = hex_value(path[i + 1])) < 0 || (lo = hex_value(path[i + 2])) < 0)
					return false;
				c = (char)(hi * 16 + lo);
				i += 2;
				if (c == '/')
					return false;	/* an encoded slash is never a separator */
			}
			if (c == '\0' || c == '\\')
				return false;
			if (c != '/') {
				if (o + 2 >= cap)
					return false;
				out[o++] = c;
				continue;
			}
		}
		/* A segment ends: out[seg, o). */
		if (o == seg || (o - seg == 1 && out[seg] == '.')) {
			o = seg;
		} else if (o - seg == 2 && out[seg] == '.' && out[seg + 1] == '.') {
			if (seg == 0)
				return false;
			for (o = seg - 1; o > 0 && out[o - 1] != '/'; o--)
				;
		} else {
			out[o++] = '/';
		}
		seg = o;
	}
	if (o > 0)
		o--;		/* the separator after the last segment */
	out[o] = '\0';
	return true;
}

static int static_openat(const struct http_static *files, const char *rel)
{
	static bool no_openat2;
	const char *name = rel[0] ? rel : ".";
	int flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK;
	int fd;

	if (files->follow_symlinks)
		return openat(files->root_fd, name, flags);
	if (!no_openat2) {
		struct open_how how = { .flags = (unsigned long long)flags,
					.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS };

		fd = (int)syscall(SYS_openat2, files->root_fd, name, &how, sizeof(how));
		if (fd >= 0 || errno != ENOSYS)
			return fd;
		no_openat2 = true;	/* an old kernel or a seccomp filter */
	}
	/* Without openat2: open, then ask the kernel where it landed. */
	fd = openat(files->root_fd, name, flags);
	if (fd >= 0) {
		char link[64], where[PATH_MAX];
		size_t root_len = strlen(files->root);
		ssize_t n;

		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		n = readlink(link, where, sizeof(where) - 1);
		if (n >= 0)
			where[n] = '\0';
		if (n < 0 || strncmp(where, files->root, root_len) != 0 ||
		    !(where[root_len] == '\0' || where[root_len] == '/' || strcmp(files->root, "/") == 0)) {
			close(fd);
			errno = EXDEV;
			return -1;
		}
	}
	return fd;
}

/* ---- open files ----
 *
 * A direct-mapped cache of open regular files as libevent file segments:
 * a hit costs one fstatat instead of openat2, fstat and close, and a stat
 * is trusted for STATIC_STAT_VALID_NS after the request that took it began:
 * under load that is one stat per hundred answers, and a change is seen by
 * every request that starts a millisecond after it. The stat must show the
 * same inode, size, mtime and ctime, so a file edited, replaced, renamed
 * over or chmodded is opened afresh through openat2; a path that now leads
 * elsewhere (a symlink swapped in) shows another inode and is checked
 * beneath the root again. */

#define STATIC_STAT_VALID_NS 1000000u

struct static_file {
	struct evbuffer_file_segment *segment;	/* a regular file */
	int segment_fd;				/* its file: TLS reads it */
	bool borrowed;				/* the cache's reference */
	struct static_cached *slot;		/* when borrowed */
	int fd;					/* anything else: a directory */
	struct stat st;
	struct static_validators validators;	/* with the segment */
	const char *name;			/* for the MIME type */
	size_t name_len;
	bool gzip;
};

static bool same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       a->st_mtim.tv_sec == b->st_mtim.tv_sec && a->st_mtim.tv_nsec == b->st_mtim.tv_nsec &&
	       a->st_ctim.tv_sec == b->st_ctim.tv_sec && a->st_ctim.tv_nsec == b->st_ctim.tv_nsec;
}

static struct static_cached *static_cache_slot(const struct http_static *files, const char *rel)
{
	uint32_t hash = 2166136261u;	/* FNV-1a */

	if (files->cache_size == 0)
		return NULL;
	for (const unsigned char *p = (const unsigned char *)rel; *p; p++)
		hash = (hash ^ *p) * 16777619u;
	return &files->cache[hash % files->cache_size];
}

static void static_file_release(struct static_file *file)
{
	if (file->segment != NULL && !file->borrowed)
		evbuffer_file_segment_free(file->segment);
	if (file->fd >= 0)
		close(file->fd);
	file->segment = NULL;
	file->fd = -1;
}

static void static_validators_set(struct static_validators *v, const struct stat *st)
{
	/* With the nanoseconds, a same-size rewrite within a second is a new
	 * ETag too. */
	snprintf(v->etag, sizeof(v->etag), "\"%llx.%lx-%llx\"", (unsigned long long)st->st_mtim.tv_sec,
		 (unsigned long)st->st_mtim.tv_nsec, (unsigned long long)st->st_size);
	http_date(st->st_mtime, v->modified);
	snprintf(v->headers, sizeof(v->headers), "ETag: %s\r\nLast-Modified: %s\r\nAccept-Ranges: bytes\r\n", v->etag,
		 v->modified);
}

/* A regular file becomes a segment, kept in the cache when it has room. */
static int static_file_segment(const char *rel, struct static_cached *slot, uint64_t began, struct static_file *file)
{
	char *key = slot != NULL ? strdup(rel) : NULL;

	file->segment = evbuffer_file_segment_new(file->fd, 0, file->st.st_size, EVBUF_FS_CLOSE_ON_FREE);
	if (file->segment == NULL) {
		free(key);
		static_file_release(file);
		errno = ENOMEM;
		return -1;
	}
	file->segment_fd = file->fd;	/* the segment's now, closed with it */
	static_validators_set(&file->validators, &file->st);
	if (key != NULL) {
		static_cache_evict(slot);
		*slot = (struct static_cached){ .rel = key, .segment = file->segment, .fd = file->fd, .st = file->st,
						.validators = file->validators, .checked_ns = began };
		file->borrowed = true;
		file->slot = slot;
	}
	file->fd = -1;
	return 0;
}

/* `began` earlier than the check (an answer that waited) wraps around to
 * a large age: it is checked again. */
static bool static_cached_current(const struct http_static *files, struct static_cached *slot, uint64_t began)
{
	struct stat now;

	if (began - slot->checked_ns < STATIC_STAT_VALID_NS)
		return true;
	if (fstatat(files->root_fd, slot->rel, &now, 0) < 0 || !same_file(&now, &slot->st))
		return false;
	slot->checked_ns = began;
	return true;
}

/* Opens rel: a regular file as a segment, anything else as a descriptor.
 * -1 with errno when it cannot be had. Opening another file may evict a
 * borrowed segment: only do it to replace the file in hand. */
static int static_open(const struct http_static *files, const char *rel, uint64_t began, struct static_file *file)
{
	struct static_cached *slot = static_cache_slot(files, rel);

	file->segment = NULL;
	file->borrowed = false;
	file->slot = NULL;
	if (slot != NULL && slot->rel != NULL && strcmp(slot->rel, rel) == 0) {
		if (static_cached_current(files, slot, began)) {
			file->segment = slot->segment;
			file->segment_fd = slot->fd;
			file->borrowed = true;
			file->slot = slot;
			file->fd = -1;
			file->st = slot->st;
			file->validators = slot->validators;
			return 0;
		}
		static_cache_evict(slot);
	}
	file->fd = static_openat(files, rel);
	if (file->fd < 0)
		return -1;
	if (fstat(file->fd, &file->st) < 0) {
		int err = errno;

		static_file_release(file);
		errno = err;
		return -1;
	}
	return S_ISREG(file->st.st_mode) ? static_file_segment(rel, slot, began, file) : 0;
}

/* ---- headers a client sends ---- */

static bool etag_matches(const char *list, size_t len, const char *etag)
{
	size_t etag_len = strlen(etag);
	const char *p = list, *end = list + len;

	while (p < end) {
		while (p < end && (*p == ' ' || *p == ',' || *p == '\t'))
			p++;
		if (p < end && *p == '*')
			return true;
		if (end - p >= 2 && p[0] == 'W' && p[1] == '/')
			p += 2;
		if ((size_t)(end - p) >= etag_len && memcmp(p, etag, etag_len) == 0)
			return true;
		while (p < end && *p != ',')
			p++;
	}
	return false;
}

/* ---- answers ---- */

static void static_not_found(struct http_exchange *ex, int err)
{
	if (err == EACCES || err == EPERM)
		http_respond_error(ex, 403, "Access to this path is forbidden.");
	else
		http_respond_error(ex, 404, "The requested path was not found on this server.");
}

/* 0: no usable range (send everything); 1: one range; -1: unsatisfiable. */
static int static_range(struct http_exchange *ex, const char *etag, const char *last_modified, off_t size,
			off_t *start, off_t *end)
{
	size_t len, if_len;
	const char *range = http_header_find(ex, "Range", &len);
	const char *if_range = http_header_find(ex, "If-Range", &if_len);
	char spec[64], *dash, *rest;
	unsigned long long a, b;

	if (range == NULL || len < 7 || len >= sizeof(spec) || strncasecmp(range, "bytes=", 6) != 0 ||
	    memchr(range, ',', len) != NULL)
		return 0;
	if (if_range != NULL && !((if_len == strlen(etag) && memcmp(if_range, etag, if_len) == 0) ||
				  (if_len == strlen(last_modified) && memcmp(if_range, last_modified, if_len) == 0)))
		return 0;
	memcpy(spec, range + 6, len - 6);
	spec[len - 6] = '\0';
	dash = strchr(spec, '-');
	if (dash == NULL || strspn(spec, "0123456789-") != strlen(spec))
		return 0;
	if (dash == spec) {			/* the last n bytes */
		a = strtoull(dash + 1, &rest, 10);
		if (*rest != '\0' || dash[1] == '\0')
			return 0;
		if (a == 0 || size == 0)
			return -1;
		*start = (unsigned long long)size > a ? size - (off_t)a : 0;
		*end = size - 1;
		return 1;
	}
	a = strtoull(spec, &rest, 10);
	if (rest != dash)
		return 0;
	b = dash[1] ? strtoull(dash + 1, &rest, 10) : ULLONG_MAX;
	if (dash[1] && *rest != '\0')
		return 0;
	if (b < a)
		return 0;
	if (a >= (unsigned long long)size)
		return -1;
	*start = (off_t)a;
	*end = b >= (unsigned long long)size ? size - 1 : (off_t)b;
	return 1;
}

/* ---- prepared answers ----
 *
 * With sendfile the head needs a send of its own: two passes through TCP
 * per answer, most of what a small file costs. A small cached file asked
 * for often also gets its whole answer prepared: head and body in one
 * memory file (memfd; the body copied by the kernel, sendfile into it),
 * sent with one sendfile. The head holds the Date, so a preparation lasts
 * a second at most; heads are compared byte for byte, so a request that
 * needs another head (Connection: close, HTTP/1.0, gzip ...) takes the two
 * sends, unless it is the first in a new second. A file that changes
 * leaves the cache, and its preparation with it. */

static bool static_prepare(struct static_cached *slot, const char *head, size_t head_len, time_t now)
{
	struct static_prepared *prepared = &slot->prepared;
	off_t from = 0, size = slot->st.st_size;
	int fd = memfd_create("chassisd-answer", MFD_CLOEXEC);
	char *copy = malloc(head_len);

	prepared->made = now;
	if (fd < 0 || copy == NULL || write(fd, head, head_len) != (ssize_t)head_len)
		goto failed;
	while (from < size && sendfile(fd, slot->fd, &from, (size_t)(size - from)) > 0)
		;
	if (from < size)
		goto failed;
	static_prepared_free(prepared);
	prepared->answer = evbuffer_file_segment_new(fd, 0, (off_t)head_len + size, EVBUF_FS_CLOSE_ON_FREE);
	if (prepared->answer == NULL)
		goto failed;
	memcpy(copy, head, head_len);
	prepared->head = copy;
	prepared->head_len = head_len;
	return true;
failed:
	free(copy);
	if (fd >= 0)
		close(fd);
	return false;
}

/* A full 200 answer: the prepared one when it fits, else head and file. */
static void static_send_whole(struct http_exchange *ex, const struct http_static *files, struct static_file *file,
			      const char *type, const char *headers)
{
	struct static_cached *slot = file->slot;
	struct static_prepared *prepared = slot != NULL ? &slot->prepared : NULL;
	time_t now = http_now();	/* before the head, so never after its Date */
	char head[HTTP_HEAD_MAX];
	size_t len;

	if (prepared == NULL || ex->head_only || file->st.st_size > files->prepared_max ||
	    (len = http_head_format(ex, 200, type, file->st.st_size, headers, head)) == 0) {
		http_respond_head(ex, 200, type, file->st.st_size, headers);
		http_respond_file(ex, file->segment, file->segment_fd, 0, file->st.st_size);
		return;
	}
	if (prepared->counted != now) {
		prepared->counted = now;
		prepared->hits = 0;
	}
	prepared->hits++;
	if ((prepared->head_len == len && prepared->answer != NULL && memcmp(prepared->head, head, len) == 0) ||
	    (prepared->hits >= STATIC_PREPARE_AFTER && prepared->made != now && static_prepare(slot, head, len, now))) {
		ex->state->counters.prepared++;
		http_respond_prepared(ex, prepared->answer, len, file->st.st_size);
		return;
	}
	http_respond_formatted_head(ex, head, len);
	http_respond_file(ex, file->segment, file->segment_fd, 0, file->st.st_size);
}

static void static_send(struct http_exchange *ex, const struct http_static *files, struct static_file *file)
{
	const struct http_settings *settings = ex->settings;
	static const char gzip_headers[] = "Content-Encoding: gzip\r\nVary: Accept-Encoding\r\n";
	const struct static_validators *v = &file->validators;
	char gzipped[sizeof(v->headers) + sizeof(gzip_headers)], range_header[640] = "", page[160];
	size_t len;
	const char *inm = http_header_find(ex, "If-None-Match", &len), *ims;
	const char *type = mime_type_for(settings->mime, file->name, file->name_len);
	const char *headers = v->headers;
	time_t since;
	off_t start = 0, end = file->st.st_size - 1;
	int range;

	if (file->gzip) {
		snprintf(gzipped, sizeof(gzipped), "%s%s", v->headers, gzip_headers);
		headers = gzipped;
	}
	if (inm != NULL ? etag_matches(inm, len, v->etag)
			: ((ims = http_header_find(ex, "If-Modified-Since", &len)) != NULL &&
			   http_date_parse(ims, len, &since) && file->st.st_mtime <= since)) {
		static_file_release(file);
		http_respond_head(ex, 304, NULL, 0, headers);
		http_finish(ex);
		return;
	}
	range = static_range(ex, v->etag, v->modified, file->st.st_size, &start, &end);
	if (range < 0) {
		static_file_release(file);
		snprintf(range_header, sizeof(range_header), "Content-Range: bytes */%lld\r\n",
			 (long long)file->st.st_size);
		len = (size_t)snprintf(page, sizeof(page), "416 Range Not Satisfiable: the file has %lld bytes\n",
				       (long long)file->st.st_size);
		http_respond_bytes(ex, 416, "text/plain; charset=utf-8", page, len, range_header);
		return;
	}
	if (range > 0) {
		snprintf(range_header, sizeof(range_header), "%sContent-Range: bytes %lld-%lld/%lld\r\n", headers,
			 (long long)start, (long long)end, (long long)file->st.st_size);
		http_respond_head(ex, 206, type, end - start + 1, range_header);
		http_respond_file(ex, file->segment, file->segment_fd, start, end - start + 1);
	} else {
		static_send_whole(ex, files, file, type, headers);
	}
	static_file_release(file);
}

/* The .gz sibling instead, when the client takes gzip and it exists. */
static void static_try_gzip(struct http_exchange *ex, const struct http_static *files, const char *rel,
			    struct static_file *file)
{
	size_t len, rel_len = strlen(rel);
	const char *accept = http_header_find(ex, "Accept-Encoding", &len);
	char gz[PATH_MAX];
	struct static_file packed;

	if (!files->precompressed || accept == NULL || http_accept_coding_quality(accept, len, "gzip") == 0 ||
	    rel_len + 4 > sizeof(gz))
		return;
	memcpy(gz, rel, rel_len);
	memcpy(gz + rel_len, ".gz", 4);
	if (static_open(files, gz, http_started_ns(ex), &packed) < 0)
		return;
	if (packed.segment == NULL) {
		static_file_release(&packed);
		return;
	}
	packed.name = file->name;
	packed.name_len = file->name_len;
	packed.gzip = true;
	static_file_release(file);
	*file = packed;
}

struct listing_entry {
	char *name;
	bool dir;
	off_t size;
	time_t mtime;
};

static int listing_compare(const void *a, const void *b)
{
	const struct listing_entry *x = a, *y = b;

	if (x->dir != y->dir)
		return x->dir ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void href_escape(struct evbuffer *out, const char *name)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~", *p) != NULL) {
			evbuffer_add(out, p, 1);
		} else {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };
			evbuffer_add(out, esc, 3);
		}
	}
}

static size_t listing_read(int fd, struct listing_entry **out)
{
	DIR *dir = fdopendir(fd);
	struct listing_entry *entries = NULL;
	size_t n = 0, cap = 0;
	struct dirent *d;

	if (dir == NULL) {
		close(fd);
		*out = NULL;
		return 0;
	}
	while ((d = readdir(dir)) != NULL && n < STATIC_LISTING_MAX) {
		struct stat st;

		if (d->d_name[0] == '.' || fstatat(dirfd(dir), d->d_name, &st, 0) < 0)
			continue;	/* hidden, or a dangling link */
		if (n == cap) {
			struct listing_entry *grown = realloc(entries, (cap = cap ? cap * 2 : 64) * sizeof(*grown));
			if (grown == NULL)
				break;
			entries = grown;
		}
		entries[n] = (struct listing_entry){ strdup(d->d_name), S_ISDIR(st.st_mode), st.st_size, st.st_mtime };
		if (entries[n].name != NULL)
			n++;
	}
	closedir(dir);
	if (n > 1)	/* an empty directory has no array: qsort(NULL, 0) is undefined */
		qsort(entries, n, sizeof(*entries), listing_compare);
	*out = entries;
	return n;
}

static void static_listing(struct http_exchange *ex, int fd)
{
	struct evbuffer *page = evbuffer_new();
	struct listing_entry *entries;
	size_t n = listing_read(fd, &entries);
	const struct http_request *req = &ex->request;

	if (page == NULL) {
		http_respond_error(ex, 500, "out of memory");
		goto out;
	}
	evbuffer_add_printf(page, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
	http_html_escape(page, req->path, req->path_len);
	evbuffer_add_printf(page, "</title></head>\n<body><h1>Index of ");
	http_html_escape(page, req->path, req->path_len);
	evbuffer_add_printf(page, "</h1>\n<table>\n<tr><th>Name</th><th>Size</th><th>Modified</th></tr>\n");
	/* As nginx does, in the route's own directory too: "../" leaves it. */
	evbuffer_add_printf(page, "<tr><td><a href=\"../\">../</a></td><td>-</td><td></td></tr>\n");
	for (size_t i = 0; i < n; i++) {
		char when[30];

		http_date(entries[i].mtime, when);
		evbuffer_add_printf(page, "<tr><td><a href=\"");
		href_escape(page, entries[i].name);
		evbuffer_add_printf(page, "%s\">", entries[i].dir ? "/" : "");
		http_html_escape(page, entries[i].name, strlen(entries[i].name));
		if (entries[i].dir)
			evbuffer_add_printf(page, "/</a></td><td>-</td><td>%s</td></tr>\n", when);
		else
			evbuffer_add_printf(page, "</a></td><td>%lld</td><td>%s</td></tr>\n",
					    (long long)entries[i].size, when);
	}
	evbuffer_add_printf(page, "</table>\n<hr><address>chassisd</address></body></html>\n");
	http_respond_buffer(ex, 200, "text/html; charset=utf-8", page, NULL);
	evbuffer_free(page);
out:
	for (size_t i = 0; i < n; i++)
		free(entries[i].name);
	free(entries);
}

/* A directory: the index file, else a listing, else 403; without its
 * trailing slash, a redirect so that relative links resolve. */
static void static_directory(struct http_exchange *ex, const struct http_static *files, struct static_file *file,
			     char *rel, bool trailing_slash)
{
	const struct http_request *req = &ex->request;
	size_t rel_len = strlen(rel);
	char index[PATH_MAX];
	struct static_file found = { .fd = -1 };

	/* The route's own directory too: "/files" for route "/files". */
	if (!trailing_slash || req->path_len == 0 || req->path[req->path_len - 1] != '/') {
		static_file_release(file);
		http_respond_add_slash(ex);
		return;
	}
	if ((size_t)snprintf(index, sizeof(index), "%s%s%s", rel, rel_len ? "/" : "", files->index) >= sizeof(index)) {
		static_file_release(file);
		http_respond_error(ex, 404, "The requested path was not found on this server.");
		return;
	}
	if (static_open(files, index, http_started_ns(ex), &found) == 0 && found.segment != NULL) {
		static_file_release(file);
		*file = found;
		file->name = files->index;
		file->name_len = strlen(files->index);
		static_try_gzip(ex, files, index, file);
		static_send(ex, files, file);
		return;
	}
	static_file_release(&found);
	if (!files->autoindex) {
		static_file_release(file);
		http_respond_error(ex, 403, "This directory has no index and listing is off.");
		return;
	}
	static_listing(ex, file->fd);
}

static void static_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	const struct http_static *files = &route->files;
	const struct http_request *req = &ex->request;
	size_t skip = route->prefix[route->prefix_len - 1] == '/' ? route->prefix_len - 1 : route->prefix_len;
	char rel[PATH_MAX];
	bool trailing_slash;
	struct static_file file = { .fd = -1 };

	(void)route_state;
	if (!static_clean_path(req->path + skip, req->path_len - skip, rel, sizeof(rel), &trailing_slash)) {
		http_respond_error(ex, 400, "The path is malformed or leaves the document root.");
		return;
	}
	if (static_open(files, rel, http_started_ns(ex), &file) < 0) {
		if (errno == EXDEV || errno == ELOOP)
			conn_log(ex->conn, LOG_DEBUG, "refused %s: resolves outside the root", rel);
		static_not_found(ex, errno);
		return;
	}
	if (S_ISDIR(file.st.st_mode)) {
		static_directory(ex, files, &file, rel, trailing_slash);
		return;
	}
	if (file.segment == NULL) {
		static_file_release(&file);
		static_not_found(ex, ENOENT);
		return;
	}
	file.name = rel;
	file.name_len = strlen(rel);
	static_try_gzip(ex, files, rel, &file);
	static_send(ex, files, &file);
}

const struct http_handler http_handler_static = {
	.name = "static",
	.options = (const char *const[]){ "root", "index", "autoindex", "follow-symlinks", "precompressed", "open-files",
					  "prepared-max", NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.configure = static_configure,
	.free = static_free,
	.serve = static_serve,
};
