/* Open addressing with linear probing and backward-shift deletion: no
 * tombstones, so a long-running daemon's table never degrades. */
#include "daemon/source_table.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

struct source_slot {
	uint8_t key[16];	/* IPv4 as ::ffff:a.b.c.d */
	unsigned count;		/* 0 = empty */
};

static void source_key(const struct sockaddr *sa, uint8_t key[16])
{
	if (sa->sa_family == AF_INET6) {
		memcpy(key, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
		return;
	}
	memset(key, 0, 10);
	key[10] = key[11] = 0xff;
	memcpy(key + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
}

static size_t source_hash(const uint8_t key[16])
{
	uint64_t h = 1469598103934665603ull;	/* FNV-1a */

	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 1099511628211ull;
	return (size_t)(h ^ (h >> 29));
}

static struct source_slot *source_find(const struct source_table *table, const uint8_t key[16])
{
	size_t mask = table->cap - 1;

	if (table->cap == 0)
		return NULL;
	for (size_t i = source_hash(key) & mask;; i = (i + 1) & mask) {
		struct source_slot *slot = &table->slots[i];
		if (slot->count == 0 || memcmp(slot->key, key, 16) == 0)
			return slot;
	}
}

static int source_grow(struct source_table *table)
{
	struct source_table bigger = { .cap = table->cap ? table->cap * 2 : 64 };

	bigger.slots = calloc(bigger.cap, sizeof(*bigger.slots));
	if (bigger.slots == NULL)
		return -1;
	for (size_t i = 0; i < table->cap; i++) {
		struct source_slot *old = &table->slots[i];
		if (old->count != 0)
			*source_find(&bigger, old->key) = *old;
	}
	bigger.used = table->used;
	free(table->slots);
	*table = bigger;
	return 0;
}

bool source_table_acquire(struct source_table *table, const struct sockaddr *sa, unsigned limit)
{
	struct source_slot *slot;
	uint8_t key[16];

	if ((table->used + 1) * 2 > table->cap && source_grow(table) < 0)
		return false;
	source_key(sa, key);
	slot = source_find(table, key);
	if (slot->count >= limit)
		return false;
	if (slot->count++ == 0) {
		memcpy(slot->key, key, 16);
		table->used++;
	}
	return true;
}

void source_table_release(struct source_table *table, const struct sockaddr *sa)
{
	size_t mask = table->cap - 1, hole, i;
	struct source_slot *slot;
	uint8_t key[16];

	source_key(sa, key);
	slot = source_find(table, key);
	if (slot == NULL || slot->count == 0 || --slot->count > 0)
		return;
	table->used--;
	/* Shift later members of the probe run back into the hole. */
	hole = (size_t)(slot - table->slots);
	for (i = (hole + 1) & mask; table->slots[i].count != 0; i = (i + 1) & mask) {
		size_t home = source_hash(table->slots[i].key) & mask;
		if (((i - home) & mask) >= ((i - hole) & mask)) {
			table->slots[hole] = table->slots[i];
			hole = i;
		}
	}
	table->slots[hole].count = 0;
}

unsigned source_table_count(const struct source_table *table, const struct sockaddr *sa)
{
	uint8_t key[16];
	const struct source_slot *slot;

	source_key(sa, key);
	slot = source_find(table, key);
	return slot ? slot->count : 0;
}

void source_table_free(struct source_table *table)
{
	free(table->slots);
	memset(table, 0, sizeof(*table));
}
