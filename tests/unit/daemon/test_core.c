#include <criterion/criterion.h>
#include <event2/event.h>

#include "daemon/core.h"

struct counts {
	unsigned calls, last;
};

static void on_count(void *arg, unsigned n_taps)
{
	struct counts *c = arg;

	c->calls++;
	c->last = n_taps;
}

static void on_datagram(void *arg, const void *data, size_t len)
{
	(void)arg;
	(void)data;
	(void)len;
}

/* A tap that gives itself back from its own callback (a stream route's
 * last client dropped): the watcher hears it, the delivery goes on. */
static struct datagram_tap *self_untapping;
static unsigned untap_seen;

static void untap_self(void *arg, const void *data, size_t len)
{
	untap_seen++;
	chassis_untap(self_untapping);
	self_untapping = NULL;
	(void)arg;
	(void)data;
	(void)len;
}

Test(core, a_watch_hears_the_tap_count_of_its_unit_only)
{
	struct event_base *base = event_base_new();
	struct chassis ch;
	struct counts news = { 0 }, other = { 0 };
	struct tap_watch *w1, *w2;
	struct datagram_tap *a, *b, *c;

	chassis_init(&ch, base);
	a = chassis_tap_datagrams(&ch, "news-in", on_datagram, NULL);
	w1 = chassis_watch_taps(&ch, "news-in", on_count, &news);
	w2 = chassis_watch_taps(&ch, "other", on_count, &other);
	cr_assert_eq(news.calls, 1);
	cr_assert_eq(news.last, 1);		/* told at once */
	cr_assert_eq(other.last, 0);
	b = chassis_tap_datagrams(&ch, "news-in", on_datagram, NULL);
	c = chassis_tap_datagrams(&ch, "third", on_datagram, NULL);
	cr_assert_eq(news.last, 2);
	cr_assert_eq(news.calls, 2);		/* "third" is none of its business */
	chassis_untap(a);
	chassis_untap(b);
	cr_assert_eq(news.last, 0);
	cr_assert_eq(news.calls, 4);
	cr_assert_eq(other.calls, 1);
	chassis_unwatch_taps(w1);
	chassis_untap(c);
	chassis_untap(chassis_tap_datagrams(&ch, "news-in", on_datagram, NULL));
	cr_assert_eq(news.calls, 4);		/* unwatched */
	chassis_unwatch_taps(w2);
	chassis_cleanup(&ch);
	event_base_free(base);
}

Test(core, a_tap_may_untap_itself_while_datagrams_are_delivered)
{
	struct event_base *base = event_base_new();
	struct chassis ch;
	struct counts news = { 0 };
	struct tap_watch *w;

	chassis_init(&ch, base);
	w = chassis_watch_taps(&ch, "news-in", on_count, &news);
	self_untapping = chassis_tap_datagrams(&ch, "news-in", untap_self, NULL);
	cr_assert_eq(news.last, 1);
	chassis_tap_deliver(&ch, "news-in", "x", 1);
	cr_assert_eq(untap_seen, 1);
	cr_assert_eq(news.last, 0);
	chassis_tap_deliver(&ch, "news-in", "x", 1);
	cr_assert_eq(untap_seen, 1);
	chassis_unwatch_taps(w);
	chassis_cleanup(&ch);
	event_base_free(base);
}
