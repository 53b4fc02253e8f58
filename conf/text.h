/* Text from outside (config values, request paths, headers, names a peer
 * sent) on its way into a log line or an error message. */
#ifndef CHASSISD_CONF_TEXT_H
#define CHASSISD_CONF_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/* Copies in (len bytes) to out as one line: control characters and DEL
 * become \xHH, so no input can end a line, forge another or drive a
 * terminal. Backslashes stay as they are, so that text escaped once (a
 * config error) and logged again reads the same. Always NUL-terminates;
 * cut short rather than split an escape. Returns the length written. */
size_t text_escape(const char *in, size_t len, char *out, size_t cap);

/* The same, and bytes that are not valid UTF-8 become \xHH too: for text
 * that goes into JSON (an ICY title, which any byte may be). */
size_t text_escape_utf8(const char *in, size_t len, char *out, size_t cap);

#endif
