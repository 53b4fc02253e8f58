/* The options every child-running section shares (command, timeout,
 * output-limit ...), read into the child runner's spec (daemon/child.h). */
#ifndef CHASSISD_CHILD_SPEC_H
#define CHASSISD_CHILD_SPEC_H

#include <confuse.h>
#include <stdbool.h>

#include "conf/conf.h"
#include "daemon/child.h"

/* The options of any program: default timeout in seconds and cap. */
#define CHILD_PROGRAM_OPTIONS(timeout, max)                                    \
	CFG_STR_LIST("command", NULL, CFGF_NODEFAULT),                          \
	CFG_STR("working-directory", "/", CFGF_NONE),                           \
	CFG_INT("timeout", (timeout), CFGF_NONE),                               \
	CFG_INT("kill-grace", 2, CFGF_NONE),                                    \
	CFG_INT("max-children", (max), CFGF_NONE)

/* A program whose output the daemon reads; `limit` is the default output
 * cap in bytes. */
#define CHILD_OPTIONS(limit)                                                   \
	CHILD_PROGRAM_OPTIONS(5, 16),                                           \
	CFG_INT("output-limit", (limit), CFGF_NONE),                            \
	CFG_STR("when-busy", "message", CFGF_NONE)

/* Reads CHILD_OPTIONS (argv from `command`, else from default_argv) and
 * checks the program exists and can run. False after reporting an error. */
bool child_spec_configure(struct child_spec *spec, cfg_t *section, struct conf_scope *scope,
			  const char *const *default_argv);
/* CHILD_PROGRAM_OPTIONS only: a program whose output is not read. */
bool child_spec_configure_program(struct child_spec *spec, cfg_t *section, struct conf_scope *scope,
				  const char *const *default_argv);
/* `command` alone (argv[0] absolute, runnable): for a section whose other
 * program options have names of its own (srm's). */
bool child_spec_configure_argv(struct child_spec *spec, cfg_t *section, struct conf_scope *scope,
			       const char *const *default_argv);
void child_spec_free(struct child_spec *spec);

#endif
