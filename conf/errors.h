/* A list of error lines, each "FILE:LINE: message" once a loader has
 * placed it: what the config reader and its include expander report into,
 * and what -t, a reload and the control socket print. */
#ifndef CHASSISD_CONF_ERRORS_H
#define CHASSISD_CONF_ERRORS_H

#include <stddef.h>

struct conf_errors {
	char **lines;
	size_t count;
	size_t cap;
};

/* Adds one line; a newline or control byte in it is escaped, so a value
 * cannot forge a second error. Out of memory: the line is lost. */
void conf_errors_add(struct conf_errors *errors, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void conf_errors_clear(struct conf_errors *errors);

#endif
