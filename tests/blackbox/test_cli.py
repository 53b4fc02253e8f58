"""The command line: -t, --version, --help, start-up failures."""
import os
import re
import socket
import shutil
import subprocess
import tempfile

import pytest

from conftest import BINARY, ROOT, echo_listener, free_port

SHIPPED = os.path.join(ROOT, "conf", "chassisd.conf")


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30)


def test_check_good_file_prints_ok_and_binds_nothing(tmp_path):
    port = free_port()
    conf = tmp_path / "good.conf"
    conf.write_text(echo_listener("e", port))
    # Something else holds the port: -t must not try to bind it.
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        r = run("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    assert r.stdout == "%s: ok\n" % conf


def test_check_shipped_config():
    r = run("-t", "-c", SHIPPED)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "%s: ok\n" % SHIPPED


def test_check_bad_file_prints_every_error_with_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text("# comment\n"
                    'listener "a" { protocol = "nope" address = "127.0.0.1:1" }\n'
                    "# another\n"
                    'listener "b" { protocol = "echo" address = "localhost:1" }\n')
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr.splitlines() == [
        '%s:2: listener "a": unknown protocol "nope" (known: echo, fortune, audio-cookie, video-cookie, http, relay, exec, udp, rtp, srm, torrent)' % conf,
        '%s:4: listener "b": bad address "localhost:1": "localhost" is not an IPv4 address, [IPv6] address or *' % conf,
    ]


def test_missing_file_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.conf"
    for args in (["-t", "-c", str(missing)], ["-c", str(missing)]):
        r = run(*args)
        assert r.returncode == 1
        assert "%s: cannot open: No such file or directory" % missing in r.stderr


def test_unreadable_file_is_a_clear_error(tmp_path):
    r = run("-t", "-c", str(tmp_path))
    assert r.returncode == 1
    assert "%s: not a regular file" % tmp_path in r.stderr


def special_files(tmp_path):
    """What a config may name by mistake or malice: a device that never
    ends, a FIFO nobody writes, and a 2 GB (sparse) file."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(2 << 30)
    return ["/dev/zero", str(fifo), str(big)]


def test_config_that_is_a_device_fifo_or_huge_is_refused_at_once(tmp_path):
    for path, why in zip(special_files(tmp_path), ["not a regular file", "not a regular file", "larger than"]):
        r = run("-t", "-c", path)
        assert r.returncode == 1, path
        assert r.stderr.startswith("%s: %s" % (path, why)), r.stderr


def test_named_files_that_are_devices_fifos_or_huge_are_refused_at_once(tmp_path):
    """-t used to hang on mime-types = "/dev/zero" (100% CPU)."""
    dev, fifo, big = special_files(tmp_path)
    for path, mime_why, fortune_why in ((dev, "not a regular file", "not a regular file"),
                                        (fifo, "not a regular file", "not a regular file"),
                                        (big, "larger than 1048576 bytes", "larger than 16777216 bytes")):
        conf = tmp_path / "c.conf"
        conf.write_text('listener "web" {\n protocol = "http"\n address = "127.0.0.1:%d"\n'
                        ' http {\n  mime-types = "%s"\n  route "/" { handler = "status" }\n }\n}\n'
                        'listener "f" {\n protocol = "fortune"\n address = "127.0.0.1:%d"\n'
                        ' fortune { file = "%s" }\n}\n' % (free_port(), path, free_port(), path))
        r = run("-t", "-c", str(conf))
        assert r.returncode == 1
        assert r.stderr.splitlines() == [
            '%s:5: listener "web": cannot read %s: %s' % (conf, path, mime_why),
            '%s:12: listener "f": cannot load fortunes from %s: %s' % (conf, path, fortune_why),
        ]


def test_version_and_help():
    r = run("--version")
    assert r.returncode == 0 and re.fullmatch(r"chassisd \d+\.\d+\.\d+\n", r.stdout)
    r = run("--help")
    assert r.returncode == 0 and "usage: chassisd [-c FILE] [-t | -T] [-v]" in r.stdout
    r = run("--bogus")
    assert r.returncode == 2 and "usage:" in r.stderr


def test_bad_config_at_start_exits_1_with_file_line(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text('listener "a" {\n protocol = "echo"\n address = "127.0.0.1:80:80"\n}\n')
    r = run("-c", str(conf))
    assert r.returncode == 1
    assert "<3>%s:3: listener \"a\": bad address" % conf in r.stderr
    assert "not started: 1 error in %s" % conf in r.stderr


def test_port_conflict_names_listener_address_and_reason(tmp_path):
    port = free_port()
    conf = tmp_path / "c.conf"
    conf.write_text(echo_listener("busy", port))
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        r = run("-c", str(conf))
    assert r.returncode == 1
    # FILE:LINE points at the listener's address, as config errors do.
    assert "<3>%s:4: listener busy: cannot bind 127.0.0.1:%d (tcp): Address already in use" % (conf, port) \
        in r.stderr
    assert "not started" in r.stderr


def test_a_low_port_without_privilege_says_what_it_needs(tmp_path):
    if int(open("/proc/sys/net/ipv4/ip_unprivileged_port_start").read()) <= 900:
        pytest.skip("this host lets anyone bind ports below 1024")
    # pytest's own folders are private to root; nobody must read the file.
    folder = tempfile.mkdtemp(prefix="chassisd-conf-")
    os.chmod(folder, 0o755)
    conf = os.path.join(folder, "c.conf")
    with open(conf, "w") as f:
        f.write(echo_listener("low", 900))
    os.chmod(conf, 0o644)
    r = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--inh-caps=-all",
                        BINARY, "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert ("<3>%s:4: listener low: cannot bind 127.0.0.1:900 (tcp): Permission denied "
            "(a port below 1024 needs root or CAP_NET_BIND_SERVICE)" % conf) in r.stderr
    shutil.rmtree(folder)


def test_check_reports_the_line_a_runaway_string_starts_on(tmp_path):
    conf = tmp_path / "c.conf"
    # The issue's case: the quote after "info" is missing; libconfuse
    # pairs the quotes that follow wrongly and stops on line 2.
    conf.write_text('log-level = "info\nlistener "e" {\n protocol = "echo\n address = "127.0.0.1:7000"\n}\n')
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1
    assert r.stderr.splitlines()[0] == \
        "%s:1: this string runs on to line 2: is its closing quote missing?" % conf


def test_check_goes_on_after_a_bad_value_and_suggests_a_name(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text('listener "a" {\n protocol = "echo"\n adress = "127.0.0.1:7000"\n'
                    ' max-connections = "many"\n per-source = 0\n}\n')
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "%s:3: no such option 'adress' (did you mean 'address'?)" % conf,
        "%s:4: invalid integer value for option 'max-connections'" % conf,
        "%s:2: listener \"a\": missing \"address\"" % conf,
        "%s:5: listener \"a\": per-source must be from 1 to 1000000, not 0" % conf,
    ]


def test_optional_listener_that_cannot_bind_is_skipped(start_daemon):
    busy, free = free_port(), free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", busy))
        s.listen()
        d = start_daemon(echo_listener("busy", busy, "required = false") + echo_listener("ok", free))
        d.wait_log(r"<4>%s:4: listener busy: cannot bind 127\.0\.0\.1:%d \(tcp\): Address already in use "
                   r"\(not required: carrying on without it\)" % (re.escape(d.config), busy))
        with socket.create_connection(("127.0.0.1", free), timeout=5) as c:
            c.sendall(b"hi")
            assert c.recv(2) == b"hi"
    assert d.stop() == 0


def test_log_lines_carry_priority_prefix_and_no_timestamp(start_daemon):
    d = start_daemon(echo_listener("e", free_port()))
    d.wait_log(r"^<6>chassisd \S+ started")
    for line in d.log().splitlines():
        assert re.match(r"<[0-7]>[^0-9]", line), line


def test_log_on_a_tty_has_timestamps(tmp_path):
    import pty
    conf = tmp_path / "c.conf"
    conf.write_text(echo_listener("e", free_port()))
    master, slave = pty.openpty()
    proc = subprocess.Popen([BINARY, "-c", str(conf)], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=slave)
    os.close(slave)
    text = b""
    try:
        while b"started" not in text:
            text += os.read(master, 4096)
    finally:
        proc.terminate()
        proc.wait(10)
        os.close(master)
    first = text.decode().splitlines()[0]
    assert re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} info: listening on", first), first


def test_an_empty_config_is_a_warning_at_check_and_at_start(tmp_path, start_daemon):
    conf = tmp_path / "empty.conf"
    conf.write_text("# nothing yet\n")
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0 and r.stdout == "%s: ok\n" % conf
    assert r.stderr == "%s: warning: no listener and no stream: chassisd would serve nothing\n" % conf
    d = start_daemon("# nothing yet\n")
    d.wait_log(r"^<4>%s: warning: no listener and no stream: chassisd would serve nothing$" % re.escape(d.config))


def test_check_warns_about_paths_the_shipped_unit_hides(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    conf = tmp_path / "c.conf"
    conf.write_text('listener "web" {\n protocol = "http"\n address = "127.0.0.1:%d"\n http {\n'
                    '  route "/" { handler = "static"  root = "%s" }\n }\n}\n' % (free_port(), site))
    r = run("-t", "-c", str(conf))
    assert r.returncode == 0 and r.stdout == "%s: ok\n" % conf
    assert r.stderr == ('%s:5: warning: root "%s" is hidden from chassisd under the shipped systemd unit '
                        '(PrivateTmp=yes)\n' % (conf, site))
