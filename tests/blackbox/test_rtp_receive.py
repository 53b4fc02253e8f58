"""The rtp listener: an RTP receiver (RFC 3550) fed by GStreamer, by a
chassisd rtp stream through the fault simulator, and by the test's own
packets (every header form, malformed ones, a change of sender). What it
records must be the sent payload in order; its counters must match what was
done to the packets; its RTCP receiver reports must be well formed."""
import os
import random
import shutil
import socket
import struct
import subprocess
import time
import urllib.request

import pytest

from conftest import even_port, free_port, wait_until
from test_stream import Receiver, make_ts, netns, status_listener, stream_status, stream_unit  # noqa: F401 (a fixture)

needs_ffmpeg = pytest.mark.skipif(shutil.which("ffprobe") is None, reason="needs ffmpeg")
needs_gst = pytest.mark.skipif(shutil.which("gst-launch-1.0") is None, reason="needs GStreamer")


def rtp_listener(name, port, record, rtp_extra="", extra="", transport="udp"):
    return ('listener "%s" {\n  protocol = "rtp"\n  transport = "%s"\n  address = "127.0.0.1:%d"\n%s\n'
            '  rtp { record = "%s" %s }\n}\n') % (name, transport, port, extra, record, rtp_extra)


def rtp_packet(seq, ts, ssrc, payload, pt=33, marker=False, csrcs=(), extension=None, padding=0):
    first = 0x80 | (0x20 if padding else 0) | (0x10 if extension is not None else 0) | len(csrcs)
    out = struct.pack(">BBHII", first, (0x80 if marker else 0) | pt, seq & 0xffff, ts & 0xffffffff, ssrc)
    out += b"".join(struct.pack(">I", c) for c in csrcs)
    if extension is not None:
        out += struct.pack(">HH", 0xbede, len(extension) // 4) + extension
    out += payload
    if padding:
        out += bytes(padding - 1) + bytes([padding])
    return out


def senders(web, name):
    """The listener's sender rows by SSRC (hex)."""
    return {row["name"]: row for row in stream_status(web, name)["module"].get("sender", [])}


@pytest.fixture(scope="module")
def ts_file(tmp_path_factory):
    if shutil.which("ffmpeg") is None:
        pytest.skip("needs ffmpeg")
    path = tmp_path_factory.mktemp("media") / "news.ts"
    make_ts(path, seconds=4)
    return path


@needs_ffmpeg
@needs_gst
def test_gstreamer_sends_and_the_recording_is_the_file_byte_for_byte(start_daemon, tmp_path, ts_file):
    """GStreamer (tsparse set-timestamps=true ! rtpmp2tpay ! udpsink) as an
    independent sender: the recording is every byte of the file, in order,
    and ffprobe decodes it. A udp stream whose source is the listener (a
    tap, as the HTTP gateway uses) relays the payload, not RTP."""
    port, web, relay = even_port(), free_port(), free_port(socket.SOCK_DGRAM)
    record = tmp_path / "rec.ts"
    rx = Receiver(relay)
    d = start_daemon(rtp_listener("news-in", port, record) + status_listener(web) +
                     stream_unit("relay", ["127.0.0.1:%d" % relay], 'listener = "news-in"'))
    d.wait_log("waiting for datagrams of listener news-in")
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", "location=%s" % ts_file, "!", "tsparse",
                    "set-timestamps=true", "!", "rtpmp2tpay", "!", "udpsink", "host=127.0.0.1",
                    "port=%d" % port, "sync=true"], check=True, timeout=60, capture_output=True)
    sent = ts_file.read_bytes()
    wait_until(lambda: record.stat().st_size >= len(sent), timeout=5)
    assert record.read_bytes() == sent
    wait_until(lambda: sum(map(len, rx.datagrams)) >= len(sent), timeout=5)
    rx.stop()
    assert b"".join(rx.datagrams) == sent and all(x[0] == 0x47 for x in rx.datagrams)
    (row,) = senders(web, "news-in").values()
    assert len(rx.datagrams) == row["played"], "one tap call per RTP packet"
    assert row["lost"] == 0 and row["late"] == 0 and row["duplicates"] == 0 and row["playing"] == 1
    assert row["played"] == row["received"] > 0
    assert oct(record.stat().st_mode & 0o777) == "0o640"
    probe = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_name", "-of", "csv=p=0",
                            str(record)], capture_output=True, text=True, timeout=60)
    assert probe.returncode == 0 and "mpeg2video" in probe.stdout and "mp2" in probe.stdout, probe.stderr
    assert "rtp sender SSRC %s playing" % row["name"] in d.log()
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % web, timeout=5) as r:
        metrics = r.read().decode()
    assert ('chassisd_rtp_sender_played_total{listener="news-in",protocol="rtp",sender="%s"} %d'
            % (row["name"], row["played"])) in metrics


def numbered_ts(path, rtp_packets):
    """A TS without PCRs whose every 188-byte packet carries its number."""
    with open(path, "wb") as f:
        for i in range(rtp_packets * 7):
            f.write(bytes([0x47, 0x01, 0x00, 0x10 | (i & 0x0f)]) + struct.pack(">I", i) + bytes(180))
    return path


def recorded_numbers(data):
    assert len(data) % 188 == 0
    return [struct.unpack(">I", data[i + 4:i + 8])[0] for i in range(0, len(data), 188)]


def test_a_chassisd_sender_through_netsim_counters_match_and_the_recording_is_what_arrived(start_daemon,
                                                                                           tmp_path):
    """chassisd's rtp stream -> its rtp listener with netsim { loss
    duplicate reorder seed }: the receiver's lost, duplicate and reorder
    counters match the simulator's; the recording is the sent TS packets in
    order, less whole RTP packets, never one twice."""
    total = 1500
    src = numbered_ts(tmp_path / "numbered.ts", total)
    port, web = even_port(), free_port()
    record = tmp_path / "rec.ts"
    netsim = "  netsim { loss = 0.05 duplicate = 0.05 reorder = 4 seed = 7 }"
    config = ('stream "news" {\n  protocol = "rtp"\n  destination = {"127.0.0.1:%d"}\n'
              '  source { file = "%s" }\n  rate = 4000000\n  rtp { pace = "rate" }\n}\n' % (port, src) +
              rtp_listener("news-in", port, record, 'jitter-buffer = 500  reorder-packets = 512', netsim) +
              status_listener(web))
    start_daemon(config)
    wait_until(lambda: stream_status(web, "news-in")["module"]["netsim"][0]["in"] >= total, timeout=30)
    time.sleep(1.0)         # the window's tail, then the reorder buffer's
    status = stream_status(web, "news-in")["module"]
    ns = status["netsim"][0]
    (row,) = senders(web, "news-in").values()
    numbers = recorded_numbers(record.read_bytes())
    assert numbers == sorted(set(numbers)), "in order, none twice"
    rtp_seen = sorted({n // 7 for n in numbers})
    assert all(numbers.count(7 * k) == 1 for k in rtp_seen[:50]), "whole RTP packets"
    assert len(numbers) == 7 * len(rtp_seen)
    head, tail = rtp_seen[0], total - 1 - rtp_seen[-1]
    assert ns["lost"] > 20 and ns["duplicated"] > 20 and ns["reordered"] > 20, ns
    # What was lost before the first and after the last packet that came
    # cannot be seen by any receiver (RFC 3550 A.3 counts between them).
    # Nor what a reordered start dropped while the sender was on probation
    # (RFC 3550 A.1: two packets in sequence make a sender valid).
    assert row["lost"] + head + tail - status["probation"] == ns["lost"], (row, ns, head, tail, status)
    assert row["duplicates"] == ns["duplicated"], (row, ns)
    assert row["late"] == 0 and row["skipped"] == row["lost"], row
    assert total - len(rtp_seen) == ns["lost"] + status["probation"]
    # netsim also counts a reordered duplicate, which the receiver drops as
    # a duplicate before it can be out of order.
    assert ns["reordered"] - ns["duplicated"] <= row["reordered"] <= ns["reordered"], (row, ns)
    assert status["malformed"] == 0



def played_indices(sent, played):
    """The indices into sent (datagrams in send order) of each played
    payload, matched in order: whole packets, each at most once."""
    out, at = [], 0
    for payload in played:
        while at < len(sent) and sent[at][12:] != payload:
            at += 1
        assert at < len(sent), "a played payload that was not sent, or out of order"
        out.append(at)
        at += 1
    return out


@needs_ffmpeg
@needs_gst
@pytest.mark.parametrize("netsim", ["loss = 0.05  duplicate = 0.05  reorder = 4  seed = 7",
                                    "duplicate = 0.05  reorder = 4  seed = 7"], ids=["lossy", "lossless"])
def test_gstreamer_through_netsim_counters_match_and_the_recording_is_what_arrived(start_daemon, tmp_path,
                                                                                   ts_file, netsim):
    """GStreamer (tsparse set-timestamps=true ! rtpmp2tpay) sends to the
    rtp listener, whose netsim drops, duplicates and reorders; GStreamer
    also sends every packet to the test, which so knows what was sent
    (rtpmp2tpay's payloads vary in size). A tap relays each played payload.
    The receiver's counters match netsim's, the recording is the played
    payloads, each a sent one, in order; without loss it is the file."""
    port, web, relay, copy = even_port(), free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    record = tmp_path / "rec.ts"
    sent_rx, relay_rx = Receiver(copy), Receiver(relay)
    d = start_daemon(rtp_listener("news-in", port, record, "jitter-buffer = 500  reorder-packets = 512",
                                  "  netsim { %s }" % netsim) + status_listener(web) +
                     stream_unit("relay", ["127.0.0.1:%d" % relay], 'listener = "news-in"'))
    d.wait_log("waiting for datagrams of listener news-in")
    subprocess.run(["gst-launch-1.0", "-q", "filesrc", "location=%s" % ts_file, "!", "tsparse",
                    "set-timestamps=true", "!", "rtpmp2tpay", "!", "multiudpsink",
                    "clients=127.0.0.1:%d,127.0.0.1:%d" % (port, copy), "sync=true"],
                   check=True, timeout=60, capture_output=True)
    wait_until(lambda: stream_status(web, "news-in")["module"]["netsim"][0]["in"] >= len(sent_rx.datagrams) > 0,
               timeout=5)
    time.sleep(1.0)         # netsim's window, then the reorder buffer
    sent_rx.stop()
    sent = sent_rx.datagrams
    played = list(relay_rx.datagrams)
    relay_rx.stop()
    status = stream_status(web, "news-in")["module"]
    ns = status["netsim"][0]
    (row,) = senders(web, "news-in").values()
    seqs = [struct.unpack(">H", x[2:4])[0] for x in sent]
    assert all((b - a) & 0xffff == 1 for a, b in zip(seqs, seqs[1:])), "GStreamer sends in sequence"
    assert ns["in"] == len(sent) and status["rtp_packets"] == ns["out"] and status["malformed"] == 0, (ns, status)
    # Every datagram netsim let through is counted once.
    assert row["received"] + row["duplicates"] + status["probation"] == ns["out"], (row, status, ns)
    assert record.read_bytes() == b"".join(played) and len(played) == row["played"]
    index = played_indices(sent, played)
    head, tail = index[0], len(sent) - 1 - index[-1]
    inside = index[-1] - index[0] + 1 - len(index)
    assert row["lost"] == inside and row["skipped"] == inside and row["late"] == 0, (row, inside)
    # RFC 3550 A.3 counts loss between the first and the last packet
    # played; what went before, and what probation dropped, it cannot see.
    assert inside + head + tail - status["probation"] == ns["lost"], (row, ns, head, tail, status)
    assert row["duplicates"] == ns["duplicated"], (row, ns)
    assert ns["reordered"] - ns["duplicated"] <= row["reordered"] <= ns["reordered"], (row, ns)
    assert ns["duplicated"] > 5 and ns["reordered"] > 20, ns
    if "loss" in netsim:
        assert ns["lost"] > 5 and row["lost"] > 0, ns
    else:
        assert ns["lost"] == 0 and row["lost"] == 0 and status["probation"] == 0, (row, status)
        assert record.read_bytes() == ts_file.read_bytes()

@pytest.mark.parametrize("host", ["127.0.0.1", "*"])
def test_rtcp_receiver_reports_go_to_the_sender_with_lsr_and_dlsr(start_daemon, tmp_path, host):
    """The test as a sender: RTP to the listener, an SR to its port + 1.
    An RR + SDES CNAME comes back to the SR's source within 0.5-1.5 x 5 s,
    about the right SSRC, with the SR's middle NTP bits as LSR, a DLSR of
    the time since, the highest sequence and no loss; tshark decodes it.
    On "*" (one dual-stack socket) the RR reaches the IPv4 sender too."""
    port, web = even_port(), free_port()
    start_daemon(rtp_listener("news-in", port, tmp_path / "rec.ts", 'cname = "rx@test"')
                 .replace("127.0.0.1:%d" % port, "%s:%d" % (host, port)) + status_listener(web))
    rtp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rtcp.bind(("127.0.0.1", 0))
    rtcp.settimeout(0.1)
    ssrc, ntp = 0x11223344, 0xE1234567_89ABCDEF
    sr = struct.pack(">BBHIIIIII", 0x80, 200, 6, ssrc, ntp >> 32, ntp & 0xffffffff, 1000, 10, 13160)
    sdes_text = b"\x01\x07tx@test\x00\x00\x00"
    sdes = struct.pack(">BBHI", 0x81, 202, (8 + len(sdes_text)) // 4 - 1, ssrc) + sdes_text
    capture = tmp_path / "rtcp.pcap"
    tshark = subprocess.Popen(["tshark", "-i", "lo", "-w", str(capture), "-f", "udp port %d" % (port + 1)],
                              stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "Capturing on" not in line:
            line = tshark.stderr.readline()
            assert line, "tshark did not start"
        got, sr_sent_at, seq = None, None, 100
        deadline = time.monotonic() + 12
        while got is None and time.monotonic() < deadline:
            for _ in range(5):
                rtp.sendto(rtp_packet(seq, seq * 3000, ssrc, b"\x47" + bytes(187)), ("127.0.0.1", port))
                seq += 1
            if sr_sent_at is None:
                rtcp.sendto(sr + sdes, ("127.0.0.1", port + 1))
                sr_sent_at = time.monotonic()
            try:
                got = rtcp.recv(1500)
                got_at = time.monotonic()
            except socket.timeout:
                pass
        assert got is not None, "no RR within 12 s"
        time.sleep(0.5)
    finally:
        tshark.terminate()
        tshark.wait(10)
    assert got[0] >> 6 == 2 and got[0] & 0x1f == 1 and got[1] == 201, got[:4]
    (rr_len,) = struct.unpack(">H", got[2:4])
    reporter, source, lost_word, highest, jitter, lsr, dlsr = struct.unpack(">IIIIIII", got[4:32])
    assert (rr_len + 1) * 4 == 32 and source == ssrc
    assert lost_word == 0 and highest <= seq - 1 and highest >= 104
    assert lsr == (ntp >> 16) & 0xffffffff
    assert abs(dlsr / 65536 - (got_at - sr_sent_at)) < 0.3, (dlsr / 65536, got_at - sr_sent_at)
    assert got[33] == 202 and b"rx@test" in got[32:], "SDES CNAME after the RR"
    assert stream_status(web, "news-in")["module"]["receiver_ssrc"] == reporter
    fields = subprocess.run(["tshark", "-r", str(capture), "-d", "udp.port==%d,rtcp" % (port + 1), "-Y",
                             "rtcp.pt==201", "-T", "fields", "-e", "rtcp.senderssrc", "-e", "rtcp.ssrc.identifier",
                             "-e", "rtcp.ssrc.lsr", "-e", "rtcp.sdes.text"],
                            capture_output=True, text=True, timeout=60).stdout.split("\n")[0].split("\t")
    assert int(fields[0], 16) == reporter, fields
    assert [int(x, 16) for x in fields[1].split(",")] == [ssrc, reporter], "the report block, the SDES chunk"
    assert int(fields[2]) == lsr and fields[3] == "rx@test", fields


def test_malformed_rtp_is_counted_and_a_concurrent_sender_records_intact(start_daemon, tmp_path):
    """A corpus of malformed packets (short, version 1 and 3, padding past
    the payload or 0, CSRCs and extension past the end) and thousands of
    random mutations of valid packets of another SSRC, sent between the
    packets of a valid sender that uses CSRCs, an extension and padding:
    the daemon lives, the valid sender's payload is recorded whole and in
    order, and the drops are counted by kind."""
    port, web = even_port(), free_port()
    record = tmp_path / "rec.bin"
    start_daemon(rtp_listener("news-in", port, record, "jitter-buffer = 200") + status_listener(web))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    good_ssrc, other_ssrc = 0xC0FFEE01, 0xBAD0BAD0
    valid = rtp_packet(7, 0, other_ssrc, bytes(100))
    corpus = [b"", b"\x80", valid[:11], bytes([0x40]) + valid[1:], bytes([0xC0]) + valid[1:],
              rtp_packet(7, 0, other_ssrc, bytes(10), padding=4)[:-1] + b"\x30",     # padding 48 > 10 + 1
              rtp_packet(7, 0, other_ssrc, bytes(10), padding=4)[:-1] + b"\x00",     # padding 0
              bytes([0x8f]) + valid[1:12] + bytes(20),                                 # 15 CSRCs, 20 bytes
              bytes([0x90]) + valid[1:12] + b"\xbe\xde\x00\x10" + bytes(8)]            # extension of 64 bytes
    expected = {"malformed_short": 5, "malformed_version": 2, "malformed_padding": 2}
    rng = random.Random(19)
    payloads, seq = [], 0
    sent_bad = 0
    for round_ in range(300):
        payload = struct.pack(">I", round_) + bytes(rng.randrange(256) for _ in range(60))
        payloads.append(payload)
        s.sendto(rtp_packet(1000 + round_, round_ * 90, good_ssrc, payload, csrcs=(1, 2),
                            extension=b"\x10\xab\x00\x00", padding=1 + round_ % 7), ("127.0.0.1", port))
        if round_ < 3:
            time.sleep(0.01)
            continue        # the valid sender plays first
        for _ in range(10):
            base = bytearray(rtp_packet(seq, seq * 90, other_ssrc, os.urandom(rng.randrange(0, 200)),
                                        csrcs=[1] * rng.randrange(0, 3),
                                        extension=bytes(4 * rng.randrange(0, 3)) if rng.random() < 0.5 else None,
                                        padding=rng.randrange(0, 5)))
            seq += 1
            for _ in range(rng.randrange(1, 4)):
                base[rng.randrange(len(base))] = rng.randrange(256)
            if rng.random() < 0.3:
                base = base[:rng.randrange(len(base) + 1)]
            s.sendto(bytes(base), ("127.0.0.1", port))
            sent_bad += 1
        if round_ % 30 == 0:
            for bad in corpus:
                s.sendto(bad, ("127.0.0.1", port))
        time.sleep(0.002)
    wait_until(lambda: stream_status(web, "news-in")["module"]["rtp_packets"] >= 300 + sent_bad + 10 * len(corpus),
               timeout=10)
    time.sleep(0.5)
    module = stream_status(web, "news-in")["module"]
    assert record.read_bytes() == b"".join(payloads)
    rows = senders(web, "news-in")
    good = rows["%08x" % good_ssrc]
    assert good["playing"] == 1 and good["played"] == 300 and good["lost"] == 0
    assert rows["%08x" % other_ssrc]["malformed"] > 100, "its readable-SSRC drops are its own"
    for key, per_round in expected.items():
        assert module[key] >= 10 * per_round, (key, module)
    assert module["malformed"] == module["malformed_short"] + module["malformed_version"] + module["malformed_padding"]
    assert module["malformed"] > 10 * len(corpus) + 100, module


def test_a_new_sender_takes_over_when_the_old_one_goes_quiet_logged_once(start_daemon, tmp_path):
    """SSRC A plays (its sequence wrapping); B starting while A still sends
    is counted but not played; once A has been quiet for sender-switch, B
    plays from its next packet on, logged once at info. A's row stays."""
    port, web = even_port(), free_port()
    record = tmp_path / "rec.bin"
    d = start_daemon(rtp_listener("news-in", port, record, "sender-switch = 300") + status_listener(web))
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    a, b = 0xAAAA0001, 0xBBBB0002
    for i in range(50):
        s.sendto(rtp_packet(65500 + i, i * 900, a, b"A%03d" % i), ("127.0.0.1", port))    # wraps
        if i >= 40:
            s.sendto(rtp_packet(9000 + i, i * 900, b, b"x%03d" % i), ("127.0.0.1", port))
        time.sleep(0.005)
    time.sleep(0.4)
    for i in range(50):
        s.sendto(rtp_packet(9050 + i, 777 + i * 900, b, b"B%03d" % i), ("127.0.0.1", port))
        time.sleep(0.005)
    wait_until(lambda: senders(web, "news-in").get("%08x" % b, {}).get("played") == 50, timeout=5)
    rows = senders(web, "news-in")
    assert record.read_bytes() == b"".join(b"A%03d" % i for i in range(50)) + b"".join(b"B%03d" % i for i in range(50))
    assert rows["%08x" % a]["played"] == 50 and rows["%08x" % a]["playing"] == 0
    assert rows["%08x" % b]["lost"] == 0 and rows["%08x" % b]["playing"] == 1
    assert rows["%08x" % b]["received"] == 60 and stream_status(web, "news-in")["module"]["not_played"] == 10
    assert stream_status(web, "news-in")["module"]["sender_switches"] == 2
    assert d.log().count("rtp sender changed: SSRC %08x now, was %08x" % (b, a)) == 1


def test_a_multicast_group_sender_to_receiver_with_rtcp_both_ways(start_daemon, tmp_path, netns):
    """In a namespace of its own: chassisd's rtp stream to a group and an
    rtp multicast listener on the same group, both pinned to lo, TTL 1.
    The recording is every TS packet in order; the sender's SRs reach the
    receiver on the group's port + 1, and RRs go out."""
    total = 700
    src = numbered_ts(tmp_path / "numbered.ts", total)
    record = tmp_path / "rec.ts"
    group, port = "239.255.1.9", 5004
    d = start_daemon('stream "news" {\n  protocol = "rtp"\n  destination = {"%s:%d"}\n  interface = "127.0.0.1"\n'
                     '  ttl = 1\n  source { file = "%s" }\n  rate = 1000000\n  rtp { pace = "rate" }\n}\n'
                     % (group, port, src) +
                     rtp_listener("news-in", port, record, transport="multicast",
                                  extra='  interface = "127.0.0.1"').replace("127.0.0.1:%d" % port,
                                                                            "%s:%d" % (group, port)),
                     wrapper=netns.prefix())
    wait_until(lambda: record.exists() and record.stat().st_size >= total * 7 * 188, timeout=20)
    assert recorded_numbers(record.read_bytes()) == list(range(total * 7))

    def counters():
        line = [l for l in d.status_dump().splitlines() if "datagrams=" in l and "listener=news-in" in l][-1]
        return dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
    wait_until(lambda: int(counters().get("rtcp_out", 0)) >= 1 and int(counters()["rtcp_in"]) >= 1,
               timeout=12, interval=1)
    c = counters()
    assert c.get("malformed") == "0" and c.get("sender_switches") == "1" and c.get("rtcp_send_errors") == "0", c


def test_a_reload_keeps_an_unchanged_receiver_and_restarts_a_changed_one_on_the_same_ports(start_daemon,
                                                                                           tmp_path):
    """Unchanged: the same state goes on (the sender is not on probation
    again). Changed (jitter-buffer): a new receiver binds the same RTP and
    RTCP ports while the old one still has them, and records on."""
    port, web = even_port(), free_port()
    record = tmp_path / "rec.bin"
    config = rtp_listener("news-in", port, record) + status_listener(web)
    d = start_daemon(config)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(first, count):
        for i in range(first, first + count):
            s.sendto(rtp_packet(i, i * 90, 0x5151, b"%04d" % i), ("127.0.0.1", port))
            time.sleep(0.002)
    send(0, 10)
    d.reload(config + "# unchanged\n")
    send(10, 10)
    wait_until(lambda: senders(web, "news-in")["00005151"]["played"] == 20, timeout=5)
    d.reload(config.replace("rtp {", "rtp { jitter-buffer = 80"))
    send(20, 10)
    wait_until(lambda: record.stat().st_size >= 30 * 4, timeout=5)
    assert record.read_bytes() == b"".join(b"%04d" % i for i in range(30))
    assert senders(web, "news-in")["00005151"]["played"] == 10, "a new receiver"
    assert "failed to start" not in d.log()


def test_an_http_stream_route_on_an_rtp_listener_gets_the_ordered_payload(start_daemon, tmp_path):
    """The gateway on an rtp listener: an HTTP client of a `stream` route
    gets the RTP payload (TS packets, no RTP headers), in order, whole,
    although netsim reorders what the listener receives."""
    total = 3000
    src = numbered_ts(tmp_path / "numbered.ts", total)
    port, web = even_port(), free_port()
    config = ('stream "news" {\n  protocol = "rtp"\n  destination = {"127.0.0.1:%d"}\n'
              '  source { file = "%s" }\n  rate = 2000000\n  rtp { pace = "rate" }\n}\n' % (port, src) +
              rtp_listener("news-in", port, tmp_path / "rec.ts", 'jitter-buffer = 300',
                           "  netsim { reorder = 4 seed = 3 }") +
              'listener "web" {\n  protocol = "http"\n  address = "127.0.0.1:%d"\n'
              '  http { route "/live/news" { handler = "stream"  listener = "news-in" }\n'
              '         route "/status" { handler = "status" } }\n}\n' % web)
    start_daemon(config)
    s = socket.create_connection(("127.0.0.1", web), timeout=10)
    s.sendall(b"GET /live/news HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    deadline = time.monotonic() + 15
    while b"\r\n\r\n" not in data or len(data.split(b"\r\n\r\n", 1)[1]) < 300 * 1316:
        assert time.monotonic() < deadline, len(data)
        chunk = s.recv(65536)
        assert chunk, "closed early"
        data += chunk
    s.close()
    head, body = data.split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200") and b"video/mp2t" in head.lower(), head
    body = body[:len(body) - len(body) % 188]
    numbers = recorded_numbers(body)
    assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), "in order, nothing missing"
    assert numbers[0] % 7 == 0, "starts at an RTP packet's first TS packet"
    assert stream_status(web, "news-in")["module"]["netsim"][0]["reordered"] > 0
