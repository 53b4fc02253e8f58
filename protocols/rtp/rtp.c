/* rtp: an RFC 3550 sender of MPEG-TS (RFC 2250: payload type 33, seven
 * 188-byte TS packets per RTP packet, a 90 kHz timestamp), paced by the
 * stream's own PCRs the way multicat and GStreamer's tsparse do: each RTP
 * packet leaves when its first TS byte is due, by linear interpolation
 * between the PCRs around it. RTCP sender reports and SDES go to port+1,
 * BYE when the stream stops; an SDP file describes the session.
 *
 * Kamaelia's RTPFramer took its SSRC from the caller, stamped wall-clock
 * time, sent no RTCP and paced nothing but the file's read rate. */
#include <arpa/inet.h>
#include <confuse.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/log.h"
#include "daemon/pacer.h"
#include "daemon/protocol.h"
#include "protocols/rtp/audio.h"
#include "protocols/rtp/packet.h"
#include "protocols/rtp/receive.h"
#include "protocols/rtp/receivers.h"
#include "protocols/rtp/rtcp_link.h"
#include "protocols/rtp/ts.h"
#include "protocols/support/outlet.h"
#include "sources/source.h"

#define RTP_PT_MP2T 33
#define RTP_PT_PCMU 0
#define RTP_PT_PCMA 8
#define RTP_PT_MPA 14
#define RTP_PT_DYNAMIC_MIN 96
#define RTP_PT_L16_DEFAULT 97
#define RTP_CLOCK_HZ 90000ull
#define AUDIO_PTIME_DEFAULT 20
#define RTP_TS_PER_PACKET 7
#define RTP_PAYLOAD_MAX (RTP_TS_PER_PACKET * TS_PACKET_SIZE)
/* TS bytes looked ahead for the next PCR (about 2 s at 2 Mbit/s; PCRs
 * come at least every 100 ms). */
#define RTP_LOOKAHEAD (512 * 1024)
/* The buffer holds twice that: bytes sent are consumed by moving the
 * head, and what is left moves down only once the head has passed a
 * whole look-ahead, so each byte is moved at most once (not once per
 * RTP packet, which cost a memmove of the look-ahead per 1316 bytes). */
#define RTP_BUFFER (2 * RTP_LOOKAHEAD)
/* A PCR this far past the last is a discontinuity, not a step. */
#define RTP_PCR_MAX_GAP (TS_PCR_HZ / 2)
/* With no PCR in this many bytes the stream is paced by its rate. */
#define RTP_NO_PCR_BYTES (RTP_LOOKAHEAD / 2)
/* Later than this, the timeline moves on instead of catching up. */
#define RTP_LATE_NS (100ull * 1000 * 1000)
/* Garbage cut from the source before it pauses for a second. */
#define RTP_GARBAGE_MAX (4 * 1024 * 1024)
/* Discontinuities waiting in the look-ahead for their marker bit: a
 * short looping file wraps many times in one look-ahead. When they are
 * all taken the look-ahead stops filling until the first is sent. */
#define RTP_MARKERS 32
/* After a wakeup that only skipped bytes (MPA looking for frames). */
#define RTP_SKIP_PAUSE_NS (10ull * 1000 * 1000)
/* RTP packets one wakeup may send at most. */
#define RTP_BURST 8
/* RFC 3550 6.2: about every 5 s, randomised to 0.5-1.5 times that. */
#define RTCP_INTERVAL_MS 5000
#define RTCP_MAX 1500
/* Receivers kept at most, and how long one may be silent: RFC 3550 6.3.5
 * times a participant out after five RTCP intervals. */
#define RTP_RECEIVERS_DEFAULT 64
#define RTP_RECEIVERS_MAX 4096
#define RTP_RECEIVER_TIMEOUT_S (5 * RTCP_INTERVAL_MS / 1000)

enum rtp_pace { RTP_PACE_PCR, RTP_PACE_RATE };

struct rtp_settings {
	bool audio;			/* else MPEG-TS */
	struct audio_config audio_config;
	unsigned payload_type;		/* an audio payload's */
	enum rtp_pace pace;
	bool rtcp;
	char *sdp;
	char *cname;
	struct rtp_receive_settings receive;	/* a listener's */
	unsigned rtcp_port;		/* where SRs leave from and RRs come to; 0: any */
	unsigned receivers;		/* the receiver table's size */
	unsigned receiver_timeout;	/* seconds */
};

struct rtp_stream {
	struct outlet *outlet;
	struct source *source;
	struct pacer *pacer;
	const struct unit_env *env;
	enum rtp_pace pace_by;
	bool rtcp_on;
	char *cname;
	char *sdp, *sdp_path;		/* the text, and the file it went to */
	/* The destinations, for an SDP made after start() (L16 from a WAV
	 * file waits for its header); env->stream is gone by then. */
	struct sdp_destinations {
		struct endpoint *destinations;
		size_t n_destinations;
		int ttl;
	} sdp_to;
	/* RFC 3550 5.1: random initial values and SSRC, kept while the
	 * instance runs (an unchanged stream keeps them across reloads). */
	uint32_t ssrc;
	uint16_t sequence;
	uint32_t timestamp_base;
	/* The TS bytes from the source not yet sent, from stream offset
	 * base, at ts + head; PCRs scanned up to offset scanned. */
	uint8_t *ts;
	size_t head, ts_len;
	uint64_t base, scanned;
	uint64_t cut;			/* bytes cut out as garbage: source offset = ours + cut */
	uint64_t garbage;		/* cut since the last packet sent */
	bool garbage_logged;
	bool synced;
	bool resyncing;		/* cut garbage; the next sync byte is not yet confirmed */
	/* Source offsets of the discontinuities ahead, oldest first: a ring. */
	uint64_t markers[RTP_MARKERS];
	unsigned marker_head, marker_count;
	struct ts_clock clock;
	unsigned pcr_pid;
	bool pcr_pid_known, by_rate_logged;
	uint64_t epoch_ns;		/* monotonic time of timeline 0 (moves on after a stall) */
	bool epoch_set;
	uint64_t clock_origin_ns;	/* of the 90 kHz timestamps: fixed, so a stall shows */
	uint64_t last_pcr_offset;	/* where a PCR of the PCR PID was last seen */
	bool no_rate_logged;
	struct pace pace;		/* pace = "rate", or no PCR */
	uint64_t rate;			/* bytes per second, from the stream */
	uint64_t late;
	/* RTCP */
	struct rtcp_link *rtcp;
	struct event *rtcp_timer;
	uint32_t packets, octets;
	uint32_t packets_at_sr;		/* packets when the last SR went */
	bool sr_sent;
	struct rtp_receivers receivers;
	uint64_t receiver_timeout_ns;
	uint64_t rtcp_malformed;	/* datagrams on the RTCP port that are not RTCP */
	uint64_t last_send_ns;
	/* Audio payloads: paced by the sample clock from epoch_ns. */
	bool audio;
	struct audio_reader audio_reader;
	uint8_t payload_type;
	uint64_t clock_hz;		/* of the RTP timestamps */
	uint64_t samples;		/* sent, per channel */
	bool audio_marker;		/* the next packet starts the file (again) */
	bool audio_failed_logged, sdp_published;
	uint8_t packet[RTP_HEADER_SIZE + AUDIO_PAYLOAD_MAX];
};

static uint32_t random32(void)
{
	uint32_t value = 0;

	if (getrandom(&value, sizeof(value), 0) != sizeof(value))
		value = (uint32_t)pacer_now_ns() ^ (uint32_t)getpid() << 16;
	return value;
}

static uint64_t wall_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * PACER_NS_PER_SECOND + (uint64_t)ts.tv_nsec;
}

/* The 90 kHz timestamp of a monotonic instant: the send schedule itself,
 * so it only ever goes forward, across file loops too. */
static uint32_t rtp_timestamp_at(const struct rtp_stream *st, uint64_t mono_ns)
{
	uint64_t since = mono_ns > st->clock_origin_ns ? mono_ns - st->clock_origin_ns : 0;

	return st->timestamp_base + (uint32_t)((unsigned __int128)since * st->clock_hz / PACER_NS_PER_SECOND);
}

/* ---- the TS buffer ---- */

/* Where the bytes not yet sent start. */
static uint8_t *rtp_bytes(const struct rtp_stream *st)
{
	return st->ts + st->head;
}

/* Once the head has passed a look-ahead, the rest moves to the start
 * of the buffer: room for a whole look-ahead behind it again. */
static void rtp_compact(struct rtp_stream *st)
{
	if (st->head < RTP_LOOKAHEAD)
		return;
	memmove(st->ts, st->ts + st->head, st->ts_len);
	st->head = 0;
}

static void rtp_marker_push(struct rtp_stream *st, uint64_t offset)
{
	st->markers[(st->marker_head + st->marker_count) % RTP_MARKERS] = offset;
	st->marker_count++;
}

/* True when a discontinuity falls before source offset `end`: each one
 * up to there is used up (several in one packet set one marker). */
static bool rtp_marker_take(struct rtp_stream *st, uint64_t end)
{
	bool marker = false;

	while (st->marker_count > 0 && st->markers[st->marker_head] < end) {
		st->marker_head = (st->marker_head + 1) % RTP_MARKERS;
		st->marker_count--;
		marker = true;
	}
	return marker;
}

/* Moves source bytes into the look-ahead, dropping garbage until sync. */
static void rtp_fill(struct rtp_stream *st)
{
	struct evbuffer *in = source_buffer(st->source);
	size_t room = RTP_LOOKAHEAD - st->ts_len;
	size_t n = evbuffer_get_length(in) < room ? evbuffer_get_length(in) : room;
	size_t skip;

	if (n == 0 || st->marker_count == RTP_MARKERS)
		return;
	rtp_compact(st);
	evbuffer_remove(in, rtp_bytes(st) + st->ts_len, n);
	st->ts_len += n;
	/* The source reads ahead of us: the break is at its own offset,
	 * which is ours (every byte it gave is counted in base + ts_len). */
	if (source_take_discontinuity(st->source))
		rtp_marker_push(st, source_discontinuity_offset(st->source));
	if (st->synced)
		return;
	skip = ts_resync(rtp_bytes(st), st->ts_len, 3);
	st->head += skip;
	st->ts_len -= skip;
	st->cut += skip;
	st->garbage += skip;
	st->scanned = st->base;
	st->synced = st->ts_len >= 3 * TS_PACKET_SIZE || (st->ts_len > 0 && source_ended(st->source));
}

/* Sync lost at `scanned` (a corrupt or cut packet): the bytes up to the
 * next place where packets line up again are cut out, so that what is
 * sent stays whole TS packets. Counted; a source of nothing but garbage
 * is noticed by rtp_tick. A place counts only once three sync bytes are
 * seen there: near the end of what has been read, one 0x47 in random
 * bytes would pass, so the scan waits for more (false) unless the source
 * has ended. */
static bool rtp_cut_garbage(struct rtp_stream *st)
{
	size_t at = (size_t)(st->scanned - st->base), rest = st->ts_len - at;
	uint8_t *bytes = rtp_bytes(st);
	size_t skip = ts_resync(bytes + at, rest, 3);
	bool confirmed = rest - skip >= 3 * TS_PACKET_SIZE || source_ended(st->source);

	memmove(bytes + at, bytes + at + skip, rest - skip);
	st->ts_len -= skip;
	st->cut += skip;
	st->garbage += skip;
	st->resyncing = !confirmed;
	return confirmed;
}

/* The first PID with a PCR is the PCR PID; another takes over when the
 * old one has had none for a while (files joined, a reconnect to another
 * service), as a discontinuity. */
static bool rtp_takes_pcr_pid(const struct rtp_stream *st, unsigned pid)
{
	return !st->pcr_pid_known || pid == st->pcr_pid || st->scanned - st->last_pcr_offset > RTP_NO_PCR_BYTES;
}

/* Feeds the clock the PCRs of the PCR PID, only as far as the head's time
 * needs: the clock keeps a bounded number of points, and a look-ahead
 * scanned whole would push out the ones the head is between. */
static void rtp_scan(struct rtp_stream *st)
{
	uint64_t head_time;

	while (st->scanned + TS_PACKET_SIZE <= st->base + st->ts_len) {
		const uint8_t *p = rtp_bytes(st) + (st->scanned - st->base);
		uint64_t pcr;
		unsigned pid;

		/* A point past the head packet's end: what it covers is
		 * scanned before it goes. */
		if (st->pcr_pid_known && ts_clock_time(&st->clock, st->base + RTP_PAYLOAD_MAX, false, &head_time))
			return;
		if (p[0] != TS_SYNC_BYTE || st->resyncing) {
			if (!rtp_cut_garbage(st))
				return;
			continue;
		}
		if (ts_packet_pcr(p, &pcr, &pid) && rtp_takes_pcr_pid(st, pid)) {
			bool changed = st->pcr_pid_known && pid != st->pcr_pid;

			st->pcr_pid = pid;
			st->pcr_pid_known = true;
			st->last_pcr_offset = st->scanned;
			ts_clock_pcr(&st->clock, st->scanned, pcr, changed || ts_packet_discontinuity(p));
		}
		st->scanned += TS_PACKET_SIZE;
	}
}

static void rtp_consume(struct rtp_stream *st, size_t n)
{
	st->head += n;
	st->ts_len -= n;
	st->base += n;
	if (st->scanned < st->base)
		st->scanned = st->base;		/* no PCR: rate pacing, or the end */
	ts_clock_forget(&st->clock, st->base);
}

/* ---- sending ---- */

/* Only scanned bytes go out: past `scanned` there may be garbage that a
 * resync has not yet cut. */
static size_t rtp_next_payload(const struct rtp_stream *st)
{
	size_t ready = st->scanned - st->base < st->ts_len ? (size_t)(st->scanned - st->base) : st->ts_len;
	size_t whole = ready / TS_PACKET_SIZE * TS_PACKET_SIZE;

	if (whole >= RTP_PAYLOAD_MAX)
		return RTP_PAYLOAD_MAX;
	/* Fewer than seven only at the end of a source (RFC 2250 allows it). */
	return source_ended(st->source) ? whole : 0;
}

static void rtp_send(struct rtp_stream *st, size_t payload, uint64_t due_ns)
{
	bool marker = rtp_marker_take(st, st->base + st->cut + payload);

	rtp_write_header(st->packet, marker, RTP_PT_MP2T, st->sequence++, rtp_timestamp_at(st, due_ns), st->ssrc);
	memcpy(st->packet + RTP_HEADER_SIZE, rtp_bytes(st), payload);
	outlet_emit(st->outlet, st->packet, RTP_HEADER_SIZE + payload);
	st->packets++;
	st->octets += (uint32_t)payload;
	st->garbage = 0;
	st->last_send_ns = due_ns;
	rtp_consume(st, payload);
}

/* When the packet at the head is due (monotonic ns), or false when the
 * stream must wait for more bytes to know. */
static bool rtp_due(struct rtp_stream *st, size_t payload, uint64_t now, uint64_t *due)
{
	uint64_t ticks;

	if (st->pace_by == RTP_PACE_RATE) {
		*due = pace_deadline(&st->pace, payload);
		return true;
	}
	/* With no next PCR in a full look-ahead (PCRs further apart than
	 * it holds) the last segment's rate carries on. */
	if (!ts_clock_time(&st->clock, st->base, source_ended(st->source) || st->ts_len == RTP_LOOKAHEAD, &ticks))
		return false;
	if (!st->epoch_set) {
		st->epoch_ns = now - (uint64_t)((unsigned __int128)ticks * PACER_NS_PER_SECOND / TS_PCR_HZ);
		st->epoch_set = true;
	}
	*due = st->epoch_ns + (uint64_t)((unsigned __int128)ticks * PACER_NS_PER_SECOND / TS_PCR_HZ);
	/* Far behind (a stalled source): move the timeline, don't burst. */
	if (*due + RTP_LATE_NS < now) {
		st->epoch_ns += now - *due;
		*due = now;
		st->late++;
	}
	return true;
}

/* A stream without PCRs in its first look-ahead is paced by its rate. */
static void rtp_check_pcr(struct rtp_stream *st)
{
	struct log_context ctx = { .stream = st->env->unit, .protocol = "rtp" };

	if (st->pace_by != RTP_PACE_PCR || st->pcr_pid_known ||
	    (st->scanned - st->base < RTP_NO_PCR_BYTES && !source_ended(st->source)))
		return;
	if (!st->by_rate_logged)
		log_write(st->rate ? LOG_WARNING : LOG_ERR, &ctx, "no PCR in the first %u KiB: %s",
			  RTP_NO_PCR_BYTES / 1024, st->rate ? "paced by the stream's rate" : "set a rate to send it");
	st->by_rate_logged = true;
	/* Without a rate it would go out as fast as it is read: a flood. */
	if (st->rate == 0)
		return;
	st->pace_by = RTP_PACE_RATE;
	pace_start(&st->pace, st->rate, (uint64_t)RTP_BURST * RTP_PAYLOAD_MAX, pacer_now_ns());
}

/* A source with no MPEG-TS in it would be read as fast as the disk
 * allows and all cut away: say so once and read on at a second's pace. */
static void rtp_garbage_pause(struct rtp_stream *st, uint64_t now)
{
	struct log_context ctx = { .stream = st->env->unit, .protocol = "rtp" };

	if (!st->garbage_logged)
		log_write(LOG_ERR, &ctx, "no MPEG-TS packets in %" PRIu64 " bytes of the source", st->garbage);
	st->garbage_logged = true;
	st->garbage = 0;
	pacer_at(st->pacer, now + PACER_NS_PER_SECOND);
}

/* ---- audio: paced by the sample clock ---- */

static void rtp_publish_sdp(struct rtp_stream *st);

/* When the next packet is due: its first sample's time from the epoch,
 * the instant the first packet went. */
static uint64_t rtp_audio_due(const struct rtp_stream *st)
{
	return st->epoch_ns +
	       (uint64_t)((unsigned __int128)st->samples * PACER_NS_PER_SECOND / st->audio_reader.rate);
}

/* Loop breaks the reader has reached: the file starts again (a WAV
 * header), and the next packet carries the marker bit. */
static void rtp_audio_breaks(struct rtp_stream *st)
{
	/* With the FIFO full the break stays with the source, which does
	 * not loop again before it is taken. */
	if (st->marker_count < RTP_MARKERS && source_take_discontinuity(st->source))
		rtp_marker_push(st, source_discontinuity_offset(st->source));
	while (st->marker_count > 0 && st->markers[st->marker_head] <= st->audio_reader.consumed) {
		st->marker_head = (st->marker_head + 1) % RTP_MARKERS;
		st->marker_count--;
		audio_reader_restart(&st->audio_reader);
		st->audio_marker = true;
	}
}

/* The bytes the reader may take before the next break. */
static uint64_t rtp_audio_limit(const struct rtp_stream *st)
{
	return st->marker_count > 0 ? st->markers[st->marker_head] - st->audio_reader.consumed : UINT64_MAX;
}

static void rtp_audio_send(struct rtp_stream *st, size_t len, uint32_t samples, uint64_t due)
{
	/* MPA's clock is 90 kHz whatever the sample rate (RFC 3551 6). */
	uint64_t ticks = st->audio_reader.config.payload == AUDIO_MPA
				 ? (uint64_t)((unsigned __int128)st->samples * RTP_CLOCK_HZ / st->audio_reader.rate)
				 : st->samples;

	rtp_write_header(st->packet, st->audio_marker, st->payload_type, st->sequence++,
			 st->timestamp_base + (uint32_t)ticks, st->ssrc);
	outlet_emit(st->outlet, st->packet, RTP_HEADER_SIZE + len);
	st->packets++;
	st->octets += (uint32_t)len;
	st->samples += samples;
	st->audio_marker = false;
	st->last_send_ns = due;
}

/* True when the next packet must wait until *due. Far behind (a stalled
 * source), the timeline moves on instead of bursting. */
static bool rtp_audio_wait(struct rtp_stream *st, uint64_t now, uint64_t *due)
{
	if (!st->epoch_set)
		return false;
	*due = rtp_audio_due(st);
	if (*due + RTP_LATE_NS < now) {
		st->epoch_ns += now - *due;
		st->clock_origin_ns = st->epoch_ns;
		*due = now;
		st->late++;
	}
	return *due > now;
}

static void rtp_audio_started(struct rtp_stream *st, uint64_t now)
{
	st->epoch_ns = st->clock_origin_ns = now;
	st->clock_hz = st->audio_reader.config.payload == AUDIO_MPA ? RTP_CLOCK_HZ : st->audio_reader.rate;
	st->epoch_set = true;
}

static void rtp_audio_check(struct rtp_stream *st)
{
	struct log_context ctx = { .stream = st->env->unit, .protocol = "rtp" };

	if (st->audio_reader.state == AUDIO_FAILED && !st->audio_failed_logged)
		log_write(LOG_ERR, &ctx, "stream %s: nothing more is sent: %s", st->env->unit, st->audio_reader.error);
	st->audio_failed_logged = st->audio_reader.state == AUDIO_FAILED;
	if (!st->sdp_published && st->audio_reader.known)
		rtp_publish_sdp(st);
}

static void rtp_audio_tick(struct rtp_stream *st, uint64_t now)
{
	struct evbuffer *in = source_buffer(st->source);
	unsigned sent = 0, turns = 0;
	uint64_t due = now;
	bool waiting = false;

	outlet_begin(st->outlet);
	while (sent < RTP_BURST && turns++ < 4 * RTP_BURST && outlet_can_take(st->outlet)) {
		uint64_t before = st->audio_reader.consumed;
		uint32_t samples = 0;
		size_t len = 0;

		rtp_audio_breaks(st);
		if ((waiting = rtp_audio_wait(st, now, &due)))
			break;
		if (!audio_reader_next(&st->audio_reader, in, source_ended(st->source), rtp_audio_limit(st),
				       st->packet + RTP_HEADER_SIZE, &len, &samples)) {
			if (st->audio_reader.consumed != before)
				continue;	/* a header or a trailer went: go on */
			break;
		}
		if (!st->epoch_set)
			rtp_audio_started(st, now);
		rtp_audio_send(st, len, samples, due);	/* the first: now */
		sent++;
	}
	outlet_end(st->outlet);
	rtp_audio_check(st);
	source_taken(st->source);
	if (!outlet_can_take(st->outlet))
		pacer_at(st->pacer, now + 1000 * 1000);
	else if (turns > 4 * RTP_BURST)
		pacer_at(st->pacer, now + RTP_SKIP_PAUSE_NS);	/* bytes to skip: on, but not flat out */
	else if (waiting || sent == RTP_BURST)
		pacer_at(st->pacer, due > now ? due : now);
}

static void rtp_tick(void *arg, uint64_t now)
{
	struct rtp_stream *st = arg;
	uint64_t due = 0;
	size_t payload = 0;
	unsigned sent = 0;

	st->source = outlet_source(st->outlet);
	if (st->source == NULL)
		return;
	if (st->audio) {
		rtp_audio_tick(st, now);
		return;
	}
	if (st->pace_by == RTP_PACE_RATE)
		pace_allowance(&st->pace, now);	/* forgives a debt past a burst */
	outlet_begin(st->outlet);
	for (;;) {
		rtp_fill(st);
		rtp_scan(st);
		rtp_check_pcr(st);
		payload = st->synced ? rtp_next_payload(st) : 0;
		if (payload == 0 || !outlet_can_take(st->outlet) || !rtp_due(st, payload, now, &due) ||
		    due > now || sent == RTP_BURST)
			break;
		if (st->pace_by == RTP_PACE_RATE)
			pace_sent(&st->pace, payload);
		rtp_send(st, payload, due);
		sent++;
	}
	outlet_end(st->outlet);
	if (st->garbage > RTP_GARBAGE_MAX) {
		rtp_garbage_pause(st, now);
		return;
	}
	source_taken(st->source);
	if (payload > 0 && !outlet_can_take(st->outlet))
		pacer_at(st->pacer, now + 1000 * 1000);
	else if (payload > 0 && (due > now || sent == RTP_BURST))
		pacer_at(st->pacer, due > now ? due : now);
	/* Otherwise: more bytes are needed, and the source's ready() says. */
}

static void rtp_on_source_ready(void *arg)
{
	struct rtp_stream *st = arg;

	if (!pacer_armed(st->pacer))
		rtp_tick(st, pacer_now_ns());
}

/* ---- RTCP ---- */

static void rtcp_send(struct rtp_stream *st, bool bye)
{
	uint8_t out[RTCP_MAX];
	uint64_t mono = pacer_now_ns();
	struct rtcp_sender_info info = {
		.ssrc = st->ssrc,
		.ntp = rtcp_ntp_from_unix_ns(wall_ns()),
		.rtp_timestamp = rtp_timestamp_at(st, mono),
		.packets = st->packets,
		.octets = st->octets,
	};
	size_t len = rtcp_write_sr(out, sizeof(out), &info, st->cname, bye);

	if (len == 0)
		return;
	rtcp_link_send(st->rtcp, out, len);
	st->packets_at_sr = st->packets;
	st->sr_sent = true;
}

static void rtcp_schedule(struct rtp_stream *st)
{
	unsigned ms = RTCP_INTERVAL_MS / 2 + random32() % RTCP_INTERVAL_MS;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	evtimer_add(st->rtcp_timer, &tv);
}

/* An SR only while sending (RFC 3550 6.4: a participant that sent
 * nothing since its last report is no sender): a stalled or ended source
 * makes no reports whose counts stand still. */
static void rtcp_on_timer(evutil_socket_t fd, short what, void *arg)
{
	struct rtp_stream *st = arg;
	bool sent_since = !st->sr_sent || st->packets != st->packets_at_sr;

	if ((st->epoch_set || st->pace_by == RTP_PACE_RATE) && st->packets > 0 && sent_since)
		rtcp_send(st, false);
	rtp_receivers_expire(&st->receivers, pacer_now_ns(), st->receiver_timeout_ns);
	rtcp_schedule(st);
	(void)fd;
	(void)what;
}

struct rtcp_arrival {
	struct rtp_stream *st;
	uint64_t ntp, mono;
};

static void rtcp_on_report(void *arg, const struct rtcp_report *report)
{
	const struct rtcp_arrival *at = arg;

	rtp_receivers_report(&at->st->receivers, report, at->st->ssrc, at->ntp, at->mono);
}

/* What comes to the RTCP port: receiver reports (and SRs of other
 * senders of a shared group, whose blocks about us count as well). What
 * does not parse is counted and dropped. */
static void rtcp_on_datagram(void *arg, const uint8_t *data, size_t len)
{
	struct rtp_stream *st = arg;
	struct rtcp_arrival at = { st, rtcp_ntp_from_unix_ns(wall_ns()), pacer_now_ns() };

	if (rtcp_parse(data, len, rtcp_on_report, &at) < 0)
		st->rtcp_malformed++;
}

/* ---- SDP (RFC 8866) ---- */

/* "IN IP4 239.255.1.1/1": a connection address, an IPv4 multicast one
 * with its TTL (RFC 8866 5.7). */
static void sdp_connection(struct evbuffer *out, const struct sockaddr *to, int ttl)
{
	char host[ADDR_TEXT_MAX];
	bool v6 = to->sa_family == AF_INET6;

	addr_format(to, false, host, sizeof(host));
	evbuffer_add_printf(out, "IN IP%c %s", v6 ? '6' : '4', host);
	if (addr_is_multicast(to) && !v6)
		evbuffer_add_printf(out, "/%d", ttl);
}

/* What the payload type stands for (RFC 3551 6; L16 with its rate and
 * channels, a dynamic type), and an audio packet's duration. */
static void sdp_rtpmap(struct evbuffer *out, const struct rtp_stream *st)
{
	const struct audio_reader *a = &st->audio_reader;

	if (!st->audio) {
		evbuffer_add_printf(out, "a=rtpmap:%d MP2T/90000\r\n", RTP_PT_MP2T);
		return;
	}
	if (a->config.payload == AUDIO_MPA) {
		evbuffer_add_printf(out, "a=rtpmap:%d MPA/90000\r\n", st->payload_type);
		return;
	}
	if (a->config.payload == AUDIO_L16)
		evbuffer_add_printf(out, "a=rtpmap:%d L16/%u/%u\r\n", st->payload_type, a->rate, a->channels);
	else
		evbuffer_add_printf(out, "a=rtpmap:%d %s/8000\r\n", st->payload_type,
				    a->config.payload == AUDIO_PCMU ? "PCMU" : "PCMA");
	evbuffer_add_printf(out, "a=ptime:%u\r\n", a->config.ptime_ms);
}

/* The session: one media section per destination. The first
 * destination is the session's connection line (ffmpeg reads an MPEG-TS
 * media section's own c= line wrongly, so the first has none), each
 * other media section has its own. Allocated whole, so no name or
 * address is cut short. NULL when out of memory. */
static char *sdp_text(const struct rtp_stream *st, const struct unit_env *env)
{
	const struct sdp_destinations *conf = &st->sdp_to;
	struct evbuffer *out = evbuffer_new();
	char *text = NULL;
	size_t len;

	if (out == NULL)
		return NULL;
	evbuffer_add_printf(out, "v=0\r\no=- %" PRIu32 " 1 ", st->ssrc);
	sdp_connection(out, (const struct sockaddr *)&conf->destinations[0].sa, conf->ttl);
	evbuffer_add_printf(out, "\r\ns=%s\r\nc=", env->unit);
	sdp_connection(out, (const struct sockaddr *)&conf->destinations[0].sa, conf->ttl);
	evbuffer_add_printf(out, "\r\nt=0 0\r\n");
	for (size_t i = 0; i < conf->n_destinations; i++) {
		const struct sockaddr *to = (const struct sockaddr *)&conf->destinations[i].sa;

		evbuffer_add_printf(out, "m=%s %u RTP/AVP %d\r\n", st->audio ? "audio" : "video", addr_port(to),
				    st->payload_type);
		if (i > 0) {
			evbuffer_add_printf(out, "c=");
			sdp_connection(out, to, conf->ttl);
			evbuffer_add_printf(out, "\r\n");
		}
		sdp_rtpmap(out, st);
	}
	len = evbuffer_get_length(out);
	text = malloc(len + 1);
	if (text != NULL) {
		evbuffer_remove(out, text, len);
		text[len] = '\0';
	}
	evbuffer_free(out);
	return text;
}

/* Written to a temporary name and renamed: a reader never sees half. */
static void sdp_write(const struct unit_env *env, const char *path, const char *text)
{
	struct log_context ctx = { .stream = env->unit, .protocol = "rtp" };
	char *tmp = NULL;
	FILE *f = NULL;

	if (asprintf(&tmp, "%s.tmp", path) < 0)
		tmp = NULL;
	if (tmp != NULL)
		f = fopen(tmp, "w");
	if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0 || rename(tmp, path) != 0) {
		log_write(LOG_WARNING, &ctx, "cannot write the SDP file %s: %s", path, strerror(errno));
		if (tmp != NULL)
			unlink(tmp);
	}
	free(tmp);
}

/* A stopped or removed stream takes its SDP file away, but only while
 * it is still the one it wrote: a changed stream's new instance has
 * written its own (another SSRC) before the old one stops. */
static void sdp_remove(const char *path, const char *text)
{
	size_t len = strlen(text);
	char *found = malloc(len + 2);
	FILE *f = fopen(path, "r");
	bool ours = false;

	if (found != NULL && f != NULL)
		ours = fread(found, 1, len + 1, f) == len && memcmp(found, text, len) == 0;
	if (f != NULL)
		fclose(f);
	free(found);
	if (ours)
		unlink(path);
}

static void rtp_publish_sdp(struct rtp_stream *st)
{
	const struct unit_env *env = st->env;

	st->sdp_published = true;
	st->sdp = sdp_text(st, env);
	if (st->sdp != NULL)
		chassis_publish(env->chassis, env->unit, "application/sdp", st->sdp, st);
	if (st->sdp != NULL && st->sdp_path != NULL)
		sdp_write(env, st->sdp_path, st->sdp);
}

/* ---- the module ---- */

static const struct outlet_hooks rtp_outlet_hooks = {
	.tick = rtp_tick,
	.ready = rtp_on_source_ready,
};

static void rtp_stream_free(struct rtp_stream *st)
{
	chassis_unpublish(st->env->chassis, st->env->unit, st);
	if (st->rtcp_timer != NULL)
		event_free(st->rtcp_timer);
	/* The data first (the simulator's and the queue's), then the BYE. */
	outlet_close(st->outlet);
	if (st->rtcp != NULL && st->outlet != NULL)
		rtcp_send(st, true);
	rtcp_link_close(st->rtcp);
	rtp_receivers_free(&st->receivers);
	if (st->sdp_path != NULL && st->sdp != NULL)
		sdp_remove(st->sdp_path, st->sdp);
	free(st->sdp_path);
	free(st->sdp);
	free(st->sdp_to.destinations);
	free(st->ts);
	free(st->cname);
	free(st);
}

/* The buffers, the RTCP socket and timer, and last the outlet, whose
 * source opens once the loop runs. False with err set when one fails
 * (the outlet logs its own reason). */
static bool rtp_open_parts(struct rtp_stream *st, const struct rtp_settings *settings, const struct unit_env *env,
			   char *err, size_t err_len)
{
	st->ts = malloc(RTP_BUFFER);
	st->cname = strdup(settings->cname);
	st->sdp_path = settings->sdp ? strdup(settings->sdp) : NULL;
	st->sdp_to.destinations = calloc(env->stream->n_destinations, sizeof(*st->sdp_to.destinations));
	if (st->sdp_to.destinations == NULL)
		return false;
	memcpy(st->sdp_to.destinations, env->stream->destinations,
	       env->stream->n_destinations * sizeof(*st->sdp_to.destinations));
	st->sdp_to.n_destinations = env->stream->n_destinations;
	st->sdp_to.ttl = env->stream->ttl;
	st->rtcp_timer = evtimer_new(env->base, rtcp_on_timer, st);
	if (st->ts == NULL || st->cname == NULL || st->rtcp_timer == NULL || (settings->sdp && !st->sdp_path) ||
	    !rtp_receivers_init(&st->receivers, settings->receivers))
		return false;
	if (st->rtcp_on &&
	    (st->rtcp = rtcp_link_open(env->base, env->stream, settings->rtcp_port, rtcp_on_datagram, st, err,
				       err_len)) == NULL)
		return false;
	st->outlet = outlet_open(env, &rtp_outlet_hooks, st);
	return st->outlet != NULL;
}

static void *rtp_start(const void *settings_arg, const struct unit_env *env)
{
	const struct rtp_settings *settings = settings_arg;
	struct rtp_stream *st = calloc(1, sizeof(*st));
	char err[256] = "out of memory";
	struct log_context ctx = { .stream = env->unit, .protocol = "rtp" };

	if (st == NULL)
		return NULL;
	if (env->stream->source.kind == SOURCE_LISTENER || (settings->pace == RTP_PACE_RATE && env->stream->rate == 0)) {
		log_write(LOG_ERR, &ctx, "stream %s: %s", env->unit,
			  env->stream->source.kind == SOURCE_LISTENER ? "rtp sends MPEG-TS bytes; a listener source gives datagrams"
								       : "pace = \"rate\" needs the stream's rate");
		free(st);
		return NULL;
	}
	st->env = env;
	st->audio = settings->audio;
	st->payload_type = st->audio ? (uint8_t)settings->payload_type : RTP_PT_MP2T;
	st->clock_hz = RTP_CLOCK_HZ;
	if (st->audio) {
		audio_reader_init(&st->audio_reader, &settings->audio_config);
		st->audio_marker = true;
		if (st->audio_reader.known)
			st->clock_hz = st->audio_reader.rate;
	}
	st->pace_by = settings->pace;
	st->rtcp_on = settings->rtcp;
	st->ssrc = random32();
	st->sequence = (uint16_t)random32();
	st->timestamp_base = random32();
	st->rate = env->stream->rate / 8;
	st->epoch_ns = pacer_now_ns();		/* PCR pacing moves it to the first PCR */
	st->clock_origin_ns = st->epoch_ns;
	ts_clock_init(&st->clock, RTP_PCR_MAX_GAP);
	pace_start(&st->pace, st->rate, (uint64_t)RTP_BURST * RTP_PAYLOAD_MAX, pacer_now_ns());
	st->receiver_timeout_ns = (uint64_t)settings->receiver_timeout * PACER_NS_PER_SECOND;
	if (!rtp_open_parts(st, settings, env, err, sizeof(err))) {
		log_write(LOG_ERR, &ctx, "stream %s: %s", env->unit, err);
		rtp_stream_free(st);
		return NULL;
	}
	st->pacer = outlet_pacer(st->outlet);
	/* L16 from a WAV file: its rate and channels are known from its
	 * header, and the SDP then. G.711 is always 8000 Hz mono. */
	if (!st->audio || st->audio_reader.known || st->audio_reader.config.payload != AUDIO_L16)
		rtp_publish_sdp(st);
	if (st->rtcp_on)
		rtcp_schedule(st);
	return st;
}

static void rtp_stop(void *state)
{
	rtp_stream_free(state);
}

static bool rtp_same(const void *old_arg, const void *new_arg)
{
	const struct rtp_settings *a = old_arg, *b = new_arg;

	return a->audio == b->audio && a->payload_type == b->payload_type &&
	       memcmp(&a->audio_config, &b->audio_config, sizeof(a->audio_config)) == 0 &&
	       a->pace == b->pace && a->rtcp == b->rtcp && strcmp(a->cname, b->cname) == 0 &&
	       a->rtcp_port == b->rtcp_port && a->receivers == b->receivers &&
	       a->receiver_timeout == b->receiver_timeout &&
	       ((a->sdp == NULL && b->sdp == NULL) || (a->sdp && b->sdp && strcmp(a->sdp, b->sdp) == 0));
}

static void rtp_status(const void *state, char *buf, size_t len)
{
	const struct rtp_stream *st = state;
	size_t used;

	outlet_status(st->outlet, st->late, buf, len);
	used = strlen(buf);
	snprintf(buf + used, len - used,
		 " rtp_packets=%" PRIu32 " rtp_octets=%" PRIu32 " pcr_discontinuities=%" PRIu64 " ts_bytes_cut=%" PRIu64
		 " rtcp_received=%" PRIu64 " rtcp_malformed=%" PRIu64 " receivers=%zu receivers_refused=%" PRIu64
		 " receivers_expired=%" PRIu64 " audio_bytes_skipped=%" PRIu64,
		 st->packets, st->octets, st->clock.discontinuities, st->cut,
		 st->rtcp ? rtcp_link_counters(st->rtcp)->received : 0, st->rtcp_malformed, st->receivers.count,
		 st->receivers.refused, st->receivers.expired, st->audio_reader.skipped);
}

static void rtp_status_rows(const void *state, char *buf, size_t len)
{
	const struct rtp_stream *st = state;

	size_t used;

	outlet_status_rows(st->outlet, buf, len);
	used = strlen(buf);
	rtp_receivers_rows(&st->receivers, (uint32_t)st->clock_hz, pacer_now_ns(), buf + used, len - used);
}

static void rtp_status_text(const void *state, char *buf, size_t len)
{
	const struct rtp_stream *st = state;
	size_t used;

	outlet_status_text(st->outlet, buf, len);
	used = strlen(buf);
	snprintf(buf + used, len - used, "ssrc %08" PRIx32 "\npace %s\n", st->ssrc,
		 st->audio ? "samples" : st->pace_by == RTP_PACE_PCR ? "pcr" : "rate");
	used = strlen(buf);
	if (st->rtcp != NULL && rtcp_link_port(st->rtcp, AF_INET) != 0)
		snprintf(buf + used, len - used, "rtcp_port %u\n", rtcp_link_port(st->rtcp, AF_INET));
	else if (st->rtcp != NULL)
		snprintf(buf + used, len - used, "rtcp_port %u\n", rtcp_link_port(st->rtcp, AF_INET6));
}

/* ---- configuration ---- */

static cfg_opt_t rtp_options[] = {
	CFG_STR("payload", "mp2t", CFGF_NONE),
	CFG_STR("pace", "pcr", CFGF_NONE),
	CFG_BOOL("rtcp", cfg_true, CFGF_NONE),
	CFG_STR("sdp", NULL, CFGF_NODEFAULT),
	CFG_STR("cname", NULL, CFGF_NODEFAULT),
	RTP_RECEIVE_OPTIONS,
	CFG_INT("rtcp-port", 0, CFGF_NONE),
	CFG_INT("receivers", RTP_RECEIVERS_DEFAULT, CFGF_NONE),
	CFG_INT("receiver-timeout", RTP_RECEIVER_TIMEOUT_S, CFGF_NONE),
	CFG_STR("input", "wav", CFGF_NONE),
	CFG_INT("sample-rate", 8000, CFGF_NONE),
	CFG_INT("channels", 1, CFGF_NONE),
	CFG_INT("ptime", AUDIO_PTIME_DEFAULT, CFGF_NONE),
	CFG_INT("payload-type", RTP_PT_L16_DEFAULT, CFGF_NONE),
	CFG_END()
};

static void rtp_settings_free(void *arg)
{
	struct rtp_settings *s = arg;

	if (s == NULL)
		return;
	free(s->sdp);
	free(s->cname);
	rtp_receive_settings_free(&s->receive);
	free(s);
}

static char *default_cname(void)
{
	char host[256] = "localhost", *cname;

	gethostname(host, sizeof(host) - 1);
	if (asprintf(&cname, "chassisd@%s", host) < 0)
		return NULL;
	return cname;
}

/* A stream sends and a listener receives: the other side's options are a
 * mistake, said at their line. */
static const char *const rtp_sender_option_names[] = {
	"payload", "pace", "sdp", "rtcp-port", "receivers", "receiver-timeout", "input", "sample-rate", "channels",
	"ptime", "payload-type", NULL,
};

static void rtp_check_side(cfg_t *sec, struct conf_scope *scope)
{
	bool stream = conf_scope_is_stream(scope);
	const char *const *names = stream ? rtp_receive_option_names : rtp_sender_option_names;

	for (size_t i = 0; sec != NULL && names[i] != NULL; i++)
		if (conf_scope_written(scope, names[i]))
			conf_scope_error(scope, names[i], "%s is an rtp %s option", names[i],
					 stream ? "listener" : "stream");
}

/* The RTCP port and the receiver table, each in range or an error at its
 * line; without a section, the defaults. */
static void rtp_configure_rtcp(struct rtp_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	long port = 0, receivers = RTP_RECEIVERS_DEFAULT, timeout = RTP_RECEIVER_TIMEOUT_S;

	if (sec != NULL) {
		conf_scope_int(scope, sec, "rtcp-port", 0, 65535, &port);
		conf_scope_int(scope, sec, "receivers", 0, RTP_RECEIVERS_MAX, &receivers);
		conf_scope_int(scope, sec, "receiver-timeout", 1, 3600, &timeout);
	}
	s->rtcp_port = (unsigned)port;
	s->receivers = (unsigned)receivers;
	s->receiver_timeout = (unsigned)timeout;
}

/* RTCP goes to port + 1 (RFC 3550 11): of 65535 there is none. An odd
 * port is taken as it is (RTCP to the even one above), as ffmpeg and
 * GStreamer receivers do. */
static void rtp_check_rtcp_ports(struct conf_scope *scope)
{
	const struct conf_stream *st = conf_scope_stream(scope);

	for (size_t i = 0; st != NULL && i < st->n_destinations; i++)
		if (addr_port((const struct sockaddr *)&st->destinations[i].sa) == 65535)
			conf_scope_error(scope, "destination",
					 "destination \"%s\": RTCP goes to port + 1, which 65535 has not "
					 "(use a lower port, or rtcp = false)",
					 st->destination_text[i]);
}

/* The input of an audio payload: a WAV file, or raw samples of the
 * format written here. G.711 carries 8000 Hz only (no resampling). */
static void rtp_configure_audio_input(struct rtp_settings *s, cfg_t *sec, struct conf_scope *scope)
{
	struct audio_config *a = &s->audio_config;
	const char *written = cfg_getstr(sec, "input");
	char input[16];
	long rate = 8000, channels = 1, ptime = AUDIO_PTIME_DEFAULT;

	snprintf(input, sizeof(input), "%s", written ? written : "wav");
	if (strcmp(input, "wav") != 0 && strcmp(input, "raw") != 0)
		conf_scope_error(scope, "input", "input must be \"wav\" or \"raw\"");
	a->wav = strcmp(input, "raw") != 0;
	conf_scope_int(scope, sec, "sample-rate", 1000, 192000, &rate);
	conf_scope_int(scope, sec, "channels", 1, 8, &channels);
	conf_scope_int(scope, sec, "ptime", 5, 100, &ptime);
	if (a->wav && (conf_scope_written(scope, "sample-rate") || conf_scope_written(scope, "channels")))
		conf_scope_error(scope, conf_scope_written(scope, "sample-rate") ? "sample-rate" : "channels",
				 "sample-rate and channels are for input = \"raw\" (a WAV file says its own)");
	if (!a->wav && a->payload != AUDIO_L16 && rate != 8000)
		conf_scope_error(scope, "sample-rate", "PCMU and PCMA carry 8000 Hz (no resampling), not %ld", rate);
	a->sample_rate = (unsigned)rate;
	a->channels = (unsigned)channels;
	a->ptime_ms = (unsigned)ptime;
}

/* MPA sends the frames as they are: the PCM input options mean nothing. */
static void rtp_refuse_pcm_options(struct conf_scope *scope)
{
	static const char *const pcm_only[] = { "input", "sample-rate", "channels", "ptime", "payload-type" };

	for (size_t i = 0; i < sizeof(pcm_only) / sizeof(pcm_only[0]); i++)
		if (conf_scope_written(scope, pcm_only[i]))
			conf_scope_error(scope, pcm_only[i], "%s does not apply to payload \"mpa\"", pcm_only[i]);
}

/* mp2t, or an audio payload with its payload type: PCMU 0, PCMA 8
 * (RFC 3551), L16 a dynamic one. */
static void rtp_configure_payload(struct rtp_settings *s, cfg_t *sec, struct conf_scope *scope, const char *payload)
{
	long type = RTP_PT_L16_DEFAULT;

	if (strcmp(payload, "mp2t") == 0)
		return;
	s->audio = true;
	if (strcmp(payload, "pcmu") == 0) {
		s->audio_config.payload = AUDIO_PCMU;
		s->payload_type = RTP_PT_PCMU;
	} else if (strcmp(payload, "pcma") == 0) {
		s->audio_config.payload = AUDIO_PCMA;
		s->payload_type = RTP_PT_PCMA;
	} else if (strcmp(payload, "mpa") == 0) {
		s->audio_config.payload = AUDIO_MPA;
		s->payload_type = RTP_PT_MPA;
		rtp_refuse_pcm_options(scope);
		return;
	} else if (strcmp(payload, "l16") == 0) {
		s->audio_config.payload = AUDIO_L16;
		conf_scope_int(scope, sec, "payload-type", RTP_PT_DYNAMIC_MIN, 127, &type);
		s->payload_type = (unsigned)type;
	} else {
		conf_scope_error(scope, "payload",
				 "payload must be \"mp2t\", \"pcmu\", \"pcma\", \"l16\" or \"mpa\", not \"%s\"", payload);
		return;
	}
	if (s->audio_config.payload != AUDIO_L16 && conf_scope_written(scope, "payload-type"))
		conf_scope_error(scope, "payload-type", "payload-type is for l16 (PCMU is 0, PCMA 8)");
	rtp_configure_audio_input(s, sec, scope);
}

static bool name_listed(const char *const *names, const char *name)
{
	for (size_t i = 0; names[i] != NULL; i++)
		if (strcmp(names[i], name) == 0)
			return true;
	return false;
}

/* For -T: what applies, so that every option shown is one rtp_configure()
 * takes. Audio options by payload: PCM input for pcmu, pcma and l16 (the
 * sample format only with raw input, the payload type only for l16),
 * none for mp2t and mpa, whose pace is the stream's own. */
static bool rtp_option_applies(cfg_t *sec, bool stream, const char *option)
{
	static const char *const audio[] = { "input", "sample-rate", "channels", "ptime", "payload-type", NULL };
	const char *payload = cfg_getstr(sec, "payload"), *input = cfg_getstr(sec, "input");
	bool pcm = payload != NULL && (strcmp(payload, "pcmu") == 0 || strcmp(payload, "pcma") == 0 ||
				       strcmp(payload, "l16") == 0);

	if (name_listed(stream ? rtp_receive_option_names : rtp_sender_option_names, option))
		return false;
	if (strcmp(option, "pace") == 0)
		return payload == NULL || strcmp(payload, "mp2t") == 0;
	if (!name_listed(audio, option))
		return true;
	if (!pcm)
		return false;
	if (strcmp(option, "payload-type") == 0)
		return strcmp(payload, "l16") == 0;
	if (strcmp(option, "sample-rate") == 0 || strcmp(option, "channels") == 0)
		return input != NULL && strcmp(input, "raw") == 0;
	return true;
}

static void *rtp_configure(cfg_t *sec, struct conf_scope *scope)
{
	struct rtp_settings *s = calloc(1, sizeof(*s));
	const char *payload = sec ? cfg_getstr(sec, "payload") : "mp2t";
	const char *pace = sec ? cfg_getstr(sec, "pace") : "pcr";
	const char *sdp = sec ? cfg_getstr(sec, "sdp") : NULL;
	const char *cname = sec ? cfg_getstr(sec, "cname") : NULL;

	if (s == NULL)
		return NULL;
	rtp_configure_payload(s, sec, scope, payload);
	if (strcmp(pace, "pcr") == 0)
		s->pace = RTP_PACE_PCR;
	else if (strcmp(pace, "rate") == 0)
		s->pace = RTP_PACE_RATE;
	else
		conf_scope_error(scope, "pace", "pace must be \"pcr\" or \"rate\", not \"%s\"", pace);
	if (sdp != NULL && sdp[0] != '/')
		conf_scope_error(scope, "sdp", "the sdp file must be an absolute path, not \"%s\"", sdp);
	if (cname != NULL && strlen(cname) > 255)
		conf_scope_error(scope, "cname", "a CNAME is at most 255 bytes");
	rtp_check_side(sec, scope);
	if (!conf_scope_is_stream(scope))
		rtp_receive_configure(sec, scope, &s->receive);
	s->rtcp = sec ? cfg_getbool(sec, "rtcp") : true;
	rtp_configure_rtcp(s, sec, scope);
	if (s->rtcp)
		rtp_check_rtcp_ports(scope);
	s->sdp = sdp ? strdup(sdp) : NULL;
	s->cname = cname ? strdup(cname) : default_cname();
	if (s->cname == NULL) {
		rtp_settings_free(s);
		return NULL;
	}
	return s;
}

/* ---- a stream sends, a listener receives (receive.c) ---- */

static void *rtp_unit_start(const void *settings_arg, const struct unit_env *env)
{
	const struct rtp_settings *settings = settings_arg;

	if (env->stream == NULL)
		return rtp_receive_start(&settings->receive, settings->rtcp, settings->cname, env);
	return rtp_start(settings_arg, env);
}

static void rtp_unit_stop(void *state)
{
	if (rtp_is_receiver(state))
		rtp_receive_stop(state);
	else
		rtp_stop(state);
}

static bool rtp_unit_same(const void *old_arg, const void *new_arg)
{
	const struct rtp_settings *a = old_arg, *b = new_arg;

	return rtp_receive_same(&a->receive, &b->receive) && rtp_same(old_arg, new_arg);
}

static void rtp_unit_status(const void *state, char *buf, size_t len)
{
	if (rtp_is_receiver(state))
		rtp_receive_status(state, buf, len);
	else
		rtp_status(state, buf, len);
}

static void rtp_unit_status_rows(const void *state, char *buf, size_t len)
{
	if (rtp_is_receiver(state))
		rtp_receive_status_rows(state, buf, len);
	else
		rtp_status_rows(state, buf, len);
}

/* A listener's words are in its counters and rows (the chassis shows
 * text for streams only). */
static void rtp_unit_status_text(const void *state, char *buf, size_t len)
{
	if (rtp_is_receiver(state))
		buf[0] = '\0';
	else
		rtp_status_text(state, buf, len);
}

const struct protocol protocol_rtp = {
	.config = {
		.name = "rtp",
		.options = rtp_options,
		.transports = TRANSPORT_BIT(TRANSPORT_UDP) | TRANSPORT_BIT(TRANSPORT_MULTICAST) | UNIT_STREAM_BIT,
		.configure = rtp_configure,
		.settings_free = rtp_settings_free,
		.option_applies = rtp_option_applies,
	},
	.start = rtp_unit_start,
	.stop = rtp_unit_stop,
	.same = rtp_unit_same,
	.status = rtp_unit_status,
	.status_rows = rtp_unit_status_rows,
	.status_text = rtp_unit_status_text,
	.datagram = rtp_receive_datagram,
	.taps_get_payload = true,
};
