/* The url kind: an HTTP(S) or Icecast stream fetched with libcurl.
 *
 * Each source has its own curl multi handle, driven by the source's
 * event_base: curl says which sockets to watch (CURLMOPT_SOCKETFUNCTION)
 * and when to wake it (CURLMOPT_TIMERFUNCTION), libevent does the waiting.
 * One multi per source rather than one per event_base: a source runs a
 * single long transfer to its own server, so a shared multi would share
 * nothing worth having (no connection reuse between different servers),
 * while per-source handles need no registry keyed by base, no reference
 * counting across reloads, and a stop() that frees everything it owns.
 *
 * Whatever ends a transfer (the server closing, a refusal, an error
 * status, a stall) leads to the same place: back off, then connect
 * again. Only bodies of 2xx responses reach the buffer. */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "build_config.h"
#include "conf/conf.h"
#include "conf/tls.h"
#include "conf/text.h"
#include "daemon/log.h"
#include "sources/icy.h"
#include "sources/kind.h"

/* A socket curl asked us to watch. Kept on a list too, so that stop()
 * frees any that curl_multi_cleanup() closes without telling us. */
struct url_socket {
	struct url_source *us;
	struct event *ev;
	struct url_socket *next;
};

struct url_source {
	struct source *src;
	CURLM *multi;
	CURL *easy;				/* the transfer; NULL while backing off */
	struct event *curl_timer;		/* curl's own timeouts */
	struct event *retry;			/* the end of a back-off */
	struct url_socket *sockets;
	struct curl_slist *request_headers;	/* Icy-MetaData: 1 */
	struct curl_slist *status_aliases;	/* ICY 200 OK */
	unsigned connects;
	unsigned failures_in_a_row;
	long last_kind;			/* the kind of end last logged (end_kind) */
	/* The transfer in progress. */
	long status;				/* of the latest response's status line */
	size_t metaint;
	bool headers_done;			/* of the final response; trailers follow a chunked body */
	bool delivered, rejected, paused;
	char error[CURL_ERROR_SIZE];
	struct icy_demux icy;
};

static void connect_now(struct url_source *us);
static void collect_finished(struct url_source *us);

static bool curl_ready(void)
{
	static bool done, ok;

	if (!done) {
		ok = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK;
		done = true;
	}
	return ok;
}

static bool status_ok(long status)
{
	return status >= 200 && status <= 299;
}

/* The URL, safe for a log line. */
static const char *shown_url(const struct url_source *us, char *out, size_t cap)
{
	const char *url = us->src->conf->url;

	text_escape(url, strlen(url), out, cap);
	return out;
}

/* ---- curl's sockets and timer on the event loop ---- */

static void on_socket_ready(evutil_socket_t fd, short what, void *arg)
{
	struct url_socket *watch = arg;
	struct url_source *us = watch->us;	/* watch may be freed below */
	int flags = 0, running;

	if (what & EV_READ)
		flags |= CURL_CSELECT_IN;
	if (what & EV_WRITE)
		flags |= CURL_CSELECT_OUT;
	curl_multi_socket_action(us->multi, fd, flags, &running);
	collect_finished(us);
}

static void forget_socket(struct url_source *us, struct url_socket *watch)
{
	for (struct url_socket **at = &us->sockets; *at; at = &(*at)->next) {
		if (*at == watch) {
			*at = watch->next;
			break;
		}
	}
	event_free(watch->ev);
	free(watch);
}

static struct url_socket *watch_socket(struct url_source *us, curl_socket_t fd)
{
	struct url_socket *watch = calloc(1, sizeof(*watch));

	if (!watch)
		return NULL;
	watch->us = us;
	watch->ev = event_new(us->src->base, fd, 0, on_socket_ready, watch);
	if (!watch->ev) {
		free(watch);
		return NULL;
	}
	watch->next = us->sockets;
	us->sockets = watch;
	curl_multi_assign(us->multi, fd, watch);
	return watch;
}

static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
	struct url_source *us = userp;
	struct url_socket *watch = socketp;
	short events = EV_PERSIST;

	if (what == CURL_POLL_REMOVE) {
		if (watch)
			forget_socket(us, watch);
		return 0;
	}
	if (!watch && !(watch = watch_socket(us, fd)))
		return -1;
	if (what & CURL_POLL_IN)
		events |= EV_READ;
	if (what & CURL_POLL_OUT)
		events |= EV_WRITE;
	event_del(watch->ev);
	event_assign(watch->ev, us->src->base, fd, events, on_socket_ready, watch);
	return event_add(watch->ev, NULL);
}

static void on_curl_timer_expired(evutil_socket_t fd, short what, void *arg)
{
	struct url_source *us = arg;
	int running;

	curl_multi_socket_action(us->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	collect_finished(us);
}

/* curl must not be called back into from here, so even a timeout of 0
 * goes through the loop. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
	struct url_source *us = userp;
	struct timeval tv;

	if (timeout_ms < 0)
		return evtimer_del(us->curl_timer);
	tv.tv_sec = timeout_ms / 1000;
	tv.tv_usec = (timeout_ms % 1000) * 1000;
	return evtimer_add(us->curl_timer, &tv);
}

/* ---- one response ---- */

/* "HTTP/1.1 200 OK" or SHOUTcast's "ICY 200 OK". */
static bool is_status_line(const char *line, size_t len)
{
	return (len >= 5 && memcmp(line, "HTTP/", 5) == 0) || (len >= 4 && memcmp(line, "ICY ", 4) == 0);
}

/* The number of up to 9 digits at line[at], or 0. */
static size_t number_at(const char *line, size_t len, size_t at)
{
	size_t value = 0, digits = 0;

	while (at < len && (line[at] == ' ' || line[at] == '\t'))
		at++;
	for (; at < len && line[at] >= '0' && line[at] <= '9' && digits < 9; at++, digits++)
		value = value * 10 + (size_t)(line[at] - '0');
	return value;
}

static long status_of(const char *line, size_t len)
{
	const char *space = memchr(line, ' ', len);

	return space ? (long)number_at(line, len, (size_t)(space - line)) : 0;
}

/* The value of header name in line ("Name: value\r\n"), as an offset. */
static bool header_is(const char *line, size_t len, const char *name, size_t *value_at)
{
	size_t name_len = strlen(name);

	if (len <= name_len || line[name_len] != ':' || strncasecmp(line, name, name_len) != 0)
		return false;
	*value_at = name_len + 1;
	return true;
}

static bool is_blank_line(const char *line, size_t len)
{
	return (len == 2 && line[0] == '\r' && line[1] == '\n') || (len == 1 && line[0] == '\n');
}

static void response_begins(struct url_source *us)
{
	char url[256];

	icy_demux_init(&us->icy, us->metaint);
	if (us->src->conf->icecast)
		source_set_state(us->src, "connected", LOG_INFO, "connected to %s, metadata every %zu bytes%s",
				 shown_url(us, url, sizeof(url)), us->metaint, us->metaint ? "" : " (none sent)");
	else
		source_set_state(us->src, "connected", LOG_INFO, "connected to %s",
				 shown_url(us, url, sizeof(url)));
}

/* Called for every header line of every response, redirects included:
 * each status line starts a response afresh. */
static size_t on_header(char *line, size_t size, size_t nmemb, void *arg)
{
	struct url_source *us = arg;
	size_t len = size * nmemb, value_at;

	if (is_status_line(line, len)) {
		us->status = status_of(line, len);
		us->metaint = 0;
		us->headers_done = false;
	} else if (us->src->conf->icecast && header_is(line, len, "icy-metaint", &value_at)) {
		us->metaint = number_at(line, len, value_at);
	} else if (is_blank_line(line, len) && status_ok(us->status) && !us->headers_done) {
		us->headers_done = true;
		response_begins(us);
	}
	return len;
}

static void on_metadata(void *arg, const char *block, size_t len)
{
	struct url_source *us = arg;
	const char *title, *old = source_title(us->src);
	size_t title_len;
	char shown[512];

	if (!icy_parse_field(block, len, "StreamTitle", &title, &title_len))
		return;
	if (old && strlen(old) == title_len && memcmp(old, title, title_len) == 0)
		return;
	source_set_title(us->src, title, title_len);
	text_escape(title, title_len, shown, sizeof(shown));
	log_write(LOG_INFO, &(struct log_context){.stream = us->src->unit}, "source: title \"%s\"", shown);
}

static void delivered(struct url_source *us, size_t added)
{
	us->src->counters.bytes += added;
	if (!us->delivered) {
		us->delivered = true;
		us->failures_in_a_row = 0;
		us->last_kind = 0;	/* the next end is news again */
	}
	source_arrived(us->src);
}

/* An error status's body (an error page) is never taken for content.
 * While the buffer is full the transfer pauses: curl keeps this chunk
 * and reads no more until resume(). */
static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct url_source *us = arg;
	struct evbuffer *buffer = us->src->buffer;
	size_t len = size * nmemb, before;
	int rc;

	if (!status_ok(us->status)) {
		us->rejected = true;
		return CURL_WRITEFUNC_ERROR;
	}
	if (source_full(us->src)) {
		us->paused = true;
		return CURL_WRITEFUNC_PAUSE;
	}
	before = evbuffer_get_length(buffer);
	if (us->src->conf->icecast)
		rc = icy_demux_feed(&us->icy, data, len, buffer, on_metadata, us);
	else
		rc = evbuffer_add(buffer, data, len);
	if (evbuffer_get_length(buffer) > before)
		delivered(us, evbuffer_get_length(buffer) - before);
	return rc < 0 ? CURL_WRITEFUNC_ERROR : len;
}

/* ---- transfers ---- */

/* https: TLS 1.2 at least, as on every TLS side of the daemon; the
 * server checked against the system's CAs unless tls { } says otherwise. */
static bool set_tls_options(const struct conf_tls_client *tls, CURL *easy)
{
	long version = tls != NULL && tls->min_tls13 ? CURL_SSLVERSION_TLSv1_3 : CURL_SSLVERSION_TLSv1_2;
	bool ok = true;

	if (tls != NULL && tls->max_tls12)
		version |= CURL_SSLVERSION_MAX_TLSv1_2;
	ok &= curl_easy_setopt(easy, CURLOPT_SSLVERSION, version) == CURLE_OK;
	if (tls == NULL)
		return ok;
	ok &= curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, tls->verify ? 1L : 0L) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, tls->verify ? 2L : 0L) == CURLE_OK;
	if (tls->ca != NULL)
		ok &= curl_easy_setopt(easy, CURLOPT_CAINFO, tls->ca) == CURLE_OK;
	if (tls->certificate != NULL) {
		ok &= curl_easy_setopt(easy, CURLOPT_SSLCERT, tls->certificate) == CURLE_OK;
		ok &= curl_easy_setopt(easy, CURLOPT_SSLKEY, tls->key) == CURLE_OK;
	}
	ok &= curl_easy_setopt(easy, CURLOPT_SSL_CIPHER_LIST, tls->ciphers) == CURLE_OK;
	return ok;
}

static bool set_transfer_options(struct url_source *us, CURL *easy)
{
	const struct conf_source *conf = us->src->conf;
	long stall_s = (long)((conf->low_speed_time_ms + 999) / 1000);
	bool ok = true;

	ok &= curl_easy_setopt(easy, CURLOPT_URL, conf->url) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_REDIR_PROTOCOLS_STR, "http,https") == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_FOLLOWLOCATION, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_MAXREDIRS, (long)conf->max_redirects) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS, (long)conf->connect_timeout_ms) == CURLE_OK;
	if (stall_s > 0) {
		ok &= curl_easy_setopt(easy, CURLOPT_LOW_SPEED_LIMIT, 1L) == CURLE_OK;
		ok &= curl_easy_setopt(easy, CURLOPT_LOW_SPEED_TIME, stall_s) == CURLE_OK;
	}
	ok &= curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_USERAGENT, "chassisd/" CHASSISD_VERSION) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, us->error) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, on_header) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_HEADERDATA, us) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK;
	ok &= curl_easy_setopt(easy, CURLOPT_WRITEDATA, us) == CURLE_OK;
	ok &= set_tls_options(conf->tls, easy);
	if (conf->icecast) {
		ok &= curl_easy_setopt(easy, CURLOPT_HTTPHEADER, us->request_headers) == CURLE_OK;
		/* SHOUTcast answers "ICY 200 OK". An alias makes curl read it
		 * as a status line; HTTP/0.9 mode would not do: it takes the
		 * whole response, headers included, for the body. */
		ok &= curl_easy_setopt(easy, CURLOPT_HTTP200ALIASES, us->status_aliases) == CURLE_OK;
	}
	return ok;
}

static void begin_transfer_state(struct url_source *us)
{
	us->status = 0;
	us->metaint = 0;
	us->headers_done = false;
	us->delivered = false;
	us->rejected = false;
	us->paused = false;
	us->error[0] = '\0';
	icy_demux_init(&us->icy, 0);
}

static void drop_transfer(struct url_source *us)
{
	if (!us->easy)
		return;
	curl_multi_remove_handle(us->multi, us->easy);
	curl_easy_cleanup(us->easy);
	us->easy = NULL;
	us->paused = false;
}

/* Why the transfer ended, for the log; empty when it ended as a live
 * stream ends. */
static void describe_end(const struct url_source *us, CURLcode result, char *out, size_t cap)
{
	char error[CURL_ERROR_SIZE];

	if (us->rejected || (result == CURLE_OK && !status_ok(us->status)))
		snprintf(out, cap, "HTTP status %ld", us->status);
	else if (result != CURLE_OK)
		snprintf(out, cap, "%s", us->error[0] ? us->error : curl_easy_strerror(result));
	else if (!us->delivered)
		snprintf(out, cap, "the server sent nothing");
	else
		snprintf(out, cap, "the server ended the stream");
	text_escape(out, strlen(out), error, sizeof(error));
	snprintf(out, cap, "%s", error);
}

/* What kind of end it was, for logging each kind once: curl's message
 * text carries timings ("after 1001 ms") that differ on every try. */
static long end_kind(const struct url_source *us, CURLcode result)
{
	if (us->rejected || (result == CURLE_OK && !status_ok(us->status)))
		return 100000 + us->status;
	if (result != CURLE_OK)
		return result;
	return us->delivered ? -1 : -2;
}

static void back_off(struct url_source *us, bool failed, long kind, const char *why)
{
	unsigned delay;
	struct timeval tv;

	if (failed)
		us->src->counters.failures++;
	us->failures_in_a_row++;
	delay = source_backoff_ms(us->src, us->failures_in_a_row);
	/* A reason is logged when it changes (the origin went away, then
	 * refuses): a source that keeps failing the same way logs once;
	 * each try's own reason and delay are for debugging. */
	if (kind != us->last_kind) {
		log_write(failed ? LOG_WARNING : LOG_NOTICE, &(struct log_context){.stream = us->src->unit},
			  "source: %s; retrying with back-off", why);
		us->last_kind = kind;
	}
	us->src->state = "backing off";
	log_write(LOG_DEBUG, &(struct log_context){.stream = us->src->unit}, "source: %s; next try in %u ms", why,
		  delay);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(us->retry, &tv);
}

static void transfer_ended(struct url_source *us, CURLcode result)
{
	bool failed = result != CURLE_OK || us->rejected || !status_ok(us->status) || !us->delivered;
	char why[CURL_ERROR_SIZE + 64];

	describe_end(us, result, why, sizeof(why));
	back_off(us, failed, end_kind(us, result), why);
	drop_transfer(us);
}

static void collect_finished(struct url_source *us)
{
	CURLMsg *msg;
	int left;
	bool ended = false;
	CURLcode result = CURLE_OK;

	while ((msg = curl_multi_info_read(us->multi, &left))) {
		if (msg->msg == CURLMSG_DONE && msg->easy_handle == us->easy) {
			ended = true;
			result = msg->data.result;
		}
	}
	if (ended)
		transfer_ended(us, result);
}

static void connect_now(struct url_source *us)
{
	char url[256];

	if (us->connects++ > 0) {
		us->src->counters.restarts++;
		source_mark_discontinuity(us->src);
	}
	begin_transfer_state(us);
	/* The last title named what the last transfer played. */
	source_set_title(us->src, NULL, 0);
	us->easy = curl_easy_init();
	if (!us->easy || !set_transfer_options(us, us->easy) ||
	    curl_multi_add_handle(us->multi, us->easy) != CURLM_OK) {
		drop_transfer(us);
		back_off(us, true, -3, "libcurl could not start a transfer");
		return;
	}
	/* A source that keeps failing stays "backing off" through its tries,
	 * so that it logs once, not twice per try. */
	if (us->failures_in_a_row == 0)
		source_set_state(us->src, "connecting", LOG_INFO, "connecting to %s", shown_url(us, url, sizeof(url)));
}

static void on_retry(evutil_socket_t fd, short what, void *arg)
{
	connect_now(arg);
}

/* ---- the kind's hooks ---- */

static void free_url_source(struct url_source *us)
{
	drop_transfer(us);
	if (us->multi)
		curl_multi_cleanup(us->multi);
	while (us->sockets)
		forget_socket(us, us->sockets);
	if (us->curl_timer)
		event_free(us->curl_timer);
	if (us->retry)
		event_free(us->retry);
	curl_slist_free_all(us->request_headers);
	curl_slist_free_all(us->status_aliases);
	free(us);
}

static bool make_multi(struct url_source *us)
{
	us->multi = curl_multi_init();
	return us->multi && curl_multi_setopt(us->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket) == CURLM_OK &&
	       curl_multi_setopt(us->multi, CURLMOPT_SOCKETDATA, us) == CURLM_OK &&
	       curl_multi_setopt(us->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer) == CURLM_OK &&
	       curl_multi_setopt(us->multi, CURLMOPT_TIMERDATA, us) == CURLM_OK;
}

static bool make_icecast_lists(struct url_source *us)
{
	us->request_headers = curl_slist_append(NULL, "Icy-MetaData: 1");
	us->status_aliases = curl_slist_append(NULL, "ICY 200");
	return us->request_headers && us->status_aliases;
}

static int url_start(struct source *src, char *err, size_t err_len)
{
	struct url_source *us;

	if (!curl_ready()) {
		snprintf(err, err_len, "libcurl could not be initialised");
		return -1;
	}
	us = calloc(1, sizeof(*us));
	if (!us) {
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	us->src = src;
	us->curl_timer = evtimer_new(src->base, on_curl_timer_expired, us);
	us->retry = evtimer_new(src->base, on_retry, us);
	if (!us->curl_timer || !us->retry || !make_multi(us) || (src->conf->icecast && !make_icecast_lists(us))) {
		free_url_source(us);
		snprintf(err, err_len, "out of memory");
		return -1;
	}
	src->kind = us;
	connect_now(us);
	return 0;
}

static void url_resume(struct source *src)
{
	struct url_source *us = src->kind;
	CURLcode rc;

	if (!us->easy || !us->paused)
		return;
	us->paused = false;
	/* curl may hand the chunk it kept to on_body() right here. */
	rc = curl_easy_pause(us->easy, CURLPAUSE_CONT);
	if (rc != CURLE_OK)
		transfer_ended(us, rc);
}

static void url_stop(struct source *src)
{
	if (src->kind != NULL)
		free_url_source(src->kind);
	src->kind = NULL;
}

const struct source_ops source_url_ops = {
	.start = url_start,
	.resume = url_resume,
	.stop = url_stop,
};
