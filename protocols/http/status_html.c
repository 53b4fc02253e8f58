/* The HTML status page: a summary line, then a box per listener and per
 * stream with what applies to it, its module's counters and its rows as
 * tables. Plain HTML and a little inline CSS: no script, no external
 * file, so it works from a phone on a network with nothing else. */
#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>

#include "build_config.h"
#include "protocols/http/response.h"
#include "protocols/http/snapshot.h"
#include "protocols/http/status_html.h"

/* Columns of one row table, at most: keys past it are left off the page. */
#define HTML_COLUMNS_MAX 32

static const char page_style[] =
	"body{font:15px/1.45 system-ui,sans-serif;color:#222;background:#fff;max-width:64em;"
	"margin:0 auto;padding:.5em 1em}"
	"h1{font-size:1.4em;margin:.3em 0}h2{font-size:1.15em;margin:1em 0 .3em}"
	"h3{font-size:1.05em;margin:0;overflow-wrap:anywhere}"
	"p{margin:.2em 0}.facts span{display:inline-block;margin-right:1.2em}"
	".what{color:#555}"
	"section{border:1px solid #ccc;border-radius:6px;padding:.5em .8em;margin:.6em 0}"
	"section.retired{border-style:dashed;color:#666}"
	"dl{display:grid;grid-template-columns:repeat(auto-fill,minmax(12em,1fr));gap:0 1.2em;margin:.4em 0}"
	"dl div{display:flex;justify-content:space-between;border-bottom:1px dotted #ddd}"
	"dt{color:#555;overflow-wrap:anywhere}dd{margin:0 0 0 .6em;font-variant-numeric:tabular-nums}"
	"dl.text{grid-template-columns:1fr}dl.text dd{overflow-wrap:anywhere;text-align:right}"
	".module{font-size:.85em;color:#777;margin-top:.4em}"
	".scroll{overflow-x:auto}"
	"table{border-collapse:collapse;font-size:.9em;margin:.4em 0}"
	"caption{text-align:left;color:#555}"
	"th,td{padding:.1em .6em;border-bottom:1px solid #eee;text-align:right;white-space:nowrap;"
	"font-variant-numeric:tabular-nums}"
	"th:first-child,td:first-child{text-align:left}";

static void html_text(struct evbuffer *out, const char *text)
{
	http_html_escape(out, text, strlen(text));
}

static void html_fact(struct evbuffer *out, const char *text)
{
	evbuffer_add_printf(out, "<span>");
	html_text(out, text);
	evbuffer_add_printf(out, "</span>");
}

static void html_pair(struct evbuffer *out, const char *key, unsigned long long value)
{
	evbuffer_add_printf(out, "<div><dt>");
	html_text(out, key);
	evbuffer_add_printf(out, "</dt><dd>%llu</dd></div>", value);
}

static void html_summary(struct evbuffer *out, const struct info_snapshot *snap)
{
	const struct chassis_totals *t = &snap->totals;
	unsigned long long up = (unsigned long long)t->uptime_seconds;
	size_t streams = 0;

	for (size_t i = 0; i < snap->count; i++)
		streams += strcmp(snap->listeners[i].stats.transport, "stream") == 0;
	evbuffer_add_printf(out, "<h1>chassisd</h1>\n<p class=\"facts\"><span>version %s</span>"
			    "<span>generation %u</span><span>up %llud %02lluh %02llum %02llus</span>"
			    "<span>%u connection%s of at most %u</span><span>%u listener%s, %zu stream%s</span></p>\n",
			    CHASSISD_VERSION, t->generation, up / 86400, up / 3600 % 24, up / 60 % 60, up % 60,
			    t->connections, t->connections == 1 ? "" : "s", t->max_connections,
			    t->listeners, t->listeners == 1 ? "" : "s", streams, streams == 1 ? "" : "s");
}

/* The chassis's counters that apply to the unit's transport. */
static void html_chassis_counters(struct evbuffer *out, const struct chassis_listener_stats *s)
{
	bool any = info_has_connections(s);

	for (size_t c = 0; c < info_n_counters && !any; c++)
		any = info_counter_applies(&info_counters[c], s);
	if (!any)
		return;
	evbuffer_add_printf(out, "<dl>");
	if (info_has_connections(s))
		html_pair(out, "connections", s->connections);
	for (size_t c = 0; c < info_n_counters; c++)
		if (info_counter_applies(&info_counters[c], s))
			html_pair(out, info_counters[c].key, info_counter_value(&info_counters[c], s));
	evbuffer_add_printf(out, "</dl>\n");
}

static void html_module_counters(struct evbuffer *out, const struct chassis_listener_stats *s)
{
	const char *cursor = s->module_counters;
	char key[64];
	unsigned long long value;
	bool first = true;

	while (info_next_counter(&cursor, key, sizeof(key), &value)) {
		if (first) {
			evbuffer_add_printf(out, "<p class=\"module\">");
			html_text(out, s->protocol);
			evbuffer_add_printf(out, "</p><dl>");
		}
		first = false;
		html_pair(out, key, value);
	}
	if (!first)
		evbuffer_add_printf(out, "</dl>\n");
}

static void html_module_text(struct evbuffer *out, const char *text)
{
	char key[64], value[1024];
	bool first = true;

	while (info_next_text(&text, key, sizeof(key), value, sizeof(value))) {
		evbuffer_add_printf(out, "%s<div><dt>", first ? "<dl class=\"text\">" : "");
		html_text(out, key);
		evbuffer_add_printf(out, "</dt><dd>");
		html_text(out, value);
		evbuffer_add_printf(out, "</dd></div>");
		first = false;
	}
	if (!first)
		evbuffer_add_printf(out, "</dl>\n");
}

/* The columns of the rows of one kind from `cursor` on: every key any of
 * them has, in the order first met. */
struct columns {
	char keys[HTML_COLUMNS_MAX][64];
	size_t count;
};

static void columns_of(const char *cursor, const char *kind, struct columns *cols)
{
	struct info_row row;

	cols->count = 0;
	while (info_next_row(&cursor, &row) && strcmp(row.kind, kind) == 0) {
		const char *c = row.counters;
		char key[64];
		unsigned long long value;

		while (info_next_counter(&c, key, sizeof(key), &value)) {
			bool known = false;

			for (size_t k = 0; k < cols->count && !known; k++)
				known = strcmp(cols->keys[k], key) == 0;
			if (!known && cols->count < HTML_COLUMNS_MAX)
				memcpy(cols->keys[cols->count++], key, sizeof(key));
		}
	}
}

static void html_row(struct evbuffer *out, const struct info_row *row, const struct columns *cols)
{
	evbuffer_add_printf(out, "<tr><td>");
	html_text(out, row->name);
	evbuffer_add_printf(out, "</td>");
	for (size_t k = 0; k < cols->count; k++) {
		const char *c = row->counters;
		char key[64];
		unsigned long long value;
		bool found = false;

		while (!found && info_next_counter(&c, key, sizeof(key), &value))
			found = strcmp(key, cols->keys[k]) == 0;
		if (found)
			evbuffer_add_printf(out, "<td>%llu</td>", value);
		else
			evbuffer_add_printf(out, "<td></td>");
	}
	evbuffer_add_printf(out, "</tr>\n");
}

static void html_table_head(struct evbuffer *out, const char *kind, const struct columns *cols)
{
	evbuffer_add_printf(out, "<div class=\"scroll\"><table><tr><th>");
	html_text(out, kind);
	evbuffer_add_printf(out, "</th>");
	for (size_t k = 0; k < cols->count; k++) {
		evbuffer_add_printf(out, "<th>");
		html_text(out, cols->keys[k]);
		evbuffer_add_printf(out, "</th>");
	}
	evbuffer_add_printf(out, "</tr>\n");
}

/* A table per run of rows of one kind (a relay's upstreams, an rtp
 * listener's senders, a stream's source and netsim). */
static void html_rows(struct evbuffer *out, const char *rows)
{
	const char *cursor = rows, *before = rows;
	char kind[32] = "";
	struct info_row row;
	struct columns cols;

	while (info_next_row(&cursor, &row)) {
		if (strcmp(kind, row.kind) != 0) {
			if (kind[0])
				evbuffer_add_printf(out, "</table></div>\n");
			columns_of(before, row.kind, &cols);
			html_table_head(out, row.kind, &cols);
			snprintf(kind, sizeof(kind), "%s", row.kind);
		}
		html_row(out, &row, &cols);
		before = cursor;
	}
	if (kind[0])
		evbuffer_add_printf(out, "</table></div>\n");
}

static void html_unit(struct evbuffer *out, const struct chassis_listener_stats *s)
{
	evbuffer_add_printf(out, "<section class=\"unit%s\"><h3>", s->retired ? " retired" : "");
	html_text(out, s->name);
	evbuffer_add_printf(out, "</h3>\n<p class=\"what facts\">");
	html_fact(out, s->protocol);
	html_fact(out, s->transport);
	html_fact(out, s->address);
	if (s->retired)
		evbuffer_add_printf(out, "<span>retired by a reload: finishing its connections</span>");
	evbuffer_add_printf(out, "</p>\n");
	html_chassis_counters(out, s);
	html_module_counters(out, s);
	html_module_text(out, s->module_text);
	html_rows(out, s->module_rows);
	evbuffer_add_printf(out, "</section>\n");
}

/* Listeners first, then streams, each under its heading when there are any. */
static void html_units(struct evbuffer *out, const struct info_snapshot *snap, bool streams)
{
	bool first = true;

	for (size_t i = 0; i < snap->count; i++) {
		const struct chassis_listener_stats *s = &snap->listeners[i].stats;

		if ((strcmp(s->transport, "stream") == 0) != streams)
			continue;
		if (first)
			evbuffer_add_printf(out, "<h2>%s</h2>\n", streams ? "Streams" : "Listeners");
		first = false;
		html_unit(out, s);
	}
}

void status_html_write(struct evbuffer *out, const struct info_snapshot *snap)
{
	evbuffer_add_printf(out,
			    "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
			    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
			    "<title>chassisd status</title>\n<style>%s</style></head>\n<body>\n",
			    page_style);
	html_summary(out, snap);
	html_units(out, snap, false);
	html_units(out, snap, true);
	if (snap->count == 0)
		evbuffer_add_printf(out, "<p>No listener and no stream.</p>\n");
	evbuffer_add_printf(out, "<p class=\"module\">As of this request; reload the page for newer counts. "
				 "<a href=\"?format=json\">JSON</a></p>\n</body></html>\n");
}
