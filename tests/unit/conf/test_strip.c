#include <criterion/criterion.h>
#include <string.h>

#include "conf/strip.h"

static char *strip(const char *text)
{
	static char buf[512];

	strcpy(buf, text);
	conf_strip_comments(buf, strlen(buf));
	return buf;
}

Test(strip, line_comments_keep_newlines)
{
	cr_assert_str_eq(strip("# one\na = 1 // two\n"), "     \na = 1       \n");
}

Test(strip, block_comments_keep_newlines)
{
	cr_assert_str_eq(strip("a /* x\ny */ = 1"), "a     \n     = 1");
}

Test(strip, strings_are_left_alone)
{
	cr_assert_str_eq(strip("a = \"#not // a comment\" # but this is"),
			 "a = \"#not // a comment\"              ");
	cr_assert_str_eq(strip("a = \"quote \\\" # still string\""), "a = \"quote \\\" # still string\"");
	cr_assert_str_eq(strip("a = 'x # y'"), "a = 'x # y'");
}

Test(strip, slashes_inside_a_word_are_not_comments)
{
	cr_assert_str_eq(strip("root = /srv//www"), "root = /srv//www");
}

Test(strip, comment_inside_a_list)
{
	cr_assert_str_eq(strip("a = {\"x\", # c\n\"y\"}"), "a = {\"x\",    \n\"y\"}");
}

Test(strip, finds_the_first_unclosed_brace)
{
	char text[] = "a {\n b { }\n}\nc {\n d {\n \"}\" # }\n";

	cr_assert_eq(conf_strip_comments(text, strlen(text)), 4);
	strcpy(text, "a { b { } }");
	cr_assert_eq(conf_strip_comments(text, strlen(text)), 0);
}

Test(strip, unterminated_block_comment_blanks_to_end)
{
	cr_assert_str_eq(strip("a = 1 /* open\nb"), "a = 1        \n ");
}
