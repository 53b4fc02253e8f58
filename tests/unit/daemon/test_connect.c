/* connect.c on its own: outbound connections from a unit_env of the
 * test's to listening sockets of the test's. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <string.h>

#include "daemon/chassis.h"
#include "daemon/conn.h"
#include "daemon/core.h"
#include "loop_helpers.h"

static struct event_base *base;
static struct chassis chassis;
static struct conn_owner owner;
static struct conn_profile outbound;
static struct unit_env env;
static struct conn *opened;
static void *opened_data;
static int failed_with;
static unsigned outcomes;
static bool inside_connect;
static bool outcome_inside_connect;

static void on_closed(struct conn_owner *o, struct conn *conn, enum conn_end end)
{
	(void)o;
	(void)conn;
	(void)end;
}

static int hook_open(struct conn *conn)
{
	opened = conn;
	opened_data = conn_data(conn);
	outcomes++;
	outcome_inside_connect |= inside_connect;
	return 0;
}

static void hook_echo(struct conn *conn, struct evbuffer *in)
{
	conn_write_buffer(conn, in);
}

static const struct conn_hooks hooks = { .open = hook_open, .input = hook_echo };

static void on_failed(void *arg, int error)
{
	failed_with = error;
	outcomes++;
	outcome_inside_connect |= inside_connect;
	(void)arg;
}

static void setup(void)
{
	base = event_base_new();
	chassis_init(&chassis, base);
	conn_owner_init(&owner, &chassis, on_closed);
	outbound = (struct conn_profile){ .buffer_size = 65536, .unit = "t", .protocol = "test", .transport = "tcp" };
	env = (struct unit_env){ .base = base, .unit = "t", .chassis = &chassis, .outbound = &owner,
				 .outbound_profile = &outbound };
	opened = NULL;
	opened_data = NULL;
	failed_with = 0;
	outcomes = 0;
	outcome_inside_connect = false;
}

static void teardown(void)
{
	conn_close_everything(&chassis);
	chassis_cleanup(&chassis);
	event_base_free(base);
}

TestSuite(connect, .init = setup, .fini = teardown);

static bool has_outcome(void *arg)
{
	(void)arg;
	return outcomes > 0;
}

static struct connect *start(const char *host, unsigned port, unsigned timeout_ms, void *arg)
{
	struct connect *c;

	inside_connect = true;
	c = conn_connect(&env, host, port, timeout_ms, &hooks, on_failed, arg);
	inside_connect = false;
	cr_assert_not_null(c);
	return c;
}

Test(connect, connects_and_the_connection_is_the_units)
{
	unsigned port;
	int lfd = listen_loopback(4, &port), server;
	char buf[5] = "";
	int token;

	start("127.0.0.1", port, 2000, &token);
	cr_assert_eq(chassis.holds, 1, "a connect in progress holds the daemon");
	cr_assert(run_until(base, has_outcome, NULL, 3));
	cr_assert_not(outcome_inside_connect);
	cr_assert_not_null(opened);
	cr_assert_eq(opened_data, &token, "conn_data() is the connect's arg");
	cr_assert_eq(owner.n_conns, 1);
	cr_assert_eq(chassis.holds, 1, "now held by the connection alone");
	server = accept(lfd, NULL, NULL);
	cr_assert_geq(server, 0);
	cr_assert_eq(send(server, "ping", 4, 0), 4);
	while (recv(server, buf, 4, MSG_DONTWAIT) != 4)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_assert_str_eq(buf, "ping");
	close(server);
	close(lfd);
}

Test(connect, a_closed_port_fails_with_econnrefused_from_the_loop)
{
	unsigned port;
	int lfd = listen_loopback(1, &port);

	close(lfd);
	start("127.0.0.1", port, 2000, NULL);
	cr_assert_eq(outcomes, 0);
	cr_assert(run_until(base, has_outcome, NULL, 3));
	cr_assert_not(outcome_inside_connect);
	cr_assert_eq(failed_with, ECONNREFUSED);
	cr_assert_null(opened);
	cr_assert_eq(chassis.holds, 0);
}

Test(connect, a_name_is_resolved_from_the_hosts_file)
{
	unsigned port;
	int lfd = listen_loopback(4, &port);

	start("localhost", port, 3000, NULL);
	cr_assert(run_until(base, has_outcome, NULL, 4));
	cr_assert_not_null(opened, "failed with %d", failed_with);
	close(lfd);
}

Test(connect, an_upstream_that_never_answers_times_out)
{
	unsigned port;
	int lfd = listen_loopback(0, &port);
	struct sockaddr_in to = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
				  .sin_port = htons((uint16_t)port) };
	int fillers[4];
	double t0;

	/* Fill the accept queue: further SYNs are dropped, unanswered. */
	for (int i = 0; i < 4; i++) {
		fillers[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
		connect(fillers[i], (struct sockaddr *)&to, sizeof(to));
	}
	usleep(100000);
	t0 = clock_seconds();
	start("127.0.0.1", port, 300, NULL);
	cr_assert(run_until(base, has_outcome, NULL, 3));
	cr_assert_eq(failed_with, ETIMEDOUT);
	cr_assert_geq(clock_seconds() - t0, 0.29);
	cr_assert_lt(clock_seconds() - t0, 1.5);
	cr_assert_eq(chassis.holds, 0);
	for (int i = 0; i < 4; i++)
		close(fillers[i]);
	close(lfd);
}

Test(connect, cancel_calls_nothing_and_releases_the_hold)
{
	unsigned port;
	int lfd = listen_loopback(4, &port);
	struct connect *c = start("127.0.0.1", port, 2000, NULL);

	conn_connect_cancel(c);
	cr_assert_eq(chassis.holds, 0);
	cr_assert_not(run_until(base, has_outcome, NULL, 0.3));
	cr_assert_eq(owner.n_conns, 0);
	close(lfd);
}

Test(connect, cancel_while_a_name_resolves)
{
	struct connect *c = start("name.that.does.not.exist.invalid", 80, 2000, NULL);

	conn_connect_cancel(c);
	cr_assert_not(run_until(base, has_outcome, NULL, 0.3));
	cr_assert_eq(chassis.holds, 0);
}
