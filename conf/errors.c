#include "conf/errors.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/text.h"

void conf_errors_add(struct conf_errors *errors, const char *fmt, ...)
{
	va_list ap;
	char *raw, *line;
	size_t len;

	va_start(ap, fmt);
	if (vasprintf(&raw, fmt, ap) < 0)
		raw = NULL;
	va_end(ap);
	if (raw == NULL)
		return;
	/* One error, one line: a value with a newline in it must not forge
	 * a second error (or, on a reload, a log record). Each byte takes
	 * at most 4 escaped. */
	len = strlen(raw);
	line = malloc(len * 4 + 1);
	if (line != NULL)
		text_escape(raw, len, line, len * 4 + 1);
	free(raw);
	if (line == NULL)
		return;
	if (errors->count == errors->cap) {
		size_t cap = errors->cap ? errors->cap * 2 : 8;
		char **lines = realloc(errors->lines, cap * sizeof(*lines));
		if (lines == NULL) {
			free(line);
			return;
		}
		errors->lines = lines;
		errors->cap = cap;
	}
	errors->lines[errors->count++] = line;
}

void conf_errors_clear(struct conf_errors *errors)
{
	for (size_t i = 0; i < errors->count; i++)
		free(errors->lines[i]);
	free(errors->lines);
	memset(errors, 0, sizeof(*errors));
}
