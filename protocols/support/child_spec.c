/* The program options a fortune or cookie section shares, checked at
 * load into a child_spec for the chassis's child runner (daemon/child.h). */
#include "protocols/support/child_spec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool program_runnable(const char *path, struct conf_scope *scope, const char *option)
{
	struct stat st;

	if (path[0] != '/') {
		conf_scope_error(scope, option, "\"%s\" is not an absolute path (nothing is looked up in PATH)", path);
		return false;
	}
	if (stat(path, &st) < 0 || access(path, X_OK) < 0) {
		conf_scope_error(scope, option, "cannot run %s: %s", path, strerror(errno));
		return false;
	}
	if (!S_ISREG(st.st_mode)) {
		conf_scope_error(scope, option, "cannot run %s: not a regular file", path);
		return false;
	}
	return true;
}


bool child_spec_configure_argv(struct child_spec *spec, cfg_t *sec, struct conf_scope *scope,
			       const char *const *default_argv)
{
	size_t n = cfg_size(sec, "command");

	if (n == 0 && default_argv == NULL) {
		conf_scope_error(scope, "command", "no command: say which program to run");
		return false;
	}
	if (n == 0)
		while (default_argv[n] != NULL)
			n++;
	spec->argv = calloc(n + 1, sizeof(char *));
	if (spec->argv == NULL)
		return false;
	for (size_t i = 0; i < n; i++) {
		spec->argv[i] = strdup(cfg_size(sec, "command") ? cfg_getnstr(sec, "command", i) : default_argv[i]);
		if (spec->argv[i] == NULL)
			return false;
	}
	return program_runnable(spec->argv[0], scope, "command");
}

bool child_spec_configure_program(struct child_spec *spec, cfg_t *sec, struct conf_scope *scope,
				  const char *const *default_argv)
{
	const char *workdir = cfg_getstr(sec, "working-directory");
	long timeout, grace, max;
	struct stat st;
	bool ok = child_spec_configure_argv(spec, sec, scope, default_argv);

	ok &= conf_scope_int(scope, sec, "timeout", 1, 86400, &timeout);
	ok &= conf_scope_int(scope, sec, "kill-grace", 0, 60, &grace);
	ok &= conf_scope_int(scope, sec, "max-children", 1, 10000, &max);
	if (workdir[0] != '/' || stat(workdir, &st) < 0 || !S_ISDIR(st.st_mode)) {
		conf_scope_error(scope, "working-directory", "working-directory \"%s\" is not an absolute path to a directory",
				 workdir);
		ok = false;
	}
	spec->workdir = strdup(workdir);
	spec->timeout_ms = (unsigned)timeout * 1000;
	spec->kill_grace_ms = (unsigned)grace * 1000;
	spec->max_children = (unsigned)max;
	return ok && spec->workdir != NULL;
}

bool child_spec_configure(struct child_spec *spec, cfg_t *sec, struct conf_scope *scope,
			  const char *const *default_argv)
{
	const char *busy = cfg_getstr(sec, "when-busy");
	long limit;
	bool ok = child_spec_configure_program(spec, sec, scope, default_argv);

	ok &= conf_scope_int(scope, sec, "output-limit", 1, 1L << 30, &limit);
	if (strcmp(busy, "message") != 0 && strcmp(busy, "close") != 0) {
		conf_scope_error(scope, "when-busy", "when-busy must be \"message\" or \"close\", not \"%s\"", busy);
		ok = false;
	}
	spec->output_limit = (size_t)limit;
	spec->busy_message = strcmp(busy, "message") == 0;
	return ok;
}

void child_spec_free(struct child_spec *spec)
{
	if (spec->argv != NULL)
		for (size_t i = 0; spec->argv[i] != NULL; i++)
			free(spec->argv[i]);
	free(spec->argv);
	free(spec->workdir);
	spec->argv = NULL;
	spec->workdir = NULL;
}
