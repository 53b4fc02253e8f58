#include "conf/strip.h"

#include <stdbool.h>
#include <string.h>

/* A comment can only start where a new token can: libconfuse reads "a//b"
 * as one unquoted string, but "a //b" as a string and a comment. */
static bool token_boundary(const char *text, size_t i)
{
	return i == 0 || strchr(" \t\r\n{}=,()", text[i - 1]) != NULL;
}

static size_t skip_string(const char *text, size_t len, size_t i)
{
	char quote = text[i];

	for (i++; i < len && text[i] != quote; i++)
		if (text[i] == '\\' && quote == '"' && i + 1 < len)
			i++;
	return i < len ? i + 1 : len;
}

static size_t blank_until(char *text, size_t len, size_t i, const char *end)
{
	size_t end_len = strlen(end);

	while (i < len) {
		if (strncmp(text + i, end, end_len) == 0 && end[0] != '\n') {
			memset(text + i, ' ', end_len);
			return i + end_len;
		}
		if (text[i] == '\n' && end[0] == '\n')
			return i;
		if (text[i] != '\n')
			text[i] = ' ';
		i++;
	}
	return len;
}

static int count_lines(const char *text, size_t from, size_t to, int line)
{
	for (size_t i = from; i < to; i++)
		line += text[i] == '\n';
	return line;
}

int conf_strip_comments(char *text, size_t len)
{
	size_t i = 0, counted = 0;
	int depth = 0, line = 1, open_line = 0;

	while (i < len) {
		char c = text[i];
		bool boundary = token_boundary(text, i);

		if (c == '{' || c == '}') {
			line = count_lines(text, counted, i, line);
			counted = i;
			if (c == '{' && depth++ == 0)
				open_line = line;
			else if (c == '}' && depth > 0)
				depth--;
			i++;
		} else if (c == '"' || c == '\'')
			i = skip_string(text, len, i);
		else if (c == '#')
			i = blank_until(text, len, i, "\n");
		else if (c == '/' && i + 1 < len && text[i + 1] == '/' && boundary)
			i = blank_until(text, len, i, "\n");
		else if (c == '/' && i + 1 < len && text[i + 1] == '*' && boundary) {
			text[i] = text[i + 1] = ' ';
			i = blank_until(text, len, i + 2, "*/");
		} else
			i++;
	}
	return depth > 0 ? open_line : 0;
}
