/* Echo (RFC 862): every byte back, over tcp, udp and multicast.
 *
 * Unlike Kamaelia's EchoProtocol, a client that half-closes still gets all
 * its bytes back: with no end_of_input hook the chassis flushes, then closes.
 * A slow reader is held off by the chassis's backpressure, not here. */
#include <event2/buffer.h>

#include "daemon/protocol.h"

static cfg_opt_t echo_options[] = {
	CFG_END()
};

static void echo_input(struct conn *conn, struct evbuffer *in)
{
	conn_write_buffer(conn, in);
}

static void echo_datagram(struct datagram *dgram)
{
	const void *payload;
	size_t len;

	/* A reply to a forged source would make us an amplifier or start an
	 * endless echo-to-echo loop. */
	if (datagram_source_is_reflector(dgram)) {
		datagram_drop(dgram, "reflector source");
		return;
	}
	payload = datagram_payload(dgram, &len);
	datagram_reply(dgram, payload, len);
}

const struct protocol protocol_echo = {
	.config = {
		.name = "echo",
		.transports = TRANSPORT_BIT(TRANSPORT_TCP) | TRANSPORT_BIT(TRANSPORT_UDP) |
			      TRANSPORT_BIT(TRANSPORT_MULTICAST),
		.options = echo_options,
	},
	.conn = { .input = echo_input },
	.datagram = echo_datagram,
};
