/* MIME types by file name: /etc/mime.types over a built-in table. */
#ifndef CHASSISD_HTTP_MIME_H
#define CHASSISD_HTTP_MIME_H

#include <stddef.h>

struct mime_table;

/* path NULL: the built-in table alone. NULL with err set when the file
 * cannot be read (not a regular file, larger than 1 MiB). */
struct mime_table *mime_table_load(const char *path, char *err, size_t errlen);
void mime_table_free(struct mime_table *table);
const char *mime_type_for(const struct mime_table *table, const char *name, size_t len);


#endif
