"""fortune (RFC 865) with the real fortune-mod program and databases."""
import collections
import glob
import os
import socket
import struct
import threading
import time

from conftest import (assert_no_zombies, connect, free_port, processes_under, read_all, wait_until)

FORTUNE_DB = "/usr/share/games/fortunes"


def database_text():
    text = ""
    for path in glob.glob(os.path.join(FORTUNE_DB, "*")):
        if not path.endswith((".dat", ".u8")) and os.path.isfile(path):
            with open(path, errors="replace") as f:
                text += f.read()
    return text


def fortune_listener(name, port, section="", transport="tcp"):
    return ('listener "%s" {\n  protocol = "fortune"\n  transport = "%s"\n  address = "127.0.0.1:%d"\n'
            '  fortune { %s }\n}\n' % (name, transport, port, section))


def fetch(port):
    with connect(port, timeout=10) as s:
        s.shutdown(socket.SHUT_WR)
        return read_all(s)


def ask_udp(port, timeout=5.0):
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(b"\n", ("127.0.0.1", port))
        return s.recvfrom(65536)[0]


def test_tcp_command_mode_sends_a_real_fortune_and_closes(start_daemon):
    port = free_port()
    d = start_daemon(fortune_listener("qotd", port, 'command = {"/usr/games/fortune", "-s"}  timeout = 5'))
    reply = fetch(port).decode()
    assert reply.strip(), "an empty fortune"
    # fortune prints entries verbatim: each line is in the database.
    db = database_text()
    assert all(line in db for line in reply.strip().splitlines()), reply
    assert_no_zombies(d.pid)
    assert "fortunes=1 failed=0" in d.status_dump()


def test_default_command_is_fortune_s(start_daemon):
    port = free_port()
    start_daemon(fortune_listener("qotd", port))
    reply = fetch(port).decode()
    assert reply.strip() and reply.strip().splitlines()[0] in database_text()


def test_udp_replies_at_most_512_bytes_from_file_and_command(start_daemon):
    file_port, command_port = free_port(), free_port()
    start_daemon(fortune_listener("from-file", file_port, 'file = "%s/fortunes"' % FORTUNE_DB, "udp") +
                 fortune_listener("from-program", command_port, "", "udp"))
    db = database_text()
    for _ in range(20):
        reply = ask_udp(file_port)
        assert 0 < len(reply) <= 512 and reply.decode().strip().splitlines()[0] in db
    # The ready pool fills in the background right after start.
    replies = []
    for _ in range(5):
        wait_until(lambda: True, 0)
        try:
            replies.append(ask_udp(command_port, timeout=2))
        except socket.timeout:
            pass
    assert replies, "no udp fortune from the program"
    assert all(0 < len(r) <= 512 for r in replies)


def test_udp_cuts_a_long_fortune_at_a_line_boundary(start_daemon, tmp_path):
    port = free_port()
    entry = "".join("line %02d of a fortune far too long for one udp datagram\n" % i for i in range(30))
    path = tmp_path / "long"
    path.write_text(entry + "%\n")
    start_daemon(fortune_listener("long", port, 'file = "%s"' % path, "udp"))
    reply = ask_udp(port).decode()
    assert len(reply) <= 512 and reply.endswith("\n") and entry.startswith(reply)
    assert len(reply) > 512 - 60, "cut at the last whole line that fits"


def test_file_mode_draws_every_entry_uniformly(start_daemon, tmp_path):
    port = free_port()
    entries = ["fortune number %d\n" % i for i in range(5)]
    path = tmp_path / "five"
    path.write_text("%\n".join(entries))
    start_daemon(fortune_listener("five", port, 'file = "%s"' % path))
    counts = collections.Counter(fetch(port).decode() for _ in range(2000))
    assert set(counts) == set(entries), counts
    # 400 expected each; the standard deviation is about 18.
    assert all(300 <= n <= 500 for n in counts.values()), counts


def test_rate_paces_like_a_teletype(start_daemon, tmp_path):
    port = free_port()
    path = tmp_path / "one"
    path.write_text("x" * 99 + "\n")
    start_daemon(fortune_listener("slow", port, 'file = "%s"  rate = 40' % path))
    t0 = time.monotonic()
    reply = fetch(port)
    elapsed = time.monotonic() - t0
    assert reply == b"x" * 99 + b"\n"
    assert 2.2 <= elapsed <= 3.0, elapsed  # 100 bytes at 40 B/s


def test_a_program_that_hangs_is_killed_at_the_timeout(start_daemon):
    port = free_port()
    d = start_daemon(fortune_listener("hang", port, 'command = {"/bin/sleep", "1000"}  timeout = 1'))
    t0 = time.monotonic()
    assert fetch(port) == b""
    assert 0.9 <= time.monotonic() - t0 <= 3.0
    assert wait_until(lambda: processes_under(d.pid) == [], 5), processes_under(d.pid)
    d.wait_log(r"child \d+: timed out")
    assert "timed_out=1" in d.status_dump()


def test_output_is_cut_at_the_limit(start_daemon):
    port = free_port()
    d = start_daemon(fortune_listener(
        "flood", port, 'command = {"/usr/bin/head", "-c", "10000000", "/dev/zero"}  output-limit = 100000'))
    reply = fetch(port)
    assert len(reply) == 100000 and reply == b"\0" * 100000
    d.wait_log(r"output cut at output-limit \(100000 bytes\)")
    assert wait_until(lambda: processes_under(d.pid) == [], 5)
    assert "cut=1" in d.status_dump()


def test_100_clients_never_run_more_than_8_children(start_daemon):
    port = free_port()
    d = start_daemon(fortune_listener(
        "capped", port, 'command = {"/bin/sh", "-c", "sleep 0.3; echo hello"}  max-children = 8',
    ).replace("  fortune {", "  max-connections = 200\n  fortune {"))
    peak, stop = [0], threading.Event()

    def watch():
        while not stop.is_set():
            # sh and its sleep share one process group: count direct children.
            direct = [p for p, _ in processes_under(d.pid) if os.path.exists("/proc/%d" % p)
                      and open("/proc/%d/stat" % p).read().rsplit(")", 1)[1].split()[1] == str(d.pid)]
            peak[0] = max(peak[0], len(direct))
            time.sleep(0.005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    replies = []
    lock = threading.Lock()

    def client():
        try:
            r = fetch(port)
        except OSError as e:
            r = repr(e).encode()
        with lock:
            replies.append(r)

    threads = [threading.Thread(target=client) for _ in range(100)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    stop.set()
    watcher.join()
    assert 1 <= peak[0] <= 8, peak[0]
    served = replies.count(b"hello\n")
    busy = replies.count(b"busy: try again later\r\n")
    assert served + busy == 100, collections.Counter(replies)
    assert served >= 8
    dump = d.status_dump()
    assert "busy=%d" % busy in dump and "fortunes=%d" % served in dump, dump
    assert wait_until(lambda: processes_under(d.pid) == [], 5)


def test_when_busy_close_just_closes(start_daemon):
    port = free_port()
    start_daemon(fortune_listener(
        "capped", port, 'command = {"/bin/sleep", "5"}  max-children = 1  when-busy = "close"'))
    with connect(port) as first:
        assert fetch(port) == b""
        first.close()


def test_a_client_that_leaves_early_gets_its_program_killed(start_daemon):
    """A reset is seen at once. A plain close (FIN) looks like the
    half-close of `nc -N`, which still wants its fortune: it is seen at the
    next write, which the peer answers with a reset."""
    port, talking_port = free_port(), free_port()
    d = start_daemon(fortune_listener("hang", port, 'command = {"/bin/sleep", "1000"}  timeout = 60') +
                     fortune_listener("talking", talking_port,
                                      'command = {"/bin/sh", "-c", "while :; do echo tick; sleep 0.1; done"}'
                                      '  timeout = 60'))
    s = connect(port)
    assert wait_until(lambda: len(processes_under(d.pid)) == 1, 5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    assert wait_until(lambda: processes_under(d.pid) == [], 3), processes_under(d.pid)

    s = connect(talking_port)
    assert s.recv(5) == b"tick\n"
    assert len(processes_under(d.pid)) >= 1
    s.close()
    assert wait_until(lambda: processes_under(d.pid) == [], 3), processes_under(d.pid)
    assert_no_zombies(d.pid)


def test_program_stderr_and_exit_status_are_logged(start_daemon):
    port = free_port()
    d = start_daemon(fortune_listener(
        "noisy", port, 'command = {"/bin/sh", "-c", "echo partial; echo oops >&2; exit 3"}'))
    assert fetch(port) == b"partial\n"
    d.wait_log(r"<4>child \d+: stderr: oops listener=noisy")
    d.wait_log(r"<4>child \d+: exited with status 3 listener=noisy")
    d.wait_log(r"<4>fortune failed: the program failed listener=noisy .*peer=127\.0\.0\.1:")


def test_children_get_only_fds_0_to_2_and_a_minimal_environment(start_daemon):
    port = free_port()
    start_daemon(fortune_listener(
        "probe", port, 'command = {"/bin/sh", "-c", "ls /proc/self/fd; env | sort"}  working-directory = "/tmp"'))
    lines = fetch(port).decode().split()
    fds = sorted(int(x) for x in lines if x.isdigit())
    # 0-2 and the fd ls itself opened to read the directory.
    assert fds[:3] == [0, 1, 2] and len(fds) <= 4, lines
    env = [x for x in lines if "=" in x]
    assert "PWD=/tmp" in env and "NOTIFY_SOCKET" not in " ".join(env), env


def test_reload_swaps_the_fortune_file(start_daemon, tmp_path):
    port = free_port()
    path = tmp_path / "f"
    path.write_text("old fortune\n")
    d = start_daemon(fortune_listener("f", port, 'file = "%s"' % path))
    assert fetch(port) == b"old fortune\n"
    path.write_text("new fortune\n")
    assert "reload applied" in d.reload()
    assert fetch(port) == b"new fortune\n"
    path.unlink()
    assert "reload failed" in d.reload(), "a missing file is a config error on reload"
    assert fetch(port) == b"new fortune\n", "and the old config keeps serving"


def test_the_daemon_wide_cap_spans_listeners(start_daemon):
    ports = [free_port(), free_port()]
    d = start_daemon('max-children = 3\n' + "".join(
        fortune_listener("l%d" % i, p, 'command = {"/bin/sleep", "5"}  max-children = 16') for i, p in enumerate(ports)))
    clients = [connect(ports[i % 2]) for i in range(6)]
    assert wait_until(lambda: len(processes_under(d.pid)) == 3, 5)
    busy = []
    for c in clients:
        c.settimeout(1.0)
        try:
            busy.append(read_all(c))
        except socket.timeout:
            pass  # its program is running
    assert busy == [b"busy: try again later\r\n"] * 3
    assert len(processes_under(d.pid)) == 3
    for c in clients:
        c.close()
    d.wait_log(r"no fortune: daemon-wide max-children reached")
