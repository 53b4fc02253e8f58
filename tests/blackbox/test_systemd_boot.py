"""The shipped unit under a real systemd 252, booted in a container
(systemd-nspawn --volatile=yes: the host's /usr on a fresh tmpfs root).

A driver unit inside the container does what an administrator would
(systemctl start, reload a good and a bad file, status, stop, journalctl)
and writes what it saw to a folder shared with the test; then it powers the
container off. The host network is shared, so the test holds the busy port.
"""
import os
import re
import shutil
import socket
import subprocess
import uuid

import pytest

from conftest import BINARY, echo_listener, free_port

NSPAWN = shutil.which("systemd-nspawn")

pytestmark = [
    pytest.mark.skipif(NSPAWN is None, reason="systemd-nspawn is missing (package systemd-container)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="booting a container needs root"),
]

DRIVER = r"""#!/bin/bash
# Runs inside the container as its boot unit; every answer goes to /results.
out=/results/out
say() { echo "$1" >> $out; }
say booted=1
say systemd="$(systemctl --version | head -1)"
systemctl start chassisd; say start=$?
say active="$(systemctl is-active chassisd)"
say main_uid="$(ps -o uid= -p "$(systemctl show -P MainPID chassisd)" | tr -d ' ')"
say socket="$(stat -c '%a %u' /run/chassisd/control)"
cp /etc/chassisd/good.conf /etc/chassisd/chassisd.conf
systemctl reload chassisd > /results/reload-good.txt 2>&1; say reload_good=$?
exec 3<>/dev/tcp/127.0.0.1/@ADDED@ && printf 'hello\n' >&3 && read -t 5 -r echoed <&3; say echoed="$echoed"
exec 3>&-
exec 4<>/dev/tcp/127.0.0.1/@CAPS@ && caps="$(timeout 5 cat <&4 | grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb)' | tr '\t\n' ' ')"
say caps="$caps"
cp /etc/chassisd/bad.conf /etc/chassisd/chassisd.conf
systemctl reload chassisd > /results/reload-bad.txt 2>&1; say reload_bad=$?
cp /etc/chassisd/busy.conf /etc/chassisd/chassisd.conf
systemctl reload chassisd > /results/reload-busy.txt 2>&1; say reload_busy=$?
say still_active="$(systemctl is-active chassisd)"
systemctl status --no-pager -n 30 chassisd > /results/status.txt 2>&1
chassisd_status="$(/opt/chassisd/chassisd status -c /etc/chassisd/chassisd.conf 2>&1)"; say client_status=$?
echo "$chassisd_status" > /results/client-status.txt
systemctl stop chassisd; say stop=$?
say after_stop="$(systemctl is-active chassisd)"
journalctl -u chassisd -o verbose --no-pager > /results/journal.txt 2>&1
# The README's recipe for a root the sandbox hides: under /home (ProtectHome=yes)
# the unit cannot start; a drop-in made with `systemctl edit` binds it in. (Under
# ProtectHome=yes /home itself is mode 000, so the bind alone would not do for the
# dynamic user: the drop-in makes /home an empty tmpfs that holds the bind.)
mkdir -p /home/site && echo 'from home' > /home/site/index.html && chmod -R a+rX /home
cp /etc/chassisd/home.conf /etc/chassisd/chassisd.conf
systemctl start chassisd > /results/start-home.txt 2>&1; say start_home=$?
SYSTEMD_EDITOR=/results/editor.sh timeout 30 script -qec 'systemctl edit chassisd' /dev/null > /results/edit.txt 2>&1
say edit=$?
cat /etc/systemd/system/chassisd.service.d/override.conf > /results/override.txt 2>&1
systemctl reset-failed chassisd
systemctl start chassisd > /results/start-bound.txt 2>&1; say start_bound=$?
say served="$(curl -sS --max-time 5 http://127.0.0.1:@SITE@/ 2>&1)"
systemctl stop chassisd
journalctl -u chassisd -o cat --no-pager > /results/journal-home.txt 2>&1
say done=1
systemctl poweroff
"""

# What an administrator types into `systemctl edit chassisd`.
EDITOR = """#!/bin/sh
printf '[Service]\\nProtectHome=tmpfs\\nBindReadOnlyPaths=/home/site\\n' > "$1"
"""

DRIVER_UNIT = """[Unit]
Description=chassisd test driver
After=basic.target
[Service]
Type=oneshot
ExecStart=/bin/bash /results/driver.sh
StandardOutput=file:/results/driver.log
StandardError=file:/results/driver.log
"""


def installed_unit():
    """The built unit with the binary and config where the container has them."""
    built = os.path.join(os.path.dirname(os.path.dirname(BINARY)), "systemd", "chassisd.service")
    with open(built) as f:
        text = f.read()
    text = re.sub(r"/\S*/sbin/chassisd", "/opt/chassisd/chassisd", text)
    text = re.sub(r"-c /\S*chassisd\.conf", "-c /etc/chassisd/chassisd.conf", text)
    # A sanitizer build: LeakSanitizer needs ptrace, which the sandbox
    # takes away (a plain build ignores the variable).
    return text.replace("[Service]\n", "[Service]\nEnvironment=ASAN_OPTIONS=detect_leaks=0\n", 1)


def results(folder):
    values = {}
    path = os.path.join(folder, "out")
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                key, _, value = line.rstrip("\n").partition("=")
                values[key] = value
    return values


def read(folder, name):
    with open(os.path.join(folder, name)) as f:
        return f.read()


def test_the_unit_under_a_booted_systemd(tmp_path):
    base, added, caps, busy, site = free_port(), free_port(), free_port(), free_port(), free_port()
    shared, conf, opt, units = (tmp_path / n for n in ("results", "conf", "opt", "units"))
    for folder in (shared, conf, opt, units):
        folder.mkdir()
    os.chmod(shared, 0o777)
    shutil.copy(BINARY, opt / "chassisd")
    good = echo_listener("base", base)
    fortune = ('listener "caps" {\n protocol = "fortune"\n address = "127.0.0.1:%d"\n'
               ' fortune { command = {"/usr/bin/cat", "/proc/self/status"} }\n}\n' % caps)
    (conf / "chassisd.conf").write_text(good)
    (conf / "good.conf").write_text(good + echo_listener("added", added) + fortune)
    (conf / "bad.conf").write_text(good + 'listener "x" {\n protocol = "echo"\n address = "127.0.0.1:1\n}\n')
    (conf / "busy.conf").write_text(good + echo_listener("busy", busy))
    (conf / "home.conf").write_text(
        'listener "site" {\n protocol = "http"\n address = "127.0.0.1:%d"\n'
        ' http { route "/" { handler = "static"  root = "/home/site" } }\n}\n' % site)
    for name in os.listdir(conf):
        os.chmod(conf / name, 0o644)
    (shared / "driver.sh").write_text(DRIVER.replace("@ADDED@", str(added)).replace("@CAPS@", str(caps))
                                      .replace("@SITE@", str(site)))
    (shared / "editor.sh").write_text(EDITOR)
    os.chmod(shared / "editor.sh", 0o755)
    (units / "chassisd.service").write_text(installed_unit())
    (units / "chassisd-test.service").write_text(DRIVER_UNIT)
    machine = "chassisd-" + uuid.uuid4().hex[:8]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", busy))
        blocker.listen()
        try:
            boot = subprocess.run(
                [NSPAWN, "--volatile=yes", "-D", "/", "-b", "--register=no", "--keep-unit", "--quiet", "--console=pipe",
                 "-M", machine, "--bind=%s:/results" % shared, "--bind=%s:/etc/chassisd" % conf,
                 "--bind-ro=%s:/opt/chassisd" % opt,
                 "--bind-ro=%s:/etc/systemd/system/chassisd.service" % (units / "chassisd.service"),
                 "--bind-ro=%s:/etc/systemd/system/chassisd-test.service" % (units / "chassisd-test.service"),
                 # A fresh /etc is a first boot: no wizard waiting for a key.
                 "systemd.unit=chassisd-test.service", "systemd.firstboot=off"],
                stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=180)
        except subprocess.TimeoutExpired:
            pytest.fail("the container did not power off in 180 s: %s" % results(shared))
    seen = results(shared)
    if "booted" not in seen:
        pytest.skip("the container cannot start here (rc %d): %s" % (boot.returncode, boot.stdout[-800:] +
                                                                    boot.stderr[-800:]))
    assert seen.get("done") == "1", (seen, read(shared, "driver.log"))
    print("container: %s" % seen["systemd"])
    assert seen["systemd"].startswith("systemd 252")
    assert seen["start"] == "0" and seen["active"] == "active", seen
    # DynamicUser: the daemon and its control socket belong to the unit's own user.
    assert seen["main_uid"] not in ("", "0"), seen
    assert seen["socket"] == "600 " + seen["main_uid"], seen
    assert seen["reload_good"] == "0", read(shared, "reload-good.txt")
    assert seen["echoed"] == "hello", seen
    # The program the daemon ran has no capability, though the daemon has
    # CAP_NET_BIND_SERVICE. (The unit's filter refuses capset, so the
    # inheritable set stays: under no_new_privs it grants nothing.)
    caps_seen = dict(re.findall(r"(Cap\w+):\s*([0-9a-f]+)", seen["caps"]))
    assert caps_seen and all(int(caps_seen[k], 16) == 0 for k in ("CapPrm", "CapEff", "CapAmb")), seen
    # A broken file and a busy port: systemctl reload fails, visibly, and the old config serves.
    assert seen["reload_bad"] != "0" and seen["reload_busy"] != "0", seen
    assert seen["still_active"] == "active", seen
    status = read(shared, "status.txt")
    assert "/etc/chassisd/chassisd.conf:9: a string is never closed" in status, status
    assert ("/etc/chassisd/chassisd.conf:10: listener busy: cannot bind 127.0.0.1:%d (tcp): Address already in use"
            % busy) in status, status
    assert seen["client_status"] == "0" and "listener=added" in read(shared, "client-status.txt")
    assert seen["stop"] == "0" and seen["after_stop"] == "inactive", seen
    journal = read(shared, "journal.txt")
    for field in ("MESSAGE_ID=cda243edc40549809734b542bc249610", "MESSAGE_ID=3e7fd68b83174817b70f914de43f5a28",
                  "SYSLOG_IDENTIFIER=chassisd", "LISTENER=added", "CONFIG_LINE=10"):
        assert field in journal, field
    # A root under /home: hidden (ProtectHome=yes), so the unit does not
    # start and says why; bound in by a drop-in, it is served.
    assert seen["start_home"] != "0", read(shared, "start-home.txt")
    journal = read(shared, "journal-home.txt")
    assert '/etc/chassisd/chassisd.conf:4: listener "site": route "/": cannot open root /home/site: Permission denied' \
        in journal, journal
    assert "BindReadOnlyPaths=/home/site" in read(shared, "override.txt"), read(shared, "edit.txt")
    assert seen["start_bound"] == "0", read(shared, "start-bound.txt")
    assert seen["served"] == "from home", seen
