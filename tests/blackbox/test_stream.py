"""Streams: the real daemon sending datagrams to the test's own receivers,
to ffprobe and ffmpeg (raw MPEG-TS over multicast, in a network namespace
the test makes), fed from files, programs and a udp listener, paced and
put through the fault simulator."""
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.request

import pytest

from conftest import free_port, wait_until

SO_TIMESTAMPNS = 35


class Receiver:
    """Every datagram to 127.0.0.1:port (or a group), with the kernel's
    arrival time, collected by a thread until stop()."""

    def __init__(self, port, host="127.0.0.1", group=None, family=socket.AF_INET):
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        try:					# root: past rmem_max
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)	# SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if group:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.sock.bind((group, port))
            mreq = socket.inet_aton(group) + socket.inet_aton(host)
            self.sock.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, mreq)
        else:
            self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.datagrams = []
        self.times = []
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                data, anc, _, _ = self.sock.recvmsg(70000, 64)
            except socket.timeout:
                continue
            except OSError:
                return
            stamp = time.monotonic()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS:
                    sec, nsec = struct.unpack("qq", value[:16])
                    stamp = sec + nsec / 1e9
            self.datagrams.append(data)
            self.times.append(stamp)

    def wait_for(self, count, timeout=20):
        wait_until(lambda: len(self.datagrams) >= count, timeout)
        return self.datagrams

    def stop(self):
        self.running = False
        self.thread.join(2)
        self.sock.close()
        return b"".join(self.datagrams)


def stream_unit(name, destinations, source, extra="", protocol="udp"):
    dests = ", ".join('"%s"' % d for d in destinations)
    return ('stream "%s" {\n  protocol = "%s"\n  destination = {%s}\n  source { %s }\n%s\n}\n'
            % (name, protocol, dests, source, extra))


def status_listener(port):
    return ('listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
            '  http { access-log = false  route "/status" { handler = "status" }'
            '  route "/metrics" { handler = "metrics" } }\n}\n') % port


def stream_status(port, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/status" % port, timeout=5) as r:
        return next(l for l in json.load(r)["listeners"] if l["name"] == name)


def numbered_file(path, count, size=1316):
    """count records of size bytes, each starting with its number."""
    with open(path, "wb") as f:
        for i in range(count):
            f.write(struct.pack(">I", i) + bytes([i % 251]) * (size - 4))
    return path


def test_a_file_goes_out_whole_in_packet_size_datagrams(start_daemon, tmp_path):
    data = os.urandom(1316 * 300 + 500)
    (tmp_path / "in.bin").write_bytes(data)
    port = free_port(socket.SOCK_DGRAM)
    rx = Receiver(port)
    d = start_daemon(stream_unit("f", ["127.0.0.1:%d" % port], 'file = "%s"' % (tmp_path / "in.bin"),
                                 "  packet-size = 1316\n  rate = 20000000\n"))
    rx.wait_for(301)
    got = rx.stop()
    assert got == data
    assert [len(x) for x in rx.datagrams] == [1316] * 300 + [500]
    d.wait_log(r"source: .*in.bin sent to its end stream=f")


def measure_pacing(start_daemon, tmp_path, attempt):
    (tmp_path / "in.ts").write_bytes(os.urandom(1316 * 1000))
    port = free_port(socket.SOCK_DGRAM)
    rx = Receiver(port)
    d = start_daemon(stream_unit("tv%d" % attempt, ["127.0.0.1:%d" % port],
                                 'file = "%s"  loop = true' % (tmp_path / "in.ts"),
                                 "  packet-size = 1316\n  rate = 2000000\n"), workdir=tmp_path / str(attempt))
    time.sleep(10.5)
    rx.stop()
    d.stop()
    times = rx.times[5:]			# from the first few on, the loop is warm
    span = times[-1] - times[0]
    gaps = [b - a for a, b in zip(times, times[1:])]
    return (len(times) - 1) * 1316 * 8 / span, gaps, span


def test_pacing_holds_the_rate_with_no_long_gaps(start_daemon, tmp_path):
    """2 Mbit/s for 10 s: the rate within 2 %, no gap over 3 x the nominal
    1316-byte interval (5.26 ms). A shared 2-core VM sometimes stalls a
    process for 10-20 ms whatever it does: a second run decides, so that
    one stall of the machine does not fail the test while a pacer that
    bursts or drifts fails both."""
    nominal = 1316 * 8 / 2e6
    for attempt in range(2):
        rate, gaps, span = measure_pacing(start_daemon, tmp_path, attempt)
        assert abs(rate - 2e6) / 2e6 < 0.02, rate
        assert span > 9
        if max(gaps) < 3 * nominal:
            return
    raise AssertionError("gaps over 3 x nominal in both runs: %r" % sorted(gaps)[-5:])


def have_netns():
    return shutil.which("ip") is not None and os.geteuid() == 0


class Namespace:
    def __init__(self, name):
        self.name = name
        subprocess.run(["ip", "netns", "add", name], check=True)
        for cmd in (["ip", "link", "set", "lo", "up"], ["ip", "link", "set", "lo", "multicast", "on"],
                    ["ip", "route", "add", "224.0.0.0/4", "dev", "lo"]):
            subprocess.run(["ip", "netns", "exec", name, *cmd], check=True)

    def prefix(self):
        return ("ip", "netns", "exec", self.name)

    def delete(self):
        subprocess.run(["ip", "netns", "del", self.name], check=False)


@pytest.fixture
def netns():
    if not have_netns():
        pytest.skip("needs root and ip")
    ns = Namespace("chassisd-t%d" % os.getpid())
    yield ns
    ns.delete()


def make_ts(path, seconds=6):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "testsrc=size=320x240:rate=25", "-f", "lavfi", "-i", "sine=frequency=1000:sample_rate=48000",
                    "-t", str(seconds), "-c:v", "mpeg2video", "-b:v", "800k", "-g", "25", "-c:a", "mp2",
                    "-b:a", "128k", "-f", "mpegts", "-muxrate", "1200k", str(path)], check=True, timeout=120)


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg")
def test_mpegts_to_a_multicast_group_plays_in_ffprobe_and_ffmpeg(start_daemon, tmp_path, netns):
    ts = tmp_path / "news.ts"
    make_ts(ts)
    group, port = "239.255.1.1", 5004
    d = start_daemon(stream_unit("tv", ["%s:%d" % (group, port)], 'file = "%s"  loop = true' % ts,
                                 '  interface = "127.0.0.1"\n  ttl = 1\n  packet-size = 1316\n'
                                 '  rate = 1200000\n'), wrapper=netns.prefix())
    url = "udp://%s:%d?localaddr=127.0.0.1&timeout=5000000" % (group, port)
    probe = subprocess.run([*netns.prefix(), "ffprobe", "-v", "error", "-show_entries",
                            "format=format_name:stream=codec_type,codec_name", "-of", "json", "-i", url],
                           capture_output=True, text=True, timeout=60)
    info = json.loads(probe.stdout)
    assert info["format"]["format_name"] == "mpegts", probe.stderr
    assert {"codec_type": "video", "codec_name": "mpeg2video"} in [
        {k: s[k] for k in ("codec_type", "codec_name")} for s in info["streams"]]
    rec = tmp_path / "rec.ts"
    subprocess.run([*netns.prefix(), "ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-i", url, "-c", "copy",
                    "-t", "3", str(rec)], check=True, timeout=60)
    decode = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-i", str(rec), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert decode.returncode == 0
    frames = subprocess.run(["ffprobe", "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
                             "stream=nb_read_frames", "-of", "csv=p=0", str(rec)], capture_output=True, text=True,
                            timeout=60)
    assert int(frames.stdout.strip().split(",")[0]) >= 50, frames
    d.stop()


def test_a_multicast_stream_pins_its_interface_in_the_root_namespace(start_daemon, tmp_path):
    """TTL 0, IP_MULTICAST_IF 127.0.0.1: a receiver joined on lo gets it."""
    data = os.urandom(1000 * 50)
    (tmp_path / "in.bin").write_bytes(data)
    group, port = "239.255.42.7", free_port(socket.SOCK_DGRAM)
    rx = Receiver(port, group=group)
    start_daemon(stream_unit("m", ["%s:%d" % (group, port)], 'file = "%s"' % (tmp_path / "in.bin"),
                             '  interface = "127.0.0.1"\n  ttl = 0\n  packet-size = 1000\n  rate = 8000000\n'))
    rx.wait_for(50)
    assert rx.stop() == data


def test_ipv6_and_several_destinations_each_get_everything(start_daemon, tmp_path):
    from conftest import have_ipv6
    if not have_ipv6():
        pytest.skip("no IPv6 loopback")
    data = os.urandom(700 * 40)
    (tmp_path / "in.bin").write_bytes(data)
    p4, p6 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rx4, rx6 = Receiver(p4), Receiver(p6, host="::1", family=socket.AF_INET6)
    start_daemon(stream_unit("two", ["127.0.0.1:%d" % p4, "[::1]:%d" % p6], 'file = "%s"' % (tmp_path / "in.bin"),
                             "  packet-size = 700\n  rate = 5000000\n"))
    rx4.wait_for(40)
    rx6.wait_for(40)
    assert rx4.stop() == data
    assert rx6.stop() == data


def test_a_command_is_paced_restarted_with_growing_backoff_and_logged_once(start_daemon, tmp_path):
    port = free_port(socket.SOCK_DGRAM)
    rx = Receiver(port)
    script = tmp_path / "once.sh"
    script.write_text("#!/bin/sh\nprintf 'chunk-of-output'\nexit 3\n")
    script.chmod(0o755)
    d = start_daemon(stream_unit("prog", ["127.0.0.1:%d" % port], 'command = {"%s"}  backoff = 1  backoff-max = 2'
                                 % script, "  packet-size = 15\n"))
    rx.wait_for(4, timeout=15)
    rx.stop()
    assert set(rx.datagrams) == {b"chunk-of-output"}
    gaps = [b - a for a, b in zip(rx.times, rx.times[1:])]
    # 1 s, then 2 s (capped), each with up to 25 % jitter.
    assert 0.9 < gaps[0] < 1.5, gaps
    assert 1.9 < gaps[1] < 2.7, gaps
    assert 1.9 < gaps[2] < 2.7, gaps
    log = d.log()
    assert log.count("starting it again with back-off") == 1, log
    assert "failed; starting it again with back-off stream=prog" in log


def test_a_fast_command_is_read_no_faster_than_the_rate(start_daemon, tmp_path):
    """cat /dev/zero writes as fast as it can; the stream sends 800 kbit/s
    and the daemon's memory stays flat: the pipe fills and cat waits."""
    port = free_port(socket.SOCK_DGRAM)
    web = free_port()
    rx = Receiver(port)
    d = start_daemon(stream_unit("zero", ["127.0.0.1:%d" % port], 'command = {"/bin/cat", "/dev/zero"}',
                                 "  packet-size = 1000\n  rate = 800000\n") + status_listener(web))
    time.sleep(1)
    rss_before = d.rss_kib()
    time.sleep(3)
    rx.stop()
    rate = len(rx.datagrams) * 8000 / (rx.times[-1] - rx.times[0])
    assert abs(rate - 800000) / 800000 < 0.05, rate
    st = stream_status(web, "zero")
    assert st["module"]["source"][0]["bytes"] < len(rx.datagrams) * 1000 + 2 * 256 * 1024 + 65536 * 2
    assert d.rss_kib() - rss_before < 2048
    assert d.cpu_seconds() < 2


def test_a_udp_listener_relayed_datagram_by_datagram(start_daemon):
    """Multicast-to-unicast style: what listener "in" receives goes to the
    stream's destination, each datagram whole, sizes kept."""
    inport, outport = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rx = Receiver(outport)
    d = start_daemon('listener "in" { protocol = "udp" transport = "udp" address = "127.0.0.1:%d" }\n' % inport +
                     stream_unit("relay", ["127.0.0.1:%d" % outport], 'listener = "in"'))
    d.wait_log("waiting for datagrams of listener in")	# sources start with the loop
    sent = [os.urandom(n) for n in (1, 100, 1316, 9000, 60000, 7)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for payload in sent:
        s.sendto(payload, ("127.0.0.1", inport))
        time.sleep(0.01)
    rx.wait_for(len(sent))
    rx.stop()
    assert rx.datagrams == sent


def run_netsim_once(start_daemon, tmp_path, netsim, count=2000):
    port = free_port(socket.SOCK_DGRAM)
    rx = Receiver(port)
    numbered_file(tmp_path / "n.bin", count, 200)
    d = start_daemon(stream_unit("sim", ["127.0.0.1:%d" % port], 'file = "%s"' % (tmp_path / "n.bin"),
                                 "  packet-size = 200\n  rate = 8000000\n  netsim { %s }\n" % netsim))
    d.wait_log(r"sent to its end stream=sim")
    time.sleep(0.5)
    rx.stop()
    d.stop()
    return [struct.unpack(">I", x[:4])[0] for x in rx.datagrams]


def test_netsim_with_a_seed_loses_duplicates_and_reorders_the_same_way_twice(start_daemon, tmp_path):
    first = run_netsim_once(start_daemon, tmp_path, "loss = 0.1  duplicate = 0.1  reorder = 8  seed = 42")
    second = run_netsim_once(start_daemon, tmp_path, "loss = 0.1  duplicate = 0.1  reorder = 8  seed = 42")
    assert first == second
    distinct = set(first)
    lost = 2000 - len(distinct)
    dups = len(first) - len(distinct)
    assert 120 < lost < 280, lost		# 10 % of 2000, sd 13.4
    assert 100 < dups < 260, dups
    assert first != sorted(first)			# reordered
    # Kamaelia's Reorder never sent its last 7: here the window's tail is
    # released, so the last datagrams arrive unless lost.
    assert len([n for n in distinct if n >= 1990]) >= 6
    other = run_netsim_once(start_daemon, tmp_path, "loss = 0.1  duplicate = 0.1  reorder = 8  seed = 43")
    assert other != first


def test_status_shows_a_stream_with_its_source_and_counters(start_daemon, tmp_path):
    (tmp_path / "in.bin").write_bytes(os.urandom(1316 * 20))
    port, web = free_port(socket.SOCK_DGRAM), free_port()
    rx = Receiver(port)
    d = start_daemon(stream_unit("tv", ["127.0.0.1:%d" % port], 'file = "%s"' % (tmp_path / "in.bin"),
                                 "  rate = 4000000\n  netsim { loss = 0.5 seed = 3 }\n") + status_listener(web))
    d.wait_log(r"sent to its end stream=tv")
    time.sleep(0.3)
    rx.stop()
    st = stream_status(web, "tv")
    assert st["transport"] == "stream"
    assert st["module"]["datagrams"] == 20
    assert st["module"]["sent"] == len(rx.datagrams)
    assert st["module"]["netsim"][0]["lost"] == 20 - len(rx.datagrams)
    assert st["text"]["source_state"] == "ended"
    assert st["text"]["state"] == "ended"
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % web, timeout=5) as r:
        metrics = r.read().decode()
    assert 'chassisd_udp_datagrams_total{listener="tv",protocol="udp"} 20' in metrics
    assert "1 listener, 1 stream" in d.notifications[-1] or "stream" in "".join(d.notifications)


def test_reload_keeps_an_unchanged_stream_without_a_gap_and_restarts_a_changed_one(start_daemon, tmp_path):
    numbered_file(tmp_path / "n.bin", 100000, 200)
    p1, p2 = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rx1, rx2 = Receiver(p1), Receiver(p2)
    keep = stream_unit("keep", ["127.0.0.1:%d" % p1], 'file = "%s"' % (tmp_path / "n.bin"),
                       "  packet-size = 200\n  rate = 800000\n")
    change = stream_unit("change", ["127.0.0.1:%d" % p2], 'file = "%s"' % (tmp_path / "n.bin"),
                         "  packet-size = 200\n  rate = %d\n")
    d = start_daemon(keep + change % 800000)
    rx1.wait_for(100)
    rx2.wait_for(100)
    status = d.reload(keep + change % 400000)
    assert "generation 2" in status
    time.sleep(1)
    d.wait_log(r"stream change: changed, restarted")
    d.reload(change % 400000)			# "keep" removed
    time.sleep(0.5)
    n_keep = len(rx1.datagrams)
    time.sleep(0.5)
    rx1.stop()
    rx2.stop()
    seq1 = [struct.unpack(">I", x[:4])[0] for x in rx1.datagrams]
    seq2 = [struct.unpack(">I", x[:4])[0] for x in rx2.datagrams]
    assert seq1 == list(range(len(seq1))), "the kept stream skipped or repeated"
    assert len(rx1.datagrams) == n_keep, "the removed stream goes on sending"
    assert seq2.count(0) == 2, "the changed stream did not start again"
    assert "reload 2: 1 kept, 1 added, 1 removed" in d.log()


def test_a_datagram_listener_simulates_faults_on_what_it_receives(start_daemon):
    """udp echo behind netsim { duplicate = 1 }: every datagram is answered
    twice; with loss = 1, never; the status page counts both."""
    port, lossy, web = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM), free_port()
    start_daemon('listener "dup" { protocol = "echo" transport = "udp" address = "127.0.0.1:%d"'
                 '  netsim { duplicate = 1 seed = 5 } }\n' % port +
                 'listener "lossy" { protocol = "echo" transport = "udp" address = "127.0.0.1:%d"'
                 '  netsim { loss = 1 } }\n' % lossy + status_listener(web))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(1)
    s.sendto(b"once", ("127.0.0.1", port))
    assert s.recv(100) == b"once"
    assert s.recv(100) == b"once"
    s.sendto(b"never", ("127.0.0.1", lossy))
    with pytest.raises(socket.timeout):
        s.recv(100)
    assert stream_status(web, "dup")["module"]["netsim"][0]["duplicated"] == 1
    assert stream_status(web, "lossy")["module"]["netsim"][0]["lost"] == 1


def origin_config(port, root):
    return ('listener "origin" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
            '  http { access-log = false  route "/" { handler = "static"  root = "%s" } }\n}\n') % (port, root)


def test_an_http_source_sends_the_file_and_a_404_sends_nothing(start_daemon, tmp_path):
    """chassisd's own http listener is the origin: the bytes sent are the
    file's; a 404 sends nothing and is logged, and is tried again later."""
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(1316 * 700 + 77)
    (root / "radio.ts").write_bytes(data)
    origin, port, missing = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rx, rx404 = Receiver(port), Receiver(missing)
    d = start_daemon(origin_config(origin, root) +
                     stream_unit("web", ["127.0.0.1:%d" % port],
                                 'url = "http://127.0.0.1:%d/radio.ts"  backoff = 30' % origin,
                                 "  rate = 8000000\n") +
                     stream_unit("gone", ["127.0.0.1:%d" % missing],
                                 'url = "http://127.0.0.1:%d/nothing-here"  backoff = 1  backoff-max = 1' % origin))
    wait_until(lambda: sum(map(len, rx.datagrams)) >= len(data), 15)
    time.sleep(1.5)
    got = rx.stop()
    assert len(got) == len(data), (len(got), len(data), [len(x) for x in rx.datagrams][-3:])
    assert got == data
    assert rx404.stop() == b""
    log = d.log()
    assert "404" in log and "stream=gone" in log, log
    assert log.count("404") <= 2, "a failing source logs once, not per try"


def test_an_http_source_backs_off_while_the_origin_is_gone_and_recovers(start_daemon, tmp_path):
    root = tmp_path / "www"
    root.mkdir()
    (root / "live").write_bytes(os.urandom(200000))
    origin, port = free_port(), free_port(socket.SOCK_DGRAM)
    rx = Receiver(port)
    o = start_daemon(origin_config(origin, root), workdir=tmp_path / "origin")
    d = start_daemon(stream_unit("web", ["127.0.0.1:%d" % port],
                                 'url = "http://127.0.0.1:%d/live"  backoff = 1  backoff-max = 2' % origin,
                                 "  rate = 8000000\n"))
    rx.wait_for(100)
    o.stop()
    d.wait_log(r"source: .*(refused|Couldn't connect).*retrying with back-off stream=web", timeout=10)
    cpu_before = d.cpu_seconds()
    time.sleep(4)
    assert d.cpu_seconds() - cpu_before < 0.2, "no busy loop while the origin is away"
    got_before = len(rx.datagrams)
    start_daemon(origin_config(origin, root), workdir=tmp_path / "origin2")
    wait_until(lambda: len(rx.datagrams) > got_before + 100, 10)
    rx.stop()


def test_a_datagram_listener_with_delay_and_reorder_delivers_everything_later(start_daemon):
    """Held datagrams (delay, a reorder window) come back to the module:
    every one answered, some out of order, none before the delay."""
    port = free_port(socket.SOCK_DGRAM)
    start_daemon('listener "slow" { protocol = "echo" transport = "udp" address = "127.0.0.1:%d"'
                 '  netsim { delay = 50  jitter = 10  reorder = 4  seed = 9 } }\n' % port)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(2)
    sent_at = time.monotonic()
    for i in range(40):
        s.sendto(b"%03d" % i + b"x" * (i % 5), ("127.0.0.1", port))
    got = []
    first_at = None
    while len(got) < 40:
        got.append(s.recv(100))
        first_at = first_at or time.monotonic()
    assert first_at - sent_at >= 0.035
    assert sorted(got) == sorted(b"%03d" % i + b"x" * (i % 5) for i in range(40))
    assert got != sorted(got)


def test_a_paced_listener_relay_passes_datagrams_larger_than_a_burst(start_daemon):
    """packet-size 188 makes a burst 752 bytes: a 1316- or 9000-byte
    datagram must still go, at the rate, not stall the stream."""
    inport, outport = free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rx = Receiver(outport)
    d = start_daemon('listener "in" { protocol = "udp" transport = "udp" address = "127.0.0.1:%d" }\n' % inport +
                     stream_unit("relay", ["127.0.0.1:%d" % outport], 'listener = "in"',
                                 "  packet-size = 188\n  rate = 1000000\n"))
    d.wait_log("waiting for datagrams of listener in")	# sources start with the loop
    sent = [os.urandom(n) for n in (500, 1316, 9000, 100, 1316)]
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    for payload in sent:
        s.sendto(payload, ("127.0.0.1", inport))
    rx.wait_for(len(sent), timeout=5)
    rx.stop()
    assert rx.datagrams == sent
    # 12,232 bytes at 125,000 bytes/s: about 0.1 s, not a burst.
    assert rx.times[-1] - rx.times[0] > 0.05


def test_a_command_source_runs_as_the_service_user(start_daemon, tmp_path):
    """Sources start once the loop runs, after privileges are dropped: the
    program is not root, and stopping the daemon stops it."""
    import pwd
    try:
        nobody = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("no user nobody")
    if os.geteuid() != 0:
        pytest.skip("needs root")
    port = free_port(socket.SOCK_DGRAM)
    rx = Receiver(port)
    os.chmod(tmp_path, 0o755)
    d = start_daemon('user = "nobody"\n' +
                     stream_unit("who", ["127.0.0.1:%d" % port], 'command = {"/bin/sh", "-c", "id -u; exec sleep 60"}',
                                 "  packet-size = 16\n"))
    rx.wait_for(1)
    rx.stop()
    assert rx.datagrams[0].strip() == str(nobody.pw_uid).encode()
    started = time.monotonic()
    assert d.stop(timeout=15) == 0
    assert time.monotonic() - started < 10
