/* The status (JSON, or HTML for a browser: status_html.c) and metrics
 * (Prometheus text format) handlers: the daemon's counters, per listener
 * and stream, as the SIGUSR1 dump has them. */
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "build_config.h"
#include "daemon/chassis.h"
#include "protocols/http/handlers.h"
#include "protocols/http/response.h"
#include "protocols/http/snapshot.h"
#include "protocols/http/status_html.h"
#include "protocols/http/accept.h"

/* Both pages: a snapshot written by `write`, never cached by a proxy. */
static void info_serve(struct http_exchange *ex, void (*write)(struct evbuffer *out, const struct info_snapshot *snap),
		       const char *type, const char *extra)
{
	struct info_snapshot snap;
	struct evbuffer *out = evbuffer_new();

	if (out == NULL || !info_snapshot_take(ex, &snap)) {
		if (out != NULL)
			evbuffer_free(out);
		http_respond_error(ex, 500, "out of memory");
		return;
	}
	write(out, &snap);
	http_respond_buffer(ex, 200, type, out, extra);
	evbuffer_free(out);
	info_snapshot_free(&snap);
}

/* ---- status: JSON ---- */

static void json_string(struct evbuffer *out, const char *text)
{
	evbuffer_add(out, "\"", 1);
	for (const unsigned char *p = (const unsigned char *)text; *p; p++) {
		if (*p == '"' || *p == '\\')
			evbuffer_add_printf(out, "\\%c", *p);
		else if (*p < 0x20)
			evbuffer_add_printf(out, "\\u%04x", *p);
		else
			evbuffer_add(out, p, 1);
	}
	evbuffer_add(out, "\"", 1);
}

/* Rows as arrays named after their kind, rows of a kind being together:
 * "upstream": [{"name": "127.0.0.1:8080", "connections": 1, ...}]. */
static void status_rows(struct evbuffer *out, const char *rows, bool first)
{
	const char *cursor = rows ? rows : "";
	char kind[32] = "", key[64];
	struct info_row row;
	unsigned long long value;

	while (info_next_row(&cursor, &row)) {
		const char *c = row.counters;

		if (strcmp(kind, row.kind) != 0) {
			evbuffer_add_printf(out, "%s%s", kind[0] ? "]" : "", first ? "" : ", ");
			json_string(out, row.kind);
			evbuffer_add_printf(out, ": [");
			snprintf(kind, sizeof(kind), "%s", row.kind);
		} else {
			evbuffer_add_printf(out, ", ");
		}
		first = false;
		evbuffer_add_printf(out, "{\"name\": ");
		json_string(out, row.name);
		while (info_next_counter(&c, key, sizeof(key), &value))
			evbuffer_add_printf(out, ", \"%s\": %llu", key, value);
		evbuffer_add_printf(out, "}");
	}
	if (kind[0])
		evbuffer_add_printf(out, "]");
}

/* "KEY text\n" lines as "text": {"KEY": "text", ...}. */
static void status_text(struct evbuffer *out, const char *text)
{
	char key[64], value[1024];
	bool first = true;

	while (info_next_text(&text, key, sizeof(key), value, sizeof(value))) {
		evbuffer_add_printf(out, "%s", first ? ", \"text\": {" : ", ");
		json_string(out, key);
		evbuffer_add_printf(out, ": ");
		json_string(out, value);
		first = false;
	}
	if (!first)
		evbuffer_add_printf(out, "}");
}

/* "connections" and "counters" hold only what the unit's transport has:
 * a udp listener has no "accepted", a tcp one no "datagrams", a stream
 * neither object. */
static void status_chassis_counters(struct evbuffer *out, const struct chassis_listener_stats *s)
{
	bool first = true;

	if (info_has_connections(s))
		evbuffer_add_printf(out, ", \"connections\": %u", s->connections);
	for (size_t c = 0; c < info_n_counters; c++) {
		if (!info_counter_applies(&info_counters[c], s))
			continue;
		evbuffer_add_printf(out, "%s\"%s\": %llu", first ? ", \"counters\": {" : ", ", info_counters[c].key,
				    (unsigned long long)info_counter_value(&info_counters[c], s));
		first = false;
	}
	if (!first)
		evbuffer_add_printf(out, "}");
}

static void status_listener(struct evbuffer *out, const struct chassis_listener_stats *s)
{
	const char *cursor = s->module_counters;
	char key[64];
	unsigned long long value;
	bool first = true;

	evbuffer_add_printf(out, "{\"name\": ");
	json_string(out, s->name);
	evbuffer_add_printf(out, ", \"protocol\": ");
	json_string(out, s->protocol);
	evbuffer_add_printf(out, ", \"transport\": \"%s\", \"address\": ", s->transport);
	json_string(out, s->address);
	evbuffer_add_printf(out, ", \"retired\": %s", s->retired ? "true" : "false");
	status_chassis_counters(out, s);
	evbuffer_add_printf(out, ", \"module\": {");
	while (info_next_counter(&cursor, key, sizeof(key), &value)) {
		evbuffer_add_printf(out, "%s\"%s\": %llu", first ? "" : ", ", key, value);
		first = false;
	}
	status_rows(out, s->module_rows, first);
	evbuffer_add_printf(out, "}");
	status_text(out, s->module_text);
	evbuffer_add_printf(out, "}");
}

static void status_write(struct evbuffer *out, const struct info_snapshot *snap)
{
	evbuffer_add_printf(out,
			    "{\"server\": \"chassisd\", \"version\": \"%s\", \"uptime_seconds\": %llu, "
			    "\"reload_generation\": %u, \"connections\": %u, \"max_connections\": %u, \"listeners\": [",
			    CHASSISD_VERSION, (unsigned long long)snap->totals.uptime_seconds, snap->totals.generation,
			    snap->totals.connections, snap->totals.max_connections);
	for (size_t i = 0; i < snap->count; i++) {
		evbuffer_add_printf(out, "%s\n  ", i ? "," : "");
		status_listener(out, &snap->listeners[i].stats);
	}
	evbuffer_add_printf(out, "\n]}\n");
}

/* "format=html" or "format=json" in the query: 1 HTML, 0 JSON, -1 not
 * given, -2 another format. */
static int status_format_asked(const struct http_request *req)
{
	const char *p = req->query, *end;

	if (p == NULL)		/* no query: no offset from a null pointer either */
		return -1;
	end = p + req->query_len;
	while (p < end) {
		const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp ? amp : end;
		size_t len = (size_t)(stop - p);

		if (len >= 7 && memcmp(p, "format=", 7) == 0) {
			if (len == 11 && memcmp(p + 7, "html", 4) == 0)
				return 1;
			if (len == 11 && memcmp(p + 7, "json", 4) == 0)
				return 0;
			return -2;
		}
		p = stop + 1;
	}
	return -1;
}

/* HTML when asked for by the query, or when Accept prefers text/html to
 * application/json (a browser's does); JSON otherwise, for "* / *" too. */
static void status_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	int asked = status_format_asked(&ex->request);
	size_t len;
	const char *accept = http_header_find(ex, "Accept", &len);

	if (asked == -2) {
		http_respond_error(ex, 400, "format is html or json");
		return;
	}
	if (asked == -1)
		asked = accept != NULL &&
			http_accept_quality(accept, len, "text/html") > http_accept_quality(accept, len, "application/json");
	if (asked == 1)
		info_serve(ex, status_html_write, "text/html; charset=utf-8", "Cache-Control: no-store\r\nVary: Accept\r\n");
	else
		info_serve(ex, status_write, "application/json", "Cache-Control: no-store\r\nVary: Accept\r\n");
	(void)route;
	(void)route_state;
}

const struct http_handler http_handler_status = {
	.name = "status",
	.options = (const char *const[]){ NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.serve = status_serve,
};

/* ---- metrics: Prometheus text format 0.0.4 ---- */

static void label_value(struct evbuffer *out, const char *text)
{
	for (const char *p = text; *p; p++) {
		if (*p == '\\' || *p == '"')
			evbuffer_add_printf(out, "\\%c", *p);
		else if (*p == '\n')
			evbuffer_add(out, "\\n", 2);
		else
			evbuffer_add(out, p, 1);
	}
}

/* A sample's name and its unit's labels, the brace left open. */
static void labels(struct evbuffer *out, const char *family, const struct chassis_listener_stats *s)
{
	evbuffer_add_printf(out, "%s{listener=\"", family);
	label_value(out, s->name);
	evbuffer_add_printf(out, "\",protocol=\"");
	label_value(out, s->protocol);
	evbuffer_add_printf(out, "\"");
}

static void sample(struct evbuffer *out, const char *family, const struct chassis_listener_stats *s,
		   unsigned long long value)
{
	labels(out, family, s);
	evbuffer_add_printf(out, "} %llu\n", value);
}

/* What each module key counts, for HELP; kind "" is the module's own line,
 * otherwise its rows of that kind. A key not here gets a generic HELP. */
static const struct {
	const char *kind, *key, *help;
} module_help[] = {
	{ "", "requests", "HTTP requests read." },
	{ "", "responses_1xx", "HTTP responses with a 1xx status." },
	{ "", "responses_2xx", "HTTP responses with a 2xx status." },
	{ "", "responses_3xx", "HTTP responses with a 3xx status." },
	{ "", "responses_4xx", "HTTP responses with a 4xx status." },
	{ "", "responses_5xx", "HTTP responses with a 5xx status." },
	{ "", "bad_requests", "HTTP requests refused as malformed or over a limit." },
	{ "", "head_timeouts", "HTTP connections closed at head-timeout waiting for a request head." },
	{ "", "body_timeouts", "HTTP connections closed at body-timeout waiting for a request body." },
	{ "", "body_bytes_out", "HTTP response body bytes sent." },
	{ "", "prepared_answers", "HTTP answers sent from a prepared head and body." },
	{ "", "files_cut_short", "Files truncated while being sent (connection reset)." },
	{ "", "fortunes", "Fortunes sent." },
	{ "", "clips", "Clips sent." },
	{ "", "failed", "Requests whose program failed." },
	{ "", "busy", "Requests refused because max-children programs were running." },
	{ "", "not_ready", "UDP requests dropped because no fortune was ready." },
	{ "", "children", "Programs running now." },
	{ "", "served", "Connections whose exec program exited with status 0." },
	{ "", "refused", "Connections closed at once because max-children programs were running." },
	{ "", "spawned", "Programs started." },
	{ "", "timed_out", "Programs killed at their timeout." },
	{ "", "cut", "Program outputs cut at output-limit." },
	{ "", "relayed", "Upstream connections made for clients." },
	{ "", "unreachable", "Clients closed because no upstream could be reached." },
	{ "", "retried", "Upstream connection attempts that failed and were retried on another." },
	{ "", "datagrams", "Datagrams made from the source." },
	{ "", "bytes", "Bytes taken from the source into datagrams." },
	{ "", "sent", "Datagrams sent, one per destination." },
	{ "", "sent_bytes", "Bytes sent, all destinations." },
	{ "", "blocked", "Sends the kernel refused for lack of buffer space, retried." },
	{ "", "dropped_queue_full", "Datagrams dropped because the send queue was full." },
	{ "", "dropped_error", "Datagrams dropped on a send error." },
	{ "", "late", "Datagrams sent late: their due time had passed." },
	{ "", "discontinuities", "Times the source started again or jumped (a loop, a restart)." },
	{ "", "rtp_packets", "RTP packets sent (the RTCP sender report's count, wraps at 2^32)." },
	{ "", "rtp_octets", "RTP payload bytes sent (the RTCP sender report's count, wraps at 2^32)." },
	{ "", "pcr_discontinuities", "PCR jumps that started a new timing segment." },
	{ "", "ts_bytes_cut", "Source bytes cut out where TS packets did not line up." },
	{ "", "audio_bytes_skipped", "MPEG audio source bytes skipped where no frame lined up." },
	{ "", "rtcp_received", "RTCP datagrams received on the stream's RTCP port." },
	{ "", "rtcp_malformed", "RTCP datagrams dropped because they were not a compound RTCP packet." },
	{ "", "receivers", "Receivers whose reports are kept now." },
	{ "", "receivers_refused", "New receivers not kept because the receiver table was full." },
	{ "", "receivers_expired", "Receivers forgotten after receiver-timeout of silence." },
	{ "", "malformed", "Datagrams dropped because they were not RTP." },
	{ "", "malformed_short", "Datagrams dropped as shorter than their RTP header, CSRCs or extension." },
	{ "", "malformed_version", "Datagrams dropped for an RTP version other than 2." },
	{ "", "malformed_padding", "Datagrams dropped for an RTP padding count of 0 or past the payload." },
	{ "", "probation", "RTP packets dropped while their sender was not yet valid (RFC 3550 A.1)." },
	{ "", "not_played", "RTP packets of valid senders other than the one played." },
	{ "", "names_refused", "srm objects whose name was refused as a file name (stored as object-SESSION-N)." },
	{ "", "store_failed", "srm objects received whole that could not be stored (spool or directory write failed)." },
	{ "", "command_delivered", "srm objects the command took: its run exited with status 0." },
	{ "", "command_failed", "srm objects whose command run failed: a non-zero exit, a signal, a timeout." },
	{ "", "command_dropped", "srm objects dropped because the command's queue was full." },
	{ "", "command_waiting", "srm objects waiting for the command now." },
	{ "", "files_sent", "Files an srm stream sent whole, with their END." },
	{ "", "files_waiting", "Files an srm stream has still to send." },
	{ "", "sender_switches", "Times another sender started to be played." },
	{ "", "recorded_bytes", "Payload bytes appended to the record file." },
	{ "", "record_errors", "Failed writes to the record file." },
	{ "", "rtcp_in", "RTCP datagrams received on the listener's RTCP port." },
	{ "", "rtcp_out", "RTCP receiver reports sent." },
	{ "", "rtcp_send_errors", "RTCP receiver reports the kernel refused." },
	{ "", "sequenced", "Datagrams given a sequence number (data and object ends)." },
	{ "", "repaired", "Datagrams sent again in answer to NAKs." },
	{ "", "naks_received", "NAKs received from receivers." },
	{ "", "repairs_held_off", "Repairs asked for again within hold-off, sent once." },
	{ "", "gone", "Ranges asked for or announced that had left the transmit window." },
	{ "", "gone_held", "NAK answers put off into the next GONE because one had gone in the last 10 ms." },
	{ "", "heartbeats", "Heartbeats (the window's edges) sent while idle." },
	{ "", "bad", "Datagrams dropped as not valid for the protocol (CRC, version, body)." },
	{ "", "foreign", "Datagrams of other sessions heard on the group." },
	{ "", "naks_off_path", "NAKs dropped because their source is not on the link the group is sent on." },
	{ "", "receivers_heard", "srm receivers (by the id in their NAKs) heard in the last minute; at most 256 told apart." },
	{ "", "frames", "Kamaelia frames delivered whole." },
	{ "", "frames_bad", "Kamaelia frames dropped because their length did not match." },
	{ "", "frames_late", "Kamaelia frames that came after a later one, dropped." },
	{ "", "frames_missed", "Kamaelia frame numbers skipped." },
	{ "", "incomplete_chunks", "Kamaelia chunks cut off by the next sync." },
	{ "", "sessions_refused", "Sessions not followed because the session table was full." },
	{ "", "sessions_expired", "Sessions forgotten after their sender was silent for the timeout." },
	{ "", "objects_too_large", "Objects given up and removed on passing max-object-size." },
	{ "", "naks_sent", "NAKs sent for missing datagrams." },
	{ "", "naks_heard", "Other receivers' NAKs heard on the group." },
	{ "", "naks_suppressed", "NAKs not sent because another receiver had asked." },
	{ "", "duplicates", "Datagrams received twice, dropped." },
	{ "", "lost", "Datagrams given up as lost." },
	{ "", "delivered_objects", "Objects delivered whole and verified." },
	{ "", "unrecoverable", "Objects not delivered because data had left the sender's window." },
	{ "", "bad_crc", "Objects whose size or CRC32C did not match at their end, not delivered." },
	{ "", "incomplete", "Objects given up because the sender went quiet." },
	{ "", "rtt_us", "The longest smoothed NAK-to-repair time of the followed sessions, microseconds." },
	{ "", "parity_sent", "srm parity (FEC) datagrams sent, proactive and in answer to NAKs." },
	{ "", "parity_held_off", "NAKed datagrams the parity already sent for their block within hold-off covered." },
	{ "", "parity_exhausted", "NAKed datagrams repaired plainly because their block's N parity were spent." },
	{ "", "parity_partial", "NAKed datagrams repaired plainly because their block was not sent or kept whole." },
	{ "", "parity_received", "srm parity (FEC) datagrams received for followed sessions." },
	{ "", "parity_unneeded", "srm parity datagrams received for blocks with nothing left to rebuild." },
	{ "", "parity_dropped", "srm parity datagrams not kept: over a bound, past the window, or not matching their block." },
	{ "", "fec_recovered", "Datagrams rebuilt from parity (FEC) and delivered as if received." },
	{ "", "fec_failed", "Datagrams rebuilt from parity whose CRC32C or fields were wrong, dropped." },
	{ "", "live_bytes", "srm object bytes handed in order to the listener's stream routes." },
	{ "", "live_objects", "srm objects that ended on a live = true listener (not verified, not stored)." },
	{ "session", "datagrams", "srm datagrams of this session's sender received (data, repairs, parity, control)." },
	{ "session", "naks_sent", "NAKs this receiver sent for the session." },
	{ "session", "naks_suppressed", "NAKs for the session not sent because another receiver had asked." },
	{ "session", "duplicates", "Datagrams of the session received twice, dropped." },
	{ "session", "lost", "Datagrams of the session given up as lost." },
	{ "session", "delivered_objects", "Objects of the session delivered whole and verified." },
	{ "session", "unrecoverable", "Objects of the session not delivered: data had left the sender's window." },
	{ "session", "rtt_us", "The session's smoothed NAK-to-repair time, microseconds." },
	{ "sender", "playing", "1 while this sender's payload is played, else 0." },
	{ "sender", "valid", "1 once the sender passed probation (RFC 3550 A.1), else 0." },
	{ "sender", "received", "RTP packets received from the sender." },
	{ "sender", "lost", "RTP packets of the sender lost (RFC 3550 A.3 cumulative loss)." },
	{ "sender", "late", "RTP packets of the sender that came after their place was played or given up." },
	{ "sender", "duplicates", "RTP packets of the sender received twice, dropped." },
	{ "sender", "reordered", "RTP packets of the sender that came after a later one, still in time." },
	{ "sender", "skipped", "Gaps in the sender's packets given up in the reorder buffer." },
	{ "sender", "played", "RTP packets of the sender played (recorded and tapped)." },
	{ "sender", "restarts", "Times the sender's sequence restarted (RFC 3550 A.1)." },
	{ "sender", "malformed", "Malformed datagrams whose SSRC was this sender's." },
	{ "sender", "jitter_us", "Interarrival jitter of the sender's packets (RFC 3550 A.8)." },
	{ "receiver", "fraction_lost", "Fraction of packets the receiver lost since its previous report, out of 256." },
	{ "receiver", "lost", "Packets the receiver reports lost in all (RFC 3550 cumulative loss)." },
	{ "receiver", "highest_sequence", "The extended highest sequence number the receiver has had." },
	{ "receiver", "jitter_us", "Interarrival jitter the receiver reports." },
	{ "receiver", "rtt_us", "Round trip to the receiver, from its LSR and DLSR (RFC 3550 6.4.1)." },
	{ "receiver", "last_heard_ms", "Time since the receiver's last report." },
	{ "receiver", "reports", "Receiver reports about this stream received from the receiver." },
	{ "route", "clients", "HTTP clients of the stream route now." },
	{ "route", "served", "HTTP clients the stream route has served." },
	{ "route", "dropped_slow", "HTTP clients dropped because their output passed client-buffer." },
	{ "route", "refused_full", "HTTP clients answered 503 at max-clients." },
	{ "route", "datagrams", "Datagrams the stream route took from its listener." },
	{ "route", "bytes_in", "Bytes the stream route took from its listener." },
	{ "route", "bytes_out", "Bytes the stream route queued for its clients." },
	{ "route", "swarms", "Torrents the tracker route keeps peers of now." },
	{ "route", "tracker_peers", "Peers the tracker route keeps now, all torrents." },
	{ "route", "announces", "Announces the tracker route has answered." },
	{ "route", "announce_failures", "Announces answered with a failure reason (malformed, or a full table)." },
	{ "route", "table_full", "Announces refused because max-swarms, max-peers or max-peers-per-address was reached." },
	{ "", "torrents", "Torrents seeded now." },
	{ "", "connected_peers", "Peers connected now, all torrents." },
	{ "", "uploaded_bytes", "Payload bytes uploaded, all torrents seeded now, each since first seeded (resume data)." },
	{ "", "rejected", "Files not seeded: the torrent could not be made or added, or max-torrents." },
	{ "torrent", "peers", "Peers connected to the torrent now." },
	{ "torrent", "uploaded_bytes", "Payload bytes of the torrent uploaded since first seeded (kept in its resume data)." },
	{ "torrent", "upload_rate", "Payload bytes per second the torrent uploads now." },
	{ "upstream", "connections", "Connections open to the upstream now." },
	{ "upstream", "connects", "Connections made to the upstream." },
	{ "upstream", "failures", "Connection attempts to the upstream that failed." },
	{ "upstream", "bytes_up", "Bytes relayed from clients to the upstream." },
	{ "upstream", "bytes_down", "Bytes relayed from the upstream to clients." },
	{ "upstream", "up", "1 when the upstream is taken as reachable, else 0." },
	{ "upstream", "backoff_ms", "Time left before the upstream is tried again." },
	{ "source", "bytes", "Bytes read from the source." },
	{ "source", "datagrams", "Datagrams read from a listener source." },
	{ "source", "restarts", "Times the source was started again." },
	{ "source", "failures", "Times the source failed." },
	{ "source", "dropped", "Source bytes or datagrams dropped for lack of room." },
	{ "netsim", "in", "Datagrams into the fault simulator." },
	{ "netsim", "out", "Datagrams out of the fault simulator." },
	{ "netsim", "lost", "Datagrams the fault simulator dropped." },
	{ "netsim", "duplicated", "Datagrams the fault simulator duplicated." },
	{ "netsim", "reordered", "Datagrams the fault simulator reordered." },
	{ "netsim", "delayed", "Datagrams the fault simulator delayed." },
	{ "netsim", "corrupted", "Datagrams the fault simulator corrupted." },
	{ "netsim", "overflow", "Datagrams dropped because the fault simulator held max-held." },
};

/* Levels rather than counts: a module key that can go down. A time (a
 * key in _ms or _us) is a level too. */
static const char *const gauge_keys[] = {
	"connections", "children", "up", "clients", "receivers", "playing", "valid", "fraction_lost",
	"highest_sequence", "torrents", "connected_peers", "peers", "upload_rate", "swarms", "tracker_peers",
	"command_waiting", "files_waiting", "receivers_heard", NULL,
};

/* Status keys that name something rather than count it (an SSRC): the
 * status page shows them, /metrics does not. */
static const char *const not_metric_keys[] = { "receiver_ssrc", NULL };

static bool is_metric(const char *key)
{
	for (size_t i = 0; not_metric_keys[i] != NULL; i++)
		if (strcmp(not_metric_keys[i], key) == 0)
			return false;
	return true;
}

/* How a module key is exported: its family name (Prometheus conventions:
 * snake case, a counter ends in _total, times in seconds), its type and
 * the divisor that turns its value into the unit the name says. */
struct metric_family {
	char name[192];
	bool gauge;
	unsigned divisor;		/* 1, 1000 for a key in ms, 1000000 in us */
};

static bool ends_with(const char *text, const char *suffix)
{
	size_t len = strlen(text), n = strlen(suffix);
	return len >= n && strcmp(text + len - n, suffix) == 0;
}

static void metric_family(struct metric_family *f, const char *protocol, const char *kind, const char *key)
{
	size_t key_len = strlen(key);

	f->divisor = ends_with(key, "_ms") ? 1000 : ends_with(key, "_us") ? 1000000 : 1;
	f->gauge = f->divisor != 1;
	for (size_t i = 0; gauge_keys[i] != NULL; i++)
		f->gauge = f->gauge || strcmp(gauge_keys[i], key) == 0;
	if (f->divisor != 1)
		key_len -= 3;
	snprintf(f->name, sizeof(f->name), "chassisd_%s_%s%s%.*s%s%s", protocol, kind, kind[0] ? "_" : "", (int)key_len,
		 key, f->divisor != 1 ? "_seconds" : "", f->gauge ? "" : "_total");
	for (char *p = f->name; *p; p++)
		if (*p == '-')
			*p = '_';
}

static void metric_head(struct evbuffer *out, const struct metric_family *f, const char *protocol, const char *kind,
			const char *key)
{
	const char *help = NULL;

	for (size_t i = 0; i < sizeof(module_help) / sizeof(module_help[0]) && help == NULL; i++)
		if (strcmp(module_help[i].kind, kind) == 0 && strcmp(module_help[i].key, key) == 0)
			help = module_help[i].help;
	if (help != NULL)
		evbuffer_add_printf(out, "# HELP %s %s\n", f->name, help);
	else
		evbuffer_add_printf(out, "# HELP %s The %s module's %s%s%s count.\n", f->name, protocol, kind,
				    kind[0] ? " " : "", key);
	evbuffer_add_printf(out, "# TYPE %s %s\n", f->name, f->gauge ? "gauge" : "counter");
}

static void metric_value(struct evbuffer *out, const struct metric_family *f, unsigned long long value)
{
	if (f->divisor == 1)
		evbuffer_add_printf(out, " %llu\n", value);
	else
		evbuffer_add_printf(out, f->divisor == 1000 ? " %llu.%03llu\n" : " %llu.%06llu\n", value / f->divisor,
				    value % f->divisor);
}

static bool has_key(const char *counters, const char *key)
{
	char other[64];
	unsigned long long value;

	while (info_next_counter(&counters, other, sizeof(other), &value))
		if (strcmp(other, key) == 0)
			return true;
	return false;
}

/* Module counters become chassisd_<protocol>_<key>[_total], one family per
 * pair, samples grouped as the format requires. */
static void metrics_module(struct evbuffer *out, const struct info_snapshot *snap)
{
	for (size_t i = 0; i < snap->count; i++) {
		const char *cursor = snap->listeners[i].module, *protocol = snap->listeners[i].stats.protocol;
		char key[64];
		unsigned long long value;

		while (info_next_counter(&cursor, key, sizeof(key), &value)) {
			struct metric_family f;
			bool seen = false;

			/* A unit of the same protocol may have other keys (a udp
			 * listener and a udp stream): each key once, by its first. */
			for (size_t j = 0; j < i && !seen; j++)
				seen = strcmp(snap->listeners[j].stats.protocol, protocol) == 0 &&
				       has_key(snap->listeners[j].module, key);
			if (seen || !is_metric(key))
				continue;
			metric_family(&f, protocol, "", key);
			metric_head(out, &f, protocol, "", key);
			for (size_t k = i; k < snap->count; k++) {
				const char *other = snap->listeners[k].module;
				char other_key[64];
				unsigned long long other_value;

				if (strcmp(snap->listeners[k].stats.protocol, protocol) != 0)
					continue;
				while (info_next_counter(&other, other_key, sizeof(other_key), &other_value))
					if (strcmp(other_key, key) == 0) {
						labels(out, f.name, &snap->listeners[k].stats);
						evbuffer_add_printf(out, "}");
						metric_value(out, &f, other_value);
					}
			}
		}
	}
}

/* Every sample of one row family: chassisd_<protocol>_<kind>_<key> with
 * the row's name as a label named after its kind. */
static void metrics_row_family(struct evbuffer *out, const struct info_snapshot *snap, const char *protocol,
			       const char *kind, const char *key, const struct metric_family *f)
{
	for (size_t k = 0; k < snap->count; k++) {
		const char *cursor = snap->listeners[k].stats.module_rows;
		struct info_row row;

		if (strcmp(snap->listeners[k].stats.protocol, protocol) != 0)
			continue;
		while (info_next_row(&cursor, &row)) {
			const char *c = row.counters;
			char other[64];
			unsigned long long value;

			if (strcmp(row.kind, kind) != 0)
				continue;
			while (info_next_counter(&c, other, sizeof(other), &value)) {
				if (strcmp(other, key) != 0)
					continue;
				labels(out, f->name, &snap->listeners[k].stats);
				evbuffer_add_printf(out, ",%s=\"", kind);
				label_value(out, row.name);
				evbuffer_add_printf(out, "\"}");
				metric_value(out, f, value);
			}
		}
	}
}

#define INFO_ROW_FAMILIES_MAX 256

/* Each family once, with all its samples, as the format requires. */
static void metrics_rows(struct evbuffer *out, const struct info_snapshot *snap)
{
	static char seen[INFO_ROW_FAMILIES_MAX][192];
	size_t n_seen = 0;

	for (size_t i = 0; i < snap->count; i++) {
		const char *protocol = snap->listeners[i].stats.protocol;
		const char *cursor = snap->listeners[i].stats.module_rows;
		struct info_row row;

		while (info_next_row(&cursor, &row)) {
			const char *c = row.counters;
			char key[64];
			unsigned long long value;
			struct metric_family f;
			bool known;

			while (info_next_counter(&c, key, sizeof(key), &value)) {
				metric_family(&f, protocol, row.kind, key);
				known = false;
				for (size_t n = 0; n < n_seen && !known; n++)
					known = strcmp(seen[n], f.name) == 0;
				if (known || n_seen == INFO_ROW_FAMILIES_MAX)
					continue;
				memcpy(seen[n_seen++], f.name, sizeof(f.name));
				metric_head(out, &f, protocol, row.kind, key);
				metrics_row_family(out, snap, protocol, row.kind, key, &f);
			}
		}
	}
}

static void metrics_tls_expiry(struct evbuffer *out, const struct info_snapshot *snap)
{
	bool head = false;

	for (size_t i = 0; i < snap->count; i++) {
		const struct chassis_listener_stats *s = &snap->listeners[i].stats;

		if (!s->tls)
			continue;
		if (!head)
			evbuffer_add_printf(out, "# HELP chassisd_listener_tls_certificate_expiry_seconds Seconds until "
						 "the listener's first certificate to end ends (0 once past).\n"
						 "# TYPE chassisd_listener_tls_certificate_expiry_seconds gauge\n");
		head = true;
		sample(out, "chassisd_listener_tls_certificate_expiry_seconds", s, s->tls_certificate_expiry_seconds);
	}
}

/* The chassis's counters, a family each, with a sample for each unit
 * whose transport has it; a family no unit has is left out. */
static void metrics_chassis_counters(struct evbuffer *out, const struct info_snapshot *snap)
{
	bool head = false;

	for (size_t i = 0; i < snap->count; i++) {
		const struct chassis_listener_stats *s = &snap->listeners[i].stats;

		if (!info_has_connections(s))
			continue;
		if (!head)
			evbuffer_add_printf(out, "# HELP chassisd_listener_connections Open connections per listener.\n"
						 "# TYPE chassisd_listener_connections gauge\n");
		head = true;
		sample(out, "chassisd_listener_connections", s, s->connections);
	}
	metrics_tls_expiry(out, snap);
	for (size_t c = 0; c < info_n_counters; c++) {
		char family[96];

		snprintf(family, sizeof(family), "chassisd_listener_%s_total", info_counters[c].key);
		head = false;
		for (size_t i = 0; i < snap->count; i++) {
			const struct chassis_listener_stats *s = &snap->listeners[i].stats;

			if (!info_counter_applies(&info_counters[c], s))
				continue;
			if (!head)
				evbuffer_add_printf(out, "# HELP %s %s\n# TYPE %s counter\n", family, info_counters[c].help,
						    family);
			head = true;
			sample(out, family, s, info_counter_value(&info_counters[c], s));
		}
	}
}

static void metrics_write(struct evbuffer *out, const struct info_snapshot *snap)
{
	evbuffer_add_printf(out,
			    "# HELP chassisd_reload_generation Configurations applied since start, 1 at start.\n"
			    "# TYPE chassisd_reload_generation gauge\nchassisd_reload_generation %u\n"
			    "# HELP chassisd_uptime_seconds Seconds since the daemon started.\n"
			    "# TYPE chassisd_uptime_seconds gauge\nchassisd_uptime_seconds %llu\n"
			    "# HELP chassisd_connections Open connections, all listeners.\n"
			    "# TYPE chassisd_connections gauge\nchassisd_connections %u\n"
			    "# HELP chassisd_max_connections The daemon-wide connection limit.\n"
			    "# TYPE chassisd_max_connections gauge\nchassisd_max_connections %u\n",
			    snap->totals.generation, (unsigned long long)snap->totals.uptime_seconds,
			    snap->totals.connections, snap->totals.max_connections);
	metrics_chassis_counters(out, snap);
	metrics_module(out, snap);
	metrics_rows(out, snap);
}

static void metrics_serve(struct http_exchange *ex, const struct http_route *route, void *route_state)
{
	info_serve(ex, metrics_write, "text/plain; version=0.0.4; charset=utf-8", "Cache-Control: no-store\r\n");
	(void)route;
	(void)route_state;
}

const struct http_handler http_handler_metrics = {
	.name = "metrics",
	.options = (const char *const[]){ NULL },
	.methods = HTTP_ALLOW_GET | HTTP_ALLOW_HEAD,
	.serve = metrics_serve,
};
