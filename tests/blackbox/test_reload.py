"""SIGHUP reload and SIGTERM drain: the contract administrators rely on."""
import os
import signal
import socket
import threading
import time

import pytest

from conftest import connect, echo_listener, echo_once, free_port, is_closed_by_peer


class ChurningClient(threading.Thread):
    """Connects, echoes, closes, over and over; records every failure."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.stop_flag = threading.Event()
        self.rounds = 0
        self.failures = []

    def run(self):
        while not self.stop_flag.is_set():
            try:
                with connect(self.port, timeout=5) as s:
                    if not echo_once(s, b"round %d\n" % self.rounds):
                        self.failures.append("bad echo in round %d" % self.rounds)
            except OSError as e:
                self.failures.append("round %d: %r" % (self.rounds, e))
            self.rounds += 1

    def finish(self):
        self.stop_flag.set()
        self.join(10)


def test_reload_adds_removes_and_changes_while_a_client_churns(start_daemon):
    kept, changed, removed, added = free_port(), free_port(), free_port(), free_port()
    d = start_daemon(echo_listener("kept", kept) + echo_listener("changed", changed) +
                     echo_listener("removed", removed))
    churn = ChurningClient(kept)
    churn.start()
    time.sleep(0.3)
    status = d.reload(echo_listener("kept", kept) +
                      echo_listener("changed", changed, 'deny = {"127.0.0.1"}') +
                      echo_listener("added", added))
    time.sleep(0.3)
    churn.finish()
    assert churn.failures == [] and churn.rounds > 20, (churn.rounds, churn.failures)
    assert "STATUS=reload applied: 3 listeners" in status
    d.wait_log(r"<5>reload 2: 2 kept, 1 added, 1 removed generation=2")
    with connect(added) as s:
        assert echo_once(s)
    with pytest.raises(ConnectionRefusedError):
        connect(removed)
    assert is_closed_by_peer(connect(changed)), "the changed option applies to new connections"
    with connect(changed, source="127.0.0.2") as s:
        assert echo_once(s)


def test_many_reloads_never_refuse_a_connection(start_daemon):
    port = free_port()
    config = echo_listener("e", port)
    d = start_daemon(config)
    churn = ChurningClient(port)
    churn.start()
    for i in range(10):
        d.reload(config.replace("}", "idle-timeout = %d\n}" % (100 + i)))
    churn.finish()
    assert churn.failures == []
    d.wait_log(r"reload 11: 1 kept, 0 added, 0 removed")


def test_live_connection_keeps_its_options_across_reload(start_daemon):
    port = free_port()
    d = start_daemon(echo_listener("e", port, "idle-timeout = 1"))
    old = connect(port, timeout=10)
    assert echo_once(old)
    d.reload(echo_listener("e", port, "idle-timeout = 30"))
    new = connect(port, timeout=10)
    assert echo_once(new)
    t0 = time.monotonic()
    assert old.recv(1) == b"", "the old connection keeps idle-timeout = 1"
    assert time.monotonic() - t0 < 2
    assert echo_once(new), "the new one has idle-timeout = 30"
    old.close()
    new.close()


def test_removed_listener_connections_finish_within_grace(start_daemon):
    keep, gone = free_port(), free_port()
    d = start_daemon("shutdown-grace = 2\n" + echo_listener("keep", keep) + echo_listener("gone", gone))
    live = connect(gone, timeout=10)
    assert echo_once(live)
    d.reload("shutdown-grace = 2\n" + echo_listener("keep", keep))
    with pytest.raises(ConnectionRefusedError):
        connect(gone)
    assert echo_once(live), "a live connection of a removed listener keeps working"
    t0 = time.monotonic()
    assert live.recv(1) == b""
    assert 1.5 <= time.monotonic() - t0 <= 3.0
    d.wait_log(r"<5>shutdown grace over: closing 1 connection listener=gone")
    live.close()
    with connect(keep) as s:
        assert echo_once(s)


@pytest.mark.parametrize("named", ["/dev/zero", "fifo"])
def test_reload_naming_a_device_or_fifo_fails_at_once_and_keeps_serving(start_daemon, tmp_path, named):
    """SIGHUP with mime-types = "/dev/zero" used to freeze the daemon
    (100% CPU, SIGTERM ignored)."""
    if named == "fifo":
        named = str(tmp_path / "fifo")
        os.mkfifo(named)
    port = free_port()
    config = echo_listener("e", port)
    d = start_daemon(config)
    web = ('listener "web" {\n protocol = "http"\n address = "127.0.0.1:%d"\n'
           ' http { mime-types = "%s"  route "/" { handler = "status" } }\n}\n') % (free_port(), named)
    status = d.reload(config + web)
    assert "STATUS=reload failed (1 config error)" in status
    assert "cannot read %s: not a regular file" % named in d.wait_log(r"still serving generation 1").string
    with connect(port) as s:
        assert echo_once(s)


def test_config_text_cannot_forge_log_lines(start_daemon):
    port = free_port()
    config = echo_listener("e", port)
    d = start_daemon(config)
    d.reload(config + 'listener "x" {\n protocol = "echo\nFAKE: injected\x1b[2J"\n address = "127.0.0.1:%d"\n}\n'
             % free_port())
    log = d.wait_log(r"still serving generation 1").string
    assert 'unknown protocol "echo\\x0aFAKE: injected\\x1b[2J"' in log
    assert not any(line.startswith("FAKE") for line in log.splitlines())
    assert "\x1b" not in log


def test_broken_file_keeps_everything_serving(start_daemon):
    port, udp = free_port(), free_port()
    config = echo_listener("e", port) + echo_listener("u", udp, transport="udp")
    d = start_daemon(config)
    live = connect(port)
    assert echo_once(live)
    status = d.reload("# broken\n" + config + 'listener "x" {\n protocol = "nope"\n address = "1.2.3.4"\n}\n')
    assert "STATUS=reload failed (2 config errors), old config serving: 2 listeners, 1 connection, generation 1" in status
    log = d.wait_log(r"still serving generation 1").string
    assert '<3>%s:15: listener "x": unknown protocol "nope" (known: echo, fortune, audio-cookie, video-cookie, http, relay, exec, udp, rtp, srm, torrent)' % d.config in log
    assert '<3>%s:16: listener "x": bad address "1.2.3.4": missing ":port"' % d.config in log
    assert echo_once(live)
    with connect(port) as s:
        assert echo_once(s)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(b"still", ("127.0.0.1", udp))
        assert s.recv(10) == b"still"
    # A fixed file applies as the next generation.
    assert "reload applied" in d.reload(config + echo_listener("x", free_port()))
    live.close()


def test_bind_failure_on_reload_rolls_back(start_daemon):
    port, new_ok, busy = free_port(), free_port(), free_port()
    d = start_daemon(echo_listener("e", port))
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", busy))
        blocker.listen()
        status = d.reload(echo_listener("new-ok", new_ok) + echo_listener("busy", busy))
    assert "reload failed (bind error), old config serving: 1 listener" in status
    d.wait_log(r"<3>\S+:\d+: listener busy: cannot bind 127\.0\.0\.1:%d \(tcp\): Address already in use" % busy)
    with pytest.raises(ConnectionRefusedError):
        connect(new_ok)
    with connect(port) as s:
        assert echo_once(s), "the old listener still serves"


def test_sigterm_drains_then_exits_0(start_daemon):
    port = free_port()
    d = start_daemon("shutdown-grace = 10\n" + echo_listener("e", port))
    live = connect(port)
    assert echo_once(live)
    d.signal(signal.SIGTERM)
    d.wait_notification(r"^STOPPING=1")
    d.wait_log(r"stopping on Terminated: 1 connection gets? up to 10 s")
    with pytest.raises(ConnectionRefusedError):
        connect(port)
    assert echo_once(live), "open connections may finish"
    t0 = time.monotonic()
    live.close()
    assert d.proc.wait(5) == 0
    assert time.monotonic() - t0 < 1.0, "exits as soon as the last connection is gone"


def test_sigterm_closes_stragglers_after_grace(start_daemon):
    port = free_port()
    d = start_daemon("shutdown-grace = 1\n" + echo_listener("e", port))
    live = connect(port, timeout=10)
    assert echo_once(live)
    t0 = time.monotonic()
    d.signal(signal.SIGTERM)
    assert live.recv(1) == b""
    assert d.proc.wait(5) == 0
    assert 0.8 <= time.monotonic() - t0 <= 2.5
    live.close()


def test_second_sigterm_stops_at_once(start_daemon):
    port = free_port()
    d = start_daemon("shutdown-grace = 60\n" + echo_listener("e", port))
    live = connect(port)
    assert echo_once(live)
    d.signal(signal.SIGTERM)
    d.wait_notification(r"^STOPPING=1")
    d.signal(signal.SIGINT)
    assert d.proc.wait(5) == 0
    live.close()


def test_sigusr1_dumps_status(start_daemon):
    port, udp = free_port(), free_port()
    d = start_daemon(echo_listener("e", port) + echo_listener("u", udp, transport="udp"))
    with connect(port) as s:
        assert echo_once(s)
        text = d.status_dump()
    assert "<6>status: 2 listeners, 1 connection, generation 1" in text
    assert "status: 127.0.0.1:%d 1 connection, accepted=1 denied=0" % port in text
    assert "status: 127.0.0.1:%d datagrams=0 replies=0 dropped=0 denied=0 listener=u protocol=echo transport=udp" % udp in text
