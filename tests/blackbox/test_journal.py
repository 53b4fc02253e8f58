"""chassisd under a real systemd-journald: native records with fields.

The test starts its own journald in a private mount namespace (tmpfs on /run)
and connects chassisd's stderr to it the way systemd does for a service."""
import glob
import json
import os
import signal
import subprocess
import time

import pytest

from conftest import connect, echo_listener, free_port

HERE = os.path.dirname(os.path.abspath(__file__))

# The stable identities documented in chassisd(8).
STARTED = "cda243edc40549809734b542bc249610"
STOPPING = "f0cdb0ef8c0941a5895160411d23b453"
RELOAD_FAILED = "3e7fd68b83174817b70f914de43f5a28"
LISTENER_BOUND = "13666ceff02d412ca079631d14b2eefe"
BIND_FAILED = "e17ebe5907374888b53dedc383c395cd"
LIMIT_HIT = "67836f1c16db427d8adf0ded5d604bd6"


def namespaces_permitted():
    r = subprocess.run(["unshare", "--mount", "--propagation", "private", "mount", "-t", "tmpfs", "tmpfs", "/run"],
                       capture_output=True, text=True)
    return r.returncode == 0, r.stderr.strip()


@pytest.fixture
def journald(tmp_path):
    """-> (wrapper argv, function returning the journal's records)."""
    ok, why = namespaces_permitted()
    if not ok:
        pytest.skip("mount namespaces are not permitted here: %s" % why)
    logdir = tmp_path / "log"
    logdir.mkdir()
    pidfile = tmp_path / "journald.pid"
    wrapper = ["unshare", "--mount", "--propagation", "private", "/usr/bin/python3",
               os.path.join(HERE, "journal_wrap.py"), str(logdir), str(pidfile), "--"]

    def records():
        dirs = glob.glob(str(logdir / "journal" / "*"))
        assert dirs, "journald wrote no journal under %s" % logdir
        out = subprocess.run(["journalctl", "-D", dirs[0], "-o", "json", "--no-pager"],
                             capture_output=True, text=True, check=True).stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    yield wrapper, records
    if pidfile.exists():
        try:
            os.kill(int(pidfile.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass


def wait_for(records, predicate, what, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in records() if predicate(r)]
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError("no journal record %s in:\n%s" % (
                what, "\n".join(r.get("MESSAGE", "") for r in records())))
        time.sleep(0.1)


def with_id(message_id):
    return lambda r: r.get("MESSAGE_ID") == message_id


def test_native_records_carry_fields_and_message_ids(start_daemon, journald):
    wrapper, records = journald
    port, taken_port = free_port(), free_port()
    config = 'log-level = "debug"\n' + echo_listener("web", port, "  max-connections = 1")
    d = start_daemon(config, wrapper=wrapper)
    pid = str(d.pid)

    started = wait_for(records, with_id(STARTED), "started")[0]
    assert started["SYSLOG_IDENTIFIER"] == "chassisd"
    assert started["_PID"] == pid
    assert started["_TRANSPORT"] == "journal", "a native record, not a stderr line"
    assert started["PRIORITY"] in ("5", "6")

    bound = wait_for(records, with_id(LISTENER_BOUND), "listener bound")[0]
    assert (bound["LISTENER"], bound["PROTOCOL"], bound["TRANSPORT"]) == ("web", "echo", "tcp")
    assert bound["CONFIG_LINE"] == "3", "the first line of listener \"web\""

    # Per-connection lines are debug, and they carry the peer.
    with connect(port) as s:
        client_port = s.getsockname()[1]
        s.sendall(b"x")
        s.recv(1)
    accepted = wait_for(records, lambda r: r.get("REMOTE_PORT") == str(client_port), "for the client")
    assert {r["PRIORITY"] for r in accepted} == {"7"}
    assert accepted[0]["REMOTE_ADDR"] == "127.0.0.1"

    # Over the listener's limit: refused, counted and logged once.
    with connect(port) as first, connect(port) as second:
        first.sendall(b"x")
        first.recv(1)
        refused = wait_for(records, with_id(LIMIT_HIT), "limit hit")[0]
        assert (refused["LISTENER"], refused["PRIORITY"]) == ("web", "5")
        assert refused["REMOTE_PORT"] == str(second.getsockname()[1])

    # A broken file: the error names the file and the line.
    broken = config + 'listener "b" {\n  protocol = "nope"\n  transport = "tcp"\n  address = "127.0.0.1:%d"\n}\n' % taken_port
    status = d.reload(broken)
    assert "STATUS=reload failed" in status
    failed = wait_for(records, lambda r: with_id(RELOAD_FAILED)(r) and "CONFIG_LINE" in r, "reload failed")
    assert failed[0]["CONFIG_FILE"] == d.config
    assert failed[0]["CONFIG_LINE"] == "9", "the protocol line of listener \"b\""
    assert failed[0]["PRIORITY"] == "3"
    assert "unknown protocol" in failed[0]["MESSAGE"]

    # A port someone else holds: bind failed, at that listener's address line.
    with connect_blocker(taken_port):
        status = d.reload(config + echo_listener("busy", taken_port))
    assert "STATUS=reload failed" in status
    bind = wait_for(records, with_id(BIND_FAILED), "bind failed")[0]
    assert (bind["LISTENER"], bind["CONFIG_LINE"], bind["PRIORITY"]) == ("busy", "11", "3")
    assert bind["CONFIG_FILE"] == d.config and bind["RELOAD_GENERATION"] == "2"

    assert d.stop() == 0
    stopping = wait_for(records, with_id(STOPPING), "stopping")[0]
    assert stopping["_PID"] == pid

    mine = [r for r in records() if r.get("_PID") == pid]
    # Everything went natively: nothing leaked onto the stderr stream.
    assert [r["MESSAGE"] for r in mine if r["_TRANSPORT"] != "journal"] == []
    assert all(r["SYSLOG_IDENTIFIER"] == "chassisd" for r in mine)


class connect_blocker:
    """Holds a TCP port bound and listening, as another program would."""

    def __init__(self, port):
        import socket
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.sock.close()


def test_errors_in_an_included_file_name_it_in_config_file(start_daemon, journald, tmp_path):
    wrapper, records = journald
    port, taken_port = free_port(), free_port()
    workdir = tmp_path / "d"
    workdir.mkdir()
    included = workdir / "more.conf"
    included.write_text(echo_listener("more", port))
    d = start_daemon('include = "more.conf"\n', wrapper=wrapper, workdir=str(workdir))
    bound = wait_for(records, lambda r: with_id(LISTENER_BOUND)(r) and r.get("LISTENER") == "more", "bound")[0]
    assert (bound["CONFIG_FILE"], bound["CONFIG_LINE"]) == (str(included), "2")
    included.write_text(echo_listener("more", port) + 'listener "bad" {\n  protocol = "nope"\n}\n')
    assert "STATUS=reload failed" in d.reload()
    failed = wait_for(records, lambda r: with_id(RELOAD_FAILED)(r) and "CONFIG_LINE" in r, "reload failed")
    assert (failed[0]["CONFIG_FILE"], failed[0]["CONFIG_LINE"]) == (str(included), "8")
    with connect_blocker(taken_port):
        included.write_text(echo_listener("more", port) + echo_listener("busy", taken_port))
        assert "STATUS=reload failed" in d.reload()
    bind = wait_for(records, with_id(BIND_FAILED), "bind failed")[0]
    assert (bind["CONFIG_FILE"], bind["CONFIG_LINE"]) == (str(included), "10")
    assert d.stop() == 0
