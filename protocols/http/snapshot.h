/* Shared inside protocols/http/ only: the daemon's counters copied once per
 * request (snapshot.c), which the status pages (info.c: JSON, metrics;
 * status_html.c: HTML) write out, and the readers of the modules'
 * "key=value" and row text that all of them use. */
#ifndef CHASSISD_HTTP_SNAPSHOT_H
#define CHASSISD_HTTP_SNAPSHOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "daemon/chassis.h"

struct http_exchange;

struct info_listener {
	struct chassis_listener_stats stats;
	char module[512];		/* module_counters, copied */
	char *rows;			/* module_rows, copied; NULL when none */
	char *text;			/* module_text, copied; NULL when none */
};

struct info_snapshot {
	struct chassis_totals totals;
	struct info_listener *listeners;
	size_t count;
};

/* False when out of memory; info_snapshot_free() after a true. */
bool info_snapshot_take(struct http_exchange *ex, struct info_snapshot *snap);
void info_snapshot_free(struct info_snapshot *snap);

/* The chassis's own counters of a unit. Which of them a unit has depends
 * on its transport: a tcp listener counts connections, a udp or multicast
 * one datagrams, a stream neither (its module counts what it sends). The
 * pages leave out what a unit does not have rather than show a zero. */
struct info_counter {
	const char *key;		/* "accepted" */
	const char *help;		/* what it counts, for /metrics */
	size_t offset;			/* of its uint64_t in chassis_listener_stats */
	unsigned transports;		/* INFO_CONNECTED | INFO_DATAGRAMS */
};
#define INFO_CONNECTED 1u
#define INFO_DATAGRAMS 2u
#define INFO_TLS 4u			/* tcp listeners with tls { } */
extern const struct info_counter info_counters[];
extern const size_t info_n_counters;
bool info_counter_applies(const struct info_counter *counter, const struct chassis_listener_stats *s);
uint64_t info_counter_value(const struct info_counter *counter, const struct chassis_listener_stats *s);
/* Whether the unit holds connections (a tcp listener): its "connections". */
bool info_has_connections(const struct chassis_listener_stats *s);

/* "key=value key=value": the next pair, or false at the end. */
bool info_next_counter(const char **cursor, char *key, size_t key_cap, unsigned long long *value);

/* "KIND NAME key=value ...\n": the next row, its counters in `counters`
 * (info_next_counter() reads them). Lines that are not rows are skipped. */
struct info_row {
	char kind[32], name[256];
	char counters[512];
};
bool info_next_row(const char **cursor, struct info_row *row);

/* "KEY text\n": the next line's key and text, or false at the end. */
bool info_next_text(const char **cursor, char *key, size_t key_cap, char *value, size_t value_cap);

#endif
