/* The config as libconfuse reads it: the file with its comments blanked and
 * each `include = "PATTERN"` line replaced by the files it names, with the
 * file and line each line of the text came from.
 *
 * libconfuse's own include() neither globs nor sees our comment stripping,
 * and its errors would name lines of the file that holds the include; here
 * every error is mapped back to the file and line it was written on. */
#ifndef CHASSISD_CONF_INCLUDE_H
#define CHASSISD_CONF_INCLUDE_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/errors.h"

#define CONF_MAX_INCLUDE_DEPTH 8
#define CONF_MAX_TEXT_SIZE (16 * 1024 * 1024)	/* the file and all it includes */

struct conf_origin {
	const char *file;			/* one of conf_text.files */
	int line;
};

struct conf_text {
	char *text;				/* NUL-terminated */
	size_t len;
	struct conf_origin *lines;		/* lines[i]: where line i + 1 of text comes from */
	size_t n_lines, cap_lines;
	char **files;				/* every file read, the first the config */
	size_t n_files;
};

/* Reads path and what it includes; false with the errors added (each
 * "FILE:LINE: message" in the file where it is written) otherwise. When
 * only an include failed, out->text still holds the rest, so that the
 * errors further on can be found too; it is NULL when path itself failed. */
bool conf_text_read(const char *path, struct conf_text *out, struct conf_errors *errors);
void conf_text_free(struct conf_text *text);
/* Where a line of the text was written; NULL for a line out of range. */
const struct conf_origin *conf_text_origin(const struct conf_text *text, int line);

#endif
