#include "conf/strip.h"

#include <stdbool.h>
#include <string.h>

/* A comment can only start where a new token can: libconfuse reads "a//b"
 * as one unquoted string, but "a //b" as a string and a comment. */
static bool token_boundary(const char *text, size_t i)
{
	return i == 0 || strchr(" \t\r\n{}=,()", text[i - 1]) != NULL;
}

/* False when the file ends inside the string. */
static bool skip_string(const char *text, size_t len, size_t *i)
{
	char quote = text[*i];
	size_t j;

	for (j = *i + 1; j < len && text[j] != quote; j++)
		if (text[j] == '\\' && quote == '"' && j + 1 < len)
			j++;
	*i = j < len ? j + 1 : len;
	return j < len;
}

/* Blanks up to and including end ("\n": up to it; the end of the file
 * ends a line comment too). False when the file ends before end. */
static bool blank_until(char *text, size_t len, size_t *i, const char *end)
{
	size_t end_len = strlen(end), j = *i;

	for (; j < len; j++) {
		if (end[0] == '\n' && text[j] == '\n') {
			*i = j;
			return true;
		}
		if (end[0] != '\n' && strncmp(text + j, end, end_len) == 0) {
			memset(text + j, ' ', end_len);
			*i = j + end_len;
			return true;
		}
		if (text[j] != '\n')
			text[j] = ' ';
	}
	*i = len;
	return end[0] == '\n';
}

static int count_lines(const char *text, size_t from, size_t to, int line)
{
	for (size_t i = from; i < to; i++)
		line += text[i] == '\n';
	return line;
}

int conf_strip_comments(char *text, size_t len, const char **problem)
{
	size_t i = 0, counted = 0;
	int depth = 0, line = 1, open_line = 0;
	const char *nul = memchr(text, '\0', len);

	/* libconfuse reads a C string: whatever follows a NUL would be
	 * dropped without a word. */
	if (nul != NULL) {
		*problem = "a NUL byte: this is not a text file";
		return count_lines(text, 0, (size_t)(nul - text), 1);
	}
	while (i < len) {
		char c = text[i];
		bool boundary = token_boundary(text, i), closed = true;

		line = count_lines(text, counted, i, line);
		counted = i;
		if (c == '{' || c == '}') {
			if (c == '{' && depth++ == 0)
				open_line = line;
			else if (c == '}' && depth > 0)
				depth--;
			i++;
		} else if (c == '"' || c == '\'') {
			/* libconfuse takes a string cut by the end of the file
			 * as the end of the file: what follows the quote is lost. */
			closed = skip_string(text, len, &i);
			*problem = "a string is never closed: the file ends inside it";
		} else if (c == '#' || (c == '/' && i + 1 < len && text[i + 1] == '/' && boundary)) {
			blank_until(text, len, &i, "\n");
		} else if (c == '/' && i + 1 < len && text[i + 1] == '*' && boundary) {
			text[i] = text[i + 1] = ' ';
			i += 2;
			closed = blank_until(text, len, &i, "*/");
			*problem = "\"/*\" is never closed: the file ends inside the comment";
		} else {
			i++;
		}
		if (!closed)
			return line;
	}
	*problem = "\"{\" is never closed: the file ends inside this section";
	return depth > 0 ? open_line : 0;
}

int conf_find_runaway_string(const char *text, size_t len, int *ends)
{
	int line = 1;

	for (size_t i = 0; i < len; i++) {
		size_t start = i;
		bool closed;

		if (text[i] == '\n')
			line++;
		if (text[i] != '"' && text[i] != '\'')
			continue;
		closed = skip_string(text, len, &i);
		if (memchr(text + start, '\n', i - start) != NULL) {
			*ends = closed ? count_lines(text, start, i, line) : 0;
			return line;
		}
		line = count_lines(text, start, i, line);
		i--;	/* the loop's i++ steps past the closing quote */
	}
	*ends = 0;
	return 0;
}
