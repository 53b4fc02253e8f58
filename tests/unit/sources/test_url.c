/* sources/url.c against servers inside the test: an evhttp server on
 * 127.0.0.1 for bodies, error statuses and redirects, a raw listener
 * that answers like SHOUTcast ("ICY 200 OK"), and a port that refuses. */
#include <criterion/criterion.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "sources/icy.h"
#include "sources/source.h"

#define BODY_LEN (96 * 1024)
#define READ_AHEAD (16 * 1024)
#define MAX_REQUESTS 64

struct harness {
	struct event_base *base;
	struct evhttp *http;
	unsigned port;
	struct event *tick;
	struct source *src;
	struct evbuffer *taken;		/* what the "stream" took */
	bool drain;
	unsigned char body[BODY_LEN];
	/* requests the servers saw, and when */
	unsigned requests;
	double request_ms[MAX_REQUESTS];
	bool asked_for_metadata;
	unsigned low_speed_time_ms;
	/* failures as the source counted them, and when */
	uint64_t failures_seen;
	unsigned failure_times;
	double failure_ms[MAX_REQUESTS];
};

static struct harness h;

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000.0 + ts.tv_nsec / 1e6;
}

static void note_request(void)
{
	if (h.requests < MAX_REQUESTS)
		h.request_ms[h.requests] = now_ms();
	h.requests++;
}

/* ---- the audio that ICY servers send: metaint 16, then blocks ---- */

#define ICY_TITLE "It's a \xe9t\xe9; live"
#define ICY_AUDIO_LEN (16 * 4)

static void icy_stream(struct evbuffer *out)
{
	static const char *const blocks[] = {
		"StreamTitle='" ICY_TITLE "';StreamUrl='http://radio.example/';", "", "StreamTitle='" ICY_TITLE "';", ""};

	for (size_t i = 0; i < 4; i++) {
		size_t len = strlen(blocks[i]);
		unsigned char l = (unsigned char)((len + 15) / 16);
		char padded[ICY_META_MAX] = {0};

		evbuffer_add(out, h.body + i * 16, 16);
		memcpy(padded, blocks[i], len);
		evbuffer_add(out, &l, 1);
		evbuffer_add(out, padded, (size_t)l * 16);
	}
}

/* ---- the evhttp server ---- */

static void serve(struct evhttp_request *req, void *arg)
{
	const char *path = evhttp_request_get_uri(req);
	struct evkeyvalq *out_headers = evhttp_request_get_output_headers(req);
	struct evbuffer *out = evbuffer_new();

	note_request();
	if (evhttp_find_header(evhttp_request_get_input_headers(req), "Icy-MetaData"))
		h.asked_for_metadata = true;
	if (strcmp(path, "/body") == 0) {
		evbuffer_add(out, h.body, BODY_LEN);
		evhttp_send_reply(req, 200, "OK", out);
	} else if (strcmp(path, "/redirect") == 0) {
		evhttp_add_header(out_headers, "Location", "/body");
		evbuffer_add_printf(out, "moved");
		evhttp_send_reply(req, 302, "Found", out);
	} else if (strcmp(path, "/stall") == 0) {
		/* A byte, then silence with the connection open. */
		evhttp_send_reply_start(req, 200, "OK");
		evbuffer_add(out, h.body, 1);
		evhttp_send_reply_chunk(req, out);
	} else if (strcmp(path, "/icy") == 0) {
		evhttp_add_header(out_headers, "icy-metaint", "16");
		icy_stream(out);
		evhttp_send_reply(req, 200, "OK", out);
	} else {
		evbuffer_add_printf(out, "<html>an error page that is not audio</html>");
		evhttp_send_reply(req, 404, "Not Found", out);
	}
	evbuffer_free(out);
}

static unsigned bound_port(evutil_socket_t fd)
{
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);

	cr_assert_eq(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	return ntohs(sin.sin_port);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
	const struct source_counters *c = h.src ? source_counters(h.src) : NULL;

	if (c && c->failures > h.failures_seen) {
		if (h.failure_times < MAX_REQUESTS)
			h.failure_ms[h.failure_times++] = now_ms();
		h.failures_seen = c->failures;
	}
}

static void setup(void)
{
	struct evhttp_bound_socket *bound;
	struct timeval every_ms = {0, 1000};

	memset(&h, 0, sizeof(h));
	for (size_t i = 0; i < BODY_LEN; i++)
		h.body[i] = (unsigned char)(i * 7 + i / 251);
	h.base = event_base_new();
	h.http = evhttp_new(h.base);
	bound = evhttp_bind_socket_with_handle(h.http, "127.0.0.1", 0);
	cr_assert(bound);
	h.port = bound_port(evhttp_bound_socket_get_fd(bound));
	evhttp_set_gencb(h.http, serve, NULL);
	h.taken = evbuffer_new();
	h.drain = true;
	h.low_speed_time_ms = 5000;
	h.tick = event_new(h.base, -1, EV_PERSIST, on_tick, NULL);
	event_add(h.tick, &every_ms);
}

static void teardown(void)
{
	if (h.src)
		source_close(h.src);
	event_free(h.tick);
	evbuffer_free(h.taken);
	evhttp_free(h.http);
	event_base_free(h.base);
}

/* ---- the source under test ---- */

static void take_all(void)
{
	struct evbuffer *buffer = source_buffer(h.src);

	if (evbuffer_get_length(buffer) == 0)
		return;
	evbuffer_remove_buffer(buffer, h.taken, evbuffer_get_length(buffer));
	source_taken(h.src);
}

static void on_ready(void *arg)
{
	if (h.drain)
		take_all();
}

static void open_url(const char *url, bool icecast, unsigned backoff_ms, unsigned backoff_max_ms)
{
	struct conf_source conf = {
		.kind = SOURCE_URL,
		.url = (char *)url,
		.icecast = icecast,
		.read_ahead = READ_AHEAD,
		.connect_timeout_ms = 2000,
		.low_speed_time_ms = h.low_speed_time_ms,
		.max_redirects = 3,
		.backoff_ms = backoff_ms,
		.backoff_max_ms = backoff_max_ms,
	};
	struct unit_env env = {.base = h.base, .unit = "test"};
	char err[256] = "";

	h.src = source_open(&conf, &env, on_ready, NULL, err, sizeof(err));
	cr_assert(h.src, "source_open: %s", err);
}

static void open_path(const char *path, bool icecast, unsigned backoff_ms, unsigned backoff_max_ms)
{
	char url[128];

	snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", h.port, path);
	open_url(url, icecast, backoff_ms, backoff_max_ms);
}

static void run_ms(double ms)
{
	double until = now_ms() + ms;

	while (now_ms() < until)
		event_base_loop(h.base, EVLOOP_ONCE);
}

/* Runs the loop until done() or max_ms; true if done() came true. */
static bool run_until(bool (*done)(void), double max_ms)
{
	double until = now_ms() + max_ms;

	while (!done()) {
		if (now_ms() > until)
			return false;
		event_base_loop(h.base, EVLOOP_ONCE);
	}
	return true;
}

static bool whole_body_taken(void)
{
	return evbuffer_get_length(h.taken) >= BODY_LEN;
}

static bool first_byte_taken(void)
{
	return evbuffer_get_length(h.taken) >= 1;
}

static bool backing_off(void)
{
	return strcmp(source_state(h.src), "backing off") == 0;
}

static void assert_taken_is_body(void)
{
	cr_assert_eq(evbuffer_get_length(h.taken), BODY_LEN);
	cr_assert(memcmp(evbuffer_pullup(h.taken, -1), h.body, BODY_LEN) == 0, "the bytes differ from the body");
	cr_assert_eq(source_counters(h.src)->bytes, BODY_LEN);
}

TestSuite(url, .init = setup, .fini = teardown, .timeout = 30);

Test(url, a_body_arrives_byte_for_byte)
{
	open_path("/body", false, 200, 1000);
	cr_assert(run_until(whole_body_taken, 5000), "took %zu bytes", evbuffer_get_length(h.taken));
	cr_assert(run_until(backing_off, 2000), "the end of the body ends the transfer");
	assert_taken_is_body();
	cr_assert_eq(source_counters(h.src)->failures, 0, "a stream that ended is not a failure");
}

Test(url, a_full_buffer_pauses_the_transfer)
{
	h.drain = false;
	open_path("/body", false, 200, 1000);
	run_ms(300);
	cr_assert_geq(evbuffer_get_length(source_buffer(h.src)), READ_AHEAD / 2, "read ahead");
	cr_assert_leq(evbuffer_get_length(source_buffer(h.src)), READ_AHEAD + CURL_MAX_WRITE_SIZE,
		      "buffered %zu bytes", evbuffer_get_length(source_buffer(h.src)));
	h.drain = true;
	take_all();
	cr_assert(run_until(whole_body_taken, 5000), "took %zu bytes after the pause",
		  evbuffer_get_length(h.taken));
	assert_taken_is_body();
}

Test(url, a_redirect_is_followed_to_the_body)
{
	open_path("/redirect", false, 200, 1000);
	cr_assert(run_until(whole_body_taken, 5000), "took %zu bytes", evbuffer_get_length(h.taken));
	assert_taken_is_body();
	cr_assert_eq(h.requests, 2, "the 302, then the body");
}

static bool two_requests(void)
{
	return h.requests >= 2;
}

Test(url, a_404_appends_nothing_and_is_retried_after_the_back_off)
{
	open_path("/missing", false, 150, 1000);
	cr_assert(run_until(backing_off, 2000));
	cr_assert_eq(source_counters(h.src)->failures, 1);
	cr_assert_eq(source_counters(h.src)->bytes, 0);
	cr_assert_eq(evbuffer_get_length(source_buffer(h.src)), 0, "the error page is not content");
	cr_assert_eq(h.requests, 1, "no retry before the back-off");
	cr_assert(run_until(two_requests, 2000), "retried");
	cr_assert_geq(h.request_ms[1] - h.request_ms[0], 150 * 0.75, "retried after %.0f ms",
		      h.request_ms[1] - h.request_ms[0]);
	cr_assert_eq(evbuffer_get_length(h.taken), 0);
}

Test(url, a_stalled_transfer_fails_and_backs_off)
{
	h.low_speed_time_ms = 1000;
	open_path("/stall", false, 200, 1000);
	cr_assert(run_until(first_byte_taken, 1000));
	cr_assert_str_eq(source_state(h.src), "connected");
	/* curl averages the speed over a few seconds: 1 byte takes over a
	 * second to fall below 1 byte/s, then 1 s more makes a stall. */
	cr_assert(run_until(backing_off, 8000), "below 1 byte/s for 1 s is a stall");
	cr_assert_eq(source_counters(h.src)->failures, 1);
	cr_assert_eq(source_counters(h.src)->bytes, 1);
}

/* The title while the stream plays: the server closes right after, and a
 * source that backs off has no title. */
static char seen_title[256];

static bool audio_taken(void)
{
	const char *title = source_title(h.src);

	if (title != NULL)
		snprintf(seen_title, sizeof(seen_title), "%s", title);
	return evbuffer_get_length(h.taken) >= ICY_AUDIO_LEN;
}

static void assert_icy_result(void)
{
	const char *title = seen_title[0] ? seen_title : NULL;

	cr_assert(h.asked_for_metadata, "Icy-MetaData: 1 was sent");
	cr_assert_eq(evbuffer_get_length(h.taken), ICY_AUDIO_LEN, "audio only: %zu bytes",
		     evbuffer_get_length(h.taken));
	cr_assert(memcmp(evbuffer_pullup(h.taken, -1), h.body, ICY_AUDIO_LEN) == 0);
	cr_assert_eq(source_counters(h.src)->bytes, ICY_AUDIO_LEN);
	cr_assert(title);
	cr_assert_str_eq(title, ICY_TITLE, "the title as sent, undecoded");
}

Test(url, icecast_over_http_strips_metadata_and_sets_the_title)
{
	open_path("/icy", true, 200, 1000);
	cr_assert(run_until(audio_taken, 5000), "took %zu bytes", evbuffer_get_length(h.taken));
	run_ms(50);
	assert_icy_result();
}

/* ---- a SHOUTcast-like server: ICY 200 OK ---- */

static void icy_request_read(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);
	struct evbuffer_ptr end = evbuffer_search(in, "\r\n\r\n", 4, NULL);
	struct evbuffer *reply;

	if (end.pos < 0)
		return;
	note_request();
	if (evbuffer_search(in, "Icy-MetaData: 1\r\n", 17, NULL).pos >= 0)
		h.asked_for_metadata = true;
	evbuffer_drain(in, evbuffer_get_length(in));
	reply = bufferevent_get_output(bev);
	evbuffer_add_printf(reply, "ICY 200 OK\r\nicy-name: test\r\nicy-metaint: 16\r\n\r\n");
	icy_stream(reply);
}

/* Closes once the reply is out, like a server going away. */
static void icy_reply_sent(struct bufferevent *bev, void *arg)
{
	if (h.requests > 0 && evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		bufferevent_free(bev);
}

static void icy_closed(struct bufferevent *bev, short what, void *arg)
{
	bufferevent_free(bev);
}

static void icy_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *peer, int len, void *arg)
{
	struct bufferevent *bev = bufferevent_socket_new(h.base, fd, BEV_OPT_CLOSE_ON_FREE);

	bufferevent_setcb(bev, icy_request_read, icy_reply_sent, icy_closed, NULL);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
}

Test(url, shoutcast_icy_200_ok_status_line_is_accepted)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	struct evconnlistener *l = evconnlistener_new_bind(h.base, icy_accept, NULL, LEV_OPT_CLOSE_ON_FREE, -1,
							   (struct sockaddr *)&sin, sizeof(sin));
	char url[128];

	cr_assert(l);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/stream", bound_port(evconnlistener_get_fd(l)));
	open_url(url, true, 200, 1000);
	cr_assert(run_until(audio_taken, 5000), "took %zu bytes", evbuffer_get_length(h.taken));
	run_ms(50);
	assert_icy_result();
	source_close(h.src);
	h.src = NULL;
	evconnlistener_free(l);
}

/* ---- nobody there ---- */

Test(url, a_refused_connection_backs_off_longer_each_time)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	char url[128];

	/* Bound but not listening: connecting is refused, and no other test
	 * can take the port meanwhile. */
	cr_assert_eq(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/", bound_port(fd));
	open_url(url, false, 20, 320);
	run_ms(1500);
	close(fd);
	/* 20, 40, 80, 160, 320, 320... ms (+ jitter) fit 5 to 8 tries in
	 * 1.5 s; a busy loop would make thousands. */
	cr_assert_geq(h.failure_times, 4, "%u tries", h.failure_times);
	cr_assert_leq(h.failure_times, 10, "%u tries", h.failure_times);
	cr_assert_eq(source_counters(h.src)->failures, h.failures_seen);
	cr_assert_str_eq(source_state(h.src), "backing off");
	for (unsigned i = 2; i + 1 < h.failure_times && i < 4; i++)
		cr_assert_gt(h.failure_ms[i + 1] - h.failure_ms[i], h.failure_ms[i - 1] - h.failure_ms[i - 2],
			     "the delays grow: try %u", i);
	cr_assert_eq(source_counters(h.src)->bytes, 0);
}
