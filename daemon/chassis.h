/* The chassis API: everything a protocol module may ask of a connection, a
 * datagram or the daemon. A module never frees its connection and never
 * touches the socket or libevent on it; it writes, asks to close, pauses
 * reading, and opens connections of its own with conn_connect(). */
#ifndef CHASSISD_CHASSIS_H
#define CHASSISD_CHASSIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

struct chassis;
struct conf_listener;
struct conf_stream;
struct conn;
struct conn_owner;
struct conn_profile;
struct tls_context;
struct connect;
struct evdns_base;
struct datagram;
struct event_base;
struct evbuffer;
struct evbuffer_file_segment;
struct log_field;

/* What a module does with one connection, accepted or its own outbound
 * one. open() may write a greeting; returning -1 closes the connection.
 * input() sees new bytes in `in`. end_of_input() runs when the peer shuts
 * down its write side; when NULL the chassis closes after the output is
 * flushed. drained() runs when output that had reached the buffer limit
 * falls to half of it. close() runs exactly once, whoever ends the
 * connection. */
struct conn_hooks {
	int (*open)(struct conn *conn);
	void (*input)(struct conn *conn, struct evbuffer *in);
	void (*end_of_input)(struct conn *conn);
	void (*drained)(struct conn *conn);
	void (*close)(struct conn *conn);
};

/* What a module's running state may use: given to start(), valid until
 * stop() has returned. */
struct unit_env {
	struct event_base *base;	/* for the module's own timers */
	const char *unit;		/* its unit's name, for log lines */
	struct chassis *chassis;	/* for chassis_hold() */
	/* The chassis's own, for conn_connect(): who owns the module's
	 * outbound connections, and what they start with. */
	struct conn_owner *outbound;
	const struct conn_profile *outbound_profile;
	/* A stream's: what the chassis sends with (destinations, source,
	 * rate, netsim). During start() only; copy what is kept. */
	const struct conf_stream *stream;
	/* A listener's: its address, group and interface. During start()
	 * only, for chassis_datagram_socket(). */
	const struct conf_listener *listener;
};

/* The daemon stays up while it is held: a module that must finish
 * something before a stop (a stream flushing) holds it until done. */
void chassis_hold(struct chassis *chassis);
void chassis_release(struct chassis *chassis);
/* True once the daemon stops (not for a reload), with its shutdown-grace
 * in seconds: a holder that cannot finish by then gives up. The stop
 * begins just after the units are stopped, so a holder looks from a
 * timer of its own. */
bool chassis_stopping(const struct chassis *chassis, unsigned *grace_s);

/* Connections (tcp). */
void conn_write(struct conn *conn, const void *data, size_t len);
/* Moves every byte of `data` to the output without copying. */
void conn_write_buffer(struct conn *conn, struct evbuffer *data);
/* Queues len bytes of fd from offset, sent with sendfile (over TLS read
 * with pread as it is sent); takes the fd. */
int conn_write_file(struct conn *conn, int fd, off_t offset, off_t len);
/* The same from a segment the caller keeps (an open-file cache): the
 * output takes its own reference. fd is the segment's file, which TLS
 * reads with pread: libevent gives no segment's fd, and would map the
 * file, which kills the daemon when the file is cut short under the map.
 * -1 only for a memory file of the module's own that nothing else can
 * truncate: mapped over TLS. */
int conn_write_file_segment(struct conn *conn, struct evbuffer_file_segment *segment, int fd, off_t offset,
			    off_t len);
/* True once the output has reached the buffer limit: a producer should
 * stop and wait for its drained() hook. */
bool conn_output_full(const struct conn *conn);
size_t conn_output_length(const struct conn *conn);
/* Sends what is queued, then closes. Safe to call from any hook. */
void conn_close_after_flush(struct conn *conn);
/* Sends what is queued, then shuts down the write side (the peer reads
 * EOF) and goes on reading. The connection ends once the peer's EOF has
 * come too. */
void conn_shutdown_after_flush(struct conn *conn);
/* Ends the connection now, queued output dropped, with a reset: what a
 * relay does to one side when the other resets. Safe from any hook, of
 * this connection or another. */
void conn_abort(struct conn *conn);
/* In the close hook: true when the connection ended in order (both sides
 * shut down, or the module closed it), false after a reset, a failed
 * read or write, an idle timeout or an abort. */
bool conn_ended_in_order(const struct conn *conn);
/* Milliseconds on a monotonic clock: what idle timeouts (and a module's
 * own back-offs) are measured in. */
uint64_t conn_clock_ms(void);
/* In the close hook: true when a file queued with conn_write_file*() ended
 * before its length (it was truncated while being sent). The connection
 * was reset, so the client knows the answer is cut. */
bool conn_ended_by_a_short_file(const struct conn *conn);
void conn_pause_reading(struct conn *conn);
void conn_resume_reading(struct conn *conn);
/* By default a full output also stops reading from the same connection:
 * right where the output is made from the input (echo, http). A module
 * that fills this output from another connection (a relay) turns that
 * off and pauses the other side itself; otherwise two connections, each
 * waiting for the other to read, would wait forever. */
void conn_decouple_directions(struct conn *conn);
/* inetd's way (exec): the socket, made blocking, for a program to own
 * as its stdin and stdout. From the open hook only, before anything is
 * read or written. The connection then neither reads nor writes nor
 * times out; it stays, and counts towards the listener's limits, until
 * the module closes it (conn_close_after_flush, at once: nothing is
 * queued). The caller closes the fd it got, once the program has its
 * copy; the connection-log has no byte counts for it. -1 when the
 * connection is past that point. */
int conn_hand_over_socket(struct conn *conn);

const struct sockaddr *conn_peer(const struct conn *conn);
const struct sockaddr *conn_local(struct conn *conn);
const void *conn_settings(const struct conn *conn);
void *conn_service_state(const struct conn *conn);
void *conn_data(const struct conn *conn);
void conn_set_data(struct conn *conn, void *data);
void conn_log(const struct conn *conn, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* One line in a fixed format (an access log): the connection's context and
 * `fields` go to journald as fields but stay out of the text. */
void conn_log_line(const struct conn *conn, int level, const struct log_field *fields, size_t n_fields,
		   const char *line);
/* Replaces the listener's idle-timeout for this connection (keep-alive);
 * 0 = never. Checked twice a second, so whole seconds are what count. */
void conn_set_idle_timeout(struct conn *conn, unsigned seconds);

/* Outbound connections. host is an IP literal or a name, resolved without
 * blocking the loop (evdns: /etc/hosts, then the resolv.conf servers);
 * each address it has is tried in turn within timeout_ms in all. On
 * success a connection opens with `hooks` and conn_data() = arg, and its
 * open() hook runs; it belongs to the unit, with the unit's buffer-size
 * and idle-timeout. Otherwise failed(arg, errno) runs once: ECONNREFUSED,
 * ETIMEDOUT, EHOSTUNREACH ... (ENOENT: the name has no address). Neither
 * runs from inside conn_connect(). NULL (errno set) when it cannot even
 * start. */
typedef void connect_failed_fn(void *arg, int error);
struct connect *conn_connect(const struct unit_env *env, const char *host, unsigned port, unsigned timeout_ms,
			     const struct conn_hooks *hooks, connect_failed_fn *failed, void *arg);
/* The same over TLS with a client context (tls_client_context_new()):
 * the connect succeeds once the handshake has, the peer's certificate
 * checked against host (or the context's server-name); a failed
 * handshake is failed(arg, EPROTO), a slow one ETIMEDOUT. */
struct connect *conn_connect_tls(const struct unit_env *env, const char *host, unsigned port,
				 unsigned timeout_ms, const struct tls_context *tls, const struct conn_hooks *hooks,
				 connect_failed_fn *failed, void *arg);
/* Stops a connect in progress; nothing more is called. A module's stop()
 * cancels those it still has. */
void conn_connect_cancel(struct connect *connect);

/* Every datagram that the udp or multicast listener named `unit` receives
 * (and lets in), handed whole to fn as well as to the listener's module:
 * a stream that relays a group. The listener need not exist yet; a tap
 * follows the name across reloads. NULL when out of memory.
 * A module whose descriptor sets taps_get_payload (rtp) decides instead
 * what its taps see: fn gets what it passes to chassis_tap_payload(), for
 * rtp one call per RTP packet's payload, in sequence order, duplicates and
 * late packets left out. */
struct datagram_tap;
typedef void chassis_tap_fn(void *arg, const void *data, size_t len);
struct datagram_tap *chassis_tap_datagrams(struct chassis *chassis, const char *unit, chassis_tap_fn *fn,
					   void *arg);
void chassis_untap(struct datagram_tap *tap);
/* For a taps_get_payload module: hands data to every tap on `unit` (its
 * unit_env's), at once, from the caller's buffer. */
void chassis_tap_payload(struct chassis *chassis, const char *unit, const void *data, size_t len);

/* A datagram socket bound like the udp or multicast listener of env (its
 * address, its group joined on its interface, the same options) but at
 * `port`: an rtp listener's RTCP port. Non-blocking, with SO_REUSEADDR so
 * that the module's next instance (a reload that restarts it) can bind it
 * before this one closes; the caller closes it. During start() only; -1
 * with the reason in err. */
int chassis_datagram_socket(const struct unit_env *env, unsigned port, char *err, size_t err_len);

/* Documents a unit makes for others to serve (an RTP stream's SDP), by
 * name: the last one published under a name replaces it. Unpublishing
 * takes away only the owner's own (a restarted stream's new instance
 * publishes before the old one stops). */
int chassis_publish(struct chassis *chassis, const char *name, const char *content_type, const char *text,
		    const void *owner);
void chassis_unpublish(struct chassis *chassis, const char *name, const void *owner);
/* For a connection's module (an HTTP route): the text, or NULL. */
const char *chassis_published(const struct conn *conn, const char *name, const char **content_type);

/* The daemon as a whole, for status pages. */
struct chassis_totals {
	unsigned generation;		/* reloads applied, 1 at start */
	unsigned connections;
	unsigned max_connections;
	unsigned listeners;		/* active ones */
	uint64_t uptime_seconds;
};
struct chassis_listener_stats {
	const char *name, *protocol, *transport, *address;
	bool retired;			/* dropped by a reload, connections finishing */
	unsigned connections;
	uint64_t accepted, denied, refused_limit, refused_per_source, idle_closed, accept_paused;
	bool tls;			/* a tls { } listener: the tls_ counters apply */
	uint64_t tls_handshakes, tls_resumed, tls_version_1_2, tls_version_1_3;
	uint64_t tls_kernel_send;		/* handshakes after which the kernel sent the records (kTLS) */
	uint64_t tls_failed_protocol_version, tls_failed_no_shared_cipher, tls_failed_client_certificate;
	uint64_t tls_failed_timeout, tls_failed_other;
	uint64_t tls_certificate_expiry_seconds;	/* the soonest of its certificates */
	uint64_t datagrams, replies, dropped;
	const char *module_counters;	/* the module's own, "key=value ..." */
	/* The module's own table, a line per row: "KIND NAME key=value ...\n"
	 * (a relay's upstreams: "upstream 127.0.0.1:8080 connections=1 ..."). */
	const char *module_rows;
	/* Words: "KEY text\n" lines (a stream's source state and title). */
	const char *module_text;
};
void chassis_stats(const struct conn *conn, struct chassis_totals *totals,
		   void (*each)(const struct chassis_listener_stats *stats, void *arg), void *arg);

/* inetd's `wait` services (exec over udp). A module whose descriptor has
 * a socket_waiting hook gets no datagrams: the hook runs when one waits on
 * the listener's socket, unread (its source peeked and checked against
 * allow and deny), and the socket is the module's, blocking, until it
 * calls datagram_wait_done(): the chassis stops watching it meanwhile,
 * across reloads too. The settings and state are the current ones, to be
 * used during the hook. */
struct datagram_wait;
int datagram_wait_socket(const struct datagram_wait *wait);
const struct sockaddr *datagram_wait_source(const struct datagram_wait *wait);
const void *datagram_wait_settings(const struct datagram_wait *wait);
void *datagram_wait_service_state(const struct datagram_wait *wait);
/* Reads the waiting datagram, counts it as dropped, and gives the socket
 * back (over a cap: nobody would read it). */
void datagram_wait_drop(struct datagram_wait *wait, const char *reason);
/* Gives the socket back and frees wait; safe when the listener is gone. */
void datagram_wait_done(struct datagram_wait *wait);

/* Datagrams (udp, multicast). The payload is valid during the hook only. */
const struct sockaddr *datagram_source(const struct datagram *dgram);
const void *datagram_payload(const struct datagram *dgram, size_t *len);
const void *datagram_settings(const struct datagram *dgram);
void *datagram_service_state(const struct datagram *dgram);
/* Sends one datagram back to the source; never blocks. */
void datagram_reply(struct datagram *dgram, const void *data, size_t len);
/* Counts the datagram as dropped, with a reason for the debug log. */
void datagram_drop(struct datagram *dgram, const char *reason);
/* A source that must never get a reply: port 0, the echo and chargen ports
 * (7, 19: two reflectors would ping-pong forever), multicast, broadcast and
 * unspecified addresses (spoofed sources of amplification attacks). */
bool datagram_source_is_reflector(const struct datagram *dgram);

#endif
