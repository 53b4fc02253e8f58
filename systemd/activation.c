#include "systemd/activation.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "conf/conf.h"

struct passed_socket {
	int fd;
	char *name;
};

static struct passed_socket *passed;
static size_t n_passed;

size_t activation_init(void)
{
	char **names = NULL;
	int n = sd_listen_fds_with_names(1, &names);

	if (n <= 0)
		return 0;
	passed = calloc((size_t)n, sizeof(*passed));
	for (int i = 0; i < n; i++) {
		if (passed != NULL) {
			passed[i].fd = SD_LISTEN_FDS_START + i;
			passed[i].name = names[i];
		} else {
			free(names[i]);
		}
	}
	n_passed = passed != NULL ? (size_t)n : 0;
	free(names);
	return n_passed;
}

static bool is_wildcard(const struct sockaddr *sa)
{
	static const unsigned char zero[16];

	if (sa->sa_family == AF_INET)
		return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
	return memcmp(&((const struct sockaddr_in6 *)sa)->sin6_addr, zero, 16) == 0;
}

static bool socket_matches(const struct conf_listener *conf, int type, const struct sockaddr *sa)
{
	const struct sockaddr *want = (const struct sockaddr *)&conf->endpoint.sa;

	if (type != (conf->transport == TRANSPORT_TCP ? SOCK_STREAM : SOCK_DGRAM))
		return false;
	if (conf->endpoint.any)
		return is_wildcard(sa) && addr_port(sa) == addr_port(want);
	return addr_equal(sa, want);
}

static int adopt(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	/* systemd passes blocking sockets unless NonBlocking=yes; libevent
	 * needs them non-blocking. */
	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 || fcntl(fd, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	return fd;
}

int activation_take(const struct conf_listener *conf, int *fd, char *err, size_t errlen)
{
	for (size_t i = 0; i < n_passed; i++) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		int type = 0;
		socklen_t type_len = sizeof(type);
		char text[ADDR_TEXT_MAX];

		if (passed[i].fd < 0 || strcmp(passed[i].name, conf->unit.name) != 0)
			continue;
		if (getsockname(passed[i].fd, (struct sockaddr *)&ss, &len) < 0 ||
		    getsockopt(passed[i].fd, SOL_SOCKET, SO_TYPE, &type, &type_len) < 0 ||
		    (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)) {
			snprintf(err, errlen, "socket passed as \"%s\" is not an IP socket", passed[i].name);
			return -1;
		}
		addr_unmap(&ss, &len);
		if (!socket_matches(conf, type, (struct sockaddr *)&ss)) {
			snprintf(err, errlen, "socket passed as \"%s\" is %s %s, but the listener is %s %s",
				 passed[i].name, type == SOCK_STREAM ? "tcp" : "udp",
				 addr_format((struct sockaddr *)&ss, true, text, sizeof(text)),
				 transport_name(conf->transport), conf->address);
			return -1;
		}
		*fd = adopt(passed[i].fd);
		passed[i].fd = -1;
		if (*fd < 0) {
			snprintf(err, errlen, "socket passed as \"%s\" cannot be made non-blocking", conf->unit.name);
			return -1;
		}
		return 1;
	}
	return 0;
}

void activation_release_unclaimed(void (*unclaimed)(const char *name))
{
	for (size_t i = 0; i < n_passed; i++) {
		if (passed[i].fd >= 0) {
			unclaimed(passed[i].name);
			close(passed[i].fd);
		}
		free(passed[i].name);
	}
	free(passed);
	passed = NULL;
	n_passed = 0;
}
