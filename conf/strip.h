/* Blanks out comments in a libconfuse file before libconfuse sees it.
 *
 * libconfuse 3.3 counts a "#" or "//" comment line as three lines, so every
 * error after a comment names the wrong line, and it rejects a comment inside
 * a list (libconfuse#150). Replacing each comment character with a space and
 * keeping every newline fixes both without touching the grammar. */
#ifndef CHASSISD_STRIP_H
#define CHASSISD_STRIP_H

#include <stddef.h>

/* Rewrites text[0..len) in place. Returns 0, or the line of the first
 * way the file ends too early with *problem saying which: a "{" never
 * closed, a string or a block comment the file ends inside, a NUL byte.
 * libconfuse accepts the first three and stops at the last without a
 * word, so a half-saved file would load with options missing. */
int conf_strip_comments(char *text, size_t len, const char **problem);

#endif
