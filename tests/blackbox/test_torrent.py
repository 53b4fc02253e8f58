"""torrent: chassisd seeds a directory through libtorrent, and real peers
(Debian's python3-libtorrent) download from it, all on loopback with DHT,
LSD, UPnP, NAT-PMP and uTP off."""

import hashlib
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from conftest import free_port, wait_until
from test_stream import status_listener, stream_status

PYTHON = "/usr/bin/python3"
FETCH = os.path.join(os.path.dirname(__file__), "lt_fetch.py")


def have_python_libtorrent():
    return subprocess.run([PYTHON, "-c", "import libtorrent"], capture_output=True).returncode == 0


pytestmark = pytest.mark.skipif(not have_python_libtorrent(), reason="needs python3-libtorrent (Debian's)")


def seeds(directory, state, port, extra=""):
    return ('stream "seeds" {\n  protocol = "torrent"\n'
            '  torrent { listen = {"127.0.0.1:%d"} directory = "%s" state = "%s" %s }\n}\n'
            % (port, directory, state, extra))


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def made_torrent(d, path, timeout=30):
    """The .torrent chassisd made for path, from its log line."""
    return d.wait_log(r"%s: made (\S+\.torrent)" % re.escape(path), timeout=timeout).group(1)


def fetch(torrent, save, port, timeout=60):
    return subprocess.run([PYTHON, FETCH, torrent, str(save), str(port), str(timeout)], capture_output=True,
                          text=True, timeout=timeout + 30)


@pytest.fixture
def dirs(tmp_path):
    seed, state, dl = tmp_path / "seed", tmp_path / "state", tmp_path / "dl"
    for d in (seed, state, dl):
        d.mkdir()
    return seed, state, dl


def test_a_20_mib_file_downloads_whole_and_the_status_page_shows_the_upload(start_daemon, dirs):
    seed, state, dl = dirs
    with open(seed / "big.bin", "wb") as f:
        f.write(os.urandom(20 << 20))
    port, web = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port) + status_listener(web))
    torrent = made_torrent(d, str(seed / "big.bin"))
    assert torrent.startswith(str(state) + "/")
    done = fetch(torrent, dl, port)
    assert done.returncode == 0, done.stderr
    assert sha256(dl / "big.bin") == sha256(seed / "big.bin")
    # The figures come with libtorrent's next update, once a second.
    assert wait_until(lambda: stream_status(web, "seeds")["module"]["torrent"][0]["uploaded"] >= 20 << 20)
    st = stream_status(web, "seeds")
    assert st["module"]["torrents"] == 1
    assert st["text"][st["module"]["torrent"][0]["name"]].startswith("seeding big.bin")


def test_a_folder_of_three_files_is_one_torrent(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "album").mkdir()
    for i in range(3):
        (seed / "album" / ("track%d.bin" % i)).write_bytes(os.urandom(300000 + i * 7777))
    port = free_port()
    d = start_daemon(seeds(seed, state, port))
    done = fetch(made_torrent(d, str(seed / "album")), dl, port)
    assert done.returncode == 0, done.stderr
    for i in range(3):
        name = "track%d.bin" % i
        assert sha256(dl / "album" / name) == sha256(seed / "album" / name)


def test_torrents_are_made_once_and_kept_in_state(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(os.urandom(100000))
    port = free_port()
    d = start_daemon(seeds(seed, state, port))
    torrent = made_torrent(d, str(seed / "a.bin"))
    d.wait_log(r"seeding as [0-9a-f]{40}")
    assert d.stop() == 0
    made = os.stat(torrent).st_mtime_ns
    d = start_daemon(seeds(seed, state, port), workdir=str(dl / "second"))
    d.wait_log(r"a.bin: seeding as [0-9a-f]{40}")
    assert ": made " not in d.log()
    assert os.stat(torrent).st_mtime_ns == made


def test_a_file_added_to_the_directory_is_seeded_without_a_restart(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "first.bin").write_bytes(os.urandom(50000))
    port = free_port()
    d = start_daemon(seeds(seed, state, port))
    made_torrent(d, str(seed / "first.bin"))
    # Written elsewhere and moved in: a file counts once it is whole.
    tmp = dl / "new.part"
    tmp.write_bytes(os.urandom(2 << 20))
    os.rename(tmp, seed / "new.bin")
    torrent = made_torrent(d, str(seed / "new.bin"))
    done = fetch(torrent, dl, port)
    assert done.returncode == 0, done.stderr
    assert sha256(dl / "new.bin") == sha256(seed / "new.bin")
    os.unlink(seed / "first.bin")
    d.wait_log(r"first.bin: no longer seeded")


def test_sighup_keeps_the_session_and_seeds_what_is_new(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "first.bin").write_bytes(os.urandom(50000))
    port = free_port()
    d = start_daemon(seeds(seed, state, port))
    made_torrent(d, str(seed / "first.bin"))
    d.reload()
    assert "stream seeds: changed, restarted" not in d.log()
    (seed / "later.bin").write_bytes(os.urandom(1 << 20))
    d.reload()
    done = fetch(made_torrent(d, str(seed / "later.bin")), dl, port)
    assert done.returncode == 0, done.stderr
    assert sha256(dl / "later.bin") == sha256(seed / "later.bin")
    assert d.log().count("successfully listening on [TCP] 127.0.0.1:%d" % port) == 1


def test_a_changed_listen_address_restarts_the_session_on_it(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(os.urandom(200000))
    port, port2 = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port))
    torrent = made_torrent(d, str(seed / "a.bin"))
    d.reload(seeds(seed, state, port2))
    d.wait_log(r"successfully listening on \[TCP\] 127.0.0.1:%d" % port2)
    done = fetch(torrent, dl, port2)
    assert done.returncode == 0, done.stderr


def test_stop_is_prompt_and_clean(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(os.urandom(100000))
    port = free_port()
    d = start_daemon(seeds(seed, state, port))
    d.wait_log(r"successfully listening")
    began = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - began < 5
    assert "stopped" in d.log()


def test_a_port_in_use_is_a_warning_in_the_log(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(b"x" * 1000)
    port = free_port()
    first = start_daemon(seeds(seed, state, port))
    first.wait_log(r"successfully listening on \[TCP\]")
    second = start_daemon(seeds(seed, state, port), workdir=str(dl / "second"))
    second.wait_log(r"^<4>stream seeds: .*listening on .*127.0.0.1:%d.* failed" % port)
