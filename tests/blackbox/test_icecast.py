"""Icecast: a url source with icecast = true against a real icecast2 2.4.4
fed by ezstream 1.0.2, both started by the test on loopback.

The origin is built as in the shared test-peer notes: icecast2 refuses
root, so it runs as the icecast2 user (setpriv) with a config of ours in a
directory that user can read; ezstream sends a 128 kbit/s MP3 made by
ffmpeg to the mount /test.mp3, which carries ICY metadata every 8192
bytes; titles are set through icecast's admin interface with curl."""
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

import pytest

from conftest import free_port, wait_until
from test_stream import Receiver, status_listener, stream_status, stream_unit

TOOLS = ("icecast2", "ezstream", "ffmpeg", "ffprobe", "curl", "setpriv")
MOUNT = "/test.mp3"
SOURCE_PASSWORD = "hackme-source"
ADMIN_PASSWORD = "hackme-admin"


def have_icecast():
    if any(shutil.which(t) is None for t in TOOLS):
        return False
    try:
        pwd.getpwnam("icecast2")
    except KeyError:
        return False
    return os.geteuid() == 0		# setpriv --reuid needs root


pytestmark = pytest.mark.skipif(not have_icecast(),
                                reason="needs root, icecast2, ezstream, ffmpeg, curl and setpriv")

ICECAST_XML = """<icecast>
  <location>loopback</location>
  <admin>test@localhost</admin>
  <limits>
    <clients>20</clients>
    <sources>2</sources>
    <queue-size>524288</queue-size>
    <client-timeout>30</client-timeout>
    <header-timeout>15</header-timeout>
    <source-timeout>10</source-timeout>
    <burst-on-connect>1</burst-on-connect>
    <burst-size>65535</burst-size>
  </limits>
  <authentication>
    <source-password>{source_password}</source-password>
    <relay-password>{source_password}</relay-password>
    <admin-user>admin</admin-user>
    <admin-password>{admin_password}</admin-password>
  </authentication>
  <hostname>127.0.0.1</hostname>
  <listen-socket><port>{port}</port><bind-address>127.0.0.1</bind-address></listen-socket>
  <mount type="normal">
    <mount-name>{mount}</mount-name>
    <mp3-metadata-interval>8192</mp3-metadata-interval>
  </mount>
  <fileserve>0</fileserve>
  <paths>
    <basedir>/usr/share/icecast2</basedir>
    <logdir>{logdir}</logdir>
    <webroot>/usr/share/icecast2/web</webroot>
    <adminroot>/usr/share/icecast2/admin</adminroot>
  </paths>
  <logging><accesslog>access.log</accesslog><errorlog>error.log</errorlog><loglevel>3</loglevel></logging>
  <security><chroot>0</chroot></security>
</icecast>
"""

EZSTREAM_XML = """<ezstream>
  <servers><server>
    <protocol>HTTP</protocol><hostname>127.0.0.1</hostname><port>{port}</port>
    <user>source</user><password>{source_password}</password><tls>None</tls>
  </server></servers>
  <streams><stream><mountpoint>{mount}</mountpoint><format>MP3</format></stream></streams>
  <intakes><intake><type>playlist</type><filename>{playlist}</filename></intake></intakes>
</ezstream>
"""


def stop_process(proc, timeout=5):
    """SIGTERM to this one process (by its PID), SIGKILL if it lingers."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class IcecastOrigin:
    """icecast2 on 127.0.0.1:port with ezstream feeding MOUNT, in a
    directory of its own that the icecast2 user can read."""

    def __init__(self, mp3, port):
        self.port = port
        self.url = "http://127.0.0.1:%d%s" % (port, MOUNT)
        # pytest's tmp_path is under /tmp/pytest-of-root (mode 700):
        # icecast2 could not read its config there.
        self.dir = tempfile.mkdtemp(prefix="chassisd-icecast-")
        os.chmod(self.dir, 0o755)
        self.logdir = os.path.join(self.dir, "log")
        os.mkdir(self.logdir)
        user = pwd.getpwnam("icecast2")
        os.chown(self.logdir, user.pw_uid, user.pw_gid)
        self.icecast_xml = os.path.join(self.dir, "icecast.xml")
        with open(self.icecast_xml, "w") as f:
            f.write(ICECAST_XML.format(port=port, mount=MOUNT, logdir=self.logdir, source_password=SOURCE_PASSWORD,
                                       admin_password=ADMIN_PASSWORD))
        os.chmod(self.icecast_xml, 0o644)
        playlist = os.path.join(self.dir, "playlist.m3u")
        with open(playlist, "w") as f:
            f.write(mp3 + "\n")
        self.ezstream_xml = os.path.join(self.dir, "ezstream.xml")
        with open(self.ezstream_xml, "w") as f:
            f.write(EZSTREAM_XML.format(port=port, mount=MOUNT, playlist=playlist, source_password=SOURCE_PASSWORD))
        os.chmod(self.ezstream_xml, 0o600)		# ezstream refuses a config others can read
        self.icecast = self.ezstream = None
        self.outputs = []

    def _spawn(self, name, argv):
        out = open(os.path.join(self.dir, "%s-%d.out" % (name, len(self.outputs))), "wb")
        self.outputs.append(out.name)
        try:
            return subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    cwd=self.dir)
        finally:
            out.close()

    def start(self, timeout=15):
        """icecast2, then ezstream once icecast2 listens; returns when the
        mount answers 200."""
        # setpriv execs icecast2 in the foreground: the PID is icecast2's.
        self.icecast = self._spawn("icecast2", ["setpriv", "--reuid=icecast2", "--regid=icecast", "--clear-groups",
                                                "icecast2", "-c", self.icecast_xml])
        assert wait_until(lambda: self.icecast.poll() is not None or self.answers() is not None, timeout), \
            self.logs()
        assert self.icecast.poll() is None, "icecast2 exited:\n" + self.logs()
        self.ezstream = self._spawn("ezstream", ["ezstream", "-c", self.ezstream_xml])
        assert wait_until(lambda: self.ezstream.poll() is not None or self.answers() == 200, timeout, 0.1), \
            "the mount never came up:\n" + self.logs()
        assert self.ezstream.poll() is None, "ezstream exited:\n" + self.logs()
        # ezstream sets a title of its own ("test", from the file name)
        # just after it connects: a title a test sets must come later.
        assert wait_until(lambda: "<title>" in self.admin("stats?mount=" + MOUNT), timeout, 0.1), \
            "ezstream set no title:\n" + self.logs()

    def answers(self):
        """The HTTP status of the mount, or None while nothing listens."""
        try:
            with urllib.request.urlopen(self.url, timeout=2) as r:
                r.read(1)
                return r.status
        except urllib.error.HTTPError as e:
            return e.code
        except OSError:
            return None

    def stop(self):
        """SIGTERM icecast2 (the server going away), then ezstream."""
        for proc in (self.icecast, self.ezstream):
            if proc is not None:
                stop_process(proc)

    def admin(self, query):
        out = subprocess.run(["curl", "-sS", "-m", "5", "-u", "admin:" + ADMIN_PASSWORD,
                              "http://127.0.0.1:%d/admin/%s" % (self.port, query)],
                             capture_output=True, text=True, timeout=10)
        return out.stdout + out.stderr

    def set_title(self, artist, title):
        """StreamTitle='artist - title' in every metadata block from now on."""
        out = self.admin("metadata?mount=%s&mode=updinfo&artist=%s&title=%s" % (MOUNT, artist, title))
        assert "Metadata update successful" in out, out

    def download(self, path, seconds, metadata):
        """curl saving seconds of the mount to path, started now."""
        argv = ["curl", "-sS", "-m", str(seconds), "-o", path]
        if metadata:
            argv += ["-H", "Icy-MetaData: 1"]
        return subprocess.Popen(argv + [self.url], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def logs(self):
        text = []
        for path in self.outputs + [os.path.join(self.logdir, "error.log")]:
            try:
                with open(path, "rb") as f:
                    text.append("== %s\n%s" % (path, f.read().decode(errors="replace")[-4000:]))
            except OSError:
                pass
        return "\n".join(text)

    def remove(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="module")
def mp3():
    """30 s of a 440 Hz sine, 128 kbit/s MPEG-1 layer III. No ID3v2 tag and
    no Xing frame: when ezstream loops the file, the stream stays a plain
    chain of frames."""
    folder = tempfile.mkdtemp(prefix="chassisd-mp3-")
    path = os.path.join(folder, "test.mp3")
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100:duration=30", "-ac", "2", "-c:a", "libmp3lame", "-b:a",
                    "128k", "-id3v2_version", "0", "-write_xing", "0", path], check=True, timeout=60)
    os.chmod(folder, 0o755)
    os.chmod(path, 0o644)
    yield path
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def origin(mp3):
    started = []

    def make():
        o = IcecastOrigin(mp3, free_port())
        started.append(o)
        o.start()
        return o

    yield make
    for o in started:
        o.remove()


# ---- MP3 frames ----

BITRATES_KBPS = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320)
SAMPLE_RATES = (44100, 48000, 32000)


def frame_length(data, at):
    """The length of the MPEG-1 layer III frame whose header is at data[at],
    or 0 when there is no such header there."""
    if at + 4 > len(data) or data[at] != 0xFF or (data[at + 1] & 0xFE) != 0xFA:
        return 0
    bitrate, rate, padding = data[at + 2] >> 4, (data[at + 2] >> 2) & 3, (data[at + 2] >> 1) & 1
    if bitrate in (0, 15) or rate == 3:
        return 0
    return 144000 * BITRATES_KBPS[bitrate] // SAMPLE_RATES[rate] + padding


def walk_frames(data):
    """(first, frames, broken_at): from the first offset where three frames
    follow one another, how many whole frames follow back to back, and
    where the chain breaks (None when only a cut last frame follows)."""
    first = None
    for at in range(min(len(data), 8192)):
        n1 = frame_length(data, at)
        n2 = n1 and frame_length(data, at + n1)
        if n2 and frame_length(data, at + n1 + n2):
            first = at
            break
    assert first is not None, "no MP3 frames found"
    at, frames = first, 0
    while True:
        n = frame_length(data, at)
        if n == 0:
            return first, frames, (None if len(data) - at < 4 else at)
        if at + n > len(data):
            return first, frames, None
        at += n
        frames += 1


def decode_errors(path):
    """What ffmpeg says at -v error while decoding path as MP3."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-nostdin", "-v", "error", "-f", "mp3", "-i", path, "-f", "null",
                          "-"], capture_output=True, text=True, timeout=60)
    return out.returncode, out.stderr


def codec_of(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0", path],
                         capture_output=True, text=True, timeout=60)
    return out.stdout.strip()


def radio(port, web, url, extra_source=""):
    """A stream "radio" of the mount to 127.0.0.1:port, paced above the
    source's 128 kbit/s so that it keeps up, and the status page."""
    return stream_unit("radio", ["127.0.0.1:%d" % port], 'url = "%s"  icecast = true%s' % (url, extra_source),
                       "  packet-size = 1316\n  rate = 256000\n") + status_listener(web)


# ---- the tests ----

def test_the_destination_gets_the_audio_without_the_icy_metadata(start_daemon, origin, tmp_path):
    """What the destination receives is the mount's MP3 with every metadata
    block taken out: no StreamTitle anywhere, frames back to back from the
    first to the last, a clean decode, and a 4 KiB run of a plain
    (metadata-less) download of the same mount found in it. The same
    checks on a download made with Icy-MetaData: 1 fail, so they can."""
    ice = origin()
    ice.set_title("A", "T")		# a title in every metadata block from now on
    port, web = free_port(), free_port()
    rx = Receiver(port)
    d = start_daemon(radio(port, web, ice.url))
    d.wait_log(r"source: connected to .*, metadata every 8192 bytes stream=radio", timeout=10)
    assert wait_until(lambda: len(rx.datagrams) >= 20, 10), d.log()
    plain, with_meta = str(tmp_path / "plain.mp3"), str(tmp_path / "meta.mp3")
    curls = [ice.download(plain, 3, metadata=False), ice.download(with_meta, 3, metadata=True)]
    for c in curls:
        c.wait(15)			# exits 28 (-m reached): a live stream never ends
    time.sleep(1)			# what curl got at its end reaches the destination too
    got = rx.stop()
    assert stream_status(web, "radio")["text"]["title"] == "A - T"

    # (a) no metadata text, and the control has it.
    plain_bytes, meta_bytes = open(plain, "rb").read(), open(with_meta, "rb").read()
    assert len(got) > 60000 and len(plain_bytes) > 60000 and len(meta_bytes) > 60000, \
        (len(got), len(plain_bytes), len(meta_bytes))
    assert got.find(b"StreamTitle=") == -1
    assert meta_bytes.find(b"StreamTitle='A - T';") >= 0
    assert plain_bytes.find(b"StreamTitle=") == -1

    # (b) a chain of MP3 frames with nothing between them, a clean decode.
    first, frames, broken_at = walk_frames(got)
    assert first < 1500 and broken_at is None, (first, frames, broken_at)
    assert frames * 417 > len(got) - 2000
    rx_path = str(tmp_path / "rx.mp3")
    with open(rx_path, "wb") as f:
        f.write(got[first:])
    assert codec_of(rx_path) == "mp3"
    assert decode_errors(rx_path) == (0, "")
    _, _, broken = walk_frames(plain_bytes)
    assert broken is None
    # The control: a metadata block breaks the chain and the decode.
    first, frames, broken = walk_frames(meta_bytes)
    assert broken is not None
    trimmed = str(tmp_path / "meta-trimmed.mp3")
    with open(trimmed, "wb") as f:
        f.write(meta_bytes[first:])
    assert decode_errors(trimmed)[1] != ""

    # (c) the same audio: icecast bursts its queue to a new client, so the
    # middle of curl's download was sent to chassisd too.
    middle = len(plain_bytes) // 2
    assert got.find(plain_bytes[middle:middle + 4096]) >= 0
    d.stop()


def test_titles_show_in_status_and_a_change_is_logged(start_daemon, origin):
    ice = origin()
    port, web = free_port(), free_port()
    rx = Receiver(port)
    d = start_daemon(radio(port, web, ice.url))
    assert wait_until(lambda: len(rx.datagrams) >= 5, 10), d.log()

    def title():
        return stream_status(web, "radio")["text"].get("title")

    ice.set_title("A", "T")
    assert wait_until(lambda: title() == "A - T", 10, 0.1), (title(), d.log())
    d.wait_log(r'^.*source: title "A - T" stream=radio$')
    ice.set_title("B", "U")
    assert wait_until(lambda: title() == "B - U", 10, 0.1), (title(), d.log())
    line = d.wait_log(r'^.*source: title "B - U" stream=radio$').group(0)
    assert line.startswith("<6>"), line		# info
    st = stream_status(web, "radio")
    assert st["transport"] == "stream" and st["text"]["source_state"] == "connected"
    # Each metadata block repeats the title: a change is logged once.
    assert d.log().count('source: title "B - U"') == 1
    rx.stop()
    d.stop()


def test_the_origin_going_away_backs_off_and_its_return_recovers(start_daemon, origin):
    ice = origin()
    port, web = free_port(), free_port()
    rx = Receiver(port)
    d = start_daemon(radio(port, web, ice.url, "  backoff = 1  backoff-max = 1"))
    assert wait_until(lambda: len(rx.datagrams) >= 20, 10), d.log()
    assert stream_status(web, "radio")["text"]["source_state"] == "connected"

    ice.stop()				# SIGTERM icecast2, then ezstream
    assert wait_until(lambda: stream_status(web, "radio")["text"]["source_state"] == "backing off", 10, 0.1), \
        d.log()
    # icecast2 closes its listeners' connections as it exits: a stream
    # that ended (notice), not a failure (warning).
    d.wait_log(r"^<5>source: the server ended the stream; retrying with back-off stream=radio$")
    # Tries go on against a closed port (1 s apart, up to 25 % later): the
    # new reason is logged once, not once per try.
    time.sleep(2.5)
    st = stream_status(web, "radio")
    assert st["text"]["source_state"] == "backing off"
    assert "title" not in st["text"], "no title while nothing plays"
    assert d.log().count("Couldn't connect to server; retrying with back-off") == 1, d.log()
    assert d.log().count("retrying with back-off") == 2, d.log()
    assert st["module"]["source"][0]["failures"] >= 1, st	# connections refused
    before = len(rx.datagrams)

    ice.start()
    assert wait_until(lambda: len(rx.datagrams) >= before + 20, 15), (before, len(rx.datagrams), d.log())
    assert stream_status(web, "radio")["text"]["source_state"] == "connected"
    assert d.log().count("source: connected to ") == 2, d.log()
    assert stream_status(web, "radio")["module"]["source"][0]["restarts"] >= 2
    got = b"".join(rx.datagrams[before:])
    rx.stop()
    assert got.find(b"StreamTitle=") == -1
    assert walk_frames(got)[2] is None
    d.stop()
