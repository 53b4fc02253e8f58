#include "conf/marks.h"

#include <stdlib.h>
#include <string.h>

struct conf_mark {
	const struct cfg_t *section;
	const char *option;
	int line;
};

static const struct conf_mark *mark_find(const struct conf_marks *marks, const struct cfg_t *section,
					 const char *option)
{
	for (size_t i = 0; i < marks->count; i++)
		if (marks->marks[i].section == section && strcmp(marks->marks[i].option, option) == 0)
			return &marks->marks[i];
	return NULL;
}

void conf_marks_add(struct conf_marks *marks, const struct cfg_t *section, const char *option, int line)
{
	if (mark_find(marks, section, option) != NULL)
		return;
	if (marks->count == marks->cap) {
		size_t cap = marks->cap ? marks->cap * 2 : 64;
		struct conf_mark *grown = realloc(marks->marks, cap * sizeof(*grown));

		if (grown == NULL)
			return;
		marks->marks = grown;
		marks->cap = cap;
	}
	marks->marks[marks->count++] = (struct conf_mark){ section, option, line };
}

int conf_marks_line_or(const struct conf_marks *marks, const struct cfg_t *section, const char *option,
		       int fallback)
{
	const struct conf_mark *mark = option != NULL ? mark_find(marks, section, option) : NULL;

	return mark != NULL && mark->line != 0 ? mark->line : fallback;
}

bool conf_marks_written(const struct conf_marks *marks, const struct cfg_t *section, const char *option)
{
	return conf_marks_line_or(marks, section, option, 0) != 0;
}

int conf_marks_section_line(const struct conf_marks *marks, const struct cfg_t *section)
{
	int first = 0;

	for (size_t i = 0; i < marks->count; i++)
		if (marks->marks[i].section == section && (first == 0 || marks->marks[i].line < first))
			first = marks->marks[i].line;
	return first;
}

void conf_marks_clear(struct conf_marks *marks)
{
	marks->count = 0;
}

void conf_marks_free(struct conf_marks *marks)
{
	free(marks->marks);
	*marks = (struct conf_marks){ 0 };
}
