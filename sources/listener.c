/* A listener source: every datagram a udp or multicast listener of this
 * daemon receives, forwarded whole (a multicast-to-unicast relay). Each
 * is kept as a 2-byte length and its bytes; over the read-ahead, the
 * newest are dropped and counted. */
#include <event2/buffer.h>
#include <stdint.h>

#include "conf/conf.h"
#include "daemon/chassis.h"
#include "daemon/log.h"
#include "sources/kind.h"

static void listener_on_datagram(void *arg, const void *data, size_t len)
{
	struct source *src = arg;
	uint8_t prefix[2] = { (uint8_t)(len >> 8), (uint8_t)len };

	if (len > UINT16_MAX || evbuffer_get_length(src->buffer) + len + 2 > src->high) {
		src->counters.dropped++;
		return;
	}
	if (src->counters.datagrams == 0)
		source_set_state(src, "receiving", LOG_INFO, "receiving from listener %s", src->conf->listener);
	evbuffer_add(src->buffer, prefix, sizeof(prefix));
	evbuffer_add(src->buffer, data, len);
	src->counters.datagrams++;
	src->counters.bytes += len;
	source_arrived(src);
}

static int listener_start(struct source *src, char *err, size_t err_len)
{
	src->kind = chassis_tap_datagrams(src->env->chassis, src->conf->listener, listener_on_datagram, src);
	if (src->kind == NULL)
		return -1;
	source_set_state(src, "waiting", LOG_INFO, "waiting for datagrams of listener %s", src->conf->listener);
	(void)err;
	(void)err_len;
	return 0;
}

/* Datagrams come when they come; there is nothing to ask for. */
static void listener_resume(struct source *src)
{
	(void)src;
}

static void listener_stop(struct source *src)
{
	chassis_untap(src->kind);
	src->kind = NULL;
}

const struct source_ops source_listener_ops = {
	.start = listener_start,
	.resume = listener_resume,
	.stop = listener_stop,
};
