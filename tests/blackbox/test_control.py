"""The control socket and `chassisd reload|status|stop`: what an
administrator (and systemd's ExecReload=) sees."""
import os
import pwd
import shutil
import socket
import stat
import subprocess
import tempfile
import time

import pytest

from conftest import BINARY, connect, echo_listener, echo_once, free_port, wait_until


def client(*args, timeout=60):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=timeout)


def ask(path, command, timeout=10):
    """The raw answer to one command line, until the daemon closes."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(timeout)
        s.connect(path)
        s.sendall(command)
        chunks = []
        while True:
            data = s.recv(4096)
            if not data:
                return b"".join(chunks).decode()
            chunks.append(data)


def test_reload_through_the_config_s_control_socket_applies_and_says_so(start_daemon, tmp_path):
    path = str(tmp_path / "ctl")
    old, new = free_port(), free_port()
    head = 'control-socket = "%s"\n' % path
    d = start_daemon(head + echo_listener("old", old), control=False)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_ISSOCK(os.stat(path).st_mode)
    d.write_config(head + echo_listener("old", old) + echo_listener("new", new))
    r = client("reload", "-c", d.config)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "reload 2: 1 kept, 1 added, 0 removed" in r.stdout
    with connect(new) as s:
        assert echo_once(s)
    # The daemon's own log says the same, and systemd heard RELOADING/READY.
    d.wait_log(r"<5>reload 2: 1 kept, 1 added, 0 removed")
    d.wait_notification(r"^READY=1\nSTATUS=reload applied: 2 listeners", start=1)


def test_reload_with_a_syntax_error_fails_with_file_line_and_keeps_serving(start_daemon):
    port = free_port()
    d = start_daemon(echo_listener("e", port))
    d.write_config(echo_listener("e", port) + 'listener "x" {\n protocol = "echo"\n address = "127.0.0.1:1\n}\n')
    r = client("reload", "--control", d.control)
    assert r.returncode == 1, r.stdout + r.stderr
    assert "%s:9: a string is never closed: the file ends inside it" % d.config in r.stderr
    assert "reload failed: 1 error in %s; still serving generation 1" % d.config in r.stderr
    with connect(port) as s:
        assert echo_once(s)


def test_reload_onto_a_busy_port_fails_with_file_line_and_keeps_serving(start_daemon):
    port, new_ok, busy = free_port(), free_port(), free_port()
    d = start_daemon(echo_listener("e", port))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", busy))
        blocker.listen()
        d.write_config(echo_listener("e", port) + echo_listener("new-ok", new_ok) + echo_listener("busy", busy))
        r = client("reload", "--control", d.control)
    assert r.returncode == 1, r.stdout + r.stderr
    # echo_listener() writes 6 lines: the third one's address is on line 16.
    assert ("%s:16: listener busy: cannot bind 127.0.0.1:%d (tcp): Address already in use" % (d.config, busy)
            in r.stderr), r.stderr
    assert "reload failed: a listener could not be opened; still serving generation 1" in r.stderr
    with connect(port) as s:
        assert echo_once(s)
    with pytest.raises(ConnectionRefusedError):
        connect(new_ok)


def test_status_prints_every_listener_by_name(start_daemon):
    a, b = free_port(), free_port()
    d = start_daemon('log-level = "warning"\n' + echo_listener("alpha", a) +
                     echo_listener("beta", b, transport="udp"))
    held = connect(a)
    r = client("status", "--control", d.control)
    held.close()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "status: 2 listeners, 1 connection, generation 1"
    assert any("listener=alpha protocol=echo transport=tcp" in line and "127.0.0.1:%d 1 connection," % a in line
               for line in lines), r.stdout
    assert any("listener=beta protocol=echo transport=udp" in line for line in lines), r.stdout
    # Asked for, so given whatever log-level says; the log stays quiet.
    assert "status:" not in d.log()


def test_stop_stops_the_daemon_and_removes_the_socket(start_daemon):
    d = start_daemon(echo_listener("e", free_port()))
    r = client("stop", "--control", d.control)
    assert r.returncode == 0, r.stderr
    assert "stopping on the control command stop" in r.stdout
    # The client returns once the daemon is gone.
    assert r.stdout.endswith("stopped\n")
    assert d.proc.wait(5) == 0
    assert not os.path.exists(d.control)


def test_stop_waits_for_connections_to_finish(start_daemon):
    port = free_port()
    d = start_daemon("shutdown-grace = 30\n" + echo_listener("e", port))
    held = connect(port)
    assert echo_once(held)
    stopper = subprocess.Popen([BINARY, "stop", "--control", d.control], stdout=subprocess.PIPE, text=True)
    d.wait_log(r"stopping on the control command stop: 1 connection get up to 30 s")
    time.sleep(0.5)
    assert stopper.poll() is None, "stop returned while a connection still held the daemon"
    held.close()
    assert stopper.wait(10) == 0
    assert d.proc.wait(5) == 0


def test_no_daemon_is_exit_2_with_a_message(tmp_path):
    path = str(tmp_path / "nobody-here")
    for command in ("reload", "status", "stop"):
        r = client(command, "--control", path)
        assert r.returncode == 2
        assert r.stderr == ("chassisd %s: cannot reach the daemon at %s: No such file or directory "
                            "(is it running? is this its control-socket?)\n" % (command, path))
    # A socket file left by a daemon that died.
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(path)
    r = client("status", "--control", path)
    assert r.returncode == 2 and "Connection refused" in r.stderr


def test_a_config_without_control_socket_says_so(start_daemon):
    d = start_daemon('control-socket = ""\n' + echo_listener("e", free_port()), control=False)
    d.wait_log(r'<6>no control socket \(control-socket = ""\)')
    r = client("reload", "-c", d.config)
    assert r.returncode == 2
    assert 'sets no control socket (control-socket = "")' in r.stderr


def test_a_stale_socket_is_replaced_and_a_live_one_left_alone(start_daemon, tmp_path):
    path = str(tmp_path / "ctl")
    with socket.socket(socket.AF_UNIX) as stale:
        stale.bind(path)
    head = 'control-socket = "%s"\n' % path
    first = start_daemon(head + echo_listener("e", free_port()), control=False)
    assert client("status", "-c", first.config).returncode == 0
    second = start_daemon(head + echo_listener("f", free_port()), control=False, workdir=tmp_path / "second",
                          name="second.conf")
    second.wait_log(r"<4>no control socket at %s: another process answers on it" % path)
    r = client("status", "--control", path)
    assert "listener=e" in r.stdout and "listener=f" not in r.stdout
    second.stop()
    assert os.path.exists(path), "the second daemon removed the first one's socket"


def test_unknown_command_long_line_and_idle_client(start_daemon):
    d = start_daemon("control-timeout = 1\n" + echo_listener("e", free_port()))
    assert ask(d.control, b"bogus\n") == \
        '<3>unknown control command "bogus" (reload, status, stop, reopen)\nfailed\n'
    assert ask(d.control, b"status\r\n").endswith("listener=e protocol=echo transport=tcp\nok\n")
    assert ask(d.control, b"x" * 100) == ""
    d.wait_log(r"<4>control client: a line longer than 64 bytes, or more than one command: closed")
    assert ask(d.control, b"status\nstatus\n") == ""
    started = time.monotonic()
    assert ask(d.control, b"stat") == ""
    assert 0.8 < time.monotonic() - started < 5
    d.wait_log(r"<4>control client: no command within 1 s: closed")


def test_clients_beyond_the_cap_wait_their_turn(start_daemon):
    d = start_daemon("control-max-clients = 2\ncontrol-timeout = 2\n" + echo_listener("e", free_port()))
    idle = []
    for _ in range(2):
        s = socket.socket(socket.AF_UNIX)
        s.connect(d.control)
        idle.append(s)
    wait_until(lambda: False, timeout=0.3)
    started = time.monotonic()
    r = client("status", "--control", d.control)
    waited = time.monotonic() - started
    for s in idle:
        s.close()
    assert r.returncode == 0, r.stderr
    # Answered only once an idle client timed out and freed a place.
    assert waited > 1.0, waited
    d.wait_log(r"<4>control client: no command within 2 s: closed")


def test_sighup_still_reloads(start_daemon):
    port, added = free_port(), free_port()
    d = start_daemon(echo_listener("e", port))
    assert "STATUS=reload applied: 2 listeners" in d.reload(echo_listener("e", port) + echo_listener("a", added))


@pytest.fixture
def public_dir():
    """A folder the dropped user can read: reloads read the file as that user."""
    folder = tempfile.mkdtemp(prefix="chassisd-conf-")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to drop privileges")
def test_socket_belongs_to_the_user_dropped_to_and_still_answers(start_daemon, public_dir):
    port, added = free_port(), free_port()
    nobody = pwd.getpwnam("nobody")
    d = start_daemon('user = "nobody"\n' + echo_listener("e", port), config_dir=public_dir)
    os.chmod(d.config, 0o644)
    st = os.stat(d.control)
    assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (nobody.pw_uid, 0o600)
    d.write_config('user = "nobody"\n' + echo_listener("e", port) + echo_listener("a", added))
    os.chmod(d.config, 0o644)
    r = client("reload", "--control", d.control)
    assert r.returncode == 0, r.stdout + r.stderr
    with connect(added) as s:
        assert echo_once(s)
    assert client("stop", "--control", d.control).returncode == 0
    assert d.proc.wait(5) == 0


def test_out_of_fds_the_control_socket_waits_without_spinning(start_daemon):
    import resource
    port = free_port()

    def few_fds():
        resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))

    d = start_daemon(echo_listener("e", port, "per-source = 1000\n max-connections = 1000"), preexec=few_fds)
    clients = [connect(port) for _ in range(40)]
    d.wait_log(r"<4>accept paused: Too many open files")
    asker = subprocess.Popen([BINARY, "status", "--control", d.control], stdout=subprocess.PIPE, text=True)
    d.wait_log(r"<4>control socket: cannot accept: Too many open files; trying again in 1 s")
    cpu_before = d.cpu_seconds()
    time.sleep(1.5)
    assert d.cpu_seconds() - cpu_before < 0.5, "the loop spins while out of fds"
    assert asker.poll() is None
    for c in clients:
        c.close()
    out, _ = asker.communicate(timeout=10)
    assert asker.returncode == 0 and "listener=e" in out
