#include <criterion/criterion.h>

#include "daemon/protocol.h"
#include "protocols/registry.h"

Test(registry, finds_echo_on_every_transport)
{
	const struct protocol *echo = protocol_find("echo");

	cr_assert_not_null(echo);
	cr_assert_str_eq(echo->config.name, "echo");
	cr_assert(echo->config.transports & TRANSPORT_BIT(TRANSPORT_TCP));
	cr_assert(echo->config.transports & TRANSPORT_BIT(TRANSPORT_UDP));
	cr_assert(echo->config.transports & TRANSPORT_BIT(TRANSPORT_MULTICAST));
	cr_assert_not_null(echo->conn.input);
	cr_assert_not_null(echo->datagram);
}

Test(registry, unknown_names_are_not_found)
{
	cr_assert_null(protocol_find("nope"));
	cr_assert_null(protocol_find(""));
	cr_assert_null(protocol_find("ECHO"));
}

Test(registry, table_is_null_terminated_and_names_unique)
{
	const struct protocol *const *all = protocol_all();
	size_t n = 0;

	for (; all[n] != NULL; n++)
		for (size_t j = 0; j < n; j++)
			cr_assert_str_neq(all[n]->config.name, all[j]->config.name);
	cr_assert_geq(n, 1);
}

Test(registry, config_table_is_the_same_table)
{
	const struct protocol *const *all = protocol_all();
	const struct conf_module *const *configs = protocol_config_table();
	size_t n = 0;

	for (; all[n] != NULL; n++)
		cr_assert_eq(configs[n], &all[n]->config);
	cr_assert_null(configs[n]);
}
