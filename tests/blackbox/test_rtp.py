"""The rtp stream: MPEG-TS over RTP (RFC 3550, RFC 2250) from the real
daemon to ffprobe and ffmpeg reading its SDP, and to tshark, which judges
the wire: sequence numbers, timestamps, payload sizes, RTCP."""
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import pytest

from conftest import even_port, free_port, wait_until
from test_stream import Receiver, make_ts, status_listener, stream_status

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg")


def rtp_stream(name, dest, ts, sdp=None, extra="", rtp_extra=""):
    sdp_line = 'sdp = "%s"' % sdp if sdp else ""
    return ('stream "%s" {\n  protocol = "rtp"\n  destination = {"%s"}\n  source { file = "%s"  loop = true }\n'
            '%s\n  rtp { %s %s }\n}\n') % (name, dest, ts, extra, sdp_line, rtp_extra)


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    path = tmp_path_factory.mktemp("media") / "news.ts"
    make_ts(path, seconds=8)
    return path


@needs_ffmpeg
def test_ffprobe_and_ffmpeg_read_the_sdp_and_the_recording_decodes(start_daemon, tmp_path, ts_file):
    port = even_port()
    sdp = tmp_path / "news.sdp"
    start_daemon(rtp_stream("news", "127.0.0.1:%d" % port, ts_file, sdp))
    text = sdp.read_text()
    assert "m=video %d RTP/AVP 33" % port in text and "a=rtpmap:33 MP2T/90000" in text, text
    probe = subprocess.run(["ffprobe", "-v", "error", "-protocol_whitelist", "file,udp,rtp", "-show_entries",
                            "stream=codec_type,codec_name", "-of", "json", "-i", str(sdp)],
                           capture_output=True, text=True, timeout=60)
    kinds = {(s["codec_type"], s["codec_name"]) for s in json.loads(probe.stdout)["streams"]}
    assert ("video", "mpeg2video") in kinds and ("audio", "mp2") in kinds, probe.stderr
    rec = tmp_path / "rec.ts"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-protocol_whitelist", "file,udp,rtp",
                    "-i", str(sdp), "-c", "copy", "-t", "5", str(rec)], check=True, timeout=60)
    decode = subprocess.run(["ffmpeg", "-hide_banner", "-v", "error", "-i", str(rec), "-f", "null", "-"],
                            capture_output=True, text=True, timeout=60)
    assert decode.returncode == 0 and decode.stderr == "", decode.stderr
    duration = float(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of",
                                     "csv=p=0", str(rec)], capture_output=True, text=True).stdout)
    assert 4.0 < duration < 6.0


def rtcp_packets(data):
    """(packet type, body) of each packet of a compound RTCP packet."""
    out, at = [], 0
    while at + 4 <= len(data):
        length = (int.from_bytes(data[at + 2:at + 4], "big") + 1) * 4
        assert data[at] >> 6 == 2 and at + length <= len(data)
        out.append((data[at + 1], data[at + 4:at + length]))
        at += length
    assert at == len(data)
    return out


def parse_rtp(data):
    first, second = data[0], data[1]
    return {"version": first >> 6, "marker": second >> 7, "pt": second & 0x7f,
            "seq": int.from_bytes(data[2:4], "big"), "ts": int.from_bytes(data[4:8], "big"),
            "ssrc": int.from_bytes(data[8:12], "big"), "payload": data[12:]}


@needs_ffmpeg
def test_the_wire_rtp_headers_pacing_and_rtcp(start_daemon, tmp_path, ts_file):
    """Our own receiver: version 2, PT 33, 7 x 188 per packet, sequence +1
    each, timestamps on the send schedule (monotonic, also across the file
    loop, where the marker is set), the rate of the file, SR + SDES on
    port+1 about every 5 s, and BYE at stop."""
    port = even_port()
    rx, rtcp = Receiver(port), Receiver(port + 1)
    bitrate = int(subprocess.run(["ffprobe", "-v", "error", "-show_entries", "format=bit_rate", "-of",
                                  "csv=p=0", str(ts_file)], capture_output=True, text=True).stdout)
    duration = os.path.getsize(ts_file) * 8 / bitrate
    d = start_daemon(rtp_stream("news", "127.0.0.1:%d" % port, ts_file))
    time.sleep(duration + 4)
    d.stop()
    time.sleep(0.3)
    rx.stop()
    rtcp.stop()
    pkts = [parse_rtp(x) for x in rx.datagrams]
    assert all(p["version"] == 2 and p["pt"] == 33 for p in pkts)
    assert len({p["ssrc"] for p in pkts}) == 1
    assert all(len(p["payload"]) == 1316 for p in pkts)
    assert all(p["payload"][i * 188] == 0x47 for p in pkts for i in range(7))
    assert all((b["seq"] - a["seq"]) % 65536 == 1 for a, b in zip(pkts, pkts[1:]))
    assert all(0 < (b["ts"] - a["ts"]) % (1 << 32) < 90000 for a, b in zip(pkts, pkts[1:])), "monotonic"
    markers = [i for i, p in enumerate(pkts) if p["marker"]]
    assert len(markers) == 1, "one loop of the file, one marker"
    # Timestamps follow the arrival times (the send schedule): no drift.
    span_ts = ((pkts[-1]["ts"] - pkts[0]["ts"]) % (1 << 32)) / 90000
    span_rx = rx.times[-1] - rx.times[0]
    assert abs(span_ts - span_rx) < 0.05, (span_ts, span_rx)
    rate = len(pkts) * 1316 * 8 / span_rx
    assert abs(rate - bitrate) / bitrate < 0.03, (rate, bitrate)
    # RTCP: compound SR + SDES, then SR + SDES + BYE at stop.
    assert len(rtcp.datagrams) >= 2
    for packet in rtcp.datagrams:
        assert packet[1] == 200 and int.from_bytes(packet[4:8], "big") == pkts[0]["ssrc"]
    last = rtcp.datagrams[-1]
    assert [t for t, _ in rtcp_packets(rtcp.datagrams[0])] == [200, 202]
    assert [t for t, _ in rtcp_packets(last)] == [200, 202, 203], "BYE at stop"
    assert b"chassisd@" in rtcp.datagrams[0], "SDES CNAME"
    counts = int.from_bytes(last[20:24], "big")
    assert counts == len(pkts), (counts, len(pkts))


@needs_ffmpeg
def test_a_reload_keeps_the_ssrc_and_sequence_of_an_unchanged_stream(start_daemon, tmp_path, ts_file):
    port, web = even_port(), free_port()
    rx = Receiver(port)
    config = rtp_stream("news", "127.0.0.1:%d" % port, ts_file)
    d = start_daemon(config + status_listener(web))
    rx.wait_for(50)
    ssrc = stream_status(web, "news")["text"]["ssrc"]
    d.reload(config + status_listener(web) + '# a comment\n')
    time.sleep(0.5)
    assert stream_status(web, "news")["text"]["ssrc"] == ssrc
    d.reload(config.replace('rtp {', 'rtp { pace = "rate"') .replace("loop = true }", "loop = true }\n  rate = 1200000")
             + status_listener(web))
    time.sleep(0.5)
    rx.stop()
    assert stream_status(web, "news")["text"]["ssrc"] != ssrc, "a changed stream is a new RTP session"
    pkts = [parse_rtp(x) for x in rx.datagrams]
    first = [p for p in pkts if p["ssrc"] == int(ssrc, 16)]
    assert all((b["seq"] - a["seq"]) % 65536 == 1 for a, b in zip(first, first[1:])), "no gap across the reload"


@needs_ffmpeg
def test_garbage_in_the_ts_is_cut_out_and_the_stream_goes_on(start_daemon, tmp_path, ts_file):
    """A file with bytes that are not TS in its middle: every RTP packet
    still carries whole, synced TS packets, and nothing stops."""
    data = ts_file.read_bytes()
    cut = len(data) // 2 // 188 * 188
    bad = tmp_path / "bad.ts"
    # Sync bytes strewn in the garbage, as random bytes have them, but
    # none a whole number of packets before the good data resumes: such a
    # byte is a packet start no parser can tell from a real one.
    garbage = bytearray(os.urandom(5000).replace(b"\x47", b"\x48"))
    for g in random.Random(7).sample(range(5000), 60):
        if (5000 - g) % 188 != 0:
            garbage[g] = 0x47
    bad.write_bytes(data[:cut] + b"\x47" + bytes(garbage) + data[cut:])
    port, web = even_port(), free_port()
    rx = Receiver(port)
    d = start_daemon(rtp_stream("news", "127.0.0.1:%d" % port, bad, extra="", rtp_extra="") + status_listener(web))
    duration = len(data) * 8 / 1.2e6
    rx.wait_for(int(len(data) / 1316 * 0.95), timeout=duration + 5)
    rx.stop()
    pkts = [parse_rtp(x) for x in rx.datagrams]
    assert all(len(p["payload"]) % 188 == 0 for p in pkts)
    assert all(p["payload"][i] == 0x47 for p in pkts for i in range(0, len(p["payload"]), 188))
    # The inserted 0x47 passes as one packet (its sync byte is right).
    assert stream_status(web, "news")["module"]["ts_bytes_cut"] == 5001 - 188
    assert "no MPEG-TS" not in d.log()


def test_a_source_without_ts_is_reported_and_does_not_spin(start_daemon, tmp_path):
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(1 << 20).replace(b"\x47", b"\x48"))
    port = even_port()
    d = start_daemon(rtp_stream("junk", "127.0.0.1:%d" % port, junk))
    d.wait_log(r"no MPEG-TS packets in \d+ bytes of the source stream=junk", timeout=10)
    before = d.cpu_seconds()
    time.sleep(3)
    assert d.cpu_seconds() - before < 0.5, "reads on at a second's pace"


needs_gst = pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="needs GStreamer")


@needs_ffmpeg
@needs_gst
def test_a_receivers_reports_show_in_status_and_metrics(start_daemon, tmp_path, ts_file):
    """GStreamer's rtpbin receives the stream and our SRs on port + 1 and
    sends its RRs to our RTCP port (rtcp-port): its SSRC shows in /status
    and /metrics with its loss, jitter and round trip. Garbage on the RTCP
    port is counted, and the stream goes on."""
    port, web, rtcp_port = even_port(), free_port(), free_port(socket.SOCK_DGRAM)
    start_daemon(rtp_stream("news", "127.0.0.1:%d" % port, ts_file, rtp_extra="rtcp-port = %d" % rtcp_port)
                 + status_listener(web))
    caps = "application/x-rtp,media=video,clock-rate=90000,encoding-name=MP2T,payload=33"
    gst = subprocess.Popen(["gst-launch-1.0", "-q", "rtpbin", "name=rb",
                            "udpsrc", "port=%d" % port, "caps=" + caps, "!", "rb.recv_rtp_sink_0",
                            "rb.", "!", "rtpmp2tdepay", "!", "fakesink",
                            "udpsrc", "port=%d" % (port + 1), "!", "rb.recv_rtcp_sink_0",
                            "rb.send_rtcp_src_0", "!", "udpsink", "host=127.0.0.1", "port=%d" % rtcp_port,
                            "sync=false", "async=false"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def receivers():
            return stream_status(web, "news")["module"].get("receiver", [])
        assert wait_until(lambda: any("rtt_us" in r for r in receivers()), timeout=25), receivers()
        row = next(r for r in receivers() if "rtt_us" in r)
        status = stream_status(web, "news")
        assert re.fullmatch(r"[0-9a-f]{8}", row["name"]) and row["name"] != status["text"]["ssrc"]
        assert row["fraction_lost"] == 0 and row["lost"] == 0, row
        assert row["jitter_us"] < 20000, row
        assert 0 < row["rtt_us"] < 100000, "on loopback"
        assert row["last_heard_ms"] < 15000 and row["reports"] >= 1
        assert 0 < row["highest_sequence"], row
        assert status["text"]["rtcp_port"] == str(rtcp_port)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for junk in (b"\x80\xc9\x00\x07" + b"\x00" * 8, b"\x00" * 40, b"\x81\xca\x00\x01abcd"):
                s.sendto(junk, ("127.0.0.1", rtcp_port))
        assert wait_until(lambda: stream_status(web, "news")["module"]["rtcp_malformed"] >= 3, timeout=5)
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % web, timeout=5) as r:
            metrics = r.read().decode()
        assert re.search(r'chassisd_rtp_receiver_rtt_seconds\{listener="news",protocol="rtp",receiver="%s"\} \d+\.\d{6}'
                         % row["name"], metrics), metrics
        assert stream_status(web, "news")["text"]["state"] == "sending"
    finally:
        gst.kill()
        gst.wait()


def test_a_short_looping_file_sets_the_marker_at_every_loop(start_daemon, tmp_path):
    """A file of 14 TS packets (two RTP packets) loops hundreds of times
    within one look-ahead: every packet that starts a loop has the
    marker, none other has it."""
    loop = tmp_path / "short.ts"
    loop.write_bytes(b"".join(bytes([0x47, 0x1f, 0xff, 0x10]) + bytes([i]) * 184 for i in range(14)))
    port = even_port()
    rx = Receiver(port)
    start_daemon(rtp_stream("short", "127.0.0.1:%d" % port, loop, extra="  rate = 2000000",
                            rtp_extra='pace = "rate"'))
    rx.wait_for(300, timeout=10)
    rx.stop()
    pkts = [parse_rtp(x) for x in rx.datagrams]
    assert all(len(p["payload"]) == 1316 for p in pkts)
    starts = [p["payload"][4] == 0 for p in pkts]
    marked = [bool(p["marker"]) for p in pkts]
    # The first packet of the first pass has no loop before it.
    assert marked[1:] == starts[1:], [i for i, (m, s) in enumerate(zip(marked, starts)) if m != s][:10]
    assert sum(marked) >= 100


def test_the_sdp_names_every_destination_and_goes_with_the_stream(start_daemon, tmp_path):
    """Each destination is a media section with its own address; a long
    name is not cut; a changed stream's new SDP stays while the old
    instance stops; removing the stream removes its file."""
    ts = tmp_path / "x.ts"
    ts.write_bytes(bytes([0x47, 0x1f, 0xff, 0x10]) + bytes(184))
    sdp = tmp_path / "x.sdp"
    name = "n" * 300
    p1, p2, web = even_port(), even_port(), free_port()
    stream = ('stream "%s" {\n  protocol = "rtp"\n  destination = {"127.0.0.1:%d", "[::1]:%d"}\n'
              '  source { file = "%s"  loop = true }\n  rate = 100000\n  rtp { pace = "rate"  sdp = "%s" }\n}\n'
              % (name, p1, p2, ts, sdp))
    d = start_daemon(stream + status_listener(web))
    text = sdp.read_bytes().decode()
    assert ("s=%s\r\n" % name) in text
    media = text.split("m=")[1:]
    assert "\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" in text, "the first is the session's"
    assert media[0] == "video %d RTP/AVP 33\r\na=rtpmap:33 MP2T/90000\r\n" % p1, text
    assert media[1] == "video %d RTP/AVP 33\r\nc=IN IP6 ::1\r\na=rtpmap:33 MP2T/90000\r\n" % p2, text
    d.reload(stream.replace("rate = 100000", "rate = 200000") + status_listener(web))
    wait_until(lambda: sdp.exists() and sdp.read_bytes().decode() != text, timeout=5)
    time.sleep(0.5)
    assert sdp.exists() and sdp.read_bytes().decode() != text, "the new instance's SDP stays"
    d.reload(status_listener(web))
    assert wait_until(lambda: not sdp.exists(), timeout=5), "a removed stream takes its SDP file"


needs_sox = pytest.mark.skipif(shutil.which("sox") is None or shutil.which("tshark") is None,
                               reason="needs sox and tshark")


def audio_stream(name, port, wav, payload, sdp, loop):
    return ('stream "%s" {\n  protocol = "rtp"\n  destination = {"127.0.0.1:%d"}\n'
            '  source { file = "%s"  loop = %s }\n  rtp { payload = "%s"  sdp = "%s" }\n}\n'
            % (name, port, wav, "true" if loop else "false", payload, sdp))


def tshark_capture(port, pcap, seconds):
    """tshark on lo for the port's datagrams, returned once it captures."""
    cap = subprocess.Popen(["tshark", "-i", "lo", "-f", "udp dst port %d" % port, "-a", "duration:%d" % seconds,
                            "-w", str(pcap)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    for line in cap.stderr:
        if "Capturing on" in line:
            return cap
    raise AssertionError("tshark did not start")


def rtp_fields(pcap, port):
    out = subprocess.run(["tshark", "-r", str(pcap), "-d", "udp.port==%d,rtp" % port, "-Y", "rtp", "-T", "fields",
                          "-e", "frame.time_relative", "-e", "rtp.seq", "-e", "rtp.timestamp", "-e", "rtp.marker",
                          "-e", "rtp.p_type", "-e", "udp.length"], capture_output=True, text=True, check=True).stdout
    return [(float(t), int(s), int(ts), m in ("1", "True"), int(pt), int(n) - 8 - 12)
            for t, s, ts, m, pt, n in (line.split("\t") for line in out.splitlines())]


def sdp_of(start_daemon, config, sdp):
    """The stream's SDP, from a first run (a receiver must be listening
    before the second run sends its first packet)."""
    d = start_daemon(config)
    assert wait_until(sdp.exists, timeout=5)
    text = sdp.read_bytes()
    d.stop()
    assert not sdp.exists(), "a stopped stream takes its SDP file away"
    return text


def record(sdp_text, path, tmp_path, *options):
    copy = tmp_path / "listen.sdp"
    copy.write_bytes(sdp_text)
    # The SDP says all there is to know: no need to probe 5 s of it.
    log = open(tmp_path / "ffmpeg.log", "w")
    return subprocess.Popen(["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "info", "-y", "-protocol_whitelist",
                             "file,udp,rtp", "-analyzeduration", "100000", "-i", str(copy), *options, "-c:a",
                             "pcm_s16le", str(path)], stdin=subprocess.DEVNULL, stderr=log)


def stop_recording(ffmpeg):
    ffmpeg.send_signal(signal.SIGINT)
    try:
        ffmpeg.wait(timeout=10)
    except subprocess.TimeoutExpired:
        ffmpeg.send_signal(signal.SIGINT)	# a second one: out now
        ffmpeg.wait(timeout=10)


def probe_audio(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=sample_rate,channels:format=duration",
                          "-of", "json", str(path)], capture_output=True, text=True).stdout
    info = json.loads(out)
    assert info.get("streams"), (path.parent / "ffmpeg.log").read_text()
    return int(info["streams"][0]["sample_rate"]), info["streams"][0]["channels"], float(info["format"]["duration"])


@needs_ffmpeg
@needs_sox
def test_pcmu_from_a_wav_file_20_ms_packets_that_ffmpeg_records(start_daemon, tmp_path):
    """A 3 s 8 kHz WAV (sox) as PCMU, looped: the SDP says PT 0
    PCMU/8000; tshark sees 160-byte payloads 20 ms apart, timestamps
    stepping by 160, the marker on the first packet of each pass (150
    packets); ffmpeg, listening from the SDP, records 3 s of 8000 Hz mono
    in 3 s of wall time."""
    wav = tmp_path / "clip.wav"
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(wav), "synth", "3", "sine", "440"],
                   check=True)
    port, sdp = even_port(), tmp_path / "tone.sdp"
    config = audio_stream("tone", port, wav, "pcmu", sdp, loop=True)
    text = sdp_of(start_daemon, config, sdp)
    assert b"m=audio %d RTP/AVP 0\r\n" % port in text and b"a=rtpmap:0 PCMU/8000\r\n" in text, text
    assert b"a=ptime:20\r\n" in text
    rec, pcap = tmp_path / "rec.wav", tmp_path / "pcmu.pcap"
    ffmpeg = record(text, rec, tmp_path, "-t", "3")
    cap = tshark_capture(port, pcap, 5)
    time.sleep(1)
    start_daemon(config)
    started = time.monotonic()
    ffmpeg.wait(timeout=30)
    elapsed = time.monotonic() - started
    cap.wait(timeout=30)
    pkts = rtp_fields(pcap, port)
    assert len(pkts) > 151, len(pkts)
    assert all(p[4] == 0 and p[5] == 160 for p in pkts)
    assert [i for i, p in enumerate(pkts) if p[3]][:2] == [0, 150], "the marker on each pass's first packet"
    assert all((b[1] - a[1]) % 65536 == 1 for a, b in zip(pkts, pkts[1:]))
    assert all((b[2] - a[2]) % (1 << 32) == 160 for a, b in zip(pkts, pkts[1:]))
    gaps = [b[0] - a[0] for a, b in zip(pkts, pkts[1:])]
    assert abs(sum(gaps) / len(gaps) - 0.020) < 0.001, sum(gaps) / len(gaps)
    rate, channels, duration = probe_audio(rec)
    assert (rate, channels) == (8000, 1)
    assert abs(duration - 3.0) < 0.05, duration
    assert 2.7 < elapsed < 3.3 + 0.5, "paced by the sample clock: %.2f s" % elapsed


@needs_ffmpeg
@needs_sox
def test_l16_keeps_the_wav_format_and_a_loop_sets_the_marker(start_daemon, tmp_path):
    """A 1 s 48 kHz stereo WAV as L16, looped: the SDP says
    L16/48000/2 on PT 97; every loop's first packet has the marker and the
    timestamps run on by 960 a packet across it; ffmpeg records 48000 Hz
    stereo at the real rate."""
    wav = tmp_path / "clip.wav"
    subprocess.run(["sox", "-n", "-r", "48000", "-c", "2", "-b", "16", str(wav), "synth", "1", "sine", "440"],
                   check=True)
    port, sdp = even_port(), tmp_path / "tone.sdp"
    config = audio_stream("tone", port, wav, "l16", sdp, loop=True)
    text = sdp_of(start_daemon, config, sdp)
    assert b"m=audio %d RTP/AVP 97\r\n" % port in text and b"a=rtpmap:97 L16/48000/2\r\n" in text, text
    rec, pcap = tmp_path / "rec.wav", tmp_path / "l16.pcap"
    ffmpeg = record(text, rec, tmp_path)
    cap = tshark_capture(port, pcap, 5)
    time.sleep(1)
    start_daemon(config)
    started = time.monotonic()
    cap.wait(timeout=30)
    stop_recording(ffmpeg)
    elapsed = time.monotonic() - started
    pkts = rtp_fields(pcap, port)
    assert all(p[4] == 97 and p[5] == 960 * 4 for p in pkts)
    assert all((b[2] - a[2]) % (1 << 32) == 960 for a, b in zip(pkts, pkts[1:]))
    marked = [i for i, p in enumerate(pkts) if p[3]]
    assert marked[:3] == [0, 50, 100], marked
    rate, channels, duration = probe_audio(rec)
    assert (rate, channels) == (48000, 2)
    assert abs(duration - elapsed) < 0.15 * elapsed, (duration, elapsed)


def test_no_sender_reports_once_nothing_is_sent(start_daemon, tmp_path):
    """A source that ends at once: one SR for what was sent (RFC 3550
    6.4: a sender reports while it sends), none in the RTCP intervals
    after it (0.5-1.5 x 5 s each), then the BYE at stop."""
    ts = tmp_path / "once.ts"
    ts.write_bytes((bytes([0x47, 0x1f, 0xff, 0x10]) + bytes(184)) * 70)
    port = even_port()
    rx, rtcp = Receiver(port), Receiver(port + 1)
    config = rtp_stream("once", "127.0.0.1:%d" % port, ts, extra="  rate = 1000000", rtp_extra='pace = "rate"')
    d = start_daemon(config.replace("loop = true", "loop = false"))
    time.sleep(16)
    d.stop()
    time.sleep(0.3)
    rx.stop()
    rtcp.stop()
    assert len(rx.datagrams) == 10
    kinds = [[t for t, _ in rtcp_packets(p)] for p in rtcp.datagrams]
    assert kinds == [[200, 202], [200, 202, 203]], kinds


@needs_ffmpeg
@needs_sox
def test_mpa_sends_an_mp3_frame_a_packet_on_a_90_khz_clock(start_daemon, tmp_path):
    """An MP3 from ffmpeg (an ID3v2 tag first) as MPA: PT 14 and
    MPA/90000 in the SDP; tshark sees one 1152-sample frame a packet,
    26.1 ms apart, timestamps stepping by 1152 x 90000 / 44100; ffmpeg
    records 44.1 kHz stereo from the SDP at the real rate."""
    mp3 = tmp_path / "clip.mp3"
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    "sine=frequency=440:sample_rate=44100", "-t", "3", "-ac", "2", "-c:a", "libmp3lame", "-b:a", "128k",
                    str(mp3)], check=True)
    assert mp3.read_bytes()[:3] == b"ID3"
    port, sdp = even_port(), tmp_path / "radio.sdp"
    config = audio_stream("radio", port, mp3, "mpa", sdp, loop=True)
    text = sdp_of(start_daemon, config, sdp)
    assert b"m=audio %d RTP/AVP 14\r\n" % port in text and b"a=rtpmap:14 MPA/90000\r\n" in text, text
    rec, pcap = tmp_path / "rec.wav", tmp_path / "mpa.pcap"
    ffmpeg = record(text, rec, tmp_path, "-t", "3")
    cap = tshark_capture(port, pcap, 5)
    time.sleep(1)
    start_daemon(config)
    started = time.monotonic()
    ffmpeg.wait(timeout=30)
    elapsed = time.monotonic() - started
    cap.wait(timeout=30)
    pkts = rtp_fields(pcap, port)
    assert len(pkts) > 100
    assert all(p[4] == 14 for p in pkts)
    assert pkts[0][3], "the marker on the first packet"
    steps = {(b[2] - a[2]) % (1 << 32) for a, b in zip(pkts, pkts[1:])}
    assert steps <= {2351, 2352}, steps
    gaps = [b[0] - a[0] for a, b in zip(pkts, pkts[1:])]
    assert abs(sum(gaps) / len(gaps) - 1152 / 44100) < 0.001, sum(gaps) / len(gaps)
    rate, channels, duration = probe_audio(rec)
    assert (rate, channels) == (44100, 2)
    assert abs(duration - 3.0) < 0.1, duration
    assert 2.7 < elapsed < 3.3 + 0.5, "paced by the frames' samples: %.2f s" % elapsed
