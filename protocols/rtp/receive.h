/* The rtp module as a udp or multicast listener: an RTP receiver (RFC
 * 3550) whose in-order payload goes to a file and to the taps of its unit
 * (an HTTP gateway), sending RTCP receiver reports to every sender it
 * hears. rtp.c's descriptor dispatches to it; this is all it sees. */
#ifndef CHASSISD_RTP_RECEIVE_H
#define CHASSISD_RTP_RECEIVE_H

#include <confuse.h>
#include <stdbool.h>
#include <stddef.h>

struct conf_scope;
struct datagram;
struct unit_env;

struct rtp_receive_settings {
	unsigned jitter_ms;		/* jitter-buffer: a packet waits this long behind a gap */
	unsigned reorder_packets;	/* reorder-packets: the window */
	unsigned senders;		/* senders: SSRCs kept at most */
	unsigned switch_ms;		/* sender-switch: silence before another sender plays */
	char *record;			/* record: the file appended to, or NULL */
};

/* The receiver's options in the rtp { } section. */
#define RTP_RECEIVE_OPTIONS                                                                                        \
	CFG_INT("jitter-buffer", 50, CFGF_NONE), CFG_INT("reorder-packets", 64, CFGF_NONE),                      \
		CFG_INT("senders", 8, CFGF_NONE), CFG_INT("sender-switch", 1000, CFGF_NONE),                     \
		CFG_STR("record", NULL, CFGF_NODEFAULT)
/* The names, for a stream's section to refuse them. */
extern const char *const rtp_receive_option_names[];

/* sec may be NULL (no section: the defaults). Errors go to scope. */
void rtp_receive_configure(cfg_t *sec, struct conf_scope *scope, struct rtp_receive_settings *out);
void rtp_receive_settings_free(struct rtp_receive_settings *settings);
bool rtp_receive_same(const struct rtp_receive_settings *a, const struct rtp_receive_settings *b);

/* NULL (logged) when it cannot start. rtcp: bind the listener's port + 1
 * for SRs and send RRs from it; cname is copied. */
void *rtp_receive_start(const struct rtp_receive_settings *settings, bool rtcp, const char *cname,
			const struct unit_env *env);
/* Whether a state of the rtp module is a receiver's (else a stream's). */
bool rtp_is_receiver(const void *state);
void rtp_receive_stop(void *state);
void rtp_receive_datagram(struct datagram *dgram);
void rtp_receive_status(const void *state, char *buf, size_t len);
void rtp_receive_status_rows(const void *state, char *buf, size_t len);

#endif
