/* Inside conf/: one loading pass over a file, as the loader (conf.c) and
 * the scopes it hands to modules (scope.c) share it. Not for modules:
 * they see conf/scope.h. */
#ifndef CHASSISD_CONF_PASS_H
#define CHASSISD_CONF_PASS_H

#include <stdbool.h>
#include <stddef.h>

#include "conf/errors.h"
#include "conf/marks.h"
#include "conf/scope.h"

/* A module's word that it needs a datagram listener by name (an HTTP
 * stream route's): checked once every listener is known. */
struct conf_listener_ref {
	char *where;				/* "FILE:LINE: listener \"web\": route \"/tv\": " */
	char *name;
};

struct conf_pass {
	const char *path;
	struct conf_errors *errors;
	struct conf_marks marks;
	struct conf_listener_ref *refs;
	size_t n_refs;
};

struct conf_scope {
	struct conf_pass *pass;
	struct cfg_t *section;
	const char *listener;			/* the unit's name */
	const char *unit_kind;			/* "listener" or "stream" */
	const struct conf_stream *stream;	/* a stream's, parsed before its module's section */
	enum transport transport;
	int fallback_line;
	bool failed;
	char label[160];		/* a nested section: "route \"/\": " */
	struct conf_scope *outer;
};

void conf_pass_refs_free(struct conf_pass *pass);

#endif
