/* Where each option and section of a parsed file was written.
 *
 * libconfuse keeps no per-option line, but it calls a validator right after
 * parsing each value, while its line counter still points at it: the
 * loader records the line there, and errors found later name it. */
#ifndef CHASSISD_CONF_MARKS_H
#define CHASSISD_CONF_MARKS_H

#include <stdbool.h>
#include <stddef.h>

struct cfg_t;
struct conf_mark;

struct conf_marks {
	struct conf_mark *marks;
	size_t count, cap;
};

/* The first line recorded for (section, option) stays. Out of memory: the
 * mark is lost and errors fall back to the section's line. */
void conf_marks_add(struct conf_marks *marks, const struct cfg_t *section, const char *option, int line);
/* The option's line, else fallback (option NULL: fallback). */
int conf_marks_line_or(const struct conf_marks *marks, const struct cfg_t *section, const char *option,
		       int fallback);
bool conf_marks_written(const struct conf_marks *marks, const struct cfg_t *section, const char *option);
/* A section's first line: its earliest option, else its closing brace
 * (0: nothing recorded). */
int conf_marks_section_line(const struct conf_marks *marks, const struct cfg_t *section);
/* Forgets every mark (a new parse pass: its sections are new). */
void conf_marks_clear(struct conf_marks *marks);
void conf_marks_free(struct conf_marks *marks);

#endif
