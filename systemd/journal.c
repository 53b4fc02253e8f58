#include "systemd/journal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "conf/addr.h"

/* Made once with `journalctl --new-id128`; never change one, because
 * administrators' filters and alerts key on them. */
static const char *const message_ids[] = {
	[LOG_EVENT_STARTED] = "cda243edc40549809734b542bc249610",
	[LOG_EVENT_STOPPING] = "f0cdb0ef8c0941a5895160411d23b453",
	[LOG_EVENT_RELOAD_APPLIED] = "c663a932280c4fa09b0e0fb469d4fb2f",
	[LOG_EVENT_RELOAD_FAILED] = "3e7fd68b83174817b70f914de43f5a28",
	[LOG_EVENT_LISTENER_BOUND] = "13666ceff02d412ca079631d14b2eefe",
	[LOG_EVENT_LISTENER_BIND_FAILED] = "e17ebe5907374888b53dedc383c395cd",
	[LOG_EVENT_ACCEPT_PAUSED] = "e128e5e4b11e4ee0b7f0aa4b59bb35fa",
	[LOG_EVENT_LIMIT_HIT] = "67836f1c16db427d8adf0ded5d604bd6",
};

#define JOURNAL_FIELDS_MAX 24
#define JOURNAL_FIELD_TEXT 8192

bool journal_stderr_is_journal(void)
{
	const char *stream = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (stream == NULL || sscanf(stream, "%llu:%llu", &dev, &ino) != 2)
		return false;
	if (fstat(STDERR_FILENO, &st) < 0)
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

struct fields {
	struct iovec iov[JOURNAL_FIELDS_MAX];
	int count;
	char text[JOURNAL_FIELD_TEXT];
	size_t used;
};

static void field_add(struct fields *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void field_add(struct fields *f, const char *fmt, ...)
{
	size_t room = sizeof(f->text) - f->used;
	va_list ap;
	int n;

	if (f->count == JOURNAL_FIELDS_MAX)
		return;
	va_start(ap, fmt);
	n = vsnprintf(f->text + f->used, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		return;
	f->iov[f->count].iov_base = f->text + f->used;
	f->iov[f->count].iov_len = (size_t)n;
	f->count++;
	f->used += (size_t)n + 1;
}

static void context_fields(struct fields *f, const struct log_context *ctx)
{
	char addr[ADDR_TEXT_MAX];

	if (ctx->event != LOG_EVENT_NONE && message_ids[ctx->event] != NULL)
		field_add(f, "MESSAGE_ID=%s", message_ids[ctx->event]);
	if (ctx->listener)
		field_add(f, "LISTENER=%s", ctx->listener);
	if (ctx->protocol)
		field_add(f, "PROTOCOL=%s", ctx->protocol);
	if (ctx->transport)
		field_add(f, "TRANSPORT=%s", ctx->transport);
	if (ctx->peer) {
		field_add(f, "REMOTE_ADDR=%s", addr_format(ctx->peer, false, addr, sizeof(addr)));
		field_add(f, "REMOTE_PORT=%u", addr_port(ctx->peer));
	}
	if (ctx->config_file)
		field_add(f, "CONFIG_FILE=%s", ctx->config_file);
	if (ctx->config_line > 0)
		field_add(f, "CONFIG_LINE=%d", ctx->config_line);
	if (ctx->generation)
		field_add(f, "RELOAD_GENERATION=%u", ctx->generation);
	for (size_t i = 0; i < ctx->n_fields; i++)
		field_add(f, "%s=%s", ctx->fields[i].name, ctx->fields[i].value);
}

int journal_send(int level, const char *message, const struct log_context *ctx)
{
	struct fields f = { .count = 0 };

	field_add(&f, "MESSAGE=%s", message);
	field_add(&f, "PRIORITY=%d", level);
	field_add(&f, "SYSLOG_IDENTIFIER=chassisd");
	if (ctx != NULL)
		context_fields(&f, ctx);
	return sd_journal_sendv(f.iov, f.count) < 0 ? -1 : 0;
}
