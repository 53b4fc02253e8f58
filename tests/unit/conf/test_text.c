/* conf/text.c: outside text becomes one safe log line. */
#include <criterion/criterion.h>
#include <string.h>

#include "conf/text.h"

static const char *escaped(const char *in, size_t cap)
{
	static char out[128];

	text_escape(in, strlen(in), out, cap);
	return out;
}

Test(text, control_characters_and_del_become_hex)
{
	cr_assert_str_eq(escaped("a\nFAKE: x\r\t\x1b[2J\x7f", 128), "a\\x0aFAKE: x\\x0d\\x09\\x1b[2J\\x7f");
}

Test(text, printable_bytes_utf8_and_backslashes_stay)
{
	cr_assert_str_eq(escaped("caf\xc3\xa9 \\x0a \"q\"", 128), "caf\xc3\xa9 \\x0a \"q\"");
}

Test(text, a_short_buffer_cuts_before_an_escape_never_inside)
{
	cr_assert_str_eq(escaped("ab\ncd", 6), "ab");
	cr_assert_str_eq(escaped("abcdef", 4), "abc");
}
