/* Files the config names (the config itself, mime types, fortunes, clips):
 * read only when regular, with a size limit, and never in a way that can
 * block the loop. A FIFO, /dev/zero or a 2 GB file is a clear error. */
#ifndef CHASSISD_CONF_FILE_H
#define CHASSISD_CONF_FILE_H

#include <stddef.h>
#include <sys/stat.h>

/* A read-only, close-on-exec fd of a regular file (st filled), opened
 * without blocking; -1 with err set otherwise. */
int file_open_regular(const char *path, struct stat *st, char *err, size_t errlen);
/* The whole file, NUL-terminated (*len without the NUL); NULL with err
 * set when it cannot be opened, is not a regular file, or is larger
 * than max bytes. */
char *file_read_bounded(const char *path, size_t max, size_t *len, char *err, size_t errlen);

#endif
