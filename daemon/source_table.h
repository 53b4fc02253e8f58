/* Open connections per client address, for the per-source limit. */
#ifndef CHASSISD_SOURCE_TABLE_H
#define CHASSISD_SOURCE_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct source_slot;

struct source_table {
	struct source_slot *slots;
	size_t cap;		/* a power of two, or 0 */
	size_t used;
};

/* Counts one more connection from sa's address unless it already has
 * `limit`; false means the limit is reached and nothing was counted. */
bool source_table_acquire(struct source_table *table, const struct sockaddr *sa, unsigned limit);
void source_table_release(struct source_table *table, const struct sockaddr *sa);
unsigned source_table_count(const struct source_table *table, const struct sockaddr *sa);
void source_table_free(struct source_table *table);

#endif
