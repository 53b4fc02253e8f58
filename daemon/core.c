#include "daemon/core.h"

#include <event2/dns.h>
#include <event2/event.h>
#include <stdlib.h>
#include <string.h>

struct datagram_tap {
	LIST_ENTRY(datagram_tap) link;
	struct chassis *chassis;
	char *unit;
	chassis_tap_fn *fn;
	void *arg;
};

struct tap_watch {
	LIST_ENTRY(tap_watch) link;
	char *unit;
	tap_count_fn *changed;
	void *arg;
};

void chassis_init(struct chassis *ch, struct event_base *base)
{
	memset(ch, 0, sizeof(*ch));
	ch->base = base;
	TAILQ_INIT(&ch->by_activity);
	LIST_INIT(&ch->taps);
	LIST_INIT(&ch->tap_watches);
	LIST_INIT(&ch->documents);
}

struct document {
	LIST_ENTRY(document) link;
	char *name, *content_type, *text;
	const void *owner;
};

static struct document *document_find(const struct chassis *ch, const char *name)
{
	struct document *doc;

	LIST_FOREACH(doc, &ch->documents, link)
		if (strcmp(doc->name, name) == 0)
			return doc;
	return NULL;
}

static void document_free(struct document *doc)
{
	LIST_REMOVE(doc, link);
	free(doc->name);
	free(doc->content_type);
	free(doc->text);
	free(doc);
}

int chassis_publish(struct chassis *ch, const char *name, const char *content_type, const char *text,
		    const void *owner)
{
	struct document *doc = calloc(1, sizeof(*doc));

	if (doc == NULL || (doc->name = strdup(name)) == NULL || (doc->content_type = strdup(content_type)) == NULL ||
	    (doc->text = strdup(text)) == NULL) {
		if (doc != NULL) {
			free(doc->name);
			free(doc->content_type);
		}
		free(doc);
		return -1;
	}
	doc->owner = owner;
	if (document_find(ch, name) != NULL)
		document_free(document_find(ch, name));
	LIST_INSERT_HEAD(&ch->documents, doc, link);
	return 0;
}

void chassis_unpublish(struct chassis *ch, const char *name, const void *owner)
{
	struct document *doc = document_find(ch, name);

	if (doc != NULL && doc->owner == owner)
		document_free(doc);
}

const char *chassis_document(const struct chassis *ch, const char *name, const char **content_type)
{
	const struct document *doc = document_find(ch, name);

	if (doc == NULL)
		return NULL;
	*content_type = doc->content_type;
	return doc->text;
}

static unsigned tap_count(const struct chassis *ch, const char *unit)
{
	const struct datagram_tap *tap;
	unsigned n = 0;

	LIST_FOREACH(tap, &ch->taps, link)
		n += strcmp(tap->unit, unit) == 0;
	return n;
}

static void tap_count_changed(struct chassis *ch, const char *unit)
{
	struct tap_watch *watch, *next;

	for (watch = LIST_FIRST(&ch->tap_watches); watch != NULL; watch = next) {
		next = LIST_NEXT(watch, link);
		if (strcmp(watch->unit, unit) == 0)
			watch->changed(watch->arg, tap_count(ch, unit));
	}
}

struct tap_watch *chassis_watch_taps(struct chassis *ch, const char *unit, tap_count_fn *changed, void *arg)
{
	struct tap_watch *watch = calloc(1, sizeof(*watch));

	if (watch == NULL || (watch->unit = strdup(unit)) == NULL) {
		free(watch);
		return NULL;
	}
	watch->changed = changed;
	watch->arg = arg;
	LIST_INSERT_HEAD(&ch->tap_watches, watch, link);
	changed(arg, tap_count(ch, unit));
	return watch;
}

void chassis_unwatch_taps(struct tap_watch *watch)
{
	if (watch == NULL)
		return;
	LIST_REMOVE(watch, link);
	free(watch->unit);
	free(watch);
}

struct datagram_tap *chassis_tap_datagrams(struct chassis *ch, const char *unit, chassis_tap_fn *fn, void *arg)
{
	struct datagram_tap *tap = calloc(1, sizeof(*tap));

	if (tap == NULL || (tap->unit = strdup(unit)) == NULL) {
		free(tap);
		return NULL;
	}
	tap->chassis = ch;
	tap->fn = fn;
	tap->arg = arg;
	LIST_INSERT_HEAD(&ch->taps, tap, link);
	tap_count_changed(ch, unit);
	return tap;
}

void chassis_untap(struct datagram_tap *tap)
{
	struct chassis *ch;
	char *unit;

	if (tap == NULL)
		return;
	ch = tap->chassis;
	unit = tap->unit;
	LIST_REMOVE(tap, link);
	free(tap);
	tap_count_changed(ch, unit);
	free(unit);
}

void chassis_tap_deliver(struct chassis *ch, const char *unit, const void *data, size_t len)
{
	struct datagram_tap *tap, *next;

	for (tap = LIST_FIRST(&ch->taps); tap != NULL; tap = next) {
		next = LIST_NEXT(tap, link);
		if (strcmp(tap->unit, unit) == 0)
			tap->fn(tap->arg, data, len);
	}
}

void chassis_tap_payload(struct chassis *ch, const char *unit, const void *data, size_t len)
{
	if (!LIST_EMPTY(&ch->taps))
		chassis_tap_deliver(ch, unit, data, len);
}

void chassis_cleanup(struct chassis *ch)
{
	if (ch->idle_sweep != NULL)
		event_free(ch->idle_sweep);
	ch->idle_sweep = NULL;
	if (ch->dns != NULL)
		evdns_base_free(ch->dns, 1);
	ch->dns = NULL;
	while (!LIST_EMPTY(&ch->documents))
		document_free(LIST_FIRST(&ch->documents));
}

static void chassis_check_stopped(struct chassis *ch)
{
	if (ch->stopping && ch->holds == 0 && ch->stopped != NULL) {
		void (*stopped)(void *arg) = ch->stopped;

		ch->stopped = NULL;
		stopped(ch->stopped_arg);
	}
}

void chassis_stop(struct chassis *ch, void (*stopped)(void *arg), void *arg)
{
	ch->stopping = true;
	ch->stopped = stopped;
	ch->stopped_arg = arg;
	chassis_check_stopped(ch);
}

void chassis_hold(struct chassis *ch)
{
	ch->holds++;
}

bool chassis_stopping(const struct chassis *ch, unsigned *grace_s)
{
	*grace_s = ch->shutdown_grace;
	return ch->stopping;
}

void chassis_release(struct chassis *ch)
{
	if (ch->holds > 0)
		ch->holds--;
	chassis_check_stopped(ch);
}

