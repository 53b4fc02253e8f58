"""The relay protocol: the real daemon between real clients (curl, nc,
sockets) and real upstreams (chassisd's own echo and http listeners,
haproxy, small servers of the test's)."""
import json
import hashlib
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import (BINARY, connect, echo_listener, echoed, free_port, have_ipv6, read_all, recv_exactly, wait_until)


def relay_listener(name, port, upstreams, relay_extra="", extra="", host="127.0.0.1"):
    ups = ", ".join('"%s"' % u for u in upstreams)
    return ('listener "%s" {\n  protocol = "relay"\n  address = "%s:%d"\n%s\n'
            '  relay {\n    upstream = {%s}\n%s\n  }\n}\n') % (name, host, port, extra, ups, relay_extra)


def status_listener(port):
    return ('listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
            '  http { access-log = false  route "/status" { handler = "status" }'
            '  route "/metrics" { handler = "metrics" } }\n}\n') % port


def status(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=5) as r:
        return json.load(r)


def listener_status(port, name):
    return next(l for l in status(port)["listeners"] if l["name"] == name)


def upstream_row(port, listener, upstream):
    return next(u for u in listener_status(port, listener)["module"]["upstream"] if u["name"] == upstream)


class Upstream:
    """A TCP server of the test's: accepts, runs handler(conn) per client."""

    def __init__(self, handler, host="127.0.0.1"):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.handler = handler
        self.conns = []
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self.handler, args=(conn,), daemon=True).start()

    def close(self):
        self.sock.close()
        for c in self.conns:
            c.close()


def test_5_mib_through_relay_to_echo_and_back(start_daemon):
    echo, relay = free_port(), free_port()
    start_daemon(echo_listener("echo", echo) + relay_listener("r", relay, ["127.0.0.1:%d" % echo]))
    payload = os.urandom(5 * 1024 * 1024)
    assert echoed(relay, payload) == payload


def test_8_x_32_mib_each_way_at_once_never_stalls(start_daemon):
    """Both sides of each pair busy in the same loop turns: a flush asked
    for by one side while the other reads must still arm EPOLLOUT (it did
    not: the pair stalled within a few MiB, more often the more pairs)."""
    echo, relay = free_port(), free_port()
    start_daemon(echo_listener("echo", echo) + relay_listener("r", relay, ["127.0.0.1:%d" % echo]))
    block = os.urandom(1 << 20)
    mib = 32
    expected = hashlib.sha256(block * mib).digest()
    results = []

    def one():
        with connect(relay, timeout=20) as s:
            sender = threading.Thread(target=lambda: [s.sendall(block) for _ in range(mib)])
            sender.start()
            got, left = hashlib.sha256(), mib << 20
            while left > 0:
                data = s.recv(min(left, 1 << 20))
                if not data:
                    break
                got.update(data)
                left -= len(data)
            sender.join()
            results.append((left, got.digest()))

    clients = [threading.Thread(target=one) for _ in range(8)]
    for c in clients:
        c.start()
    for c in clients:
        c.join(60)
    assert [r[0] for r in results] == [0] * 8
    assert all(r[1] == expected for r in results)


def test_half_close_from_the_client_with_nc(start_daemon):
    echo, relay = free_port(), free_port()
    start_daemon(echo_listener("echo", echo) + relay_listener("r", relay, ["127.0.0.1:%d" % echo]))
    data = os.urandom(200000)
    r = subprocess.run(["nc", "-N", "127.0.0.1", str(relay)], input=data, capture_output=True, timeout=10)
    assert r.returncode == 0
    assert r.stdout == data


def test_half_close_from_the_client_on_a_raw_socket(start_daemon):
    echo, relay = free_port(), free_port()
    start_daemon(echo_listener("echo", echo) + relay_listener("r", relay, ["127.0.0.1:%d" % echo]))
    data = os.urandom(3000)
    with connect(relay) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert recv_exactly(s, len(data)) == data
        assert s.recv(1) == b""


def test_half_close_from_the_upstream_still_carries_the_client_bytes(start_daemon):
    """The upstream says its piece and shuts down its write side early; the
    client reads it and EOF, and its bytes still reach the upstream whole."""
    received = []
    done = threading.Event()

    def handler(conn):
        conn.sendall(b"greeting\n")
        conn.shutdown(socket.SHUT_WR)
        received.append(read_all(conn))
        done.set()

    up = Upstream(handler)
    relay = free_port()
    start_daemon(relay_listener("r", relay, ["127.0.0.1:%d" % up.port]))
    data = os.urandom(300000)
    with connect(relay) as s:
        assert recv_exactly(s, 9) == b"greeting\n"
        assert s.recv(1) == b"", "the upstream's EOF reaches the client"
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        assert done.wait(5)
        assert s.recv(1) == b""
    assert received == [data]
    up.close()


def test_first_upstream_down_the_second_is_used(start_daemon):
    dead, echo, relay, web = free_port(), free_port(), free_port(), free_port()
    start_daemon(echo_listener("echo", echo) + status_listener(web) +
                 relay_listener("r", relay, ["127.0.0.1:%d" % dead, "127.0.0.1:%d" % echo],
                                'balance = "first"'))
    for _ in range(3):
        with connect(relay) as s:
            s.sendall(b"ping\n")
            assert recv_exactly(s, 5) == b"ping\n"
    down = upstream_row(web, "r", "127.0.0.1:%d" % dead)
    up = upstream_row(web, "r", "127.0.0.1:%d" % echo)
    assert down["failures"] == 1, "skipped while backing off after the first refusal: %r" % down
    assert down["up"] == 0 and down["backoff_ms"] > 0
    assert up["connects"] == 3 and up["failures"] == 0
    assert up["bytes_up"] == 15 and up["bytes_down"] == 15
    assert listener_status(web, "r")["module"]["retried"] == 1


def test_backoff_grows_and_a_recovered_upstream_is_used_again(start_daemon):
    dead, relay, web = free_port(), free_port(), free_port()
    d = start_daemon(status_listener(web) +
                     relay_listener("r", relay, ["127.0.0.1:%d" % dead], "backoff = 1  backoff-max = 2"))
    for expect in (1, 2):
        with connect(relay) as s:
            assert s.recv(1) == b""
        row = upstream_row(web, "r", "127.0.0.1:%d" % dead)
        assert row["failures"] == expect
        assert (expect - 1) * 1000 < row["backoff_ms"] <= expect * 1000, row
        # Backing off and the only one: it is probed anyway, at once.
    d.wait_log(r"upstream 127\.0\.0\.1:%d: connect failed: Connection refused; skipped for 2000 ms" % dead)
    start_again = d  # the same daemon, now with something listening there
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", dead))
    srv.listen(4)
    with connect(relay) as s:
        peer, _ = srv.accept()
        peer.sendall(b"back\n")
        assert recv_exactly(s, 5) == b"back\n"
        peer.close()
    srv.close()
    row = upstream_row(web, "r", "127.0.0.1:%d" % dead)
    assert row["up"] == 1 and row["backoff_ms"] == 0 and row["connects"] == 1
    assert start_again.proc.poll() is None


def test_all_upstreams_down_the_client_gets_eof_and_it_is_counted(start_daemon):
    a, b, relay, web = free_port(), free_port(), free_port(), free_port()
    d = start_daemon(status_listener(web) +
                     relay_listener("r", relay, ["127.0.0.1:%d" % a, "127.0.0.1:%d" % b], "connect-timeout = 2"))
    t0 = time.monotonic()
    with connect(relay) as s:
        s.sendall(b"anyone?\n")
        assert s.recv(16) == b""
    assert time.monotonic() - t0 < 2
    module = listener_status(web, "r")["module"]
    assert module["unreachable"] == 1
    assert all(u["failures"] == 1 for u in module["upstream"]), module
    log = d.log()
    assert "upstream 127.0.0.1:%d: connect failed: Connection refused" % a in log
    assert "upstream 127.0.0.1:%d: connect failed: Connection refused" % b in log
    assert "no upstream could be reached: closing the client" in log


def test_an_upstream_that_never_answers_times_out_within_connect_timeout(start_daemon):
    """A listening socket whose accept queue is full drops the SYNs."""
    relay, web = free_port(), free_port()
    full = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    full.bind(("127.0.0.1", 0))
    full.listen(0)
    port = full.getsockname()[1]
    fillers = [socket.socket(socket.AF_INET, socket.SOCK_STREAM) for _ in range(4)]
    for f in fillers:
        f.setblocking(False)
        try:
            f.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
    time.sleep(0.2)
    d = start_daemon(status_listener(web) + relay_listener("r", relay, ["127.0.0.1:%d" % port], "connect-timeout = 1"))
    t0 = time.monotonic()
    with connect(relay) as s:
        assert s.recv(16) == b""
    assert 0.9 < time.monotonic() - t0 < 3
    assert "connect failed: Connection timed out" in d.log()
    for f in fillers:
        f.close()
    full.close()


def test_an_upstream_that_resets_before_any_byte_is_skipped(start_daemon):
    def reset(conn):
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        conn.close()

    bad = Upstream(reset)
    echo, relay, web = free_port(), free_port(), free_port()
    start_daemon(echo_listener("echo", echo) + status_listener(web) +
                 relay_listener("r", relay, ["127.0.0.1:%d" % bad.port, "127.0.0.1:%d" % echo], 'balance = "first"'))
    with connect(relay) as s:
        time.sleep(0.3)  # nothing sent yet when the first upstream resets
        s.sendall(b"still here\n")
        assert recv_exactly(s, 11) == b"still here\n"
    row = upstream_row(web, "r", "127.0.0.1:%d" % bad.port)
    # A reset that comes before the daemon sees its connect complete makes
    # the connect itself fail (connects 0): under load either can happen.
    assert row["failures"] == 1 and row["connects"] <= 1, row
    bad.close()


def test_a_reset_on_one_side_resets_the_other(start_daemon):
    got_reset = threading.Event()

    def hold(conn):
        conn.settimeout(5)
        try:
            while conn.recv(65536):
                pass
        except ConnectionResetError:
            got_reset.set()

    up = Upstream(hold)
    relay = free_port()
    start_daemon(relay_listener("r", relay, ["127.0.0.1:%d" % up.port]))
    s = connect(relay)
    s.sendall(b"hello")
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    s.close()
    assert got_reset.wait(5), "the upstream saw the client's reset"
    up.close()


def test_curl_through_the_relay_to_chassisd_http_20_mib_and_keep_alive(start_daemon, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    blob = os.urandom(20 * 1024 * 1024)
    (root / "big.bin").write_bytes(blob)
    (root / "small.txt").write_bytes(b"small\n")
    web, relay, info = free_port(), free_port(), free_port()
    d = start_daemon(('listener "site" {\n protocol = "http"\n address = "127.0.0.1:%d"\n'
                      ' http { route "/" { handler = "static"  root = "%s" } }\n}\n') % (web, root) +
                     status_listener(info) + relay_listener("r", relay, ["127.0.0.1:%d" % web]))
    out = tmp_path / "got.bin"
    r = subprocess.run(["curl", "-sS", "-o", str(out), "http://127.0.0.1:%d/big.bin" % relay], timeout=60)
    assert r.returncode == 0
    assert out.read_bytes() == blob
    r = subprocess.run(["curl", "-sS", "-v", "http://127.0.0.1:%d/small.txt" % relay,
                        "http://127.0.0.1:%d/small.txt" % relay], capture_output=True, timeout=30)
    assert r.returncode == 0
    assert r.stdout == b"small\nsmall\n"
    assert b"Re-using existing connection" in r.stderr
    relayed = listener_status(info, "r")
    assert relayed["counters"]["accepted"] == 2, "one connection for both requests"
    assert upstream_row(info, "r", "127.0.0.1:%d" % web)["bytes_down"] > len(blob)
    assert d.log().count('"GET /small.txt HTTP/1.1" 200 6') == 2


def test_host_names_resolve_without_blocking(start_daemon):
    echo, relay = free_port(), free_port()
    start_daemon(echo_listener("echo", echo) + relay_listener("r", relay, ["localhost:%d" % echo]))
    with connect(relay) as s:
        s.sendall(b"by name\n")
        assert recv_exactly(s, 8) == b"by name\n"


@pytest.mark.skipif(not have_ipv6(), reason="no IPv6 loopback")
def test_ipv6_upstream_and_listener(start_daemon):
    echo, relay = free_port(), free_port()
    start_daemon(echo_listener("echo", echo, host="[::1]") + relay_listener("r", relay, ["[::1]:%d" % echo], host="[::1]"))
    with connect(relay, host="::1") as s:
        s.sendall(b"six\n")
        assert recv_exactly(s, 4) == b"six\n"


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])


def test_nobody_reading_keeps_the_daemon_bounded(start_daemon):
    """A client that sends but never reads, through to an upstream that
    never reads; and an upstream that sends to a client that never reads.
    Per direction the daemon holds at most buffer-size plus one read
    (16 KiB): the rest waits in the kernel's socket buffers and the peers'."""
    stuck = threading.Event()

    def never_read(conn):
        stuck.wait(30)

    def flood(conn):
        chunk = b"x" * 65536
        try:
            for _ in range(1024):  # 64 MiB at most
                conn.sendall(chunk)
        except OSError:
            pass

    sink, source = Upstream(never_read), Upstream(flood)
    relay_in, relay_out = free_port(), free_port()
    d = start_daemon(relay_listener("in", relay_in, ["127.0.0.1:%d" % sink.port], extra="  buffer-size = 262144") +
                     relay_listener("out", relay_out, ["127.0.0.1:%d" % source.port], extra="  buffer-size = 262144"),
                     # ASan's quarantine would hold every freed chunk and count in RSS.
                     env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0"})
    before = d.rss_kib()
    clients = []
    for _ in range(4):
        c = connect(relay_in)
        c.setblocking(False)
        clients.append(c)
        clients.append(connect(relay_out))  # never read
    chunk = b"y" * 65536
    sent = 0
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and sent < 256 * 1024 * 1024:
        progress = False
        for c in clients[::2]:
            try:
                sent += c.send(chunk)
                progress = True
            except BlockingIOError:
                pass
        if not progress:
            time.sleep(0.05)
    time.sleep(1)
    grown = d.rss_kib() - before
    # 8 directions (4 pairs each way) x (256 KiB + 16 KiB), and slack.
    assert grown < 8 * 272 + 4096, "RSS grew by %d KiB" % grown
    stuck.set()
    for c in clients:
        c.close()
    sink.close()
    source.close()


def unsent_toward(port, client):
    """Send-Q of the daemon's socket from `port` to the client's port."""
    out = subprocess.run(["ss", "-tnH", "state", "established", "( sport = :%d and dport = :%d )"
                          % (port, client.getsockname()[1])], capture_output=True, text=True, timeout=5).stdout
    return int(out.split()[1]) if out.strip() else 0


@pytest.mark.parametrize("written", [None, 16384])
def test_a_relayed_download_leaves_the_unsent_mark_to_the_kernel(start_daemon, written):
    """notsent-lowat defaults to 0 for a relay: a download streams through
    the kernel's own send buffer (as haproxy's and nginx's do) instead of
    waking the daemon every 16 KiB. Written, the mark applies: a client
    that does not read then holds little more than it in the socket."""
    def flood(conn):
        try:
            for _ in range(128):  # 8 MiB at most
                conn.sendall(b"z" * 65536)
        except OSError:
            pass

    with open("/proc/sys/net/ipv4/tcp_notsent_lowat") as f:
        if written is None and int(f.read()) < 1 << 20:
            pytest.skip("net.ipv4.tcp_notsent_lowat is set on this host: it is the relay's mark")
    source = Upstream(flood)
    port = free_port()
    extra = "" if written is None else "  notsent-lowat = %d" % written
    d = start_daemon(relay_listener("down", port, ["127.0.0.1:%d" % source.port], extra=extra))
    effective = subprocess.run([BINARY, "-T", "-c", d.config], capture_output=True, text=True,
                               timeout=30).stdout
    assert "notsent-lowat=%d" % (written or 0) in effective
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)  # a window that stays small
    client.connect(("127.0.0.1", port))
    time.sleep(2)  # the kernel has taken what it will take
    queued = unsent_toward(port, client)
    if written is None:
        assert queued > 512 * 1024, "Send-Q %d" % queued
    else:
        assert queued < 256 * 1024, "Send-Q %d" % queued
    client.close()
    source.close()


HAPROXY = "/usr/sbin/haproxy"


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_proxy_protocol_read_by_haproxy(start_daemon, tmp_path, version):
    """chassisd -> haproxy (accept-proxy) -> echo: haproxy logs the client's
    own address (127.0.0.2 and its port), not chassisd's."""
    echo, relay, front = free_port(), free_port(), free_port()
    cfg = tmp_path / "haproxy.cfg"
    cfg.write_text(
        "global\n  nbthread 1\n  log stdout format raw local0\n"
        "defaults\n  mode tcp\n  log global\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n"
        "frontend fe\n  bind 127.0.0.1:%d accept-proxy\n  log-format \"client=%%ci:%%cp frontend=%%fi:%%fp\"\n"
        "  default_backend be\n"
        "backend be\n  server s1 127.0.0.1:%d\n" % (front, echo))
    hap = subprocess.Popen([HAPROXY, "-db", "-f", str(cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        assert wait_until(lambda: _port_open(front), 10), "haproxy did not start"
        start_daemon(echo_listener("echo", echo) +
                     relay_listener("r", relay, ["127.0.0.1:%d" % front], 'proxy-protocol = "%s"' % version))
        with connect(relay, source="127.0.0.2") as s:
            source_port = s.getsockname()[1]
            s.sendall(b"through haproxy\n")
            assert recv_exactly(s, 16) == b"through haproxy\n"
            s.shutdown(socket.SHUT_WR)
            assert s.recv(1) == b""
        line = _read_line_matching(hap, rb"client=", 10)
        assert ("client=127.0.0.2:%d frontend=127.0.0.1:%d" % (source_port, relay)).encode() in line, line
    finally:
        hap.send_signal(signal.SIGTERM)
        hap.wait(10)


def _port_open(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return True
    except OSError:
        return False


def _read_line_matching(proc, pattern, timeout):
    """Lines of proc's stdout until one matches (a thread reads, so a quiet
    process cannot block the test)."""
    found = []

    def reader():
        for line in proc.stdout:
            if re.search(pattern, line):
                found.append(line)
                return

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    t.join(timeout)
    assert found, "no line matching %r" % pattern
    return found[0]


def _stream_through(port, seconds, results, index, stop):
    """Round trips of 4 KiB until stop is set, then a half-close; records
    the bytes that came back right."""
    try:
        with connect(port, timeout=15) as s:
            total = 0
            while not stop.is_set():
                block = os.urandom(4096)
                s.sendall(block)
                if recv_exactly(s, 4096) != block:
                    results[index] = "corrupt"
                    return
                total += 4096
            s.shutdown(socket.SHUT_WR)
            if s.recv(1) != b"":
                results[index] = "no EOF"
                return
            results[index] = total
    except OSError as e:
        results[index] = repr(e)


def test_reload_and_stop_while_20_connections_stream(start_daemon):
    echo_a, echo_b, relay, web = free_port(), free_port(), free_port(), free_port()

    def config(upstream, grace=5):
        return ("shutdown-grace = %d\n" % grace + echo_listener("a", echo_a) + echo_listener("b", echo_b) +
                status_listener(web) + relay_listener("r", relay, ["127.0.0.1:%d" % upstream]))

    d = start_daemon(config(echo_a))
    stop = threading.Event()
    results = [None] * 20
    threads = [threading.Thread(target=_stream_through, args=(relay, 0, results, i, stop)) for i in range(20)]
    for t in threads:
        t.start()
    assert wait_until(lambda: listener_status(web, "r")["connections"] == 20, 10)
    time.sleep(0.5)
    assert "applied" in d.reload(config(echo_a))  # same upstreams: state kept
    assert upstream_row(web, "r", "127.0.0.1:%d" % echo_a)["connects"] == 20, "the instance carried on"
    time.sleep(0.3)
    assert "applied" in d.reload(config(echo_b))  # new connections only
    with connect(relay) as s:
        s.sendall(b"new\n")
        assert recv_exactly(s, 4) == b"new\n"
    assert listener_status(web, "b")["counters"]["accepted"] == 1
    assert listener_status(web, "a")["connections"] == 20, "live connections keep their upstream"
    time.sleep(0.3)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    time.sleep(0.5)  # still streaming after the stop signal
    stop.set()
    for t in threads:
        t.join(15)
    assert d.proc.wait(10) == 0
    assert time.monotonic() - t0 < 5
    assert all(isinstance(r, int) and r > 0 for r in results), results


def test_shutdown_grace_ends_connections_that_do_not_finish(start_daemon):
    echo, relay = free_port(), free_port()
    d = start_daemon("shutdown-grace = 1\n" + echo_listener("echo", echo) +
                     relay_listener("r", relay, ["127.0.0.1:%d" % echo]))
    s = connect(relay)
    s.sendall(b"x")
    assert recv_exactly(s, 1) == b"x"
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert d.proc.wait(10) == 0
    assert 0.9 < time.monotonic() - t0 < 3
    s.close()


def test_idle_timeout_covers_both_sides(start_daemon):
    saw_end = threading.Event()

    def wait_end(conn):
        conn.settimeout(10)
        try:
            conn.recv(1)
        except OSError:
            pass
        saw_end.set()

    up = Upstream(wait_end)
    relay = free_port()
    start_daemon(relay_listener("r", relay, ["127.0.0.1:%d" % up.port], extra="  idle-timeout = 1"))
    t0 = time.monotonic()
    with connect(relay) as s:
        s.settimeout(5)
        try:
            assert s.recv(1) == b""
        except ConnectionResetError:
            pass
    assert saw_end.wait(5)
    assert 0.9 < time.monotonic() - t0 < 3
    up.close()


def test_listener_limits_apply_to_relayed_clients(start_daemon):
    echo, relay = free_port(), free_port()
    start_daemon(echo_listener("echo", echo) +
                 relay_listener("r", relay, ["127.0.0.1:%d" % echo], extra='  per-source = 1\n  deny = {"127.0.0.3"}'))
    with connect(relay) as first:
        first.sendall(b"1")
        assert recv_exactly(first, 1) == b"1"
        with connect(relay) as second:
            second.settimeout(3)
            assert second.recv(1) == b"", "per-source = 1 refuses a second one"
    with connect(relay, source="127.0.0.3") as denied:
        denied.settimeout(3)
        assert denied.recv(1) == b""


def test_status_dump_and_metrics_show_upstreams(start_daemon):
    echo, relay, web = free_port(), free_port(), free_port()
    d = start_daemon(echo_listener("echo", echo) + status_listener(web) +
                     relay_listener("r", relay, ["127.0.0.1:%d" % echo]))
    with connect(relay) as s:
        s.sendall(b"abc")
        assert recv_exactly(s, 3) == b"abc"
        dump = d.status_dump()
    assert re.search(r"status: upstream 127\.0\.0\.1:%d connections=1 connects=1 failures=0 bytes_up=3 bytes_down=3 "
                     r"up=1 backoff_ms=0 listener=r" % echo, dump), dump
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % web, timeout=5) as r:
        metrics = r.read().decode()
    assert ('chassisd_relay_upstream_bytes_up_total{listener="r",protocol="relay",upstream="127.0.0.1:%d"} 3' % echo) in metrics
    assert 'chassisd_relay_relayed_total{listener="r",protocol="relay"} 1' in metrics
    promtool = "/usr/bin/promtool"
    if os.path.exists(promtool):
        r = subprocess.run([promtool, "check", "metrics"], input=metrics.encode(), capture_output=True, timeout=30)
        assert b"error" not in r.stdout + r.stderr.lower(), r.stdout + r.stderr
