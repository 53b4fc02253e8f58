#include "protocols/srm/common.h"

#include <inttypes.h>
#include <sys/random.h>
#include <unistd.h>

#include "conf/text.h"
#include "daemon/log.h"
#include "daemon/pacer.h"

uint32_t srm_random32(void)
{
	uint32_t value = 0;

	if (getrandom(&value, sizeof(value), 0) != sizeof(value))
		value = (uint32_t)pacer_now_ns() ^ (uint32_t)getpid() << 16;
	return value;
}

void srm_log(const char *stream, const char *listener, int level, const char *what, uint32_t session,
	     uint32_t object)
{
	struct log_context ctx = { .stream = stream, .listener = listener, .protocol = "srm" };

	log_write(level, &ctx, "%s: session %" PRIu32 " object %" PRIu32, what, session, object);
}

void srm_log_named(const char *stream, const char *listener, int level, const char *what, uint32_t session,
		   uint32_t object, const uint8_t *name, size_t name_len)
{
	struct log_context ctx = { .stream = stream, .listener = listener, .protocol = "srm" };
	char escaped[4 * SRM_NAME_MAX + 1];

	if (name_len == 0) {
		srm_log(stream, listener, level, what, session, object);
		return;
	}
	text_escape((const char *)name, name_len, escaped, sizeof(escaped));
	log_write(level, &ctx, "%s: session %" PRIu32 " object %" PRIu32 " name \"%s\"", what, session, object,
		  escaped);
}
