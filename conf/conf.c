#include "conf/conf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <net/if.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include <confuse.h>

#include "conf/file.h"
#include "conf/include.h"
#include "conf/marks.h"
#include "conf/pass.h"
#include "conf/text.h"
#include "conf/tls.h"
#include "conf/strip.h"

struct loader {
	struct conf_pass pass;			/* first: a scope's pass is its loader's */
	const struct conf_module *const *modules;
	int parse_error_line;			/* where libconfuse stopped; 0 = it did not */
	bool printing_stream;			/* -T: the unit printed now is a stream */
	struct conf_text text;			/* lines below are lines of text */
};

/* libconfuse's validators and error hook carry no user pointer; loading is
 * single-threaded and not reentrant, so the loader in progress sits here. */
static struct loader *active_loader;

static const struct {
	const char *name;
	int level;
} log_levels[] = {
	{ "err", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
	{ "info", LOG_INFO }, { "debug", LOG_DEBUG },
};

static const char *const transport_names[] = {
	[TRANSPORT_TCP] = "tcp",
	[TRANSPORT_UDP] = "udp",
	[TRANSPORT_MULTICAST] = "multicast",
};

#define CONF_DEFAULT_NETSIM_MAX_HELD 4096
#define CONF_DEFAULT_PACKET_SIZE 1316		/* 7 x 188: MPEG-TS over UDP */
#define CONF_DEFAULT_STREAM_QUEUE 256		/* datagrams waiting for the socket */
#define CONF_DEFAULT_READ_AHEAD (256 * 1024)

static cfg_opt_t netsim_options[] = {
	CFG_FLOAT("loss", 0, CFGF_NONE),
	CFG_FLOAT("duplicate", 0, CFGF_NONE),
	CFG_FLOAT("corrupt", 0, CFGF_NONE),
	CFG_INT("reorder", 0, CFGF_NONE),
	CFG_INT("delay", 0, CFGF_NONE),
	CFG_INT("jitter", 0, CFGF_NONE),
	CFG_INT("seed", 0, CFGF_NONE),
	CFG_INT("max-held", CONF_DEFAULT_NETSIM_MAX_HELD, CFGF_NONE),
	CFG_END()
};

static cfg_opt_t source_options[] = {
	CFG_STR("file", NULL, CFGF_NODEFAULT),
	CFG_BOOL("loop", cfg_false, CFGF_NONE),
	CFG_STR_LIST("command", NULL, CFGF_NODEFAULT),
	CFG_STR("url", NULL, CFGF_NODEFAULT),
	CFG_BOOL("icecast", cfg_false, CFGF_NONE),
	CFG_STR("listener", NULL, CFGF_NODEFAULT),
	CFG_INT("read-ahead", CONF_DEFAULT_READ_AHEAD, CFGF_NONE),
	CFG_INT("connect-timeout", 5, CFGF_NONE),
	CFG_INT("stall-timeout", 10, CFGF_NONE),
	CFG_INT("max-redirects", 5, CFGF_NONE),
	CFG_INT("backoff", 1, CFGF_NONE),
	CFG_INT("backoff-max", 30, CFGF_NONE),
	CFG_SEC("tls", conf_tls_client_options, CFGF_NONE),
	CFG_END()
};

/* Options every stream has, whatever its protocol. */
static cfg_opt_t stream_common_options[] = {
	CFG_STR("protocol", NULL, CFGF_NODEFAULT),
	CFG_BOOL("enabled", cfg_true, CFGF_NONE),
	CFG_STR_LIST("destination", NULL, CFGF_NODEFAULT),
	CFG_STR("interface", NULL, CFGF_NODEFAULT),
	CFG_INT("ttl", 1, CFGF_NONE),
	CFG_BOOL("loop", cfg_true, CFGF_NONE),
	CFG_SEC("source", source_options, CFGF_NONE),
	CFG_INT("packet-size", CONF_DEFAULT_PACKET_SIZE, CFGF_NONE),
	CFG_INT("rate", 0, CFGF_NONE),
	CFG_INT("queue", CONF_DEFAULT_STREAM_QUEUE, CFGF_NONE),
	CFG_SEC("netsim", netsim_options, CFGF_NONE),
};
#define N_STREAM_COMMON (sizeof(stream_common_options) / sizeof(stream_common_options[0]))
/* The stream options about sending, which a stream its peers come to
 * (UNIT_STREAM_SELF_BIT: torrent) has none of. */
static const char *const sending_options[] = {
	"destination", "interface", "ttl", "loop", "source", "packet-size", "rate", "queue", "netsim", NULL,
};

/* Options every listener has, whatever its protocol. */
static cfg_opt_t listener_common_options[] = {
	CFG_STR("protocol", NULL, CFGF_NODEFAULT),
	CFG_BOOL("enabled", cfg_true, CFGF_NONE),
	CFG_STR("transport", "tcp", CFGF_NONE),
	CFG_STR("address", NULL, CFGF_NODEFAULT),
	CFG_STR("interface", NULL, CFGF_NODEFAULT),
	CFG_INT("ttl", 1, CFGF_NONE),
	CFG_BOOL("loop", cfg_true, CFGF_NONE),
	CFG_STR("join", "always", CFGF_NONE),
	CFG_INT("receive-buffer", 0, CFGF_NONE),
	CFG_BOOL("required", cfg_true, CFGF_NONE),
	CFG_INT("max-connections", CONF_DEFAULT_LISTENER_MAX_CONNECTIONS, CFGF_NONE),
	CFG_INT("per-source", CONF_DEFAULT_PER_SOURCE, CFGF_NONE),
	CFG_INT("idle-timeout", CONF_DEFAULT_IDLE_TIMEOUT, CFGF_NONE),
	CFG_INT("buffer-size", CONF_DEFAULT_BUFFER_SIZE, CFGF_NONE),
	CFG_INT("notsent-lowat", CONF_DEFAULT_NOTSENT_LOWAT, CFGF_NONE),
	CFG_BOOL("connection-log", cfg_false, CFGF_NONE),
	CFG_STR_LIST("allow", NULL, CFGF_NONE),
	CFG_STR_LIST("deny", NULL, CFGF_NONE),
	CFG_SEC("netsim", netsim_options, CFGF_NONE),
	CFG_SEC("tls", conf_tls_server_options, CFGF_NONE),
};
#define N_COMMON (sizeof(listener_common_options) / sizeof(listener_common_options[0]))

static const char *const tcp_only_options[] = {
	"max-connections", "per-source", "idle-timeout", "buffer-size", "notsent-lowat", "connection-log", "tls", NULL,
};
static const char *const datagram_only_options[] = { "netsim", "receive-buffer", NULL };
static const char *const multicast_only_options[] = { "interface", "ttl", "loop", "join", NULL };

const char *transport_name(enum transport transport)
{
	return transport_names[transport];
}

const char *log_level_name(int level)
{
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (log_levels[i].level == level)
			return log_levels[i].name;
	return "?";
}

/* ---- line marks ---- */

static int section_line(const struct loader *ld, const cfg_t *section)
{
	return conf_marks_section_line(&ld->pass.marks, section);
}

static int line_or(const struct loader *ld, const cfg_t *section, const char *option, int fallback)
{
	return conf_marks_line_or(&ld->pass.marks, section, option, fallback);
}

/* 0 when the option was not written (a global, left at its default). */
static int find_line(const struct loader *ld, const cfg_t *section, const char *option)
{
	return line_or(ld, section, option, 0);
}

static bool option_written(const struct loader *ld, const cfg_t *section, const char *option)
{
	return conf_marks_written(&ld->pass.marks, section, option);
}

static struct loader *loader_of(const struct conf_scope *scope)
{
	return (struct loader *)((char *)scope->pass - offsetof(struct loader, pass));
}

static int record_value_line(cfg_t *cfg, cfg_opt_t *opt)
{
	conf_marks_add(&active_loader->pass.marks, cfg, opt->name, cfg->line);
	return 0;
}

/* Runs when a section closes; cfg is its parent, the section the last one. */
static int record_section_line(cfg_t *cfg, cfg_opt_t *opt)
{
	cfg_t *section = cfg_opt_getnsec(opt, cfg_opt_size(opt) - 1);

	conf_marks_add(&active_loader->pass.marks, section, "}", cfg->line);
	conf_marks_add(&active_loader->pass.marks, cfg, opt->name, cfg->line);
	return 0;
}

static void register_line_marks(cfg_t *cfg, cfg_opt_t *opts, const char *prefix)
{
	char path[256];

	for (cfg_opt_t *opt = opts; opt->name != NULL; opt++) {
		/* Option paths are a few names deep; a cut one would mark the
		 * wrong option, so it is skipped rather than truncated. */
		if (snprintf(path, sizeof(path), "%s%s", prefix, opt->name) >= (int)sizeof(path))
			continue;
		if (opt->type == CFGT_SEC) {
			char nested[sizeof(path) + 1];
			cfg_set_validate_func(cfg, path, record_section_line);
			if (snprintf(nested, sizeof(nested), "%s|", path) < (int)sizeof(nested))
				register_line_marks(cfg, opt->subopts, nested);
		} else {
			cfg_set_validate_func(cfg, path, record_value_line);
		}
	}
}

/* Levenshtein distance, capped: anything above limit reads as limit + 1. */
static size_t edit_distance(const char *a, const char *b, size_t limit)
{
	size_t la = strlen(a), lb = strlen(b), row[64], prev, keep;

	if (la >= sizeof(row) / sizeof(row[0]) || (la > lb ? la - lb : lb - la) > limit)
		return limit + 1;
	for (size_t i = 0; i <= la; i++)
		row[i] = i;
	for (size_t j = 1; j <= lb; j++) {
		prev = row[0];
		row[0] = j;
		for (size_t i = 1; i <= la; i++) {
			size_t best = prev + (a[i - 1] != b[j - 1]);
			keep = row[i];
			if (row[i] + 1 < best)
				best = row[i] + 1;
			if (row[i - 1] + 1 < best)
				best = row[i - 1] + 1;
			row[i] = best;
			prev = keep;
		}
	}
	return row[la] > limit ? limit + 1 : row[la];
}

/* The option of the section closest to a misspelt name, within two edits. */
static const char *closest_option(const cfg_t *cfg, const char *name)
{
	const char *best = NULL;
	size_t best_distance = 3;

	for (const cfg_opt_t *opt = cfg->opts; opt != NULL && opt->name != NULL; opt++) {
		size_t d = edit_distance(name, opt->name, 2);
		if (d < best_distance && d < strlen(name)) {
			best = opt->name;
			best_distance = d;
		}
	}
	return best;
}

static void report_libconfuse_error(cfg_t *cfg, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

static void report_libconfuse_error(cfg_t *cfg, const char *fmt, va_list ap)
{
	static const char unknown[] = "no such option '";
	char message[512], name[256];
	const char *suggestion = NULL;
	int line = cfg ? cfg->line : 0;

	vsnprintf(message, sizeof(message), fmt, ap);
	/* The option's name, from the message libconfuse formats. */
	if (cfg != NULL && sscanf(message, "no such option '%255[^']'", name) == 1 &&
	    strlen(message) == strlen(unknown) + strlen(name) + 1)
		suggestion = closest_option(cfg, name);
	if (active_loader->parse_error_line == 0)
		active_loader->parse_error_line = line ? line : -1;
	if (suggestion != NULL)
		conf_errors_add(active_loader->pass.errors, "%s:%d: %s (did you mean '%s'?)", active_loader->pass.path, line,
				message, suggestion);
	else
		conf_errors_add(active_loader->pass.errors, "%s:%d: %s", active_loader->pass.path, line, message);
}

/* ---- schema ---- */

/* A unit's options: the common ones, then a section per protocol. */
static cfg_opt_t *unit_options_new(const cfg_opt_t *common, size_t n_common, const struct conf_module *const *all)
{
	size_t n_protocols = 0, i;
	cfg_opt_t *opts;

	while (all[n_protocols] != NULL)
		n_protocols++;
	opts = calloc(n_common + n_protocols + 1, sizeof(*opts));
	if (opts == NULL)
		return NULL;
	memcpy(opts, common, n_common * sizeof(*common));
	for (i = 0; i < n_protocols; i++) {
		cfg_opt_t section = CFG_SEC(all[i]->name, all[i]->options, CFGF_NONE);
		opts[n_common + i] = section;
	}
	return opts;
}

static cfg_t *schema_new(cfg_opt_t *listener_opts, cfg_opt_t *stream_opts)
{
	cfg_opt_t opts[] = {
		CFG_STR("log-level", "info", CFGF_NONE),
		CFG_STR("log-file", "", CFGF_NONE),
		CFG_STR("user", NULL, CFGF_NODEFAULT),
		CFG_STR("group", NULL, CFGF_NODEFAULT),
		CFG_INT("max-connections", CONF_DEFAULT_MAX_CONNECTIONS, CFGF_NONE),
		CFG_INT("shutdown-grace", CONF_DEFAULT_SHUTDOWN_GRACE, CFGF_NONE),
		CFG_INT("max-children", CONF_DEFAULT_MAX_CHILDREN, CFGF_NONE),
		CFG_STR("control-socket", CONF_DEFAULT_CONTROL_SOCKET, CFGF_NONE),
		CFG_INT("control-timeout", CONF_DEFAULT_CONTROL_TIMEOUT, CFGF_NONE),
		CFG_INT("control-max-clients", CONF_DEFAULT_CONTROL_MAX_CLIENTS, CFGF_NONE),
		CFG_SEC("listener", listener_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_SEC("stream", stream_opts, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
		CFG_END()
	};
	cfg_t *cfg = cfg_init(opts, CFGF_NONE);

	if (cfg != NULL) {
		cfg_set_error_function(cfg, report_libconfuse_error);
		register_line_marks(cfg, opts, "");
	}
	return cfg;
}

/* "line N" of the file a message is about, "FILE:N" of another one. */
static const char *place(const struct loader *ld, int line, char *buf, size_t cap)
{
	const struct conf_origin *o = conf_text_origin(&ld->text, line);

	if (o == NULL || o->file == ld->text.files[0])
		snprintf(buf, cap, "line %d", o ? o->line : line);
	else
		snprintf(buf, cap, "%s:%d", o->file, o->line);
	return buf;
}

/* Where a string runs on past its line before an error, the missing quote
 * is most likely there, lines before the error libconfuse reports. */
static void report_runaway_string(struct loader *ld, int error_line)
{
	int ends, start = conf_find_runaway_string(ld->text.text, ld->text.len, &ends);
	char where[PATH_MAX + 32];

	if (start == 0 || (error_line > 0 && start >= error_line))
		return;
	if (ends)
		conf_errors_add(ld->pass.errors, "%s:%d: this string runs on to %s: is its closing quote missing?",
				ld->pass.path, start, place(ld, ends, where, sizeof(where)));
	else
		conf_errors_add(ld->pass.errors, "%s:%d: this string is never closed", ld->pass.path, start);
}

/* libconfuse stops at its first error. When that line holds a single
 * statement (no brace, no parenthesis, its quotes paired), blanking it lets
 * a second pass find the errors after it; otherwise the pass cannot go on. */
static bool blank_line(char *text, int line)
{
	char *start = text, *end;
	size_t quotes = 0;
	bool blank = true;

	for (int at = 1; at < line && start != NULL; at++)
		if ((start = strchr(start, '\n')) != NULL)
			start++;
	if (start == NULL || line < 1)
		return false;
	end = strchrnul(start, '\n');
	for (const char *c = start; c < end; c++) {
		if (strchr("{}()'", *c) != NULL)
			return false;
		quotes += *c == '"';
		blank = blank && (*c == ' ' || *c == '\t' || *c == '\r');
	}
	if (blank || quotes % 2 != 0)
		return false;
	memset(start, ' ', (size_t)(end - start));
	return true;
}

/* ---- values ---- */

static bool check_range(struct conf_scope *scope, cfg_t *sec, const char *option, long min,
			long max, unsigned *out)
{
	long value = cfg_getint(sec, option);

	if (value < min || value > max) {
		conf_scope_error(scope, option, "%s must be from %ld to %ld, not %ld", option, min,
				 max, value);
		return false;
	}
	*out = (unsigned)value;
	return true;
}

static bool parse_transport(const char *text, enum transport *out)
{
	for (size_t i = 0; i < sizeof(transport_names) / sizeof(transport_names[0]); i++)
		if (strcmp(text, transport_names[i]) == 0) {
			*out = (enum transport)i;
			return true;
		}
	return false;
}

static void parse_cidr_list(struct conf_scope *scope, cfg_t *sec, const char *option,
			    struct cidr **out, size_t *count)
{
	unsigned n = cfg_size(sec, option);
	char err[160];

	*count = 0;
	*out = n ? calloc(n, sizeof(**out)) : NULL;
	for (unsigned i = 0; i < n; i++) {
		const char *text = cfg_getnstr(sec, option, i);
		if (cidr_parse(text, &(*out)[*count], err, sizeof(err)) < 0)
			conf_scope_error(scope, option, "%s: %s", option, err);
		else
			(*count)++;
	}
}

static void reject_written(struct conf_scope *scope, cfg_t *sec, const char *const *options,
			   const char *why)
{
	for (size_t i = 0; options[i] != NULL; i++)
		if (option_written(loader_of(scope), sec, options[i]))
			conf_scope_error(scope, options[i], "option \"%s\" %s", options[i], why);
}

static void resolve_interface(struct conf_scope *scope, cfg_t *sec, struct conf_listener *l)
{
	const char *name = cfg_getstr(sec, "interface");

	if (name == NULL) {
		conf_scope_error(scope, "address",
				 "a multicast listener needs \"interface\" (an address or a name), "
				 "so that it never joins or sends on the default route");
		return;
	}
	l->interface = strdup(name);
	if (inet_pton(AF_INET, name, &l->if_addr) == 1) {
		if (l->endpoint.sa.ss_family != AF_INET)
			conf_scope_error(scope, "interface",
					 "an IPv6 group needs an interface name, not \"%s\"", name);
		return;
	}
	l->ifindex = if_nametoindex(name);
	if (l->ifindex == 0)
		conf_scope_error(scope, "interface", "no such interface \"%s\"", name);
}

static void parse_address(struct conf_scope *scope, cfg_t *sec, struct conf_listener *l)
{
	const char *text = cfg_getstr(sec, "address");
	char err[160];
	bool group;

	if (text == NULL) {
		conf_scope_error(scope, NULL, "missing \"address\"");
		return;
	}
	l->address = strdup(text);
	if (endpoint_parse(text, &l->endpoint, err, sizeof(err)) < 0) {
		conf_scope_error(scope, "address", "bad address \"%s\": %s", text, err);
		return;
	}
	group = addr_is_multicast((struct sockaddr *)&l->endpoint.sa);
	if (l->transport == TRANSPORT_MULTICAST && !group)
		conf_scope_error(scope, "address", "\"%s\" is not a multicast group", text);
	else if (l->transport != TRANSPORT_MULTICAST && group)
		conf_scope_error(scope, "address",
				 "\"%s\" is a multicast group: use transport = \"multicast\"", text);
}

static const struct conf_module *find_module(const struct conf_module *const *all, const char *name)
{
	for (size_t i = 0; all[i] != NULL; i++)
		if (strcmp(all[i]->name, name) == 0)
			return all[i];
	return NULL;
}

static void parse_protocol(struct conf_scope *scope, cfg_t *sec, struct conf_unit *unit)
{
	const char *name = cfg_getstr(sec, "protocol");
	const struct conf_module *const *all = loader_of(scope)->modules;

	if (name == NULL) {
		conf_scope_error(scope, NULL, "missing \"protocol\"");
		return;
	}
	unit->module = find_module(all, name);
	if (unit->module == NULL) {
		char known[256] = "";
		for (size_t i = 0; all[i] != NULL; i++)
			snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
				 i ? ", " : "", all[i]->name);
		conf_scope_error(scope, "protocol", "unknown protocol \"%s\" (known: %s)", name, known);
	}
	/* A section for another protocol would be silently ignored. */
	for (size_t i = 0; all[i] != NULL; i++)
		if (all[i] != unit->module && option_written(loader_of(scope), sec, all[i]->name))
			conf_scope_error(scope, all[i]->name,
					 "section \"%s { }\" does not apply to protocol \"%s\"",
					 all[i]->name, name);
}

/* The module's own section, through its configure() hook. */
static void configure_module(struct conf_scope *scope, cfg_t *sec, struct conf_unit *unit, enum transport transport)
{
	struct conf_scope inner = *scope;

	if (unit->module->configure == NULL)
		return;
	inner.section = cfg_getsec(sec, unit->module->name);
	inner.fallback_line = line_or(loader_of(scope), sec, unit->module->name, scope->fallback_line);
	inner.failed = false;
	inner.transport = transport;
	unit->settings = unit->module->configure(inner.section, &inner);
	if (inner.failed)
		scope->failed = true;
}

static void parse_protocol_settings(struct conf_scope *scope, cfg_t *sec, struct conf_listener *l)
{
	if (l->unit.module == NULL)
		return;
	if (!(l->unit.module->transports & TRANSPORT_BIT(l->transport))) {
		conf_scope_error(scope, "transport", "protocol \"%s\" does not support transport \"%s\"%s",
				 l->unit.module->name, transport_name(l->transport),
				 l->unit.module->transports & ~UNIT_STREAM_BIT ? "" : " (it runs as a stream)");
		return;
	}
	configure_module(scope, sec, &l->unit, l->transport);
}

static bool check_probability(struct conf_scope *scope, cfg_t *sec, const char *option, double *out)
{
	double value = cfg_getfloat(sec, option);

	if (!(value >= 0 && value <= 1)) {
		conf_scope_error(scope, option, "%s must be from 0 to 1, not %g", option, value);
		return false;
	}
	*out = value;
	return true;
}

static void parse_netsim(struct conf_scope *outer, cfg_t *unit_sec, struct conf_netsim *n)
{
	cfg_t *sec = cfg_getsec(unit_sec, "netsim");
	struct conf_scope *scope;
	unsigned max_held = 0;
	long seed;

	if (!option_written(loader_of(outer), unit_sec, "netsim"))
		return;
	scope = conf_scope_enter(outer, sec, "netsim");
	if (scope == NULL)
		return;
	n->enabled = true;
	check_probability(scope, sec, "loss", &n->loss);
	check_probability(scope, sec, "duplicate", &n->duplicate);
	check_probability(scope, sec, "corrupt", &n->corrupt);
	check_range(scope, sec, "reorder", 0, 1024, &n->reorder);
	check_range(scope, sec, "delay", 0, 60000, &n->delay_ms);
	check_range(scope, sec, "jitter", 0, 60000, &n->jitter_ms);
	check_range(scope, sec, "max-held", 1, 1000000, &max_held);
	n->max_held = max_held;
	seed = cfg_getint(sec, "seed");
	if (seed < 0)
		conf_scope_error(scope, "seed", "seed must not be negative");
	n->seed = (unsigned long long)seed;
	if (n->jitter_ms > n->delay_ms)
		conf_scope_error(scope, "jitter", "jitter (%u ms) must not exceed delay (%u ms)", n->jitter_ms,
				 n->delay_ms);
	conf_scope_leave(scope);
}

static void parse_join(struct conf_scope *scope, cfg_t *sec, struct conf_listener *l)
{
	const char *join = cfg_getstr(sec, "join");

	l->join_on_demand = strcmp(join, "on-demand") == 0;
	if (!l->join_on_demand && strcmp(join, "always") != 0)
		conf_scope_error(scope, "join", "join must be \"always\" or \"on-demand\", not \"%s\"", join);
}

static void parse_limits(struct conf_scope *scope, cfg_t *sec, struct conf_listener *l)
{
	unsigned ttl = 0, buffer = 0;

	if (l->transport == TRANSPORT_TCP) {
		reject_written(scope, sec, multicast_only_options, "applies to multicast listeners only");
		reject_written(scope, sec, datagram_only_options, "applies to udp and multicast listeners only");
	}
	else
		reject_written(scope, sec, tcp_only_options, "applies to tcp listeners only");
	if (l->transport == TRANSPORT_UDP)
		reject_written(scope, sec, multicast_only_options, "applies to multicast listeners only");
	check_range(scope, sec, "max-connections", 1, 1000000, &l->max_connections);
	check_range(scope, sec, "per-source", 1, 1000000, &l->per_source);
	check_range(scope, sec, "idle-timeout", 0, 86400 * 7, &l->idle_timeout);
	check_range(scope, sec, "buffer-size", 4096, 64 * 1024 * 1024, &buffer);
	check_range(scope, sec, "notsent-lowat", 0, 64 * 1024 * 1024, &l->notsent_lowat);
	check_range(scope, sec, "ttl", 0, 255, &ttl);
	check_range(scope, sec, "receive-buffer", 0, CONF_MAX_RECEIVE_BUFFER, &l->receive_buffer);
	l->buffer_size = buffer;
	l->ttl = (int)ttl;
	l->loop = cfg_getbool(sec, "loop");
	parse_join(scope, sec, l);
	l->required = cfg_getbool(sec, "required");
	parse_cidr_list(scope, sec, "allow", &l->allow, &l->n_allow);
	/* Written, an allow list applies even when empty: allow = {} lets
	 * nobody in (it used to let everyone in). libconfuse runs no value
	 * callback for an empty list, so the option's flag tells. */
	l->allow_listed = (cfg_getopt(sec, "allow")->flags & CFGF_MODIFIED) != 0;
	parse_cidr_list(scope, sec, "deny", &l->deny, &l->n_deny);
	if (l->transport != TRANSPORT_TCP)
		parse_netsim(scope, sec, &l->netsim);
}

/* A module that hands the socket to a program (exec) cannot have TLS:
 * the program would get the encrypted bytes. */
static void parse_listener_tls(struct conf_scope *scope, cfg_t *sec, struct conf_listener *l)
{
	if (!option_written(loader_of(scope), sec, "tls"))
		return;
	if (l->unit.module != NULL && l->unit.module->hands_over_socket) {
		conf_scope_error(scope, "tls", "tls does not apply to protocol \"%s\": it hands the socket to a program",
				 l->unit.module->name);
		return;
	}
	l->tls = conf_tls_parse(scope, sec);
}

/* A low mark keeps a slow reader of a file from tying up megabytes of
 * socket memory (README), but a relay's bytes have no file to wait in:
 * with 16 KiB unsent at most, a relayed download woke the daemon for
 * every 16 KiB and ran at 0.8x haproxy's MB/s (which leaves the kernel
 * its default); with the sysctl's mark, 1.0x-1.05x (paired runs). Its
 * own buffer-size still bounds what the daemon holds. */
static void default_notsent_lowat(cfg_t *sec, struct conf_listener *l)
{
	if (l->unit.module == NULL || !l->unit.module->streams_through ||
	    (cfg_getopt(sec, "notsent-lowat")->flags & CFGF_MODIFIED))
		return;
	l->notsent_lowat = 0;
	cfg_setint(sec, "notsent-lowat", 0);	/* what -T prints */
}

static bool parse_listener(struct loader *ld, cfg_t *sec, struct conf_listener *l)
{
	struct conf_scope scope = {
		.pass = &ld->pass,
		.section = sec,
		.listener = cfg_title(sec),
		.unit_kind = "listener",
		.fallback_line = section_line(ld, sec),
	};
	const char *transport = cfg_getstr(sec, "transport");

	l->unit.name = strdup(cfg_title(sec));
	l->unit.line = scope.fallback_line;
	l->unit.enabled = cfg_getbool(sec, "enabled");
	l->address_line = line_or(ld, sec, "address", l->unit.line);
	if (!parse_transport(transport, &l->transport)) {
		conf_scope_error(&scope, "transport", "unknown transport \"%s\" (tcp, udp or multicast)",
				 transport);
		return false;
	}
	parse_protocol(&scope, sec, &l->unit);
	parse_address(&scope, sec, l);
	if (l->transport == TRANSPORT_MULTICAST && l->address != NULL)
		resolve_interface(&scope, sec, l);
	parse_limits(&scope, sec, l);
	default_notsent_lowat(sec, l);
	l->connection_log = cfg_getbool(sec, "connection-log");
	if (!scope.failed)
		parse_protocol_settings(&scope, sec, l);
	if (l->transport == TRANSPORT_TCP)
		parse_listener_tls(&scope, sec, l);
	return !scope.failed;
}

/* ---- streams ---- */

static void parse_destinations(struct conf_scope *scope, cfg_t *sec, struct conf_stream *st)
{
	unsigned n = cfg_size(sec, "destination");
	char err[160];

	if (n == 0) {
		conf_scope_error(scope, NULL, "missing \"destination\"");
		return;
	}
	st->destinations = calloc(n, sizeof(*st->destinations));
	st->destination_text = calloc(n + 1, sizeof(*st->destination_text));
	if (st->destinations == NULL || st->destination_text == NULL)
		return;
	for (unsigned i = 0; i < n; i++) {
		const char *text = cfg_getnstr(sec, "destination", i);
		struct endpoint *e = &st->destinations[st->n_destinations];

		if (endpoint_parse(text, e, err, sizeof(err)) < 0) {
			conf_scope_error(scope, "destination", "bad destination \"%s\": %s", text, err);
			continue;
		}
		if (e->any || addr_port((struct sockaddr *)&e->sa) == 0) {
			conf_scope_error(scope, "destination", "destination \"%s\" needs an address and a port",
					 text);
			continue;
		}
		st->destination_text[st->n_destinations++] = strdup(text);
	}
}

static bool stream_has_multicast(const struct conf_stream *st, int family)
{
	for (size_t i = 0; i < st->n_destinations; i++) {
		const struct sockaddr *sa = (const struct sockaddr *)&st->destinations[i].sa;
		if (addr_is_multicast(sa) && (family == AF_UNSPEC || sa->sa_family == family))
			return true;
	}
	return false;
}

/* As on multicast listeners: never send a group out of the default route. */
static void parse_stream_interface(struct conf_scope *scope, cfg_t *sec, struct conf_stream *st)
{
	const char *name = cfg_getstr(sec, "interface");
	unsigned ttl = 1;

	check_range(scope, sec, "ttl", 0, 255, &ttl);
	st->ttl = (int)ttl;
	st->loop = cfg_getbool(sec, "loop");
	if (name == NULL) {
		if (stream_has_multicast(st, AF_UNSPEC))
			conf_scope_error(scope, "destination",
					 "a multicast destination needs \"interface\" (an address or a name), "
					 "so that it never goes out of the default route");
		return;
	}
	st->interface = strdup(name);
	if (inet_pton(AF_INET, name, &st->if_addr) == 1) {
		if (stream_has_multicast(st, AF_INET6))
			conf_scope_error(scope, "interface", "an IPv6 group needs an interface name, not \"%s\"",
					 name);
		return;
	}
	st->ifindex = if_nametoindex(name);
	if (st->ifindex == 0)
		conf_scope_error(scope, "interface", "no such interface \"%s\"", name);
}

static char **copy_argv(cfg_t *sec, const char *option)
{
	unsigned n = cfg_size(sec, option);
	char **argv = calloc(n + 1, sizeof(*argv));

	for (unsigned i = 0; argv != NULL && i < n; i++)
		argv[i] = strdup(cfg_getnstr(sec, option, i));
	return argv;
}

static void parse_source_kind(struct conf_scope *scope, cfg_t *sec, struct conf_source *src)
{
	static const char *const kinds[] = { "file", "command", "url", "listener" };
	unsigned written = 0;

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
		if (option_written(loader_of(scope), sec, kinds[i])) {
			written++;
			src->kind = (enum source_kind)i;
		}
	if (written != 1) {
		conf_scope_error(scope, NULL, "a source needs exactly one of file, command, url or listener%s",
				 written ? " (several are written)" : "");
		return;
	}
	if (src->kind != SOURCE_FILE && option_written(loader_of(scope), sec, "loop"))
		conf_scope_error(scope, "loop", "\"loop\" applies to a file source only");
	if (src->kind != SOURCE_URL && option_written(loader_of(scope), sec, "icecast"))
		conf_scope_error(scope, "icecast", "\"icecast\" applies to a url source only");
	if (src->kind != SOURCE_URL && option_written(loader_of(scope), sec, "tls"))
		conf_scope_error(scope, "tls", "\"tls\" applies to a url source only");
}

/* libcurl checks the URL's own host name: there is no other to check. */
static void parse_source_tls(struct conf_scope *scope, cfg_t *sec, struct conf_source *src)
{
	cfg_t *tls = cfg_getsec(sec, "tls");

	if (src->kind != SOURCE_URL || !option_written(loader_of(scope), sec, "tls"))
		return;
	if (tls != NULL && option_written(loader_of(scope), tls, "server-name"))
		conf_scope_error(scope, "tls", "server-name does not apply to a url source: the url's host is checked");
	src->tls = conf_tls_client_parse(scope, sec);
}

static void parse_source_value(struct conf_scope *scope, cfg_t *sec, struct conf_source *src)
{
	switch (src->kind) {
	case SOURCE_FILE:
		src->file = strdup(cfg_getstr(sec, "file"));
		if (src->file[0] != '/')
			conf_scope_error(scope, "file", "the file must be an absolute path, not \"%s\"", src->file);
		break;
	case SOURCE_COMMAND:
		src->command = copy_argv(sec, "command");
		if (src->command == NULL || src->command[0] == NULL || src->command[0][0] != '/')
			conf_scope_error(scope, "command", "command needs a program as an absolute path first");
		else if (access(src->command[0], X_OK) != 0)
			conf_scope_error(scope, "command", "cannot run %s: %s", src->command[0], strerror(errno));
		break;
	case SOURCE_URL:
		src->url = strdup(cfg_getstr(sec, "url"));
		if (strncmp(src->url, "http://", 7) != 0 && strncmp(src->url, "https://", 8) != 0)
			conf_scope_error(scope, "url", "the url must start with http:// or https://, not \"%s\"",
					 src->url);
		break;
	case SOURCE_LISTENER:
		src->listener = strdup(cfg_getstr(sec, "listener"));
		break;
	case SOURCE_NONE:
		break;
	}
}

static void parse_source(struct conf_scope *outer, cfg_t *stream_sec, struct conf_source *src, bool optional)
{
	cfg_t *sec = cfg_getsec(stream_sec, "source");
	struct conf_scope *scope;
	unsigned read_ahead = 0, connect = 0, stall = 0, backoff = 0, backoff_max = 0;

	if (!option_written(loader_of(outer), stream_sec, "source")) {
		src->kind = SOURCE_NONE;
		if (!optional)
			conf_scope_error(outer, NULL, "missing \"source { }\"");
		return;
	}
	scope = conf_scope_enter(outer, sec, "source");
	if (scope == NULL)
		return;
	parse_source_kind(scope, sec, src);
	if (!scope->failed) {
		parse_source_value(scope, sec, src);
		parse_source_tls(scope, sec, src);
	}
	src->loop = cfg_getbool(sec, "loop");
	src->icecast = cfg_getbool(sec, "icecast");
	check_range(scope, sec, "read-ahead", 4096, 64 * 1024 * 1024, &read_ahead);
	check_range(scope, sec, "connect-timeout", 1, 300, &connect);
	check_range(scope, sec, "stall-timeout", 1, 3600, &stall);
	check_range(scope, sec, "max-redirects", 0, 50, &src->max_redirects);
	check_range(scope, sec, "backoff", 1, 3600, &backoff);
	check_range(scope, sec, "backoff-max", 1, 86400, &backoff_max);
	src->read_ahead = read_ahead;
	src->connect_timeout_ms = connect * 1000;
	src->low_speed_time_ms = stall * 1000;
	src->backoff_ms = backoff * 1000;
	src->backoff_max_ms = backoff_max * 1000;
	if (backoff_max < backoff)
		conf_scope_error(scope, "backoff-max", "backoff-max (%u) must not be less than backoff (%u)",
				 backoff_max, backoff);
	conf_scope_leave(scope);
}

static void parse_stream_sizes(struct conf_scope *scope, cfg_t *sec, struct conf_stream *st)
{
	unsigned packet = 0;
	long rate = cfg_getint(sec, "rate");

	/* The largest UDP payload an IPv4 datagram can carry. */
	check_range(scope, sec, "packet-size", 1, 65507, &packet);
	check_range(scope, sec, "queue", 1, 65536, &st->queue);
	st->packet_size = packet;
	/* Below 1000 bit/s a pace in bytes would round to nothing. */
	if (rate != 0 && (rate < 1000 || rate > 100000000000L))
		conf_scope_error(scope, "rate", "rate must be 0 or from 1000 to 100000000000 bits per second, not %ld",
				 rate);
	else
		st->rate = (unsigned long long)rate;
	/* Each datagram goes to every destination: a queue smaller than that
	 * would drop some destinations' copies every time. */
	if (st->n_destinations > 0 && st->queue < st->n_destinations)
		conf_scope_error(scope, "queue", "queue (%u) must hold one datagram for each of the %zu destinations",
				 st->queue, st->n_destinations);
	if (st->source.read_ahead > 0 && st->source.read_ahead < 2 * st->packet_size)
		conf_scope_error(scope, "packet-size",
				 "the source's read-ahead (%zu bytes) must hold two packets of %zu bytes",
				 st->source.read_ahead, st->packet_size);
}

static bool parse_stream(struct loader *ld, cfg_t *sec, struct conf_stream *st)
{
	struct conf_scope scope = {
		.pass = &ld->pass,
		.section = sec,
		.listener = cfg_title(sec),
		.unit_kind = "stream",
		.stream = st,
		.transport = TRANSPORT_UDP,
		.fallback_line = section_line(ld, sec),
	};

	st->unit.name = strdup(cfg_title(sec));
	st->unit.line = scope.fallback_line;
	st->unit.enabled = cfg_getbool(sec, "enabled");
	parse_protocol(&scope, sec, &st->unit);
	if (st->unit.module != NULL && !(st->unit.module->transports & UNIT_STREAM_BIT))
		conf_scope_error(&scope, "protocol", "protocol \"%s\" does not run as a stream", st->unit.module->name);
	if (st->unit.module == NULL || !(st->unit.module->transports & UNIT_STREAM_SELF_BIT)) {
		parse_destinations(&scope, sec, st);
		parse_stream_interface(&scope, sec, st);
		parse_source(&scope, sec, &st->source,
			     st->unit.module != NULL && (st->unit.module->transports & UNIT_STREAM_SOURCE_OPTIONAL_BIT));
	} else {
		for (size_t i = 0; sending_options[i] != NULL; i++)
			if (option_written(ld, sec, sending_options[i]))
				conf_scope_error(&scope, sending_options[i],
						 "option \"%s\" does not apply to protocol \"%s\": its peers come to it",
						 sending_options[i], st->unit.module->name);
	}
	parse_stream_sizes(&scope, sec, st);
	parse_netsim(&scope, sec, &st->netsim);
	if (!scope.failed)
		configure_module(&scope, sec, &st->unit, TRANSPORT_UDP);
	return !scope.failed;
}

static const struct conf_listener *find_listener(const struct conf *conf, const char *name)
{
	for (size_t i = 0; i < conf->n_listeners; i++)
		if (conf->listeners[i].unit.name != NULL && strcmp(conf->listeners[i].unit.name, name) == 0)
			return &conf->listeners[i];
	return NULL;
}

/* Names are what status pages, logs and listener sources go by. */
static void check_stream_names(struct loader *ld, struct conf *conf)
{
	char where[PATH_MAX + 32];

	for (size_t i = 0; i < conf->n_streams; i++) {
		const struct conf_stream *st = &conf->streams[i];
		const struct conf_listener *l = st->unit.name ? find_listener(conf, st->unit.name) : NULL;

		if (l != NULL)
			conf_errors_add(ld->pass.errors, "%s:%d: stream \"%s\": the name is taken by listener \"%s\" (%s)",
					ld->pass.path, st->unit.line, st->unit.name, l->unit.name,
					place(ld, l->unit.line, where, sizeof(where)));
		if (st->source.kind != SOURCE_LISTENER || st->source.listener == NULL)
			continue;
		l = find_listener(conf, st->source.listener);
		if (l != NULL && !l->unit.enabled && st->unit.enabled)
			conf_errors_add(ld->pass.errors, "%s:%d: stream \"%s\": source: listener \"%s\" is not enabled",
					ld->pass.path, st->unit.line, st->unit.name, l->unit.name);
		else if (l == NULL)
			conf_errors_add(ld->pass.errors, "%s:%d: stream \"%s\": source: no listener \"%s\"", ld->pass.path,
					st->unit.line, st->unit.name, st->source.listener);
		else if (l->transport == TRANSPORT_TCP)
			conf_errors_add(ld->pass.errors,
					"%s:%d: stream \"%s\": source: listener \"%s\" is tcp; a stream sends what "
					"a udp or multicast listener receives", ld->pass.path, st->unit.line, st->unit.name,
					l->unit.name);
	}
}

static void check_listener_refs(struct loader *ld, const struct conf *conf)
{
	for (size_t i = 0; i < ld->pass.n_refs; i++) {
		const struct conf_listener_ref *ref = &ld->pass.refs[i];
		const struct conf_listener *l = find_listener(conf, ref->name);

		if (l == NULL)
			conf_errors_add(ld->pass.errors, "%sno listener \"%s\"", ref->where, ref->name);
		else if (l->transport == TRANSPORT_TCP)
			conf_errors_add(ld->pass.errors, "%slistener \"%s\" is tcp; only what a udp or multicast listener "
					"receives can be streamed", ref->where, ref->name);
	}
}

/* Two binds that the kernel would refuse, found before anything is bound. */
static bool endpoints_collide(const struct conf_listener *a, const struct conf_listener *b)
{
	const struct sockaddr *sa = (const struct sockaddr *)&a->endpoint.sa;
	const struct sockaddr *sb = (const struct sockaddr *)&b->endpoint.sa;

	if (conf_listener_same_socket(a, b))
		return true;
	if (a->transport != b->transport || a->transport == TRANSPORT_MULTICAST ||
	    addr_port(sa) != addr_port(sb))
		return false;
	return a->endpoint.any || b->endpoint.any;
}

static void check_collisions(struct loader *ld, struct conf *conf)
{
	char where[PATH_MAX + 32];

	for (size_t i = 1; i < conf->n_listeners; i++) {
		struct conf_listener *l = &conf->listeners[i];
		/* A listener kept off may share an address with one that is on. */
		if (l->address == NULL || l->endpoint.len == 0 || !l->unit.enabled)
			continue;
		for (size_t j = 0; j < i; j++) {
			struct conf_listener *o = &conf->listeners[j];
			if (o->endpoint.len == 0 || !o->unit.enabled || !endpoints_collide(l, o))
				continue;
			conf_errors_add(ld->pass.errors,
					"%s:%d: listener \"%s\": address %s (%s) overlaps listener "
					"\"%s\" (%s)",
					ld->pass.path, l->unit.line, l->unit.name, l->address,
					transport_name(l->transport), o->unit.name,
					place(ld, o->unit.line, where, sizeof(where)));
			break;
		}
	}
}

/* An absolute path, or "" for stderr. Opened by the daemon, which can say
 * why it cannot. */
static bool parse_log_file(struct loader *ld, cfg_t *cfg, struct conf *conf)
{
	const char *path = cfg_getstr(cfg, "log-file");

	conf->log_file = strdup(path);
	if (path[0] != '\0' && path[0] != '/') {
		conf_errors_add(ld->pass.errors, "%s:%d: log-file must be an absolute path, or \"\" for stderr",
				ld->pass.path, find_line(ld, cfg, "log-file"));
		return false;
	}
	return conf->log_file != NULL;
}

static bool parse_globals(struct loader *ld, cfg_t *cfg, struct conf *conf)
{
	const char *level = cfg_getstr(cfg, "log-level");
	long max = cfg_getint(cfg, "max-connections");
	long grace = cfg_getint(cfg, "shutdown-grace");
	long children = cfg_getint(cfg, "max-children");
	bool ok = true;

	conf->log_level = -1;
	for (size_t i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++)
		if (strcmp(level, log_levels[i].name) == 0)
			conf->log_level = log_levels[i].level;
	if (conf->log_level < 0) {
		conf_errors_add(ld->pass.errors, "%s:%d: log-level must be debug, info, notice, warning or err, not \"%s\"",
				ld->pass.path, find_line(ld, cfg, "log-level"), level);
		ok = false;
	}
	if (max < 1 || max > 10000000) {
		conf_errors_add(ld->pass.errors, "%s:%d: max-connections must be from 1 to 10000000",
				ld->pass.path, find_line(ld, cfg, "max-connections"));
		ok = false;
	}
	if (grace < 0 || grace > 86400) {
		conf_errors_add(ld->pass.errors, "%s:%d: shutdown-grace must be from 0 to 86400 seconds",
				ld->pass.path, find_line(ld, cfg, "shutdown-grace"));
		ok = false;
	}
	if (children < 1 || children > 100000) {
		conf_errors_add(ld->pass.errors, "%s:%d: max-children must be from 1 to 100000",
				ld->pass.path, find_line(ld, cfg, "max-children"));
		ok = false;
	}
	if (!parse_log_file(ld, cfg, conf))
		ok = false;
	conf->max_connections = (unsigned)max;
	conf->shutdown_grace = (unsigned)grace;
	conf->max_children = (unsigned)children;
	return ok;
}

/* The control socket: an absolute path that fits a sockaddr_un, or ""
 * for none. */
static bool parse_control(struct loader *ld, cfg_t *cfg, struct conf *conf)
{
	const char *path = cfg_getstr(cfg, "control-socket");
	long timeout = cfg_getint(cfg, "control-timeout");
	long clients = cfg_getint(cfg, "control-max-clients");
	bool ok = true;

	if (path[0] != '\0' && (path[0] != '/' || strlen(path) >= CONF_CONTROL_PATH_MAX)) {
		conf_errors_add(ld->pass.errors, "%s:%d: control-socket must be an absolute path shorter than %d bytes, "
				"or \"\" for none", ld->pass.path, find_line(ld, cfg, "control-socket"), CONF_CONTROL_PATH_MAX);
		ok = false;
	}
	if (timeout < 1 || timeout > 3600) {
		conf_errors_add(ld->pass.errors, "%s:%d: control-timeout must be from 1 to 3600 seconds", ld->pass.path,
				find_line(ld, cfg, "control-timeout"));
		ok = false;
	}
	if (clients < 1 || clients > 1000) {
		conf_errors_add(ld->pass.errors, "%s:%d: control-max-clients must be from 1 to 1000", ld->pass.path,
				find_line(ld, cfg, "control-max-clients"));
		ok = false;
	}
	conf->control_socket = strdup(path);
	conf->control_timeout = (unsigned)timeout;
	conf->control_max_clients = (unsigned)clients;
	return ok && conf->control_socket != NULL;
}

/* ---- warnings: valid, but likely not what was meant ---- */

/* What the shipped unit's sandbox hides from the daemon. */
static const struct {
	const char *prefix;
	const char *why;
} hidden_paths[] = {
	{ "/home", "ProtectHome=yes" },
	{ "/root", "ProtectHome=yes" },
	{ "/run/user", "ProtectHome=yes" },
	{ "/tmp", "PrivateTmp=yes" },
	{ "/var/tmp", "PrivateTmp=yes" },
};

static const char *hidden_by(const char *path)
{
	for (size_t i = 0; i < sizeof(hidden_paths) / sizeof(hidden_paths[0]); i++) {
		size_t len = strlen(hidden_paths[i].prefix);
		if (strncmp(path, hidden_paths[i].prefix, len) == 0 && (path[len] == '/' || path[len] == '\0'))
			return hidden_paths[i].why;
	}
	return NULL;
}

/* Every string value of the file (file names, roots, command lines) is
 * looked at: whatever names a path under a hidden folder works when tried
 * from a shell, and fails under systemd. */
static void warn_hidden_paths(struct loader *ld, cfg_t *section, struct conf *conf)
{
	for (cfg_opt_t *opt = section->opts; opt != NULL && opt->name != NULL; opt++) {
		for (unsigned i = 0; i < cfg_opt_size(opt); i++) {
			const char *value = opt->type == CFGT_STR ? cfg_opt_getnstr(opt, i) : NULL;
			const char *why = value != NULL ? hidden_by(value) : NULL;

			if (opt->type == CFGT_SEC)
				warn_hidden_paths(ld, cfg_opt_getnsec(opt, i), conf);
			/* A spool's files are the daemon's own, unnamed:
			 * a private /var/tmp is no harm to them. */
			else if (why != NULL && strcmp(opt->name, "spool") != 0)
				conf_errors_add(&conf->warnings, "%s:%d: warning: %s \"%s\" is hidden from chassisd "
						"under the shipped systemd unit (%s)", ld->pass.path,
						find_line(ld, section, opt->name), opt->name, value, why);
		}
	}
}

static void collect_warnings(struct loader *ld, cfg_t *cfg, struct conf *conf)
{
	if (conf->n_listeners == 0 && conf->n_streams == 0)
		conf_errors_add(&conf->warnings, "%s: warning: no listener and no stream: chassisd would serve nothing",
				ld->pass.path);
	warn_hidden_paths(ld, cfg, conf);
	/* Under the shipped unit the daemon starts as its DynamicUser, not
	 * root, and -t (ExecStartPre=) runs as that user too. */
	if (conf->user != NULL && geteuid() != 0 && geteuid() != conf->uid)
		conf_errors_add(&conf->warnings, "%s:%d: warning: user \"%s\": running as uid %u, not root, chassisd "
				"cannot change user; under systemd the unit chooses it (User=, DynamicUser=): remove "
				"\"user\" and \"group\" here", ld->pass.path, find_line(ld, cfg, "user"), conf->user,
				(unsigned)geteuid());
}

/* Names are resolved now, so that -t and a reload catch a missing user. */
static bool parse_identity(struct loader *ld, cfg_t *cfg, struct conf *conf)
{
	const char *user = cfg_getstr(cfg, "user"), *group = cfg_getstr(cfg, "group");
	struct passwd *pw;
	struct group *gr;
	bool ok = true;

	if (user != NULL) {
		pw = getpwnam(user);
		if (pw == NULL) {
			conf_errors_add(ld->pass.errors, "%s:%d: no such user \"%s\"", ld->pass.path,
					find_line(ld, cfg, "user"), user);
			ok = false;
		} else {
			conf->user = strdup(user);
			conf->uid = pw->pw_uid;
			conf->gid = pw->pw_gid;
		}
	}
	if (group != NULL) {
		gr = getgrnam(group);
		if (gr == NULL) {
			conf_errors_add(ld->pass.errors, "%s:%d: no such group \"%s\"", ld->pass.path,
					find_line(ld, cfg, "group"), group);
			ok = false;
		} else if (user == NULL) {
			conf_errors_add(ld->pass.errors, "%s:%d: \"group\" needs \"user\" too", ld->pass.path,
					find_line(ld, cfg, "group"));
			ok = false;
		} else {
			conf->group = strdup(group);
			conf->gid = gr->gr_gid;
		}
	}
	return ok;
}

static void conf_listener_free(struct conf_listener *l);
static void conf_stream_free(struct conf_stream *st);

/* enabled = false: checked like the others, then left out of the snapshot,
 * so that a reload that flips it opens or closes the unit. */
static void drop_disabled(struct conf *conf)
{
	size_t kept = 0;

	for (size_t i = 0; i < conf->n_listeners; i++) {
		if (conf->listeners[i].unit.enabled)
			conf->listeners[kept++] = conf->listeners[i];
		else
			conf_listener_free(&conf->listeners[i]);
	}
	conf->n_listeners = kept;
	kept = 0;
	for (size_t i = 0; i < conf->n_streams; i++) {
		if (conf->streams[i].unit.enabled)
			conf->streams[kept++] = conf->streams[i];
		else
			conf_stream_free(&conf->streams[i]);
	}
	conf->n_streams = kept;
}

static struct conf *conf_build(struct loader *ld, cfg_t *cfg)
{
	struct conf *conf = calloc(1, sizeof(*conf));
	size_t before = ld->pass.errors->count;

	if (conf == NULL)
		return NULL;
	conf->path = strdup(ld->pass.path);
	parse_globals(ld, cfg, conf);
	parse_identity(ld, cfg, conf);
	parse_control(ld, cfg, conf);
	conf->n_listeners = cfg_size(cfg, "listener");
	conf->listeners = calloc(conf->n_listeners ? conf->n_listeners : 1, sizeof(*conf->listeners));
	for (size_t i = 0; conf->listeners != NULL && i < conf->n_listeners; i++)
		parse_listener(ld, cfg_getnsec(cfg, "listener", (unsigned)i), &conf->listeners[i]);
	check_collisions(ld, conf);
	conf->n_streams = cfg_size(cfg, "stream");
	conf->streams = calloc(conf->n_streams ? conf->n_streams : 1, sizeof(*conf->streams));
	for (size_t i = 0; conf->streams != NULL && i < conf->n_streams; i++)
		parse_stream(ld, cfg_getnsec(cfg, "stream", (unsigned)i), &conf->streams[i]);
	check_stream_names(ld, conf);
	check_listener_refs(ld, conf);
	if (conf->listeners == NULL || conf->streams == NULL || ld->pass.errors->count > before) {
		conf_free(conf);
		return NULL;
	}
	collect_warnings(ld, cfg, conf);
	drop_disabled(conf);
	return conf;
}

/* The hint goes before libconfuse's error, which it explains. */
static void report_runaway_string_first(struct loader *ld, size_t first)
{
	struct conf_errors *errors = ld->pass.errors;
	size_t count = errors->count;
	char *hint;

	report_runaway_string(ld, ld->parse_error_line);
	if (errors->count == count || first >= count)
		return;
	hint = errors->lines[count];
	memmove(&errors->lines[first + 1], &errors->lines[first], (count - first) * sizeof(*errors->lines));
	errors->lines[first] = hint;
}

#define CONF_MAX_PARSE_PASSES 20		/* errors libconfuse reports, one per pass */

/* Parses text, blanking each line libconfuse stops at and parsing again,
 * so that one run reports up to CONF_MAX_PARSE_PASSES such errors. The cfg
 * of the last pass is returned (NULL when none could be made); *clean says
 * whether the first pass went through. */
static cfg_t *parse_passes(struct loader *ld, cfg_opt_t *listener_opts, cfg_opt_t *stream_opts, bool *clean)
{
	char *text = ld->text.text;
	cfg_t *cfg = NULL;
	size_t first = ld->pass.errors->count;

	*clean = false;
	for (int pass = 0; pass < CONF_MAX_PARSE_PASSES; pass++) {
		conf_marks_clear(&ld->pass.marks);	/* marks name sections of the pass before */
		ld->parse_error_line = 0;
		if (cfg != NULL)
			cfg_free(cfg);
		cfg = schema_new(listener_opts, stream_opts);
		if (cfg == NULL || cfg_parse_buf(cfg, text) == CFG_SUCCESS) {
			*clean = cfg != NULL && pass == 0;
			return cfg;
		}
		if (pass == 0)
			report_runaway_string_first(ld, first);
		if (!blank_line(text, ld->parse_error_line))
			break;
	}
	cfg_free(cfg);
	return NULL;
}

/* Errors read "PATH:LINE:" with a line of the text; each gets the file and
 * line it was written on. */
static void map_error_lines(struct loader *ld, size_t from)
{
	size_t len = strlen(ld->pass.path);

	for (size_t i = from; i < ld->pass.errors->count; i++) {
		char *error = ld->pass.errors->lines[i], *rest, *mapped;
		const struct conf_origin *o;
		long line;

		if (strncmp(error, ld->pass.path, len) != 0 || error[len] != ':')
			continue;
		line = strtol(error + len + 1, &rest, 10);
		o = conf_text_origin(&ld->text, (int)line);
		if (rest == error + len + 1 || *rest != ':' || o == NULL)
			continue;
		if (asprintf(&mapped, "%s:%d%s", o->file, o->line, rest) < 0)
			continue;
		free(error);
		ld->pass.errors->lines[i] = mapped;
	}
}

static bool localise(const struct loader *ld, int *line, char **file)
{
	const struct conf_origin *o = conf_text_origin(&ld->text, *line);

	*file = strdup(o ? o->file : ld->pass.path);
	*line = o ? o->line : *line;
	return *file != NULL;
}

/* The snapshot names where each unit is written, in the file it is in. */
static bool localise_units(const struct loader *ld, struct conf *conf)
{
	bool ok = true;

	for (size_t i = 0; i < conf->n_listeners; i++) {
		struct conf_listener *l = &conf->listeners[i];
		ok = localise(ld, &l->address_line, &l->address_file) && ok;
		ok = localise(ld, &l->unit.line, &l->unit.file) && ok;
	}
	for (size_t i = 0; i < conf->n_streams; i++)
		ok = localise(ld, &conf->streams[i].unit.line, &conf->streams[i].unit.file) && ok;
	return ok;
}

/* ---- the effective config (-T) ---- */

static bool listed(const char *const *names, const char *name)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* What -T leaves out, so that its output reads back as the same config:
 * options without a value, options and sections that do not apply to the
 * unit (which -t would reject once written), and optional sections that
 * were not written (netsim, a route's module). Everything else is printed
 * with its value, defaults included. */
static const struct conf_module *module_named(const struct loader *ld, const char *name)
{
	for (size_t i = 0; ld->modules[i] != NULL; i++)
		if (strcmp(ld->modules[i]->name, name) == 0)
			return ld->modules[i];
	return NULL;
}

static int skip_in_effective(cfg_t *cfg, cfg_opt_t *opt)
{
	struct loader *ld = active_loader;
	bool is_listener = strcmp(cfg->name, "listener") == 0, unit = is_listener || strcmp(cfg->name, "stream") == 0;
	const struct conf_module *module = unit ? NULL : module_named(ld, cfg->name);

	/* cfg_print asks about a unit's options before it prints the module's
	 * section among them, so the section's side is known by then. */
	if (unit)
		ld->printing_stream = !is_listener;
	if (unit && !is_listener && listed(sending_options, opt->name)) {
		const struct conf_module *own = module_named(ld, cfg_getstr(cfg, "protocol"));
		if (own != NULL && (own->transports & UNIT_STREAM_SELF_BIT))
			return 1;
	}
	/* Which of a module's options apply depends on its other options and
	 * on the side (an rtp payload; a listener or a stream): the module
	 * says. */
	if (module != NULL && module->option_applies != NULL &&
	    !module->option_applies(cfg, ld->printing_stream, opt->name))
		return 1;
	if (opt->type == CFGT_SEC) {
		if (opt->flags & CFGF_MULTI)
			return 0;
		if (unit && strcmp(opt->name, cfg_getstr(cfg, "protocol")) == 0)
			return 0;	/* the unit's own module: its defaults too */
		return !option_written(ld, cfg, opt->name);
	}
	if (cfg_opt_size(opt) == 0 && !(opt->flags & CFGF_MODIFIED))
		return 1;	/* unset; a list written empty (allow = {}) is kept */
	if (strcmp(cfg->name, "route") == 0)
		return !option_written(ld, cfg, opt->name);	/* which apply depends on the handler */
	if (is_listener) {
		const char *transport = cfg_getstr(cfg, "transport");
		if (strcmp(transport, "tcp") != 0 && listed(tcp_only_options, opt->name))
			return 1;
		if (strcmp(transport, "multicast") != 0 && listed(multicast_only_options, opt->name))
			return 1;
		if (strcmp(transport, "tcp") == 0 && listed(datagram_only_options, opt->name))
			return 1;
	}
	if (strcmp(cfg->name, "source") == 0 &&
	    ((strcmp(opt->name, "loop") == 0 && !option_written(ld, cfg, "file")) ||
	     (strcmp(opt->name, "icecast") == 0 && !option_written(ld, cfg, "url"))))
		return 1;
	return 0;
}

static void print_effective(cfg_t *cfg, FILE *out)
{
	fprintf(out, "# chassisd -T: the effective configuration, includes expanded and defaults written out\n");
	cfg_set_print_filter_func(cfg, skip_in_effective);
	cfg_print(cfg, out);
}

static struct conf *load(const char *path, const struct conf_module *const *modules, struct conf_errors *errors,
			 FILE *print)
{
	struct loader ld = { .pass = { .path = path, .errors = errors }, .modules = modules };
	cfg_opt_t *listener_opts, *stream_opts;
	struct conf *conf = NULL;
	cfg_t *cfg = NULL;
	size_t before = errors->count;
	bool clean = false, included = conf_text_read(path, &ld.text, errors);

	size_t read_errors = errors->count;	/* these name their files already */

	if (ld.text.text == NULL) {
		conf_text_free(&ld.text);
		return NULL;
	}
	listener_opts = unit_options_new(listener_common_options, N_COMMON, modules);
	stream_opts = unit_options_new(stream_common_options, N_STREAM_COMMON, modules);
	active_loader = &ld;
	if (listener_opts != NULL && stream_opts != NULL)
		cfg = parse_passes(&ld, listener_opts, stream_opts, &clean);
	/* After a parse error the checks still run on what the later passes
	 * read, for the errors further on; the file is refused either way. */
	if (cfg != NULL)
		conf = conf_build(&ld, cfg);
	if (conf != NULL && (!clean || !included || !localise_units(&ld, conf))) {
		conf_free(conf);
		conf = NULL;
	}
	if (conf == NULL && errors->count == before)
		conf_errors_add(errors, "%s: cannot parse", path);
	map_error_lines(&ld, read_errors);
	if (conf != NULL && print != NULL)
		print_effective(cfg, print);
	active_loader = NULL;
	if (cfg != NULL)
		cfg_free(cfg);
	free(listener_opts);
	free(stream_opts);
	conf_marks_free(&ld.pass.marks);
	conf_pass_refs_free(&ld.pass);
	conf_text_free(&ld.text);
	return conf;
}

char *conf_control_socket(const char *path, const struct conf_module *const *modules)
{
	struct conf_errors errors = { 0 };
	struct loader ld = { .pass = { .path = path, .errors = &errors }, .modules = modules };
	cfg_opt_t *listener_opts = NULL, *stream_opts = NULL;
	char *found = NULL;
	cfg_t *cfg = NULL;

	/* Includes expanded and comments blanked, as the daemon reads it; a
	 * file that ends too early still has its beginning. */
	conf_text_read(path, &ld.text, &errors);
	if (ld.text.text != NULL) {
		listener_opts = unit_options_new(listener_common_options, N_COMMON, modules);
		stream_opts = unit_options_new(stream_common_options, N_STREAM_COMMON, modules);
	}
	active_loader = &ld;
	if (listener_opts != NULL && stream_opts != NULL)
		cfg = schema_new(listener_opts, stream_opts);
	/* What was parsed before an error stays set. */
	if (cfg != NULL) {
		cfg_parse_buf(cfg, ld.text.text);
		found = strdup(cfg_getstr(cfg, "control-socket"));
		cfg_free(cfg);
	}
	active_loader = NULL;
	free(listener_opts);
	free(stream_opts);
	conf_marks_free(&ld.pass.marks);
	conf_text_free(&ld.text);
	conf_errors_clear(&errors);
	return found;
}

struct conf *conf_load(const char *path, const struct conf_module *const *modules, struct conf_errors *errors)
{
	return load(path, modules, errors, NULL);
}

bool conf_print_effective(const char *path, const struct conf_module *const *modules, FILE *out,
			  struct conf_errors *errors)
{
	struct conf *conf = load(path, modules, errors, out);

	conf_free(conf);
	return conf != NULL;
}

static void free_argv(char **argv)
{
	for (size_t i = 0; argv != NULL && argv[i] != NULL; i++)
		free(argv[i]);
	free(argv);
}

static void source_fields_free(struct conf_source *src)
{
	free(src->file);
	free_argv(src->command);
	free(src->url);
	free(src->listener);
	conf_tls_client_free(src->tls);
}

void conf_source_free(struct conf_source *src)
{
	if (src == NULL)
		return;
	source_fields_free(src);
	free(src);
}

static char **argv_copy(char *const *argv)
{
	size_t n = 0;
	char **copy;

	while (argv[n] != NULL)
		n++;
	copy = calloc(n + 1, sizeof(*copy));
	for (size_t i = 0; copy != NULL && i < n; i++)
		if ((copy[i] = strdup(argv[i])) == NULL) {
			free_argv(copy);
			return NULL;
		}
	return copy;
}

static bool strdup_into(char **out, const char *in)
{
	*out = in ? strdup(in) : NULL;
	return in == NULL || *out != NULL;
}

struct conf_source *conf_source_copy(const struct conf_source *src)
{
	struct conf_source *copy = malloc(sizeof(*copy));
	bool ok;

	if (copy == NULL)
		return NULL;
	*copy = *src;
	copy->command = NULL;
	/* Every copy is tried, so that a failure leaves no field pointing
	 * into src for conf_source_free(). */
	ok = strdup_into(&copy->file, src->file);
	ok = strdup_into(&copy->url, src->url) && ok;
	ok = strdup_into(&copy->listener, src->listener) && ok;
	copy->tls = NULL;
	if (src->tls != NULL)
		ok = (copy->tls = conf_tls_client_copy(src->tls)) != NULL && ok;
	if (ok && src->command != NULL)
		ok = (copy->command = argv_copy(src->command)) != NULL;
	if (!ok) {
		conf_source_free(copy);
		return NULL;
	}
	return copy;
}

static void conf_stream_free(struct conf_stream *st)
{
	if (st->unit.settings != NULL && st->unit.module->settings_free != NULL)
		st->unit.module->settings_free(st->unit.settings);
	free(st->unit.name);
	free(st->unit.file);
	free(st->destinations);
	free_argv(st->destination_text);
	free(st->interface);
	source_fields_free(&st->source);
}

static void conf_listener_free(struct conf_listener *l)
{
	if (l->unit.settings != NULL && l->unit.module->settings_free != NULL)
		l->unit.module->settings_free(l->unit.settings);
	free(l->unit.name);
	free(l->unit.file);
	free(l->address_file);
	free(l->address);
	free(l->interface);
	free(l->allow);
	free(l->deny);
	conf_tls_free(l->tls);
}

void conf_free(struct conf *conf)
{
	if (conf == NULL)
		return;
	for (size_t i = 0; i < conf->n_listeners; i++)
		conf_listener_free(&conf->listeners[i]);
	free(conf->listeners);
	for (size_t i = 0; i < conf->n_streams; i++)
		conf_stream_free(&conf->streams[i]);
	free(conf->streams);
	free(conf->path);
	free(conf->user);
	free(conf->group);
	free(conf->control_socket);
	free(conf->log_file);
	conf_errors_clear(&conf->warnings);
	free(conf);
}

bool conf_listener_same_socket(const struct conf_listener *a, const struct conf_listener *b)
{
	if (a->transport != b->transport || a->endpoint.any != b->endpoint.any ||
	    !addr_equal((const struct sockaddr *)&a->endpoint.sa,
			(const struct sockaddr *)&b->endpoint.sa))
		return false;
	if (a->transport != TRANSPORT_MULTICAST)
		return true;
	return a->ifindex == b->ifindex && a->if_addr.s_addr == b->if_addr.s_addr;
}

bool conf_listener_allows(const struct conf_listener *l, const struct sockaddr *peer)
{
	bool allowed = !l->allow_listed;

	for (size_t i = 0; i < l->n_deny; i++)
		if (cidr_match(&l->deny[i], peer))
			return false;
	for (size_t i = 0; !allowed && i < l->n_allow; i++)
		allowed = cidr_match(&l->allow[i], peer);
	return allowed;
}

static bool same_string(const char *a, const char *b)
{
	return (a == NULL && b == NULL) || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static bool same_argv(char *const *a, char *const *b)
{
	size_t i = 0;

	if (a == NULL || b == NULL)
		return a == b;
	for (; a[i] != NULL && b[i] != NULL; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return a[i] == b[i];
}

static bool same_source(const struct conf_source *a, const struct conf_source *b)
{
	return a->kind == b->kind && same_string(a->file, b->file) && a->loop == b->loop &&
	       same_argv(a->command, b->command) && same_string(a->url, b->url) && a->icecast == b->icecast &&
	       same_string(a->listener, b->listener) && a->read_ahead == b->read_ahead &&
	       a->connect_timeout_ms == b->connect_timeout_ms && a->low_speed_time_ms == b->low_speed_time_ms &&
	       a->max_redirects == b->max_redirects && a->backoff_ms == b->backoff_ms &&
	       a->backoff_max_ms == b->backoff_max_ms;
}

bool conf_stream_same(const struct conf_stream *a, const struct conf_stream *b)
{
	if (a->unit.module != b->unit.module || a->n_destinations != b->n_destinations ||
	    !same_string(a->interface, b->interface) || a->ttl != b->ttl || a->loop != b->loop ||
	    a->packet_size != b->packet_size || a->rate != b->rate || a->queue != b->queue ||
	    memcmp(&a->netsim, &b->netsim, sizeof(a->netsim)) != 0 || !same_source(&a->source, &b->source))
		return false;
	for (size_t i = 0; i < a->n_destinations; i++)
		if (!addr_equal((const struct sockaddr *)&a->destinations[i].sa,
				(const struct sockaddr *)&b->destinations[i].sa))
			return false;
	return true;
}
