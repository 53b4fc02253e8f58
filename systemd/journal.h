/* Native journald records.
 *
 * systemd connects a service's stderr to the journal and says so in
 * JOURNAL_STREAM. When that is true, the logger sends each record with
 * sd_journal_sendv instead, so the context becomes fields an administrator
 * can filter on (journalctl LISTENER=web, MESSAGE_ID=...) rather than text. */
#ifndef CHASSISD_SYSTEMD_JOURNAL_H
#define CHASSISD_SYSTEMD_JOURNAL_H

#include <stdbool.h>

#include "daemon/log.h"

/* True when JOURNAL_STREAM names the device and inode of our stderr. */
bool journal_stderr_is_journal(void);

/* Returns -1 when journald could not take the record; the caller then
 * writes it to stderr so nothing is lost. */
int journal_send(int level, const char *message, const struct log_context *ctx);

#endif
