"""exec: inetd's nowait services, a program per TCP connection with the
socket as its stdin and stdout, run with real programs (cat, env, id,
fortune)."""
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import threading
import time

import pytest

from conftest import (BINARY, assert_no_zombies, connect, free_port, processes_under, read_all, recv_exactly, wait_until)
from test_fortune import database_text

RUNNER_ENV = {"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8", "HOME=/"}


def exec_listener(name, port, section, extra=""):
    return ('listener "%s" {\n  protocol = "exec"\n  address = "127.0.0.1:%d"\n%s\n  exec { %s }\n}\n'
            % (name, port, extra, section))


def fetch(port):
    with connect(port, timeout=10) as s:
        s.shutdown(socket.SHUT_WR)
        return read_all(s)


def test_cat_echoes_every_byte_and_closes_after_the_half_close(start_daemon):
    port = free_port()
    d = start_daemon(exec_listener("cat", port, 'command = {"/bin/cat"}'))
    payload = os.urandom(4 << 20)
    with connect(port, timeout=30) as s:
        def send():
            s.sendall(payload)
            s.shutdown(socket.SHUT_WR)
        sender = threading.Thread(target=send)
        sender.start()
        got = read_all(s)
        sender.join()
    assert got == payload, (len(got), len(payload))
    assert wait_until(lambda: processes_under(d.pid) == [], 5), processes_under(d.pid)
    assert_no_zombies(d.pid)
    assert "served=1 refused=0 children=0 spawned=1 failed=0" in d.status_dump()


def test_env_sees_exactly_the_documented_environment(start_daemon):
    port = free_port()
    start_daemon(exec_listener("env", port, 'command = {"/usr/bin/env"}  environment = {"GREETING=hello world", '
                               '"HOME=/srv"}'),
                 env={"SECRET_OF_THE_DAEMON": "leak"})
    with connect(port, timeout=10) as s:
        client_port = s.getsockname()[1]
        s.shutdown(socket.SHUT_WR)
        lines = read_all(s).decode().splitlines()
    expected = (RUNNER_ENV - {"HOME=/"}) | {
        "HOME=/srv", "GREETING=hello world", "PROTO=TCP",
        "TCPREMOTEIP=127.0.0.1", "TCPREMOTEPORT=%d" % client_port,
        "TCPLOCALIP=127.0.0.1", "TCPLOCALPORT=%d" % port,
        "REMOTE_ADDR=127.0.0.1", "REMOTE_PORT=%d" % client_port,
    }
    assert sorted(lines) == sorted(expected)


def test_fortune_prints_one_from_the_database(start_daemon):
    port = free_port()
    start_daemon(exec_listener("qotd", port, 'command = {"/usr/games/fortune", "-s"}'))
    reply = fetch(port).decode()
    assert reply.strip(), "an empty fortune"
    db = database_text()
    assert all(line in db for line in reply.strip().splitlines()), reply


@pytest.mark.skipif(os.geteuid() != 0, reason="only a root daemon runs programs as another user")
def test_user_and_group_are_switched_for_the_program(start_daemon, tmp_path):
    port, id_port = free_port(), free_port()
    start_daemon(exec_listener("uid", port, 'command = {"/usr/bin/id", "-u"}  user = "nobody"  group = "nogroup"') +
                 exec_listener("id", id_port, 'command = {"/usr/bin/id"}  user = "nobody"  working-directory = "/tmp"'))
    assert fetch(port) == b"65534\n"
    # No group of root's is left; the user's own group when none is named.
    assert fetch(id_port) == b"uid=65534(nobody) gid=65534(nogroup) groups=65534(nogroup)\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop it")
def test_after_the_global_user_dropped_root_a_user_switch_is_refused_and_logged(start_daemon):
    folder = tempfile.mkdtemp(prefix="chassisd-conf-")
    try:
        os.chmod(folder, 0o755)
        port = free_port()
        d = start_daemon('user = "nobody"\n' + exec_listener("as-daemon", port,
                                                             'command = {"/usr/bin/id"}  user = "daemon"'),
                         config_dir=folder)
        assert fetch(port) == b""
        d.wait_log(r'not run: cannot run /usr/bin/id as uid 1: chassisd runs as uid 65534 since it dropped root '
                   r'\(the global "user"\), and only root can switch')
        assert "failed=1" in d.status_dump()
    finally:
        shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to become another user")
def test_a_daemon_that_is_not_root_refuses_user_with_file_and_line():
    folder = tempfile.mkdtemp(prefix="chassisd-conf-")
    conf = os.path.join(folder, "chassisd.conf")
    try:
        os.chmod(folder, 0o755)
        with open(conf, "w") as f:
            f.write(exec_listener("as-daemon", free_port(), '\n    command = {"/bin/cat"}\n    user = "daemon"\n  '))
        os.chmod(conf, 0o644)
        nobody = pwd.getpwnam("nobody")

        def become_nobody():
            os.setgid(nobody.pw_gid)
            os.setuid(nobody.pw_uid)

        r = subprocess.run([BINARY, "-t", "-c", conf], capture_output=True, text=True, timeout=20,
                           preexec_fn=become_nobody)
    finally:
        shutil.rmtree(folder)
    assert r.returncode == 1
    assert r.stderr == ('%s:7: listener "as-daemon": user "daemon": chassisd runs as uid %d, not root, and cannot '
                        'run a program as another user: remove "user" and "group", or start chassisd as root\n'
                        % (conf, nobody.pw_uid)), (r.stdout, r.stderr)


def test_a_program_past_its_timeout_is_killed_and_the_client_sees_the_close(start_daemon):
    port = free_port()
    d = start_daemon(exec_listener("hang", port, 'command = {"/bin/sleep", "100"}  timeout = 1  kill-grace = 1'))
    t0 = time.monotonic()
    with connect(port, timeout=10) as s:
        assert read_all(s) == b""
    assert 0.9 <= time.monotonic() - t0 <= 3.5
    assert wait_until(lambda: processes_under(d.pid) == [], 5), processes_under(d.pid)
    d.wait_log(r"child \d+: timed out")
    assert "timed_out=1" in d.status_dump()


def test_over_max_children_a_connection_is_closed_at_once_and_counted(start_daemon):
    port = free_port()
    d = start_daemon(exec_listener("capped", port, 'command = {"/bin/sleep", "5"}  max-children = 2'))
    held = [connect(port) for _ in range(2)]
    assert wait_until(lambda: len(processes_under(d.pid)) == 2, 5)
    t0 = time.monotonic()
    with connect(port, timeout=3) as s:
        assert read_all(s) == b""
    assert time.monotonic() - t0 < 1.0
    assert len(processes_under(d.pid)) == 2
    assert "refused=1 children=2" in d.status_dump()
    d.wait_log(r"not run: listener max-children reached")
    for s in held:
        s.close()


def test_the_daemon_wide_cap_counts_exec_children(start_daemon):
    ports = [free_port(), free_port()]
    d = start_daemon('max-children = 3\n' + "".join(
        exec_listener("l%d" % i, p, 'command = {"/bin/sleep", "5"}') for i, p in enumerate(ports)))
    clients = [connect(ports[i % 2]) for i in range(3)]
    assert wait_until(lambda: len(processes_under(d.pid)) == 3, 5)
    with connect(ports[0], timeout=3) as s:
        assert read_all(s) == b""
    d.wait_log(r"not run: daemon-wide max-children reached")
    for c in clients:
        c.close()


def test_a_running_program_still_counts_against_max_connections(start_daemon):
    port = free_port()
    d = start_daemon(exec_listener("one", port, 'command = {"/bin/cat"}', extra="  max-connections = 1\n"
                                   "  connection-log = true"))
    with connect(port) as first:
        first.sendall(b"hello\n")
        assert recv_exactly(first, 6) == b"hello\n"
        with connect(port, timeout=3) as second:
            try:
                assert second.recv(16) == b""
            except ConnectionResetError:
                pass
        first.sendall(b"still here\n")
        assert recv_exactly(first, 11) == b"still here\n"
    d.wait_log(r"connection closed: bytes unknown \(the socket was a program's\), \d+\.\d{3} s, done")


def test_reload_keeps_a_running_program_and_new_connections_get_the_new_config(start_daemon):
    port = free_port()
    d = start_daemon(exec_listener("r", port, 'command = {"/bin/cat"}'))
    with connect(port) as old:
        old.sendall(b"before\n")
        assert recv_exactly(old, 7) == b"before\n"
        assert "reload applied" in d.reload(exec_listener("r", port, 'command = {"/usr/bin/env"}'))
        old.sendall(b"after\n")
        assert recv_exactly(old, 6) == b"after\n"
        assert b"PROTO=TCP" in fetch(port)
    assert wait_until(lambda: processes_under(d.pid) == [], 5)


def test_at_stop_a_running_program_is_ended_after_the_grace(start_daemon):
    port = free_port()
    d = start_daemon('shutdown-grace = 1\n' + exec_listener("cat", port, 'command = {"/bin/cat"}'))
    with connect(port, timeout=10) as s:
        s.sendall(b"x")
        assert recv_exactly(s, 1) == b"x"
        child = processes_under(d.pid)[0][0]
        t0 = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t0 < 6
        assert read_all(s) == b""
    assert not os.path.exists("/proc/%d" % child) or open("/proc/%d/stat" % child).read().split()[2] == "Z"


UDP_ONE_AT_A_TIME = r'''import os, socket, sys, time
s = socket.socket(fileno=os.dup(0))
data, peer = s.recvfrom(65536)
time.sleep(0.3)
s.sendto(b"%d %s %s %s" % (os.getpid(), os.environ["REMOTE_ADDR"].encode(), os.environ["REMOTE_PORT"].encode(),
                           data), peer)
'''


def udp_exec_listener(name, port, section):
    return ('listener "%s" {\n  protocol = "exec"\n  transport = "udp"\n  address = "127.0.0.1:%d"\n'
            '  exec { %s }\n}\n' % (name, port, section))


def test_udp_wait_runs_one_program_at_a_time_with_the_socket(start_daemon, tmp_path):
    script = tmp_path / "reply.py"
    script.write_text(UDP_ONE_AT_A_TIME)
    port = free_port(socket.SOCK_DGRAM)
    d = start_daemon(udp_exec_listener("wait", port, 'command = {"/usr/bin/python3", "%s"}' % script))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(10)
        c.bind(("127.0.0.1", 0))
        client_port = c.getsockname()[1]
        t0 = time.monotonic()
        for i in range(3):
            c.sendto(b"request %d" % i, ("127.0.0.1", port))
        replies = [c.recv(65536).split(b" ", 3) for _ in range(3)]
        elapsed = time.monotonic() - t0
    # Each request was read by a program of its own, one after another.
    assert sorted(r[3] for r in replies) == [b"request 0", b"request 1", b"request 2"]
    assert len({r[0] for r in replies}) == 3
    assert all(r[1] == b"127.0.0.1" and r[2] == str(client_port).encode() for r in replies)
    assert elapsed >= 0.85, elapsed
    assert wait_until(lambda: processes_under(d.pid) == [], 5)
    assert "served=3" in d.status_dump()


def test_udp_wait_serves_tftp_with_in_tftpd(start_daemon):
    if not os.access("/usr/sbin/in.tftpd", os.X_OK):
        pytest.skip("in.tftpd missing: apt-get install tftpd-hpa")
    root = tempfile.mkdtemp(prefix="chassisd-tftp-")
    try:
        os.chmod(root, 0o755)
        payload = os.urandom(100000)
        with open(os.path.join(root, "boot.bin"), "wb") as f:
            f.write(payload)
        os.chmod(os.path.join(root, "boot.bin"), 0o644)
        port = free_port(socket.SOCK_DGRAM)
        d = start_daemon(udp_exec_listener("tftp", port,
                                           'command = {"/usr/sbin/in.tftpd", "-s", "%s", "-t", "1"}' % root))
        for _ in range(2):
            r = subprocess.run(["curl", "-sS", "--max-time", "20", "tftp://127.0.0.1:%d/boot.bin" % port],
                               capture_output=True, timeout=30)
            assert r.returncode == 0, r.stderr
            assert r.stdout == payload
        assert wait_until(lambda: processes_under(d.pid) == [], 10), processes_under(d.pid)
        assert_no_zombies(d.pid)
    finally:
        shutil.rmtree(root)


def test_udp_wait_program_survives_a_reload(start_daemon, tmp_path):
    script = tmp_path / "slow.py"
    script.write_text(UDP_ONE_AT_A_TIME.replace("time.sleep(0.3)", "time.sleep(1.5)"))
    port = free_port(socket.SOCK_DGRAM)
    listener = udp_exec_listener("wait", port, 'command = {"/usr/bin/python3", "%s"}' % script)
    d = start_daemon(listener)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.settimeout(10)
        c.sendto(b"before", ("127.0.0.1", port))
        assert wait_until(lambda: len(processes_under(d.pid)) == 1, 5)
        assert "reload applied" in d.reload(listener.replace("exec {", "exec { timeout = 30 "))
        assert c.recv(65536).endswith(b"before")
        c.sendto(b"after", ("127.0.0.1", port))
        assert c.recv(65536).endswith(b"after")


def test_udp_wait_drops_a_datagram_its_program_left_unread_instead_of_looping(start_daemon):
    port = free_port(socket.SOCK_DGRAM)
    d = start_daemon(udp_exec_listener("lazy", port, 'command = {"/bin/true"}'))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as c:
        c.sendto(b"nobody reads this", ("127.0.0.1", port))
        d.wait_log(r"<4>datagram dropped: the program left it unread \(it would start the program again and "
                   r"again\) listener=lazy")
        time.sleep(0.5)
        assert "spawned=1 " in d.status_dump()
        c.sendto(b"nor this", ("127.0.0.1", port))
        assert wait_until(lambda: "spawned=2 " in d.status_dump(), 5)
    assert wait_until(lambda: processes_under(d.pid) == [], 5)


def test_udp_wait_applies_deny_before_a_program_starts(start_daemon, tmp_path):
    script = tmp_path / "reply.py"
    script.write_text(UDP_ONE_AT_A_TIME.replace("time.sleep(0.3)", ""))
    port = free_port(socket.SOCK_DGRAM)
    d = start_daemon(udp_exec_listener("guarded", port, 'command = {"/usr/bin/python3", "%s"}' % script)
                     .replace('  exec {', '  deny = {"127.0.0.2"}\n  exec {'))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as denied, \
            socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as allowed:
        denied.bind(("127.0.0.2", 0))
        denied.settimeout(1.0)
        denied.sendto(b"let me in", ("127.0.0.1", port))
        with pytest.raises(socket.timeout):
            denied.recv(100)
        allowed.settimeout(10)
        allowed.sendto(b"hello", ("127.0.0.1", port))
        assert allowed.recv(100).endswith(b"127.0.0.1 %d hello" % allowed.getsockname()[1])
    dump = d.status_dump()
    assert "spawned=1 " in dump and "denied=1" in dump, dump
