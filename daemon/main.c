/* chassisd: command line, lifecycle and signals. */
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "build_config.h"
#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/privileges.h"
#include "daemon/runtime.h"
#include "daemon/tls.h"
#include "protocols/registry.h"
#include "daemon/child.h"
#include "daemon/control.h"
#include "daemon/control_client.h"
#include "systemd/activation.h"
#include "systemd/notify.h"

struct daemon {
	const char *config_path;
	const char *control_path;	/* --control: overrides control-socket */
	struct control *control;
	bool verbose;
	bool privileges_dropped;
	uid_t dropped_to;
	struct event_base *base;
	struct runtime *rt;
	struct event *signals[5];
	struct event *watchdog;
	struct event *status_timer;
	char last_status[200];
};

static void usage(FILE *out)
{
	fprintf(out,
		"usage: chassisd [-c FILE] [-t | -T] [-v] [--control PATH] [--version] [--help]\n"
		"       chassisd reload|status|stop|reopen [-c FILE | --control PATH]\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -t, --test         check the configuration and exit\n"
		"  -T, --test-print   check it, print the effective configuration and exit\n"
		"  -v, --verbose      log at debug level whatever log-level says\n"
		"      --control PATH the control socket, instead of the config's control-socket\n"
		"      --version      print the version and exit\n"
		"  -h, --help         print this help and exit\n"
		"Commands ask the running daemon through its control socket and print\n"
		"the outcome: exit 0 done, 1 not applied, 2 daemon not reachable.\n"
		"Signals: HUP reloads, TERM/INT stop (connections get shutdown-grace),\n"
		"USR1 logs a status dump, USR2 reopens the log-file (after logrotate).\n",
		CHASSISD_DEFAULT_CONFIG);
}

/* Config errors read "FILE:LINE: what", FILE the config or a file it
 * includes; they become CONFIG_FILE and CONFIG_LINE. */
static int config_error_place(const char *error, char *file, size_t cap)
{
	const char *colon = strchr(error, ':');
	size_t digits = colon ? strspn(colon + 1, "0123456789") : 0;

	if (digits == 0 || colon[1 + digits] != ':' || (size_t)(colon - error) >= cap)
		return 0;
	snprintf(file, cap, "%.*s", (int)(colon - error), error);
	return atoi(colon + 1);
}

static void log_config_errors(const struct conf_errors *errors, const char *path, int level,
			      enum log_event event)
{
	struct log_context ctx = { .event = event };
	char file[4096];

	for (size_t i = 0; i < errors->count; i++) {
		ctx.config_line = config_error_place(errors->lines[i], file, sizeof(file));
		ctx.config_file = ctx.config_line > 0 ? file : path;
		log_write(level, &ctx, "%s", errors->lines[i]);
	}
}

static void apply_log_level(const struct daemon *d, const struct conf *conf)
{
	log_set_level(d->verbose ? LOG_DEBUG : conf->log_level);
}

/* The event loop's fds are the daemon's capacity: take all the kernel grants. */
static void raise_fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			log_warning("cannot raise the open file limit: %s", strerror(errno));
	}
}

static void report_status(struct daemon *d, const char *prefix, bool ready)
{
	char status[400], line[200];

	runtime_status_line(d->rt, line, sizeof(line));
	snprintf(status, sizeof(status), "%s%s", prefix, line);
	if (ready)
		notify_ready(status);
	else
		notify_status(status);
	snprintf(d->last_status, sizeof(d->last_status), "%s", line);
}

/* STATUS= follows connections as they come and go, at most once a second. */
static void on_status_timer(evutil_socket_t fd, short what, void *arg)
{
	struct daemon *d = arg;
	char line[200];

	runtime_status_line(d->rt, line, sizeof(line));
	if (strcmp(line, d->last_status) != 0) {
		notify_status(line);
		snprintf(d->last_status, sizeof(d->last_status), "%s", line);
	}
	(void)fd;
	(void)what;
}

static int add_timers(struct daemon *d)
{
	struct timeval second = { 1, 0 };

	d->watchdog = notify_watchdog_start(d->base);
	d->status_timer = event_new(d->base, -1, EV_PERSIST, on_status_timer, d);
	return d->status_timer == NULL ? -1 : event_add(d->status_timer, &second);
}

/* Valid but likely a mistake: said at start, at each reload and by -t. */
static void log_config_warnings(const struct conf *conf)
{
	log_config_errors(&conf->warnings, conf->path, LOG_WARNING, LOG_EVENT_NONE);
}

static bool same_text(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* What the running process cannot change without a restart. */
static void warn_restart_only(const struct daemon *d, const struct conf *conf)
{
	const struct conf *running = runtime_conf(d->rt);

	if ((conf->user != NULL) != d->privileges_dropped || (conf->user != NULL && conf->uid != d->dropped_to))
		log_warning("user/group changes take effect at the next restart");
	if (d->control_path == NULL && (!same_text(conf->control_socket, running->control_socket) ||
					conf->control_timeout != running->control_timeout ||
					conf->control_max_clients != running->control_max_clients))
		log_warning("control-socket changes take effect at the next restart");
}

/* ---- log-file ---- */

/* A reload that names another file moves the log there; one that cannot
 * be opened leaves it where it was. */
static void switch_log_file(const char *path)
{
	if (strcmp(path, log_file_in_use()) == 0)
		return;
	if (log_use_file(path) < 0)
		log_err("cannot open log-file %s: %s; logging stays where it was", path, strerror(errno));
	else
		log_info("logging to %s", path[0] ? path : "stderr");
}

/* SIGUSR2 and `chassisd reopen`: after logrotate renamed the file. */
static bool reopen_log(void)
{
	if (log_reopen_file() < 0) {
		log_err("cannot reopen the log-file: %s; still writing to the old one", strerror(errno));
		return false;
	}
	log_info("log-file reopened");
	return true;
}

/* The snapshot with its TLS contexts loaded: a certificate that does not
 * load fails the whole config, before anything is swapped. */
static struct conf *load_config(const char *path, struct conf_errors *errors)
{
	struct conf *conf = conf_load(path, protocol_config_table(), errors);

	if (conf != NULL && !tls_load(conf, errors)) {
		conf_free(conf);
		return NULL;
	}
	return conf;
}

/* True when the new config runs; false when the old one still does. */
static bool reload(struct daemon *d)
{
	struct conf_errors errors = { 0 };
	unsigned serving = d->rt->generation_number;
	struct log_context failed = { .config_file = d->config_path, .event = LOG_EVENT_RELOAD_FAILED,
				      .generation = serving };
	struct conf *conf;
	char prefix[160];

	notify_reloading();
	log_info("reloading %s", d->config_path);
	conf = load_config(d->config_path, &errors);
	if (conf == NULL) {
		log_config_errors(&errors, d->config_path, LOG_ERR, LOG_EVENT_RELOAD_FAILED);
		log_write(LOG_ERR, &failed, "reload failed: %zu error%s in %s; still serving generation %u",
			  errors.count, errors.count == 1 ? "" : "s", d->config_path, serving);
		snprintf(prefix, sizeof(prefix), "reload failed (%zu config error%s), old config serving: ",
			 errors.count, errors.count == 1 ? "" : "s");
		conf_errors_clear(&errors);
		report_status(d, prefix, true);
		return false;
	}
	apply_log_level(d, conf);
	log_config_warnings(conf);
	warn_restart_only(d, conf);
	if (runtime_apply(d->rt, conf) < 0) {
		bool bind = d->rt->failure == RUNTIME_BIND_FAILED;

		log_write(LOG_ERR, &failed, "reload failed: %s; still serving generation %u",
			  bind ? "a listener could not be opened" : "a unit could not start", serving);
		apply_log_level(d, runtime_conf(d->rt));
		report_status(d, bind ? "reload failed (bind error), old config serving: "
				      : "reload failed (start error), old config serving: ", true);
		return false;
	}
	switch_log_file(runtime_conf(d->rt)->log_file);
	report_status(d, "reload applied: ", true);
	return true;
}

static void begin_stop(struct daemon *d, const char *why)
{
	struct log_context ctx = { .event = LOG_EVENT_STOPPING };

	if (d->rt->stopping) {
		log_notice("second stop request: closing every connection now");
		event_base_loopbreak(d->base);
		return;
	}
	notify_stopping();
	log_write(LOG_NOTICE, &ctx, "stopping on %s: %u connection%s get up to %u s to finish", why,
		  d->rt->chassis.connections, d->rt->chassis.connections == 1 ? "" : "s",
		  runtime_conf(d->rt)->shutdown_grace);
	runtime_shutdown(d->rt);
}

static void on_signal(evutil_socket_t signo, short what, void *arg)
{
	struct daemon *d = arg;

	switch (signo) {
	case SIGHUP:
		if (!d->rt->stopping)
			reload(d);
		break;
	case SIGUSR1:
		runtime_log_status(d->rt);
		break;
	case SIGUSR2:
		reopen_log();
		break;
	default:
		begin_stop(d, strsignal((int)signo));
	}
	(void)what;
}

static int add_signals(struct daemon *d)
{
	static const int signos[] = { SIGHUP, SIGTERM, SIGINT, SIGUSR1, SIGUSR2 };

	for (size_t i = 0; i < sizeof(signos) / sizeof(signos[0]); i++) {
		d->signals[i] = evsignal_new(d->base, signos[i], on_signal, d);
		if (d->signals[i] == NULL || evsignal_add(d->signals[i], NULL) < 0)
			return -1;
	}
	return 0;
}

/* ---- the control socket: the daemon's side ---- */

static bool control_reload(void *arg)
{
	struct daemon *d = arg;

	if (d->rt->stopping) {
		log_err("stopping: no reload");
		return false;
	}
	return reload(d);
}

static bool control_status(void *arg)
{
	struct daemon *d = arg;

	runtime_log_status(d->rt);
	return true;
}

static bool control_reopen(void *arg)
{
	(void)arg;
	return reopen_log();
}

static bool control_stop(void *arg)
{
	begin_stop(arg, "the control command stop");
	return true;
}

/* Made before privileges are dropped, and given to the user dropped to,
 * so that the daemon keeps answering on it (and removes it at exit). A
 * daemon without one still runs: SIGHUP reloads it. */
static int open_control(struct daemon *d)
{
	const struct conf *conf = runtime_conf(d->rt);
	const char *path = d->control_path ? d->control_path : conf->control_socket;
	struct control_limits limits = { .timeout = conf->control_timeout, .max_clients = conf->control_max_clients };
	struct control_commands commands = { .reload = control_reload, .status = control_status,
					     .stop = control_stop, .reopen = control_reopen, .arg = d };

	if (path[0] == '\0') {
		log_info("no control socket (control-socket = \"\")");
		return 0;
	}
	d->control = control_open(d->base, path, &limits, &commands);
	if (d->control != NULL && conf->user != NULL && geteuid() == 0)
		return control_chown(d->control, conf->uid, conf->gid);
	return 0;
}

static void log_unclaimed_socket(const char *name)
{
	log_warning("socket passed as \"%s\" matches no listener: closed", name);
}

static int run(struct daemon *d, struct conf *conf)
{
	struct log_context started = { .event = LOG_EVENT_STARTED, .config_file = d->config_path };
	int status = 1;
	size_t passed;

	raise_fd_limit();
	d->base = event_base_new();
	d->rt = d->base ? runtime_new(d->base) : NULL;
	if (d->rt == NULL) {
		conf_free(conf);
		log_err("cannot create the event loop");
		goto out;
	}
	passed = activation_init();
	if (passed > 0)
		log_info("socket activation: %zu socket%s passed", passed, passed == 1 ? "" : "s");
	if (runtime_apply(d->rt, conf) < 0) {
		activation_release_unclaimed(log_unclaimed_socket);
		log_err("not started: %s", d->rt->failure == RUNTIME_BIND_FAILED
						   ? "a required listener could not be opened"
						   : "a unit could not start");
		goto out;
	}
	activation_release_unclaimed(log_unclaimed_socket);
	conf = NULL;	/* the runtime owns it now */
	if (open_control(d) < 0) {
		log_err("not started: the control socket would be out of the daemon's reach");
		goto out;
	}
	if (runtime_conf(d->rt)->user != NULL && geteuid() == 0 &&
	    log_chown_file(runtime_conf(d->rt)->uid, runtime_conf(d->rt)->gid) < 0)
		log_warning("cannot give the log-file to user %s: %s; it cannot be reopened after the drop",
			    runtime_conf(d->rt)->user, strerror(errno));
	if (runtime_conf(d->rt)->user != NULL) {
		const struct conf *c = runtime_conf(d->rt);
		if (privileges_drop(c->user, c->uid, c->gid) < 0) {
			if (geteuid() == 0)
				log_err("not started: refusing to keep running as root");
			else
				log_err("not started: cannot become user %s", c->user);
			goto out;
		}
		d->dropped_to = c->uid;
		d->privileges_dropped = true;
	}
	if (privileges_confine_children() < 0) {
		log_err("not started: programs would inherit the daemon's capabilities");
		goto out;
	}
	if (add_signals(d) < 0 || add_timers(d) < 0) {
		log_err("cannot install signal handlers and timers");
		goto out;
	}
	log_write(LOG_INFO, &started, "chassisd %s started (libevent %s, %s)", CHASSISD_VERSION,
		  event_get_version(), event_base_get_method(d->base));
	report_status(d, "", true);
	event_base_dispatch(d->base);
	log_info("stopped");
	status = 0;
out:
	control_free(d->control);
	for (size_t i = 0; i < sizeof(d->signals) / sizeof(d->signals[0]); i++)
		if (d->signals[i] != NULL)
			event_free(d->signals[i]);
	if (d->watchdog != NULL)
		event_free(d->watchdog);
	if (d->status_timer != NULL)
		event_free(d->status_timer);
	runtime_free(d->rt);
	child_kill_all();
	if (d->base != NULL) {
		/* A freed bufferevent is released by a deferred callback; run
		 * those so that nothing outlives the loop. */
		for (int i = 0; i < 4; i++)
			event_base_loop(d->base, EVLOOP_NONBLOCK);
		event_base_free(d->base);
	}
	return status;
}

static int check_only(const char *path, struct conf *conf, const struct conf_errors *errors)
{
	if (conf == NULL) {
		for (size_t i = 0; i < errors->count; i++)
			fprintf(stderr, "%s\n", errors->lines[i]);
		return 1;
	}
	for (size_t i = 0; i < conf->warnings.count; i++)
		fprintf(stderr, "%s\n", conf->warnings.lines[i]);
	printf("%s: ok\n", path);
	conf_free(conf);
	return 0;
}

/* ---- the control socket: the client's side ---- */

#define CONTROL_CLIENT_TIMEOUT 30	/* seconds for the daemon to answer */

/* The daemon's socket: --control, else the config's control-socket (read
 * as far as the file parses: the reload that reports its errors needs it). */
static int run_client(const struct daemon *d, const char *command)
{
	struct conf_errors errors = { 0 };
	/* A stop waits for the daemon's end: its shutdown-grace and more. */
	struct conf *conf = strcmp(command, "stop") == 0 ? conf_load(d->config_path, protocol_config_table(), &errors)
							  : NULL;
	char *named = d->control_path ? NULL : conf_control_socket(d->config_path, protocol_config_table());
	const char *path = d->control_path ? d->control_path : named ? named : CONF_DEFAULT_CONTROL_SOCKET;
	unsigned grace = conf ? conf->shutdown_grace : CONF_DEFAULT_SHUTDOWN_GRACE;
	int status;

	if (path[0] == '\0') {
		fprintf(stderr, "chassisd %s: %s sets no control socket (control-socket = \"\"); use --control "
			"PATH or a signal\n", command, d->config_path);
		status = CONTROL_CLIENT_UNREACHABLE;
	} else {
		status = control_client_run(path, command, CONTROL_CLIENT_TIMEOUT, grace + CONTROL_CLIENT_TIMEOUT);
	}
	free(named);
	conf_free(conf);
	conf_errors_clear(&errors);
	return status;
}

/* -T: what nginx -T does: the config as the daemon would run it. */
static int print_effective(const char *path)
{
	struct conf_errors errors = { 0 };
	bool ok = conf_print_effective(path, protocol_config_table(), stdout, &errors);

	for (size_t i = 0; i < errors.count; i++)
		fprintf(stderr, "%s\n", errors.lines[i]);
	conf_errors_clear(&errors);
	return ok && fflush(stdout) == 0 ? 0 : 1;
}

/* Connection buffers come and go by tens of KiB: with glibc's default
 * 128 KiB trim threshold the heap was given back and taken again with brk
 * every other relayed round trip (a third of the syscalls, and 0.74x
 * nginx's CPU per round trip in tests/bench/relay). Keep up to this much
 * free at the top of the heap instead; GLIBC_TUNABLES still overrides. */
#define MALLOC_TRIM_THRESHOLD (2u << 20)
#define MALLOC_MMAP_THRESHOLD (1u << 20)

static void tune_malloc(void)
{
	const char *tunables = getenv("GLIBC_TUNABLES");

	if (tunables != NULL && strstr(tunables, "glibc.malloc.") != NULL)
		return;
	/* Setting either fixes both (glibc stops moving the mmap threshold
	 * up on its own), so both are set. */
	mallopt(M_TRIM_THRESHOLD, MALLOC_TRIM_THRESHOLD);
	mallopt(M_MMAP_THRESHOLD, MALLOC_MMAP_THRESHOLD);
}

int main(int argc, char **argv)
{
	static const struct option options[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "test", no_argument, NULL, 't' },
		{ "test-print", no_argument, NULL, 'T' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "version", no_argument, NULL, 'V' },
		{ "help", no_argument, NULL, 'h' },
		{ "control", required_argument, NULL, 'C' },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .config_path = CHASSISD_DEFAULT_CONFIG };
	struct conf_errors errors = { 0 };
	bool test = false, print = false;
	struct conf *conf;
	int opt, status;

	while ((opt = getopt_long(argc, argv, "c:tTvh", options, NULL)) != -1) {
		switch (opt) {
		case 'c': d.config_path = optarg; break;
		case 't': test = true; break;
		case 'T': print = true; break;
		case 'v': d.verbose = true; break;
		case 'C': d.control_path = optarg; break;
		case 'V': printf("chassisd %s\n", CHASSISD_VERSION); return 0;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind + 1 == argc && !test && control_client_is_command(argv[optind]))
		return run_client(&d, argv[optind]);
	if (optind < argc) {
		usage(stderr);
		return 2;
	}
	if (print)
		return print_effective(d.config_path);
	signal(SIGPIPE, SIG_IGN);
	tune_malloc();
	log_init();
	conf = load_config(d.config_path, &errors);
	if (test) {
		status = check_only(d.config_path, conf, &errors);
	} else if (conf == NULL) {
		log_config_errors(&errors, d.config_path, LOG_ERR, LOG_EVENT_NONE);
		log_err("not started: %zu error%s in %s", errors.count, errors.count == 1 ? "" : "s",
			d.config_path);
		status = 1;
	} else if (conf->log_file[0] != '\0' && log_use_file(conf->log_file) < 0) {
		log_err("not started: cannot open log-file %s: %s", conf->log_file, strerror(errno));
		conf_free(conf);
		status = 1;
	} else {
		apply_log_level(&d, conf);
		log_config_warnings(conf);
		status = run(&d, conf);
	}
	conf_errors_clear(&errors);
	log_use_file("");	/* closes the log-file */
	return status;
}
