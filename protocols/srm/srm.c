/* srm: reliable multicast of files (issue 20). This file configures the
 * srm { } section and dispatches a unit to its side: a stream is a sender
 * (sender.c) of its source or of a directory, a multicast listener a
 * receiver (receive.c) into a directory, a command (command.c) or only
 * its stream routes (live). Wire format: wire.h. IPv4 and IPv6 groups. */
#include <arpa/inet.h>
#include <confuse.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "conf/addr.h"
#include "conf/conf.h"
#include "daemon/protocol.h"
#include "protocols/srm/receive.h"
#include "protocols/srm/sender.h"
#include "protocols/srm/common.h"
#include "protocols/srm/fec.h"
#include "protocols/support/child_spec.h"

#define SRM_WINDOW_DEFAULT 16384
#define SRM_WINDOW_BYTES_DEFAULT (64ll * 1024 * 1024)
#define SRM_HOLD_OFF_MS_DEFAULT 50
#define SRM_HEARTBEAT_MS_DEFAULT 200
#define SRM_SESSIONS_DEFAULT 8
#define SRM_REORDER_DEFAULT 16384
#define SRM_REORDER_BYTES_DEFAULT (64ll * 1024 * 1024)
#define SRM_BACKOFF_MS_DEFAULT 20
#define SRM_RETRY_MS_DEFAULT 200
#define SRM_TIMEOUT_S_DEFAULT 10
#define SRM_MAX_OBJECT_SIZE_DEFAULT (16ll << 30)	/* a DVD image is 4.7 GB, a BD 25 GB */
#define SRM_MAX_FILES_DEFAULT 1000
#define SRM_COMMAND_TIMEOUT_S_DEFAULT 3600
#define SRM_KILL_GRACE_S_DEFAULT 2
#define SRM_COMMAND_QUEUE_DEFAULT 16
/* Unnamed files, so a private /var/tmp (the shipped unit's PrivateTmp=)
 * does as well as any: on disk, not in memory as /tmp may be. */
#define SRM_SPOOL_DEFAULT "/var/tmp"
#define SRM_FEC_DEFAULT "off"

/* The state of a listener is a struct srm_receiver; both start with this. */
enum srm_side { SRM_SIDE_SENDER = 1, SRM_SIDE_RECEIVER = 2 };

struct srm_state {
	enum srm_side side;
	union {
		struct srm_sender *sender;
		struct srm_receiver *receiver;
	} u;
};

/* ---- the unit ---- */

static void *srm_start(const void *settings, const struct unit_env *env)
{
	struct srm_state *state = calloc(1, sizeof(*state));

	if (state == NULL)
		return NULL;
	if (env->stream != NULL) {
		state->side = SRM_SIDE_SENDER;
		state->u.sender = srm_sender_start(settings, env);
	} else {
		state->side = SRM_SIDE_RECEIVER;
		state->u.receiver = srm_receiver_start(settings, env);
	}
	if (state->u.sender == NULL && state->u.receiver == NULL) {
		free(state);
		return NULL;
	}
	return state;
}

static void srm_stop(void *arg)
{
	struct srm_state *state = arg;

	if (state->side == SRM_SIDE_SENDER)
		srm_sender_free(state->u.sender);
	else
		srm_receiver_free(state->u.receiver);
	free(state);
}

static bool srm_same_text(const char *a, const char *b)
{
	return (a == NULL) == (b == NULL) && (a == NULL || strcmp(a, b) == 0);
}

static bool srm_same_command(const struct child_spec *a, const struct child_spec *b)
{
	size_t i = 0;

	if ((a->argv == NULL) != (b->argv == NULL))
		return false;
	for (; a->argv != NULL && a->argv[i] != NULL && b->argv[i] != NULL; i++)
		if (strcmp(a->argv[i], b->argv[i]) != 0)
			return false;
	return (a->argv == NULL || a->argv[i] == b->argv[i]) && srm_same_text(a->workdir, b->workdir) &&
	       a->timeout_ms == b->timeout_ms && a->kill_grace_ms == b->kill_grace_ms;
}

static bool srm_same(const void *a_arg, const void *b_arg)
{
	const struct srm_settings *a = a_arg, *b = b_arg;

	return a->wire == b->wire && a->session == b->session && a->window == b->window && a->window_bytes == b->window_bytes &&
	       a->hold_off_ms == b->hold_off_ms && a->heartbeat_ms == b->heartbeat_ms && a->sessions == b->sessions &&
	       a->reorder == b->reorder && a->reorder_bytes == b->reorder_bytes && a->backoff_ms == b->backoff_ms &&
	       a->retry_ms == b->retry_ms && a->timeout_s == b->timeout_s && a->max_files == b->max_files &&
	       a->max_object_size == b->max_object_size &&
	       a->command_queue == b->command_queue && a->fec_k == b->fec_k && a->fec_n == b->fec_n &&
	       a->fec_proactive == b->fec_proactive && a->live == b->live && srm_same_text(a->directory, b->directory) &&
	       srm_same_text(a->spool, b->spool) && srm_same_command(&a->command, &b->command);
}

/* A kept directory stream looks at its directory again: what is new or
 * changed since the last look is sent. */
static void srm_reloaded(void *arg, const void *settings)
{
	struct srm_state *state = arg;

	(void)settings;
	if (state->side == SRM_SIDE_SENDER)
		srm_sender_reloaded(state->u.sender);
}

static void srm_status(const void *arg, char *buf, size_t len)
{
	const struct srm_state *state = arg;

	buf[0] = '\0';
	if (state->side == SRM_SIDE_SENDER)
		srm_sender_status(state->u.sender, buf, len);
	else
		srm_receiver_status(state->u.receiver, buf, len);
}

static void srm_status_rows(const void *arg, char *buf, size_t len)
{
	const struct srm_state *state = arg;

	buf[0] = '\0';
	if (state->side == SRM_SIDE_SENDER)
		srm_sender_status_rows(state->u.sender, buf, len);
	else
		srm_receiver_status_rows(state->u.receiver, buf, len);
}

static void srm_status_text(const void *arg, char *buf, size_t len)
{
	const struct srm_state *state = arg;

	buf[0] = '\0';
	if (state->side == SRM_SIDE_SENDER)
		srm_sender_status_text(state->u.sender, buf, len);
}

static void srm_receive_datagram(struct datagram *dgram)
{
	struct srm_state *state = datagram_service_state(dgram);

	if (state->side == SRM_SIDE_RECEIVER)
		srm_receiver_datagram(state->u.receiver, dgram);
}

/* ---- config ---- */

static cfg_opt_t srm_options[] = {
	CFG_STR("wire", "chassisd", CFGF_NONE),
	CFG_INT("session", 0, CFGF_NONE),
	CFG_INT("window", SRM_WINDOW_DEFAULT, CFGF_NONE),
	CFG_INT("window-bytes", SRM_WINDOW_BYTES_DEFAULT, CFGF_NONE),
	CFG_INT("hold-off", SRM_HOLD_OFF_MS_DEFAULT, CFGF_NONE),
	CFG_INT("heartbeat", SRM_HEARTBEAT_MS_DEFAULT, CFGF_NONE),
	CFG_STR("directory", NULL, CFGF_NODEFAULT),
	CFG_INT("max-files", SRM_MAX_FILES_DEFAULT, CFGF_NONE),
	CFG_STR("fec", SRM_FEC_DEFAULT, CFGF_NONE),
	CFG_INT("fec-proactive", 0, CFGF_NONE),
	CFG_INT("sessions", SRM_SESSIONS_DEFAULT, CFGF_NONE),
	CFG_INT("reorder", SRM_REORDER_DEFAULT, CFGF_NONE),
	CFG_INT("reorder-bytes", SRM_REORDER_BYTES_DEFAULT, CFGF_NONE),
	CFG_INT("nak-backoff", SRM_BACKOFF_MS_DEFAULT, CFGF_NONE),
	CFG_INT("nak-retry", SRM_RETRY_MS_DEFAULT, CFGF_NONE),
	CFG_INT("timeout", SRM_TIMEOUT_S_DEFAULT, CFGF_NONE),
	CFG_INT("max-object-size", SRM_MAX_OBJECT_SIZE_DEFAULT, CFGF_NONE),
	CFG_STR_LIST("command", NULL, CFGF_NODEFAULT),
	CFG_BOOL("live", cfg_false, CFGF_NONE),
	CFG_STR("working-directory", "/", CFGF_NONE),
	CFG_INT("command-timeout", SRM_COMMAND_TIMEOUT_S_DEFAULT, CFGF_NONE),
	CFG_INT("kill-grace", SRM_KILL_GRACE_S_DEFAULT, CFGF_NONE),
	CFG_INT("command-queue", SRM_COMMAND_QUEUE_DEFAULT, CFGF_NONE),
	CFG_STR("spool", NULL, CFGF_NODEFAULT),	/* SRM_SPOOL_DEFAULT when not written */
	CFG_END()
};

static const char *const srm_sender_option_names[] = {
	"window", "window-bytes", "hold-off", "heartbeat", "max-files", "fec", "fec-proactive", NULL,
};
static const char *const srm_receiver_option_names[] = {
	"sessions", "reorder", "reorder-bytes", "nak-backoff", "nak-retry", "timeout", "max-object-size", "command",
	"working-directory",
	"command-timeout", "kill-grace", "command-queue", "spool", "live", NULL,
};
/* A listener's options that apply only when it delivers to a command. */
static const char *const srm_command_option_names[] = {
	"working-directory", "command-timeout", "kill-grace", "command-queue", "spool", NULL,
};

static bool srm_listed(const char *const *names, const char *name)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* For -T: a stream's options in a stream's section, a listener's in a
 * listener's; max-files with a directory to send, the program's options
 * with a command. */
static bool srm_option_applies(cfg_t *sec, bool stream, const char *option)
{
	bool directory = sec != NULL && cfg_size(sec, "directory") > 0;
	bool command = sec != NULL && cfg_size(sec, "command") > 0;

	if (srm_listed(stream ? srm_receiver_option_names : srm_sender_option_names, option))
		return false;
	if (stream && strcmp(option, "fec-proactive") == 0)
		return sec != NULL && strcmp(cfg_getstr(sec, "fec"), SRM_FEC_DEFAULT) != 0;
	if (stream)
		return strcmp(option, "max-files") != 0 || directory;
	return !srm_listed(srm_command_option_names, option) || command;
}

static void srm_settings_free(void *arg)
{
	struct srm_settings *s = arg;

	if (s == NULL)
		return;
	free(s->directory);
	free(s->spool);
	child_spec_free(&s->command);
	free(s);
}

static void srm_check_side(cfg_t *sec, struct conf_scope *scope)
{
	bool stream = conf_scope_is_stream(scope);
	const char *const *names = stream ? srm_receiver_option_names : srm_sender_option_names;

	for (size_t i = 0; sec != NULL && names[i] != NULL; i++)
		if (conf_scope_written(scope, names[i]))
			conf_scope_error(scope, names[i], "%s is an srm %s option", names[i],
					 stream ? "listener" : "stream");
}

/* What a stream sends: its source { } or, instead, every file of a
 * directory, each an object with its name. */
static void srm_configure_sent(struct srm_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	const struct conf_stream *st = conf_scope_stream(scope);
	const char *directory = sec ? cfg_getstr(sec, "directory") : NULL;
	bool source = st == NULL || st->source.kind != SOURCE_NONE;
	long max_files = SRM_MAX_FILES_DEFAULT;

	if (sec != NULL)
		conf_scope_int(scope, sec, "max-files", 1, 1000000, &max_files);
	s->max_files = (unsigned)max_files;
	if (directory != NULL && source)
		conf_scope_error(scope, "directory", "an srm stream sends its source { } or a directory, not both");
	else if (directory == NULL && !source)
		conf_scope_error(scope, NULL, "an srm stream needs source { } or srm { directory = \"/absolute/path\" }");
	if (directory == NULL)
		return;
	if (directory[0] != '/')
		conf_scope_error(scope, "directory", "directory must be an absolute path, not \"%s\"", directory);
	if (s->wire == SRM_WIRE_KAMAELIA)
		conf_scope_error(scope, "directory",
				 "wire = \"kamaelia\" is one byte stream with no objects or names: it sends a source { }");
	s->directory = strdup(directory);
}

/* fec = "off" or "K+N": blocks of K sequenced datagrams, up to N parity
 * each (proactive ones included); fec-proactive = P of them sent as each
 * block is complete, the rest only for NAKs. */
static void srm_configure_fec(struct srm_settings *s, cfg_t *sec, struct conf_scope *scope, long window)
{
	const char *fec = sec ? cfg_getstr(sec, "fec") : SRM_FEC_DEFAULT;
	const struct conf_stream *st = conf_scope_stream(scope);
	long proactive = 0;
	unsigned k = 0, n = 0;
	int used = 0;

	if (sec != NULL)
		conf_scope_int(scope, sec, "fec-proactive", 0, SRM_FEC_MAX_BLOCK - 1, &proactive);
	if (strcmp(fec, "off") == 0) {
		if (proactive != 0)
			conf_scope_error(scope, "fec-proactive", "fec-proactive needs fec = \"K+N\"");
		return;
	}
	if (sscanf(fec, "%3u+%3u%n", &k, &n, &used) != 2 || fec[used] != '\0' || fec[0] < '0' || fec[0] > '9' ||
	    strchr(fec, '+')[1] < '0' || strchr(fec, '+')[1] > '9' || k < 1 || n < 1 || k + n > SRM_FEC_MAX_BLOCK) {
		conf_scope_error(scope, "fec",
				 "fec must be \"off\" or \"K+N\" (K data and N parity datagrams a block, K and N 1 or "
				 "more, K + N at most %d), not \"%s\"", SRM_FEC_MAX_BLOCK, fec);
		return;
	}
	if (s->wire != SRM_WIRE_CHASSISD)
		conf_scope_error(scope, "fec", "fec needs wire = \"chassisd\" (kamaelia's stream has no repair)");
	if ((long)k > window)
		conf_scope_error(scope, "fec", "fec's K (%u) is over the window (%ld datagrams)", k, window);
	if (proactive > (long)n)
		conf_scope_error(scope, "fec-proactive", "fec-proactive (%ld) is over fec's N (%u)", proactive, n);
	if (st != NULL && st->packet_size > SRM_PARITY_SYMBOL_MAX - SRM_HEADER_SIZE)
		conf_scope_error(scope, "fec", "fec needs packet-size at most %d (a parity datagram carries a whole one)",
				 SRM_PARITY_SYMBOL_MAX - SRM_HEADER_SIZE);
	s->fec_k = k;
	s->fec_n = n;
	s->fec_proactive = (unsigned)proactive;
}

static void srm_configure_sender(struct srm_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	long window = SRM_WINDOW_DEFAULT, window_bytes = SRM_WINDOW_BYTES_DEFAULT;
	long hold_off = SRM_HOLD_OFF_MS_DEFAULT, heartbeat = SRM_HEARTBEAT_MS_DEFAULT;
	const struct conf_stream *st = conf_scope_stream(scope);

	if (sec != NULL) {
		conf_scope_int(scope, sec, "window", 1, 1 << 20, &window);
		conf_scope_int(scope, sec, "window-bytes", SRM_DATAGRAM_MAX, 1ll << 32, &window_bytes);
		conf_scope_int(scope, sec, "hold-off", 1, 10000, &hold_off);
		conf_scope_int(scope, sec, "heartbeat", 10, 60000, &heartbeat);
	}
	srm_configure_sent(s, sec, scope);
	srm_configure_fec(s, sec, scope, window);
	s->window = (unsigned)window;
	s->window_bytes = (unsigned long long)window_bytes;
	s->hold_off_ms = (unsigned)hold_off;
	s->heartbeat_ms = (unsigned)heartbeat;
	if (s->session == 0 && s->wire == SRM_WIRE_CHASSISD)
		conf_scope_error(scope, "session", "an srm stream needs a session (1 to 4294967295)");
	if (st != NULL && (st->n_destinations != 1 || !addr_is_multicast((const struct sockaddr *)&st->destinations[0].sa)))
		conf_scope_error(scope, "destination", "an srm stream sends to one multicast group (IPv4 or IPv6)");
	if (st != NULL && st->rate == 0)
		conf_scope_error(scope, "session", "an srm stream needs a rate (repairs are counted against it)");
}

/* A listener that pipes each object to a program: the child runner's
 * spec (one run at a time, stdout read and thrown away), where objects
 * wait on disk, and how many may wait. */
static void srm_configure_command(struct srm_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	const char *workdir = cfg_getstr(sec, "working-directory"), *spool = cfg_getstr(sec, "spool");
	long timeout = SRM_COMMAND_TIMEOUT_S_DEFAULT, grace = SRM_KILL_GRACE_S_DEFAULT;
	long queue = SRM_COMMAND_QUEUE_DEFAULT;
	struct stat st;

	if (spool == NULL)
		spool = SRM_SPOOL_DEFAULT;

	child_spec_configure_argv(&s->command, sec, scope, NULL);
	conf_scope_int(scope, sec, "command-timeout", 1, 86400, &timeout);
	conf_scope_int(scope, sec, "kill-grace", 0, 60, &grace);
	conf_scope_int(scope, sec, "command-queue", 1, 4096, &queue);
	if (workdir[0] != '/' || stat(workdir, &st) < 0 || !S_ISDIR(st.st_mode))
		conf_scope_error(scope, "working-directory",
				 "working-directory \"%s\" is not an absolute path to a directory", workdir);
	if (spool[0] != '/')
		conf_scope_error(scope, "spool", "spool must be an absolute path, not \"%s\"", spool);
	s->command.workdir = strdup(workdir);
	s->command.timeout_ms = (unsigned)timeout * 1000;
	s->command.kill_grace_ms = (unsigned)grace * 1000;
	s->command.output_limit = SIZE_MAX / 2;
	s->command.max_children = 1;
	s->spool = strdup(spool);
	s->command_queue = (unsigned)queue;
}

static void srm_configure_receiver(struct srm_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	long sessions = SRM_SESSIONS_DEFAULT, reorder = SRM_REORDER_DEFAULT, reorder_bytes = SRM_REORDER_BYTES_DEFAULT;
	long backoff = SRM_BACKOFF_MS_DEFAULT, retry = SRM_RETRY_MS_DEFAULT, timeout = SRM_TIMEOUT_S_DEFAULT;
	long max_object = SRM_MAX_OBJECT_SIZE_DEFAULT;
	const char *directory = sec ? cfg_getstr(sec, "directory") : NULL;
	bool command = sec != NULL && cfg_size(sec, "command") > 0;
	bool live = sec != NULL && cfg_getbool(sec, "live");

	if (sec != NULL) {
		conf_scope_int(scope, sec, "sessions", 1, 4096, &sessions);
		conf_scope_int(scope, sec, "reorder", 1, 1 << 20, &reorder);
		conf_scope_int(scope, sec, "reorder-bytes", SRM_DATAGRAM_MAX, 1ll << 32, &reorder_bytes);
		conf_scope_int(scope, sec, "nak-backoff", 1, 10000, &backoff);
		conf_scope_int(scope, sec, "nak-retry", 1, 60000, &retry);
		conf_scope_int(scope, sec, "timeout", 1, 86400, &timeout);
		conf_scope_int(scope, sec, "max-object-size", 1, 1ll << 50, &max_object);
	}
	if (conf_scope_transport(scope) != TRANSPORT_MULTICAST)
		conf_scope_error(scope, "directory", "an srm listener needs transport = \"multicast\"");
	if (directory != NULL && command)
		conf_scope_error(scope, "command", "an srm listener delivers to directory or to command, not both");
	else if (live && (directory != NULL || command))
		conf_scope_error(scope, "live", "live = true delivers to stream routes only: no %s",
				 command ? "command" : "directory");
	else if (directory == NULL && !command && !live)
		conf_scope_error(scope, "directory", "an srm listener needs directory = \"/absolute/path\", command = "
				 "{\"/absolute/program\", ...} or live = true");
	else if (directory != NULL && directory[0] != '/')
		conf_scope_error(scope, "directory", "an srm listener needs directory = an absolute path");
	if (command && s->wire == SRM_WIRE_KAMAELIA)
		conf_scope_error(scope, "command", "wire = \"kamaelia\" is one byte stream with no objects: it needs directory");
	if (command && directory == NULL)
		srm_configure_command(s, sec, scope);
	for (size_t i = 0; !command && srm_command_option_names[i] != NULL; i++)
		if (conf_scope_written(scope, srm_command_option_names[i]))
			conf_scope_error(scope, srm_command_option_names[i], "%s applies to an srm listener with command only",
					 srm_command_option_names[i]);
	if (live && directory == NULL && !command && s->wire == SRM_WIRE_CHASSISD && s->session == 0 &&
	    sessions > 1)
		conf_scope_error(scope, "live", "live = true needs session = N (or sessions = 1): "
				 "a stream carries one sender's bytes");
	s->directory = directory ? strdup(directory) : NULL;
	s->live = live;
	s->sessions = (unsigned)sessions;
	s->reorder = (unsigned)reorder;
	s->reorder_bytes = (unsigned long long)reorder_bytes;
	s->backoff_ms = (unsigned)backoff;
	s->retry_ms = (unsigned)retry;
	s->timeout_s = (unsigned)timeout;
	s->max_object_size = (unsigned long long)max_object;
}

static void *srm_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct srm_settings *s = calloc(1, sizeof(*s));
	long session = 0;
	const char *wire = sec ? cfg_getstr(sec, "wire") : NULL;

	if (s == NULL)
		return NULL;
	if (sec != NULL)
		conf_scope_int(scope, sec, "session", 0, 4294967295ll, &session);
	s->session = (uint32_t)session;
	if (wire == NULL || strcmp(wire, "chassisd") == 0)
		s->wire = SRM_WIRE_CHASSISD;
	else if (strcmp(wire, "kamaelia") == 0)
		s->wire = SRM_WIRE_KAMAELIA;
	else
		conf_scope_error(scope, "wire", "wire must be \"chassisd\" or \"kamaelia\", not \"%s\"", wire);
	srm_check_side(sec, scope);
	if (conf_scope_is_stream(scope))
		srm_configure_sender(s, sec, scope);
	else
		srm_configure_receiver(s, sec, scope);
	return s;
}

const struct protocol protocol_srm = {
	.config = {
		.name = "srm",
		.options = srm_options,
		.transports = TRANSPORT_BIT(TRANSPORT_MULTICAST) | UNIT_STREAM_BIT | UNIT_STREAM_SOURCE_OPTIONAL_BIT,
		.configure = srm_configure,
		.settings_free = srm_settings_free,
		.option_applies = srm_option_applies,
	},
	.start = srm_start,
	.stop = srm_stop,
	.same = srm_same,
	.reloaded = srm_reloaded,
	.status = srm_status,
	.status_rows = srm_status_rows,
	.status_text = srm_status_text,
	.datagram = srm_receive_datagram,
	/* A stream route on a listener gets the session's bytes in order,
	 * not the srm datagrams. */
	.taps_get_payload = true,
};
