/* Socket address and CIDR parsing, matching and formatting. */
#ifndef CHASSISD_ADDR_H
#define CHASSISD_ADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/* Long enough for "[ffff:...:255.255.255.255]:65535". */
#define ADDR_TEXT_MAX 64

struct endpoint {
	struct sockaddr_storage sa;
	socklen_t len;
	bool any;		/* written as "*:port": all IPv4 and IPv6 addresses */
};

struct cidr {
	int family;		/* AF_INET or AF_INET6 */
	uint8_t bytes[16];
	unsigned prefix;
};

/* "host:port", "[v6]:port" or "*:port"; the host must be a literal. */
int endpoint_parse(const char *text, struct endpoint *out, char *err, size_t errlen);
/* Where to connect: "host:port" or "[v6]:port", the host an IP literal
 * or a name (resolved later, when connecting). host gets the bare host:
 * "::1", not "[::1]". */
int host_port_parse(const char *text, char *host, size_t host_cap, unsigned *port, char *err, size_t errlen);
/* "a.b.c.d/n", "v6/n", or a bare address (a host route). */
int cidr_parse(const char *text, struct cidr *out, char *err, size_t errlen);
bool cidr_match(const struct cidr *net, const struct sockaddr *sa);

/* Rewrites an IPv4-mapped IPv6 address as plain IPv4, so that limits,
 * access lists and logs see one form of each client. */
void addr_unmap(struct sockaddr_storage *ss, socklen_t *len);
bool addr_is_multicast(const struct sockaddr *sa);
/* A v6 group of interface- or link-local scope (ff01::/16, ff02::/16 and
 * flag variants) names its link by scope id: bind() refuses it without. */
void addr_scope_group(struct sockaddr_storage *ss, unsigned ifindex);
bool addr_equal(const struct sockaddr *a, const struct sockaddr *b);	/* address and port */
unsigned addr_port(const struct sockaddr *sa);
/* "1.2.3.4:5" or "[::1]:5"; with_port = false leaves the port out. */
const char *addr_format(const struct sockaddr *sa, bool with_port, char *buf, size_t len);

#endif
