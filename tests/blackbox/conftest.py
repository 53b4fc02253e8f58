"""Black-box harness: the real chassisd binary on loopback.

A test writes a config, starts the daemon with a NOTIFY_SOCKET of its own and
waits for READY=1 (never a sleep), then talks to it with real clients.
"""
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import threading
import tempfile
import time

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BINARY = os.environ.get("CHASSISD", os.path.join(ROOT, "build", "daemon", "chassisd"))


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


# Ports are drawn below the kernel's ephemeral range: a port from bind(0)
# can be taken, between the draw and the daemon's bind, as the source
# port of any outbound connection the test itself makes.
_PORT_RANGE = (10000, max(10002, _ephemeral_low()))
_ports = random.Random()


def _bindable(port, host, kinds):
    try:
        for kind in kinds:
            with socket.socket(socket.AF_INET, kind) as s:
                s.bind((host, port))
        return True
    except OSError:
        return False


def free_port(kind=socket.SOCK_STREAM, host="127.0.0.1"):
    """A port free for both TCP and UDP on host, so tests can use either."""
    for _ in range(1000):
        port = _ports.randrange(*_PORT_RANGE)
        if _bindable(port, host, (socket.SOCK_STREAM, socket.SOCK_DGRAM)):
            return port
    raise AssertionError("no free port in %d..%d" % _PORT_RANGE)


def even_port(host="127.0.0.1"):
    """A free even port whose odd neighbour is free too (RTP, RTCP)."""
    for _ in range(1000):
        port = _ports.randrange(_PORT_RANGE[0], _PORT_RANGE[1] - 1, 2)
        if all(_bindable(p, host, (socket.SOCK_STREAM, socket.SOCK_DGRAM)) for p in (port, port + 1)):
            return port
    raise AssertionError("no free even port pair in %d..%d" % _PORT_RANGE)


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


class Daemon:
    """One chassisd process; its stderr goes to a file the test can read."""

    def __init__(self, workdir, config_text, name="chassisd.conf", extra_args=(), preexec=None,
                 config_dir=None, wrapper=(), env=None, control=True):
        self.workdir = workdir
        # A control socket of its own (not the host's /run/chassisd/control),
        # in a folder of its own: a daemon that dropped root cannot remove it.
        # control=False: the config's control-socket applies.
        self.control_dir = tempfile.mkdtemp(prefix="chassisd-ctl-")
        os.chmod(self.control_dir, 0o755)
        self.control = os.path.join(self.control_dir, "control")
        if control:
            extra_args = ("--control", self.control, *extra_args)
        self.config = os.path.join(config_dir or workdir, name)
        self.write_config(config_text)
        # Like systemd's, the socket is writable by anyone: a daemon that
        # dropped root must still be able to report.
        self.notify_dir = tempfile.mkdtemp(prefix="chassisd-notify-")
        os.chmod(self.notify_dir, 0o755)
        self.notify_path = os.path.join(self.notify_dir, "notify.sock")
        self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.notify.bind(self.notify_path)
        os.chmod(self.notify_path, 0o666)
        self.notify.settimeout(0.1)
        self.notifications = []
        self.arrivals = []
        self.polled = 0
        self.closing = False
        self.log_path = os.path.join(workdir, "stderr.log")
        self.log_file = open(self.log_path, "wb")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify_path, **(env or {}))
        env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        self.proc = subprocess.Popen([*wrapper, BINARY, "-c", self.config, *extra_args], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=self.log_file, env=env,
                                     preexec_fn=preexec)
        self.pid = self.proc.pid
        # Read as systemd does, all the time: a socket nobody reads fills
        # (net.unix.max_dgram_qlen is 10 where no systemd raised it) and
        # sd_notify then blocks the daemon.
        self.reader = threading.Thread(target=self.read_notifications, daemon=True)
        self.reader.start()

    def read_notifications(self):
        while not self.closing:
            try:
                data = self.notify.recv(4096).decode()
            except socket.timeout:
                continue
            except OSError:
                return
            self.arrivals.append(time.monotonic())
            self.notifications.append(data)

    def write_config(self, text):
        tmp = self.config + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config)

    def poll_notifications(self, timeout=0.0):
        """The next notification not handed out before, waiting up to
        timeout for one; None when there is none."""
        deadline = time.monotonic() + timeout
        while self.polled >= len(self.notifications):
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.01)
        self.polled += 1
        return self.notifications[self.polled - 1]

    def wait_notification(self, pattern, timeout=10.0, start=0):
        """Waits for a notification (at index >= start) matching pattern."""
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        index = start
        while True:
            while index < len(self.notifications):
                if regex.search(self.notifications[index]):
                    return index, self.notifications[index]
                index += 1
            if self.proc.poll() is not None:
                time.sleep(0.2)		# what it sent last, still on its way to the reader
                if index < len(self.notifications):
                    continue
                raise AssertionError("chassisd exited (%s) before %r:\n%s" % (self.proc.returncode, pattern, self.log()))
            if time.monotonic() >= deadline:
                raise AssertionError("no %r from chassisd in %.1f s; got %r\n%s" % (
                    pattern, timeout, self.notifications, self.log()))
            time.sleep(0.02)

    def wait_ready(self):
        return self.wait_notification(r"^READY=1")

    def reload(self, text=None):
        """Sends SIGHUP and returns the STATUS of the READY=1 that ends the reload."""
        if text is not None:
            self.write_config(text)
        start = len(self.notifications)
        self.proc.send_signal(signal.SIGHUP)
        index, _ = self.wait_notification(r"^RELOADING=1", start=start)
        _, ready = self.wait_notification(r"^READY=1", start=index + 1)
        return ready

    def signal(self, signo):
        self.proc.send_signal(signo)

    def stop(self, timeout=15):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        finally:
            self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.log_file.close()
        self.closing = True
        self.reader.join()
        self.notify.close()
        if os.path.exists(self.notify_path):
            os.unlink(self.notify_path)
            os.rmdir(self.notify_dir)
        shutil.rmtree(self.control_dir, ignore_errors=True)

    def log(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=10.0):
        regex = re.compile(pattern, re.M)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = regex.search(self.log())
            if m:
                return m
            time.sleep(0.05)
        raise AssertionError("no %r in the log:\n%s" % (pattern, self.log()))

    def status_dump(self):
        """SIGUSR1, then the status lines that it logged."""
        before = self.log().count("status: ")
        self.proc.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            text = self.log()
            if text.count("status: ") > before:
                time.sleep(0.1)
                return self.log()
            time.sleep(0.05)
        raise AssertionError("no status dump")

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS")

    def cpu_seconds(self):
        with open("/proc/%d/stat" % self.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.fixture
def start_daemon(tmp_path):
    """start_daemon(config_text) -> a ready Daemon, stopped after the test.

    A daemon that logs a sanitizer report fails the test."""
    started = []

    def start(config_text, wait=True, workdir=None, **kwargs):
        """workdir: a folder of its own, for a second daemon's log."""
        if workdir is not None:
            os.makedirs(workdir, exist_ok=True)
        d = Daemon(str(workdir or tmp_path), config_text, **kwargs)
        started.append(d)
        if wait:
            d.wait_ready()
        return d

    yield start
    for d in started:
        if d.proc.poll() is None:
            d.stop()
        else:
            d.close()
        text = d.log()
        assert "Sanitizer" not in text and "runtime error" not in text, text


def connect(port, host="127.0.0.1", source=None, timeout=5.0):
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.settimeout(timeout)
    if source is not None:
        s.bind((source, 0))
    s.connect((host, port))
    return s


def recv_exactly(s, n):
    chunks = []
    while n > 0:
        data = s.recv(min(n, 1 << 20))
        if not data:
            break
        chunks.append(data)
        n -= len(data)
    return b"".join(chunks)


def echoed(port, payload, timeout=30):
    """What comes back for payload sent on a new connection while reading:
    a writer that waited for the whole echo would stall on full buffers."""
    with connect(port, timeout=timeout) as s:
        sender = threading.Thread(target=s.sendall, args=(payload,))
        sender.start()
        got = recv_exactly(s, len(payload))
        sender.join()
    return got


def echo_once(s, payload=b"ping\n"):
    s.sendall(payload)
    return recv_exactly(s, len(payload)) == payload


def is_closed_by_peer(s, timeout=3.0):
    """True when the daemon closed s (EOF or reset) without sending data."""
    s.settimeout(timeout)
    try:
        s.sendall(b"x")
        return s.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def echo_listener(name, port, extra="", transport="tcp", host="127.0.0.1"):
    return 'listener "%s" {\n  protocol = "echo"\n  transport = "%s"\n  address = "%s:%d"\n%s\n}\n' % (
        name, transport, host, port, extra)


def processes_under(pid):
    """[(pid, state)] of every live descendant of pid, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after it.
        fields = stat[stat.rindex(")") + 2:].split()
        parents[int(entry)] = (int(fields[1]), fields[0])
    found, frontier = [], [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, state) in parents.items():
            if ppid == parent:
                found.append((child, state))
                frontier.append(child)
    return found


def assert_no_zombies(pid):
    zombies = [p for p, state in processes_under(pid) if state == "Z"]
    assert zombies == [], "zombie children of %d: %s" % (pid, zombies)


def wait_until(predicate, timeout=10.0, interval=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


def read_all(s, limit=64 << 20):
    """Everything the peer sends until it closes."""
    chunks, total = [], 0
    while total <= limit:
        data = s.recv(65536)
        if not data:
            break
        chunks.append(data)
        total += len(data)
    return b"".join(chunks)
