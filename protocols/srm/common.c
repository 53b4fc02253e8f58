#include "protocols/srm/common.h"

#include <inttypes.h>
#include <sys/random.h>
#include <unistd.h>

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
