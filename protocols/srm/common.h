/* What the two sides of the srm module share: the settings of a stream's
 * or listener's srm { } section, and the one shape of its log lines.
 * srm.c configures and dispatches; sender.c and receive.c are the sides,
 * and neither needs srm.c. */
#ifndef CHASSISD_SRM_COMMON_H
#define CHASSISD_SRM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "daemon/child.h"
#include "protocols/srm/wire.h"

#define SRM_NS_PER_MS 1000000ull
#define SRM_DATAGRAM_MAX (SRM_HEADER_SIZE + SRM_MAX_PAYLOAD)

/* kamaelia: exactly Kamaelia's SimpleReliableMulticast byte stream
 * (kamaelia.md 7.2), no header, so no repair: for old peers. */
enum srm_wire { SRM_WIRE_CHASSISD, SRM_WIRE_KAMAELIA };

struct srm_settings {
	enum srm_wire wire;
	uint32_t session;
	/* a stream's: what it sends from (NULL: its source { }), and the
	 * listener's: where it writes (NULL: to command) */
	char *directory;
	unsigned window;
	unsigned long long window_bytes;
	unsigned hold_off_ms, heartbeat_ms;
	unsigned max_files;		/* stream with a directory: files per run */
	unsigned fec_k, fec_n;		/* parity repair: k data + up to n parity per block; k 0: off */
	unsigned fec_proactive;		/* parity sent with each block before any NAK, at most fec_n */
	/* listener */
	bool live;			/* no directory, no command: to stream routes only */
	unsigned sessions, reorder;
	unsigned long long reorder_bytes;
	unsigned backoff_ms, retry_ms, timeout_s;
	unsigned long long max_object_size;	/* bytes an object may reach on disk */
	struct child_spec command;	/* argv NULL: none */
	char *spool;			/* with command: where objects are spooled */
	unsigned command_queue;		/* objects waiting for the command at most */
};

/* "WHAT: session N object M"; stream or listener is the unit's name. */
void srm_log(const char *stream, const char *listener, int level, const char *what, uint32_t session,
	     uint32_t object);
/* The same with ` name "NAME"` after it, the name escaped (a peer's bytes),
 * when name_len is not 0. */
void srm_log_named(const char *stream, const char *listener, int level, const char *what, uint32_t session,
		   uint32_t object, const uint8_t *name, size_t name_len);
uint32_t srm_random32(void);

#endif
