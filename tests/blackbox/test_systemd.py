"""chassisd as a systemd service, with systemd's own tools and no running systemd."""
import os
import re
import shutil
import signal
import socket
import subprocess
import time

import pytest

from conftest import BINARY, ROOT, connect, echo_listener, echo_once, free_port, recv_exactly


def activated(start_daemon, config, tcp_port, udp_port, tcp_name="t", udp_name="u", wait=True):
    """chassisd under two nested systemd-socket-activate: a udp socket named
    udp_name and a tcp socket named tcp_name. The outer one execs on the
    first datagram, which chassisd then answers."""
    # It gives its child a minimal environment: pass on what we need.
    keep = [arg for name in ("NOTIFY_SOCKET", "ASAN_OPTIONS", "UBSAN_OPTIONS") for arg in ("-E", name)]
    wrapper = ["systemd-socket-activate", *keep, "-d", "-l", "127.0.0.1:%d" % udp_port, "--fdname=%s" % udp_name,
               "--", "systemd-socket-activate", *keep, "-l", "127.0.0.1:%d" % tcp_port,
               "--fdname=%s:%s" % (udp_name, tcp_name), "--"]
    d = start_daemon(config, wait=False, wrapper=wrapper)
    deadline = time.monotonic() + 10
    while True:  # a datagram to a port nobody has bound yet is lost silently
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind(("127.0.0.1", udp_port))
        except OSError:
            break
        assert time.monotonic() < deadline, "systemd-socket-activate never bound its socket"
        time.sleep(0.05)
    probe = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    probe.settimeout(10)
    probe.sendto(b"wake up", ("127.0.0.1", udp_port))
    return d, probe


def test_socket_activation_serves_tcp_and_udp_and_survives_reload(start_daemon):
    tcp, udp = free_port(), free_port()
    config = echo_listener("t", tcp) + echo_listener("u", udp, transport="udp")
    d, probe = activated(start_daemon, config, tcp, udp)
    d.wait_ready()
    assert probe.recv(100) == b"wake up", "the datagram that woke us is answered"
    log = d.log()
    assert "listening on 127.0.0.1:%d (tcp, echo), socket from systemd listener=t" % tcp in log
    assert "listening on 127.0.0.1:%d (udp, echo), socket from systemd listener=u" % udp in log
    with connect(tcp) as s:
        assert echo_once(s)
    assert "reload applied" in d.reload()
    d.wait_log(r"reload 2: 2 kept, 0 added, 0 removed")
    with connect(tcp) as s:
        assert echo_once(s)
    probe.sendto(b"after reload", ("127.0.0.1", udp))
    assert probe.recv(100) == b"after reload"
    probe.close()


def test_socket_activation_type_mismatch_is_a_clear_error(start_daemon):
    tcp, udp = free_port(), free_port()
    # The tcp socket is passed under the name of the udp listener and vice versa.
    config = echo_listener("t", tcp) + echo_listener("u", udp, transport="udp")
    d, probe = activated(start_daemon, config, tcp, udp, tcp_name="u", udp_name="t")
    assert d.proc.wait(10) == 1
    # The listener's FILE:LINE (its address line) comes first, as for every bind error.
    d.wait_log(r'<3>\S+/chassisd\.conf:\d+: listener t: socket passed as "t" is udp 127\.0\.0\.1:%d, but the listener is tcp '
               r'127\.0\.0\.1:%d' % (udp, tcp))
    assert "not started: a required listener could not be opened" in d.log()
    probe.close()


def test_socket_activation_unknown_name_is_logged_and_closed(start_daemon):
    tcp, udp, own = free_port(), free_port(), free_port()
    config = echo_listener("u", udp, transport="udp") + echo_listener("own", own)
    d, probe = activated(start_daemon, config, tcp, udp, tcp_name="stranger")
    d.wait_ready()
    d.wait_log(r'<4>socket passed as "stranger" matches no listener: closed')
    with connect(own) as s:
        assert echo_once(s), "a listener without a passed socket binds its own"
    probe.close()


def test_notify_sequence(start_daemon):
    port = free_port()
    config = echo_listener("e", port)
    d = start_daemon(config, env={"WATCHDOG_USEC": "400000"})
    index, ready = d.wait_ready()
    with connect(port) as s:
        assert echo_once(s), "READY=1 came after the listener accepts"
        assert "STATUS=1 listener, 0 connections, generation 1" in ready
        d.wait_notification(r"^STATUS=1 listener, 1 connection, generation 1$", timeout=3)
    # Watchdog pings at about half of 400 ms, timed as they arrive.
    while d.poll_notifications() is not None:
        pass
    first = len(d.notifications)
    stamps = []
    for _ in range(4):
        first, _ = d.wait_notification(r"^WATCHDOG=1$", start=first)
        stamps.append(d.arrivals[first])
        first += 1
    gaps = [b - a for a, b in zip(stamps, stamps[1:])]
    assert all(0.1 < g < 0.35 for g in gaps), gaps
    # A good reload.
    start = len(d.notifications)
    d.signal(signal.SIGHUP)
    i, reloading = d.wait_notification(r"^RELOADING=1", start=start)
    assert re.search(r"^MONOTONIC_USEC=\d+$", reloading, re.M)
    usec = int(re.search(r"MONOTONIC_USEC=(\d+)", reloading).group(1))
    assert abs(usec / 1e6 - time.clock_gettime(time.CLOCK_MONOTONIC)) < 5
    _, ready = d.wait_notification(r"^READY=1", start=i + 1)
    assert "STATUS=reload applied: 1 listener" in ready
    # A broken file.
    d.write_config("listener \"e\" {\n")
    start = len(d.notifications)
    d.signal(signal.SIGHUP)
    i, _ = d.wait_notification(r"^RELOADING=1", start=start)
    _, ready = d.wait_notification(r"^READY=1", start=i + 1)
    assert "STATUS=reload failed (1 config error), old config serving" in ready
    # Stop.
    start = len(d.notifications)
    d.signal(signal.SIGTERM)
    d.wait_notification(r"^STOPPING=1", start=start)
    assert d.proc.wait(10) == 0


def test_no_notify_socket_no_messages(tmp_path):
    port = free_port()
    conf = tmp_path / "c.conf"
    conf.write_text(echo_listener("e", port))
    env = {k: v for k, v in os.environ.items() if k != "NOTIFY_SOCKET"}
    proc = subprocess.Popen([BINARY, "-c", str(conf)], env=env, stderr=subprocess.PIPE)
    try:
        for _ in range(100):
            try:
                with connect(port) as s:
                    assert echo_once(s)
                break
            except ConnectionRefusedError:
                time.sleep(0.05)
    finally:
        proc.terminate()
        err = proc.communicate(timeout=10)[1].decode()
    assert proc.returncode == 0
    assert "NOTIFY" not in err


def unit_for_tests(tmp_path):
    """The built unit, pointed at the built binary, with its man pages found."""
    built = os.path.join(os.path.dirname(os.path.dirname(BINARY)), "systemd", "chassisd.service")
    with open(built) as f:
        text = f.read()
    text = re.sub(r"/\S*/sbin/chassisd", os.path.abspath(BINARY), text)
    unit = tmp_path / "chassisd.service"
    unit.write_text(text)
    man = tmp_path / "man"
    (man / "man8").mkdir(parents=True)
    (man / "man5").mkdir()
    shutil.copy(os.path.join(ROOT, "daemon", "chassisd.8"), man / "man8")
    shutil.copy(os.path.join(ROOT, "conf", "chassisd.conf.5"), man / "man5")
    return unit, dict(os.environ, MANPATH=str(man))


def test_unit_verifies(tmp_path):
    unit, env = unit_for_tests(tmp_path)
    r = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, env=env,
                       timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr.strip() == "", r.stderr


def test_unit_security_exposure_at_most_1_5(tmp_path):
    unit, env = unit_for_tests(tmp_path)
    r = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)], capture_output=True,
                       text=True, env=env, timeout=60)
    m = re.search(r"Overall exposure level for chassisd\.service: (\d+\.\d+)", r.stdout)
    assert m, r.stdout + r.stderr
    print("systemd-analyze security exposure: %s (Debian's nginx.service: 9.6)" % m.group(1))
    assert float(m.group(1)) <= 1.5, r.stdout
