#include "protocols/rtp/receivers.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NS_PER_SECOND UINT64_C(1000000000)
#define NS_PER_MS UINT64_C(1000000)
#define NS_PER_US UINT64_C(1000)

bool rtp_receivers_init(struct rtp_receivers *table, size_t cap)
{
	memset(table, 0, sizeof(*table));
	table->cap = cap;
	if (cap == 0)
		return true;
	table->slots = calloc(cap, sizeof(*table->slots));
	return table->slots != NULL;
}

void rtp_receivers_free(struct rtp_receivers *table)
{
	free(table->slots);
	memset(table, 0, sizeof(*table));
}

static struct rtp_receiver *rtp_receivers_find(struct rtp_receivers *table, uint32_t ssrc)
{
	for (size_t i = 0; i < table->count; i++)
		if (table->slots[i].ssrc == ssrc)
			return &table->slots[i];
	if (table->count == table->cap) {
		table->refused++;
		return NULL;
	}
	table->slots[table->count] = (struct rtp_receiver){ .ssrc = ssrc };
	return &table->slots[table->count++];
}

/* RFC 3550 6.4.1: the middle 32 bits of the arrival's NTP time, less
 * LSR and DLSR, all in 1/65536 s and modulo 2^32. A result in the upper
 * half is a negative round trip (unsynchronised clocks do not matter, it
 * is our own clock both ends, but a receiver may lie or round): 0. */
static uint64_t round_trip_ns(uint64_t arrival_ntp, uint32_t last_sr, uint32_t delay)
{
	uint32_t arrival = (uint32_t)(arrival_ntp >> 16);
	uint32_t units = arrival - last_sr - delay;

	if (units >= UINT32_C(0x80000000))
		return 0;
	return (uint64_t)units * NS_PER_SECOND >> 16;
}

void rtp_receivers_report(struct rtp_receivers *table, const struct rtcp_report *report, uint32_t our_ssrc,
			  uint64_t arrival_ntp, uint64_t now_ns)
{
	struct rtp_receiver *r;

	if (report->source != our_ssrc) {
		table->ignored++;
		return;
	}
	r = rtp_receivers_find(table, report->reporter);
	if (r == NULL)
		return;
	r->fraction_lost = report->fraction_lost;
	r->cumulative_lost = report->cumulative_lost;
	r->highest_sequence = report->highest_sequence;
	r->jitter = report->jitter;
	r->rtt_known = report->last_sr != 0;
	r->rtt_ns = r->rtt_known ? round_trip_ns(arrival_ntp, report->last_sr, report->delay_since_last_sr) : 0;
	r->heard_ns = now_ns;
	r->reports++;
}

void rtp_receivers_expire(struct rtp_receivers *table, uint64_t now_ns, uint64_t silence_ns)
{
	size_t kept = 0;

	for (size_t i = 0; i < table->count; i++) {
		if (now_ns > table->slots[i].heard_ns && now_ns - table->slots[i].heard_ns > silence_ns) {
			table->expired++;
			continue;
		}
		table->slots[kept++] = table->slots[i];
	}
	table->count = kept;
}

static int receiver_row(const struct rtp_receiver *r, uint32_t clock_hz, uint64_t now_ns, char *buf, size_t len)
{
	uint64_t jitter_us = clock_hz ? (uint64_t)r->jitter * (NS_PER_SECOND / NS_PER_US) / clock_hz : 0;
	uint64_t silent_ms = now_ns > r->heard_ns ? (now_ns - r->heard_ns) / NS_PER_MS : 0;
	char rtt[40] = "";

	if (r->rtt_known)
		snprintf(rtt, sizeof(rtt), " rtt_us=%" PRIu64, r->rtt_ns / NS_PER_US);
	return snprintf(buf, len,
			"receiver %08" PRIx32 " fraction_lost=%u lost=%" PRIu32 " highest_sequence=%" PRIu32
			" jitter_us=%" PRIu64 "%s last_heard_ms=%" PRIu64 " reports=%" PRIu64 "\n",
			r->ssrc, r->fraction_lost, r->cumulative_lost > 0 ? (uint32_t)r->cumulative_lost : 0,
			r->highest_sequence, jitter_us, rtt, silent_ms, r->reports);
}

size_t rtp_receivers_rows(const struct rtp_receivers *table, uint32_t clock_hz, uint64_t now_ns, char *buf,
			  size_t len)
{
	size_t used = 0;

	if (len == 0)
		return 0;
	buf[0] = '\0';
	for (size_t i = 0; i < table->count; i++) {
		int n = receiver_row(&table->slots[i], clock_hz, now_ns, buf + used, len - used);

		/* A row that does not fit whole is not shown at all. */
		if (n < 0 || (size_t)n >= len - used) {
			buf[used] = '\0';
			break;
		}
		used += (size_t)n;
	}
	return used;
}
