/* Every random decision is drawn while netsim_push runs, in a fixed order
 * that depends only on the configuration and the datagrams pushed (never
 * on the clock or on how full the window happens to be), so one seed
 * replays one run. The timer only releases what is held; it draws nothing.
 *
 * A datagram that nothing holds back is delivered from the caller's own
 * buffer before netsim_push returns: no copy, no clock read. Anything held
 * (reorder window, delay queue) is one allocation carrying its data and
 * meta, counted against max_held. */
#include "daemon/netsim.h"

#include <event2/event.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"

#define NS_PER_MS 1000000ull
#define DEFAULT_MAX_HELD 4096u
/* A window that stops filling (a pause, the end of a stream) lets its
 * oldest go in order once it has waited this long: Kamaelia's Reorder kept
 * its last 7 for ever. */
#define WINDOW_HOLD_NS (100 * NS_PER_MS)
/* Kamaelia's rule alone has no bound: each held datagram leaves with
 * p = 1/(w-1) per arrival, a geometric tail. After this many windows of
 * arrivals behind it, a datagram leaves next; for w = 8 the chance of ever
 * getting there is (6/7)^127, about 3e-9, so the distribution is Kamaelia's
 * in practice, and the lateness has a hard bound. */
#define WINDOW_MAX_AGE_WINDOWS 16u
#define NO_TIMER UINT64_MAX

struct held {
	uint64_t seq;		/* push number: tells a reordered delivery */
	uint64_t arrival;	/* window arrival number: the age bound */
	uint64_t since_ns;	/* entered the window: the time bound */
	uint64_t delay_ns;	/* drawn at push, applied on leaving the window */
	uint64_t due_ns;	/* delay queue: when it goes */
	uint64_t order;		/* delay queue: equal due times go first in, first out */
	size_t len, meta_len;
	unsigned char bytes[];	/* data, then meta */
};

/* A datagram on its way through, not (yet) copied. */
struct view {
	const void *data;
	size_t len;
	const void *meta;
	size_t meta_len;
	uint64_t seq;
};

struct netsim {
	struct conf_netsim conf;
	netsim_deliver_fn *deliver;
	void *arg;
	struct netsim_counters counters;
	uint64_t rng[4];
	uint64_t pushed;		/* the last seq given */
	uint64_t latest_out;		/* highest seq delivered so far */
	unsigned max_held;
	size_t held;			/* window and delay queue together */
	/* reorder window, oldest first; window == 0: no reordering */
	unsigned window;
	struct held **win;
	size_t win_n;
	uint64_t arrivals;
	/* delay queue: a binary min-heap on (due_ns, order) */
	struct held **heap;
	size_t heap_n, heap_cap;
	uint64_t heap_order;
	struct event *timer;
	uint64_t timer_due;		/* what the timer is armed for; NO_TIMER */
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	/* Not the coarse clock: its 4 ms steps would show as jitter. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* --- the generator: splitmix64 seeds xoshiro256** (Vigna) --- */

static uint64_t splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

static void rng_seed(uint64_t s[4], uint64_t seed)
{
	/* splitmix64 never gives four zero words, which xoshiro cannot leave. */
	for (int i = 0; i < 4; i++)
		s[i] = splitmix64(&seed);
}

static uint64_t seed_from_clock(void)
{
	struct timespec wall;

	clock_gettime(CLOCK_REALTIME, &wall);
	return ((uint64_t)wall.tv_sec * 1000000000u + (uint64_t)wall.tv_nsec) ^ now_ns() ^
	       ((uint64_t)getpid() << 32);
}

/* [0, n) from one draw by multiply-and-shift: the bias is below n / 2^64. */
static uint64_t scale_below(uint64_t draw, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)draw * n) >> 64);
}

static uint64_t rng_below(struct netsim *ns, uint64_t n)
{
	return scale_below(rng_next(ns->rng), n);
}

/* No draw for 0 or 1: a probability that decides nothing costs nothing. */
static bool rng_chance(struct netsim *ns, double p)
{
	if (!(p > 0))
		return false;
	if (p >= 1)
		return true;
	return (double)(rng_next(ns->rng) >> 11) * 0x1.0p-53 < p;
}

/* delay_ms +/- a uniform jitter_ms, in nanoseconds, never negative. */
static uint64_t rng_delay_ns(struct netsim *ns)
{
	uint64_t delay = ns->conf.delay_ms * NS_PER_MS;
	uint64_t jitter = ns->conf.jitter_ms * NS_PER_MS;
	uint64_t offset;

	if (jitter == 0)
		return delay;
	offset = rng_below(ns, 2 * jitter + 1);
	return delay + offset > jitter ? delay + offset - jitter : 0;
}

/* --- delivery and holding --- */

static void deliver_bytes(struct netsim *ns, const void *data, size_t len, const void *meta, size_t meta_len,
			  uint64_t seq)
{
	if (seq < ns->latest_out)
		ns->counters.reordered++;
	else
		ns->latest_out = seq;
	ns->counters.out++;
	ns->deliver(ns->arg, data, len, meta, meta_len);
}

static void deliver_view(struct netsim *ns, const struct view *v)
{
	deliver_bytes(ns, v->data, v->len, v->meta, v->meta_len, v->seq);
}

static void release(struct netsim *ns, struct held *h)
{
	ns->held--;
	free(h);
}

/* Taken off every list before the callback runs, so a deliver() that
 * pushes again finds the lists consistent. */
static void deliver_held(struct netsim *ns, struct held *h)
{
	deliver_bytes(ns, h->bytes, h->len, h->bytes + h->len, h->meta_len, h->seq);
	release(ns, h);
}

/* A copy counted against max_held; NULL (and counted as overflow) when
 * there is no room or no memory. */
static struct held *hold(struct netsim *ns, const struct view *v)
{
	struct held *h;

	if (ns->held >= ns->max_held || v->len > SIZE_MAX / 4 || v->meta_len > SIZE_MAX / 4)
		goto overflow;
	h = malloc(sizeof(*h) + v->len + v->meta_len);
	if (h == NULL)
		goto overflow;
	*h = (struct held){ .seq = v->seq, .len = v->len, .meta_len = v->meta_len };
	if (v->len > 0)
		memcpy(h->bytes, v->data, v->len);
	if (v->meta_len > 0)
		memcpy(h->bytes + v->len, v->meta, v->meta_len);
	ns->held++;
	return h;
overflow:
	ns->counters.overflow++;
	return NULL;
}

/* --- the delay queue --- */

static bool goes_before(const struct held *a, const struct held *b)
{
	return a->due_ns < b->due_ns || (a->due_ns == b->due_ns && a->order < b->order);
}

static void heap_swap(struct held **heap, size_t i, size_t j)
{
	struct held *t = heap[i];

	heap[i] = heap[j];
	heap[j] = t;
}

static void heap_sift_up(struct held **heap, size_t i)
{
	while (i > 0 && goes_before(heap[i], heap[(i - 1) / 2])) {
		heap_swap(heap, i, (i - 1) / 2);
		i = (i - 1) / 2;
	}
}

static void heap_sift_down(struct held **heap, size_t n, size_t i)
{
	for (;;) {
		size_t first = i, left = 2 * i + 1, right = left + 1;
		if (left < n && goes_before(heap[left], heap[first]))
			first = left;
		if (right < n && goes_before(heap[right], heap[first]))
			first = right;
		if (first == i)
			return;
		heap_swap(heap, i, first);
		i = first;
	}
}

static bool heap_make_room(struct netsim *ns)
{
	size_t cap = ns->heap_cap ? ns->heap_cap * 2 : 64;
	struct held **bigger;

	if (ns->heap_n < ns->heap_cap)
		return true;
	if (cap > ns->max_held)
		cap = ns->max_held;
	bigger = realloc(ns->heap, cap * sizeof(*bigger));
	if (bigger == NULL)
		return false;
	ns->heap = bigger;
	ns->heap_cap = cap;
	return true;
}

static struct held *heap_pop(struct netsim *ns)
{
	struct held *first = ns->heap[0];

	ns->heap[0] = ns->heap[--ns->heap_n];
	heap_sift_down(ns->heap, ns->heap_n, 0);
	return first;
}

/* Takes h (already counted in held); it goes at now + its drawn delay. */
static void delay_enter(struct netsim *ns, struct held *h, uint64_t now)
{
	if (!heap_make_room(ns)) {
		ns->counters.overflow++;
		release(ns, h);
		return;
	}
	h->due_ns = now + h->delay_ns;
	h->order = ns->heap_order++;
	ns->heap[ns->heap_n] = h;
	heap_sift_up(ns->heap, ns->heap_n++);
	ns->counters.delayed++;
}

/* --- the reorder window --- */

static struct held *window_take(struct netsim *ns, size_t i)
{
	struct held *h = ns->win[i];

	memmove(&ns->win[i], &ns->win[i + 1], (ns->win_n - i - 1) * sizeof(*ns->win));
	ns->win_n--;
	return h;
}

static void window_leave(struct netsim *ns, struct held *h, uint64_t now)
{
	if (h->delay_ns == 0)
		deliver_held(ns, h);
	else
		delay_enter(ns, h, now);
}

/* Kamaelia's Reorder: once the window is full, one of its w - 1 oldest,
 * chosen uniformly, goes on (the newest never leaves at once), unless the
 * oldest has been there too long. pick was drawn at push. */
static size_t window_choice(const struct netsim *ns, uint64_t pick)
{
	uint64_t oldest_age = ns->arrivals - ns->win[0]->arrival;

	if (oldest_age >= (uint64_t)WINDOW_MAX_AGE_WINDOWS * ns->window)
		return 0;
	return (size_t)scale_below(pick, ns->window - 1);
}

static void window_enter(struct netsim *ns, const struct view *v, uint64_t delay_ns, uint64_t pick)
{
	struct held *h = hold(ns, v);
	uint64_t now;

	if (h == NULL)
		return;
	now = now_ns();
	h->delay_ns = delay_ns;
	h->arrival = ++ns->arrivals;
	h->since_ns = now;
	ns->win[ns->win_n++] = h;
	if (ns->win_n == ns->window)
		window_leave(ns, window_take(ns, window_choice(ns, pick)), now);
}

/* --- the timer: one, for whatever is due first --- */

static uint64_t next_due(const struct netsim *ns)
{
	uint64_t due = NO_TIMER;

	if (ns->heap_n > 0)
		due = ns->heap[0]->due_ns;
	if (ns->win_n > 0 && ns->win[0]->since_ns + WINDOW_HOLD_NS < due)
		due = ns->win[0]->since_ns + WINDOW_HOLD_NS;
	return due;
}

static void timer_rearm(struct netsim *ns)
{
	uint64_t due = next_due(ns), now, wait_us;
	struct timeval tv;

	if (due == ns->timer_due)
		return;
	ns->timer_due = due;
	if (due == NO_TIMER) {
		evtimer_del(ns->timer);
		return;
	}
	now = now_ns();
	/* Rounded up: libevent firing early would only cost a second look. */
	wait_us = due > now ? (due - now + 999) / 1000 : 0;
	tv.tv_sec = (time_t)(wait_us / 1000000u);
	tv.tv_usec = (suseconds_t)(wait_us % 1000000u);
	evtimer_add(ns->timer, &tv);
}

static void release_stale_window(struct netsim *ns, uint64_t now)
{
	while (ns->win_n > 0 && ns->win[0]->since_ns + WINDOW_HOLD_NS <= now)
		window_leave(ns, window_take(ns, 0), now);
}

static void deliver_due(struct netsim *ns, uint64_t now)
{
	while (ns->heap_n > 0 && ns->heap[0]->due_ns <= now)
		deliver_held(ns, heap_pop(ns));
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct netsim *ns = arg;
	uint64_t now = now_ns();

	ns->timer_due = NO_TIMER;	/* it fired: no longer armed */
	release_stale_window(ns, now);
	deliver_due(ns, now);
	timer_rearm(ns);
	(void)fd;
	(void)what;
}

/* --- the API --- */

struct netsim *netsim_new(struct event_base *base, const struct conf_netsim *conf, netsim_deliver_fn *deliver,
			  void *arg)
{
	struct netsim *ns = calloc(1, sizeof(*ns));

	if (ns == NULL)
		return NULL;
	if (conf->enabled)
		ns->conf = *conf;	/* otherwise all zero: a plain pass-through */
	ns->deliver = deliver;
	ns->arg = arg;
	ns->max_held = ns->conf.max_held ? ns->conf.max_held : DEFAULT_MAX_HELD;
	/* w = 1 would reorder among 0 datagrams; a window larger than max_held
	 * could never fill. */
	ns->window = ns->conf.reorder < 2 ? 0 : ns->conf.reorder;
	if (ns->window > ns->max_held)
		ns->window = ns->max_held < 2 ? 0 : ns->max_held;
	rng_seed(ns->rng, ns->conf.seed ? ns->conf.seed : seed_from_clock());
	ns->timer_due = NO_TIMER;
	ns->timer = evtimer_new(base, on_timer, ns);
	if (ns->window > 0)
		ns->win = calloc(ns->window, sizeof(*ns->win));
	if (ns->timer == NULL || (ns->window > 0 && ns->win == NULL)) {
		netsim_free(ns);
		return NULL;
	}
	return ns;
}

/* One copy past loss, corruption and duplication: into the window, into
 * the delay queue, or straight out. */
static void route(struct netsim *ns, const struct view *v, uint64_t delay_ns, uint64_t pick)
{
	struct held *h;

	if (ns->window > 0) {
		window_enter(ns, v, delay_ns, pick);
		return;
	}
	if (delay_ns == 0) {
		deliver_view(ns, v);
		return;
	}
	h = hold(ns, v);
	if (h != NULL) {
		h->delay_ns = delay_ns;
		delay_enter(ns, h, now_ns());
	}
}

/* The caller's bytes are const: a corrupted datagram is a copy of them with
 * one byte XORed by a non-zero value. NULL when out of memory. */
static unsigned char *corrupt_copy(struct netsim *ns, const void *data, size_t len)
{
	size_t offset = (size_t)rng_below(ns, len);
	unsigned char flip = (unsigned char)(1 + rng_below(ns, 255));
	unsigned char *copy = malloc(len);

	if (copy == NULL)
		return NULL;
	memcpy(copy, data, len);
	copy[offset] ^= flip;
	ns->counters.corrupted++;
	return copy;
}

void netsim_push(struct netsim *ns, const void *data, size_t len, const void *meta, size_t meta_len)
{
	struct view v = { data, len, meta, meta_len, ++ns->pushed };
	unsigned char *corrupted = NULL;
	int copies;

	ns->counters.in++;
	if (meta_len > NETSIM_META_MAX) {
		ns->counters.overflow++;
		return;
	}
	if (rng_chance(ns, ns->conf.loss)) {
		ns->counters.lost++;
		return;
	}
	if (rng_chance(ns, ns->conf.corrupt) && len > 0) {
		corrupted = corrupt_copy(ns, data, len);
		if (corrupted == NULL) {
			ns->counters.overflow++;	/* no room to hold the copy */
			return;
		}
		v.data = corrupted;
	}
	copies = rng_chance(ns, ns->conf.duplicate) ? 2 : 1;
	ns->counters.duplicated += (uint64_t)(copies - 1);
	for (int i = 0; i < copies; i++) {
		uint64_t delay_ns = rng_delay_ns(ns);
		uint64_t pick = ns->window > 0 ? rng_next(ns->rng) : 0;
		route(ns, &v, delay_ns, pick);
	}
	free(corrupted);
	if (ns->held > 0 || ns->timer_due != NO_TIMER)
		timer_rearm(ns);
}

void netsim_flush(struct netsim *ns)
{
	/* Only what is held now: a deliver() that pushes again cannot keep
	 * this loop going. */
	for (size_t n = ns->held; n > 0 && ns->held > 0; n--) {
		if (ns->heap_n > 0)
			deliver_held(ns, heap_pop(ns));
		else
			deliver_held(ns, window_take(ns, 0));
	}
	timer_rearm(ns);
}

const struct netsim_counters *netsim_counters(const struct netsim *ns)
{
	return &ns->counters;
}

void netsim_free(struct netsim *ns)
{
	if (ns == NULL)
		return;
	while (ns->heap_n > 0)
		free(ns->heap[--ns->heap_n]);
	while (ns->win_n > 0)
		free(ns->win[--ns->win_n]);
	free(ns->heap);
	free(ns->win);
	if (ns->timer != NULL)
		event_free(ns->timer);
	free(ns);
}
