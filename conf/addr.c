#include "conf/addr.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_port(const char *text, uint16_t *port)
{
	char *end;
	long value;

	if (*text < '0' || *text > '9')
		return -1;
	value = strtol(text, &end, 10);
	if (*end != '\0' || value < 1 || value > 65535)
		return -1;
	*port = (uint16_t)value;
	return 0;
}

static int endpoint_set(struct endpoint *out, const char *host, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&out->sa;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&out->sa;

	memset(out, 0, sizeof(*out));
	if (strcmp(host, "*") == 0) {
		/* One IPv6 socket with IPV6_V6ONLY off takes both families. */
		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons(port);
		out->len = sizeof(*sin6);
		out->any = true;
		return 0;
	}
	if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		out->len = sizeof(*sin);
		return 0;
	}
	if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		out->len = sizeof(*sin6);
		return 0;
	}
	return -1;
}

int endpoint_parse(const char *text, struct endpoint *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *host_start = text, *host_end;
	uint16_t port;
	size_t host_len;

	if (text[0] == '[') {
		host_start = text + 1;
		host_end = strchr(text, ']');
		if (host_end == NULL || host_end[1] != ':') {
			snprintf(err, errlen, "expected \"[IPv6]:port\"");
			return -1;
		}
		colon = host_end + 1;
	} else {
		colon = strrchr(text, ':');
		if (colon == NULL) {
			snprintf(err, errlen, "missing \":port\"");
			return -1;
		}
		host_end = colon;
		if (memchr(text, ':', (size_t)(colon - text)) != NULL) {
			snprintf(err, errlen, "an IPv6 address needs brackets: \"[addr]:port\"");
			return -1;
		}
	}
	if (parse_port(colon + 1, &port) < 0) {
		snprintf(err, errlen, "port must be a number from 1 to 65535");
		return -1;
	}
	host_len = (size_t)(host_end - host_start);
	if (host_len == 0 || host_len >= sizeof(host)) {
		snprintf(err, errlen, "missing host (use \"*\" for all addresses)");
		return -1;
	}
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	if (text[0] == '[' && strcmp(host, "*") == 0) {
		snprintf(err, errlen, "\"*\" takes no brackets");
		return -1;
	}
	if (endpoint_set(out, host, port) < 0 ||
	    (text[0] == '[' && out->sa.ss_family != AF_INET6) ||
	    (text[0] != '[' && out->sa.ss_family == AF_INET6 && !out->any)) {
		snprintf(err, errlen, "\"%s\" is not an IPv4 address, [IPv6] address or *", host);
		return -1;
	}
	return 0;
}

/* A host name as RFC 1123 allows it: labels of letters, digits and
 * hyphens, up to 63 bytes each, 253 in all. */
static bool host_name_valid(const char *name)
{
	size_t label = 0, total = strlen(name);

	if (total == 0 || total > 253 || name[0] == '.' || name[total - 1] == '-')
		return false;
	for (const char *p = name; *p; p++) {
		bool alnum = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9');

		if (*p == '.') {
			if (label == 0 || p[-1] == '-')
				return false;
			label = 0;
		} else if (alnum || (*p == '-' && label > 0)) {
			if (++label > 63)
				return false;
		} else {
			return false;
		}
	}
	return true;
}

int host_port_parse(const char *text, char *host, size_t host_cap, unsigned *port, char *err, size_t errlen)
{
	struct endpoint literal;
	const char *colon = strrchr(text, ':');
	uint16_t p;
	size_t len;

	if (text[0] == '[' || (colon != NULL && memchr(text, ':', (size_t)(colon - text)) != NULL)) {
		if (endpoint_parse(text, &literal, err, errlen) < 0)
			return -1;
		addr_format((struct sockaddr *)&literal.sa, false, host, host_cap);
		*port = addr_port((struct sockaddr *)&literal.sa);
		return 0;
	}
	if (colon == NULL) {
		snprintf(err, errlen, "missing \":port\"");
		return -1;
	}
	if (parse_port(colon + 1, &p) < 0) {
		snprintf(err, errlen, "port must be a number from 1 to 65535");
		return -1;
	}
	len = (size_t)(colon - text);
	if (len == 0 || len >= host_cap) {
		snprintf(err, errlen, "missing or overlong host");
		return -1;
	}
	memcpy(host, text, len);
	host[len] = '\0';
	if (!host_name_valid(host)) {
		snprintf(err, errlen, "\"%s\" is not an IP address or a host name", host);
		return -1;
	}
	*port = p;
	return 0;
}

static void cidr_mask(struct cidr *net)
{
	unsigned size = net->family == AF_INET ? 4 : 16;

	for (unsigned i = 0; i < size; i++) {
		unsigned keep = net->prefix > i * 8 ? net->prefix - i * 8 : 0;
		if (keep < 8)
			net->bytes[i] &= (uint8_t)(0xff00u >> keep);
	}
}

/* "::ffff:a.b.c.d" and networks of /96 and longer inside ::ffff:0:0/96
 * become IPv4: peers are unmapped before any list sees them
 * (addr_unmap), so a mapped entry would never match. */
static void cidr_unmap(struct cidr *net)
{
	static const uint8_t mapped[12] = { [10] = 0xff, [11] = 0xff };

	if (net->family != AF_INET6 || net->prefix < 96 || memcmp(net->bytes, mapped, sizeof(mapped)) != 0)
		return;
	memmove(net->bytes, net->bytes + 12, 4);
	memset(net->bytes + 4, 0, 12);
	net->family = AF_INET;
	net->prefix -= 96;
}

int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(text, '/');
	size_t host_len = slash ? (size_t)(slash - text) : strlen(text);
	unsigned max;

	memset(out, 0, sizeof(*out));
	if (host_len == 0 || host_len >= sizeof(host)) {
		snprintf(err, errlen, "\"%s\" is not an address or network", text);
		return -1;
	}
	memcpy(host, text, host_len);
	host[host_len] = '\0';
	if (inet_pton(AF_INET, host, out->bytes) == 1)
		out->family = AF_INET;
	else if (inet_pton(AF_INET6, host, out->bytes) == 1)
		out->family = AF_INET6;
	else {
		snprintf(err, errlen, "\"%s\" is not an IPv4 or IPv6 address", host);
		return -1;
	}
	max = out->family == AF_INET ? 32 : 128;
	out->prefix = max;
	if (slash) {
		char *end;
		long prefix = strtol(slash + 1, &end, 10);
		if (slash[1] < '0' || slash[1] > '9' || *end != '\0' || prefix > (long)max) {
			snprintf(err, errlen, "prefix length in \"%s\" must be 0 to %u", text, max);
			return -1;
		}
		out->prefix = (unsigned)prefix;
	}
	cidr_unmap(out);
	cidr_mask(out);
	return 0;
}

bool cidr_match(const struct cidr *net, const struct sockaddr *sa)
{
	const uint8_t *bytes;
	unsigned full, rest;

	if (sa->sa_family != net->family)
		return false;
	if (sa->sa_family == AF_INET)
		bytes = (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr;
	else
		bytes = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	full = net->prefix / 8;
	rest = net->prefix % 8;
	if (memcmp(bytes, net->bytes, full) != 0)
		return false;
	return rest == 0 || ((bytes[full] ^ net->bytes[full]) & (0xff00u >> rest)) == 0;
}

void addr_unmap(struct sockaddr_storage *ss, socklen_t *len)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
	struct sockaddr_in sin;

	if (ss->ss_family != AF_INET6 || !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
		return;
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = sin6->sin6_port;
	memcpy(&sin.sin_addr, &sin6->sin6_addr.s6_addr[12], 4);
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, &sin, sizeof(sin));
	*len = sizeof(sin);
}

bool addr_is_multicast(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return IN_MULTICAST(ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr));
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_MULTICAST(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

void addr_scope_group(struct sockaddr_storage *ss, unsigned ifindex)
{
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET6 && sin6->sin6_scope_id == 0 &&
	    (IN6_IS_ADDR_MC_LINKLOCAL(&sin6->sin6_addr) || IN6_IS_ADDR_MC_NODELOCAL(&sin6->sin6_addr)))
		sin6->sin6_scope_id = ifindex;
}

bool addr_equal(const struct sockaddr *a, const struct sockaddr *b)
{
	if (a->sa_family != b->sa_family || addr_port(a) != addr_port(b))
		return false;
	if (a->sa_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr ==
		       ((const struct sockaddr_in *)b)->sin_addr.s_addr;
	return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr,
		      &((const struct sockaddr_in6 *)b)->sin6_addr, 16) == 0;
}

unsigned addr_port(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return ntohs(((const struct sockaddr_in *)sa)->sin_port);
	if (sa->sa_family == AF_INET6)
		return ntohs(((const struct sockaddr_in6 *)sa)->sin6_port);
	return 0;
}

const char *addr_format(const struct sockaddr *sa, bool with_port, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN];
	const void *raw = sa->sa_family == AF_INET
		? (const void *)&((const struct sockaddr_in *)sa)->sin_addr
		: (const void *)&((const struct sockaddr_in6 *)sa)->sin6_addr;

	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    inet_ntop(sa->sa_family, raw, host, sizeof(host)) == NULL) {
		snprintf(buf, len, "?");
		return buf;
	}
	if (!with_port)
		snprintf(buf, len, "%s", host);
	else if (sa->sa_family == AF_INET6)
		snprintf(buf, len, "[%s]:%u", host, addr_port(sa));
	else
		snprintf(buf, len, "%s:%u", host, addr_port(sa));
	return buf;
}
