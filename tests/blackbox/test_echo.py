"""Echo (RFC 862) over tcp, udp and multicast, spoken to by real clients."""
import os
import socket
import struct
import subprocess

import pytest

from conftest import connect, echo_listener, echoed, free_port, have_ipv6, recv_exactly


def test_tcp_echo_5_mib_byte_exact(start_daemon):
    port = free_port()
    start_daemon(echo_listener("e", port))
    payload = os.urandom(5 * 1024 * 1024)
    assert echoed(port, payload) == payload


def test_half_close_gets_every_byte_back_with_nc(start_daemon, tmp_path):
    """Kamaelia closed on the client's FIN and echoed nothing; we flush first."""
    port = free_port()
    start_daemon(echo_listener("e", port))
    data = os.urandom(3000)
    r = subprocess.run(["nc", "-N", "127.0.0.1", str(port)], input=data, capture_output=True, timeout=10)
    assert r.returncode == 0
    assert r.stdout == data


def test_half_close_then_eof_on_a_raw_socket(start_daemon):
    port = free_port()
    start_daemon(echo_listener("e", port))
    data = os.urandom(3000)
    with connect(port) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert recv_exactly(s, 3000) == data
        assert s.recv(1) == b""


def test_udp_echo_with_socat(start_daemon):
    port = free_port()
    start_daemon(echo_listener("u", port, transport="udp"))
    r = subprocess.run(["socat", "-t", "2", "-", "UDP4:127.0.0.1:%d" % port], input=b"hello over udp\n",
                       capture_output=True, timeout=10)
    assert r.stdout == b"hello over udp\n"


def test_udp_echo_is_never_truncated(start_daemon):
    port = free_port()
    start_daemon(echo_listener("u", port, transport="udp"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for size in (0, 1, 1024, 1025, 16385, 65507):
            payload = os.urandom(size)
            s.sendto(payload, ("127.0.0.1", port))
            assert s.recv(65536) == payload, size


@pytest.mark.parametrize("source_port", [7, 19])
def test_udp_echo_drops_reflector_source_ports(start_daemon, source_port):
    port = free_port()
    d = start_daemon(echo_listener("u", port, transport="udp"))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as bad, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as good:
        bad.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        bad.bind(("127.0.0.1", source_port))
        bad.settimeout(0.5)
        bad.sendto(b"loop me", ("127.0.0.1", port))
        with pytest.raises(socket.timeout):
            bad.recv(100)
        good.settimeout(5)
        good.sendto(b"fine", ("127.0.0.1", port))
        assert good.recv(100) == b"fine"
    assert "datagrams=2 replies=1 dropped=1" in d.status_dump()


def multicast_receiver_and_sender():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 0)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def test_multicast_echo_answers_the_unicast_source(start_daemon):
    port = free_port(socket.SOCK_DGRAM)
    group = "239.255.77.%d" % (port % 250 + 1)
    start_daemon('listener "g" { protocol = "echo" transport = "multicast" address = "%s:%d" '
                 'interface = "127.0.0.1" ttl = 1 }\n' % (group, port))
    with multicast_receiver_and_sender() as s:
        for payload in (b"to the group", os.urandom(40000)):
            s.sendto(payload, (group, port))
            data, source = s.recvfrom(65536)
            assert data == payload
            assert source == ("127.0.0.1", port)


def test_multicast_echo_with_socat_sender(start_daemon):
    port = free_port(socket.SOCK_DGRAM)
    group = "239.255.78.%d" % (port % 250 + 1)
    start_daemon('listener "g" { protocol = "echo" transport = "multicast" address = "%s:%d" '
                 'interface = "lo" }\n' % (group, port))
    r = subprocess.run(["socat", "-t", "2", "-", "UDP4-DATAGRAM:%s:%d,ip-multicast-if=127.0.0.1,"
                        "ip-multicast-ttl=0,bind=127.0.0.1" % (group, port)],
                       input=b"socat to the group\n", capture_output=True, timeout=10)
    assert r.stdout == b"socat to the group\n"


def test_two_multicast_listeners_share_a_port(start_daemon):
    port = free_port(socket.SOCK_DGRAM)
    groups = ["239.255.79.1", "239.255.79.2"]
    start_daemon("".join('listener "g%d" { protocol = "echo" transport = "multicast" address = "%s:%d" '
                         'interface = "127.0.0.1" }\n' % (i, g, port) for i, g in enumerate(groups)))
    with multicast_receiver_and_sender() as s:
        for g in groups:
            s.sendto(g.encode(), (g, port))
            assert s.recv(100) == g.encode()


@pytest.mark.skipif(not have_ipv6(), reason="no IPv6 on this host")
def test_ipv6_and_dual_stack(start_daemon):
    v6, dual = free_port(), free_port()
    start_daemon(echo_listener("v6", v6, host="[::1]") + echo_listener("dual", dual, host="*") +
                 echo_listener("dual-udp", dual, host="*", transport="udp"))
    for host, port in (("::1", v6), ("::1", dual), ("127.0.0.1", dual)):
        with connect(port, host=host) as s:
            s.sendall(b"v6?")
            assert recv_exactly(s, 3) == b"v6?"
    with pytest.raises(ConnectionRefusedError):
        connect(v6, host="127.0.0.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"v4 to dual", ("127.0.0.1", dual))
        assert s.recv(100) == b"v4 to dual"


def test_many_concurrent_clients(start_daemon):
    port = free_port()
    start_daemon(echo_listener("e", port))
    socks = [connect(port) for _ in range(200)]
    try:
        for i, s in enumerate(socks):
            s.sendall(struct.pack("!I", i))
        for i, s in enumerate(socks):
            assert recv_exactly(s, 4) == struct.pack("!I", i)
    finally:
        for s in socks:
            s.close()
