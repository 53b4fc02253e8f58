#include "daemon/control.h"

#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "daemon/log.h"

struct control_client {
	struct control *control;
	struct bufferevent *bev;
	bool waits_for_exit;		/* asked to stop: held open until the end */
	LIST_ENTRY(control_client) link;
};

#define CONTROL_PATH_MAX sizeof(((struct sockaddr_un *)0)->sun_path)

struct control {
	struct evconnlistener *listener;
	char path[CONTROL_PATH_MAX];
	bool made_folder;		/* ours to give to the daemon's user */
	dev_t dev;			/* the socket file we made, so that we */
	ino_t ino;			/* remove that one and no successor */
	struct control_limits limits;
	struct control_commands commands;
	struct event *retry;		/* accepting again after running out of fds */
	unsigned clients;
	LIST_HEAD(, control_client) all;
};

static void control_client_free(struct control_client *client)
{
	struct control *control = client->control;

	LIST_REMOVE(client, link);
	bufferevent_free(client->bev);
	free(client);
	if (control->clients-- == control->limits.max_clients)
		evconnlistener_enable(control->listener);
}

/* The reply gathers what the daemon logs while the command runs. */
static void control_tee(int level, const struct log_context *ctx, const char *text, void *arg)
{
	struct evbuffer *out = arg;
	size_t len = ctx != NULL && ctx->config_file != NULL ? strlen(ctx->config_file) : 0;

	if (level > LOG_INFO)
		return;
	/* A bind error names its listener; the administrator wants the line
	 * in the file too, as every config error gives it. */
	if (len > 0 && ctx->config_line > 0 && strncmp(text, ctx->config_file, len) != 0)
		evbuffer_add_printf(out, "<%d>%s:%d: %s\n", level, ctx->config_file, ctx->config_line, text);
	else
		evbuffer_add_printf(out, "<%d>%s\n", level, text);
}

static bool control_run(struct control *control, const char *command, struct control_client *client)
{
	const struct control_commands *c = &control->commands;

	if (strcmp(command, "reload") == 0)
		return c->reload(c->arg);
	if (strcmp(command, "status") == 0)
		return c->status(c->arg);
	if (strcmp(command, "reopen") == 0)
		return c->reopen(c->arg);
	if (strcmp(command, "stop") == 0) {
		client->waits_for_exit = true;
		return c->stop(c->arg);
	}
	log_err("unknown control command \"%s\" (reload, status, stop, reopen)", command);
	return false;
}

static void control_on_written(struct bufferevent *bev, void *arg)
{
	struct control_client *client = arg;

	if (!client->waits_for_exit)
		control_client_free(client);
	(void)bev;
}

static void control_on_event(struct bufferevent *bev, short what, void *arg)
{
	struct control_client *client = arg;

	if (what & BEV_EVENT_TIMEOUT)
		log_warning("control client: %s within %u s: closed",
			    what & BEV_EVENT_READING ? "no command" : "answer not taken", client->control->limits.timeout);
	control_client_free(client);
	(void)bev;
}

static void control_answer(struct control_client *client, const char *command)
{
	struct evbuffer *out = bufferevent_get_output(client->bev);
	bool ok;

	log_tee(control_tee, out);
	ok = control_run(client->control, command, client);
	log_tee(NULL, NULL);
	evbuffer_add_printf(out, "%s\n", ok ? "ok" : "failed");
	bufferevent_disable(client->bev, EV_READ);
	/* A stopping daemon holds the connection as long as it runs. */
	if (client->waits_for_exit)
		bufferevent_set_timeouts(client->bev, NULL, NULL);
	bufferevent_setcb(client->bev, NULL, control_on_written, control_on_event, client);
}

static void control_on_read(struct bufferevent *bev, void *arg)
{
	struct control_client *client = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	size_t len;
	char *line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF);

	if (line == NULL && evbuffer_get_length(in) < CONTROL_LINE_MAX)
		return;
	if (line == NULL || len >= CONTROL_LINE_MAX || evbuffer_get_length(in) > 0) {
		log_warning("control client: a line longer than %d bytes, or more than one command: closed",
			    CONTROL_LINE_MAX);
		control_client_free(client);
	} else {
		control_answer(client, line);
	}
	free(line);
}


static void control_on_accept(struct evconnlistener *listener, evutil_socket_t fd, struct sockaddr *addr,
			      int socklen, void *arg)
{
	struct control *control = arg;
	struct control_client *client = calloc(1, sizeof(*client));
	struct timeval timeout = { control->limits.timeout, 0 };

	client->bev = client ? bufferevent_socket_new(evconnlistener_get_base(listener), fd,
						     BEV_OPT_CLOSE_ON_FREE) : NULL;
	if (client == NULL || client->bev == NULL) {
		free(client);
		close(fd);
		return;
	}
	client->control = control;
	LIST_INSERT_HEAD(&control->all, client, link);
	if (++control->clients == control->limits.max_clients)
		evconnlistener_disable(listener);
	bufferevent_setcb(client->bev, control_on_read, NULL, control_on_event, client);
	bufferevent_set_timeouts(client->bev, &timeout, &timeout);
	bufferevent_enable(client->bev, EV_READ);
	(void)addr;
	(void)socklen;
}

static void control_on_retry(evutil_socket_t fd, short what, void *arg)
{
	struct control *control = arg;

	if (control->clients < control->limits.max_clients)
		evconnlistener_enable(control->listener);
	(void)fd;
	(void)what;
}

/* Out of fds: the pending connection stays pending, and a level-triggered
 * retry at once would spin. Pause a second (what listeners do on the
 * connections that free fds, the control socket does on a clock). */
static void control_on_accept_error(struct evconnlistener *listener, void *arg)
{
	struct control *control = arg;
	struct timeval second = { 1, 0 };
	int error = EVUTIL_SOCKET_ERROR();

	evconnlistener_disable(listener);
	log_warning("control socket: cannot accept: %s; trying again in 1 s", strerror(error));
	event_add(control->retry, &second);
}

/* Another daemon answering on the path keeps it; a file left by one that
 * died is replaced. Anything that is not a socket is not ours to remove. */
static int control_claim_path(const char *path, const struct sockaddr_un *sun)
{
	struct stat st;
	bool answered;
	int fd;

	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0 : -1;
	if (!S_ISSOCK(st.st_mode)) {
		errno = EEXIST;
		return -1;
	}
	/* Non-blocking: a daemon whose backlog is full must not hold this
	 * one's start; EAGAIN is a live one too. */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -1;
	answered = connect(fd, (const struct sockaddr *)sun, sizeof(*sun)) == 0 || errno == EAGAIN;
	close(fd);
	if (answered) {
		errno = EADDRINUSE;
		return -1;
	}
	return unlink(path);
}

/* The folder (systemd's RuntimeDirectory=) is made when chassisd runs
 * without systemd; only the last level, as systemd would. */
static void control_make_folder(struct control *control)
{
	char copy[CONTROL_PATH_MAX];

	snprintf(copy, sizeof(copy), "%s", control->path);
	if (mkdir(dirname(copy), 0755) == 0)
		control->made_folder = true;
}

static int control_bind(struct control *control)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd, bound;

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", control->path);
	control_make_folder(control);
	if (control_claim_path(control->path, &sun) < 0)
		return -1;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	/* 0600 from the start: no moment in which others could connect. */
	old_mask = umask(0177);
	bound = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(old_mask);
	if (bound < 0 || listen(fd, 16) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

static bool control_remember_inode(struct control *control)
{
	struct stat st;

	if (stat(control->path, &st) < 0)
		return false;
	control->dev = st.st_dev;
	control->ino = st.st_ino;
	return true;
}

struct control *control_open(struct event_base *base, const char *path, const struct control_limits *limits,
			     const struct control_commands *commands)
{
	struct control *control = calloc(1, sizeof(*control));
	int fd;

	if (control == NULL)
		return NULL;
	snprintf(control->path, sizeof(control->path), "%s", path);
	control->limits = *limits;
	control->commands = *commands;
	LIST_INIT(&control->all);
	errno = ENAMETOOLONG;
	fd = strlen(path) < CONTROL_PATH_MAX ? control_bind(control) : -1;
	if (fd < 0) {
		log_warning("no control socket at %s: %s; `chassisd reload` cannot reach this daemon (set "
			    "control-socket, or \"\" for none; SIGHUP still reloads)", path,
			    errno == EADDRINUSE ? "another process answers on it" : strerror(errno));
		free(control);
		return NULL;
	}
	control_remember_inode(control);
	control->listener = evconnlistener_new(base, control_on_accept, control, LEV_OPT_CLOSE_ON_FREE, -1, fd);
	control->retry = evtimer_new(base, control_on_retry, control);
	if (control->listener == NULL || control->retry == NULL) {
		if (control->listener != NULL)
			evconnlistener_free(control->listener);
		else
			close(fd);
		if (control->retry != NULL)
			event_free(control->retry);
		unlink(control->path);
		free(control);
		return NULL;
	}
	evconnlistener_set_error_cb(control->listener, control_on_accept_error);
	log_info("control socket %s", path);
	return control;
}

int control_chown(struct control *control, uid_t owner, gid_t group)
{
	char folder[CONTROL_PATH_MAX];

	if (chown(control->path, owner, group) < 0) {
		log_err("cannot give the control socket %s to uid %u: %s", control->path, (unsigned)owner,
			strerror(errno));
		return -1;
	}
	/* Removing the socket at exit takes write access to its folder: the
	 * one made for it goes along; one that others share (/run) does not. */
	snprintf(folder, sizeof(folder), "%s", control->path);
	if (control->made_folder && chown(dirname(folder), owner, group) < 0)
		log_warning("cannot give %s to uid %u: %s", folder, (unsigned)owner, strerror(errno));
	return 0;
}

const char *control_path(const struct control *control)
{
	return control->path;
}

/* A stop can end the loop in the very callback that answered it: the few
 * bytes of the answer go out now, as far as the socket takes them. (A
 * bufferevent's output is frozen to everyone else: peek, not drain.) */
static void control_client_flush(struct control_client *client)
{
	struct evbuffer *out = bufferevent_get_output(client->bev);
	struct evbuffer_iovec parts[8];
	int n = evbuffer_peek(out, -1, NULL, parts, 8);
	struct iovec iov[8];

	for (int i = 0; i < n && i < 8; i++)
		iov[i] = (struct iovec){ parts[i].iov_base, parts[i].iov_len };
	if (n > 0 && writev(bufferevent_getfd(client->bev), iov, n < 8 ? n : 8) < 0)
		log_debug("control client: answer lost: %s", strerror(errno));
}

void control_free(struct control *control)
{
	struct control_client *client;
	struct stat st;

	if (control == NULL)
		return;
	while ((client = LIST_FIRST(&control->all)) != NULL) {
		control_client_flush(client);
		control_client_free(client);
	}
	evconnlistener_free(control->listener);
	event_free(control->retry);
	if (stat(control->path, &st) == 0 && st.st_dev == control->dev && st.st_ino == control->ino)
		unlink(control->path);
	free(control);
}
