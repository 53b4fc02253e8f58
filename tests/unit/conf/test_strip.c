#include <criterion/criterion.h>
#include <string.h>

#include "conf/strip.h"

static const char *problem;

static char *strip(const char *text)
{
	static char buf[512];

	strcpy(buf, text);
	conf_strip_comments(buf, strlen(buf), &problem);
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

	cr_assert_eq(conf_strip_comments(text, strlen(text), &problem), 4);
	cr_assert_str_eq(problem, "\"{\" is never closed: the file ends inside this section");
	strcpy(text, "a { b { } }");
	cr_assert_eq(conf_strip_comments(text, strlen(text), &problem), 0);
}

Test(strip, a_block_comment_the_file_ends_inside_is_named_with_its_line)
{
	char text[] = "a = 1\nb = 2 /* open\nc = 3\n";

	cr_assert_eq(conf_strip_comments(text, strlen(text), &problem), 2);
	cr_assert_str_eq(problem, "\"/*\" is never closed: the file ends inside the comment");
	strcpy(text, "a = 1 /* closed */");
	cr_assert_eq(conf_strip_comments(text, strlen(text), &problem), 0);
}

Test(strip, a_string_the_file_ends_inside_is_named_with_its_line)
{
	char text[] = "a = 1\n\nb = \"open\n";
	char escaped[] = "a = \"x\\\"";

	cr_assert_eq(conf_strip_comments(text, strlen(text), &problem), 3);
	cr_assert_str_eq(problem, "a string is never closed: the file ends inside it");
	cr_assert_eq(conf_strip_comments(escaped, strlen(escaped), &problem), 1, "an escaped quote closes nothing");
	strcpy(text, "a = 'x'");
	cr_assert_eq(conf_strip_comments(text, strlen(text), &problem), 0);
}

Test(strip, a_nul_byte_is_named_with_its_line)
{
	char text[] = "a = 1\nb\0 = 2\n";

	cr_assert_eq(conf_strip_comments(text, sizeof(text) - 1, &problem), 2);
	cr_assert_str_eq(problem, "a NUL byte: this is not a text file");
}

Test(strip, the_first_string_that_spans_lines_is_found_with_its_end)
{
	const char *open = "a = \"x\"\nb = \"info\nc = \"y\"\n";
	const char *never = "a = 'x'\nb = \"info\n";
	const char *none = "a = \"x\" b = 'y'\n";
	int ends = -1;

	cr_assert_eq(conf_find_runaway_string(open, strlen(open), &ends), 2);
	cr_assert_eq(ends, 3);
	cr_assert_eq(conf_find_runaway_string(never, strlen(never), &ends), 2);
	cr_assert_eq(ends, 0, "a string the file ends inside has no end line");
	cr_assert_eq(conf_find_runaway_string(none, strlen(none), &ends), 0);
}
