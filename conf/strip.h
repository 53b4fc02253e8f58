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

/* The line where the first quoted string that spans lines starts, 0 when
 * none does; *ends is the line where it closes (0: the file ends inside it).
 * A string may hold a newline, but after a parse error the first one that
 * does is most often a string whose closing quote is missing: every quote
 * after it pairs with the wrong one, and the error shows up lines later.
 * Run it on stripped text, where no quote is in a comment. */
int conf_find_runaway_string(const char *text, size_t len, int *ends);

#endif
