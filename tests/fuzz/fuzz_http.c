/* The HTTP path as a client drives it: the bytes go down a socket into a
 * real connection of a real http service (the chassis, libhttp-parser,
 * the exchange, routes, static files, status, echo, redirects), and the
 * answer is read until the daemon closes. Nothing here stands in for the
 * project's code; only the listener's accept() is left out. */
#include <event2/event.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/conn.h"
#include "daemon/core.h"
#include "daemon/log.h"
#include "daemon/service.h"
#include "protocols/registry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Turns of the loop one input may take: every answer here is immediate. */
#define FUZZ_TURNS 200

static struct event_base *base;
static struct chassis chassis;
static struct conn_owner owner;
static struct service *service;

static void put_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	if (f != NULL) {
		fputs(text, f);
		fclose(f);
	}
}

/* A site with what the routes look at: an index, a subfolder, a file
 * with a .gz sibling, a folder without an index, a fortune file. */
static char *make_site(void)
{
	static char dir[] = "/tmp/chassisd-fuzz-http-XXXXXX";
	char sub[600];

	if (mkdtemp(dir) == NULL)
		abort();
	put_file(dir, "index.html", "<h1>home</h1>\n");
	put_file(dir, "a.txt", "hello, world\n");
	put_file(dir, "a.txt.gz", "not really gzip\n");
	put_file(dir, "fortunes", "one\n%\ntwo\n%\nthree\n");
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	mkdir(sub, 0755);
	put_file(sub, "index.html", "sub\n");
	snprintf(sub, sizeof(sub), "%s/list", dir);
	mkdir(sub, 0755);
	put_file(sub, "x y.txt", "x\n");
	return dir;
}

static void on_closed(struct conn_owner *o, struct conn *conn, enum conn_end end)
{
	service_release(conn_owner_ref(conn));
	(void)o;
	(void)end;
}

static void setup(void)
{
	const char *site = make_site();
	struct conf_errors errors = { 0 };
	char path[64], text[2048];
	int fd = memfd_create("fuzz.conf", MFD_CLOEXEC), n;
	struct conf *conf;
	struct generation *gen;

	log_set_level(-1);
	n = snprintf(text, sizeof(text),
		     "listener \"web\" {\n protocol = \"http\"\n address = \"127.0.0.1:1\"\n"
		     " http {\n  max-head = 4096  max-body = 65536  access-log = true\n"
		     "  route \"/echo\" { handler = \"echo\" }\n"
		     "  route \"/status\" { handler = \"status\" }\n"
		     "  route \"/metrics\" { handler = \"metrics\" }\n"
		     "  route \"/old\" { handler = \"redirect\"  location = \"/new/\" }\n"
		     "  route \"/fortune\" { handler = \"fortune\"  fortune { file = \"%s/fortunes\" } }\n"
		     "  route \"/\" { handler = \"static\"  root = \"%s\"  autoindex = true }\n"
		     " }\n}\n",
		     site, site);
	if (fd < 0 || write(fd, text, (size_t)n) != n)
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	conf = conf_load(path, protocol_config_table(), &errors);
	if (conf == NULL) {
		for (size_t i = 0; i < errors.count; i++)
			fprintf(stderr, "%s\n", errors.lines[i]);
		abort();
	}
	base = event_base_new();
	chassis_init(&chassis, base);
	chassis.max_connections = 100;
	conn_owner_init(&owner, &chassis, on_closed);
	gen = generation_new(conf, 1);
	service = service_new(&chassis, gen, &conf->listeners[0], NULL);
	if (service == NULL)
		abort();
	generation_release(gen);	/* the service holds it */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in peer = { .sin_family = AF_INET, .sin_port = htons(40000),
				    .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	char sink[65536];
	size_t sent = 0;
	int fds[2];

	if (base == NULL)
		setup();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds) < 0)
		return 0;
	service_ref(service);
	if (conn_open(&owner, &service->profile, fds[0], (struct sockaddr *)&peer, sizeof(peer), NULL) < 0) {
		service_release(service);
		close(fds[1]);
		return 0;
	}
	for (int turn = 0; turn < FUZZ_TURNS && owner.n_conns > 0; turn++) {
		if (sent < size) {
			ssize_t n = write(fds[1], data + sent, size - sent);
			if (n > 0 && (sent += (size_t)n) == size)
				shutdown(fds[1], SHUT_WR);
		} else if (size == 0 && turn == 0) {
			shutdown(fds[1], SHUT_WR);
		}
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		while (read(fds[1], sink, sizeof(sink)) > 0)
			;
	}
	conn_close_everything(&chassis);
	close(fds[1]);
	return 0;
}
