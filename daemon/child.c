#include "daemon/child.h"

#include <errno.h>
#include <stdarg.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/queue.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "daemon/log.h"

#define CHILD_READ_CHUNK 65536
#define CHILD_STDERR_LINE_MAX 512
#define CHILD_STDERR_LINES_MAX 10

struct child {
	LIST_ENTRY(child) link;
	pid_t pid;
	int pidfd, out_fd, err_fd;
	struct event *exited_ev, *out_ev, *err_ev, *deadline_ev;
	struct evbuffer *out, *err;
	struct child_pool *pool;
	const struct child_hooks *hooks;
	void *owner;			/* NULL once abandoned */
	char listener[64];
	size_t produced, output_limit;
	unsigned kill_grace_ms, stderr_lines;
	int status;
	unsigned in_hook;		/* an owner hook runs: do not free */
	bool exited, out_eof, killing, timed_out, cut, paused;
};

static LIST_HEAD(, child) children = LIST_HEAD_INITIALIZER(children);
static unsigned children_live;
static unsigned children_max = 64;

/* Only what a well-behaved program needs; nothing of the daemon's own. */
static char *const child_environment[] = {
	"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/", NULL,
};

void child_set_global_limit(unsigned max)
{
	children_max = max;
}

unsigned child_live_count(void)
{
	return children_live;
}

static void child_log(const struct child *child, int level, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void child_log(const struct child *child, int level, const char *fmt, ...)
{
	struct log_context ctx = { .listener = child->listener };
	char text[CHILD_STDERR_LINE_MAX + 128];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	log_write(level, &ctx, "child %d: %s", (int)child->pid, text);
}

static void event_drop(struct event **ev)
{
	if (*ev != NULL) {
		event_free(*ev);
		*ev = NULL;
	}
}

static void fd_drop(int *fd)
{
	if (*fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void child_free(struct child *child)
{
	event_drop(&child->exited_ev);
	event_drop(&child->out_ev);
	event_drop(&child->err_ev);
	event_drop(&child->deadline_ev);
	fd_drop(&child->pidfd);
	fd_drop(&child->out_fd);
	fd_drop(&child->err_fd);
	evbuffer_free(child->out);
	evbuffer_free(child->err);
	LIST_REMOVE(child, link);
	children_live--;
	if (--child->pool->live == 0 && child->pool->released)
		free(child->pool);
	free(child);
}

struct child_pool *child_pool_new(void)
{
	return calloc(1, sizeof(struct child_pool));
}

void child_pool_release(struct child_pool *pool)
{
	if (pool == NULL)
		return;
	pool->released = true;
	if (pool->live == 0)
		free(pool);
}

/* The whole process group: a timeout must also stop what the program
 * started (a shell's children, ffmpeg's helpers). Only before the reap,
 * while the pid cannot have been reused. */
static bool child_signal(struct child *child, int signo)
{
	if (child->exited || kill(-child->pid, signo) == 0)
		return true;
	if (errno == ESRCH && kill(child->pid, signo) == 0)
		return true;
	/* ESRCH: gone already. EPERM: it runs as someone we no longer are;
	 * the caller must not wait for it. */
	return errno == ESRCH;
}

static void child_on_deadline(evutil_socket_t fd, short what, void *arg);

static void child_kill(struct child *child)
{
	struct timeval grace = { child->kill_grace_ms / 1000, (child->kill_grace_ms % 1000) * 1000 };

	if (child->killing || child->exited)
		return;
	child->killing = true;
	child_signal(child, SIGTERM);
	event_del(child->deadline_ev);
	event_add(child->deadline_ev, &grace);
}

static enum child_end child_outcome(const struct child *child)
{
	if (child->timed_out)
		return CHILD_TIMED_OUT;
	if (child->cut)
		return CHILD_CUT;
	if (WIFEXITED(child->status) && WEXITSTATUS(child->status) == 0)
		return CHILD_OK;
	return CHILD_FAILED;
}

static void child_count_outcome(struct child *child, enum child_end end)
{
	if (end == CHILD_TIMED_OUT)
		child->pool->timed_out++;
	else if (end == CHILD_CUT)
		child->pool->cut++;
	else if (end == CHILD_FAILED)
		child->pool->failed++;
	if (end == CHILD_FAILED && WIFEXITED(child->status))
		child_log(child, LOG_WARNING, "exited with status %d", WEXITSTATUS(child->status));
	else if (end == CHILD_FAILED)
		child_log(child, LOG_WARNING, "killed by signal %d", WTERMSIG(child->status));
}

static void child_drain_stderr(struct child *child);

/* Done when reaped and stdout is drained; the owner hears it once. */
static void child_finish_if_done(struct child *child)
{
	enum child_end end;

	if (!child->exited || !child->out_eof || child->in_hook)
		return;
	child_drain_stderr(child);
	end = child_outcome(child);
	child_count_outcome(child, end);
	if (child->owner != NULL) {
		child->in_hook++;
		child->hooks->finished(child->owner, end);
		child->in_hook--;
	}
	child_free(child);
}

static void child_close_output(struct child *child)
{
	event_drop(&child->out_ev);
	fd_drop(&child->out_fd);
	child->out_eof = true;
}

static void child_flush_stderr(struct child *child, bool all)
{
	char *line;
	size_t len;

	while ((line = evbuffer_readln(child->err, &len, EVBUFFER_EOL_LF)) != NULL ||
	       evbuffer_get_length(child->err) > CHILD_STDERR_LINE_MAX ||
	       (all && evbuffer_get_length(child->err) > 0)) {
		if (line == NULL) {
			len = evbuffer_get_length(child->err);
			len = len > CHILD_STDERR_LINE_MAX ? CHILD_STDERR_LINE_MAX : len;
			line = malloc(len + 1);
			if (line == NULL)
				return;
			evbuffer_remove(child->err, line, len);
			line[len] = '\0';
		}
		if (child->stderr_lines < CHILD_STDERR_LINES_MAX)
			child_log(child, LOG_WARNING, "stderr: %.*s", CHILD_STDERR_LINE_MAX, line);
		else if (child->stderr_lines == CHILD_STDERR_LINES_MAX)
			child_log(child, LOG_WARNING, "more stderr suppressed");
		child->stderr_lines++;
		free(line);
	}
}

static void child_on_stderr(evutil_socket_t fd, short what, void *arg)
{
	struct child *child = arg;
	int n = evbuffer_read(child->err, fd, CHILD_READ_CHUNK);

	if (n <= 0 && !(n < 0 && (errno == EAGAIN || errno == EINTR))) {
		child_flush_stderr(child, true);
		event_drop(&child->err_ev);
		fd_drop(&child->err_fd);
		return;
	}
	child_flush_stderr(child, false);
	(void)what;
}

/* The owner may abandon the child from inside the hook; the in_hook count
 * keeps the child alive until the hook has returned. */
static void child_deliver(struct child *child)
{
	if (child->owner == NULL || evbuffer_get_length(child->out) == 0)
		return;
	child->in_hook++;
	child->hooks->output(child->owner, child->out);
	child->in_hook--;
}

/* What a dead child said last is still in the pipe: log it before the
 * exit status, so the reader sees the cause first. */
static void child_drain_stderr(struct child *child)
{
	while (child->err_fd >= 0 && evbuffer_read(child->err, child->err_fd, CHILD_READ_CHUNK) > 0)
		;
	child_flush_stderr(child, true);
}

static void child_on_stdout(evutil_socket_t fd, short what, void *arg)
{
	struct child *child = arg;
	size_t room = child->output_limit - child->produced;
	int n;

	/* One byte past the limit proves the output is too long. */
	n = evbuffer_read(child->out, fd, room > 0 ? (int)(room < CHILD_READ_CHUNK ? room : CHILD_READ_CHUNK) : 1);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n > 0 && room == 0) {
		evbuffer_drain(child->out, evbuffer_get_length(child->out));
		child_log(child, LOG_WARNING, "output cut at output-limit (%zu bytes)", child->output_limit);
		child->cut = true;
		child_kill(child);
		child_close_output(child);
	} else if (n <= 0) {
		child_close_output(child);
	} else {
		child->produced += (size_t)n;
	}
	child_deliver(child);
	child_finish_if_done(child);
	(void)what;
}

static void child_on_exited(evutil_socket_t fd, short what, void *arg)
{
	struct child *child = arg;

	if (waitpid(child->pid, &child->status, WNOHANG) == 0)
		return;
	child->exited = true;
	event_drop(&child->exited_ev);
	fd_drop(&child->pidfd);
	/* What the child wrote before it died is still in the pipe (a paused
	 * owner reads it when it resumes). */
	if (child->out_ev != NULL && child->paused)
		return;
	if (child->out_ev != NULL)
		child_on_stdout(child->out_fd, EV_READ, child);
	else
		child_finish_if_done(child);
	(void)fd;
	(void)what;
}

static void child_on_deadline(evutil_socket_t fd, short what, void *arg)
{
	struct child *child = arg;

	if (child->killing) {
		child_signal(child, SIGKILL);
		return;
	}
	child_log(child, LOG_WARNING, "timed out: killing it");
	child->timed_out = true;
	child_kill(child);
	/* A grandchild may hold stdout open after the child is gone. */
	if (child->exited) {
		child_close_output(child);
		child_finish_if_done(child);
	}
	(void)fd;
	(void)what;
}

/* The runner's own entries, less those io replaces, then io's. */
static char **child_environment_for(const struct child_io *io)
{
	size_t n_base = sizeof(child_environment) / sizeof(child_environment[0]) - 1, n_extra = 0, n = 0;
	char **env;

	while (io != NULL && io->environment != NULL && io->environment[n_extra] != NULL)
		n_extra++;
	env = calloc(n_base + n_extra + 1, sizeof(char *));
	if (env == NULL)
		return NULL;
	for (size_t i = 0; i < n_base; i++) {
		size_t key_len = strcspn(child_environment[i], "=") + 1;
		bool replaced = false;

		for (size_t j = 0; j < n_extra && !replaced; j++)
			replaced = strncmp(io->environment[j], child_environment[i], key_len) == 0;
		if (!replaced)
			env[n++] = child_environment[i];
	}
	for (size_t j = 0; j < n_extra; j++)
		env[n++] = io->environment[j];
	return env;
}

/* The fds a program starts with: 0 and 1 the socket, or the input file
 * (else /dev/null) and the stdout pipe; 2 the stderr pipe. */
struct child_fds {
	int socket, input, out_w, err_w;
};

static int spawn_process(const struct child_spec *spec, const struct child_fds *fds, char *const envp[],
			 pid_t *pid)
{
	posix_spawn_file_actions_t actions;
	posix_spawnattr_t attr;
	sigset_t none, all;
	int rc;

	sigemptyset(&none);
	sigfillset(&all);
	posix_spawn_file_actions_init(&actions);
	posix_spawnattr_init(&attr);
	if (fds->socket >= 0) {
		posix_spawn_file_actions_adddup2(&actions, fds->socket, STDIN_FILENO);
		posix_spawn_file_actions_adddup2(&actions, fds->socket, STDOUT_FILENO);
	} else {
		if (fds->input >= 0)
			posix_spawn_file_actions_adddup2(&actions, fds->input, STDIN_FILENO);
		else
			posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
		posix_spawn_file_actions_adddup2(&actions, fds->out_w, STDOUT_FILENO);
	}
	posix_spawn_file_actions_adddup2(&actions, fds->err_w, STDERR_FILENO);
	/* Not every daemon fd is close-on-exec (libevent's, systemd's): close
	 * them all, so a child never holds a client's socket open. */
	posix_spawn_file_actions_addclosefrom_np(&actions, STDERR_FILENO + 1);
	posix_spawn_file_actions_addchdir_np(&actions, spec->workdir);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setpgroup(&attr, 0);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	rc = posix_spawn(pid, spec->argv[0], &actions, &attr, spec->argv, envp);
	posix_spawn_file_actions_destroy(&actions);
	posix_spawnattr_destroy(&attr);
	return rc;
}

/* Between fork and exec: only async-signal-safe calls. What failed goes
 * back through report (close-on-exec: it reads EOF once exec worked). */
static void forked_child(const struct child_spec *spec, const struct child_fds *fds, char *const envp[],
			 int report)
{
	sigset_t none;
	int in = fds->socket >= 0 ? fds->socket : fds->input >= 0 ? fds->input : open("/dev/null", O_RDONLY);
	int out = fds->socket >= 0 ? fds->socket : fds->out_w;
	int rc;

	setpgid(0, 0);
	for (int signo = 1; signo < NSIG; signo++)
		signal(signo, SIG_DFL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	if (in < 0 || dup2(in, STDIN_FILENO) < 0 || dup2(out, STDOUT_FILENO) < 0 ||
	    dup2(fds->err_w, STDERR_FILENO) < 0 || chdir(spec->workdir) < 0 ||
	    setgroups(1, &spec->gid) < 0 || setgid(spec->gid) < 0 || setuid(spec->uid) < 0)
		goto failed;
	/* report stays open for the exec's outcome; it is close-on-exec. */
	for (int fd = STDERR_FILENO + 1; fd < report; fd++)
		close(fd);
	closefrom(report + 1);
	execve(spec->argv[0], spec->argv, envp);
failed:
	rc = errno;
	(void)!write(report, &rc, sizeof(rc));
	_exit(127);
}

/* posix_spawn cannot change user: fork, switch, exec. */
static int fork_process(const struct child_spec *spec, const struct child_fds *fds, char *const envp[], pid_t *pid)
{
	int report[2], rc = 0;
	ssize_t n;

	if (pipe2(report, O_CLOEXEC) < 0)
		return errno;
	*pid = fork();
	if (*pid == 0)
		forked_child(spec, fds, envp, report[1]);
	rc = *pid < 0 ? errno : 0;
	close(report[1]);
	while (*pid > 0 && (n = read(report[0], &rc, sizeof(rc))) < 0 && errno == EINTR)
		;
	close(report[0]);
	if (*pid > 0 && rc != 0)
		waitpid(*pid, NULL, 0);
	return rc;
}

static int child_start_process(struct child *child, const struct child_spec *spec, const struct child_io *io)
{
	struct child_fds fds = { .socket = io != NULL ? io->socket : -1, .out_w = -1,
				 .input = io != NULL && io->has_input ? io->input : -1 };
	int out[2] = { -1, -1 }, err[2], rc;
	char **envp = child_environment_for(io);

	if (envp == NULL)
		return ENOMEM;
	if ((fds.socket < 0 && pipe2(out, O_CLOEXEC) < 0) || pipe2(err, O_CLOEXEC) < 0) {
		rc = errno;
		fd_drop(&out[0]);
		fd_drop(&out[1]);
		free(envp);
		return rc;
	}
	fds.out_w = out[1];
	fds.err_w = err[1];
	rc = spec->switch_user ? fork_process(spec, &fds, envp, &child->pid)
			       : spawn_process(spec, &fds, envp, &child->pid);
	free(envp);
	fd_drop(&out[1]);
	close(err[1]);
	child->out_fd = out[0];
	child->out_eof = out[0] < 0;	/* the socket: the program's output is not ours */
	child->err_fd = err[0];
	if (rc != 0)
		return rc;
	if (child->out_fd >= 0)
		fcntl(child->out_fd, F_SETFL, O_NONBLOCK);
	fcntl(child->err_fd, F_SETFL, O_NONBLOCK);
	child->pidfd = pidfd_open(child->pid, 0);
	if (child->pidfd < 0) {
		rc = errno;
		kill(child->pid, SIGKILL);
		waitpid(child->pid, NULL, 0);
		return rc;
	}
	return 0;
}

static int child_watch(struct child *child, struct event_base *base, const struct child_spec *spec)
{
	struct timeval deadline = { spec->timeout_ms / 1000, (spec->timeout_ms % 1000) * 1000 };

	child->exited_ev = event_new(base, child->pidfd, EV_READ | EV_PERSIST, child_on_exited, child);
	if (child->out_fd >= 0)
		child->out_ev = event_new(base, child->out_fd, EV_READ | EV_PERSIST, child_on_stdout, child);
	child->err_ev = event_new(base, child->err_fd, EV_READ | EV_PERSIST, child_on_stderr, child);
	child->deadline_ev = evtimer_new(base, child_on_deadline, child);
	if (child->exited_ev == NULL || (child->out_fd >= 0 && child->out_ev == NULL) || child->err_ev == NULL ||
	    child->deadline_ev == NULL)
		return -1;
	event_add(child->exited_ev, NULL);
	if (child->out_ev != NULL)
		event_add(child->out_ev, NULL);
	event_add(child->err_ev, NULL);
	/* A stream's program runs for as long as the stream does. */
	if (spec->timeout_ms > 0)
		event_add(child->deadline_ev, &deadline);
	return 0;
}

static struct child *child_new(const struct child_spec *spec, struct child_pool *pool, const char *listener)
{
	struct child *child = calloc(1, sizeof(*child));

	if (child == NULL)
		return NULL;
	child->pidfd = child->out_fd = child->err_fd = -1;
	child->pool = pool;
	child->output_limit = spec->output_limit;
	child->kill_grace_ms = spec->kill_grace_ms;
	snprintf(child->listener, sizeof(child->listener), "%s", listener);
	child->out = evbuffer_new();
	child->err = evbuffer_new();
	LIST_INSERT_HEAD(&children, child, link);
	children_live++;
	pool->live++;
	if (child->out == NULL || child->err == NULL) {
		child_free(child);
		return NULL;
	}
	return child;
}

struct child *child_spawn(struct event_base *base, const struct child_spec *spec, struct child_pool *pool,
			  const char *listener, const struct child_hooks *hooks, void *owner, char *err,
			  size_t err_len)
{
	return child_spawn_io(base, spec, pool, listener, NULL, hooks, owner, err, err_len);
}

struct child *child_spawn_io(struct event_base *base, const struct child_spec *spec, struct child_pool *pool,
			     const char *listener, const struct child_io *io, const struct child_hooks *hooks,
			     void *owner, char *err, size_t err_len)
{
	struct child *child;
	int rc;

	if (children_live >= children_max || pool->live >= spec->max_children) {
		pool->refused++;
		snprintf(err, err_len, "%s", children_live >= children_max ? "daemon-wide max-children reached"
							       : "listener max-children reached");
		errno = EAGAIN;
		return NULL;
	}
	/* The global user option dropped root after the config was read. */
	if (spec->switch_user && geteuid() != 0 && geteuid() != spec->uid) {
		pool->failed++;
		snprintf(err, err_len, "cannot run %s as uid %u: chassisd runs as uid %u since it dropped root (the "
			 "global \"user\"), and only root can switch", spec->argv[0], (unsigned)spec->uid,
			 (unsigned)geteuid());
		errno = EPERM;
		return NULL;
	}
	child = child_new(spec, pool, listener);
	if (child == NULL) {
		pool->failed++;
		snprintf(err, err_len, "out of memory");
		return NULL;
	}
	child->hooks = hooks;
	child->owner = owner;
	rc = child_start_process(child, spec, io);
	if (rc == 0 && child_watch(child, base, spec) < 0) {
		child_signal(child, SIGKILL);
		waitpid(child->pid, NULL, 0);
		rc = ENOMEM;
	}
	if (rc != 0) {
		pool->failed++;
		snprintf(err, err_len, "cannot run %s: %s", spec->argv[0], strerror(rc));
		child_free(child);
		errno = rc;
		return NULL;
	}
	pool->spawned++;
	return child;
}

void child_pause_output(struct child *child)
{
	if (child->out_ev != NULL && !child->paused)
		event_del(child->out_ev);
	child->paused = true;
}

void child_resume_output(struct child *child)
{
	if (child->out_ev != NULL && child->paused)
		event_add(child->out_ev, NULL);
	child->paused = false;
}

void child_abandon(struct child *child)
{
	child->owner = NULL;
	child_close_output(child);
	if (child->exited)
		child_finish_if_done(child);
	else
		child_kill(child);
}

int child_wait_status(const struct child *child)
{
	return child->exited ? child->status : 0;
}

void child_kill_all(void)
{
	struct child *child;

	while ((child = LIST_FIRST(&children)) != NULL) {
		child->owner = NULL;
		if (!child->exited) {
			if (child_signal(child, SIGKILL))
				waitpid(child->pid, &child->status, 0);
			else
				child_log(child, LOG_WARNING, "cannot be killed (%s): left running", strerror(errno));
			child->exited = true;
		}
		child_close_output(child);
		child_finish_if_done(child);
	}
}
