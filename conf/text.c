#include "conf/text.h"

#include <stdio.h>

size_t text_escape(const char *in, size_t len, char *out, size_t cap)
{
	size_t used = 0;

	if (cap == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 0x20 || c == 0x7f) {
			if (used + 4 >= cap)
				break;
			snprintf(out + used, 5, "\\x%02x", c);
			used += 4;
		} else {
			if (used + 1 >= cap)
				break;
			out[used++] = (char)c;
		}
	}
	out[used] = '\0';
	return used;
}
