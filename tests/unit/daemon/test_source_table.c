#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "daemon/source_table.h"

static struct sockaddr_in v4(uint32_t host)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_addr.s_addr = htonl(host);
	return sin;
}

Test(source_table, enforces_the_limit_per_address)
{
	struct source_table table = { 0 };
	struct sockaddr_in a = v4(0x7f000001), b = v4(0x7f000002);

	cr_assert(source_table_acquire(&table, (struct sockaddr *)&a, 2));
	cr_assert(source_table_acquire(&table, (struct sockaddr *)&a, 2));
	cr_assert_not(source_table_acquire(&table, (struct sockaddr *)&a, 2));
	cr_assert(source_table_acquire(&table, (struct sockaddr *)&b, 2));
	source_table_release(&table, (struct sockaddr *)&a);
	cr_assert(source_table_acquire(&table, (struct sockaddr *)&a, 2));
	cr_assert_eq(source_table_count(&table, (struct sockaddr *)&a), 2);
	source_table_free(&table);
}

Test(source_table, survives_many_addresses_coming_and_going)
{
	struct source_table table = { 0 };
	enum { N = 5000 };

	for (uint32_t round = 0; round < 3; round++) {
		for (uint32_t i = 0; i < N; i++) {
			struct sockaddr_in sa = v4(0x0a000000 + i * 7919);
			cr_assert(source_table_acquire(&table, (struct sockaddr *)&sa, 1));
		}
		for (uint32_t i = 0; i < N; i += 2) {
			struct sockaddr_in sa = v4(0x0a000000 + i * 7919);
			source_table_release(&table, (struct sockaddr *)&sa);
		}
		for (uint32_t i = 0; i < N; i++) {
			struct sockaddr_in sa = v4(0x0a000000 + i * 7919);
			cr_assert_eq(source_table_count(&table, (struct sockaddr *)&sa), i % 2 ? 1u : 0u);
		}
		for (uint32_t i = 1; i < N; i += 2) {
			struct sockaddr_in sa = v4(0x0a000000 + i * 7919);
			source_table_release(&table, (struct sockaddr *)&sa);
		}
		cr_assert_eq(table.used, 0);
	}
	source_table_free(&table);
}
