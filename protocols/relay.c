/* Relay: each accepted connection gets its own connection to an upstream,
 * and bytes flow both ways. Kamaelia's TCPClient as a daemon, what xinetd
 * calls `redirect` and nginx `stream { proxy_pass }`.
 *
 * The two sides are a pair. Each side's output is filled from the other
 * side's input, so each is decoupled (a full output does not stop its own
 * reading, which would deadlock two peers waiting on each other) and the
 * relay pauses the other side instead: a side whose output is not
 * draining stops the reading of the side that feeds it. Per direction the
 * daemon holds at most buffer-size plus one read (16 KiB).
 *
 * Half-close travels: a side's EOF shuts down the other side's write once
 * what it sent is flushed, and the pair ends when both directions are done
 * or when either side resets, times out or fails (the other is reset too).
 *
 * Upstreams are tried in turn ("round-robin" starts each connection at the
 * next one, "first" always at the first) as long as nothing has been sent
 * either way; one that refused, timed out or reset is skipped for a
 * back-off that doubles with each failure in a row, up to backoff-max.
 * When every upstream is backing off, the one whose back-off ends first is
 * tried anyway, so that a recovered service is found at once. The back-off
 * and the counters are the module's state: a reload that leaves the
 * upstream list as it is keeps them (same()). */
#include <errno.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/addr.h"
#include "conf/tls.h"
#include "daemon/log.h"
#include "daemon/protocol.h"
#include "daemon/tls.h"

#define RELAY_HOST_MAX 256
#define PROXY_V2_SIGNATURE "\r\n\r\n\0\r\nQUIT\n"

enum relay_proxy { PROXY_OFF, PROXY_V1, PROXY_V2 };

struct relay_target {
	char *host;
	unsigned port;
	char *label;			/* as written: "127.0.0.1:8080" */
};

struct relay_settings {
	struct relay_target *upstreams;
	size_t n_upstreams;
	unsigned connect_timeout_ms;
	bool round_robin;
	enum relay_proxy proxy;
	unsigned backoff_ms, backoff_max_ms;
	const struct tls_context *tls;	/* to the upstreams; NULL: plain */
};

/* One upstream as the running relay knows it. Copies, not pointers into
 * the settings: a reload may hand this state to newer settings. */
struct relay_upstream {
	struct relay_target target;
	unsigned connections;		/* open now */
	uint64_t connects, failures, bytes_up, bytes_down;
	unsigned failures_in_row;
	uint64_t retry_at_ms;		/* backing off until then */
};

struct relay_state {
	const struct unit_env *env;
	struct relay_upstream *upstreams;
	size_t n_upstreams;
	size_t next;			/* round-robin cursor */
	uint64_t relayed, unreachable, retried;
};

struct relay_pair {
	unsigned refs;			/* the client, the upstream connection */
	struct relay_state *state;
	const struct relay_settings *settings;
	struct conn *client, *upstream;
	struct connect *connecting;
	struct relay_upstream *current;
	struct evbuffer *client_in;	/* the client's input, while no upstream takes it */
	size_t start, tried;		/* which upstreams this client has tried */
	bool client_eof;
	bool moved;			/* a byte went either way: no retry past this */
};

/* ---- configuration ---- */

static cfg_opt_t relay_options[] = {
	CFG_STR_LIST("upstream", NULL, CFGF_NODEFAULT),
	CFG_INT("connect-timeout", 5, CFGF_NONE),
	CFG_STR("balance", "round-robin", CFGF_NONE),
	CFG_STR("proxy-protocol", "off", CFGF_NONE),
	CFG_INT("backoff", 1, CFGF_NONE),
	CFG_INT("backoff-max", 30, CFGF_NONE),
	CFG_SEC("tls", conf_tls_client_options, CFGF_NONE),
	CFG_END()
};

static void relay_target_free(struct relay_target *t)
{
	free(t->host);
	free(t->label);
}

static void relay_settings_free(void *p)
{
	struct relay_settings *settings = p;

	if (settings == NULL)
		return;
	for (size_t i = 0; i < settings->n_upstreams; i++)
		relay_target_free(&settings->upstreams[i]);
	free(settings->upstreams);
	if (settings->tls != NULL)
		tls_context_release(settings->tls);
	free(settings);
}

static bool relay_target_copy(struct relay_target *to, const struct relay_target *from)
{
	to->port = from->port;
	to->host = strdup(from->host);
	to->label = strdup(from->label);
	return to->host != NULL && to->label != NULL;
}

static bool relay_configure_upstreams(struct relay_settings *settings, cfg_t *sec, struct conf_scope *scope)
{
	size_t n = sec ? cfg_size(sec, "upstream") : 0;
	bool ok = true;

	if (n == 0) {
		conf_scope_error(scope, "upstream", "a relay needs upstream = {\"host:port\", ...}");
		return false;
	}
	settings->upstreams = calloc(n, sizeof(*settings->upstreams));
	if (settings->upstreams == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		const char *text = cfg_getnstr(sec, "upstream", (unsigned)i);
		struct relay_target *t = &settings->upstreams[settings->n_upstreams];
		char host[RELAY_HOST_MAX], err[160];

		if (host_port_parse(text, host, sizeof(host), &t->port, err, sizeof(err)) < 0) {
			conf_scope_error(scope, "upstream", "upstream \"%s\": %s", text, err);
			ok = false;
			continue;
		}
		t->host = strdup(host);
		t->label = strdup(text);
		settings->n_upstreams++;
		ok &= t->host != NULL && t->label != NULL;
	}
	return ok;
}

/* One of `names` (NULL-terminated); `spelled` lists them for the error. */
static bool relay_configure_choice(struct conf_scope *scope, cfg_t *sec, const char *option,
				   const char *const *names, const char *spelled, int *out)
{
	const char *value = cfg_getstr(sec, option);

	for (int i = 0; names[i] != NULL; i++)
		if (strcmp(value, names[i]) == 0) {
			*out = i;
			return true;
		}
	conf_scope_error(scope, option, "%s must be %s, not \"%s\"", option, spelled, value);
	return false;
}

/* The context is built here, so that a CA or certificate that does not
 * load is an error at the tls line, and a reload with one keeps the old
 * settings serving. */
static bool relay_configure_tls(struct relay_settings *settings, cfg_t *sec, struct conf_scope *scope,
				unsigned handshake_timeout_ms)
{
	struct conf_tls_client *conf = conf_tls_client_parse(scope, sec);
	const char *option;
	char why[256];

	if (conf == NULL)
		return !conf_scope_written(scope, "tls");
	settings->tls = tls_client_context_new(conf, handshake_timeout_ms, &option, why, sizeof(why));
	conf_tls_client_free(conf);
	if (settings->tls == NULL) {
		struct conf_scope *inner = conf_scope_enter(scope, cfg_getsec(sec, "tls"), "tls");

		if (inner != NULL) {
			conf_scope_error(inner, option, "%s", why);
			conf_scope_leave(inner);
		}
		return false;
	}
	return true;
}

static void *relay_configure(cfg_t *sec, struct conf_scope *scope)
{
	static const char *const balances[] = { "round-robin", "first", NULL };
	static const char *const proxies[] = { "off", "v1", "v2", NULL };
	struct relay_settings *settings = calloc(1, sizeof(*settings));
	long timeout, backoff, backoff_max;
	int balance = 0, proxy = 0;
	bool ok;

	if (settings == NULL)
		return NULL;
	ok = relay_configure_upstreams(settings, sec, scope);
	if (sec != NULL) {
		ok &= conf_scope_int(scope, sec, "connect-timeout", 1, 300, &timeout);
		ok &= conf_scope_int(scope, sec, "backoff", 0, 3600, &backoff);
		ok &= conf_scope_int(scope, sec, "backoff-max", 0, 86400, &backoff_max);
		ok &= relay_configure_choice(scope, sec, "balance", balances, "\"round-robin\" or \"first\"", &balance);
		ok &= relay_configure_choice(scope, sec, "proxy-protocol", proxies, "\"off\", \"v1\" or \"v2\"",
					     &proxy);
		if (ok && backoff_max < backoff) {
			conf_scope_error(scope, "backoff-max", "backoff-max (%ld) is shorter than backoff (%ld)",
					 backoff_max, backoff);
			ok = false;
		}
	}
	if (!ok) {
		relay_settings_free(settings);
		return NULL;
	}
	settings->connect_timeout_ms = (unsigned)timeout * 1000u;
	if (!relay_configure_tls(settings, sec, scope, settings->connect_timeout_ms)) {
		relay_settings_free(settings);
		return NULL;
	}
	settings->backoff_ms = (unsigned)backoff * 1000u;
	settings->backoff_max_ms = (unsigned)backoff_max * 1000u;
	settings->round_robin = balance == 0;
	settings->proxy = (enum relay_proxy)proxy;
	return settings;
}

/* The back-off and counters may carry on while the upstreams are the
 * same ones in the same order; the other options are read per
 * connection. */
static bool relay_same(const void *old_settings, const void *new_settings)
{
	const struct relay_settings *a = old_settings, *b = new_settings;

	if (a->n_upstreams != b->n_upstreams)
		return false;
	for (size_t i = 0; i < a->n_upstreams; i++)
		if (a->upstreams[i].port != b->upstreams[i].port || strcmp(a->upstreams[i].host, b->upstreams[i].host) != 0)
			return false;
	return true;
}

/* ---- state ---- */

static void relay_stop(void *p)
{
	struct relay_state *state = p;

	for (size_t i = 0; i < state->n_upstreams; i++)
		relay_target_free(&state->upstreams[i].target);
	free(state->upstreams);
	free(state);
}

static void *relay_start(const void *p, const struct unit_env *env)
{
	const struct relay_settings *settings = p;
	struct relay_state *state = calloc(1, sizeof(*state));

	if (state == NULL)
		return NULL;
	state->env = env;
	state->upstreams = calloc(settings->n_upstreams, sizeof(*state->upstreams));
	if (state->upstreams == NULL) {
		free(state);
		return NULL;
	}
	for (size_t i = 0; i < settings->n_upstreams; i++, state->n_upstreams++)
		if (!relay_target_copy(&state->upstreams[i].target, &settings->upstreams[i])) {
			relay_target_free(&state->upstreams[i].target);
			relay_stop(state);
			return NULL;
		}
	return state;
}

static void relay_status(const void *p, char *buf, size_t len)
{
	const struct relay_state *state = p;

	snprintf(buf, len, "relayed=%llu unreachable=%llu retried=%llu", (unsigned long long)state->relayed,
		 (unsigned long long)state->unreachable, (unsigned long long)state->retried);
}

static void relay_status_rows(const void *p, char *buf, size_t len)
{
	const struct relay_state *state = p;
	uint64_t now = conn_clock_ms();
	size_t used = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < state->n_upstreams && used < len; i++) {
		const struct relay_upstream *u = &state->upstreams[i];
		uint64_t backoff = u->retry_at_ms > now ? u->retry_at_ms - now : 0;
		int n = snprintf(buf + used, len - used,
				 "upstream %s connections=%u connects=%llu failures=%llu bytes_up=%llu bytes_down=%llu "
				 "up=%d backoff_ms=%llu\n",
				 u->target.label, u->connections, (unsigned long long)u->connects,
				 (unsigned long long)u->failures, (unsigned long long)u->bytes_up,
				 (unsigned long long)u->bytes_down, backoff == 0, (unsigned long long)backoff);
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0';	/* no half row */
			return;
		}
		used += (size_t)n;
	}
}

/* ---- the pair ---- */

static void relay_pair_release(struct relay_pair *pair)
{
	if (--pair->refs == 0)
		free(pair);
}

static void relay_note_failure(struct relay_pair *pair, const char *what)
{
	struct relay_upstream *u = pair->current;
	const struct relay_settings *s = pair->settings;
	uint64_t backoff = s->backoff_ms;

	u->failures++;
	u->failures_in_row++;
	for (unsigned i = 1; i < u->failures_in_row && backoff > 0 && backoff < s->backoff_max_ms; i++)
		backoff *= 2;
	if (backoff > s->backoff_max_ms)
		backoff = s->backoff_max_ms;
	u->retry_at_ms = conn_clock_ms() + backoff;
	conn_log(pair->client, LOG_WARNING, "upstream %s: %s; skipped for %llu ms", u->target.label, what,
		 (unsigned long long)backoff);
}

/* The next upstream this client has not tried and that is not backing
 * off; when all are and none was tried, the one back soonest. */
static struct relay_upstream *relay_pick(struct relay_pair *pair)
{
	struct relay_state *state = pair->state;
	struct relay_upstream *soonest = NULL;
	uint64_t now = conn_clock_ms();
	bool first_try = pair->tried == 0;

	while (pair->tried < state->n_upstreams) {
		struct relay_upstream *u = &state->upstreams[(pair->start + pair->tried++) % state->n_upstreams];

		if (u->retry_at_ms <= now)
			return u;
		if (soonest == NULL || u->retry_at_ms < soonest->retry_at_ms)
			soonest = u;
	}
	return first_try ? soonest : NULL;
}

static const struct conn_hooks relay_upstream_hooks;
static void relay_connect_failed(void *arg, int error);

/* Tries upstreams until a connect starts; none left: the client gets EOF. */
static void relay_connect_next(struct relay_pair *pair)
{
	const struct relay_settings *s = pair->settings;

	while ((pair->current = relay_pick(pair)) != NULL) {
		struct relay_target *t = &pair->current->target;

		pair->connecting = conn_connect_tls(pair->state->env, t->host, t->port, s->connect_timeout_ms, s->tls,
						    &relay_upstream_hooks, relay_connect_failed, pair);
		if (pair->connecting != NULL)
			return;
		relay_note_failure(pair, strerror(errno));
	}
	pair->state->unreachable++;
	conn_log(pair->client, LOG_WARNING, "no upstream could be reached: closing the client");
	conn_close_after_flush(pair->client);
}

static void relay_connect_failed(void *arg, int error)
{
	struct relay_pair *pair = arg;
	char what[160];

	pair->connecting = NULL;
	snprintf(what, sizeof(what), "connect failed: %s",
		 error == ENOENT   ? "the name has no address"
		 : error == EPROTO ? "TLS handshake failed"
				   : strerror(error));
	relay_note_failure(pair, what);
	pair->state->retried++;
	relay_connect_next(pair);
}

/* HAProxy's PROXY protocol, so that the upstream sees the client. */
static void relay_send_proxy_v1(struct conn *upstream, const struct sockaddr *src, const struct sockaddr *dst)
{
	char a[ADDR_TEXT_MAX], b[ADDR_TEXT_MAX], line[160];
	int n;

	if (src->sa_family != dst->sa_family || (src->sa_family != AF_INET && src->sa_family != AF_INET6)) {
		conn_write(upstream, "PROXY UNKNOWN\r\n", 15);
		return;
	}
	n = snprintf(line, sizeof(line), "PROXY %s %s %s %u %u\r\n", src->sa_family == AF_INET ? "TCP4" : "TCP6",
		     addr_format(src, false, a, sizeof(a)), addr_format(dst, false, b, sizeof(b)), addr_port(src),
		     addr_port(dst));
	conn_write(upstream, line, (size_t)n);
}

static void relay_send_proxy_v2(struct conn *upstream, const struct sockaddr *src, const struct sockaddr *dst)
{
	unsigned char header[16 + 36];
	size_t len = 16;

	memcpy(header, PROXY_V2_SIGNATURE, 12);
	header[12] = 0x21;	/* version 2, PROXY */
	if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
		const struct sockaddr_in *s4 = (const void *)src, *d4 = (const void *)dst;
		header[13] = 0x11;	/* TCP over IPv4 */
		memcpy(header + 16, &s4->sin_addr, 4);
		memcpy(header + 20, &d4->sin_addr, 4);
		memcpy(header + 24, &s4->sin_port, 2);
		memcpy(header + 26, &d4->sin_port, 2);
		len += 12;
	} else if (src->sa_family == AF_INET6 && dst->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)src, *d6 = (const void *)dst;
		header[13] = 0x21;	/* TCP over IPv6 */
		memcpy(header + 16, &s6->sin6_addr, 16);
		memcpy(header + 32, &d6->sin6_addr, 16);
		memcpy(header + 48, &s6->sin6_port, 2);
		memcpy(header + 50, &d6->sin6_port, 2);
		len += 36;
	} else {
		header[12] = 0x20;	/* LOCAL: no addresses */
		header[13] = 0x00;
	}
	header[14] = (unsigned char)((len - 16) >> 8);
	header[15] = (unsigned char)(len - 16);
	conn_write(upstream, header, len);
}

/* Client bytes to the upstream, until its output is full. */
static void relay_forward_up(struct relay_pair *pair, struct evbuffer *in)
{
	size_t n = evbuffer_get_length(in);

	if (n == 0)
		return;
	pair->moved = true;
	pair->current->bytes_up += n;
	conn_write_buffer(pair->upstream, in);
	if (conn_output_full(pair->upstream))
		conn_pause_reading(pair->client);
}

/* ---- the upstream side ---- */

static int relay_upstream_open(struct conn *upstream)
{
	struct relay_pair *pair = conn_data(upstream);

	pair->connecting = NULL;
	pair->upstream = upstream;
	pair->refs++;
	pair->current->connections++;
	pair->current->connects++;
	pair->current->failures_in_row = 0;
	pair->current->retry_at_ms = 0;
	pair->state->relayed++;
	conn_decouple_directions(upstream);
	conn_log(pair->client, LOG_DEBUG, "relayed to upstream %s", pair->current->target.label);
	if (pair->settings->proxy == PROXY_V1)
		relay_send_proxy_v1(upstream, conn_peer(pair->client), conn_local(pair->client));
	else if (pair->settings->proxy == PROXY_V2)
		relay_send_proxy_v2(upstream, conn_peer(pair->client), conn_local(pair->client));
	if (pair->client_in != NULL)
		relay_forward_up(pair, pair->client_in);
	if (pair->client_eof)
		conn_shutdown_after_flush(upstream);
	conn_resume_reading(pair->client);
	return 0;
}

static void relay_upstream_input(struct conn *upstream, struct evbuffer *in)
{
	struct relay_pair *pair = conn_data(upstream);
	size_t n = evbuffer_get_length(in);

	if (pair->client == NULL) {
		evbuffer_drain(in, n);
		return;
	}
	pair->moved = true;
	pair->current->bytes_down += n;
	conn_write_buffer(pair->client, in);
	if (conn_output_full(pair->client))
		conn_pause_reading(upstream);
}

static void relay_upstream_end_of_input(struct conn *upstream)
{
	struct relay_pair *pair = conn_data(upstream);

	if (pair->client != NULL)
		conn_shutdown_after_flush(pair->client);
	else
		conn_close_after_flush(upstream);
}

static void relay_upstream_drained(struct conn *upstream)
{
	struct relay_pair *pair = conn_data(upstream);

	if (pair->client != NULL)
		conn_resume_reading(pair->client);
}

/* An upstream that resets before a byte went either way is as good as
 * one that refused: the next is tried. Past that, a reset ends the pair. */
static void relay_upstream_close(struct conn *upstream)
{
	struct relay_pair *pair = conn_data(upstream);
	bool in_order = conn_ended_in_order(upstream);

	pair->current->connections--;
	pair->upstream = NULL;
	if (pair->client != NULL && !in_order && !pair->moved) {
		relay_note_failure(pair, "reset before any byte was relayed");
		pair->state->retried++;
		relay_connect_next(pair);
	} else if (pair->client != NULL && !in_order) {
		conn_abort(pair->client);
	}
	relay_pair_release(pair);
}

static const struct conn_hooks relay_upstream_hooks = {
	.open = relay_upstream_open,
	.input = relay_upstream_input,
	.end_of_input = relay_upstream_end_of_input,
	.drained = relay_upstream_drained,
	.close = relay_upstream_close,
};

/* ---- the client side (the listener's connections) ---- */

static int relay_open(struct conn *client)
{
	struct relay_state *state = conn_service_state(client);
	const struct relay_settings *settings = conn_settings(client);
	struct relay_pair *pair = calloc(1, sizeof(*pair));

	if (pair == NULL)
		return -1;
	pair->refs = 1;
	pair->state = state;
	pair->settings = settings;
	pair->client = client;
	if (settings->round_robin)
		pair->start = state->next++ % state->n_upstreams;
	conn_set_data(client, pair);
	conn_decouple_directions(client);
	relay_connect_next(pair);
	return 0;
}

/* Until an upstream is connected the bytes wait in the client's own input
 * (bounded by buffer-size: reading stops when it is full). */
static void relay_input(struct conn *client, struct evbuffer *in)
{
	struct relay_pair *pair = conn_data(client);

	pair->client_in = in;
	if (pair->upstream != NULL)
		relay_forward_up(pair, in);
	else if (pair->connecting == NULL)
		evbuffer_drain(in, evbuffer_get_length(in));	/* closing: nowhere to go */
}

static void relay_end_of_input(struct conn *client)
{
	struct relay_pair *pair = conn_data(client);

	pair->client_eof = true;
	if (pair->upstream != NULL)
		conn_shutdown_after_flush(pair->upstream);
	else if (pair->connecting == NULL)
		conn_close_after_flush(client);
}

static void relay_drained(struct conn *client)
{
	struct relay_pair *pair = conn_data(client);

	if (pair->upstream != NULL)
		conn_resume_reading(pair->upstream);
}

static void relay_close(struct conn *client)
{
	struct relay_pair *pair = conn_data(client);

	if (pair == NULL)
		return;
	pair->client = NULL;
	pair->client_in = NULL;
	if (pair->connecting != NULL)
		conn_connect_cancel(pair->connecting);
	pair->connecting = NULL;
	if (pair->upstream != NULL && !conn_ended_in_order(client))
		conn_abort(pair->upstream);
	relay_pair_release(pair);
}

const struct protocol protocol_relay = {
	.config = {
		.name = "relay",
		.transports = TRANSPORT_BIT(TRANSPORT_TCP),
		.options = relay_options,
		.configure = relay_configure,
		.settings_free = relay_settings_free,
		.streams_through = true,
	},
	.start = relay_start,
	.stop = relay_stop,
	.same = relay_same,
	.status = relay_status,
	.status_rows = relay_status_rows,
	.conn = {
		.open = relay_open,
		.input = relay_input,
		.end_of_input = relay_end_of_input,
		.drained = relay_drained,
		.close = relay_close,
	},
};
