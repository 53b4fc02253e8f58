/* The tracker's announce query parser (protocols/http/announce.c): any
 * bytes as the query string, which must give either a request whose
 * fields are within their bounds or a failure reason. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "protocols/http/announce.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct announce a;
	const char *reason;

	if (announce_parse((const char *)data, size, &a, &reason) == 0) {
		if (reason != NULL || a.port == 0 || a.port > 65535 || a.numwant > ANNOUNCE_NUMWANT_MAX)
			abort();
	} else if (reason == NULL) {
		abort();
	}
	return 0;
}
