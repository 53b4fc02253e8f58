"""The udpxy-style gateway: a multicast group's MPEG-TS, as a chassisd
multicast listener receives it, to HTTP clients of a stream route. All in
a network namespace the test makes: a chassisd udp stream sends a test TS
to the group (TTL 1, pinned to lo), the same daemon's multicast listener
receives it, curl, ffprobe and the test's own sockets read it over HTTP."""
import ctypes
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import threading
import time

import pytest

from conftest import even_port, free_port, wait_until
from test_stream import Namespace, have_netns, make_ts, stream_status, stream_unit

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg")

GROUP, GROUP_PORT, HTTP_PORT = "239.255.1.1", 5004, 8090
RATE = 1200000				# bits/s: the test TS's mux rate
CLONE_NEWNET = 0x40000000


@pytest.fixture
def netns():
    if not have_netns():
        pytest.skip("needs root and ip")
    ns = Namespace("chassisd-gw%d" % os.getpid())
    yield ns
    ns.delete()


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    path = tmp_path_factory.mktemp("media") / "news.ts"
    make_ts(path, seconds=6)
    return path


def in_netns(ns, fn):
    """fn() run on a thread that entered the namespace: the sockets it
    makes stay there, usable from any thread."""
    libc = ctypes.CDLL(None, use_errno=True)
    out = {}

    def run():
        fd = os.open("/var/run/netns/%s" % ns.name, os.O_RDONLY)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                out["error"] = OSError(ctypes.get_errno(), "setns")
                return
        finally:
            os.close(fd)
        try:
            out["value"] = fn()
        except Exception as e:		# noqa: BLE001 - handed to the caller
            out["error"] = e
    t = threading.Thread(target=run)
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out["value"]


def gateway_config(ts, route_extra="", listener_extra="", sender=True):
    tx = stream_unit("tx", ["%s:%d" % (GROUP, GROUP_PORT)], 'file = "%s"  loop = true' % ts,
                     '  interface = "127.0.0.1"\n  ttl = 1\n  rate = %d\n' % RATE) if sender else ""
    return tx + ('listener "news-in" {\n  protocol = "udp"\n  transport = "multicast"\n  address = "%s:%d"\n'
                 '  interface = "127.0.0.1"\n%s\n}\n'
                 'listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
                 '  http {\n    route "/live/news" { handler = "stream"  listener = "news-in"  %s }\n'
                 '    route "/status" { handler = "status" }\n  }\n}\n') % (
        GROUP, GROUP_PORT, listener_extra, HTTP_PORT, route_extra)


def get_request(path="/live/news", method="GET"):
    return ("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" % (method, path)).encode()


def open_client(ns, rcvbuf=None):
    def make():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", HTTP_PORT))
        s.sendall(get_request())
        return s
    return in_netns(ns, make)


def read_head(s, timeout=10):
    s.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = s.recv(4096)
        assert chunk, "closed before the head: %r" % data
        data += chunk
    head, rest = data.split(b"\r\n\r\n", 1)
    return head.decode(), rest


def http_status(ns):
    def get():
        s = socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=5)
        s.sendall(b"GET /status HTTP/1.0\r\n\r\n")
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
        s.close()
        return json.loads(data.split(b"\r\n\r\n", 1)[1])
    return next(l for l in in_netns(ns, get)["listeners"] if l["name"] == "web")


def route_row(ns):
    """The stream route's counters, from the status page's rows."""
    return next(r for r in http_status(ns)["module"]["route"] if r["name"] == "/live/news")


@needs_ffmpeg
def test_curl_and_ffprobe_get_the_groups_mpegts_over_http(start_daemon, tmp_path, netns, ts_file):
    d = start_daemon(gateway_config(ts_file), wrapper=netns.prefix())
    url = "http://127.0.0.1:%d/live/news" % HTTP_PORT
    rec = tmp_path / "curl.ts"
    curl = subprocess.run([*netns.prefix(), "curl", "-sS", "-D", str(tmp_path / "head"), "-o", str(rec), "-m", "4",
                           url], capture_output=True, text=True, timeout=30)
    assert curl.returncode == 28, curl.stderr		# the body never ends: curl's own timeout stops it
    head = (tmp_path / "head").read_bytes().decode()
    assert head.startswith("HTTP/1.1 200 OK\r\n")
    assert "Content-Type: video/mp2t\r\n" in head
    assert "Content-Length" not in head and "Transfer-Encoding" not in head
    assert "Connection: close\r\n" in head
    size = rec.stat().st_size
    assert RATE / 8 * 2.5 < size < RATE / 8 * 4.5, size
    streams = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type,codec_name",
                              "-of", "json", str(rec)], capture_output=True, text=True, timeout=60)
    kinds = {(s["codec_type"], s["codec_name"]) for s in json.loads(streams.stdout)["streams"]}
    assert kinds == {("video", "mpeg2video"), ("audio", "mp2")}
    decode = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-i", str(rec), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert decode.returncode == 0
    probe = subprocess.run([*netns.prefix(), "ffprobe", "-v", "error", "-show_entries",
                            "format=format_name:stream=codec_type,codec_name", "-of", "json", url],
                           capture_output=True, text=True, timeout=60)
    info = json.loads(probe.stdout)
    assert info["format"]["format_name"] == "mpegts", probe.stderr
    assert {(s["codec_type"], s["codec_name"]) for s in info["streams"]} == {("video", "mpeg2video"),
                                                                            ("audio", "mp2")}
    head = subprocess.run([*netns.prefix(), "curl", "-sS", "-I", "-m", "5", url], capture_output=True, text=True,
                          timeout=30)
    assert head.returncode == 0 and head.stdout.startswith("HTTP/1.1 200 OK")
    assert "Content-Type: video/mp2t" in head.stdout
    # The access log names each client's bytes once it has gone.
    m = d.wait_log(r'"GET /live/news HTTP/1.1" 200 (\d+) "-" "curl/')
    assert int(m.group(1)) >= size
    # An HTTP/1.0 client gets the same close-delimited body.
    old = in_netns(netns, lambda: socket.create_connection(("127.0.0.1", HTTP_PORT), timeout=5))
    old.sendall(b"GET /live/news HTTP/1.0\r\n\r\n")
    head, rest = read_head(old)
    assert head.startswith("HTTP/1.1 200 OK") and "Connection: close" in head and "Content-Length" not in head
    assert len(rest) + sum(read_for([old], 1).values()) > RATE / 8 * 0.5
    old.close()


def read_for(socks, seconds):
    """Reads every socket for `seconds`; bytes per socket."""
    counts = {s: 0 for s in socks}
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.1):
            try:
                data = key.fileobj.recv(262144)
            except BlockingIOError:
                continue
            if not data:
                sel.unregister(key.fileobj)
                continue
            counts[key.fileobj] += len(data)
    sel.close()
    return counts


def test_fifty_clients_share_one_membership_and_a_stalled_one_is_dropped(start_daemon, tmp_path, netns, ts_file):
    d = start_daemon(gateway_config(ts_file, route_extra="client-buffer = 65536"), wrapper=netns.prefix())
    clients = [open_client(netns) for _ in range(50)]
    for s in clients:
        head, _ = read_head(s)
        assert head.startswith("HTTP/1.1 200 OK")
    # One membership for all of them: ip maddr would say "users 2" (or 51)
    # after the group for more than one.
    maddr = subprocess.run([*netns.prefix(), "ip", "maddr", "show", "dev", "lo"], capture_output=True,
                           text=True).stdout
    assert re.search(r"^\s*inet\s+%s$" % re.escape(GROUP), maddr, re.M), maddr
    # A client that never reads, with a tiny receive window: its output
    # passes client-buffer (64 KiB, under half a second at 1.2 Mbit/s).
    stalled = open_client(netns, rcvbuf=2048)
    read_for(clients, 2)
    d.wait_log(r"stream client dropped: \d+ bytes queued, client-buffer is 65536", timeout=10)
    counts = read_for(clients, 4)
    expected = RATE / 8 * 4
    for s, n in counts.items():
        assert abs(n - expected) < expected * 0.1, (n, expected)
    assert max(counts.values()) - min(counts.values()) < expected * 0.05, sorted(counts.values())
    row = route_row(netns)
    assert row["dropped_slow"] == 1 and row["clients"] == 50, row
    with pytest.raises((ConnectionResetError, BrokenPipeError)):
        stalled.settimeout(5)
        while stalled.recv(65536):
            pass
    for s in clients + [stalled]:
        s.close()


def test_max_clients_answers_503_beyond_it(start_daemon, tmp_path, netns, ts_file):
    start_daemon(gateway_config(ts_file, route_extra="max-clients = 2"), wrapper=netns.prefix())
    first, second = open_client(netns), open_client(netns)
    for s in (first, second):
        assert read_head(s)[0].startswith("HTTP/1.1 200 OK")
    third = open_client(netns)
    head, _ = read_head(third)
    assert head.startswith("HTTP/1.1 503 Service Unavailable") and "Retry-After: 5" in head, head
    assert route_row(netns)["refused_full"] == 1
    first.close()
    # The place is free again once the daemon has seen the close.
    deadline = time.monotonic() + 10
    while True:
        fourth = open_client(netns)
        head, _ = read_head(fourth)
        if head.startswith("HTTP/1.1 200") or time.monotonic() > deadline:
            break
        fourth.close()
        time.sleep(0.2)
    assert head.startswith("HTTP/1.1 200 OK"), head
    for s in (second, third, fourth):
        s.close()


def test_a_route_naming_no_listener_is_a_config_error(tmp_path):
    conf = tmp_path / "bad.conf"
    conf.write_text('listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:8090"\n'
                    '  http { route "/live" { handler = "stream"\n'
                    '    listener = "nowhere" } }\n}\n')
    run = subprocess.run([os.environ.get("CHASSISD", "chassisd"), "-t", "-c", str(conf)], capture_output=True,
                         text=True, timeout=30)
    assert run.returncode == 1
    assert '%s:5: listener "web": route "/live": no listener "nowhere"' % conf in run.stderr, run.stderr


def group_joined(ns):
    out = subprocess.run([*ns.prefix(), "ip", "maddr", "show", "dev", "lo"], capture_output=True, text=True,
                         check=True).stdout
    return re.search(r"\binet\s+%s\b" % re.escape(GROUP), out) is not None


def test_on_demand_the_group_is_joined_only_while_a_client_listens(start_daemon, tmp_path, netns, ts_file):
    d = start_daemon(gateway_config(ts_file, listener_extra='  join = "on-demand"'), wrapper=netns.prefix())
    time.sleep(0.5)
    assert not group_joined(netns)
    first, second = open_client(netns), open_client(netns)
    for s in (first, second):
        assert read_head(s)[0].startswith("HTTP/1.1 200 OK")
    assert group_joined(netns)
    assert sum(read_for([first], 1).values()) > RATE / 8 * 0.5	# datagrams flow once joined
    d.wait_log(r"joined group %s:%d on 127.0.0.1: 1 tap" % (GROUP, GROUP_PORT))
    first.close()
    read_for([second], 1)
    assert group_joined(netns)			# one client left: still a member
    second.close()
    wait_until(lambda: not group_joined(netns), timeout=10)
    d.wait_log(r"left group %s:%d on 127.0.0.1: 0 taps" % (GROUP, GROUP_PORT))
    # A reload to join = "always" on the kept socket joins with nobody listening.
    d.reload(gateway_config(ts_file))
    wait_until(lambda: group_joined(netns), timeout=10)
    third = open_client(netns)
    assert read_head(third)[0].startswith("HTTP/1.1 200 OK")
    assert sum(read_for([third], 1).values()) > RATE / 8 * 0.5
    third.close()


# ---- the gateway on an rtp listener: RTP in, the payload (MPEG-TS) out ----

def rtp_gateway_config(port, web, ts=None):
    """An rtp listener on 127.0.0.1:port and its HTTP stream route; with
    ts, a chassisd rtp stream sends that file to it, PCR-paced, looped."""
    tx = ('stream "tx" {\n  protocol = "rtp"\n  destination = {"127.0.0.1:%d"}\n'
          '  source { file = "%s"  loop = true }\n  rtp { pace = "pcr" }\n}\n' % (port, ts)) if ts else ""
    return tx + ('listener "news-in" {\n  protocol = "rtp"\n  transport = "udp"\n  address = "127.0.0.1:%d"\n}\n'
                 'listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
                 '  http {\n    route "/live/news" { handler = "stream"  listener = "news-in" }\n'
                 '    route "/status" { handler = "status" }\n  }\n}\n') % (port, web)


def decoded_frames(path, stream):
    out = subprocess.run(["ffprobe", "-v", "error", "-select_streams", stream, "-count_frames", "-show_entries",
                          "stream=nb_read_frames", "-of", "csv=p=0", str(path)], capture_output=True, text=True,
                         timeout=60).stdout
    found = re.search(r"\d+", out)		# the stream's count (its program repeats it)
    return int(found.group()) if found else 0


@needs_ffmpeg
@pytest.mark.parametrize("sender", ["gstreamer", "chassisd"])
def test_curl_and_ffprobe_get_an_rtp_senders_mpegts_over_http(start_daemon, tmp_path, ts_file, sender):
    """GStreamer (tsparse set-timestamps=true ! rtpmp2tpay ! udpsink) or a
    chassisd rtp stream sends the test TS over RTP to an rtp listener;
    ffprobe on its HTTP route finds the video and the audio, and what curl
    gets decodes. GStreamer starts once both clients are in, so curl gets
    the file from its first byte, and it decodes without a word; chassisd
    loops the file from before they came, so curl's bytes begin within a
    GOP and only the frames before the first sequence header are lost."""
    if sender == "gstreamer" and shutil.which("gst-launch-1.0") is None:
        pytest.skip("needs GStreamer")
    port, web = even_port(), free_port()
    start_daemon(rtp_gateway_config(port, web, ts_file if sender == "chassisd" else None))
    url = "http://127.0.0.1:%d/live/news" % web
    rec = tmp_path / "curl.ts"
    gst = None
    # 6 s: GStreamer starts only once both clients are in, and a busy
    # machine takes a second or two to launch it.
    curl = subprocess.Popen(["curl", "-sS", "-o", str(rec), "-m", "6", url], stderr=subprocess.PIPE, text=True)
    probe = subprocess.Popen(["ffprobe", "-v", "error", "-show_entries", "format=format_name:stream=codec_type,"
                              "codec_name", "-of", "json", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    try:
        if sender == "gstreamer":
            wait_until(lambda: route_clients(web) == 2, timeout=10)
            gst = subprocess.Popen(["gst-launch-1.0", "-q", "filesrc", "location=%s" % ts_file, "!", "tsparse",
                                    "set-timestamps=true", "!", "rtpmp2tpay", "!", "udpsink", "host=127.0.0.1",
                                    "port=%d" % port, "sync=true"], stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        probe_out, probe_err = probe.communicate(timeout=60)
        assert curl.wait(30) == 28, curl.stderr.read()		# the body never ends: curl's own timeout
    finally:
        for p in (curl, probe):
            if p.poll() is None:
                p.kill()
        if gst is not None:
            gst.wait(30)
    assert json.loads(probe_out)["format"]["format_name"] == "mpegts", probe_err
    assert {(s["codec_type"], s["codec_name"]) for s in json.loads(probe_out)["streams"]} == \
        {("video", "mpeg2video"), ("audio", "mp2")}, probe_err
    data = rec.read_bytes()
    seconds = len(data) / (RATE / 8)
    assert 2.5 < seconds < 6.5, seconds
    assert all(data[i] == 0x47 for i in range(0, len(data), 188)), "whole TS packets, no RTP headers"
    decode = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-i", str(rec), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert decode.returncode == 0, decode.stderr
    if sender == "gstreamer":
        assert data == ts_file.read_bytes()[:len(data)], "the file from its first byte"
        assert decode.stderr == "", decode.stderr
    # 25 video frames a second, less a GOP (1 s) at a start within one;
    # 48000 / 1152 audio frames a second. Less a little at the cut end.
    assert decoded_frames(rec, "v") >= (seconds - 1.3) * 25, decode.stderr
    assert decoded_frames(rec, "a") >= (seconds - 0.3) * 48000 / 1152, decode.stderr


def route_clients(web):
    return next(r for r in stream_status(web, "web")["module"]["route"] if r["name"] == "/live/news")["clients"]


def test_fifty_clients_on_an_rtp_listeners_route_get_the_same_stream_at_full_rate(start_daemon, tmp_path, ts_file):
    """A chassisd rtp stream to an rtp listener on loopback, 50 HTTP clients
    on its stream route: each gets the TS at the sender's rate, whole TS
    packets, and the same bytes as the first client (nothing lost, nothing
    reordered for anyone)."""
    port, web = even_port(), free_port()
    start_daemon(rtp_gateway_config(port, web, ts_file))
    clients = []
    for _ in range(50):
        s = socket.create_connection(("127.0.0.1", web), timeout=10)
        s.sendall(get_request())
        clients.append(s)
    for s in clients:
        head, _ = read_head(s)
        assert head.startswith("HTTP/1.1 200 OK") and "Content-Type: video/mp2t" in head, head
    data = {s: bytearray() for s in clients}
    sel = selectors.DefaultSelector()
    for s in clients:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    read_for_into(sel, data, 1)			# warm up: everyone is served
    warm = {s: len(body) for s, body in data.items()}
    read_for_into(sel, data, 4)
    sel.close()
    expected = RATE / 8 * 4
    counts = sorted(len(body) - warm[s] for s, body in data.items())
    assert expected * 0.9 < counts[0] and counts[-1] < expected * 1.1, counts
    assert counts[-1] - counts[0] < expected * 0.05, counts
    first = bytes(data[clients[0]])
    for s, body in data.items():
        assert all(body[i] == 0x47 for i in range(0, len(body) - 187, 188)), "whole TS packets from the start"
        middle = bytes(body[len(body) // 2:len(body) // 2 + 65536])
        assert first.find(middle) >= 0, "client %d: not the first client's bytes" % clients.index(s)
    row = next(r for r in stream_status(web, "web")["module"]["route"] if r["name"] == "/live/news")
    assert row["clients"] == 50 and row["dropped_slow"] == 0, row
    for s in clients:
        s.close()


def read_for_into(sel, data, seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for key, _ in sel.select(timeout=0.1):
            try:
                chunk = key.fileobj.recv(262144)
            except BlockingIOError:
                continue
            if not chunk:
                sel.unregister(key.fileobj)
                continue
            data[key.fileobj] += chunk

