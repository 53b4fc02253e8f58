/* exec: inetd's services. Over tcp `nowait`, a program per connection;
 * over udp `wait`, one program at a time with the listening socket.
 *
 * The accepted socket itself becomes the program's stdin and stdout, as
 * inetd and tcpserver do it: the daemon copies no byte, buffers nothing,
 * and closes its copy once the program has one. The connection stays in
 * the chassis while the program runs, so the listener's connection limits
 * (max-connections, per source) still count it; the program's timeout
 * stands in for the idle timeout, which cannot see the bytes. The child
 * runner gives it no shell, a clean environment (plus the ucspi-tcp
 * variables below and the listener's own), its own process group, a
 * deadline, the per-listener and daemon-wide caps, and a user to run as
 * when the daemon is root.
 *
 * Over udp the chassis lends the socket (chassis.h, datagram_wait) when a
 * datagram waits, unread: the program reads it (and any that follow while
 * it runs) itself, as in.tftpd expects, and the socket goes back when the
 * program exits. */
#include <errno.h>
#include <grp.h>
#include <netdb.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "daemon/log.h"
#include "daemon/protocol.h"
#include "protocols/support/child_spec.h"

/* A bound for every run: an echo session may last, a stuck one may not. */
#define EXEC_TIMEOUT_DEFAULT 3600
#define EXEC_MAX_CHILDREN_DEFAULT 64
#define EXEC_ENVIRONMENT_MAX 64
/* PROTO, four TCP*, REMOTE_ADDR, REMOTE_PORT. */
#define EXEC_CONNECTION_VARS 7
#define EXEC_VAR_MAX 96

static cfg_opt_t exec_options[] = {
	CHILD_PROGRAM_OPTIONS(EXEC_TIMEOUT_DEFAULT, EXEC_MAX_CHILDREN_DEFAULT),
	CFG_STR("user", NULL, CFGF_NODEFAULT),
	CFG_STR("group", NULL, CFGF_NODEFAULT),
	CFG_STR_LIST("environment", NULL, CFGF_NODEFAULT),
	CFG_END()
};

/* Set per connection: the listener's environment may not fake them. */
static const char *const exec_connection_names[] = {
	"PROTO", "TCPREMOTEIP", "TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT", "REMOTE_ADDR", "REMOTE_PORT", NULL,
};

struct exec_settings {
	struct child_spec child;
	char **environment;		/* the listener's "KEY=value" */
	size_t n_environment;
};

/* Keeps no pointer into the settings, so that it goes on across reloads
 * (same()): the cap then spans generations, and running programs stay. */
struct exec_state {
	struct event_base *base;
	char *listener;
	struct child_pool *pool;
	unsigned long long served, refused;
	/* udp: the program that has the socket now (inetd's wait). */
	struct datagram_wait *wait;
	struct child *wait_child;
};

/* One connection's program. */
struct exec_session {
	struct exec_state *state;
	struct conn *conn;
	struct child *child;		/* NULL once it has ended */
};

/* --- configuration -------------------------------------------------- */

static void exec_settings_free(void *p)
{
	struct exec_settings *settings = p;

	if (settings == NULL)
		return;
	child_spec_free(&settings->child);
	for (size_t i = 0; i < settings->n_environment; i++)
		free(settings->environment[i]);
	free(settings->environment);
	free(settings);
}

static bool exec_name_is_per_connection(const char *entry, size_t key_len)
{
	for (size_t i = 0; exec_connection_names[i] != NULL; i++)
		if (strlen(exec_connection_names[i]) == key_len && strncmp(entry, exec_connection_names[i], key_len) == 0)
			return true;
	return false;
}

static bool exec_environment_configure(struct exec_settings *settings, cfg_t *sec, struct conf_scope *scope)
{
	size_t n = cfg_size(sec, "environment");

	if (n > EXEC_ENVIRONMENT_MAX) {
		conf_scope_error(scope, "environment", "environment has %zu entries, at most %d", n, EXEC_ENVIRONMENT_MAX);
		return false;
	}
	settings->environment = calloc(n + 1, sizeof(char *));
	if (settings->environment == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		const char *entry = cfg_getnstr(sec, "environment", i);
		size_t key_len = strcspn(entry, "=");

		if (key_len == 0 || entry[key_len] != '=') {
			conf_scope_error(scope, "environment", "environment entry \"%s\" is not KEY=value", entry);
			return false;
		}
		if (exec_name_is_per_connection(entry, key_len)) {
			conf_scope_error(scope, "environment", "%.*s is set for each connection, not here", (int)key_len,
					 entry);
			return false;
		}
		settings->environment[i] = strdup(entry);
		if (settings->environment[i] == NULL)
			return false;
		settings->n_environment++;
	}
	return true;
}

/* Only root can run a program as someone else; a daemon already running
 * as that user needs no switch. */
static bool exec_identity_configure(struct child_spec *spec, cfg_t *sec, struct conf_scope *scope)
{
	const char *user = cfg_getstr(sec, "user"), *group = cfg_getstr(sec, "group");
	struct passwd *pw = user != NULL ? getpwnam(user) : NULL;
	struct group *gr = group != NULL ? getgrnam(group) : NULL;

	if (user == NULL && group != NULL) {
		conf_scope_error(scope, "group", "\"group\" needs \"user\" too");
		return false;
	}
	if (user == NULL)
		return true;
	if (pw == NULL) {
		conf_scope_error(scope, "user", "no such user \"%s\"", user);
		return false;
	}
	if (group != NULL && gr == NULL) {
		conf_scope_error(scope, "group", "no such group \"%s\"", group);
		return false;
	}
	spec->uid = pw->pw_uid;
	spec->gid = gr != NULL ? gr->gr_gid : pw->pw_gid;
	if (geteuid() == spec->uid && getegid() == spec->gid)
		return true;
	if (geteuid() != 0) {
		conf_scope_error(scope, "user",
				 "user \"%s\": chassisd runs as uid %u, not root, and cannot run a program as another "
				 "user: remove \"user\" and \"group\", or start chassisd as root",
				 user, (unsigned)geteuid());
		return false;
	}
	spec->switch_user = true;
	return true;
}

static void *exec_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct exec_settings *settings = calloc(1, sizeof(*settings));
	bool ok;

	if (settings == NULL)
		return NULL;
	ok = child_spec_configure_program(&settings->child, sec, scope, NULL);
	ok &= exec_identity_configure(&settings->child, sec, scope);
	ok &= exec_environment_configure(settings, sec, scope);
	if (!ok) {
		exec_settings_free(settings);
		return NULL;
	}
	return settings;
}

/* --- per connection --------------------------------------------------- */

/* What tcpserver (ucspi-tcp) sets, and the CGI-style names. */
static void exec_connection_environment(struct conn *conn, char vars[][EXEC_VAR_MAX])
{
	char remote_ip[NI_MAXHOST] = "", remote_port[NI_MAXSERV] = "", local_ip[NI_MAXHOST] = "",
	     local_port[NI_MAXSERV] = "";
	const struct sockaddr *peer = conn_peer(conn), *local = conn_local(conn);
	int flags = NI_NUMERICHOST | NI_NUMERICSERV;

	getnameinfo(peer, peer->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		    remote_ip, sizeof(remote_ip), remote_port, sizeof(remote_port), flags);
	getnameinfo(local, local->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		    local_ip, sizeof(local_ip), local_port, sizeof(local_port), flags);
	snprintf(vars[0], EXEC_VAR_MAX, "PROTO=TCP");
	snprintf(vars[1], EXEC_VAR_MAX, "TCPREMOTEIP=%s", remote_ip);
	snprintf(vars[2], EXEC_VAR_MAX, "TCPREMOTEPORT=%s", remote_port);
	snprintf(vars[3], EXEC_VAR_MAX, "TCPLOCALIP=%s", local_ip);
	snprintf(vars[4], EXEC_VAR_MAX, "TCPLOCALPORT=%s", local_port);
	snprintf(vars[5], EXEC_VAR_MAX, "REMOTE_ADDR=%s", remote_ip);
	snprintf(vars[6], EXEC_VAR_MAX, "REMOTE_PORT=%s", remote_port);
}

static void exec_finished(void *owner, enum child_end end)
{
	struct exec_session *session = owner;

	session->child = NULL;
	if (end == CHILD_OK)
		session->state->served++;
	/* The program had the only other copy of the socket: the peer has
	 * seen its close already; this ends the accounting. */
	conn_close_after_flush(session->conn);
}

static void exec_no_output(void *owner, struct evbuffer *data)
{
	(void)owner;
	(void)data;			/* the socket is the program's stdout */
}

static const struct child_hooks exec_hooks = {
	.output = exec_no_output,
	.finished = exec_finished,
};

static struct child *exec_spawn(struct exec_session *session, int fd, char *err, size_t err_len)
{
	const struct exec_settings *settings = conn_settings(session->conn);
	char vars[EXEC_CONNECTION_VARS][EXEC_VAR_MAX];
	char *env[EXEC_ENVIRONMENT_MAX + EXEC_CONNECTION_VARS + 1];
	size_t n = 0;

	exec_connection_environment(session->conn, vars);
	for (size_t i = 0; i < settings->n_environment; i++)
		env[n++] = settings->environment[i];
	for (size_t i = 0; i < EXEC_CONNECTION_VARS; i++)
		env[n++] = vars[i];
	env[n] = NULL;
	return child_spawn_io(session->state->base, &settings->child, session->state->pool, session->state->listener,
			      &(struct child_io){ .socket = fd, .environment = env }, &exec_hooks, session, err,
			      err_len);
}

static int exec_open(struct conn *conn)
{
	struct exec_state *state = conn_service_state(conn);
	struct exec_session *session = calloc(1, sizeof(*session));
	char err[256];
	int fd, spawn_errno;

	if (session == NULL)
		return -1;
	*session = (struct exec_session){ .state = state, .conn = conn };
	conn_set_data(conn, session);
	conn_local(conn);
	fd = conn_hand_over_socket(conn);
	if (fd < 0)
		return -1;
	session->child = exec_spawn(session, fd, err, sizeof(err));
	spawn_errno = errno;
	close(fd);
	if (session->child == NULL) {
		/* Over a cap: closed at once and counted; a failed start is
		 * logged louder. */
		if (spawn_errno == EAGAIN)
			state->refused++;
		conn_log(conn, spawn_errno == EAGAIN ? LOG_INFO : LOG_WARNING, "not run: %s", err);
		return -1;
	}
	return 0;
}

static void exec_close(struct conn *conn)
{
	struct exec_session *session = conn_data(conn);

	if (session == NULL)
		return;
	/* The connection ends before its program (the daemon stops after
	 * its shutdown grace): SIGTERM, then SIGKILL after kill-grace. */
	if (session->child != NULL)
		child_abandon(session->child);
	free(session);
}

/* --- udp: wait ------------------------------------------------------- */

static void exec_wait_finished(void *owner, enum child_end end)
{
	struct exec_state *state = owner;
	struct datagram_wait *wait = state->wait;

	state->wait = NULL;
	state->wait_child = NULL;
	if (end == CHILD_OK)
		state->served++;
	datagram_wait_done(wait);
}

static const struct child_hooks exec_wait_hooks = {
	.output = exec_no_output,
	.finished = exec_wait_finished,
};

/* inetd's wait: the program gets the listening socket, the datagram that
 * woke it unread, and answers it (and any others) itself; the chassis
 * watches the socket again once it has exited. */
static void exec_socket_waiting(struct datagram_wait *wait)
{
	const struct exec_settings *settings = datagram_wait_settings(wait);
	struct exec_state *state = datagram_wait_service_state(wait);
	char remote_ip[NI_MAXHOST] = "", remote_port[NI_MAXSERV] = "", vars[3][EXEC_VAR_MAX], err[256];
	const struct sockaddr *source = datagram_wait_source(wait);
	char *env[EXEC_ENVIRONMENT_MAX + 4];
	size_t n = 0;

	getnameinfo(source, source->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in),
		    remote_ip, sizeof(remote_ip), remote_port, sizeof(remote_port), NI_NUMERICHOST | NI_NUMERICSERV);
	snprintf(vars[0], EXEC_VAR_MAX, "PROTO=UDP");
	snprintf(vars[1], EXEC_VAR_MAX, "REMOTE_ADDR=%s", remote_ip);
	snprintf(vars[2], EXEC_VAR_MAX, "REMOTE_PORT=%s", remote_port);
	for (size_t i = 0; i < settings->n_environment; i++)
		env[n++] = settings->environment[i];
	for (size_t i = 0; i < 3; i++)
		env[n++] = vars[i];
	env[n] = NULL;
	state->wait_child = child_spawn_io(state->base, &settings->child, state->pool, state->listener,
					   &(struct child_io){ .socket = datagram_wait_socket(wait), .environment = env },
					   &exec_wait_hooks, state, err, sizeof(err));
	if (state->wait_child == NULL) {
		/* Over the daemon-wide cap, or the program cannot start: the
		 * datagram is dropped, so that it does not wake us again. */
		if (errno == EAGAIN)
			state->refused++;
		log_write(errno == EAGAIN ? LOG_INFO : LOG_WARNING, &(struct log_context){ .listener = state->listener },
			  "not run: %s", err);
		datagram_wait_drop(wait, err);
		return;
	}
	state->wait = wait;
}

/* --- per listener ----------------------------------------------------- */

static void exec_stop(void *p)
{
	struct exec_state *state = p;

	/* The listener is gone (or the daemon stops): its program too. */
	if (state->wait_child != NULL) {
		child_abandon(state->wait_child);
		datagram_wait_done(state->wait);
	}
	child_pool_release(state->pool);
	free(state->listener);
	free(state);
}

static void *exec_start(const void *settings, const struct unit_env *env)
{
	struct exec_state *state = calloc(1, sizeof(*state));

	(void)settings;
	if (state == NULL)
		return NULL;
	state->base = env->base;
	state->listener = strdup(env->unit);
	state->pool = child_pool_new();
	if (state->listener == NULL || state->pool == NULL) {
		free(state->listener);
		free(state->pool);
		free(state);
		return NULL;
	}
	return state;
}

static bool exec_same(const void *old_settings, const void *new_settings)
{
	(void)old_settings;
	(void)new_settings;
	return true;
}

static void exec_status(const void *p, char *buf, size_t len)
{
	const struct exec_state *state = p;
	const struct child_pool *pool = state->pool;

	snprintf(buf, len, "served=%llu refused=%llu children=%u spawned=%llu failed=%llu timed_out=%llu",
		 state->served, state->refused, pool->live, pool->spawned, pool->failed, pool->timed_out);
}

const struct protocol protocol_exec = {
	.config = {
		.name = "exec",
		.hands_over_socket = true,
		.transports = TRANSPORT_BIT(TRANSPORT_TCP) | TRANSPORT_BIT(TRANSPORT_UDP),
		.options = exec_options,
		.configure = exec_configure,
		.settings_free = exec_settings_free,
	},
	.start = exec_start,
	.stop = exec_stop,
	.same = exec_same,
	.status = exec_status,
	.conn = {
		.open = exec_open,
		.close = exec_close,
	},
	.socket_waiting = exec_socket_waiting,
};
