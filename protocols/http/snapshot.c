/* The status pages' snapshot: every unit's counters copied at once, so a
 * page is consistent, and the readers of the modules' text. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/http/exchange.h"
#include "protocols/http/snapshot.h"

/* A bound on one page's units; more are left off the page. */
#define INFO_LISTENERS_MAX 1024

#define INFO_COUNTER(field, transports, help) \
	{ #field, help, offsetof(struct chassis_listener_stats, field), transports }

const struct info_counter info_counters[] = {
	INFO_COUNTER(accepted, INFO_CONNECTED, "Connections accepted."),
	INFO_COUNTER(denied, INFO_CONNECTED | INFO_DATAGRAMS, "Connections or datagrams refused by allow/deny."),
	INFO_COUNTER(refused_limit, INFO_CONNECTED, "Connections refused at max-connections."),
	INFO_COUNTER(refused_per_source, INFO_CONNECTED, "Connections refused at per-source."),
	INFO_COUNTER(idle_closed, INFO_CONNECTED, "Connections closed at idle-timeout."),
	INFO_COUNTER(accept_paused, INFO_CONNECTED, "Times accepting paused for lack of file descriptors."),
	INFO_COUNTER(tls_handshakes, INFO_TLS, "TLS handshakes completed."),
	INFO_COUNTER(tls_resumed, INFO_TLS, "TLS handshakes that resumed a session."),
	INFO_COUNTER(tls_version_1_2, INFO_TLS, "TLS handshakes completed with TLS 1.2."),
	INFO_COUNTER(tls_version_1_3, INFO_TLS, "TLS handshakes completed with TLS 1.3."),
	INFO_COUNTER(tls_kernel_send, INFO_TLS,
		     "TLS handshakes after which the kernel encrypted what was sent (kTLS); the others, OpenSSL."),
	INFO_COUNTER(tls_failed_protocol_version, INFO_TLS, "TLS handshakes failed: no protocol version in common."),
	INFO_COUNTER(tls_failed_no_shared_cipher, INFO_TLS, "TLS handshakes failed: no cipher in common."),
	INFO_COUNTER(tls_failed_client_certificate, INFO_TLS,
		     "TLS handshakes failed: client certificate missing or not from the ca."),
	INFO_COUNTER(tls_failed_timeout, INFO_TLS, "TLS handshakes cut at handshake-timeout."),
	INFO_COUNTER(tls_failed_other, INFO_TLS, "TLS handshakes failed otherwise (not TLS, a reset, ...)."),
	INFO_COUNTER(datagrams, INFO_DATAGRAMS, "Datagrams received."),
	INFO_COUNTER(replies, INFO_DATAGRAMS, "Datagrams sent in reply."),
	INFO_COUNTER(dropped, INFO_DATAGRAMS, "Datagrams dropped."),
};
const size_t info_n_counters = sizeof(info_counters) / sizeof(info_counters[0]);

/* By the transport's name, as the chassis reports it: "stream" and any
 * transport not known here have none of the chassis's counters. */
static unsigned transport_counts(const struct chassis_listener_stats *s)
{
	if (strcmp(s->transport, "tcp") == 0)
		return INFO_CONNECTED | (s->tls ? INFO_TLS : 0);
	if (strcmp(s->transport, "udp") == 0 || strcmp(s->transport, "multicast") == 0)
		return INFO_DATAGRAMS;
	return 0;
}

bool info_counter_applies(const struct info_counter *counter, const struct chassis_listener_stats *s)
{
	return (counter->transports & transport_counts(s)) != 0;
}

uint64_t info_counter_value(const struct info_counter *counter, const struct chassis_listener_stats *s)
{
	uint64_t value;

	memcpy(&value, (const char *)s + counter->offset, sizeof(value));
	return value;
}

bool info_has_connections(const struct chassis_listener_stats *s)
{
	return (transport_counts(s) & INFO_CONNECTED) != 0;
}

static void collect_one(const struct chassis_listener_stats *stats, void *arg)
{
	struct info_snapshot *snap = arg;
	struct info_listener *l;

	if (snap->count == INFO_LISTENERS_MAX)
		return;
	l = &snap->listeners[snap->count++];
	l->stats = *stats;
	snprintf(l->module, sizeof(l->module), "%s", stats->module_counters ? stats->module_counters : "");
	l->stats.module_counters = l->module;
	l->rows = stats->module_rows && stats->module_rows[0] ? strdup(stats->module_rows) : NULL;
	l->stats.module_rows = l->rows ? l->rows : "";
	l->text = stats->module_text && stats->module_text[0] ? strdup(stats->module_text) : NULL;
	l->stats.module_text = l->text ? l->text : "";
}

/* The names point into the running configuration, which cannot change
 * while this answer is being written (one thread, no reload mid-call). */
bool info_snapshot_take(struct http_exchange *ex, struct info_snapshot *snap)
{
	snap->count = 0;
	snap->listeners = calloc(INFO_LISTENERS_MAX, sizeof(*snap->listeners));
	if (snap->listeners == NULL)
		return false;
	chassis_stats(ex->conn, &snap->totals, collect_one, snap);
	return true;
}

void info_snapshot_free(struct info_snapshot *snap)
{
	for (size_t i = 0; i < snap->count; i++) {
		free(snap->listeners[i].rows);
		free(snap->listeners[i].text);
	}
	free(snap->listeners);
}

bool info_next_counter(const char **cursor, char *key, size_t key_cap, unsigned long long *value)
{
	const char *p = *cursor, *eq;
	size_t len;

	while (*p == ' ')
		p++;
	eq = strchr(p, '=');
	if (*p == '\0' || eq == NULL)
		return false;
	len = (size_t)(eq - p) < key_cap - 1 ? (size_t)(eq - p) : key_cap - 1;
	memcpy(key, p, len);
	key[len] = '\0';
	*value = strtoull(eq + 1, (char **)cursor, 10);
	return true;
}

bool info_next_row(const char **cursor, struct info_row *row)
{
	const char *p = *cursor, *end = strchrnul(p, '\n'), *sp1, *sp2;
	size_t len;

	if (*p == '\0')
		return false;
	*cursor = *end ? end + 1 : end;
	sp1 = memchr(p, ' ', (size_t)(end - p));
	sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) : NULL;
	if (sp2 == NULL)
		return info_next_row(cursor, row);	/* not a row: skipped */
	snprintf(row->kind, sizeof(row->kind), "%.*s", (int)(sp1 - p), p);
	snprintf(row->name, sizeof(row->name), "%.*s", (int)(sp2 - sp1 - 1), sp1 + 1);
	len = (size_t)(end - sp2 - 1);
	snprintf(row->counters, sizeof(row->counters), "%.*s", (int)len, sp2 + 1);
	return true;
}

bool info_next_text(const char **cursor, char *key, size_t key_cap, char *value, size_t value_cap)
{
	const char *line = *cursor, *end, *space;

	for (; *line != '\0'; line = *end ? end + 1 : end) {
		end = strchrnul(line, '\n');
		space = memchr(line, ' ', (size_t)(end - line));
		if (space == NULL)
			continue;
		snprintf(key, key_cap, "%.*s", (int)(space - line), line);
		snprintf(value, value_cap, "%.*s", (int)(end - space - 1), space + 1);
		*cursor = *end ? end + 1 : end;
		return true;
	}
	*cursor = line;
	return false;
}
