"""torrent: chassisd seeds a directory through libtorrent, and real peers
(Debian's python3-libtorrent) download from it, all on loopback with DHT,
LSD, UPnP, NAT-PMP and uTP off."""

import hashlib
import http.client
import os
import re
import socket
import urllib.parse
import urllib.error
import urllib.request
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


def tracker_listener(port, extra=""):
    return ('listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
            '  http { route "/announce" { handler = "tracker" %s }  route "/status" { handler = "status" } }\n}\n'
            % (port, extra))


def announce(tracker_port, host="127.0.0.1", **fields):
    query = "&".join("%s=%s" % (k, urllib.parse.quote(v) if isinstance(v, (bytes, str)) else v)
                     for k, v in fields.items())
    with urllib.request.urlopen("http://%s:%d/announce?%s" % (host, tracker_port, query), timeout=5) as r:
        return r.read()


def good_announce(info_hash=b"\x01" * 20, peer_id=b"-XX0001-000000000000", port=6881, left=0, **more):
    return dict(info_hash=info_hash, peer_id=peer_id, port=port, left=left, compact=1, **more)


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
    assert wait_until(lambda: stream_status(web, "seeds")["module"]["torrent"][0]["uploaded_bytes"] >= 20 << 20)
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
    # watch = false: only the reload can find the new file.
    d = start_daemon(seeds(seed, state, port, "watch = false"))
    made_torrent(d, str(seed / "first.bin"))
    d.reload()
    assert "stream seeds: changed, restarted" not in d.log()
    (seed / "later.bin").write_bytes(os.urandom(1 << 20))
    time.sleep(0.5)
    assert "later.bin" not in d.log()
    d.reload()
    done = fetch(made_torrent(d, str(seed / "later.bin")), dl, port)
    assert done.returncode == 0, done.stderr
    assert sha256(dl / "later.bin") == sha256(seed / "later.bin")
    assert d.log().count("successfully listening on [TCP] 127.0.0.1:%d" % port) == 1


def test_a_changed_listen_address_is_applied_to_the_running_session(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(os.urandom(200000))
    port, port2 = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port))
    torrent = made_torrent(d, str(seed / "a.bin"))
    d.wait_log(r"a.bin: seeding as")
    d.reload(seeds(seed, state, port2, "upload-rate = 10000000"))
    d.wait_log(r"successfully listening on \[TCP\] 127.0.0.1:%d" % port2)
    assert "changed, restarted" not in d.log()
    assert d.log().count("seeding as") == 1
    done = fetch(torrent, dl, port2)
    assert done.returncode == 0, done.stderr
    # The old port is closed.
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_a_changed_tracker_makes_new_torrents(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(os.urandom(100000))
    port = free_port()
    d = start_daemon(seeds(seed, state, port))
    first = made_torrent(d, str(seed / "a.bin"))
    d.reload(seeds(seed, state, port, 'tracker = "http://127.0.0.1:1/announce"'))
    d.wait_log(r"stream seeds: changed, restarted")
    second = d.wait_log(r"a.bin: made (\S+\.torrent)", timeout=30)
    for _ in range(100):
        found = re.findall(r"a.bin: made (\S+\.torrent)", d.log())
        if len(found) == 2:
            break
        time.sleep(0.05)
    assert len(found) == 2 and found[1] != first
    with open(found[1], "rb") as f:
        assert b"http://127.0.0.1:1/announce" in f.read()


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


def have_aria2c():
    return shutil.which("aria2c") is not None


@pytest.mark.skipif(not have_aria2c(), reason="needs aria2c")
def test_aria2c_downloads_20_mib_through_the_daemons_own_tracker(start_daemon, dirs):
    seed, state, dl = dirs
    with open(seed / "big.bin", "wb") as f:
        f.write(os.urandom(20 << 20))
    port, web = free_port(), free_port()
    config = (seeds(seed, state, port, 'tracker = "http://127.0.0.1:%d/announce"' % web)
              + tracker_listener(web, "interval = 10"))
    d = start_daemon(config)
    torrent = made_torrent(d, str(seed / "big.bin"))
    # chassisd's own announce, with its seeding port, comes first.
    d.wait_log(r'"GET /announce\?info_hash=.*&port=%d&.*left=0' % port)
    done = subprocess.run(["aria2c", "--dir", str(dl), "--enable-dht=false", "--enable-dht6=false",
                           "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
                           "--disable-ipv6=true", "--summary-interval=0", torrent],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sha256(dl / "big.bin") == sha256(seed / "big.bin")
    # aria2c announced itself to the tracker, which gave it chassisd.
    assert re.search(r'"GET /announce\?[^"]*left=%d[^"]*" 200 .*aria2' % (20 << 20), d.log())
    # aria2c said "stopped" on its way out: only chassisd is left.
    route = stream_status(web, "web")["module"]["route"][0]
    assert route["swarms"] == 1 and route["tracker_peers"] == 1 and route["announce_failures"] == 0
    assert re.search(r'"GET /announce\?[^"]*event=stopped[^"]*" 200 .*aria2', d.log())
    assert wait_until(lambda: stream_status(web, "seeds")["module"]["uploaded_bytes"] >= 20 << 20)


def test_the_tracker_gives_compact_peer_lists_without_the_asker(start_daemon):
    web = free_port()
    start_daemon(tracker_listener(web))
    first = announce(web, **good_announce(peer_id=b"-AA0001-000000000001", port=7001, event="started"))
    assert first == b"d8:completei1e10:downloadedi0e10:incompletei0e8:intervali1800e12:min intervali900e" \
                    b"5:peers0:6:peers60:e"
    second = announce(web, **good_announce(peer_id=b"-AA0001-000000000002", port=7002, left=5))
    assert b"5:peers6:\x7f\x00\x00\x01\x1b\x59" in second
    assert b"8:completei1e" in second and b"10:incompletei1e" in second
    # stopped: gone from the list
    announce(web, **good_announce(peer_id=b"-AA0001-000000000001", port=7001, event="stopped"))
    third = announce(web, **good_announce(peer_id=b"-AA0001-000000000002", port=7002, left=5))
    assert b"5:peers0:" in third


@pytest.mark.parametrize("fields, reason", [
    ({"peer_id": b"-XX0001-000000000000", "port": 1, "compact": 1}, b"missing info_hash"),
    ({"info_hash": b"\x01" * 19, "peer_id": b"-XX0001-000000000000", "port": 1}, b"info_hash must be 20 bytes"),
    ({"info_hash": b"\x01" * 21, "peer_id": b"-XX0001-000000000000", "port": 1}, b"info_hash must be 20 bytes"),
    ({"info_hash": b"\x01" * 20, "peer_id": b"short", "port": 1}, b"peer_id must be 20 bytes"),
    ({"info_hash": b"\x01" * 20, "peer_id": b"-XX0001-000000000000", "port": 0}, b"port must be from 1 to 65535"),
    ({"info_hash": b"\x01" * 20, "peer_id": b"-XX0001-000000000000"}, b"missing port"),
    (good_announce(numwant=10 ** 12), b"numwant must be from 0 to 65535"),
    (good_announce(numwant="lots"), b"numwant must be from 0 to 65535"),
    ({**good_announce(), "compact": 0}, b"only compact answers (compact=1) are given"),
    (good_announce(event="paused"), b"event must be started, completed or stopped"),
])
def test_malformed_announces_get_a_bencoded_failure_reason(start_daemon, fields, reason):
    web = free_port()
    start_daemon(tracker_listener(web))
    assert announce(web, **fields) == b"d14:failure reason%d:%se" % (len(reason), reason)
    route = stream_status(web, "web")["module"]["route"][0]
    assert route["announce_failures"] == 1 and route["swarms"] == 0


def test_the_tracker_tables_are_bounded(start_daemon):
    web = free_port()
    start_daemon(tracker_listener(web, "max-swarms = 2  max-peers = 3"))
    for i in range(2):
        assert b"failure" not in announce(web, **good_announce(info_hash=bytes([i]) * 20))
    assert announce(web, **good_announce(info_hash=b"\x09" * 20)) == b"d14:failure reason31:tracker full: too many torrentse"
    for i in range(3):
        assert b"failure" not in announce(web, **good_announce(peer_id=b"-XX0001-%012d" % i))
    full = announce(web, **good_announce(peer_id=b"-XX0001-999999999999"))
    assert full.startswith(b"d14:failure reason") and b"too many peers" in full
    route = stream_status(web, "web")["module"]["route"][0]
    assert route["swarms"] == 2 and route["tracker_peers"] == 4 and route["table_full"] == 2


def test_swarms_whose_peers_all_stopped_give_their_room_back(start_daemon):
    """max-swarms = 2: two torrents announced and stopped leave no swarm,
    so a third is taken; announces of made-up info_hashes cannot fill the
    table for good."""
    web = free_port()
    start_daemon(tracker_listener(web, "max-swarms = 2"))
    for i in range(2):
        assert b"failure" not in announce(web, **good_announce(info_hash=bytes([i]) * 20, event="started"))
        assert b"failure" not in announce(web, **good_announce(info_hash=bytes([i]) * 20, event="stopped"))
    assert stream_status(web, "web")["module"]["route"][0]["swarms"] == 0
    assert b"failure" not in announce(web, **good_announce(info_hash=b"\x09" * 20))
    assert stream_status(web, "web")["module"]["route"][0]["swarms"] == 1


def test_one_address_gets_at_most_max_peers_per_address_in_a_swarm(start_daemon):
    web = free_port()
    start_daemon(tracker_listener(web, "max-peers-per-address = 2"))
    for i in range(2):
        assert b"failure" not in announce(web, **good_announce(peer_id=b"-XX0001-%012d" % i))
    refused = announce(web, **good_announce(peer_id=b"-XX0001-000000000002"))
    assert refused == b"d14:failure reason46:tracker full: too many peers from this addresse"
    query = urllib.parse.urlencode(good_announce(peer_id=b"-XX0001-000000000003"))
    other = http.client.HTTPConnection("127.0.0.1", web, timeout=5, source_address=("127.0.0.2", 0))
    other.request("GET", "/announce?" + query)
    assert b"failure" not in other.getresponse().read()
    other.close()
    assert stream_status(web, "web")["module"]["route"][0]["tracker_peers"] == 3


def test_ipv6_peers_come_as_peers6(start_daemon):
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    web = free_port()
    start_daemon('listener "web6" {\n  protocol = "http"\n  address = "[::1]:%d"\n'
                 '  http { route "/announce" { handler = "tracker" } }\n}\n' % web)
    announce(web, host="[::1]", **good_announce(peer_id=b"-AA0001-000000000001", port=7001))
    answer = announce(web, host="[::1]", **good_announce(peer_id=b"-AA0001-000000000002", port=7002))
    assert b"5:peers0:6:peers618:" + socket.inet_pton(socket.AF_INET6, "::1") + b"\x1b\x59e" in answer


def torrents_listener(port):
    return ('listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
            '  http { route "/torrents" { handler = "torrents"  stream = "seeds" } }\n}\n' % port)


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.headers.get("Content-Type"), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type"), e.read()


def test_the_index_lists_torrents_escaped_with_their_files_and_magnets(start_daemon, dirs):
    seed, state, dl = dirs
    name = 'a <b>&"x".bin'
    (seed / name).write_bytes(os.urandom(300000))
    port, web = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port, 'tracker = "http://127.0.0.1:1/announce"') + torrents_listener(web))
    torrent = made_torrent(d, str(seed / name))
    info_hash = d.wait_log(r"seeding as ([0-9a-f]{40})").group(1)
    status, kind, page = get("http://127.0.0.1:%d/torrents" % web)
    assert status == 200 and kind.startswith("text/html")
    page = page.decode()
    assert "a &lt;b&gt;&amp;&quot;x&quot;.bin" in page and "<b>" not in page
    assert 'href="/torrents/%s.torrent"' % info_hash in page
    magnet = re.search(r'href="(magnet:[^"]+)"', page).group(1).replace("&amp;", "&")
    assert magnet.startswith("magnet:?xt=urn:btih:%s&dn=a%%20%%3Cb%%3E%%26%%22x%%22.bin&tr=" % info_hash)
    status, kind, body = get("http://127.0.0.1:%d/torrents/%s.torrent" % (web, info_hash))
    assert status == 200 and kind == "application/x-bittorrent"
    with open(torrent, "rb") as f:
        assert body == f.read()
    assert get("http://127.0.0.1:%d/torrents/%s.torrent" % (web, "0" * 40))[0] == 404
    assert get("http://127.0.0.1:%d/torrents/../state" % web)[0] in (400, 404)
    # The magnet alone: the metadata comes from chassisd (BEP 9).
    done = fetch(magnet, dl, port)
    assert done.returncode == 0, done.stderr
    assert sha256(dl / name) == sha256(seed / name)


def test_the_index_is_404_while_the_stream_does_not_run(start_daemon):
    web = free_port()
    start_daemon(torrents_listener(web))
    assert get("http://127.0.0.1:%d/torrents" % web)[0] == 404


@pytest.mark.skipif(not have_aria2c(), reason="needs aria2c")
def test_a_web_seed_on_the_static_route_serves_aria2c_with_ranges(start_daemon, dirs):
    seed, state, dl = dirs
    with open(seed / "web.bin", "wb") as f:
        f.write(os.urandom(3 << 20))
    port, web = free_port(), free_port()
    config = (seeds(seed, state, port, 'web-seed = "http://127.0.0.1:%d/seed/"' % web)
              + 'listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
                '  http { route "/seed/" { handler = "static"  root = "%s" } }\n}\n' % (web, seed))
    d = start_daemon(config)
    torrent = made_torrent(d, str(seed / "web.bin"))
    # No tracker, no DHT: the url-list is the only way to the data.
    done = subprocess.run(["aria2c", "--dir", str(dl), "--enable-dht=false", "--enable-dht6=false",
                           "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
                           "--disable-ipv6=true", "--summary-interval=0", torrent],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sha256(dl / "web.bin") == sha256(seed / "web.bin")
    assert re.search(r'"GET /seed/web.bin HTTP/1.1" 206 ', d.log()), d.log()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to start as root")
def test_libtorrents_threads_start_after_the_privilege_drop(start_daemon, tmp_path):
    import pwd
    import tempfile
    nobody = pwd.getpwnam("nobody")
    top = tempfile.mkdtemp(prefix="chassisd-torrent-")
    try:
        os.chmod(top, 0o755)
        seed, state = os.path.join(top, "seed"), os.path.join(top, "state")
        os.mkdir(seed, 0o755)
        os.mkdir(state, 0o755)
        os.chown(state, nobody.pw_uid, nobody.pw_gid)
        with open(os.path.join(seed, "a.bin"), "wb") as f:
            f.write(os.urandom(500000))
        os.chmod(os.path.join(seed, "a.bin"), 0o644)
        port = free_port()
        d = start_daemon('user = "nobody"\ngroup = "nogroup"\n' + seeds(seed, state, port), config_dir=top)
        torrent = made_torrent(d, os.path.join(seed, "a.bin"))
        d.wait_log(r"successfully listening on \[TCP\]")
        tasks = os.listdir("/proc/%d/task" % d.pid)
        assert len(tasks) > 1
        for task in tasks:
            with open("/proc/%d/task/%s/status" % (d.pid, task)) as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
            assert uids == [str(nobody.pw_uid)] * 4, task
        # The session starts, then makes the torrents, from the loop: a
        # .torrent owned by nobody shows that came after the drop (glibc
        # would change every thread's uid anyway, so the uids alone cannot).
        assert os.stat(torrent).st_uid == nobody.pw_uid
        done = fetch(torrent, tmp_path, port)
        assert done.returncode == 0, done.stderr
    finally:
        shutil.rmtree(top)


def test_the_loop_answers_while_a_large_file_is_hashed(start_daemon, dirs):
    seed, state, dl = dirs
    with open(seed / "huge.bin", "wb") as f:
        f.truncate(2 << 30)    # sparse: 2 GiB to hash, nothing on disk
    port, web = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port) + status_listener(web))
    answered_while_hashing = 0
    deadline = time.monotonic() + 120
    while ": made " not in d.log() and time.monotonic() < deadline:
        began = time.monotonic()
        stream_status(web, "seeds")
        assert time.monotonic() - began < 1.0
        if ": made " not in d.log():
            answered_while_hashing += 1
        time.sleep(0.05)
    assert answered_while_hashing >= 3
    made_torrent(d, str(seed / "huge.bin"), timeout=5)
    d.wait_log(r"huge.bin: seeding as [0-9a-f]{40}")


def test_a_stop_while_a_torrent_is_made_is_prompt_and_clean(start_daemon, dirs):
    seed, state, dl = dirs
    with open(seed / "huge.bin", "wb") as f:
        f.truncate(2 << 30)
    d = start_daemon(seeds(seed, state, free_port()))
    d.wait_log(r"successfully listening on \[TCP\]")
    began = time.monotonic()
    assert d.stop() == 0
    assert time.monotonic() - began < 5
    assert ": made " not in d.log()
    assert [f for f in os.listdir(state) if f.endswith(".torrent")] == []


@pytest.mark.skipif(shutil.which("transmission-daemon") is None or shutil.which("ip") is None
                    or os.geteuid() != 0, reason="needs transmission-daemon, ip and root")
def test_transmission_downloads_through_the_tracker_in_a_namespace(start_daemon, dirs, tmp_path):
    # transmission ignores tracker peers at 127/8 and keys peers by IP: in a
    # namespace of its own, chassisd and transmission each get a 10.x address.
    from test_stream import Namespace
    seed, state, dl = dirs
    with open(seed / "big.bin", "wb") as f:
        f.write(os.urandom(10 << 20))
    ns = Namespace("chassisd-bt%d" % os.getpid())
    transmission = None
    try:
        for addr in ("10.21.0.1/32", "10.21.0.2/32"):
            subprocess.run([*ns.prefix(), "ip", "addr", "add", addr, "dev", "lo"], check=True)
        port, web = 16881, 18080    # the namespace's own ports: nothing else is there
        d = start_daemon(
            'stream "seeds" {\n  protocol = "torrent"\n  torrent { listen = {"10.21.0.1:%d"} directory = "%s"'
            ' state = "%s" tracker = "http://10.21.0.1:%d/announce" }\n}\n'
            'listener "web" {\n  protocol = "http"\n  address = "10.21.0.1:%d"\n'
            '  http { route "/announce" { handler = "tracker"  interval = 10 } }\n}\n'
            % (port, seed, state, web, web), wrapper=ns.prefix())
        torrent = made_torrent(d, str(seed / "big.bin"))
        d.wait_log(r'"GET /announce\?.*&port=%d&' % port)
        config, watch = tmp_path / "tr-config", tmp_path / "tr-watch"
        config.mkdir()
        watch.mkdir()
        log = open(tmp_path / "transmission.log", "wb")
        transmission = subprocess.Popen(
            [*ns.prefix(), "transmission-daemon", "-f", "-g", str(config), "-w", str(dl), "-c", str(watch),
             "-T", "-p", "19091", "-P", "51413", "-i", "10.21.0.2", "-r", "127.0.0.1", "-O", "-Y", "-M",
             "--no-utp", "--log-info"], stdout=log, stderr=subprocess.STDOUT)
        time.sleep(1)
        shutil.copy(torrent, watch / "big.torrent")
        want = sha256(seed / "big.bin")
        assert wait_until(lambda: os.path.exists(dl / "big.bin") and os.path.getsize(dl / "big.bin") == 10 << 20
                          and sha256(dl / "big.bin") == want, timeout=90, interval=0.5), \
            open(tmp_path / "transmission.log", "rb").read().decode(errors="replace")[-3000:] + d.log()[-3000:]
        assert re.search(r'"GET /announce\?[^"]*" 200 .*Transmission', d.log())
    finally:
        if transmission is not None:
            transmission.terminate()
            transmission.wait(10)
        ns.delete()


def test_a_tracker_limited_to_a_stream_knows_only_its_torrents(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(os.urandom(100000))
    port, web = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port, 'tracker = "http://127.0.0.1:%d/announce"' % web)
                     + tracker_listener(web, 'stream = "seeds"'))
    info_hash = d.wait_log(r"a.bin: seeding as ([0-9a-f]{40})").group(1)
    d.wait_log(r'"GET /announce\?[^"]*&port=%d&[^"]*" 200 ' % port)
    answer = announce(web, **good_announce(info_hash=bytes.fromhex(info_hash), peer_id=b"-XX0001-000000000009"))
    assert answer.startswith(b"d8:complete")
    assert b"5:peers6:\x7f\x00\x00\x01" + port.to_bytes(2, "big") in answer
    other = announce(web, **good_announce(info_hash=b"\x07" * 20))
    assert other == b"d14:failure reason34:unknown info_hash: not seeded heree"


def test_what_cannot_be_made_is_a_warning_and_counted(start_daemon, dirs):
    seed, state, dl = dirs
    (seed / "empty").mkdir()
    (seed / "a.bin").write_bytes(os.urandom(1000))
    port, web = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port) + status_listener(web))
    d.wait_log(r"^<4>stream seeds: .*/empty: cannot make a torrent: ")
    d.wait_log(r"a.bin: seeding as")
    st = stream_status(web, "seeds")["module"]
    assert st["rejected"] == 1 and st["torrents"] == 1


# ---- torrents = {...}: .torrent files given by the administrator ----

MAKE_TORRENT = """
import sys, libtorrent as lt
data, out, tracker, flags = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
fs = lt.file_storage()
lt.add_files(fs, data)
t = lt.create_torrent(fs, 0, lt.create_torrent.v2_only if flags == "v2" else lt.create_torrent.v1_only)
if tracker:
    t.add_tracker(tracker)
lt.set_piece_hashes(t, data.rsplit("/", 1)[0])
open(out, "wb").write(lt.bencode(t.generate()))
print(t.generate()[b"info"] and lt.torrent_info(out).info_hashes().v1)
"""


def make_torrent(data, out, tracker="", v2_only=False):
    """A .torrent of data made outside chassisd (python3-libtorrent's
    create_torrent); returns its v1 infohash (zeros for v2-only)."""
    done = subprocess.run([PYTHON, "-c", MAKE_TORRENT, str(data), str(out), tracker, "v2" if v2_only else "v1"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def given(seed, state, port, torrents, extra=""):
    return seeds(seed, state, port, "torrents = {%s} %s" % (", ".join('"%s"' % t for t in torrents), extra))


def web_listener(port):
    """The tracker, status, metrics and torrents routes on one listener."""
    return ('listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
            '  http { route "/announce" { handler = "tracker"  interval = 10 }\n'
            '    route "/status" { handler = "status" }  route "/metrics" { handler = "metrics" }\n'
            '    route "/torrents" { handler = "torrents"  stream = "seeds" } }\n}\n' % port)


def aria2c(torrent, dl, *more, timeout=120):
    return subprocess.run(["aria2c", "--dir", str(dl), "--enable-dht=false", "--enable-dht6=false",
                           "--bt-enable-lpd=false", "--enable-peer-exchange=false", "--seed-time=0",
                           "--disable-ipv6=true", "--summary-interval=0", *more, str(torrent)],
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def admin(tmp_path):
    """Where the administrator keeps .torrent files: not the data folder."""
    path = tmp_path / "admin"
    path.mkdir()
    return path


@pytest.mark.skipif(not have_aria2c(), reason="needs aria2c")
def test_a_torrent_made_elsewhere_is_checked_then_seeded_to_aria2c(start_daemon, dirs, admin):
    seed, state, dl = dirs
    with open(seed / "given.bin", "wb") as f:
        f.write(os.urandom(5 << 20))
    (seed / "other.bin").write_bytes(os.urandom(1000))
    port, web = free_port(), free_port()
    torrent = admin / "given.torrent"
    info_hash = make_torrent(seed / "given.bin", torrent, tracker="http://127.0.0.1:%d/announce" % web)
    d = start_daemon(given(seed, state, port, [torrent]) + web_listener(web))
    d.wait_log(r"%s: added as %s, served once its data is checked stream=" % (re.escape(str(torrent)), info_hash))
    d.wait_log(r"^<6>stream seeds: given.bin: data hashed, every piece matches: seeding", timeout=30)
    d.wait_log(r'"GET /announce\?info_hash=.*&port=%d&.*left=0' % port)
    done = aria2c(torrent, dl)
    assert done.returncode == 0, done.stdout + done.stderr
    assert sha256(dl / "given.bin") == sha256(seed / "given.bin")
    # Only the listed torrent: the directory is its data's root, not scanned.
    assert "other.bin" not in d.log() and ": made " not in d.log()
    assert wait_until(lambda: stream_status(web, "seeds")["module"]["torrent"][0]["uploaded_bytes"] >= 5 << 20)
    st = stream_status(web, "seeds")
    assert st["module"]["torrents"] == 1 and st["module"]["rejected"] == 0
    assert st["text"][info_hash] == "seeding given.bin"
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % web, timeout=5) as r:
        metrics = r.read().decode()
    assert re.search(r'^\S*torrent\S*uploaded_bytes\S*\{[^}]*%s[^}]*\} \d+' % info_hash, metrics, re.M), metrics
    status, kind, page = get("http://127.0.0.1:%d/torrents" % web)
    assert status == 200 and "given.bin" in page.decode()
    assert get("http://127.0.0.1:%d/torrents/%s.torrent" % (web, info_hash))[2] == torrent.read_bytes()


@pytest.mark.skipif(not have_aria2c(), reason="needs aria2c")
def test_a_given_torrent_whose_data_changed_is_a_warning_and_not_served(start_daemon, dirs, admin):
    seed, state, dl = dirs
    with open(seed / "changed.bin", "wb") as f:
        f.write(os.urandom(2 << 20))
    port, web = free_port(), free_port()
    torrent = admin / "changed.torrent"
    info_hash = make_torrent(seed / "changed.bin", torrent, tracker="http://127.0.0.1:%d/announce" % web)
    # The same size, other bytes in the middle: only a hash check tells.
    wrong = b"not what the torrent says"
    with open(seed / "changed.bin", "r+b") as f:
        f.seek(1 << 20)
        right = f.read(len(wrong))
        f.seek(1 << 20)
        f.write(wrong)
    d = start_daemon(given(seed, state, port, [torrent]) + web_listener(web))
    d.wait_log(r"^<4>stream seeds: changed.bin: the data under %s does not match the torrent "
               r"\(1 of \d+ pieces missing or different\): not served" % re.escape(str(seed)), timeout=30)
    assert "every piece matches" not in d.log()
    assert wait_until(lambda: stream_status(web, "seeds")["text"].get(info_hash) == "mismatch changed.bin")
    # aria2c, told of no seeder by the tracker, gives up; a peer that knows
    # the port finds nothing to fetch either.
    done = aria2c(torrent, dl, "--bt-stop-timeout=5", timeout=60)
    assert done.returncode != 0
    fetched = fetch(str(torrent), dl / "lt", port, timeout=8)
    assert fetched.returncode == 1, fetched.stdout
    assert not (dl / "lt" / "changed.bin").exists() or sha256(dl / "lt" / "changed.bin") != sha256(seed / "changed.bin")
    assert os.listdir(state) == []
    # Put right, it is checked again at the next reload, and served.
    with open(seed / "changed.bin", "r+b") as f:
        f.seek(1 << 20)
        f.write(right)
    d.reload()
    d.wait_log(r"changed.bin: data hashed, every piece matches: seeding", timeout=30)
    fetched = fetch(str(torrent), dl / "again", port)
    assert fetched.returncode == 0, fetched.stderr
    assert sha256(dl / "again" / "changed.bin") == sha256(seed / "changed.bin")


def config_errors(conf):
    """`chassisd -t` on a config that must fail: its error lines, warnings left out."""
    from conftest import BINARY
    r = subprocess.run([BINARY, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1, r.stderr
    return [line for line in r.stderr.splitlines() if ": warning: " not in line]


def bad_seeds_stream(seed, state, line6, line7):
    """A "seeds" stream whose lines 6 and 7 are the options under test."""
    return ('stream "seeds" {\n'
            '  protocol = "torrent"\n'
            '  torrent {\n'
            '    directory = "%s"  state = "%s"\n'
            '\n'
            '    %s\n'
            '    %s\n'
            '  }\n'
            '}\n' % (seed, state, line6, line7))


def test_torrents_mistakes_are_config_errors_at_their_line(dirs, admin):
    seed, state, dl = dirs
    (seed / "a.bin").write_bytes(os.urandom(100000))
    good, copy, v2, garbage = (admin / n for n in ("good.torrent", "copy.torrent", "v2.torrent", "garbage.torrent"))
    make_torrent(seed / "a.bin", good)
    shutil.copy(good, copy)
    make_torrent(seed / "a.bin", v2, v2_only=True)
    garbage.write_bytes(b"<html>not a torrent</html>")
    conf = admin / "bad.conf"
    conf.write_text(
        bad_seeds_stream(seed, state, 'torrents = {"relative.torrent", "%s", "%s", "%s", "%s",'
                         % (admin / "missing.torrent", garbage, seed, v2),
                         '            "%s", "%s", "%s"}' % (good, good, copy)) +
        'stream "empty" {\n'
        '  protocol = "torrent"\n'
        '  torrent { directory = "%s"  state = "%s"\n'
        '    torrents = {} }\n'
        '}\n' % (seed, state))
    assert config_errors(conf) == [
        '%s:6: stream "seeds": torrents must be absolute paths, not "relative.torrent"' % conf,
        '%s:6: stream "seeds": torrent file "%s": cannot open: No such file or directory' % (conf, admin / "missing.torrent"),
        '%s:6: stream "seeds": torrent file "%s": not a valid .torrent: '
        'expected value (list, dict, int or string) in bencoded string' % (conf, garbage),
        '%s:6: stream "seeds": torrent file "%s": not a regular file' % (conf, seed),
        '%s:6: stream "seeds": torrent file "%s": a v2-only torrent (torrents are known by their v1 infohash)'
        % (conf, v2),
        '%s:6: stream "seeds": torrent file "%s" is listed twice' % (conf, good),
        '%s:6: stream "seeds": torrent file "%s" is the same torrent as "%s"' % (conf, copy, good),
        '%s:13: stream "empty": torrents needs at least one .torrent file' % conf,
    ]


def test_listen_mistakes_are_config_errors_at_the_options_line(dirs, tmp_path):
    # listen has a default: libconfuse parses it when the section opens,
    # and that once put every listen error at the stream's line.
    from conftest import BINARY
    seed, state, dl = dirs
    conf = tmp_path / "bad.conf"
    conf.write_text(bad_seeds_stream(seed, state, 'listen = {"127.0.0.1:notaport", "localhost:6881",',
                                     '          "127.0.0.1:0", "[::1]:6881", "::1:6881"}'))
    assert config_errors(conf) == [
        '%s:6: stream "seeds": bad listen address "127.0.0.1:notaport": the port must be a number from 1 to 65535'
        % conf,
        '%s:6: stream "seeds": bad listen address "localhost:6881": must be IP:PORT or [IPv6]:PORT' % conf,
        '%s:6: stream "seeds": bad listen address "127.0.0.1:0": the port must be a number from 1 to 65535' % conf,
        '%s:6: stream "seeds": bad listen address "::1:6881": must be IP:PORT or [IPv6]:PORT' % conf,
    ]
    # Not written: the default, which -T prints.
    conf.write_text(seeds(seed, state, 1).replace('listen = {"127.0.0.1:1"} ', ''))
    r = subprocess.run([BINARY, "-T", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert 'listen = {"0.0.0.0:6881", "[::]:6881"}' in r.stdout


def test_a_reload_starts_and_stops_torrents_entries_alone(start_daemon, dirs, admin):
    seed, state, dl = dirs
    names = ("a.bin", "b.bin")
    for name in names:
        (seed / name).write_bytes(os.urandom(300000))
    torrents = [admin / "a.torrent", admin / "b.torrent"]
    hashes = [make_torrent(seed / n, t) for n, t in zip(names, torrents)]
    port, web = free_port(), free_port()
    d = start_daemon(given(seed, state, port, torrents[:1]) + status_listener(web))
    d.wait_log(r"a.bin: data hashed, every piece matches: seeding", timeout=30)
    # Added: b starts, a goes on as it was.
    d.reload(given(seed, state, port, torrents) + status_listener(web))
    d.wait_log(r"b.bin: data hashed, every piece matches: seeding", timeout=30)
    assert "changed, restarted" not in d.log()
    assert d.log().count("%s: added as" % torrents[0]) == 1
    done = fetch(str(torrents[1]), dl, port)
    assert done.returncode == 0, done.stderr
    assert sha256(dl / "b.bin") == sha256(seed / "b.bin")
    # Removed: a stops, b goes on as it was.
    d.reload(given(seed, state, port, torrents[1:]) + status_listener(web))
    d.wait_log(r"%s: no longer seeded" % re.escape(str(torrents[0])))
    assert "changed, restarted" not in d.log()
    assert d.log().count("%s: added as" % torrents[1]) == 1
    assert d.log().count("successfully listening on [TCP] 127.0.0.1:%d" % port) == 1
    st = stream_status(web, "seeds")
    assert st["module"]["torrents"] == 1 and list(st["text"]) == [hashes[1]]


def resume_files(state):
    return sorted(f for f in os.listdir(state) if f.endswith(".resume"))


def test_resume_data_spares_a_recheck_and_keeps_the_upload_total(start_daemon, dirs, admin, tmp_path):
    seed, state, dl = dirs
    (seed / "r.bin").write_bytes(os.urandom(3 << 20))
    (seed / "s.bin").write_bytes(os.urandom(100000))
    torrent, other = admin / "r.torrent", admin / "s.torrent"
    info_hash = make_torrent(seed / "r.bin", torrent)
    other_hash = make_torrent(seed / "s.bin", other)
    port, web = free_port(), free_port()
    config = given(seed, state, port, [torrent]) + status_listener(web)
    d = start_daemon(config)
    d.wait_log(r"r.bin: data hashed, every piece matches: seeding", timeout=30)
    done = fetch(str(torrent), dl, port)
    assert done.returncode == 0, done.stderr
    uploaded = lambda: stream_status(web, "seeds")["module"]["uploaded_bytes"]
    assert wait_until(lambda: uploaded() >= 3 << 20)
    assert resume_files(state) == []
    assert d.stop() == 0
    assert "resume data saved for 1 torrents" in d.log()
    [resume] = resume_files(state)
    assert resume.endswith("-%s.resume" % info_hash)
    # Again: the files are as they were, so the resume data is taken.
    d = start_daemon(config, workdir=str(tmp_path / "second"))
    d.wait_log(r"added as %s, served once its data is checked \(against its resume data\)" % info_hash)
    d.wait_log(r"^<6>stream seeds: r.bin: resume data taken, files unchanged since: not hashed again: seeding")
    assert "every piece matches" not in d.log()
    assert wait_until(lambda: uploaded() >= 3 << 20)
    assert stream_status(web, "seeds")["text"][info_hash] == "seeding r.bin"
    # One file per torrent seeded: a removed entry's goes with it.
    d.reload(given(seed, state, port, [other]) + status_listener(web))
    d.wait_log(r"%s: no longer seeded" % re.escape(str(torrent)))
    assert resume_files(state) == []
    d.wait_log(r"s.bin: data hashed, every piece matches: seeding", timeout=30)
    assert d.stop() == 0
    assert resume_files(state) == [resume.replace(info_hash, other_hash)]


def test_made_torrents_keep_their_upload_total_in_resume_data(start_daemon, dirs, tmp_path):
    seed, state, dl = dirs
    (seed / "m.bin").write_bytes(os.urandom(1 << 20))
    port, web = free_port(), free_port()
    d = start_daemon(seeds(seed, state, port) + status_listener(web))
    done = fetch(made_torrent(d, str(seed / "m.bin")), dl, port)
    assert done.returncode == 0, done.stderr
    uploaded = lambda: stream_status(web, "seeds")["module"]["uploaded_bytes"]
    assert wait_until(lambda: uploaded() >= 1 << 20)
    assert d.stop() == 0
    assert len(resume_files(state)) == 1
    d = start_daemon(seeds(seed, state, port) + status_listener(web), workdir=str(tmp_path / "second"))
    d.wait_log(r"m.bin: seeding as [0-9a-f]{40} \(with its resume data\)")
    assert wait_until(lambda: uploaded() >= 1 << 20)


def bdecode(data):
    """A whole bencoded value, parsed here (not by libtorrent, which wrote it)."""
    def value(i):
        c = data[i:i + 1]
        if c == b"i":
            end = data.index(b"e", i)
            return int(data[i + 1:end]), end + 1
        if c in (b"l", b"d"):
            items, i = [], i + 1
            while data[i:i + 1] != b"e":
                item, i = value(i)
                items.append(item)
            if c == b"l":
                return items, i + 1
            assert len(items) % 2 == 0
            return dict(zip(items[::2], items[1::2])), i + 1
        colon = data.index(b":", i)
        start = colon + 1
        length = int(data[i:colon])
        assert start + length <= len(data)
        return data[start:start + length], start + length
    parsed, end = value(0)
    assert end == len(data), "trailing bytes"
    return parsed


def test_resume_data_saved_periodically_survives_a_sigkill(start_daemon, dirs, tmp_path):
    seed, state, dl = dirs
    (seed / "k.bin").write_bytes(os.urandom(1 << 20))
    port, web = free_port(), free_port()
    config = seeds(seed, state, port, "resume-interval = 1") + status_listener(web)
    d = start_daemon(config)
    torrent = made_torrent(d, str(seed / "k.bin"))
    info_hash = d.wait_log(r"k.bin: seeding as ([0-9a-f]{40})").group(1)
    done = fetch(torrent, dl, port)
    assert done.returncode == 0, done.stderr
    uploaded = lambda: stream_status(web, "seeds")["module"]["uploaded_bytes"]
    assert wait_until(lambda: uploaded() >= 1 << 20)

    # The upload moved: the next period writes it, while the daemon runs.
    def saved():
        files = resume_files(state)
        if len(files) != 1:
            return None
        with open(state / files[0], "rb") as f:
            resume = bdecode(f.read())
        return resume if resume[b"total_uploaded"] >= 1 << 20 else None
    assert wait_until(lambda: saved() is not None, timeout=10, interval=0.2)
    d.signal(signal.SIGKILL)
    d.proc.wait(10)
    assert "files of torrents no longer seeded dropped" not in d.log()    # no stop's save
    [name] = resume_files(state)
    assert name.endswith("-%s.resume" % info_hash)
    resume = saved()
    assert resume[b"file-format"] == b"libtorrent resume file"
    assert resume[b"info-hash"].hex() == info_hash and resume[b"name"] == b"k.bin"
    # A crash leaves no half-written file behind the name.
    assert not [f for f in os.listdir(state) if f.endswith(".tmp")]

    # The next start takes it: the upload total from before the crash.
    d = start_daemon(config, workdir=str(tmp_path / "second"))
    d.wait_log(r"k.bin: seeding as %s \(with its resume data\)" % info_hash)
    assert wait_until(lambda: uploaded() >= 1 << 20)


def test_resume_interval_is_checked_0_saves_at_stop_only_and_a_reload_applies_it(start_daemon, dirs, tmp_path):
    seed, state, dl = dirs
    conf = tmp_path / "bad.conf"
    conf.write_text('stream "seeds" {\n  protocol = "torrent"\n  torrent {\n    directory = "%s"\n'
                    '    resume-interval = -1\n  }\n}\n' % seed)
    assert '%s:5: stream "seeds": resume-interval must be from 0 to 604800' % conf in config_errors(conf)
    (seed / "z.bin").write_bytes(os.urandom(100000))
    port = free_port()
    d = start_daemon(seeds(seed, state, port, "resume-interval = 0"))
    d.wait_log(r"z.bin: seeding as")
    time.sleep(2)
    assert resume_files(state) == []
    # A reload sets the period on the running session, without a restart.
    d.reload(seeds(seed, state, port, "resume-interval = 1"))
    assert wait_until(lambda: len(resume_files(state)) == 1, timeout=10, interval=0.2)
    assert "changed, restarted" not in d.log()
    assert d.log().count("successfully listening on [TCP] 127.0.0.1:%d" % port) == 1
    assert d.stop() == 0
    assert len(resume_files(state)) == 1
