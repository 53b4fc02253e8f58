"""log-file (ISO 8601 times, reopened on SIGUSR2 and `chassisd reopen`, as
logrotate expects) and connection-log (a line per connection, any protocol)."""
import os
import re
import signal
import subprocess

from conftest import BINARY, connect, echo_listener, echo_once, free_port, wait_until

STAMP = r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d"


def read(path):
    with open(path) as f:
        return f.read()


def test_log_file_has_iso_times_and_takes_the_records_from_stderr(start_daemon, tmp_path):
    log = tmp_path / "chassisd.log"
    d = start_daemon('log-file = "%s"\n' % log + echo_listener("e", free_port()))
    text = read(log)
    assert re.search(r"^%s info: chassisd \S+ started" % STAMP, text, re.M), text
    for line in text.splitlines():
        assert re.match(r"%s (debug|info|notice|warning|err): " % STAMP, line), line
    assert "started" not in d.log()
    assert stat_mode(log) == 0o640


def stat_mode(path):
    return os.stat(path).st_mode & 0o777


def rotate(log):
    """What logrotate does without copytruncate: rename; the daemon keeps
    writing to the renamed file until told."""
    os.rename(log, str(log) + ".1")


def test_sigusr2_reopens_after_a_rename(start_daemon, tmp_path):
    log = tmp_path / "chassisd.log"
    port = free_port()
    d = start_daemon('log-file = "%s"\n' % log + echo_listener("e", port, "connection-log = true"))
    rotate(log)
    with connect(port) as s:
        assert echo_once(s)
    assert wait_until(lambda: "connection closed" in read(str(log) + ".1"))
    d.signal(signal.SIGUSR2)
    assert wait_until(lambda: os.path.exists(log) and "log-file reopened" in read(log))
    with connect(port) as s:
        assert echo_once(s)
    assert wait_until(lambda: "connection closed" in read(log))
    assert read(str(log) + ".1").count("connection closed") == 1


def test_reopen_command_answers_and_a_failure_keeps_the_old_file(start_daemon, tmp_path):
    folder = tmp_path / "logs"
    folder.mkdir()
    log = folder / "chassisd.log"
    d = start_daemon('log-file = "%s"\n' % log + echo_listener("e", free_port()))
    rotate(log)
    r = subprocess.run([BINARY, "reopen", "--control", d.control], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout == "log-file reopened\n", r.stdout + r.stderr
    assert "log-file reopened" in read(log)
    os.rename(log, str(log) + ".2")
    os.rename(folder, tmp_path / "gone")
    r = subprocess.run([BINARY, "reopen", "--control", d.control], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert r.stderr == ("cannot reopen the log-file: No such file or directory; still writing to the old one\n")
    assert "cannot reopen the log-file" in read(tmp_path / "gone" / "chassisd.log.2")


def test_a_log_file_that_cannot_be_opened_stops_the_start(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text('log-file = "%s/missing/chassisd.log"\n' % tmp_path + echo_listener("e", free_port()))
    r = subprocess.run([BINARY, "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1
    assert ("<3>not started: cannot open log-file %s/missing/chassisd.log: No such file or directory\n" % tmp_path
            in r.stderr)


def test_connection_log_for_echo_and_http_counts_the_bytes_each_way(start_daemon):
    echo, web = free_port(), free_port()
    d = start_daemon(echo_listener("e", echo, "connection-log = true") +
                     'listener "web" {\n protocol = "http"\n address = "127.0.0.1:%d"\n connection-log = true\n'
                     ' http { route "/status" { handler = "status" } }\n}\n' % web)
    with connect(echo) as s:
        assert echo_once(s, b"twelve bytes")
    d.wait_log(r"<6>connection closed: 12 bytes in, 12 bytes out, \d+\.\d{3} s, done listener=e protocol=echo "
               r"transport=tcp peer=127\.0\.0\.1:\d+")
    r = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{size_request} %{size_header} %{size_download}",
                        "http://127.0.0.1:%d/status" % web], capture_output=True, text=True, timeout=30)
    request, header, body = map(int, r.stdout.split())
    d.wait_log(r"<6>connection open listener=web protocol=http transport=tcp peer=127\.0\.0\.1:\d+")
    d.wait_log(r"<6>connection closed: %d bytes in, %d bytes out, \d+\.\d{3} s, \w+ listener=web protocol=http "
               r"transport=tcp peer=127\.0\.0\.1:\d+" % (request, header + body))


def test_without_connection_log_nothing_per_connection_at_info(start_daemon):
    port = free_port()
    d = start_daemon(echo_listener("e", port))
    with connect(port) as s:
        assert echo_once(s)
    d.status_dump()
    assert "connection closed" not in d.log()


def test_a_reload_moves_the_log_to_another_file_and_back_to_stderr(start_daemon, tmp_path):
    first, second = tmp_path / "first.log", tmp_path / "second.log"
    listener = echo_listener("e", free_port())
    d = start_daemon('log-file = "%s"\n' % first + listener)
    reload = [BINARY, "reload", "--control", d.control]
    d.write_config('log-file = "%s"\n' % second + listener)
    assert subprocess.run(reload, capture_output=True, timeout=30).returncode == 0
    assert "reload 2: 1 kept" in read(first)
    assert re.search(r"^%s info: logging to %s$" % (STAMP, re.escape(str(second))), read(second), re.M)
    d.write_config(listener)
    assert subprocess.run(reload, capture_output=True, timeout=30).returncode == 0
    d.wait_log(r"^<6>logging to stderr$")
    assert "reload 3: 1 kept" in read(second)
