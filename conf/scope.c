#include "conf/scope.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <confuse.h>

#include "conf/pass.h"

static void scope_verror(struct conf_scope *scope, int line, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

static void scope_verror(struct conf_scope *scope, int line, const char *fmt, va_list ap)
{
	char message[512];

	vsnprintf(message, sizeof(message), fmt, ap);
	conf_errors_add(scope->pass->errors, "%s:%d: %s \"%s\": %s%s", scope->pass->path, line,
			scope->unit_kind ? scope->unit_kind : "listener", scope->listener, scope->label, message);
	scope->failed = true;
}

int conf_scope_line(const struct conf_scope *scope, const char *option)
{
	return conf_marks_line_or(&scope->pass->marks, scope->section, option, scope->fallback_line);
}

void conf_scope_error(struct conf_scope *scope, const char *option, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	scope_verror(scope, conf_scope_line(scope, option), fmt, ap);
	va_end(ap);
}

const char *conf_scope_listener(const struct conf_scope *scope)
{
	return scope->listener;
}

const struct conf_stream *conf_scope_stream(const struct conf_scope *scope)
{
	return scope->stream;
}

enum transport conf_scope_transport(const struct conf_scope *scope)
{
	return scope->transport;
}

bool conf_scope_is_stream(const struct conf_scope *scope)
{
	return scope->unit_kind != NULL && strcmp(scope->unit_kind, "stream") == 0;
}

bool conf_scope_int(struct conf_scope *scope, struct cfg_t *sec, const char *option, long min, long max, long *value)
{
	*value = cfg_getint(sec, option);
	if (*value >= min && *value <= max)
		return true;
	conf_scope_error(scope, option, "%s must be from %ld to %ld", option, min, max);
	return false;
}

bool conf_scope_written(const struct conf_scope *scope, const char *option)
{
	return conf_marks_written(&scope->pass->marks, scope->section, option);
}

void conf_scope_refer_datagram_listener(struct conf_scope *scope, const char *option, const char *name)
{
	struct conf_pass *pass = scope->pass;
	struct conf_listener_ref *refs = realloc(pass->refs, (pass->n_refs + 1) * sizeof(*refs));
	struct conf_listener_ref *ref;

	if (refs == NULL)
		return;
	pass->refs = refs;
	ref = &refs[pass->n_refs];
	if (asprintf(&ref->where, "%s:%d: %s \"%s\": %s", pass->path, conf_scope_line(scope, option),
		     scope->unit_kind ? scope->unit_kind : "listener", scope->listener, scope->label) < 0)
		return;
	ref->name = strdup(name);
	if (ref->name == NULL) {
		free(ref->where);
		return;
	}
	pass->n_refs++;
}

char *conf_scope_where(struct conf_scope *scope, const char *option)
{
	char *where;

	if (asprintf(&where, "%s:%d: %s \"%s\": %s", scope->pass->path,
		     option ? conf_scope_line(scope, option) : scope->fallback_line,
		     scope->unit_kind ? scope->unit_kind : "listener", scope->listener, scope->label) < 0)
		return NULL;
	return where;
}

struct conf_scope *conf_scope_enter(struct conf_scope *scope, struct cfg_t *section, const char *label)
{
	struct conf_scope *inner = malloc(sizeof(*inner));
	int line = conf_marks_section_line(&scope->pass->marks, section);

	if (inner == NULL)
		return NULL;
	*inner = *scope;
	inner->section = section;
	inner->fallback_line = line ? line : scope->fallback_line;
	inner->failed = false;
	inner->outer = scope;
	if (snprintf(inner->label, sizeof(inner->label), "%s%s: ", scope->label, label) >= (int)sizeof(inner->label))
		strcpy(inner->label + sizeof(inner->label) - 6, "...: ");
	return inner;
}

bool conf_scope_leave(struct conf_scope *inner)
{
	bool ok = !inner->failed;

	if (!ok)
		inner->outer->failed = true;
	free(inner);
	return ok;
}

void conf_pass_refs_free(struct conf_pass *pass)
{
	for (size_t i = 0; i < pass->n_refs; i++) {
		free(pass->refs[i].where);
		free(pass->refs[i].name);
	}
	free(pass->refs);
	pass->refs = NULL;
	pass->n_refs = 0;
}
