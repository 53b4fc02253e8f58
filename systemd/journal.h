/* Native journald records.
 *
 * systemd connects a service's stderr to the journal and says so in
 * JOURNAL_STREAM. When that is true, the logger sends each record with
 * sd_journal_sendv instead, so the context becomes fields an administrator
 * can filter on (journalctl LISTENER=web, MESSAGE_ID=...) rather than text.
 * What the fields are is the logger's business; this only carries them. */
#ifndef CHASSISD_SYSTEMD_JOURNAL_H
#define CHASSISD_SYSTEMD_JOURNAL_H

#include <stdbool.h>
#include <stddef.h>

/* True when JOURNAL_STREAM names the device and inode of our stderr. */
bool journal_stderr_is_journal(void);

/* A record being built: "NAME=value" fields in one bounded buffer. */
#define JOURNAL_FIELDS_MAX 24
#define JOURNAL_FIELD_TEXT 8192

struct journal_record {
	struct {
		const char *base;
		size_t len;
	} field[JOURNAL_FIELDS_MAX];
	int count;
	char text[JOURNAL_FIELD_TEXT];
	size_t used;
};

/* Adds one "NAME=value" field; a field that does not fit is left out. */
void journal_field(struct journal_record *record, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Returns -1 when journald could not take the record; the caller then
 * writes it to stderr so nothing is lost. */
int journal_send(const struct journal_record *record);

#endif
