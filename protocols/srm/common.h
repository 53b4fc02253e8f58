/* What the two sides of the srm module share: the settings of a stream's
 * or listener's srm { } section, and the one shape of its log lines.
 * srm.c configures and dispatches; sender.c and receive.c are the sides,
 * and neither needs srm.c. */
#ifndef CHASSISD_SRM_COMMON_H
#define CHASSISD_SRM_COMMON_H

#include <stdint.h>

#include "protocols/srm/wire.h"

#define SRM_NS_PER_MS 1000000ull
#define SRM_DATAGRAM_MAX (SRM_HEADER_SIZE + SRM_MAX_PAYLOAD)

/* kamaelia: exactly Kamaelia's SimpleReliableMulticast byte stream
 * (kamaelia.md 7.2), no header, so no repair: for old peers. */
enum srm_wire { SRM_WIRE_CHASSISD, SRM_WIRE_KAMAELIA };

struct srm_settings {
	enum srm_wire wire;
	uint32_t session;
	unsigned window;
	unsigned long long window_bytes;
	unsigned hold_off_ms, heartbeat_ms;
	/* listener */
	char *directory;
	unsigned sessions, reorder;
	unsigned long long reorder_bytes;
	unsigned backoff_ms, retry_ms, timeout_s;
};

/* "WHAT: session N object M"; stream or listener is the unit's name. */
void srm_log(const char *stream, const char *listener, int level, const char *what, uint32_t session,
	     uint32_t object);
uint32_t srm_random32(void);

#endif
