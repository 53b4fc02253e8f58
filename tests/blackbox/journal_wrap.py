"""Run a command with its stderr connected to a private, real systemd-journald.

Usage (inside a fresh mount namespace, as root):
    unshare --mount --propagation private python3 journal_wrap.py LOGDIR PIDFILE -- CMD...

A tmpfs over /run hides the host's journal sockets, so the journald started
here is the only one the command can reach; its files land in LOGDIR through
a bind mount on /run/log. stderr becomes a journal stream and JOURNAL_STREAM
names it, exactly as systemd sets up a service. The command is exec'd, so its
pid is this process's pid; journald is left running (its pid in PIDFILE) for
the test to read from and then kill.
"""
import os
import socket
import subprocess
import sys
import time

JOURNALD = "/lib/systemd/systemd-journald"


def run(*argv):
    subprocess.run(argv, check=True)


def start_journald(pidfile):
    # sh exits at once, so journald is nobody's child here: the command we
    # exec next must not inherit it.
    run("sh", "-c", '%s </dev/null >/dev/null 2>&1 & echo $! > "%s"' % (JOURNALD, pidfile))
    deadline = time.monotonic() + 10
    while not os.path.exists("/run/systemd/journal/stdout"):
        if time.monotonic() > deadline:
            sys.exit("journald did not create its sockets")
        time.sleep(0.02)


def journal_stream(identifier):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect("/run/systemd/journal/stdout")
    s.shutdown(socket.SHUT_RD)
    # The stream header (sd_journal_stream_fd): identifier, unit, priority,
    # level prefix, forward to syslog, kmsg, console.
    s.sendall(("%s\n\n6\n1\n0\n0\n0\n" % identifier).encode())
    return s


def main():
    logdir, pidfile, sep, *command = sys.argv[1:]
    assert sep == "--" and command
    run("mount", "-t", "tmpfs", "tmpfs", "/run")
    os.makedirs("/run/systemd")
    os.makedirs("/run/log")
    run("mount", "--bind", logdir, "/run/log")
    start_journald(pidfile)
    stream = journal_stream(os.path.basename(command[0]))
    st = os.fstat(stream.fileno())
    os.environ["JOURNAL_STREAM"] = "%d:%d" % (st.st_dev, st.st_ino)
    os.dup2(stream.fileno(), 2)
    os.execvp(command[0], command)


if __name__ == "__main__":
    main()
