#include "conf/text.h"

#include <stdio.h>

/* The length of the valid UTF-8 sequence at in (at most len bytes), or 0:
 * no overlong forms, no surrogates, nothing past U+10FFFF. */
static size_t utf8_sequence(const unsigned char *in, size_t len)
{
	size_t n = in[0] >= 0xf0 ? 4 : in[0] >= 0xe0 ? 3 : 2;
	unsigned cp;

	if (in[0] < 0xc2 || in[0] > 0xf4 || n > len)
		return 0;
	cp = in[0] & (0x7f >> n);
	for (size_t i = 1; i < n; i++) {
		if ((in[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (in[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

static size_t escape(const char *in, size_t len, char *out, size_t cap, bool utf8)
{
	size_t used = 0;

	if (cap == 0)
		return 0;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		size_t seq = utf8 && c >= 0x80 ? utf8_sequence((const unsigned char *)in + i, len - i) : 1;

		if (c < 0x20 || c == 0x7f || seq == 0) {
			if (used + 4 >= cap)
				break;
			snprintf(out + used, 5, "\\x%02x", c);
			used += 4;
		} else {
			if (used + seq >= cap)
				break;
			for (size_t k = 0; k < seq; k++)
				out[used++] = in[i + k];
			i += seq - 1;
		}
	}
	out[used] = '\0';
	return used;
}

size_t text_escape(const char *in, size_t len, char *out, size_t cap)
{
	return escape(in, len, out, cap, false);
}

size_t text_escape_utf8(const char *in, size_t len, char *out, size_t cap)
{
	return escape(in, len, out, cap, true);
}
