/* tracker: a BitTorrent HTTP tracker route (BEP 3 with BEP 23's compact
 * peer lists, BEP 7's peers6), so that a daemon seeding torrents can also
 * be their tracker. The tables are bounded: swarms and peers per swarm at
 * most, a peer forgotten when it has not announced for two intervals. A
 * malformed announce gets a bencoded failure reason and is counted. */
#include <arpa/inet.h>
#include <event2/buffer.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon/chassis.h"
#include "protocols/http/announce.h"
#include "protocols/http/handlers.h"
#include "protocols/http/response.h"

/* A peer that has not announced for this many intervals is gone. */
#define TRACKER_EXPIRY_INTERVALS 2

struct tracker_peer {
	unsigned char peer_id[ANNOUNCE_HASH_LEN];
	int family;
	unsigned char addr[16];
	unsigned short port;	/* network order */
	bool seed;
	uint64_t seen_ms;
};

struct swarm {
	unsigned char info_hash[ANNOUNCE_HASH_LEN];
	struct tracker_peer *peers;	/* room for cap_peers, up to max-peers */
	unsigned n_peers, cap_peers;
	unsigned long long completed;
};

struct tracker {
	struct swarm *swarms;		/* max-swarms of them, n_swarms in use */
	unsigned n_swarms;
	unsigned max_swarms, max_peers, per_address, interval;
	unsigned long long announces, failures, table_full;
};

static bool tracker_configure(struct http_route *route, cfg_t *sec, struct conf_scope *scope)
{
	const char *stream = cfg_getstr(sec, "stream");
	long swarms, peers, per_address, interval;
	char name[300];

	if (!conf_scope_int(scope, sec, "max-swarms", 1, 1000000, &swarms) ||
	    !conf_scope_int(scope, sec, "max-peers", 1, 100000, &peers) ||
	    !conf_scope_int(scope, sec, "max-peers-per-address", 1, 100000, &per_address) ||
	    !conf_scope_int(scope, sec, "interval", 10, 86400, &interval))
		return false;
	route->tracker_swarms = (unsigned)swarms;
	route->tracker_peers = (unsigned)peers;
	route->tracker_per_address = (unsigned)per_address;
	route->tracker_interval = (unsigned)interval;
	if (stream == NULL)
		return true;
	if (stream[0] == '\0') {
		conf_scope_error(scope, "stream", "stream must name a torrent stream");
		return false;
	}
	/* Only what that stream seeds: the list it publishes (torrents.c). */
	snprintf(name, sizeof(name), "torrent:%s", stream);
	route->location = strdup(name);
	return route->location != NULL;
}

static void tracker_free(struct http_route *route)
{
	free(route->location);
}

/* Whether the stream the route is limited to seeds info_hash now. */
static bool seeded_here(const struct http_exchange *ex, const struct http_route *route, const unsigned char *hash)
{
	const char *type, *text = chassis_published(ex->conn, route->location, &type);
	char hex[2 * ANNOUNCE_HASH_LEN + 2];

	if (text == NULL)
		return false;
	hex[0] = '\n';
	for (size_t i = 0; i < ANNOUNCE_HASH_LEN; i++)
		snprintf(hex + 1 + 2 * i, 3, "%02x", hash[i]);
	return strstr(text, hex) != NULL;
}

static void *tracker_start(const struct http_route *route, const struct unit_env *env)
{
	struct tracker *t = calloc(1, sizeof(*t));

	(void)env;
	if (t == NULL)
		return NULL;
	t->max_swarms = route->tracker_swarms;
	t->max_peers = route->tracker_peers;
	t->per_address = route->tracker_per_address;
	t->interval = route->tracker_interval;
	/* Grown as swarms come: max-swarms bounds it, not preallocates it. */
	return t;
}

static void tracker_stop(void *route_state)
{
	struct tracker *t = route_state;

	for (unsigned i = 0; i < t->n_swarms; i++)
		free(t->swarms[i].peers);
	free(t->swarms);
	free(t);
}

static void expire(const struct tracker *t, struct swarm *s, uint64_t now)
{
	uint64_t ttl = (uint64_t)t->interval * TRACKER_EXPIRY_INTERVALS * 1000;

	for (unsigned i = s->n_peers; i-- > 0;)
		if (now - s->peers[i].seen_ms > ttl)
			s->peers[i] = s->peers[--s->n_peers];
}

/* A swarm whose last peer stopped or expired goes: otherwise announces of
 * made-up info_hashes would fill max-swarms for good. */
static void drop_swarm_if_empty(struct tracker *t, struct swarm *s)
{
	if (s->n_peers > 0)
		return;
	free(s->peers);
	*s = t->swarms[--t->n_swarms];
}

/* With the table full, every swarm's expired peers go, and with them the
 * swarms left empty. */
static void sweep_swarms(struct tracker *t, uint64_t now)
{
	for (unsigned i = t->n_swarms; i-- > 0;) {
		expire(t, &t->swarms[i], now);
		drop_swarm_if_empty(t, &t->swarms[i]);
	}
}

/* The swarm of info_hash, made when new and there is room; NULL when full. */
static struct swarm *find_swarm(struct tracker *t, const unsigned char *info_hash, bool make, uint64_t now)
{
	struct swarm *grown;

	for (unsigned i = 0; i < t->n_swarms; i++)
		if (memcmp(t->swarms[i].info_hash, info_hash, ANNOUNCE_HASH_LEN) == 0)
			return &t->swarms[i];
	if (make && t->n_swarms == t->max_swarms)
		sweep_swarms(t, now);
	if (!make || t->n_swarms == t->max_swarms)
		return NULL;
	grown = realloc(t->swarms, (t->n_swarms + 1) * sizeof(*grown));
	if (grown == NULL)
		return NULL;
	t->swarms = grown;
	memset(&t->swarms[t->n_swarms], 0, sizeof(*t->swarms));
	memcpy(t->swarms[t->n_swarms].info_hash, info_hash, ANNOUNCE_HASH_LEN);
	return &t->swarms[t->n_swarms++];
}

/* The peer's address as the connection shows it (an IPv4-mapped IPv6
 * address as IPv4): a peer cannot announce another's. */
static void peer_address(const struct sockaddr *sa, struct tracker_peer *p)
{
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a)) {
			p->family = AF_INET;
			memcpy(p->addr, &a->s6_addr[12], 4);
		} else {
			p->family = AF_INET6;
			memcpy(p->addr, a, 16);
		}
		return;
	}
	p->family = AF_INET;
	memcpy(p->addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
}

static struct tracker_peer *find_peer(struct swarm *s, const unsigned char *peer_id)
{
	for (unsigned i = 0; i < s->n_peers; i++)
		if (memcmp(s->peers[i].peer_id, peer_id, ANNOUNCE_HASH_LEN) == 0)
			return &s->peers[i];
	return NULL;
}

/* Peers of the swarm at the address of `p`. */
static unsigned peers_at(const struct swarm *s, const struct tracker_peer *p)
{
	unsigned n = 0;

	for (unsigned i = 0; i < s->n_peers; i++)
		n += s->peers[i].family == p->family &&
		     memcmp(s->peers[i].addr, p->addr, p->family == AF_INET ? 4 : 16) == 0;
	return n;
}

/* Room for one more peer: the table grows as peers come, up to max-peers,
 * so that a swarm of a few costs a few. */
static bool make_room(const struct tracker *t, struct swarm *s)
{
	unsigned cap = s->cap_peers ? 2 * s->cap_peers : 8;
	struct tracker_peer *grown;

	if (s->n_peers < s->cap_peers)
		return true;
	if (s->n_peers == t->max_peers)
		return false;
	if (cap > t->max_peers)
		cap = t->max_peers;
	grown = realloc(s->peers, cap * sizeof(*grown));
	if (grown == NULL)
		return false;
	s->peers = grown;
	s->cap_peers = cap;
	return true;
}

/* Records the announce; NULL when it is, else why it is refused. */
static const char *record(struct tracker *t, struct swarm *s, const struct announce *a, const struct sockaddr *from,
			  uint64_t now)
{
	struct tracker_peer *p = find_peer(s, a->peer_id), seen;

	if (a->event == ANNOUNCE_STOPPED) {
		if (p != NULL)
			*p = s->peers[--s->n_peers];
		return NULL;
	}
	if (p == NULL) {
		/* One host with many peer_ids would fill the swarm for two
		 * intervals. */
		peer_address(from, &seen);
		if (peers_at(s, &seen) >= t->per_address)
			return "tracker full: too many peers from this address";
		if (!make_room(t, s))
			return "tracker full: too many peers for this torrent";
		p = &s->peers[s->n_peers++];
		memcpy(p->peer_id, a->peer_id, ANNOUNCE_HASH_LEN);
	}
	peer_address(from, p);
	p->port = htons((unsigned short)a->port);
	p->seed = a->left == 0;
	p->seen_ms = now;
	if (a->event == ANNOUNCE_COMPLETED)
		s->completed++;
	return NULL;
}

static void respond_failure(struct http_exchange *ex, struct tracker *t, const char *reason)
{
	char body[256];
	int n = snprintf(body, sizeof(body), "d14:failure reason%zu:%se", strlen(reason), reason);

	t->failures++;
	http_respond_bytes(ex, 200, "text/plain", body, (size_t)n, "Cache-Control: no-store\r\n");
}

/* Compact lists: 6 bytes an IPv4 peer, 18 an IPv6 one, the asker left out. */
static void compact_peers(struct evbuffer *v4, struct evbuffer *v6, const struct swarm *s, const unsigned char *asker,
			  unsigned numwant)
{
	unsigned given = 0;

	for (unsigned i = 0; i < s->n_peers && given < numwant; i++) {
		const struct tracker_peer *p = &s->peers[i];
		struct evbuffer *out = p->family == AF_INET ? v4 : v6;

		if (memcmp(p->peer_id, asker, ANNOUNCE_HASH_LEN) == 0)
			continue;
		evbuffer_add(out, p->addr, p->family == AF_INET ? 4 : 16);
		evbuffer_add(out, &p->port, 2);
		given++;
	}
}

static void respond_peers(struct http_exchange *ex, const struct tracker *t, const struct swarm *s,
			  const struct announce *a)
{
	struct evbuffer *body = evbuffer_new(), *v4 = evbuffer_new(), *v6 = evbuffer_new();
	unsigned seeds = 0;

	for (unsigned i = 0; i < s->n_peers; i++)
		seeds += s->peers[i].seed;
	if (body == NULL || v4 == NULL || v6 == NULL) {
		http_respond_error(ex, 500, "out of memory");
	} else {
		compact_peers(v4, v6, s, a->peer_id, a->numwant);
		/* Keys in sorted order, as bencoding requires. */
		evbuffer_add_printf(body, "d8:completei%ue10:downloadedi%llue10:incompletei%ue8:intervali%ue"
				    "12:min intervali%ue5:peers%zu:", seeds, s->completed, s->n_peers - seeds,
				    t->interval, t->interval / 2, evbuffer_get_length(v4));
		evbuffer_add_buffer(body, v4);
		evbuffer_add_printf(body, "6:peers6%zu:", evbuffer_get_length(v6));
		evbuffer_add_buffer(body, v6);
		evbuffer_add(body, "e", 1);
		http_respond_buffer(ex, 200, "text/plain", body, "Cache-Control: no-store\r\n");
	}
	if (body != NULL)
		evbuffer_free(body);
	if (v4 != NULL)
		evbuffer_free(v4);
	if (v6 != NULL)
		evbuffer_free(v6);
}

static void tracker_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	struct tracker *t = route_state;
	uint64_t now = conn_clock_ms();
	const char *reason;
	struct announce a;
	struct swarm *s;

	t->announces++;
	if (announce_parse(ex->request.query, ex->request.query_len, &a, &reason) < 0) {
		respond_failure(ex, t, reason);
		return;
	}
	if (route->location != NULL && !seeded_here(ex, route, a.info_hash)) {
		respond_failure(ex, t, "unknown info_hash: not seeded here");
		return;
	}
	s = find_swarm(t, a.info_hash, a.event != ANNOUNCE_STOPPED, now);
	if (s == NULL) {
		if (a.event == ANNOUNCE_STOPPED) {
			respond_failure(ex, t, "unknown info_hash");
			return;
		}
		t->table_full++;
		respond_failure(ex, t, "tracker full: too many torrents");
		return;
	}
	expire(t, s, now);
	if ((reason = record(t, s, &a, conn_peer(ex->conn), now)) != NULL) {
		t->table_full++;
		respond_failure(ex, t, reason);
	} else {
		respond_peers(ex, t, s, &a);
	}
	drop_swarm_if_empty(t, s);
}

static void tracker_status_row(const struct http_route *route, const void *route_state, char *buf, size_t len)
{
	const struct tracker *t = route_state;
	unsigned peers = 0;

	for (unsigned i = 0; i < t->n_swarms; i++)
		peers += t->swarms[i].n_peers;
	snprintf(buf, len, "route %s swarms=%u tracker_peers=%u announces=%llu announce_failures=%llu table_full=%llu\n",
		 route->prefix, t->n_swarms, peers, t->announces, t->failures, t->table_full);
}

const struct http_handler http_handler_tracker = {
	.name = "tracker",
	.options = (const char *const[]){ "max-swarms", "max-peers", "max-peers-per-address", "interval", "stream", NULL },
	.methods = HTTP_ALLOW_GET,
	.configure = tracker_configure,
	.free = tracker_free,
	.serve = tracker_serve,
	.start = tracker_start,
	.stop = tracker_stop,
	.status_row = tracker_status_row,
};
