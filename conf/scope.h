/* What a protocol's configure() hook gets: where its section is, and a way
 * to report errors against the right file and line. */
#ifndef CHASSISD_CONF_SCOPE_H
#define CHASSISD_CONF_SCOPE_H

#include <stdbool.h>

struct cfg_t;
struct conf_scope;
struct conf_stream;

enum transport {
	TRANSPORT_TCP,
	TRANSPORT_UDP,
	TRANSPORT_MULTICAST,
};

int conf_scope_line(const struct conf_scope *scope, const char *option);
void conf_scope_error(struct conf_scope *scope, const char *option, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
const char *conf_scope_listener(const struct conf_scope *scope);
enum transport conf_scope_transport(const struct conf_scope *scope);
/* A stream's section, not a listener's: options of one side only. */
bool conf_scope_is_stream(const struct conf_scope *scope);
/* A stream module's configure(): its stream, destinations parsed (NULL
 * for a listener's module). */
const struct conf_stream *conf_scope_stream(const struct conf_scope *scope);
bool conf_scope_written(const struct conf_scope *scope, const char *option);
/* An integer option within [min, max], else an error at its line. */
bool conf_scope_int(struct conf_scope *scope, struct cfg_t *sec, const char *option, long min, long max,
		    long *value);
/* The module needs the udp or multicast listener `name` (an HTTP stream
 * route): once every listener is read, a missing or tcp one is an error
 * at the option's line. */
void conf_scope_refer_datagram_listener(struct conf_scope *scope, const char *option, const char *name);
/* "FILE:LINE: listener \"x\": label: " for an option (NULL: the
 * section), malloc'd: for errors found after loading, in the daemon. */
char *conf_scope_where(struct conf_scope *scope, const char *option);
/* A section nested in the scope's (an HTTP route, a module's options in it):
 * its errors read "listener \"web\": <label>: ...". Leaving frees it and
 * says whether it had no errors; the outer scope fails with it. */
struct conf_scope *conf_scope_enter(struct conf_scope *scope, struct cfg_t *section, const char *label);
bool conf_scope_leave(struct conf_scope *inner);

#endif
