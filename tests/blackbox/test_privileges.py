"""Started as root with user = "...": bind first, then drop everything."""
import os
import pwd
import socket
import subprocess

import pytest

from conftest import BINARY, connect, echo_listener, echo_once, free_port

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start as root")


def free_low_port():
    for port in range(900, 1000):
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
    pytest.skip("no free port below 1024")


def proc_status(pid):
    with open("/proc/%d/status" % pid) as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


@pytest.fixture
def public_dir():
    """A folder the dropped user can read: reloads read the file as that user."""
    import shutil
    import tempfile
    folder = tempfile.mkdtemp(prefix="chassisd-conf-")
    os.chmod(folder, 0o755)
    yield folder
    shutil.rmtree(folder)


def test_drops_to_nobody_and_still_serves_a_low_port(start_daemon, public_dir):
    low = free_low_port()
    nobody = pwd.getpwnam("nobody")
    d = start_daemon('user = "nobody"\ngroup = "nogroup"\n' + echo_listener("low", low), config_dir=public_dir)
    os.chmod(d.config, 0o644)
    d.wait_log(r"<6>running as user nobody \(uid %d, gid \d+\)" % nobody.pw_uid)
    status = proc_status(d.pid)
    assert status["Uid"].split() == [str(nobody.pw_uid)] * 4
    assert len(set(status["Gid"].split())) == 1 and status["Gid"].split()[0] != "0"
    assert status["Groups"].strip() == status["Gid"].split()[0]
    assert int(status["CapEff"], 16) == 0 and int(status["CapPrm"], 16) == 0
    with connect(low) as s:
        assert echo_once(s)
    # A reload still works; a new low port cannot be bound any more and rolls back.
    other_low = free_low_port() + 1
    d.write_config('user = "nobody"\ngroup = "nogroup"\n' + echo_listener("low", low) +
                   echo_listener("more", other_low))
    os.chmod(d.config, 0o644)
    assert "reload failed (bind error)" in d.reload()
    d.wait_log(r"listener more: cannot bind 127\.0\.0\.1:%d \(tcp\): Permission denied" % other_low)
    with connect(low) as s:
        assert echo_once(s)


def test_refuses_to_run_when_the_drop_is_impossible(tmp_path):
    import tempfile
    folder = tempfile.mkdtemp(prefix="chassisd-conf-")
    os.chmod(folder, 0o755)
    conf = os.path.join(folder, "c.conf")
    with open(conf, "w") as f:
        f.write('user = "daemon"\n' + echo_listener("e", free_port()))
    os.chmod(conf, 0o644)
    nobody = pwd.getpwnam("nobody")

    def become_nobody():
        os.setgid(nobody.pw_gid)
        os.setuid(nobody.pw_uid)

    try:
        r = subprocess.run([BINARY, "-c", conf], capture_output=True, text=True, timeout=20,
                           preexec_fn=become_nobody)
        # -t (the unit's ExecStartPre=, run as the same user) warns first.
        check = subprocess.run([BINARY, "-t", "-c", conf], capture_output=True, text=True, timeout=20,
                               preexec_fn=become_nobody)
    finally:
        os.unlink(conf)
        os.rmdir(folder)
    assert r.returncode == 1
    # Not root: the message says what to do, not "refusing to keep running as root".
    uid = nobody.pw_uid
    assert ('cannot become user daemon: started as uid %d, not root, and only root can change user; under '
            'systemd the unit chooses the user (User=, DynamicUser=): remove "user" and "group" from the config'
            % uid) in r.stderr
    assert "not started: cannot become user daemon" in r.stderr
    assert "as root" not in r.stderr
    assert check.returncode == 0 and check.stdout == "%s: ok\n" % conf
    assert check.stderr == ('%s:1: warning: user "daemon": running as uid %d, not root, chassisd cannot change '
                            'user; under systemd the unit chooses it (User=, DynamicUser=): remove "user" and '
                            '"group" here\n' % (conf, uid))


def test_programs_get_no_capability_under_the_units_settings(start_daemon, public_dir):
    """The shipped unit runs chassisd as a dynamic user with
    CAP_NET_BIND_SERVICE in its ambient set; a program it ran kept it
    (CapEff/CapAmb 0000000000000400). setpriv reproduces the unit."""
    port = free_port()
    wrapper = ("setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
               "--inh-caps=-all,+net_bind_service", "--ambient-caps=+net_bind_service",
               "--bounding-set=-all,+net_bind_service")
    show = '"/bin/sh", "-c", "grep -E \'^(Cap|NoNewPrivs)\' /proc/self/status"'
    d = start_daemon('listener "caps" {\n protocol = "fortune"\n address = "127.0.0.1:%d"\n'
                     ' fortune { command = {%s} }\n}\n' % (port, show), config_dir=public_dir, wrapper=wrapper)
    daemon = proc_status(d.pid)
    assert int(daemon["CapEff"], 16) == 0x400, "the daemon keeps what a reload needs to bind below 1024"
    with connect(port, timeout=10) as s:
        out = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            out += chunk
    child = dict(line.split(":\t", 1) for line in out.decode().splitlines())
    for field in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
        assert int(child[field], 16) == 0, (field, child)
    assert child["NoNewPrivs"].strip() == "1"
