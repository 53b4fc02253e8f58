"""Limits: each refuses or closes the one offender; the listener keeps serving."""
import re
import resource
import subprocess
import socket
import time

import pytest

from conftest import connect, echo_listener, echo_once, free_port, is_closed_by_peer


def test_listener_max_connections_refuses_only_the_extra_client(start_daemon):
    port = free_port()
    d = start_daemon(echo_listener("e", port, "max-connections = 3"))
    clients = [connect(port) for _ in range(3)]
    for c in clients:
        assert echo_once(c)
    extra = connect(port)
    assert is_closed_by_peer(extra)
    for c in clients:
        assert echo_once(c), "the others keep working"
    clients.pop().close()
    time.sleep(0.2)
    with connect(port) as again:
        assert echo_once(again), "a freed slot is usable again"
    d.wait_log(r"<5>connection refused: listener max-connections reached listener=e .*peer=127\.0\.0\.1:")
    assert "refused_limit=1" in d.status_dump()
    for c in clients:
        c.close()


def test_daemon_wide_max_connections(start_daemon):
    a, b = free_port(), free_port()
    start_daemon("max-connections = 2\n" + echo_listener("a", a) + echo_listener("b", b))
    first, second = connect(a), connect(b)
    assert echo_once(first) and echo_once(second)
    assert is_closed_by_peer(connect(b))
    assert echo_once(first) and echo_once(second)


def test_per_source_limit_counts_each_address(start_daemon):
    port = free_port()
    d = start_daemon(echo_listener("e", port, "per-source = 2"))
    mine = [connect(port, source="127.0.0.1") for _ in range(2)]
    for c in mine:
        assert echo_once(c)
    assert is_closed_by_peer(connect(port, source="127.0.0.1"))
    with connect(port, source="127.0.0.2") as other:
        assert echo_once(other), "another address has its own allowance"
    assert all(echo_once(c) for c in mine)
    assert "refused_per_source=1" in d.status_dump()


def test_idle_timeout_closes_between_t_and_t_plus_1(start_daemon):
    port = free_port()
    start_daemon(echo_listener("e", port, "idle-timeout = 2"))
    with connect(port, timeout=10) as s:
        assert echo_once(s)
        t0 = time.monotonic()
        assert s.recv(1) == b""
        waited = time.monotonic() - t0
    # The daemon's idle clock started when it read the ping, a little
    # before t0 (after the echo came back): up to a round trip early.
    assert 1.95 <= waited <= 3.0, waited


def test_idle_timeout_is_reset_by_input(start_daemon):
    port = free_port()
    start_daemon(echo_listener("e", port, "idle-timeout = 1"))
    with connect(port) as s:
        for _ in range(6):
            time.sleep(0.5)
            assert echo_once(s)


def test_allow_and_deny(start_daemon):
    port, udp = free_port(), free_port()
    acl = 'allow = {"127.0.0.0/8"}\n deny = {"127.0.0.3", "127.0.0.64/26"}'
    d = start_daemon(echo_listener("e", port, acl) + echo_listener("u", udp, 'allow = {"127.0.0.2"}', "udp"))
    for source in ("127.0.0.1", "127.0.0.2", "127.0.0.200"):
        with connect(port, source=source) as s:
            assert echo_once(s), source
    for source in ("127.0.0.3", "127.0.0.65", "127.0.0.127"):
        assert is_closed_by_peer(connect(port, source=source)), source
    for source, answered in (("127.0.0.2", True), ("127.0.0.1", False)):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind((source, 0))
            s.settimeout(0.5)
            s.sendto(b"acl", ("127.0.0.1", udp))
            if answered:
                assert s.recv(10) == b"acl"
            else:
                with pytest.raises(socket.timeout):
                    s.recv(10)
    status = d.status_dump()
    assert "denied=3" in status and "datagrams=2 replies=1 dropped=0 denied=1" in status


def test_v4_mapped_entries_on_a_dual_stack_listener(start_daemon):
    """An administrator may write the client as the v6 socket sees it."""
    denied, allowed = free_port(), free_port()
    d = start_daemon(echo_listener("d", denied, 'deny = {"::ffff:127.0.0.1"}', host="*") +
                     echo_listener("a", allowed, 'allow = {"::ffff:0:0/96"}', host="*"))
    assert is_closed_by_peer(connect(denied))
    with connect(denied, source="127.0.0.2") as s:
        assert echo_once(s)
    with connect(allowed) as s:
        assert echo_once(s)
    assert "denied=1" in d.status_dump()


def test_empty_allow_list_lets_nobody_in(start_daemon):
    empty, absent = free_port(), free_port()
    d = start_daemon(echo_listener("empty", empty, "allow = {}") + echo_listener("absent", absent))
    assert is_closed_by_peer(connect(empty))
    with connect(absent) as s:
        assert echo_once(s), "no allow line: everyone"
    assert "denied=1" in d.status_dump()


def test_client_that_never_reads_cannot_grow_the_daemon(start_daemon):
    """Backpressure: reading stops once buffer-size bytes wait for the client."""
    port = free_port()
    d = start_daemon(echo_listener("e", port, "buffer-size = 65536"))
    with connect(port) as probe:
        assert echo_once(probe)
    rss_before = d.rss_kib()
    s = connect(port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
    s.setblocking(False)
    chunk = b"x" * 65536
    sent, stalled_since = 0, None
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and sent < 512 * 1024 * 1024:
        try:
            sent += s.send(chunk)
            stalled_since = None
        except BlockingIOError:
            stalled_since = stalled_since or time.monotonic()
            if time.monotonic() - stalled_since > 1.0:
                break
            time.sleep(0.01)
    growth = d.rss_kib() - rss_before
    assert stalled_since is not None, "the daemon kept reading %d bytes nobody read" % sent
    assert sent < 32 * 1024 * 1024, sent
    assert growth < 8 * 1024, "RSS grew %d KiB" % growth
    with connect(port) as other:
        assert echo_once(other), "other clients are unaffected"
    s.close()


def test_out_of_fds_pauses_accepting_without_spinning(start_daemon):
    port = free_port()

    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))

    # No control socket: the arithmetic below counts the daemon's own fds.
    d = start_daemon('control-socket = ""\n' + echo_listener("e", port, "per-source = 1000\n max-connections = 1000"),
                     preexec=few_fds, control=False)
    clients = []
    for _ in range(40):
        clients.append(connect(port))
    d.wait_log(r"<4>accept paused: Too many open files; resuming when a connection closes listener=e")
    cpu_before = d.cpu_seconds()
    time.sleep(2.0)
    assert d.cpu_seconds() - cpu_before < 0.5, "the loop spins while out of fds"
    assert d.log().count("accept paused") == 1, "logged once per episode"
    for c in clients[:15]:
        c.close()
    served = 0
    for c in clients[15:]:
        if echo_once(c):
            served += 1
    assert served == 25, "connections waiting in the backlog are served once fds are free"
    d.wait_log(r"<5>accepting again listener=e")
    for c in clients[15:]:
        c.close()


def receive_buffer(port):
    """The kernel's receive buffer of the udp socket on port (ss: rb)."""
    out = subprocess.run(["ss", "-u", "-a", "-m", "-n", "sport = :%d" % port], capture_output=True, text=True,
                         check=True).stdout
    found = re.search(r"\brb(\d+)\b", out)
    assert found, out
    return int(found.group(1))


def test_receive_buffer_sizes_a_datagram_listeners_socket_and_a_reload_changes_it(start_daemon):
    port = free_port()
    d = start_daemon(echo_listener("u", port, "  receive-buffer = 4194304", transport="udp"))
    # Linux counts its bookkeeping too: it reports twice what was set.
    assert receive_buffer(port) == 2 * 4194304
    d.reload(echo_listener("u", port, "  receive-buffer = 1048576", transport="udp"))
    d.wait_log(r"reload 2: 1 kept")
    assert receive_buffer(port) == 2 * 1048576
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:     # the kept socket still answers
        u.settimeout(5)
        u.sendto(b"x", ("127.0.0.1", port))
        assert u.recv(16) == b"x"
