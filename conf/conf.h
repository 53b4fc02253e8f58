/* The configuration snapshot: parsed, validated, immutable, plain C.
 *
 * conf_load() reads a libconfuse file, checks everything it can without
 * binding a socket, and returns either a snapshot or every error found, each
 * as "FILE:LINE: message". Nothing of libconfuse survives in the snapshot. */
#ifndef CHASSISD_CONF_H
#define CHASSISD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sys/types.h>

#include "conf/addr.h"
#include "conf/errors.h"
#include "conf/scope.h"

struct cfg_t;
struct cfg_opt_t;
struct conf_scope;
struct conf_tls;
struct conf_tls_client;

#define TRANSPORT_BIT(t) (1u << (t))
/* In a module's transports mask: it runs as a stream unit too. */
#define UNIT_STREAM_BIT (1u << 8)
/* With UNIT_STREAM_BIT: the stream is its own source and its peers come to
 * it (torrent), so it has no "source { }" and no destination. */
#define UNIT_STREAM_SELF_BIT (1u << 9)
/* With UNIT_STREAM_BIT: the stream may leave "source { }" out and read
 * what it sends itself (srm's directory); its source is then SOURCE_NONE,
 * and the module's configure() says whether that will do. */
#define UNIT_STREAM_SOURCE_OPTIONAL_BIT (1u << 10)

/* Defaults for every limit; each has an option of the same name. */
#define CONF_DEFAULT_MAX_CONNECTIONS 16384	/* daemon-wide */
#define CONF_DEFAULT_SHUTDOWN_GRACE 10		/* seconds */
#define CONF_DEFAULT_MAX_CHILDREN 64		/* programs run at once, daemon-wide */
#define CONF_DEFAULT_LISTENER_MAX_CONNECTIONS 1024
#define CONF_DEFAULT_PER_SOURCE 256
#define CONF_DEFAULT_IDLE_TIMEOUT 300		/* seconds; 0 = none */
#define CONF_DEFAULT_BUFFER_SIZE (256 * 1024)	/* bytes queued per connection */
#define CONF_MAX_RECEIVE_BUFFER (256 * 1024 * 1024)
#define CONF_DEFAULT_NOTSENT_LOWAT (16 * 1024)	/* unsent bytes in the kernel per connection */
#define CONF_DEFAULT_CONTROL_SOCKET "/run/chassisd/control"	/* systemd's RuntimeDirectory=chassisd */
#define CONF_DEFAULT_CONTROL_TIMEOUT 10		/* seconds a control client may take to ask */
#define CONF_DEFAULT_CONTROL_MAX_CLIENTS 8	/* control connections at once */
#define CONF_CONTROL_PATH_MAX 108		/* sizeof(sockaddr_un.sun_path) */

/* What the loader knows of a protocol module. main.c hands conf_load()
 * the table, so that conf/ includes no module and stays the ground floor;
 * each module's descriptor (daemon/protocol.h) begins with this. */
struct conf_module {
	const char *name;
	unsigned transports;			/* TRANSPORT_BIT() mask */
	/* The options of the nested "<name> { }" section, and a hook that
	 * checks them and returns private settings (NULL with an error
	 * reported through the scope when invalid). */
	struct cfg_opt_t *options;
	void *(*configure)(struct cfg_t *section, struct conf_scope *scope);
	void (*settings_free)(void *settings);
	/* For -T: whether an option of the section applies, given its other
	 * options and the side (a stream's or a listener's section), so that
	 * the effective config shows every option that applies with its
	 * default, and none that configure() would refuse. NULL: all apply. */
	bool (*option_applies)(struct cfg_t *section, bool stream, const char *option);
	/* The socket goes to a program (exec): no tls { } on its listeners. */
	bool hands_over_socket;
	/* The module streams bytes between two sockets (relay): its
	 * notsent-lowat defaults to 0, the kernel's own send buffer. */
	bool streams_through;
};

/* What every unit has, whatever its kind (a listener; streams to come):
 * its name, where it is written, and the module that runs it. */
struct conf_unit {
	char *name;
	char *file;				/* the file the section is in (an include's) */
	int line;				/* where the section starts, in that file */
	bool enabled;				/* false: checked, then left out of the snapshot */
	const struct conf_module *module;
	void *settings;				/* the module's own, from configure() */
};

/* Fault simulation on a unit's datagrams (Kamaelia's BrokenNetwork, made
 * configurable and repeatable): probabilities from 0 to 1, a reorder
 * window in datagrams, a delay with jitter in milliseconds. The same seed
 * gives the same run. */
struct conf_netsim {
	bool enabled;				/* the section was written */
	double loss, duplicate, corrupt;
	unsigned reorder;			/* 0 = keep the order */
	unsigned delay_ms, jitter_ms;
	unsigned long long seed;
	unsigned max_held;			/* datagrams held back at most */
};

struct conf_listener {
	struct conf_unit unit;
	char *address_file;			/* where a bind error points */
	int address_line;
	enum transport transport;
	char *address;				/* as written, for messages */
	struct endpoint endpoint;		/* the bind address; the group for multicast */
	/* multicast only */
	char *interface;
	unsigned ifindex;			/* 0 when given as an IPv4 address */
	struct in_addr if_addr;
	int ttl;
	bool loop;
	/* Member of the group only while something takes its datagrams (a
	 * stream route's clients, a stream's listener source): a tap. */
	bool join_on_demand;
	/* udp and multicast: SO_RCVBUF in bytes; 0 = what the socket got */
	unsigned receive_buffer;
	/* all transports */
	bool required;				/* a bind failure at start is fatal */
	struct cidr *allow, *deny;
	size_t n_allow, n_deny;
	bool allow_listed;			/* allow written: only those in it, maybe none */
	/* tcp only */
	unsigned max_connections;
	unsigned per_source;
	unsigned idle_timeout;
	size_t buffer_size;
	unsigned notsent_lowat;			/* 0 = the kernel's sysctl */
	bool connection_log;			/* a line per closed connection */
	struct conf_tls *tls;			/* NULL: plain TCP */
	/* udp and multicast: applied to what is received */
	struct conf_netsim netsim;
};

/* Where a stream's bytes come from: exactly one kind. */
enum source_kind {
	SOURCE_FILE,
	SOURCE_COMMAND,
	SOURCE_URL,
	SOURCE_LISTENER,
	SOURCE_NONE,				/* none written (UNIT_STREAM_SOURCE_OPTIONAL_BIT) */
};

struct conf_source {
	enum source_kind kind;
	char *file;
	bool loop;				/* file: start again at the end */
	char **command;				/* argv, NULL-terminated, argv[0] absolute */
	char *url;
	bool icecast;				/* url: ask for ICY metadata, strip it */
	char *listener;				/* the datagram listener whose datagrams are sent */
	size_t read_ahead;			/* bytes buffered ahead of the sender at most */
	unsigned connect_timeout_ms;		/* url */
	unsigned low_speed_time_ms;		/* url: below 1 byte/s this long is a stall */
	unsigned max_redirects;			/* url */
	unsigned backoff_ms, backoff_max_ms;	/* url, command: restart delay, doubled */
	struct conf_tls_client *tls;		/* url: how an https server is checked; NULL: verified against the system's CAs */
};

struct conf_stream {
	struct conf_unit unit;
	struct endpoint *destinations;
	char **destination_text;		/* as written, for messages */
	size_t n_destinations;
	char *interface;			/* required with a multicast destination */
	unsigned ifindex;
	struct in_addr if_addr;
	int ttl;
	bool loop;
	struct conf_source source;
	size_t packet_size;			/* bytes per datagram */
	unsigned long long rate;		/* bits per second; 0 = as fast as the source */
	unsigned queue;				/* datagrams waiting for the socket at most */
	struct conf_netsim netsim;
};

struct conf {
	char *path;
	int log_level;				/* syslog priority: LOG_ERR .. LOG_DEBUG */
	char *log_file;				/* "" = stderr */
	/* Who to become once every socket is bound; NULL = stay as started. */
	char *user;
	char *group;
	uid_t uid;
	gid_t gid;
	unsigned max_connections;
	unsigned shutdown_grace;
	unsigned max_children;
	char *control_socket;			/* "" = none */
	unsigned control_timeout;
	unsigned control_max_clients;
	/* What is valid but likely a mistake (nothing to serve, a path the
	 * shipped systemd unit hides), each "FILE[:LINE]: warning: what". */
	struct conf_errors warnings;
	struct conf_listener *listeners;
	size_t n_listeners;
	struct conf_stream *streams;
	size_t n_streams;
};


/* modules: NULL-terminated, the protocols a listener may name. */
struct conf *conf_load(const char *path, const struct conf_module *const *modules, struct conf_errors *errors);
void conf_free(struct conf *conf);
/* The control-socket the file names (or the default), read as far as the
 * file parses: a client reaches the daemon with a file whose errors only
 * the daemon's reload will report. NULL when the file cannot be read. */
char *conf_control_socket(const char *path, const struct conf_module *const *modules);
/* Loads path as conf_load() does and, when it is valid, prints the
 * effective config to out: includes expanded, every unit (those kept off
 * too) with every option that applies to it, defaults included, in the
 * file's own syntax, so that it reads back as the same config. */
bool conf_print_effective(const char *path, const struct conf_module *const *modules, FILE *out,
			  struct conf_errors *errors);

/* Everything the chassis runs a stream with is unchanged (the module's
 * own settings are its same() hook's business). */
bool conf_stream_same(const struct conf_stream *a, const struct conf_stream *b);
/* A copy a running stream keeps past the snapshot it came from. */
struct conf_source *conf_source_copy(const struct conf_source *src);
void conf_source_free(struct conf_source *src);

/* Same socket: a reload keeps it open rather than binding again. */
bool conf_listener_same_socket(const struct conf_listener *a, const struct conf_listener *b);
/* allow/deny: deny wins; with no allow list everyone else may. */
bool conf_listener_allows(const struct conf_listener *l, const struct sockaddr *peer);
const char *transport_name(enum transport transport);
const char *log_level_name(int level);

#endif
