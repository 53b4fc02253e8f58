/* File name extension -> MIME type, from /etc/mime.types (the
 * media-types package) over a small built-in table, looked up by binary
 * search. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/file.h"
#include "protocols/http/mime.h"

#define MIME_EXTENSION_MAX 16
/* Debian's /etc/mime.types is 60 KB. */
#define MIME_FILE_MAX ((size_t)1 << 20)

struct mime_entry {
	char extension[MIME_EXTENSION_MAX];
	const char *type;		/* points into types */
};

struct mime_table {
	struct mime_entry *entries;
	size_t count, cap;
	char **types;
	size_t n_types, cap_types;
};

/* What a server must know even without /etc/mime.types. */
static const char *const mime_builtin[][2] = {
	{ "html", "text/html" }, { "htm", "text/html" }, { "css", "text/css" },
	{ "js", "text/javascript" }, { "mjs", "text/javascript" }, { "json", "application/json" },
	{ "txt", "text/plain" }, { "xml", "application/xml" }, { "svg", "image/svg+xml" },
	{ "png", "image/png" }, { "jpg", "image/jpeg" }, { "jpeg", "image/jpeg" },
	{ "gif", "image/gif" }, { "webp", "image/webp" }, { "ico", "image/vnd.microsoft.icon" },
	{ "wav", "audio/wav" }, { "mp3", "audio/mpeg" }, { "ogg", "audio/ogg" },
	{ "ts", "video/mp2t" }, { "mp4", "video/mp4" }, { "webm", "video/webm" },
	{ "pdf", "application/pdf" }, { "zip", "application/zip" }, { "gz", "application/gzip" },
	{ "tar", "application/x-tar" }, { "wasm", "application/wasm" }, { "woff2", "font/woff2" },
};

static int mime_compare(const void *a, const void *b)
{
	return strcasecmp(((const struct mime_entry *)a)->extension, ((const struct mime_entry *)b)->extension);
}

static const char *mime_intern(struct mime_table *table, const char *type)
{
	if (table->n_types > 0 && strcmp(table->types[table->n_types - 1], type) == 0)
		return table->types[table->n_types - 1];
	if (table->n_types == table->cap_types) {
		size_t cap = table->cap_types ? table->cap_types * 2 : 64;
		char **grown = realloc(table->types, cap * sizeof(*grown));
		if (grown == NULL)
			return NULL;
		table->types = grown;
		table->cap_types = cap;
	}
	table->types[table->n_types] = strdup(type);
	return table->types[table->n_types] ? table->types[table->n_types++] : NULL;
}

static void mime_add(struct mime_table *table, const char *extension, const char *type)
{
	const char *interned;

	if (strlen(extension) >= MIME_EXTENSION_MAX || (interned = mime_intern(table, type)) == NULL)
		return;
	if (table->count == table->cap) {
		size_t cap = table->cap ? table->cap * 2 : 256;
		struct mime_entry *grown = realloc(table->entries, cap * sizeof(*grown));
		if (grown == NULL)
			return;
		table->entries = grown;
		table->cap = cap;
	}
	snprintf(table->entries[table->count].extension, MIME_EXTENSION_MAX, "%s", extension);
	table->entries[table->count++].type = interned;
}

static void mime_read(struct mime_table *table, char *text)
{
	char *save_line = NULL, *line;

	for (line = strtok_r(text, "\n", &save_line); line != NULL; line = strtok_r(NULL, "\n", &save_line)) {
		char *save = NULL, *type = strtok_r(line, " \t\r", &save), *ext;

		if (type == NULL || type[0] == '#')
			continue;
		while ((ext = strtok_r(NULL, " \t\r", &save)) != NULL)
			mime_add(table, ext, type);
	}
}

struct mime_table *mime_table_load(const char *path, char *err, size_t errlen)
{
	struct mime_table *table;
	char *text = NULL;
	size_t len;

	if (path != NULL && (text = file_read_bounded(path, MIME_FILE_MAX, &len, err, errlen)) == NULL)
		return NULL;
	table = calloc(1, sizeof(*table));
	if (table == NULL) {
		snprintf(err, errlen, "out of memory");
		free(text);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(mime_builtin) / sizeof(mime_builtin[0]); i++)
		mime_add(table, mime_builtin[i][0], mime_builtin[i][1]);
	if (text != NULL) {
		mime_read(table, text);
		free(text);
	}
	/* An extension in both the file and the built-in table may resolve to
	 * either; the two agree on the common types the table holds. */
	qsort(table->entries, table->count, sizeof(*table->entries), mime_compare);
	return table;
}

void mime_table_free(struct mime_table *table)
{
	if (table == NULL)
		return;
	for (size_t i = 0; i < table->n_types; i++)
		free(table->types[i]);
	free(table->types);
	free(table->entries);
	free(table);
}

const char *mime_type_for(const struct mime_table *table, const char *name, size_t len)
{
	struct mime_entry key;
	const struct mime_entry *found;
	const char *dot = NULL;

	for (size_t i = len; i > 0; i--) {
		if (name[i - 1] == '.') {
			dot = name + i - 1;
			break;
		}
		if (name[i - 1] == '/')
			break;
	}
	if (dot == NULL || (size_t)(name + len - dot - 1) >= MIME_EXTENSION_MAX)
		return "application/octet-stream";
	memcpy(key.extension, dot + 1, (size_t)(name + len - dot - 1));
	key.extension[name + len - dot - 1] = '\0';
	found = bsearch(&key, table->entries, table->count, sizeof(key), mime_compare);
	return found ? found->type : "application/octet-stream";
}
