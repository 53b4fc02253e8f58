/* The rtp receiver's state (jitter.c) driven with hand-made packets and a
 * made-up clock: what is played and in which order, the reorder buffer's
 * bounds in packets and in time, duplicates, late packets, sequence wrap,
 * RFC 3550 A.1 probation and restarts, A.3 loss, A.8 jitter, a change of
 * sender, and the RR it writes (LSR/DLSR from an SR). */
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/rtp/jitter.h"
#include "protocols/rtp/packet.h"

#define MS 1000000ull

/* What was played: the first byte of each payload, in order. */
struct played {
	uint8_t first[4096];
	size_t n;
};

static void on_play(void *arg, const uint8_t *payload, size_t len)
{
	struct played *p = arg;

	cr_assert(len >= 1 && p->n < sizeof(p->first));
	p->first[p->n++] = payload[0];
}

static struct played played;
static struct rtp_jitter *jb;
static struct sockaddr_in from = { .sin_family = AF_INET, .sin_port = 0x1234 };

static void start(unsigned packets, uint64_t hold_ns)
{
	struct rtp_jitter_limits limits = { .packets = packets, .hold_ns = hold_ns, .senders = 4, .switch_ns = 500 * MS };

	memset(&played, 0, sizeof(played));
	from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	from.sin_port = htons(4000);
	jb = rtp_jitter_new(&limits, on_play, &played);
	cr_assert_not_null(jb);
}

static void stop(void)
{
	rtp_jitter_free(jb);
	jb = NULL;
}

/* One packet of ssrc whose payload is the byte `mark` (a 1-byte payload). */
static void send_at(uint32_t ssrc, uint16_t seq, uint32_t ts, uint8_t mark, uint64_t now)
{
	uint8_t pkt[RTP_HEADER_SIZE + 1];

	rtp_write_header(pkt, false, 33, seq, ts, ssrc);
	pkt[RTP_HEADER_SIZE] = mark;
	rtp_jitter_input(jb, pkt, sizeof(pkt), (struct sockaddr *)&from, sizeof(from), now);
}

static void send_seq(uint16_t seq, uint64_t now)
{
	send_at(0xA, seq, seq * 90u, (uint8_t)seq, now);
}

static struct rtp_sender_stats sender_stats(uint32_t ssrc)
{
	struct rtp_sender_stats s;

	for (size_t i = 0; rtp_jitter_sender(jb, i, &s); i++)
		if (s.ssrc == ssrc)
			return s;
	cr_assert_fail("no sender %08x", ssrc);
	return s;
}

static void assert_played(const uint8_t *expected, size_t n)
{
	cr_assert_eq(played.n, n, "played %zu, expected %zu", played.n, n);
	cr_assert_arr_eq(played.first, expected, n);
}

TestSuite(jitter, .fini = stop);

Test(jitter, in_order_packets_play_at_once_from_the_first)
{
	start(8, 50 * MS);
	for (uint16_t s = 10; s < 15; s++)
		send_seq(s, s * MS);
	assert_played((uint8_t[]){ 10, 11, 12, 13, 14 }, 5);
	cr_assert_eq(sender_stats(0xA).received, 5);
	cr_assert_eq(sender_stats(0xA).lost, 0);
	cr_assert_eq(rtp_jitter_due(jb), 0);
}

Test(jitter, a_reordered_packet_is_put_back_in_place)
{
	start(8, 50 * MS);
	send_seq(1, 0);
	send_seq(2, 0);
	send_seq(4, 0);
	send_seq(3, 0);
	send_seq(5, 0);
	assert_played((uint8_t[]){ 1, 2, 3, 4, 5 }, 5);
	cr_assert_eq(sender_stats(0xA).reordered, 1);
	cr_assert_eq(sender_stats(0xA).skipped, 0);
}

Test(jitter, a_gap_holds_what_follows_for_the_hold_time_then_skips)
{
	start(8, 50 * MS);
	send_seq(1, 0);
	send_seq(2, 0);
	send_seq(4, 10 * MS);
	send_seq(5, 20 * MS);
	assert_played((uint8_t[]){ 1, 2 }, 2);
	cr_assert_eq(rtp_jitter_due(jb), 60 * MS, "the oldest held + hold");
	rtp_jitter_expire(jb, 59 * MS);
	cr_assert_eq(played.n, 2);
	rtp_jitter_expire(jb, 60 * MS);
	assert_played((uint8_t[]){ 1, 2, 4, 5 }, 4);
	cr_assert_eq(sender_stats(0xA).skipped, 1);
	cr_assert_eq(sender_stats(0xA).lost, 1);
	/* 3 after its place went: late, not played. */
	send_seq(3, 70 * MS);
	cr_assert_eq(played.n, 4);
	cr_assert_eq(sender_stats(0xA).late, 1);
	cr_assert_eq(sender_stats(0xA).lost, 0, "late is received (RFC 3550 A.3)");
}

Test(jitter, the_window_in_packets_bounds_what_is_held)
{
	start(4, 10000 * MS);
	send_seq(1, 0);
	send_seq(2, 0);
	for (uint16_t s = 4; s <= 6; s++)
		send_seq(s, 0);
	cr_assert_eq(played.n, 2, "4, 5, 6 wait for 3");
	send_seq(7, 0);		/* 7 >= 3 + 4: 3 is given up */
	assert_played((uint8_t[]){ 1, 2, 4, 5, 6, 7 }, 6);
	cr_assert_eq(sender_stats(0xA).skipped, 1);
}

Test(jitter, duplicates_held_or_played_are_dropped_and_counted)
{
	start(8, 50 * MS);
	send_seq(1, 0);
	send_seq(2, 0);
	send_seq(2, 0);		/* played */
	send_seq(4, 0);
	send_seq(4, 0);		/* held */
	send_seq(3, 0);
	assert_played((uint8_t[]){ 1, 2, 3, 4 }, 4);
	cr_assert_eq(sender_stats(0xA).duplicates, 2);
	cr_assert_eq(sender_stats(0xA).received, 4);
	cr_assert_eq(sender_stats(0xA).lost, 0);
}

Test(jitter, the_sequence_wraps_without_a_gap)
{
	start(8, 50 * MS);
	send_seq(65534, 0);
	send_seq(65535, 0);
	send_seq(1, 0);
	send_seq(0, 0);
	send_seq(2, 0);
	assert_played((uint8_t[]){ 254, 255, 0, 1, 2 }, 5);
	cr_assert_eq(sender_stats(0xA).lost, 0);
}

Test(jitter, probation_keeps_the_first_packet_and_a_lone_one_never_plays)
{
	start(8, 50 * MS);
	send_at(0xB, 100, 0, 'x', 0);
	cr_assert_eq(played.n, 0, "one packet is not yet a sender (A.1)");
	send_at(0xB, 101, 90, 'y', 0);
	assert_played((uint8_t[]){ 'x', 'y' }, 2);
	cr_assert(sender_stats(0xB).valid);
	cr_assert_eq(sender_stats(0xB).received, 2);
	/* A random SSRC once: counted nowhere as played. */
	send_at(0xC, 7, 0, 'z', 0);
	cr_assert_eq(played.n, 2);
	cr_assert_not(sender_stats(0xC).valid);
}

Test(jitter, a_jump_is_a_restart_only_when_confirmed)
{
	start(8, 50 * MS);
	send_seq(1, 0);
	send_seq(2, 0);
	send_seq(20000, 0);	/* one: dropped (A.1 bad_seq) */
	cr_assert_eq(played.n, 2);
	send_seq(3, 0);
	send_seq(30000, 0);
	send_seq(30001, 0);	/* two in a row: the sender restarted */
	send_seq(30002, 0);
	assert_played((uint8_t[]){ 1, 2, 3, 30001 & 0xff, 30002 & 0xff }, 5);
	cr_assert_eq(sender_stats(0xA).restarts, 1);
	cr_assert_eq(rtp_jitter_counters(jb)->probation, 2);
}

Test(jitter, malformed_packets_are_counted_by_kind)
{
	uint8_t pkt[RTP_HEADER_SIZE + 4];

	start(8, 50 * MS);
	rtp_write_header(pkt, false, 33, 1, 0, 0xA);
	rtp_jitter_input(jb, pkt, 5, NULL, 0, 0);
	pkt[0] = 0x40;
	rtp_jitter_input(jb, pkt, sizeof(pkt), NULL, 0, 0);
	pkt[0] = 0xA0;		/* padding */
	pkt[sizeof(pkt) - 1] = 5;
	rtp_jitter_input(jb, pkt, sizeof(pkt), NULL, 0, 0);
	cr_assert_eq(rtp_jitter_counters(jb)->malformed, 3);
	cr_assert_eq(rtp_jitter_counters(jb)->short_packets, 1);
	cr_assert_eq(rtp_jitter_counters(jb)->bad_version, 1);
	cr_assert_eq(rtp_jitter_counters(jb)->bad_padding, 1);
	cr_assert_eq(played.n, 0);
	cr_assert_not(rtp_jitter_sender(jb, 0, &(struct rtp_sender_stats){ 0 }), "no sender made of them");
	/* Once 0xA is known, its malformed packets count for it too. */
	send_seq(1, 0);
	send_seq(2, 0);
	rtp_jitter_input(jb, pkt, sizeof(pkt), NULL, 0, 0);
	cr_assert_eq(sender_stats(0xA).malformed, 1);
	cr_assert_eq(rtp_jitter_counters(jb)->malformed, 4);
}

Test(jitter, a_new_sender_plays_once_the_old_one_is_quiet)
{
	uint32_t ssrc;

	start(8, 50 * MS);
	send_at(0xA, 1, 0, 'a', 0);
	send_at(0xA, 2, 0, 'b', 10 * MS);
	send_at(0xB, 50, 0, 'X', 20 * MS);
	send_at(0xB, 51, 0, 'Y', 30 * MS);
	cr_assert(rtp_jitter_playing(jb, &ssrc) && ssrc == 0xA);
	send_at(0xB, 52, 0, 'c', 509 * MS);
	cr_assert_eq(played.n, 2, "A quiet for 499 ms only");
	send_at(0xB, 53, 0, 'd', 510 * MS);
	assert_played((uint8_t[]){ 'a', 'b', 'd' }, 3);
	cr_assert(rtp_jitter_playing(jb, &ssrc) && ssrc == 0xB);
	cr_assert_eq(rtp_jitter_counters(jb)->switches, 2);
	cr_assert_eq(rtp_jitter_counters(jb)->not_played, 3);
	cr_assert_not(sender_stats(0xA).playing);
}

Test(jitter, interarrival_jitter_is_zero_on_time_and_grows_with_variation)
{
	start(8, 50 * MS);
	/* 90 kHz: 20 ms is 1800 ticks. */
	for (uint16_t s = 0; s < 50; s++)
		send_at(0xA, s, s * 1800u, 0, 1000 * MS + s * 20 * MS);
	cr_assert_float_eq(sender_stats(0xA).jitter_ms, 0.0, 0.02);
	for (uint16_t s = 50; s < 400; s++)
		send_at(0xA, s, s * 1800u, 0, 1000 * MS + s * 20 * MS + (s % 2) * 4 * MS);
	/* |D| = 4 ms every packet: J tends to 4 ms. */
	cr_assert_float_eq(sender_stats(0xA).jitter_ms, 4.0, 0.1);
}

static const uint8_t sr_compound[] = {
	0x80, 200, 0, 6, 0, 0, 0, 0xA, 0xE1, 0x23, 0x45, 0x67, 0x89, 0xAB, 0xCD, 0xEF,
	0, 0, 0x03, 0xE8, 0, 0, 0, 10, 0, 0, 0x33, 0x68,
	0x81, 202, 0, 2, 0, 0, 0, 0xA, 1, 1, 'x', 0,
};

Test(jitter, reports_a3_loss_lsr_dlsr_and_where_to_send)
{
	struct rtcp_report r[4];
	struct sockaddr_storage to[4];
	socklen_t to_len[4];
	struct sockaddr_in sr_from = { .sin_family = AF_INET, .sin_port = htons(6001) };

	start(8, 50 * MS);
	for (uint16_t s = 0; s < 10; s++)
		if (s != 4 && s != 7)
			send_seq(s, s * MS);
	rtp_jitter_expire(jb, 1000 * MS);
	cr_assert_eq(rtp_jitter_reports(jb, 1000 * MS, r, to, to_len, 4), 1);
	cr_assert_eq(r[0].source, 0xA);
	cr_assert_eq(r[0].cumulative_lost, 2);
	cr_assert_eq(r[0].fraction_lost, 2 * 256 / 10);
	cr_assert_eq(r[0].highest_sequence, 9);
	cr_assert_eq(r[0].last_sr, 0);
	cr_assert_eq(ntohs(((struct sockaddr_in *)&to[0])->sin_port), 4001, "RTP source port + 1");
	cr_assert_eq(rtp_jitter_reports(jb, 1000 * MS, r, to, to_len, 4), 0, "nothing heard since");

	sr_from.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	rtp_jitter_rtcp(jb, sr_compound, sizeof(sr_compound), (struct sockaddr *)&sr_from, sizeof(sr_from),
			2000 * MS);
	for (uint16_t s = 10; s < 20; s++)
		send_seq(s, 2000 * MS);
	cr_assert_eq(rtp_jitter_reports(jb, 2500 * MS, r, to, to_len, 4), 1);
	cr_assert_eq(r[0].fraction_lost, 0, "none lost since the last report");
	cr_assert_eq(r[0].cumulative_lost, 2);
	cr_assert_eq(r[0].last_sr, 0x456789AB);
	cr_assert_eq(r[0].delay_since_last_sr, 32768, "half a second in 1/65536 s");
	cr_assert_eq(ntohs(((struct sockaddr_in *)&to[0])->sin_port), 6001, "where its SRs come from");
}

Test(rtcp_rr, written_rr_is_rr_then_sdes_with_the_cname)
{
	uint8_t out[256];
	struct rtcp_report block = { .source = 0x11223344 };
	size_t len = rtcp_write_rr(out, sizeof(out), 0xCAFE, &block, 1, "rx@host");
	struct rtcp_sender_info info;

	cr_assert_eq(len, 32 + 20);
	cr_assert_eq(out[0], 0x81, "version 2, one block");
	cr_assert_eq(out[1], 201);
	cr_assert_eq(out[3], 7, "32 bytes: 8 words - 1");
	cr_assert_eq(out[33], 202);
	cr_assert_eq(out[40], 1, "CNAME item");
	cr_assert_eq(out[41], 7);
	cr_assert(memcmp(out + 42, "rx@host", 7) == 0);
	cr_assert_eq(rtcp_parse(out, len, NULL, NULL), 2);
	cr_assert_not(rtcp_find_sr(out, len, &info), "an RR has no sender info");
	cr_assert_eq(rtcp_write_rr(out, 40, 0xCAFE, &block, 1, "rx@host"), 0, "too small");
	cr_assert_eq(rtcp_write_rr(out, sizeof(out), 0xCAFE, &block, 1, ""), 0, "no CNAME");
	cr_assert_eq(rtcp_write_rr(out, sizeof(out), 0xCAFE, &block, 32, "x"), 0, "31 blocks at most");
}

static void copy_report(void *arg, const struct rtcp_report *r)
{
	*(struct rtcp_report *)arg = *r;
}

Test(rtcp_rr, every_field_survives_the_wire)
{
	uint8_t out[256];
	struct rtcp_report block = {
		.source = 0x11223344, .fraction_lost = 25, .cumulative_lost = -3, .highest_sequence = 70000,
		.jitter = 123, .last_sr = 0xdeadbeef, .delay_since_last_sr = 65536,
	};
	struct rtcp_report got = { 0 };
	size_t len = rtcp_write_rr(out, sizeof(out), 0xCAFE, &block, 1, "rx@host");

	cr_assert_eq(rtcp_parse(out, len, copy_report, &got), 2);
	cr_assert_eq(got.reporter, 0xCAFE);
	cr_assert_eq(got.source, block.source);
	cr_assert_eq(got.fraction_lost, 25);
	cr_assert_eq(got.cumulative_lost, -3);
	cr_assert_eq(got.highest_sequence, 70000);
	cr_assert_eq(got.jitter, 123);
	cr_assert_eq(got.last_sr, 0xdeadbeef);
	cr_assert_eq(got.delay_since_last_sr, 65536);
}

Test(rtcp_rr, find_sr_reads_the_sender_info_and_refuses_malformed)
{
	struct rtcp_sender_info info;

	cr_assert(rtcp_find_sr(sr_compound, sizeof(sr_compound), &info));
	cr_assert_eq(info.ssrc, 0xA);
	cr_assert_eq(info.ntp, 0xE123456789ABCDEFull);
	cr_assert_eq(info.rtp_timestamp, 1000);
	cr_assert_eq(info.packets, 10);
	cr_assert_eq(info.octets, 13160);
	cr_assert_eq(rtcp_ntp_middle(info.ntp), 0x456789AB);
	/* Cut anywhere but after the SR (a compound of its own), it is not
	 * RTCP and nothing is read from it. */
	for (size_t cut = 0; cut < sizeof(sr_compound); cut++)
		cr_assert(rtcp_find_sr(sr_compound, cut, &info) == (cut == 28), "cut at %zu", cut);
}
