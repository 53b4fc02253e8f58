/* The configuration snapshot: parsed, validated, immutable, plain C.
 *
 * conf_load() reads a libconfuse file, checks everything it can without
 * binding a socket, and returns either a snapshot or every error found, each
 * as "FILE:LINE: message". Nothing of libconfuse survives in the snapshot. */
#ifndef CHASSISD_CONF_H
#define CHASSISD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/types.h>

#include "conf/addr.h"

struct cfg_t;
struct cfg_opt_t;
struct conf_scope;

enum transport {
	TRANSPORT_TCP,
	TRANSPORT_UDP,
	TRANSPORT_MULTICAST,
};
#define TRANSPORT_BIT(t) (1u << (t))

/* Defaults for every limit; each has an option of the same name. */
#define CONF_DEFAULT_MAX_CONNECTIONS 16384	/* daemon-wide */
#define CONF_DEFAULT_SHUTDOWN_GRACE 10		/* seconds */
#define CONF_DEFAULT_MAX_CHILDREN 64		/* programs run at once, daemon-wide */
#define CONF_DEFAULT_LISTENER_MAX_CONNECTIONS 1024
#define CONF_DEFAULT_PER_SOURCE 256
#define CONF_DEFAULT_IDLE_TIMEOUT 300		/* seconds; 0 = none */
#define CONF_DEFAULT_BUFFER_SIZE (256 * 1024)	/* bytes queued per connection */
#define CONF_DEFAULT_NOTSENT_LOWAT (16 * 1024)	/* unsent bytes in the kernel per connection */

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
};

/* What every unit has, whatever its kind (a listener; streams to come):
 * its name, where it is written, and the module that runs it. */
struct conf_unit {
	char *name;
	int line;				/* where the section starts */
	const struct conf_module *module;
	void *settings;				/* the module's own, from configure() */
};

struct conf_listener {
	struct conf_unit unit;
	int address_line;			/* where a bind error points */
	enum transport transport;
	char *address;				/* as written, for messages */
	struct endpoint endpoint;		/* the bind address; the group for multicast */
	/* multicast only */
	char *interface;
	unsigned ifindex;			/* 0 when given as an IPv4 address */
	struct in_addr if_addr;
	int ttl;
	bool loop;
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
};

struct conf {
	char *path;
	int log_level;				/* syslog priority: LOG_ERR .. LOG_DEBUG */
	/* Who to become once every socket is bound; NULL = stay as started. */
	char *user;
	char *group;
	uid_t uid;
	gid_t gid;
	unsigned max_connections;
	unsigned shutdown_grace;
	unsigned max_children;
	struct conf_listener *listeners;
	size_t n_listeners;
};

struct conf_errors {
	char **lines;
	size_t count;
	size_t cap;
};

/* modules: NULL-terminated, the protocols a listener may name. */
struct conf *conf_load(const char *path, const struct conf_module *const *modules, struct conf_errors *errors);
void conf_free(struct conf *conf);
void conf_errors_add(struct conf_errors *errors, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void conf_errors_clear(struct conf_errors *errors);

/* Same socket: a reload keeps it open rather than binding again. */
bool conf_listener_same_socket(const struct conf_listener *a, const struct conf_listener *b);
/* allow/deny: deny wins; with no allow list everyone else may. */
bool conf_listener_allows(const struct conf_listener *l, const struct sockaddr *peer);
const char *transport_name(enum transport transport);
const char *log_level_name(int level);

/* What a protocol's configure() hook gets: where its section is, and a way
 * to report errors against the right line. */
int conf_scope_line(const struct conf_scope *scope, const char *option);
void conf_scope_error(struct conf_scope *scope, const char *option, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *conf_scope_listener(const struct conf_scope *scope);
enum transport conf_scope_transport(const struct conf_scope *scope);
bool conf_scope_written(const struct conf_scope *scope, const char *option);
/* An integer option within [min, max], else an error at its line. */
bool conf_scope_int(struct conf_scope *scope, struct cfg_t *sec, const char *option, long min, long max,
		    long *value);
/* A section nested in the scope's (an HTTP route, a module's options in it):
 * its errors read "listener \"web\": <label>: ...". Leaving frees it and
 * says whether it had no errors; the outer scope fails with it. */
struct conf_scope *conf_scope_enter(struct conf_scope *scope, struct cfg_t *section, const char *label);
bool conf_scope_leave(struct conf_scope *inner);

#endif
