/* A stream's way out, shared by the stream protocols (udp, rtp): its
 * source, opened once the loop runs (after privileges are dropped); its
 * pacer; the fault simulator; the sender; and the counters and status
 * words every stream shows. A protocol decides what to send and when
 * (udp: packet-size at the rate; rtp: RTP packets on PCR time); the
 * outlet does the rest. */
#ifndef CHASSISD_OUTLET_H
#define CHASSISD_OUTLET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct outlet;
struct pacer;
struct source;
struct unit_env;

struct outlet_hooks {
	/* The pacer's deadline came. */
	void (*tick)(void *arg, uint64_t now_ns);
	/* The source has new bytes after being empty, or ended. */
	void (*ready)(void *arg);
};

/* For a stream's start(): env->stream is read now. NULL (logged) when it
 * cannot start. */
struct outlet *outlet_open(const struct unit_env *env, const struct outlet_hooks *hooks, void *arg);
/* Sends what the simulator holds and what is queued (up to a second),
 * then frees. */
void outlet_close(struct outlet *outlet);

/* NULL until the loop has run once (or when it could not start), and
 * always for a stream with no source { } (SOURCE_NONE: a protocol that
 * reads what it sends itself, srm's directory). */
struct source *outlet_source(const struct outlet *outlet);
struct pacer *outlet_pacer(const struct outlet *outlet);

/* Between begin and end of a tick, datagrams are gathered and go out in
 * one sendmmsg at the end. */
void outlet_begin(struct outlet *outlet);
void outlet_emit(struct outlet *outlet, const void *data, size_t len);
void outlet_end(struct outlet *outlet);
/* Room for one more datagram to every destination. */
bool outlet_can_take(const struct outlet *outlet);
void outlet_count_discontinuity(struct outlet *outlet);

/* Status: counters ("datagrams=... bytes=... sent=..."), rows ("source -
 * ...", "netsim - ..."), words ("state ...\nsource_state ...\ntitle ...").
 * `late` is the protocol's pacing count. */
void outlet_status(const struct outlet *outlet, uint64_t late, char *buf, size_t len);
void outlet_status_rows(const struct outlet *outlet, char *buf, size_t len);
void outlet_status_text(const struct outlet *outlet, char *buf, size_t len);

#endif
