#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <string.h>

#include "conf/addr.h"

static struct endpoint parse_ok(const char *text)
{
	struct endpoint ep;
	char err[128] = "";

	cr_assert_eq(endpoint_parse(text, &ep, err, sizeof(err)), 0, "%s: %s", text, err);
	return ep;
}

static const char *parse_error(const char *text)
{
	static char err[128];
	struct endpoint ep;

	cr_assert_eq(endpoint_parse(text, &ep, err, sizeof(err)), -1, "%s parsed", text);
	return err;
}

Test(endpoint, ipv4_literal)
{
	struct endpoint ep = parse_ok("127.0.0.1:7007");
	char buf[ADDR_TEXT_MAX];

	cr_assert_eq(ep.sa.ss_family, AF_INET);
	cr_assert_not(ep.any);
	cr_assert_str_eq(addr_format((struct sockaddr *)&ep.sa, true, buf, sizeof(buf)), "127.0.0.1:7007");
}

Test(endpoint, ipv6_literal_in_brackets)
{
	struct endpoint ep = parse_ok("[::1]:80");
	char buf[ADDR_TEXT_MAX];

	cr_assert_eq(ep.sa.ss_family, AF_INET6);
	cr_assert_str_eq(addr_format((struct sockaddr *)&ep.sa, true, buf, sizeof(buf)), "[::1]:80");
}

Test(endpoint, star_is_dual_stack)
{
	struct endpoint ep = parse_ok("*:1717");

	cr_assert(ep.any);
	cr_assert_eq(ep.sa.ss_family, AF_INET6);
	cr_assert_eq(addr_port((struct sockaddr *)&ep.sa), 1717);
}

Test(endpoint, bad_addresses_never_become_wildcards)
{
	cr_assert(strstr(parse_error("localhost:80"), "not an IPv4 address"));
	cr_assert(strstr(parse_error("127.0.0.256:80"), "not an IPv4 address"));
	cr_assert(strstr(parse_error("127.0.0.1"), "missing \":port\""));
	cr_assert(strstr(parse_error(":80"), "missing host"));
	cr_assert(strstr(parse_error("127.0.0.1:0"), "port"));
	cr_assert(strstr(parse_error("127.0.0.1:65536"), "port"));
	cr_assert(strstr(parse_error("127.0.0.1:8o"), "port"));
	cr_assert(strstr(parse_error("::1:80"), "brackets"));
	cr_assert(strstr(parse_error("[127.0.0.1]:80"), "not an IPv4"));
	cr_assert(strstr(parse_error("[::1]80"), "[IPv6]:port"));
	cr_assert(strstr(parse_error("[*]:80"), "no brackets"));
}

static struct sockaddr_storage sockaddr_of(const char *host)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof(ss));
	if (inet_pton(AF_INET, host, &((struct sockaddr_in *)&ss)->sin_addr) == 1)
		ss.ss_family = AF_INET;
	else if (inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&ss)->sin6_addr) == 1)
		ss.ss_family = AF_INET6;
	else
		cr_assert_fail("bad test address %s", host);
	return ss;
}

static bool matches(const char *net, const char *host)
{
	struct cidr cidr;
	struct sockaddr_storage ss = sockaddr_of(host);
	char err[128];

	cr_assert_eq(cidr_parse(net, &cidr, err, sizeof(err)), 0, "%s: %s", net, err);
	return cidr_match(&cidr, (struct sockaddr *)&ss);
}

Test(cidr, matches_by_prefix)
{
	cr_assert(matches("127.0.0.0/8", "127.1.2.3"));
	cr_assert_not(matches("127.0.0.0/8", "128.0.0.1"));
	cr_assert(matches("10.1.2.3", "10.1.2.3"));
	cr_assert_not(matches("10.1.2.3", "10.1.2.4"));
	cr_assert(matches("192.168.0.0/23", "192.168.1.200"));
	cr_assert_not(matches("192.168.0.0/23", "192.168.2.1"));
	cr_assert(matches("0.0.0.0/0", "8.8.8.8"));
	cr_assert(matches("::1", "::1"));
	cr_assert(matches("2001:db8::/32", "2001:db8:ffff::1"));
	cr_assert_not(matches("2001:db8::/32", "2001:db9::1"));
	cr_assert_not(matches("::/0", "1.2.3.4"), "families never mix");
}

/* Peers reach the lists unmapped (a dual-stack listener's 127.0.0.1 is
 * AF_INET), so mapped entries are read as the IPv4 they mean. */
Test(cidr, v4_mapped_entries_match_the_ipv4_peer)
{
	cr_assert(matches("::ffff:127.0.0.1", "127.0.0.1"));
	cr_assert(matches("::ffff:0:0/96", "127.0.0.1"));
	cr_assert(matches("::ffff:0:0/96", "8.8.8.8"));
	cr_assert(matches("::ffff:10.0.0.0/104", "10.200.3.4"));
	cr_assert_not(matches("::ffff:10.0.0.0/104", "11.0.0.1"));
	cr_assert_not(matches("::ffff:127.0.0.1", "::1"));
}

Test(cidr, v4_mapped_network_shorter_than_96_stays_ipv6)
{
	struct cidr cidr;
	char err[128];

	cr_assert_eq(cidr_parse("::ffff:0:0/95", &cidr, err, sizeof(err)), 0);
	cr_assert_eq(cidr.family, AF_INET6);
}

Test(cidr, host_bits_are_masked)
{
	cr_assert(matches("127.0.0.1/8", "127.9.9.9"));
}

Test(cidr, rejects_garbage)
{
	struct cidr cidr;
	char err[128];

	cr_assert_eq(cidr_parse("127.0.0.0/33", &cidr, err, sizeof(err)), -1);
	cr_assert(strstr(err, "0 to 32"));
	cr_assert_eq(cidr_parse("::/129", &cidr, err, sizeof(err)), -1);
	cr_assert_eq(cidr_parse("10.0.0.0/", &cidr, err, sizeof(err)), -1);
	cr_assert_eq(cidr_parse("10.0.0.0/-1", &cidr, err, sizeof(err)), -1);
	cr_assert_eq(cidr_parse("example.com", &cidr, err, sizeof(err)), -1);
	cr_assert_eq(cidr_parse("", &cidr, err, sizeof(err)), -1);
}

Test(addr, unmaps_v4_mapped_v6)
{
	struct sockaddr_storage ss = sockaddr_of("::ffff:10.0.0.7");
	socklen_t len = sizeof(struct sockaddr_in6);
	char buf[ADDR_TEXT_MAX];

	((struct sockaddr_in6 *)&ss)->sin6_port = htons(99);
	addr_unmap(&ss, &len);
	cr_assert_eq(ss.ss_family, AF_INET);
	cr_assert_eq(len, sizeof(struct sockaddr_in));
	cr_assert_str_eq(addr_format((struct sockaddr *)&ss, true, buf, sizeof(buf)), "10.0.0.7:99");
}

Test(addr, multicast_groups)
{
	struct sockaddr_storage a = sockaddr_of("239.255.7.7"), b = sockaddr_of("ff02::1"),
				c = sockaddr_of("127.0.0.1");

	cr_assert(addr_is_multicast((struct sockaddr *)&a));
	cr_assert(addr_is_multicast((struct sockaddr *)&b));
	cr_assert_not(addr_is_multicast((struct sockaddr *)&c));
}

static unsigned scope_of(const char *text, unsigned ifindex)
{
	struct sockaddr_storage ss = sockaddr_of(text);

	addr_scope_group(&ss, ifindex);
	return ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_scope_id : 0;
}

Test(addr, link_and_interface_local_groups_get_the_interface_as_scope)
{
	cr_assert_eq(scope_of("ff02::1:3", 7), 7);
	cr_assert_eq(scope_of("ff12::2:2", 7), 7);	/* transient, link-local */
	cr_assert_eq(scope_of("ff01::1", 7), 7);	/* interface-local */
	cr_assert_eq(scope_of("ff15::2:2", 7), 0);	/* site-local: routed, no scope */
	cr_assert_eq(scope_of("ff0e::1", 7), 0);
	cr_assert_eq(scope_of("fe80::1", 7), 0);	/* not a group */
	cr_assert_eq(scope_of("239.255.2.2", 7), 0);
}

Test(addr, host_port_takes_literals_and_names)
{
	char host[256], err[160];
	unsigned port = 0;

	cr_assert_eq(host_port_parse("127.0.0.1:8080", host, sizeof(host), &port, err, sizeof(err)), 0);
	cr_assert_str_eq(host, "127.0.0.1");
	cr_assert_eq(port, 8080);
	cr_assert_eq(host_port_parse("[::1]:443", host, sizeof(host), &port, err, sizeof(err)), 0);
	cr_assert_str_eq(host, "::1");
	cr_assert_eq(port, 443);
	cr_assert_eq(host_port_parse("backend-1.example.org:25", host, sizeof(host), &port, err, sizeof(err)), 0);
	cr_assert_str_eq(host, "backend-1.example.org");
	cr_assert_eq(port, 25);
	cr_assert_eq(host_port_parse("localhost:1", host, sizeof(host), &port, err, sizeof(err)), 0);
}

Test(addr, host_port_refuses_what_is_neither)
{
	char host[256], err[160];
	unsigned port;

	cr_assert_eq(host_port_parse("localhost", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert(strstr(err, ":port"));
	cr_assert_eq(host_port_parse("localhost:0", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert_eq(host_port_parse("localhost:65536", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert_eq(host_port_parse(":80", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert_eq(host_port_parse("*:80", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert_eq(host_port_parse("bad_name:80", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert(strstr(err, "not an IP address or a host name"));
	cr_assert_eq(host_port_parse("-lead.example:80", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert_eq(host_port_parse("a..b:80", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert_eq(host_port_parse("::1:80", host, sizeof(host), &port, err, sizeof(err)), -1);
	cr_assert(strstr(err, "brackets"));
	cr_assert_eq(host_port_parse("[127.0.0.1]:80", host, sizeof(host), &port, err, sizeof(err)), -1);
}
