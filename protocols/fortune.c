/* Fortune (RFC 865, quote of the day) over tcp and udp.
 *
 * Kamaelia's FortuneCookieProtocol ran `fortune` through a shell, relative
 * to the working directory, and dribbled it at 40 B/s. Here the source is
 * either a program run by the child runner (argv, timeout, output cap,
 * caps on children) or a %-separated fortune file loaded at start and
 * reload and served from memory. Teletype pacing is an option, off by
 * default.
 *
 * Over udp a datagram must not be able to start a process: that would let
 * anyone with a spoofed source fork programs at line rate. In command
 * mode a udp listener keeps a few fortunes ready, refilled by children
 * under the same caps, and drops (and counts) requests when none is. */
#include <errno.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/file.h"
#include "daemon/log.h"
#include "daemon/protocol.h"
#include "protocols/bodies.h"
#include "protocols/support/child_spec.h"
#include "protocols/support/feed.h"
#include "protocols/support/oneshot.h"

#define FORTUNE_FILE_MAX ((size_t)16 << 20)
#define FORTUNE_UDP_MAX 512		/* RFC 865 */
#define FORTUNE_UDP_READY 8

static const char *const fortune_default_command[] = { "/usr/games/fortune", "-s", NULL };

cfg_opt_t fortune_options[] = {
	CHILD_OPTIONS(65536),
	CFG_STR("file", NULL, CFGF_NODEFAULT),
	CFG_INT("rate", 0, CFGF_NONE),
	CFG_END()
};

struct fortune_text {
	char *text;
	size_t len;
};

struct fortune_settings {
	struct child_spec child;	/* command mode */
	struct fortune_text *entries;	/* file mode */
	size_t n_entries;
	unsigned long rate;		/* bytes per second, 0 unpaced */
	bool udp;
};

struct fortune_state;

/* One program running to top up the ready fortunes (udp, command mode). */
struct fortune_refill {
	struct fortune_state *state;
	struct feed *feed;
	struct evbuffer *text;
};

struct fortune_state {
	const struct fortune_settings *settings;
	struct event_base *base;
	char *listener;
	struct child_pool *pool;
	struct oneshot_counters counters;
	unsigned long long not_ready;
	/* udp, command mode */
	struct fortune_text ready[FORTUNE_UDP_READY];
	size_t n_ready;
	struct fortune_refill refills[FORTUNE_UDP_READY];
};

/* --- configuration -------------------------------------------------- */

static void fortune_settings_free(void *p)
{
	struct fortune_settings *settings = p;

	if (settings == NULL)
		return;
	child_spec_free(&settings->child);
	for (size_t i = 0; i < settings->n_entries; i++)
		free(settings->entries[i].text);
	free(settings->entries);
	free(settings);
}

static bool fortune_add_entry(struct fortune_settings *settings, const char *text, size_t len)
{
	struct fortune_text *grown;

	while (len > 0 && (text[0] == '\n' || text[0] == '\r')) {
		text++;
		len--;
	}
	if (len == 0)
		return true;
	grown = realloc(settings->entries, (settings->n_entries + 1) * sizeof(*grown));
	if (grown == NULL)
		return false;
	settings->entries = grown;
	grown[settings->n_entries].text = strndup(text, len);
	grown[settings->n_entries].len = len;
	return grown[settings->n_entries++].text != NULL;
}

/* Entries are separated by lines holding only "%" (strfile's format). */
static bool fortune_split(struct fortune_settings *settings, const char *text, size_t len)
{
	size_t start = 0, pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t end = nl ? (size_t)(nl - text) + 1 : len;
		size_t line_len = end - pos - (nl ? 1 : 0);

		if (line_len == 1 && text[pos] == '%') {
			if (!fortune_add_entry(settings, text + start, pos - start))
				return false;
			start = end;
		}
		pos = end;
	}
	return fortune_add_entry(settings, text + start, len - start);
}

static bool fortune_load_file(struct fortune_settings *settings, const char *path, struct conf_scope *scope)
{
	char err[160];
	size_t len;
	char *text = file_read_bounded(path, FORTUNE_FILE_MAX, &len, err, sizeof(err));
	bool ok;

	if (text == NULL) {
		conf_scope_error(scope, "file", "cannot load fortunes from %s: %s", path, err);
		return false;
	}
	ok = fortune_split(settings, text, len);
	free(text);
	if (ok && settings->n_entries == 0) {
		conf_scope_error(scope, "file", "no fortunes in %s", path);
		ok = false;
	}
	return ok;
}

static void *fortune_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct fortune_settings *settings = calloc(1, sizeof(*settings));
	const char *file = cfg_getstr(sec, "file");
	long rate = cfg_getint(sec, "rate");
	bool ok;

	if (settings == NULL)
		return NULL;
	settings->udp = conf_scope_transport(scope) != TRANSPORT_TCP;
	if (file != NULL && cfg_size(sec, "command") > 0) {
		conf_scope_error(scope, "file", "give either file or command, not both");
		ok = false;
	} else if (file != NULL) {
		ok = fortune_load_file(settings, file, scope);
	} else {
		ok = child_spec_configure(&settings->child, sec, scope, fortune_default_command);
	}
	if (rate < 0 || rate > 1000000000) {
		conf_scope_error(scope, "rate", "rate must be from 0 (unpaced) to 1000000000 bytes/s");
		ok = false;
	}
	settings->rate = (unsigned long)rate;
	if (!ok) {
		fortune_settings_free(settings);
		return NULL;
	}
	return settings;
}

/* --- udp -------------------------------------------------------------- */

/* One datagram of at most 512 bytes, cut after a whole line if it can be. */
static size_t fortune_udp_length(const char *text, size_t len)
{
	size_t cut;

	if (len <= FORTUNE_UDP_MAX)
		return len;
	for (cut = FORTUNE_UDP_MAX; cut > 0 && text[cut - 1] != '\n'; cut--)
		;
	return cut > 0 ? cut : FORTUNE_UDP_MAX;
}

static void fortune_refill(struct fortune_state *state);

static void refill_write(void *arg, struct evbuffer *data)
{
	struct fortune_refill *refill = arg;

	evbuffer_add_buffer(refill->text, data);
}

static int refill_write_file(void *arg, int fd, off_t offset, off_t len)
{
	(void)arg;
	(void)fd;
	(void)offset;
	(void)len;
	return -1;			/* a child's output is never a file */
}

static void refill_done(void *arg, bool ok, const char *why);

static const struct feed_sink refill_sink = {
	.write = refill_write,
	.write_file = refill_write_file,
	.done = refill_done,
};

static void refill_done(void *arg, bool ok, const char *why)
{
	struct fortune_refill *refill = arg;
	struct fortune_state *state = refill->state;
	size_t len = evbuffer_get_length(refill->text);

	refill->feed = NULL;
	if (ok && len > 0 && state->n_ready < FORTUNE_UDP_READY) {
		char *text = malloc(len);

		if (text != NULL) {
			evbuffer_remove(refill->text, text, len);
			state->ready[state->n_ready++] = (struct fortune_text){ text, len };
		}
	} else if (!ok) {
		struct log_context ctx = { .listener = state->listener };

		state->counters.failed++;
		log_write(LOG_WARNING, &ctx, "fortune failed: %s", why);
	}
	evbuffer_drain(refill->text, evbuffer_get_length(refill->text));
	/* A failing program must not be respawned in a tight loop: the next
	 * request asks again. */
	if (ok)
		fortune_refill(state);
}

static void fortune_refill(struct fortune_state *state)
{
	size_t running = 0;
	char err[160];

	for (size_t i = 0; i < FORTUNE_UDP_READY; i++)
		running += state->refills[i].feed != NULL;
	for (size_t i = 0; i < FORTUNE_UDP_READY && state->n_ready + running < FORTUNE_UDP_READY; i++) {
		struct fortune_refill *refill = &state->refills[i];

		if (refill->feed != NULL)
			continue;
		refill->feed = feed_command(state->base, &state->settings->child, state->pool, state->listener, 0,
					    &refill_sink, refill, err, sizeof(err));
		if (refill->feed == NULL)
			return;
		running++;
	}
}

static void fortune_datagram(struct datagram *dgram)
{
	const struct fortune_settings *settings = datagram_settings(dgram);
	struct fortune_state *state = datagram_service_state(dgram);
	struct fortune_text pick;

	if (datagram_source_is_reflector(dgram)) {
		datagram_drop(dgram, "reflector source");
		return;
	}
	if (settings->n_entries > 0) {
		pick = settings->entries[arc4random_uniform((uint32_t)settings->n_entries)];
		datagram_reply(dgram, pick.text, fortune_udp_length(pick.text, pick.len));
		state->counters.served++;
		return;
	}
	if (state->n_ready == 0) {
		state->not_ready++;
		datagram_drop(dgram, "no fortune ready yet");
		fortune_refill(state);
		return;
	}
	pick = state->ready[--state->n_ready];
	datagram_reply(dgram, pick.text, fortune_udp_length(pick.text, pick.len));
	free(pick.text);
	state->counters.served++;
	fortune_refill(state);
}

/* --- tcp -------------------------------------------------------------- */

static struct feed *fortune_body(void *p, const struct feed_sink *sink, void *arg, char *err, size_t err_len)
{
	struct fortune_state *state = p;
	const struct fortune_settings *settings = state->settings;
	struct feed *feed;

	if (settings->n_entries > 0) {
		const struct fortune_text *pick = &settings->entries[arc4random_uniform((uint32_t)settings->n_entries)];

		feed = feed_bytes(state->base, pick->text, pick->len, settings->rate, sink, arg);
		if (feed == NULL)
			snprintf(err, err_len, "out of memory");
		return feed;
	}
	return feed_command(state->base, &settings->child, state->pool, state->listener, settings->rate, sink, arg,
			    err, err_len);
}

static int fortune_open(struct conn *conn)
{
	struct fortune_state *state = conn_service_state(conn);

	return oneshot_conn_open(conn, &state->counters, "fortune", fortune_body, state,
				 state->settings->child.busy_message);
}

/* --- per listener ----------------------------------------------------- */

static void fortune_stop(void *p)
{
	struct fortune_state *state = p;

	for (size_t i = 0; i < FORTUNE_UDP_READY; i++) {
		if (state->refills[i].feed != NULL)
			feed_cancel(state->refills[i].feed);
		if (state->refills[i].text != NULL)
			evbuffer_free(state->refills[i].text);
	}
	for (size_t i = 0; i < state->n_ready; i++)
		free(state->ready[i].text);
	child_pool_release(state->pool);
	free(state->listener);
	free(state);
}

static void *fortune_start(const void *p, const struct unit_env *env)
{
	const struct fortune_settings *settings = p;
	struct fortune_state *state = calloc(1, sizeof(*state));
	bool ok;

	if (state == NULL)
		return NULL;
	state->settings = settings;
	state->base = env->base;
	state->listener = strdup(env->unit);
	state->pool = child_pool_new();
	ok = state->listener != NULL && state->pool != NULL;
	for (size_t i = 0; ok && i < FORTUNE_UDP_READY; i++) {
		state->refills[i].state = state;
		ok = (state->refills[i].text = evbuffer_new()) != NULL;
	}
	if (!ok) {
		fortune_stop(state);
		return NULL;
	}
	if (settings->udp && settings->n_entries == 0)
		fortune_refill(state);
	return state;
}

static void fortune_status(const void *p, char *buf, size_t len)
{
	const struct fortune_state *state = p;
	const struct child_pool *pool = state->pool;

	snprintf(buf, len,
		 "fortunes=%llu failed=%llu busy=%llu not_ready=%llu children=%u spawned=%llu timed_out=%llu cut=%llu",
		 state->counters.served, state->counters.failed, state->counters.busy, state->not_ready, pool->live, pool->spawned,
		 pool->timed_out, pool->cut);
}

const struct protocol protocol_fortune = {
	.config = {
		.name = "fortune",
		.transports = TRANSPORT_BIT(TRANSPORT_TCP) | TRANSPORT_BIT(TRANSPORT_UDP),
		.options = fortune_options,
		.configure = fortune_configure,
		.settings_free = fortune_settings_free,
	},
	.start = fortune_start,
	.stop = fortune_stop,
	.status = fortune_status,
	.conn = {
		.open = fortune_open,
		.input = oneshot_conn_input,
		.end_of_input = oneshot_conn_end_of_input,
		.drained = oneshot_conn_drained,
		.close = oneshot_conn_close,
	},
	.datagram = fortune_datagram,
	.body = fortune_body,
	.content_type = "text/plain; charset=utf-8",
};
