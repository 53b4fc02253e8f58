#include "systemd/journal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

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

void journal_field(struct journal_record *record, const char *fmt, ...)
{
	size_t room = sizeof(record->text) - record->used;
	va_list ap;
	int n;

	if (record->count == JOURNAL_FIELDS_MAX)
		return;
	va_start(ap, fmt);
	n = vsnprintf(record->text + record->used, room, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= room)
		return;
	record->field[record->count].base = record->text + record->used;
	record->field[record->count].len = (size_t)n;
	record->count++;
	record->used += (size_t)n + 1;
}

int journal_send(const struct journal_record *record)
{
	struct iovec iov[JOURNAL_FIELDS_MAX];

	for (int i = 0; i < record->count; i++) {
		iov[i].iov_base = (void *)record->field[i].base;
		iov[i].iov_len = record->field[i].len;
	}
	return sd_journal_sendv(iov, record->count) < 0 ? -1 : 0;
}
