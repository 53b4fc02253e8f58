/* Blanks out comments in a libconfuse file before libconfuse sees it.
 *
 * libconfuse 3.3 counts a "#" or "//" comment line as three lines, so every
 * error after a comment names the wrong line, and it rejects a comment inside
 * a list (libconfuse#150). Replacing each comment character with a space and
 * keeping every newline fixes both without touching the grammar. */
#ifndef CHASSISD_STRIP_H
#define CHASSISD_STRIP_H

#include <stddef.h>

/* Rewrites text[0..len) in place. Returns the line of the first "{" that
 * is never closed, or 0: libconfuse itself accepts a file that ends inside
 * a section, so a half-saved file would load with options missing. */
int conf_strip_comments(char *text, size_t len);

#endif
