/* netsim.c on its own: datagrams numbered 1, 2, 3... pushed in, and every
 * delivery recorded (which one, during which push, when, a hash of its
 * bytes). Each datagram carries its number in its first 8 bytes and in its
 * meta, and a pattern that depends on it after that, so a delivery can be
 * checked against what was pushed. */
#include <criterion/criterion.h>
#include <event2/event.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "conf/conf.h"
#include "daemon/netsim.h"
#include "loop_helpers.h"

#define MANY 100000u
#define MAX_DELIVERIES (3 * MANY)
#define MAX_LEN 300
/* netsim.h: a datagram is overtaken by fewer than 16 w others in a window
 * of w that keeps filling. */
#define OVERTAKEN_BOUND(w) (16u * (w))

struct delivery {
	uint64_t seq;
	uint64_t during;	/* the push under way; 0 = from the loop or a flush */
	double at;		/* CLOCK_MONOTONIC seconds */
	uint64_t hash;		/* of the bytes delivered */
};

static struct event_base *base;
static struct netsim *ns;
static struct delivery got[MAX_DELIVERIES];
static size_t n_got;
static uint64_t pushing;
static double pushed_at[MANY + 1];
static bool pattern_ok;		/* every delivery was the datagram pushed */
static const void *delivered_pointer;

static void setup(void)
{
	base = event_base_new();
	ns = NULL;
	n_got = 0;
	pushing = 0;
	pattern_ok = true;
	delivered_pointer = NULL;
}

static void teardown(void)
{
	netsim_free(ns);
	event_base_free(base);
}

TestSuite(netsim, .init = setup, .fini = teardown, .timeout = 60);

static struct conf_netsim conf_of(double loss, double duplicate, unsigned reorder)
{
	return (struct conf_netsim){ .enabled = true, .loss = loss, .duplicate = duplicate, .reorder = reorder,
				     .seed = 42 };
}

static size_t length_of(uint64_t seq)
{
	return 8 + (size_t)(seq * 7919 % (MAX_LEN - 8));
}

static void fill(uint64_t seq, unsigned char *buf, size_t len)
{
	memcpy(buf, &seq, 8);
	for (size_t i = 8; i < len; i++)
		buf[i] = (unsigned char)(seq * 31 + i);
}

static uint64_t fnv1a(const void *data, size_t len)
{
	const unsigned char *p = data;
	uint64_t h = 1469598103934665603ull;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211ull;
	return h;
}

static void on_deliver(void *arg, const void *data, size_t len, const void *meta, size_t meta_len)
{
	unsigned char expected[MAX_LEN];
	uint64_t seq;

	cr_assert_eq(meta_len, 8u);
	cr_assert_lt(n_got, (size_t)MAX_DELIVERIES);
	memcpy(&seq, meta, 8);
	fill(seq, expected, length_of(seq));
	if (len != length_of(seq) || memcmp(data, expected, len) != 0)
		pattern_ok = false;
	got[n_got++] = (struct delivery){ seq, pushing, clock_seconds(), fnv1a(data, len) };
	delivered_pointer = data;
	(void)arg;
}

static void start(const struct conf_netsim *conf)
{
	ns = netsim_new(base, conf, on_deliver, NULL);
	cr_assert_not_null(ns);
}

static void push_seq(uint64_t seq)
{
	unsigned char buf[MAX_LEN];
	size_t len = length_of(seq);

	fill(seq, buf, len);
	pushing = seq;
	if (seq <= MANY)
		pushed_at[seq] = clock_seconds();
	netsim_push(ns, buf, len, &seq, sizeof(seq));
	pushing = 0;
}

static void push_range(uint64_t first, uint64_t last)
{
	for (uint64_t seq = first; seq <= last; seq++)
		push_seq(seq);
}

static const struct netsim_counters *counters(void)
{
	return netsim_counters(ns);
}

static uint64_t wanted_out;

static bool all_out(void *arg)
{
	(void)arg;
	return counters()->out >= wanted_out;
}

/* Runs the loop (bounded) until out reaches n; false on time out. */
static bool run_until_out(uint64_t n, double seconds)
{
	wanted_out = n;
	return run_until(base, all_out, NULL, seconds);
}

/* Within 5 standard deviations of a binomial(n, p) mean; squared, so the
 * tests need no libm. */
static void assert_binomial(uint64_t count, uint64_t n, double p)
{
	double mean = (double)n * p, variance = (double)n * p * (1 - p), off = (double)count - mean;

	cr_assert(off * off <= 25 * variance, "%llu of %llu, expected %.1f, variance %.1f",
		  (unsigned long long)count, (unsigned long long)n, mean, variance);
}

static double power(double x, unsigned k)
{
	double r = 1;

	while (k-- > 0)
		r *= x;
	return r;
}

/* copies[seq]: how many times each of 1..n was delivered. */
static void count_copies(unsigned *copies, uint64_t n)
{
	memset(copies, 0, (n + 1) * sizeof(*copies));
	for (size_t i = 0; i < n_got; i++) {
		cr_assert(got[i].seq >= 1 && got[i].seq <= n);
		copies[got[i].seq]++;
	}
}

/* Lost ones never arrive, duplicated ones arrive twice, the rest once. */
static void assert_each_delivered_as_counted(uint64_t n)
{
	static unsigned copies[MANY + 1];
	uint64_t none = 0, twice = 0;

	count_copies(copies, n);
	for (uint64_t seq = 1; seq <= n; seq++) {
		cr_assert_leq(copies[seq], 2u, "datagram %llu delivered %u times", (unsigned long long)seq,
			      copies[seq]);
		none += copies[seq] == 0;
		twice += copies[seq] == 2;
	}
	cr_assert_eq(none, counters()->lost);
	cr_assert_eq(twice, counters()->duplicated);
	cr_assert_eq((uint64_t)n_got, counters()->out);
	cr_assert(pattern_ok, "a delivery differed from what was pushed");
}

/* Fenwick tree over datagram numbers: how many later ones were out first. */
static uint32_t tree[MANY + 1];

static void tree_add(uint64_t i)
{
	for (; i <= MANY; i += i & (~i + 1))
		tree[i]++;
}

static uint64_t tree_sum(uint64_t i)
{
	uint64_t sum = 0;

	for (; i > 0; i -= i & (~i + 1))
		sum += tree[i];
	return sum;
}

/* The most distinct later datagrams any delivery was overtaken by; also
 * checks the reordered counter against its definition. */
static uint64_t most_overtaken(void)
{
	static bool seen[MANY + 1];
	uint64_t most = 0, distinct = 0, latest = 0, reordered = 0;

	memset(tree, 0, sizeof(tree));
	memset(seen, 0, sizeof(seen));
	for (size_t i = 0; i < n_got; i++) {
		uint64_t seq = got[i].seq, overtaken = distinct - tree_sum(seq);
		if (overtaken > most)
			most = overtaken;
		if (seq < latest)
			reordered++;
		else
			latest = seq;
		if (!seen[seq]) {
			seen[seq] = true;
			tree_add(seq);
			distinct++;
		}
	}
	cr_assert_eq(reordered, counters()->reordered);
	return most;
}

Test(netsim, nothing_held_back_is_delivered_at_once_from_the_callers_buffer)
{
	struct conf_netsim conf = { .enabled = true, .seed = 1 };
	unsigned char buf[MAX_LEN];
	uint64_t seq = 1;

	start(&conf);
	fill(seq, buf, length_of(seq));
	netsim_push(ns, buf, length_of(seq), &seq, sizeof(seq));
	cr_assert_eq(n_got, 1u);
	cr_assert_eq(delivered_pointer, buf, "copied although nothing held it back");
	cr_assert(pattern_ok);
	cr_assert_eq(counters()->in, 1u);
	cr_assert_eq(counters()->out, 1u);
}

Test(netsim, a_conf_not_enabled_passes_everything)
{
	struct conf_netsim conf = conf_of(1, 1, 8);

	conf.enabled = false;
	start(&conf);
	push_range(1, 100);
	cr_assert_eq(n_got, 100u);
	cr_assert_eq(counters()->lost + counters()->duplicated + counters()->reordered, 0u);
}

Test(netsim, many_datagrams_lost_duplicated_and_reordered_within_bounds)
{
	struct conf_netsim conf = conf_of(0.05, 0.01, 8);
	uint64_t most;

	start(&conf);
	push_range(1, MANY);
	cr_assert_eq(counters()->in, (uint64_t)MANY);
	assert_binomial(counters()->lost, MANY, 0.05);
	assert_binomial(counters()->duplicated, MANY - counters()->lost, 0.01);
	cr_assert_eq(counters()->overflow, 0u);
	/* Between pushes a full window holds w - 1. */
	cr_assert_eq(counters()->out + 7, MANY - counters()->lost + counters()->duplicated);
	netsim_flush(ns);
	assert_each_delivered_as_counted(MANY);
	most = most_overtaken();
	cr_assert_gt(counters()->reordered, MANY / 2);
	cr_assert_gt(most, 8u, "no datagram went further back than the window itself");
	cr_assert_lt(most, OVERTAKEN_BOUND(8), "overtaken by %llu", (unsigned long long)most);
}

/* Kamaelia's Reorder on its own: no loss or duplicate, so a datagram's
 * delay in arrivals is the push that let it out minus its own number. Each
 * held one leaves with p = 1/7 per arrival: geometric, mean 7 (Little's
 * law with 7 held and one out per arrival), P(D = 1) = 1/7,
 * P(D > 28) = (6/7)^28. */
Test(netsim, kamaelia_reorder_window_is_geometric_over_the_seven_oldest)
{
	struct conf_netsim conf = conf_of(0, 0, 8);
	uint64_t n = 0, sum = 0, ones = 0, past_28 = 0, most = 0;

	start(&conf);
	push_range(1, MANY);
	cr_assert_eq(counters()->out, MANY - 7u, "a full window of 8 holds 7 between pushes");
	for (size_t i = 0; i < n_got; i++) {
		uint64_t delay = got[i].during - got[i].seq;
		cr_assert_gt(got[i].during, got[i].seq, "the newest left at once");
		n++;
		sum += delay;
		ones += delay == 1;
		past_28 += delay > 28;
		most = delay > most ? delay : most;
	}
	cr_assert((double)sum / (double)n > 6.9 && (double)sum / (double)n < 7.1, "mean delay %.3f", (double)sum / (double)n);
	assert_binomial(ones, n, 1.0 / 7);
	assert_binomial(past_28, n, power(6.0 / 7, 28));
	cr_assert_lt(most, OVERTAKEN_BOUND(8));
	netsim_flush(ns);
	cr_assert_eq(n_got, (size_t)MANY);
}

Test(netsim, kamaelia_broken_network_is_loss_01_duplicate_01_reorder_8)
{
	struct conf_netsim conf = conf_of(0.1, 0.1, 8);

	start(&conf);
	push_range(1, MANY);
	assert_binomial(counters()->lost, MANY, 0.1);
	assert_binomial(counters()->duplicated, MANY - counters()->lost, 0.1);
	cr_assert_eq(counters()->out + 7, MANY - counters()->lost + counters()->duplicated);
	netsim_flush(ns);
	assert_each_delivered_as_counted(MANY);
	cr_assert_lt(most_overtaken(), OVERTAKEN_BOUND(8));
}

/* Kamaelia's defect: the last 7 were never sent. Here a window that stops
 * filling lets each go 100 ms after it came, oldest first. */
Test(netsim, a_window_that_stops_filling_is_released_by_the_timer)
{
	struct conf_netsim conf = conf_of(0, 0, 8);

	start(&conf);
	push_range(1, 20);
	cr_assert_eq(n_got, 13u);
	cr_assert(run_until_out(20, 2.0), "the tail stayed held");
	for (size_t i = 13; i < 20; i++) {
		double waited = got[i].at - pushed_at[got[i].seq];
		cr_assert_eq(got[i].during, 0u);
		if (i > 13)
			cr_assert_gt(got[i].seq, got[i - 1].seq, "the tail left out of order");
		cr_assert(waited >= 0.100 && waited < 0.100 + 0.150, "released after %.1f ms", waited * 1e3);
	}
}

static void record_run(uint64_t seed, struct delivery *into, size_t *n)
{
	struct conf_netsim conf = conf_of(0.05, 0.05, 8);

	conf.corrupt = 0.05;
	conf.seed = seed;
	n_got = 0;
	start(&conf);
	push_range(1, 20000);
	netsim_flush(ns);
	netsim_free(ns);
	ns = NULL;
	*n = n_got;
	for (size_t i = 0; i < n_got; i++)
		into[i] = (struct delivery){ .seq = got[i].seq, .hash = got[i].hash };
}

static struct delivery first[30000], second[30000], third[30000];

Test(netsim, the_same_seed_gives_the_same_deliveries_and_another_seed_does_not)
{
	size_t n1, n2, n3;

	record_run(7, first, &n1);
	record_run(7, second, &n2);
	record_run(8, third, &n3);
	cr_assert_eq(n1, n2);
	cr_assert_eq(memcmp(first, second, n1 * sizeof(*first)), 0);
	cr_assert(n1 != n3 || memcmp(first, third, n1 * sizeof(*first)) != 0);
}

/* Delays are drawn at push too. With jitter of +/- 1000 s the gaps between
 * due times dwarf the microseconds between pushes, so the order a flush
 * gives (due order) is the seed's alone. */
static void record_delays(uint64_t seed, struct delivery *into)
{
	struct conf_netsim conf = { .enabled = true, .delay_ms = 1000000, .jitter_ms = 1000000, .seed = seed };

	n_got = 0;
	start(&conf);
	push_range(1, 100);
	cr_assert_eq(n_got, 0u);
	cr_assert_eq(counters()->delayed, 100u);
	netsim_flush(ns);
	cr_assert_eq(n_got, 100u);
	netsim_free(ns);
	ns = NULL;
	for (size_t i = 0; i < 100; i++)
		into[i] = (struct delivery){ .seq = got[i].seq };
}

Test(netsim, the_same_seed_gives_the_same_delays)
{
	record_delays(3, first);
	record_delays(3, second);
	record_delays(4, third);
	cr_assert_eq(memcmp(first, second, 100 * sizeof(*first)), 0);
	cr_assert_neq(memcmp(first, third, 100 * sizeof(*first)), 0);
}

static unsigned char original[MAX_LEN], corrupted_copy[MAX_LEN];
static size_t corrupted_len;

static void on_corrupted(void *arg, const void *data, size_t len, const void *meta, size_t meta_len)
{
	memcpy(corrupted_copy, data, len);
	corrupted_len = len;
	n_got++;
	(void)arg;
	(void)meta;
	(void)meta_len;
}

Test(netsim, corrupt_1_flips_exactly_one_byte_of_each)
{
	struct conf_netsim conf = { .enabled = true, .corrupt = 1, .seed = 5 };
	bool last_byte_hit = false;

	ns = netsim_new(base, &conf, on_corrupted, NULL);
	cr_assert_not_null(ns);
	for (uint64_t seq = 1; seq <= 2000; seq++) {
		size_t len = 1 + (size_t)(seq % MAX_LEN), differ = 0, where = 0;
		fill(seq, original, len);
		netsim_push(ns, original, len, NULL, 0);
		cr_assert_eq(corrupted_len, len);
		for (size_t i = 0; i < len; i++)
			if (corrupted_copy[i] != original[i]) {
				differ++;
				where = i;
			}
		cr_assert_eq(differ, 1u, "datagram %llu: %zu bytes differ", (unsigned long long)seq, differ);
		last_byte_hit |= len > 1 && where == len - 1;
	}
	cr_assert_eq(counters()->corrupted, 2000u);
	cr_assert(last_byte_hit, "the last byte was never the one flipped");
	netsim_push(ns, original, 0, NULL, 0);
	cr_assert_eq(n_got, 2001u, "an empty datagram was not delivered");
	cr_assert_eq(counters()->corrupted, 2000u, "an empty datagram counted as corrupted");
}

Test(netsim, delay_20_jitter_5_delivers_between_15_and_25_ms)
{
	struct conf_netsim conf = { .enabled = true, .delay_ms = 20, .jitter_ms = 5, .seed = 9 };
	double least = 1, most = 0;
	const double slack = 0.020;	/* loop polling, a busy machine, sanitizers */

	start(&conf);
	push_range(1, 50);
	cr_assert_eq(n_got, 0u);
	cr_assert_eq(counters()->delayed, 50u);
	cr_assert(run_until_out(50, 2.0), "only %zu of 50 delivered", n_got);
	for (size_t i = 0; i < n_got; i++) {
		double waited = got[i].at - pushed_at[got[i].seq];
		cr_assert(waited >= 0.015 && waited <= 0.025 + slack, "datagram %llu after %.2f ms",
			  (unsigned long long)got[i].seq, waited * 1e3);
		least = waited < least ? waited : least;
		most = waited > most ? waited : most;
	}
	cr_assert_gt(most - least, 0.004, "no jitter to speak of");
	cr_assert_gt(counters()->reordered, 0u, "jitter of 10 ms over pushes microseconds apart kept the order");
	cr_assert(pattern_ok);
}

Test(netsim, past_max_held_datagrams_are_dropped_and_counted)
{
	struct conf_netsim conf = { .enabled = true, .delay_ms = 10000, .max_held = 10, .seed = 2 };

	start(&conf);
	push_range(1, 15);
	cr_assert_eq(counters()->overflow, 5u);
	cr_assert_eq(n_got, 0u);
	netsim_flush(ns);
	cr_assert_eq(n_got, 10u);
	for (size_t i = 0; i < n_got; i++)
		cr_assert_eq(got[i].seq, i + 1, "equal delays left out of order");
}

Test(netsim, a_window_wider_than_max_held_shrinks_to_it)
{
	struct conf_netsim conf = conf_of(0, 0, 64);

	conf.max_held = 4;
	start(&conf);
	push_range(1, 1000);
	cr_assert_eq(counters()->overflow, 0u);
	cr_assert_eq(n_got, 1000u - 3);
	netsim_flush(ns);
	cr_assert_lt(most_overtaken(), OVERTAKEN_BOUND(4));
	cr_assert_gt(counters()->reordered, 0u);
}

Test(netsim, flush_delivers_everything_held_once)
{
	struct conf_netsim conf = conf_of(0, 0.1, 8);

	conf.delay_ms = 50;
	conf.jitter_ms = 20;
	start(&conf);
	push_range(1, 200);
	cr_assert_lt(n_got, 200u);
	netsim_flush(ns);
	cr_assert_eq(counters()->out, 200 + counters()->duplicated);
	assert_each_delivered_as_counted(200);
	run_until_out(counters()->out + 1, 0.2);	/* nothing more may come */
	cr_assert_eq(counters()->out, (uint64_t)n_got);
	cr_assert_eq(n_got, 200 + counters()->duplicated);
}

Test(netsim, free_with_datagrams_held_delivers_none_of_them)
{
	struct conf_netsim conf = conf_of(0, 0, 8);

	conf.delay_ms = 30;
	start(&conf);
	push_range(1, 100);
	cr_assert_eq(n_got, 0u);
	netsim_free(ns);
	ns = NULL;
	for (int i = 0; i < 100; i++) {	/* 100 ms: the delay and the window's hold */
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		usleep(1000);
	}
	cr_assert_eq(n_got, 0u);
}

/* A deliver() that pushes again (a relay feeding a second hop, say):
 * deliveries from the loop push datagrams 501 to 1000. */
static uint64_t next_to_push;

static void on_deliver_push_again(void *arg, const void *data, size_t len, const void *meta, size_t meta_len)
{
	on_deliver(arg, data, len, meta, meta_len);
	if (next_to_push <= 1000)
		push_seq(next_to_push++);
}

static bool all_pushed(void *arg)
{
	(void)arg;
	return counters()->in == 1000;
}

Test(netsim, deliver_may_push_again)
{
	struct conf_netsim conf = conf_of(0, 0.1, 8);

	conf.delay_ms = 5;
	conf.jitter_ms = 5;
	ns = netsim_new(base, &conf, on_deliver_push_again, NULL);
	cr_assert_not_null(ns);
	next_to_push = 1001;	/* not from the first 500's own pushes */
	push_range(1, 500);
	next_to_push = 501;
	cr_assert(run_until(base, all_pushed, NULL, 5.0), "%llu pushed", (unsigned long long)counters()->in);
	netsim_flush(ns);
	assert_each_delivered_as_counted(1000);
}
