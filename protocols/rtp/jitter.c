/* The receiver's state machine (RFC 3550 appendix A). Sequence numbers are
 * extended to 64 bits signed, so the reorder buffer and the loss count
 * never wrap; the ring slot of extended sequence s is s mod packets. */
#include "protocols/rtp/jitter.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#define RTP_SEQ_MOD (1 << 16)
#define MAX_DROPOUT 3000
#define MAX_MISORDER 100
#define MIN_SEQUENTIAL 2
#define NS_PER_SECOND 1000000000ull

enum slot_state { SLOT_EMPTY, SLOT_HELD, SLOT_PLAYED, SLOT_SKIPPED };

struct slot {
	int64_t seq;
	enum slot_state state;
	uint64_t arrival_ns;
	uint8_t *data;
	size_t len, cap;
};

struct sender {
	bool used;
	uint32_t ssrc;
	uint64_t heard_ns;
	bool heard_since_report;
	/* A.1 */
	uint16_t max_seq;
	int64_t cycles;
	int64_t base_seq;		/* extended: the first packet counted */
	uint32_t bad_seq;
	unsigned probation;
	int64_t highest;		/* extended, of any packet taken */
	/* A.3 */
	int64_t expected_prior;
	uint64_t received_prior;
	/* A.8, in timestamp units times 16 */
	uint32_t clock_hz;
	uint32_t transit;
	bool transit_set;
	uint32_t jitter16;
	/* The packet that began the probation: played too if it passes. */
	uint8_t *first;
	size_t first_len, first_cap;
	uint32_t first_timestamp;
	bool first_len_valid;		/* first holds a packet */
	/* RTCP */
	uint32_t last_sr;
	uint64_t last_sr_ns;
	struct sockaddr_storage rtp_from, rtcp_from;
	socklen_t rtp_from_len, rtcp_from_len;
	struct rtp_sender_stats stats;
};

struct rtp_jitter {
	struct rtp_jitter_limits limits;
	rtp_play_fn *play;
	void *arg;
	struct sender *senders;
	struct sender *playing;
	/* The reorder buffer of `playing`: next is the extended sequence to
	 * play; held counts the slots in SLOT_HELD. */
	struct slot *slots;
	int64_t next;
	unsigned held;
	struct rtp_input_counters counters;
};

static unsigned clamp_unsigned(unsigned v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

struct rtp_jitter *rtp_jitter_new(const struct rtp_jitter_limits *limits, rtp_play_fn *play, void *arg)
{
	struct rtp_jitter *jb = calloc(1, sizeof(*jb));

	if (jb == NULL)
		return NULL;
	jb->limits = *limits;
	jb->limits.packets = clamp_unsigned(limits->packets, 1, RTP_JITTER_MAX_PACKETS);
	jb->limits.senders = clamp_unsigned(limits->senders, 1, RTP_JITTER_MAX_SENDERS);
	jb->play = play;
	jb->arg = arg;
	jb->senders = calloc(jb->limits.senders, sizeof(*jb->senders));
	jb->slots = calloc(jb->limits.packets, sizeof(*jb->slots));
	if (jb->senders == NULL || jb->slots == NULL) {
		rtp_jitter_free(jb);
		return NULL;
	}
	return jb;
}

void rtp_jitter_free(struct rtp_jitter *jb)
{
	if (jb == NULL)
		return;
	for (unsigned i = 0; jb->slots != NULL && i < jb->limits.packets; i++)
		free(jb->slots[i].data);
	for (unsigned i = 0; jb->senders != NULL && i < jb->limits.senders; i++)
		free(jb->senders[i].first);
	free(jb->slots);
	free(jb->senders);
	free(jb);
}

static bool copy_into(uint8_t **buf, size_t *cap, const uint8_t *data, size_t len)
{
	if (len > *cap) {
		uint8_t *bigger = realloc(*buf, len);
		if (bigger == NULL)
			return false;
		*buf = bigger;
		*cap = len;
	}
	if (len > 0)
		memcpy(*buf, data, len);
	return true;
}

/* ---- the reorder buffer ---- */

/* seq may be below 0 (a first packet kept through probation at 65535). */
static struct slot *slot_of(const struct rtp_jitter *jb, int64_t seq)
{
	int64_t n = jb->limits.packets;

	return &jb->slots[(seq % n + n) % n];
}

/* The slot at next goes: played when held, else its sequence skipped. */
static void advance(struct rtp_jitter *jb)
{
	struct slot *s = slot_of(jb, jb->next);

	if (s->state == SLOT_HELD && s->seq == jb->next) {
		s->state = SLOT_PLAYED;
		jb->held--;
		jb->playing->stats.played++;
		jb->play(jb->arg, s->data, s->len);
	} else {
		s->seq = jb->next;
		s->state = SLOT_SKIPPED;
		jb->playing->stats.skipped++;
	}
	jb->next++;
}

static void play_in_order(struct rtp_jitter *jb)
{
	for (;;) {
		struct slot *s = slot_of(jb, jb->next);

		if (s->state != SLOT_HELD || s->seq != jb->next)
			return;
		advance(jb);
	}
}

void rtp_jitter_flush(struct rtp_jitter *jb)
{
	while (jb->held > 0)
		advance(jb);
}

/* Forgets the buffer (after a flush) and starts it at seq. */
static void buffer_restart(struct rtp_jitter *jb, int64_t seq)
{
	rtp_jitter_flush(jb);
	for (unsigned i = 0; i < jb->limits.packets; i++)
		jb->slots[i].state = SLOT_EMPTY;
	jb->next = seq;
}

enum put_result { PUT_DUPLICATE, PUT_LATE, PUT_HELD };

/* A packet before next: a copy of one played, or one whose place was
 * skipped (or is too old to tell). */
static enum put_result take_old(struct rtp_jitter *jb, int64_t seq)
{
	const struct slot *s = slot_of(jb, seq);

	if (s->seq == seq && s->state == SLOT_PLAYED) {
		jb->playing->stats.duplicates++;
		return PUT_DUPLICATE;
	}
	jb->playing->stats.late++;
	return PUT_LATE;
}

static enum put_result buffer_put(struct rtp_jitter *jb, int64_t seq, const uint8_t *payload, size_t len,
				  uint64_t now_ns)
{
	struct slot *s;

	if (seq < jb->next)
		return take_old(jb, seq);
	/* Past the window: what is in the way goes now, gaps and all. */
	while (seq >= jb->next + (int64_t)jb->limits.packets)
		advance(jb);
	s = slot_of(jb, seq);
	if (s->state == SLOT_HELD && s->seq == seq) {
		jb->playing->stats.duplicates++;
		return PUT_DUPLICATE;
	}
	if (!copy_into(&s->data, &s->cap, payload, len)) {
		s->seq = seq;		/* out of memory: as if lost */
		s->state = SLOT_SKIPPED;
		return PUT_LATE;
	}
	s->seq = seq;
	s->len = len;
	s->state = SLOT_HELD;
	s->arrival_ns = now_ns;
	jb->held++;
	play_in_order(jb);
	return PUT_HELD;
}

uint64_t rtp_jitter_due(const struct rtp_jitter *jb)
{
	uint64_t oldest = UINT64_MAX;

	if (jb->held == 0)
		return 0;
	for (unsigned i = 0; i < jb->limits.packets; i++)
		if (jb->slots[i].state == SLOT_HELD && jb->slots[i].arrival_ns < oldest)
			oldest = jb->slots[i].arrival_ns;
	return oldest + jb->limits.hold_ns;
}

void rtp_jitter_expire(struct rtp_jitter *jb, uint64_t now_ns)
{
	while (jb->held > 0 && rtp_jitter_due(jb) <= now_ns) {
		advance(jb);
		play_in_order(jb);
	}
}

/* ---- senders ---- */

/* RFC 3551's clock rates of the static payload types chassisd may see;
 * MPEG-TS, MPEG audio and video, and dynamic types run at 90 kHz. */
static uint32_t clock_of(uint8_t payload_type)
{
	switch (payload_type) {
	case 0: case 3: case 4: case 5: case 7: case 8: case 9: case 12: case 13: case 15: case 18:
		return 8000;
	case 6:
		return 16000;
	case 10: case 11:
		return 44100;
	case 16:
		return 11025;
	case 17:
		return 22050;
	default:
		return 90000;
	}
}

static struct sender *sender_find(struct rtp_jitter *jb, uint32_t ssrc)
{
	for (unsigned i = 0; i < jb->limits.senders; i++)
		if (jb->senders[i].used && jb->senders[i].ssrc == ssrc)
			return &jb->senders[i];
	return NULL;
}

/* A free entry, or the least recently heard that is not playing. */
static struct sender *sender_room(struct rtp_jitter *jb)
{
	struct sender *oldest = NULL;

	for (unsigned i = 0; i < jb->limits.senders; i++) {
		struct sender *s = &jb->senders[i];
		if (!s->used)
			return s;
		if (s != jb->playing && (oldest == NULL || s->heard_ns < oldest->heard_ns))
			oldest = s;
	}
	return oldest;
}

static struct sender *sender_new(struct rtp_jitter *jb, const struct rtp_header *h, uint64_t now_ns)
{
	struct sender *s = sender_room(jb);
	uint8_t *first;
	size_t first_cap;

	if (s == NULL)
		return NULL;
	first = s->first;
	first_cap = s->first_cap;
	memset(s, 0, sizeof(*s));
	s->first = first;
	s->first_cap = first_cap;
	s->used = true;
	s->ssrc = h->ssrc;
	s->heard_ns = now_ns;
	s->max_seq = (uint16_t)(h->sequence - 1);
	s->probation = MIN_SEQUENTIAL;
	s->bad_seq = RTP_SEQ_MOD + 1;
	s->clock_hz = clock_of(h->payload_type);
	s->stats.ssrc = h->ssrc;
	return s;
}

static void init_seq(struct sender *s, uint16_t seq)
{
	s->base_seq = seq;
	s->max_seq = seq;
	s->bad_seq = RTP_SEQ_MOD + 1;
	s->cycles = 0;
	s->highest = seq;
	s->stats.received = 0;
	s->received_prior = 0;
	s->expected_prior = 0;
}

static int64_t extended(const struct sender *s, uint16_t seq)
{
	return s->cycles + s->max_seq + (int16_t)(uint16_t)(seq - s->max_seq);
}

enum seq_verdict { SEQ_DROP, SEQ_TAKE, SEQ_VALIDATED, SEQ_RESTARTED };

/* RFC 3550 A.1 update_seq, with its verdicts told apart. */
static enum seq_verdict update_seq(struct sender *s, uint16_t seq)
{
	uint16_t udelta = (uint16_t)(seq - s->max_seq);

	if (s->probation) {
		if (seq == (uint16_t)(s->max_seq + 1)) {
			s->probation--;
			s->max_seq = seq;
			if (s->probation == 0) {
				init_seq(s, seq);
				return SEQ_VALIDATED;
			}
		} else {
			s->probation = MIN_SEQUENTIAL - 1;
			s->max_seq = seq;
		}
		return SEQ_DROP;
	}
	if (udelta < MAX_DROPOUT) {
		if (seq < s->max_seq)
			s->cycles += RTP_SEQ_MOD;
		s->max_seq = seq;
	} else if (udelta <= RTP_SEQ_MOD - MAX_MISORDER) {
		if (seq != s->bad_seq) {
			s->bad_seq = (uint16_t)(seq + 1);
			return SEQ_DROP;
		}
		/* Two in a row after a jump: the sender restarted. */
		init_seq(s, seq);
		s->stats.restarts++;
		return SEQ_RESTARTED;
	}
	return SEQ_TAKE;
}

/* A.8: the arrival time in the sender's clock, minus its timestamp. */
static void update_jitter(struct sender *s, uint32_t timestamp, uint64_t now_ns)
{
	uint32_t arrival = (uint32_t)((unsigned __int128)now_ns * s->clock_hz / NS_PER_SECOND);
	uint32_t transit = arrival - timestamp;
	int32_t d = (int32_t)(transit - s->transit);

	if (s->transit_set) {
		uint32_t ad = d < 0 ? (uint32_t)-(int64_t)d : (uint32_t)d;
		s->jitter16 += ad - ((s->jitter16 + 8) >> 4);
	}
	s->transit = transit;
	s->transit_set = true;
}

static void remember_first(struct sender *s, const struct rtp_header *h)
{
	if (copy_into(&s->first, &s->first_cap, h->payload, h->payload_len)) {
		s->first_len = h->payload_len;
		s->first_timestamp = h->timestamp;
	} else {
		s->first_len = SIZE_MAX;	/* none kept */
	}
}

/* A packet that (re)starts a probation is kept, to be played if the next
 * one follows it; the one it replaces is dropped, as is a packet after a
 * jump (A.1's bad_seq). */
static void on_probation(struct rtp_jitter *jb, struct sender *s, const struct rtp_header *h)
{
	if (s->probation != MIN_SEQUENTIAL - 1) {
		jb->counters.probation++;
		return;
	}
	if (s->first_len_valid)
		jb->counters.probation++;
	remember_first(s, h);
	s->first_len_valid = s->first_len != SIZE_MAX;
}

/* The sender being played has gone quiet (or there is none): a newly
 * valid one takes over, the old one's held packets played first. */
static bool may_play(const struct rtp_jitter *jb, const struct sender *s, uint64_t now_ns)
{
	if (jb->playing == s)
		return true;
	return jb->playing == NULL || now_ns - jb->playing->heard_ns >= jb->limits.switch_ns;
}

static void start_playing(struct rtp_jitter *jb, struct sender *s, int64_t first_seq)
{
	if (jb->playing != NULL)
		jb->playing->stats.playing = false;
	buffer_restart(jb, first_seq);
	if (jb->playing != s)
		jb->counters.switches++;
	jb->playing = s;
	s->stats.playing = true;
}

/* Probation passed with seq: the packet before it is counted and played
 * too, when it was kept. */
static void validated(struct rtp_jitter *jb, struct sender *s, uint64_t now_ns)
{
	bool have_first = s->first_len_valid;

	s->stats.valid = true;
	s->first_len_valid = false;
	if (have_first) {
		s->base_seq--;
		s->stats.received++;
	}
	if (!may_play(jb, s, now_ns)) {
		jb->counters.not_played += have_first;
		return;
	}
	start_playing(jb, s, s->base_seq);
	if (have_first)
		buffer_put(jb, s->base_seq, s->first, s->first_len, now_ns);
}

static void take(struct rtp_jitter *jb, struct sender *s, const struct rtp_header *h, enum seq_verdict v,
		 uint64_t now_ns)
{
	int64_t seq = extended(s, h->sequence);
	bool reordered = seq < s->highest;
	enum put_result put;

	if (v == SEQ_VALIDATED)
		validated(jb, s, now_ns);
	else if (v == SEQ_RESTARTED && jb->playing == s)
		buffer_restart(jb, seq);
	else if (jb->playing != s && may_play(jb, s, now_ns))
		start_playing(jb, s, seq);
	if (seq > s->highest)
		s->highest = seq;
	if (jb->playing != s) {
		s->stats.received++;
		jb->counters.not_played++;
		update_jitter(s, h->timestamp, now_ns);
		return;
	}
	put = buffer_put(jb, seq, h->payload, h->payload_len, now_ns);
	if (put == PUT_DUPLICATE)
		return;		/* neither received nor timed */
	s->stats.received++;
	if (reordered && put == PUT_HELD)
		s->stats.reordered++;
	update_jitter(s, h->timestamp, now_ns);
}

/* Counted for the listener, and for the sender too when its fixed header
 * is readable and names one already known (a bad CSRC count, extension
 * length or padding): a random SSRC makes no new sender. */
static void count_malformed(struct rtp_jitter *jb, const uint8_t *pkt, size_t len, int rc)
{
	if (len >= RTP_HEADER_SIZE && pkt[0] >> 6 == RTP_VERSION) {
		uint32_t ssrc = (uint32_t)pkt[8] << 24 | (uint32_t)pkt[9] << 16 | (uint32_t)pkt[10] << 8 | pkt[11];
		struct sender *s = sender_find(jb, ssrc);
		if (s != NULL)
			s->stats.malformed++;
	}
	jb->counters.malformed++;
	if (rc == RTP_SHORT)
		jb->counters.short_packets++;
	else if (rc == RTP_BAD_VERSION)
		jb->counters.bad_version++;
	else
		jb->counters.bad_padding++;
}

static void note_source(struct sender *s, const struct sockaddr *from, socklen_t from_len)
{
	if (from == NULL || from_len > sizeof(s->rtp_from))
		return;
	memcpy(&s->rtp_from, from, from_len);
	s->rtp_from_len = from_len;
}

void rtp_jitter_input(struct rtp_jitter *jb, const uint8_t *pkt, size_t len, const struct sockaddr *from,
		      socklen_t from_len, uint64_t now_ns)
{
	struct rtp_header h;
	struct sender *s;
	enum seq_verdict v;
	int rc = rtp_parse(pkt, len, &h);

	jb->counters.packets++;
	if (rc != RTP_OK) {
		count_malformed(jb, pkt, len, rc);
		return;
	}
	s = sender_find(jb, h.ssrc);
	if (s == NULL && (s = sender_new(jb, &h, now_ns)) == NULL)
		return;
	s->heard_ns = now_ns;
	s->heard_since_report = true;
	note_source(s, from, from_len);
	v = update_seq(s, h.sequence);
	if (v == SEQ_DROP) {
		on_probation(jb, s, &h);
		return;
	}
	take(jb, s, &h, v, now_ns);
}

/* ---- RTCP ---- */

void rtp_jitter_rtcp(struct rtp_jitter *jb, const uint8_t *pkt, size_t len, const struct sockaddr *from,
		     socklen_t from_len, uint64_t now_ns)
{
	struct rtcp_sender_info info;
	struct sender *s;

	if (!rtcp_find_sr(pkt, len, &info) || (s = sender_find(jb, info.ssrc)) == NULL)
		return;
	s->last_sr = rtcp_ntp_middle(info.ntp);
	s->last_sr_ns = now_ns;
	if (from != NULL && from_len <= sizeof(s->rtcp_from)) {
		memcpy(&s->rtcp_from, from, from_len);
		s->rtcp_from_len = from_len;
	}
}

static int64_t expected(const struct sender *s)
{
	return s->cycles + s->max_seq - s->base_seq + 1;
}

static int64_t lost(const struct sender *s)
{
	return expected(s) - (int64_t)s->stats.received;
}

/* A.3: the fraction lost since the last report, in 1/256. */
static uint8_t fraction_lost(struct sender *s)
{
	int64_t expected_interval = expected(s) - s->expected_prior;
	int64_t received_interval = (int64_t)(s->stats.received - s->received_prior);
	int64_t lost_interval = expected_interval - received_interval;

	s->expected_prior = expected(s);
	s->received_prior = s->stats.received;
	if (expected_interval <= 0 || lost_interval <= 0)
		return 0;
	return (uint8_t)((lost_interval << 8) / expected_interval > 255 ? 255 : (lost_interval << 8) / expected_interval);
}

static void report_block(struct sender *s, uint64_t now_ns, struct rtcp_report *r)
{
	int64_t cumulative = lost(s);

	memset(r, 0, sizeof(*r));
	r->source = s->ssrc;
	r->fraction_lost = fraction_lost(s);
	r->cumulative_lost = (int32_t)(cumulative > 0x7fffff ? 0x7fffff : cumulative < -0x800000 ? -0x800000 : cumulative);
	r->highest_sequence = (uint32_t)(s->cycles + s->max_seq);
	r->jitter = s->jitter16 >> 4;
	if (s->last_sr_ns != 0) {
		r->last_sr = s->last_sr;
		r->delay_since_last_sr = (uint32_t)((now_ns - s->last_sr_ns) * 65536 / NS_PER_SECOND);
	}
}

/* Its SRs' source, else RTP's source port + 1 (RFC 3550 11). */
static void rtcp_destination(const struct sender *s, struct sockaddr_storage *to, socklen_t *to_len)
{
	if (s->rtcp_from_len > 0) {
		memcpy(to, &s->rtcp_from, s->rtcp_from_len);
		*to_len = s->rtcp_from_len;
		return;
	}
	memcpy(to, &s->rtp_from, s->rtp_from_len);
	*to_len = s->rtp_from_len;
	if (to->ss_family == AF_INET)
		((struct sockaddr_in *)to)->sin_port = htons((uint16_t)(ntohs(((struct sockaddr_in *)to)->sin_port) + 1));
	else if (to->ss_family == AF_INET6)
		((struct sockaddr_in6 *)to)->sin6_port =
			htons((uint16_t)(ntohs(((struct sockaddr_in6 *)to)->sin6_port) + 1));
}

size_t rtp_jitter_reports(struct rtp_jitter *jb, uint64_t now_ns, struct rtcp_report *blocks,
			  struct sockaddr_storage *to, socklen_t *to_len, size_t cap)
{
	size_t n = 0;

	for (unsigned i = 0; i < jb->limits.senders && n < cap; i++) {
		struct sender *s = &jb->senders[i];
		if (!s->used || !s->stats.valid || !s->heard_since_report || s->rtp_from_len == 0)
			continue;
		s->heard_since_report = false;
		report_block(s, now_ns, &blocks[n]);
		rtcp_destination(s, &to[n], &to_len[n]);
		n++;
	}
	return n;
}

/* ---- status ---- */

bool rtp_jitter_playing(const struct rtp_jitter *jb, uint32_t *ssrc)
{
	if (jb->playing == NULL)
		return false;
	*ssrc = jb->playing->ssrc;
	return true;
}

const struct rtp_input_counters *rtp_jitter_counters(const struct rtp_jitter *jb)
{
	return &jb->counters;
}

bool rtp_jitter_sender(const struct rtp_jitter *jb, size_t i, struct rtp_sender_stats *stats)
{
	size_t seen = 0;

	for (unsigned k = 0; k < jb->limits.senders; k++) {
		const struct sender *s = &jb->senders[k];
		if (!s->used || seen++ != i)
			continue;
		*stats = s->stats;
		stats->lost = s->stats.valid ? lost(s) : 0;
		stats->jitter_ms = s->clock_hz ? (double)(s->jitter16 >> 4) * 1000.0 / s->clock_hz : 0;
		return true;
	}
	return false;
}
