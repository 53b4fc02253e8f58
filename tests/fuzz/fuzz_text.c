/* The small parsers of config text: addresses, upstreams, CIDR lists,
 * comment stripping, and the escaping of outside text for logs. The first
 * byte picks the parser; the rest is its input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "conf/addr.h"
#include "conf/strip.h"
#include "conf/text.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[512], err[256], host[256], out[2048];
	struct endpoint endpoint;
	struct cidr cidr;
	const char *problem;
	unsigned port;
	size_t len;

	if (size == 0)
		return 0;
	len = size - 1 < sizeof(text) - 1 ? size - 1 : sizeof(text) - 1;
	memcpy(text, data + 1, len);
	text[len] = '\0';
	switch (data[0] % 5) {
	case 0:
		endpoint_parse(text, &endpoint, err, sizeof(err));
		break;
	case 1:
		host_port_parse(text, host, sizeof(host), &port, err, sizeof(err));
		break;
	case 2:
		cidr_parse(text, &cidr, err, sizeof(err));
		break;
	case 3:
		conf_strip_comments(text, len, &problem);
		break;
	default:
		text_escape(text, len, out, sizeof(out));
		break;
	}
	return 0;
}
