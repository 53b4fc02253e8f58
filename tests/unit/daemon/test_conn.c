/* conn.c on its own: a chassis and an owner of the test's, a loopback TCP
 * pair, no listener and no daemon. */
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
static struct conn *opened;
static unsigned closed_count, inputs;
static enum conn_end last_end;
static bool in_order_at_close;
static void *ref_at_close;

static void on_closed(struct conn_owner *o, struct conn *conn, enum conn_end end)
{
	closed_count++;
	last_end = end;
	ref_at_close = conn_owner_ref(conn);
	(void)o;
}

static void setup(void)
{
	base = event_base_new();
	chassis_init(&chassis, base);
	chassis.max_connections = 100;
	conn_owner_init(&owner, &chassis, on_closed);
	opened = NULL;
	closed_count = inputs = 0;
	in_order_at_close = false;
	ref_at_close = NULL;
}

static void teardown(void)
{
	conn_close_everything(&chassis);
	chassis_cleanup(&chassis);
	event_base_free(base);
}

TestSuite(conn, .init = setup, .fini = teardown);

static int hook_open(struct conn *conn)
{
	opened = conn;
	return 0;
}

static void hook_echo(struct conn *conn, struct evbuffer *in)
{
	inputs++;
	conn_write_buffer(conn, in);
}

static void hook_count(struct conn *conn, struct evbuffer *in)
{
	inputs++;
	evbuffer_drain(in, evbuffer_get_length(in));
	(void)conn;
}

static void hook_shutdown(struct conn *conn)
{
	conn_shutdown_after_flush(conn);
}

static void hook_close(struct conn *conn)
{
	in_order_at_close = conn_ended_in_order(conn);
}

static bool is_closed(void *arg)
{
	(void)arg;
	return closed_count > 0;
}

static bool has_input(void *arg)
{
	(void)arg;
	return inputs > 0;
}

static struct conn_profile profile_with(const struct conn_hooks *hooks)
{
	static int ref;

	return (struct conn_profile){ .hooks = hooks, .buffer_size = 65536, .unit = "t", .protocol = "test",
				      .transport = "tcp", .owner_ref = &ref };
}

static int open_pair(const struct conn_hooks *hooks, size_t buffer_size, unsigned idle_ms)
{
	struct conn_profile profile = profile_with(hooks);
	struct sockaddr_in peer;
	int ours, theirs;

	profile.buffer_size = buffer_size;
	profile.idle_ms = idle_ms;
	tcp_pair(&ours, &theirs, &peer);
	/* Small kernel buffers, so that a test can fill the output. */
	setsockopt(ours, SOL_SOCKET, SO_SNDBUF, &(int){ 4096 }, sizeof(int));
	setsockopt(theirs, SOL_SOCKET, SO_RCVBUF, &(int){ 4096 }, sizeof(int));
	cr_assert_eq(conn_open(&owner, &profile, ours, (struct sockaddr *)&peer, sizeof(peer), NULL), 0);
	return theirs;
}

static void read_exactly(int fd, char *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t n;

		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
		n = recv(fd, buf + got, len - got, MSG_DONTWAIT);
		if (n > 0)
			got += (size_t)n;
		else if (n == 0)
			cr_assert_fail("EOF after %zu of %zu bytes", got, len);
		else
			usleep(1000);
	}
}

Test(conn, bytes_come_back_and_the_owner_counts_the_connection)
{
	static const struct conn_hooks hooks = { .open = hook_open, .input = hook_echo };
	int peer = open_pair(&hooks, 65536, 0);
	char buf[6];

	cr_assert_eq(owner.n_conns, 1);
	cr_assert_eq(chassis.connections, 1);
	cr_assert_eq(chassis.holds, 1, "an open connection holds the daemon");
	cr_assert_eq(send(peer, "hello\n", 6, 0), 6);
	read_exactly(peer, buf, 6);
	cr_assert_arr_eq(buf, "hello\n", 6);
	close(peer);
	cr_assert(run_until(base, is_closed, NULL, 3));
	cr_assert_eq(closed_count, 1);
	cr_assert_eq(last_end, CONN_END_DONE, "the peer's EOF ends it in order: %d", last_end);
	cr_assert_eq(owner.n_conns, 0);
	cr_assert_eq(chassis.connections, 0);
	cr_assert_eq(chassis.holds, 0);
}

Test(conn, half_close_both_ways_ends_in_order)
{
	static const struct conn_hooks hooks = { .open = hook_open, .input = hook_echo,
						 .end_of_input = hook_shutdown, .close = hook_close };
	int peer = open_pair(&hooks, 65536, 0);
	char buf[4];

	cr_assert_eq(send(peer, "abc", 3, 0), 3);
	cr_assert_eq(shutdown(peer, SHUT_WR), 0);
	read_exactly(peer, buf, 3);
	cr_assert_arr_eq(buf, "abc", 3);
	cr_assert(run_until(base, is_closed, NULL, 3));
	cr_assert_eq(recv(peer, buf, 1, 0), 0, "the daemon's side shut down after the echo");
	cr_assert_eq(last_end, CONN_END_DONE);
	cr_assert(in_order_at_close);
	close(peer);
}

Test(conn, abort_resets_the_peer_from_the_connections_own_callback)
{
	static const struct conn_hooks hooks = { .open = hook_open, .close = hook_close };
	int peer = open_pair(&hooks, 65536, 0);
	char buf[4];

	cr_assert_not_null(opened);
	conn_write(opened, "never", 5);
	conn_abort(opened);
	cr_assert_eq(closed_count, 0, "not ended under the caller");
	cr_assert(run_until(base, is_closed, NULL, 3));
	cr_assert_eq(last_end, CONN_END_ABORTED);
	cr_assert_not(in_order_at_close);
	errno = 0;
	while (recv(peer, buf, sizeof(buf), 0) > 0)
		;
	cr_assert_eq(errno, ECONNRESET);
	close(peer);
}

Test(conn, close_after_flush_sends_everything_then_eof)
{
	static const struct conn_hooks hooks = { .open = hook_open };
	int peer = open_pair(&hooks, 65536, 0);
	static char big[300000], got[sizeof(big)];

	memset(big, 'x', sizeof(big));
	conn_write(opened, big, sizeof(big));
	conn_close_after_flush(opened);
	read_exactly(peer, got, sizeof(got));
	cr_assert_arr_eq(got, big, sizeof(big));
	cr_assert(run_until(base, is_closed, NULL, 3));
	cr_assert_eq(recv(peer, got, 1, 0), 0);
	cr_assert_eq(last_end, CONN_END_DONE);
	cr_assert_not_null(ref_at_close, "closed() sees the profile's owner_ref");
	close(peer);
}

Test(conn, idle_connection_is_closed_by_the_sweep)
{
	static const struct conn_hooks hooks = { .open = hook_open };
	int peer = open_pair(&hooks, 65536, 1000);
	double t0 = clock_seconds();

	cr_assert(run_until(base, is_closed, NULL, 4));
	cr_assert_geq(clock_seconds() - t0, 0.95);
	cr_assert_lt(clock_seconds() - t0, 2.5);
	cr_assert_eq(last_end, CONN_END_IDLE);
	close(peer);
}

/* The output is full and the peer does not read. */
static void fill_output(void)
{
	static char block[200000];

	conn_write(opened, block, sizeof(block));
	for (int i = 0; i < 20; i++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	cr_assert(conn_output_full(opened), "%zu queued", conn_output_length(opened));
}

Test(conn, full_output_stops_reading_the_same_connection)
{
	static const struct conn_hooks hooks = { .open = hook_open, .input = hook_count };
	int peer = open_pair(&hooks, 65536, 0);

	fill_output();
	cr_assert_eq(send(peer, "more", 4, 0), 4);
	cr_assert_not(run_until(base, has_input, NULL, 0.5), "a coupled connection must not read while full");
	close(peer);
}

Test(conn, decoupled_connection_reads_while_its_output_is_full)
{
	static const struct conn_hooks hooks = { .open = hook_open, .input = hook_count };
	int peer = open_pair(&hooks, 65536, 0);

	conn_decouple_directions(opened);
	fill_output();
	cr_assert_eq(send(peer, "more", 4, 0), 4);
	cr_assert(run_until(base, has_input, NULL, 2));
	close(peer);
}

static int drained_count;

static void hook_drained(struct conn *conn)
{
	drained_count++;
	(void)conn;
}

static bool has_drained(void *arg)
{
	(void)arg;
	return drained_count > 0;
}

/* A relay writes into one connection from another's hook and pauses the
 * writer: the output may pass its limit and empty in a single flush, and
 * drained() must come all the same, or the writer stays paused. */
Test(conn, output_filled_from_outside_and_flushed_at_once_still_drains)
{
	static const struct conn_hooks hooks = { .open = hook_open, .drained = hook_drained };
	static char block[3000];
	int peer = open_pair(&hooks, 1024, 0);

	conn_write(opened, block, sizeof(block));
	cr_assert(conn_output_full(opened));
	cr_assert(run_until(base, has_drained, NULL, 2), "%zu still queued", conn_output_length(opened));
	cr_assert_eq(conn_output_length(opened), 0);
	close(peer);
}

/* From outside any hook (an upstream that could not be reached), with
 * nothing queued: an orderly end, not a write "failing" on the errno that
 * libevent leaves from an earlier call. */
Test(conn, close_after_flush_from_outside_with_nothing_queued_ends_in_order)
{
	static const struct conn_hooks hooks = { .open = hook_open, .close = hook_close };
	int peer = open_pair(&hooks, 65536, 0);
	char byte;

	errno = EINPROGRESS;
	conn_close_after_flush(opened);
	cr_assert(run_until(base, is_closed, NULL, 3));
	cr_assert_eq(last_end, CONN_END_DONE);
	cr_assert(in_order_at_close);
	cr_assert_eq(recv(peer, &byte, 1, 0), 0, "EOF, not a reset");
	close(peer);
}

static int hook_refuse(struct conn *conn)
{
	(void)conn;
	return -1;
}

/* A module that refuses at open (a child cap reached) while the client's
 * request is already there: the connection must still end, not wait for
 * an event nobody added. */
Test(conn, refused_at_open_with_input_waiting_still_ends)
{
	static const struct conn_hooks hooks = { .open = hook_refuse, .close = hook_close };
	struct conn_profile profile = profile_with(&hooks);
	struct sockaddr_in peer;
	int ours, theirs;
	char byte;

	tcp_pair(&ours, &theirs, &peer);
	cr_assert_eq(send(theirs, "request\n", 8, 0), 8);
	usleep(10000);
	cr_assert_eq(conn_open(&owner, &profile, ours, (struct sockaddr *)&peer, sizeof(peer), NULL), 0);
	cr_assert(run_until(base, is_closed, NULL, 3), "the refused connection never ended");
	cr_assert_leq(recv(theirs, &byte, 1, 0), 0);
	close(theirs);
}

Test(conn, close_now_ends_at_once)
{
	static const struct conn_hooks hooks = { .open = hook_open, .close = hook_close };
	int peer = open_pair(&hooks, 65536, 0);

	conn_close_now(opened);
	cr_assert_eq(closed_count, 1);
	cr_assert_eq(last_end, CONN_END_CLOSED);
	cr_assert_eq(owner.n_conns, 0);
	cr_assert_eq(chassis.holds, 0);
	close(peer);
}
