"""srm: reliable multicast of a file to receivers behind simulated loss,
in a network namespace the test makes (multicast on its lo)."""

import hashlib
import json
import os
import subprocess
import sys
import random
import signal
import socket
import struct
import time

import pytest

from conftest import free_port, wait_until
from test_stream import Namespace, have_netns, status_listener, stream_status

GROUP, PORT = "239.255.2.2", 7400


@pytest.fixture
def netns():
    if not have_netns():
        pytest.skip("needs root and ip")
    ns = Namespace("chassisd-srm%d" % os.getpid())
    yield ns
    ns.delete()


V4 = ("%s:%d" % (GROUP, PORT), "127.0.0.1")


def sender(path, session=17, rate=80000000, extra="", where=V4):
    """where: the group as an address and the interface."""
    return ('stream "tx" {\n  protocol = "srm"  destination = {"%s"}  interface = "%s"  ttl = 1\n'
            '  packet-size = 1400  rate = %d\n  source { file = "%s" }\n  srm { session = %d %s }\n}\n'
            % (*where, rate, path, session, extra))


# Receivers get a socket buffer for half a second of an 80 Mbit/s sender:
# with the kernel's default (about 20 ms of it) a receiver the machine
# starves for a moment drops datagrams no netsim asked for, and NAKs.
RECEIVE_BUFFER = "receive-buffer = 8388608"


def receiver(name, directory, netsim="", extra="", where=V4):
    return ('listener "%s" {\n  protocol = "srm"  transport = "multicast"  address = "%s"\n'
            '  interface = "%s"  %s\n  srm { directory = "%s" %s }\n  %s\n}\n'
            % (name, *where, RECEIVE_BUFFER, directory, extra, netsim))


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def module(web, name):
    return stream_status(web, name)["module"]


def make_dirs(tmp_path, names):
    dirs = []
    for n in names:
        d = tmp_path / n
        d.mkdir()
        dirs.append(d)
    return dirs


def status(netns, web, name):
    """The status page is on the namespace's loopback: asked from inside it."""
    out = subprocess.run([*netns.prefix(), "curl", "-s", "--max-time", "5", "http://127.0.0.1:%d/status" % web],
                         capture_output=True, text=True, timeout=10).stdout
    return next(l for l in json.loads(out)["listeners"] if l["name"] == name)["module"]


def web(port):
    return status_listener(port)


def dir_sender(directory, session=17, rate=80000000, extra=""):
    """A stream that sends every file of a directory, each with its name."""
    return ('stream "tx" {\n  protocol = "srm"  destination = {"%s:%d"}  interface = "127.0.0.1"  ttl = 1\n'
            '  packet-size = 1400  rate = %d\n  srm { session = %d  directory = "%s" %s }\n}\n'
            % (GROUP, PORT, rate, session, directory, extra))


def command_receiver(name, argv, netsim="", extra=""):
    """A listener that pipes each object to a program instead."""
    return ('listener "%s" {\n  protocol = "srm"  transport = "multicast"  address = "%s:%d"\n'
            '  interface = "127.0.0.1"  %s\n  srm { command = {%s} %s }\n  %s\n}\n'
            % (name, GROUP, PORT, RECEIVE_BUFFER, ", ".join('"%s"' % a for a in argv), extra, netsim))


class Run:
    """A sender daemon and one receiver daemon per directory, each with a
    status page, all in the test's namespace. tx: the sender's config,
    instead of one sending the file `source`."""

    def __init__(self, start_daemon, tmp_path, netns, netsims, source, rate=80000000, rx_extra="", tx_extra="",
                 tx=None, where=V4):
        self.netns = netns
        self.dirs = make_dirs(tmp_path, ["r%d" % i for i in range(len(netsims))])
        self.webs = [free_port() for _ in range(len(netsims) + 1)]
        self.receivers = []
        for i, (d, ns) in enumerate(zip(self.dirs, netsims)):
            self.receivers.append(start_daemon(receiver("r%d" % i, d, ns, rx_extra, where) + web(self.webs[i + 1]),
                                               workdir=tmp_path / ("d%d" % i), wrapper=netns.prefix()))
        self.tx = start_daemon((tx or sender(source, rate=rate, extra=tx_extra, where=where)) + web(self.webs[0]),
                               workdir=tmp_path / "tx", wrapper=netns.prefix())

    def rx_status(self, i):
        return status(self.netns, self.webs[i + 1], "r%d" % i)

    def tx_status(self):
        return status(self.netns, self.webs[0], "tx")

    def wait_delivered(self, timeout=60):
        for i, d in enumerate(self.receivers):
            d.wait_log(r"delivered: session 17 object 1 listener=r%d" % i, timeout)


def random_file(path, size):
    path.write_bytes(random.Random(size).randbytes(size))
    return path


def netsim(loss, seed):
    return "netsim { loss = %s duplicate = 0.01 reorder = 8 seed = %d }" % (loss, seed)


@pytest.mark.parametrize("mib", [10, 50])
def test_three_receivers_behind_loss_get_the_file_with_few_repairs(start_daemon, tmp_path, netns, mib):
    src = random_file(tmp_path / "image.bin", mib << 20)
    started = time.monotonic()
    run = Run(start_daemon, tmp_path, netns, [netsim(0.1, s) for s in (1, 2, 3)], src)
    run.wait_delivered(timeout=60)
    print("%d MiB to three receivers in %.1f s" % (mib, time.monotonic() - started))
    for d in run.dirs:
        assert sha256(d / "object-17-1") == sha256(src)
        assert sorted(os.listdir(d)) == ["object-17-1"]
    tx = run.tx_status()
    rx = [run.rx_status(i) for i in range(3)]
    data = tx["sequenced"]
    # What the loss requires: each datagram some receiver lost, once, and
    # again for each time its repair was lost too (loss measured per
    # receiver from its netsim counters; one repair serves them all).
    p = [r["netsim"][0]["lost"] / r["netsim"][0]["in"] for r in rx]
    none_lost = 1.0
    for q in p:
        none_lost *= 1 - q
    required = data * (1 - none_lost) / (1 - max(p))
    print("data=%d repaired=%d required=%.0f loss=%r" % (data, tx["repaired"], required, p))
    assert 0 < tx["repaired"] <= 1.5 * required
    assert all(r["delivered_objects"] == 1 and r["unrecoverable"] == 0 and r["bad_crc"] == 0 for r in rx)
    assert sum(r["naks_suppressed"] for r in rx) > 0
    assert tx["receivers_heard"] == 3  # told apart by the ids in their NAKs
    # A row per followed session, with its share of the counters.
    for r in rx:
        row = r["session"][0]
        assert len(r["session"]) == 1 and row["name"] == "17"
        assert row["delivered_objects"] == 1 and row["naks_sent"] == r["naks_sent"] > 0
        assert row["datagrams"] >= data and row["lost"] == r["lost"] and row["rtt_us"] == r["rtt_us"]
    # Each measured its round trip from its NAKs to their repairs.
    assert all(0 < r["rtt_us"] < 1000000 for r in rx), [r["rtt_us"] for r in rx]


def test_loss_on_one_receiver_only_the_others_deliver_each_byte_once(start_daemon, tmp_path, netns):
    src = random_file(tmp_path / "image.bin", 4 << 20)
    run = Run(start_daemon, tmp_path, netns, ["netsim { loss = 0.1 seed = 9 }", "", ""], src)
    run.wait_delivered()
    tx = run.tx_status()
    assert tx["repaired"] > 0
    for i, d in enumerate(run.dirs):
        assert sha256(d / "object-17-1") == sha256(src)
        assert sorted(os.listdir(d)) == ["object-17-1"]
        r = run.rx_status(i)
        assert r["delivered_objects"] == 1
        if i > 0:
            assert r["naks_sent"] == 0
            # They hear every repair, and drop it as a duplicate.
            assert r["duplicates"] >= tx["repaired"] * 0.9


def test_a_sender_killed_mid_transfer_leaves_no_file_under_the_final_name(start_daemon, tmp_path, netns):
    src = random_file(tmp_path / "image.bin", 10 << 20)
    run = Run(start_daemon, tmp_path, netns, [netsim(0.05, s) for s in (4, 5, 6)], src, rate=16000000,
              rx_extra="timeout = 2")
    wait_until(lambda: all(any(n.endswith(".part") for n in os.listdir(d)) for d in run.dirs), 10)
    time.sleep(1)
    run.tx.signal(signal.SIGKILL)
    for i, d in enumerate(run.receivers):
        d.wait_log(r"incomplete \(the sender went quiet\): session 17 object 1 listener=r%d" % i, 15)
    for i, d in enumerate(run.dirs):
        assert os.listdir(d) == []
        assert run.rx_status(i)["incomplete"] == 1


FLOOD = r"""
import os, random, socket, struct, sys, time
group, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
rng = random.Random(7)
sent, deadline = 0, time.monotonic() + 60
while sent < n and time.monotonic() < deadline:
    kind = sent % 4
    if kind == 0:
        d = rng.randbytes(rng.randrange(0, 200))
    else:
        # a plausible header (magic, version, a type) with bytes mutated
        d = bytearray(struct.pack(">HB", 0x4353, 1) + rng.randbytes(29 + rng.randrange(0, 64)))
        d[3] = rng.randrange(0, 8)
        d = bytes(d)
    try:
        s.sendto(d, (group, port))
        sent += 1
    except BlockingIOError:
        time.sleep(0.001)
    if sent % 500 == 0:
        time.sleep(0.002)
print(sent)
"""


def test_random_datagrams_are_counted_and_a_valid_session_still_delivers(start_daemon, tmp_path, netns):
    src = random_file(tmp_path / "image.bin", 4 << 20)
    run = Run(start_daemon, tmp_path, netns, [""], src, rate=8000000)
    flood = subprocess.run([*netns.prefix(), sys.executable if os.path.exists(sys.executable) else "/usr/bin/python3",
                            "-c", FLOOD, GROUP, str(PORT), "100000"], capture_output=True, text=True, timeout=90)
    assert int(flood.stdout) == 100000, flood.stderr
    run.wait_delivered()
    assert sha256(run.dirs[0] / "object-17-1") == sha256(src)
    r = run.rx_status(0)
    # The kernel may drop some of a flood on a full socket buffer; what
    # reached the listener and did not come from the sender was counted bad.
    assert r["bad"] > 80000
    assert r["datagrams"] - r["bad"] <= run.tx_status()["datagrams"]
    assert r["delivered_objects"] == 1 and r["bad_crc"] == 0


# ---- Kamaelia wire mode: the test's own implementation of kamaelia.md 7.2 ----

SYNC = b"X" * 24


def kamaelia_escape(data):
    return data.replace(b"%", b"%25").replace(b"X", b"%58")


def kamaelia_unescape(data):
    out, i = bytearray(), 0
    while i < len(data):
        if data[i:i + 3] == b"%58":
            out += b"X"
            i += 3
        elif data[i:i + 3] == b"%25":
            out += b"%"
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


def kamaelia_encode(n, payload):
    return SYNC + kamaelia_escape(b"%d %d\n" % (n, len(payload)) + payload)


def kamaelia_decode(stream):
    """Every frame of a byte stream: (n, payload); a length that does not
    match is an error here (the stream under test is clean)."""
    frames = []
    for chunk in stream.split(SYNC)[1:]:
        frame = kamaelia_unescape(chunk)
        header, _, body = frame.partition(b"\n")
        n, length = (int(x) for x in header.split())
        assert length == len(body), (n, length, len(body))
        frames.append((n, body))
    return frames


def test_the_worked_example_of_7_2_is_what_the_test_encodes():
    expected = bytes.fromhex("58" * 24 + "31 20 38 0a 68 65 6c 6c 6f 20 25 35 38 25 32 35".replace(" ", ""))
    assert kamaelia_encode(1, b"hello X%") == expected
    assert kamaelia_decode(expected) == [(1, b"hello X%")]


def kamaelia_payload(size, seed):
    rng = random.Random(seed)
    return bytes(rng.choice(b"X%XabX%\x00\xff") if rng.random() < 0.3 else rng.randrange(256) for _ in range(size))


CAPTURE = r"""
import socket, sys, time
group, port, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
s.bind((group, port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
s.settimeout(2)
print("ready", flush=True)
sizes, data = [], []
try:
    while True:
        d = s.recv(70000)
        data.append(d)
        sizes.append(len(d))
        s.settimeout(1.5)
except socket.timeout:
    pass
open(out, "wb").write(b"".join(data))
print(max(sizes) if sizes else 0, len(sizes))
"""


def test_kamaelia_wire_chassisd_sends_what_7_2_decodes(start_daemon, tmp_path, netns):
    payload = kamaelia_payload(200000, 1)
    src = tmp_path / "k.bin"
    src.write_bytes(payload)
    out = tmp_path / "captured"
    cap = subprocess.Popen([*netns.prefix(), "/usr/bin/python3", "-c", CAPTURE, GROUP, str(PORT), str(out)],
                           stdout=subprocess.PIPE, text=True)
    assert cap.stdout.readline().strip() == "ready"
    start_daemon(sender(src, rate=8000000, extra='wire = "kamaelia"').replace("packet-size = 1400",
                                                                           "packet-size = 1000"),
                 wrapper=netns.prefix())
    biggest, count = (int(x) for x in cap.communicate(timeout=60)[0].split())
    assert biggest <= 1000 and count > 200
    frames = kamaelia_decode(out.read_bytes())
    assert [n for n, _ in frames] == list(range(1, len(frames) + 1))
    assert all(len(body) == 1000 for _, body in frames[:-1])
    assert b"".join(body for _, body in frames) == payload


SEND = r"""
import random, socket, sys, time
group, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
stream = open(path, "rb").read()
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
rng = random.Random(3)
i = 0
while i < len(stream):
    n = rng.randrange(1, 1001)          # cuts anywhere, inside a sync too
    s.sendto(stream[i:i + n], (group, port))
    i += n
    time.sleep(0.0005)
"""


def test_kamaelia_wire_chassisd_receives_what_7_2_encodes(start_daemon, tmp_path, netns):
    frames = [b"hello X%"] + [kamaelia_payload(random.Random(n).randrange(0, 3000), n) for n in range(2, 202)]
    encoded = [kamaelia_encode(n, p) for n, p in enumerate(frames, 1)]
    # A frame whose length field does not match its body is dropped.
    encoded.insert(100, SYNC + kamaelia_escape(b"500 5\nhello X%"))
    stream = b"".join(encoded)
    (tmp_path / "stream").write_bytes(stream)
    d = make_dirs(tmp_path, ["in"])[0]
    webp = free_port()
    start_daemon(receiver("k", d, extra='wire = "kamaelia"') + web(webp), wrapper=netns.prefix())
    subprocess.run([*netns.prefix(), "/usr/bin/python3", "-c", SEND, GROUP, str(PORT), str(tmp_path / "stream")],
                   check=True, timeout=60)
    want = b"".join(frames)
    # The last frame has no sync after it: it comes out once the stream
    # has been quiet a moment, not never (Kamaelia lost its last 29).
    wait_until(lambda: (d / "kamaelia-stream").stat().st_size >= len(want), 10)
    assert (d / "kamaelia-stream").read_bytes() == want
    st = status(netns, webp, "k")
    assert st["frames"] == len(frames) and st["frames_bad"] == 1


def download_route(netns, webp, route, path, send, size, timeout):
    """curl on a stream route while send() makes the traffic: what it got
    once size bytes are in (and half a second more: nothing may follow)."""
    curl = subprocess.Popen([*netns.prefix(), "curl", "-s", "-N", "-o", str(path), "--max-time", "60",
                             "http://127.0.0.1:%d%s" % (webp, route)])
    try:
        wait_until(lambda: next(r for r in status(netns, webp, "web")["route"] if r["name"] == route)["clients"] == 1,
                   timeout=10)
        send()
        wait_until(lambda: path.exists() and path.stat().st_size >= size, timeout=timeout)
        time.sleep(0.5)
    finally:
        curl.terminate()
        curl.wait(timeout=10)
    return path.read_bytes()


def test_kamaelia_wire_live_hands_its_route_each_whole_frame(start_daemon, tmp_path, netns):
    """wire = "kamaelia" with live = true: no file; curl on the listener's
    stream route gets every complete frame's data, in order, the bad one
    left out."""
    frames = [b"hello X%"] + [kamaelia_payload(random.Random(n).randrange(0, 3000), n) for n in range(2, 102)]
    encoded = [kamaelia_encode(n, p) for n, p in enumerate(frames, 1)]
    encoded.insert(50, SYNC + kamaelia_escape(b"500 5\nhello X%"))
    (tmp_path / "stream").write_bytes(b"".join(encoded))
    want = b"".join(frames)
    webp = free_port()
    start_daemon('listener "k" {\n  protocol = "srm"  transport = "multicast"  address = "%s:%d"\n'
                 '  interface = "127.0.0.1"  %s\n  srm { wire = "kamaelia"  live = true }\n}\n'
                 'listener "web" {\n  protocol = "http"  address = "127.0.0.1:%d"\n'
                 '  http { access-log = false  route "/status" { handler = "status" }\n'
                 '         route "/k" { handler = "stream"  listener = "k" } }\n}\n'
                 % (GROUP, PORT, RECEIVE_BUFFER, webp), wrapper=netns.prefix())
    got = download_route(netns, webp, "/k", tmp_path / "got.bin",
                         lambda: subprocess.run([*netns.prefix(), "/usr/bin/python3", "-c", SEND, GROUP, str(PORT),
                                                 str(tmp_path / "stream")], check=True, timeout=60), len(want), 10)
    assert got == want
    st = status(netns, webp, "k")
    assert st["frames"] == len(frames) and st["frames_bad"] == 1 and st["live_bytes"] == len(want)


def test_what_left_the_window_is_gone_and_the_object_is_not_delivered(start_daemon, tmp_path, netns):
    """A window of 16 datagrams at 30% loss: the NAKs come too late for
    some, the sender says GONE, the receiver logs and counts the loss and
    leaves no file, temporary or final."""
    src = random_file(tmp_path / "image.bin", 2 << 20)
    run = Run(start_daemon, tmp_path, netns, ["netsim { loss = 0.3 seed = 11 }"], src, rx_extra="nak-backoff = 50",
              tx_extra="window = 16")
    run.receivers[0].wait_log(r"unrecoverable loss: session 17 object 1 listener=r0", 30)
    assert os.listdir(run.dirs[0]) == []
    r = run.rx_status(0)
    assert r["unrecoverable"] == 1 and r["gone"] > 0 and r["delivered_objects"] == 0
    assert run.tx_status()["gone"] > 0


FIRST_SEQUENCE = r"""
import socket, struct, sys
group, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((group, port))
s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
s.settimeout(20)
while True:
    d = s.recv(65536)
    # a DATA (type 1) at offset 0: the object's first datagram
    if d[3] == 1 and struct.unpack(">Q", d[20:28])[0] == 0:
        print(struct.unpack(">I", d[12:16])[0])
        break
"""


def first_sequence(start_daemon, tmp_path, netns, name, src):
    """The sequence of the first DATA a sender puts on the group."""
    watch = subprocess.Popen([*netns.prefix(), "/usr/bin/python3", "-c", FIRST_SEQUENCE, GROUP, str(PORT)],
                             stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    tx = start_daemon(sender(src, rate=8000000), workdir=tmp_path / name, wrapper=netns.prefix())
    out, _ = watch.communicate(timeout=30)
    tx.stop()
    return int(out)


def test_each_sender_starts_at_a_random_sequence(start_daemon, tmp_path, netns):
    src = random_file(tmp_path / "image.bin", 64 << 10)
    first = [first_sequence(start_daemon, tmp_path, netns, "tx%d" % i, src) for i in range(2)]
    assert first[0] != first[1]


def test_a_receiver_started_after_the_transfer_gets_the_file_from_the_window(start_daemon, tmp_path, netns):
    """It hears a heartbeat, starts at its trailing edge and NAKs what the
    sender still keeps: the whole file, repaired."""
    src = random_file(tmp_path / "image.bin", 2 << 20)
    run = Run(start_daemon, tmp_path, netns, [""], src)
    run.wait_delivered()
    late = tmp_path / "late"
    late.mkdir()
    port = free_port()
    rx = start_daemon(receiver("late", late) + web(port), workdir=tmp_path / "dlate", wrapper=netns.prefix())
    rx.wait_log(r"delivered: session 17 object 1 listener=late", 30)
    assert sha256(late / "object-17-1") == sha256(src)
    assert status(netns, port, "late")["naks_sent"] > 0
    assert run.tx_status()["repaired"] >= (2 << 20) // 1400


OFF_PATH_NAKS = r"""
import socket, struct, sys
group, port, source, n = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


if ":" in source:    # v6: out of the group's interface, named last
    s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    index = socket.if_nametoindex(sys.argv[5])
    s.bind((source, 0, 0, index if source.startswith("fe80:") else 0))
    s.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_MULTICAST_IF, index)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((source, 0))
    s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
for i in range(n):
    body = struct.pack(">II", i, i)                     # one range: sequence i
    head = struct.pack(">HBBHHIIIQ", 0x4353, 1, 2, 0, len(body), 17, 0, 0xBAD, 0)
    s.sendto(head + struct.pack(">I", crc32c(head + body)) + body, (group, port))
"""


def test_naks_from_off_the_link_are_dropped_and_counted(start_daemon, tmp_path, netns):
    """ttl 1 on lo: a NAK from 10.9.9.9 (an address of another interface)
    cannot come from a receiver of the group; it is not answered."""
    for cmd in (["ip", "link", "add", "d0", "type", "veth", "peer", "name", "d1"],
                ["ip", "addr", "add", "10.9.9.9/24", "dev", "d0"], ["ip", "link", "set", "d0", "up"]):
        subprocess.run([*netns.prefix(), *cmd], check=True)
    src = random_file(tmp_path / "image.bin", 256 << 10)
    run = Run(start_daemon, tmp_path, netns, [""], src)
    run.wait_delivered()
    subprocess.run([*netns.prefix(), "/usr/bin/python3", "-c", OFF_PATH_NAKS, GROUP, str(PORT), "10.9.9.9", "50"],
                   check=True, timeout=30)
    wait_until(lambda: run.tx_status()["naks_off_path"] == 50, timeout=10)
    tx = run.tx_status()
    assert tx["naks_received"] == 0 and tx["repaired"] == 0 and tx["gone"] == 0


def test_a_live_listener_streams_the_session_in_order_to_curl_behind_loss(start_daemon, tmp_path, netns):
    """live = true: no files; the listener's stream route gets the
    session's bytes in order, each once, however many datagrams were lost
    and repaired on the way: what curl downloads is the file."""
    size = 2 << 20
    src = random_file(tmp_path / "image.bin", size)
    webp = free_port()
    # A repair releases at once what waited behind its gap: the route's
    # client-buffer must hold that (about 1 MiB here under ASan), or the
    # client is dropped as slow.
    start_daemon('listener "live" {\n  protocol = "srm"  transport = "multicast"  address = "%s:%d"\n'
                 '  interface = "127.0.0.1"  %s\n  srm { live = true  session = 17 }\n  netsim { loss = 0.1 seed = 41 }\n}\n'
                 'listener "web" {\n  protocol = "http"  address = "127.0.0.1:%d"\n'
                 '  http { access-log = false  route "/status" { handler = "status" }\n'
                 '         route "/live" { handler = "stream"  listener = "live"  client-buffer = 16777216 } }\n}\n'
                 % (GROUP, PORT, RECEIVE_BUFFER, webp), workdir=tmp_path / "rx", wrapper=netns.prefix())
    got = download_route(netns, webp, "/live", tmp_path / "got.bin",
                         lambda: start_daemon(sender(src, rate=20000000) + web(free_port()), workdir=tmp_path / "tx",
                                              wrapper=netns.prefix()), size, 30)
    assert len(got) == size and hashlib.sha256(got).hexdigest() == sha256(src)
    r = status(netns, webp, "live")
    assert r["live_bytes"] == size and r["live_objects"] == 1 and r["delivered_objects"] == 0
    assert r["naks_sent"] > 0 and r["unrecoverable"] == 0


GROUP6 = "ff12::2:2"  # link-local scope: bound with the interface as its scope


def test_ipv6_group_receivers_behind_loss_and_naks_from_off_the_link(start_daemon, tmp_path, netns):
    """The same protocol on a link-local-scope IPv6 group (a veth in the
    namespace: lo carries no v6 multicast): two receivers at 10% loss get
    the file through NAKs and repairs sent to the group; a NAK from an
    address of another interface (fd99::9) is dropped and counted, as on
    v4, and one from a link-local address of the interface is taken."""
    for cmd in (["ip", "link", "add", "m0", "type", "veth", "peer", "name", "m1"],
                ["ip", "-6", "addr", "add", "fd00::1/64", "dev", "m0", "nodad"],
                ["ip", "-6", "addr", "add", "fe80::99/64", "dev", "m0", "nodad"],
                ["ip", "-6", "addr", "add", "fd99::9/64", "dev", "m1", "nodad"],
                ["ip", "link", "set", "m0", "up"], ["ip", "link", "set", "m1", "up"]):
        subprocess.run([*netns.prefix(), *cmd], check=True)
    src = random_file(tmp_path / "image.bin", 4 << 20)
    run = Run(start_daemon, tmp_path, netns, [netsim(0.1, s) for s in (31, 32)], src, rate=40000000,
              where=("[%s]:%d" % (GROUP6, PORT), "m0"))
    run.wait_delivered(timeout=60)
    for d in run.dirs:
        assert sha256(d / "object-17-1") == sha256(src)
    tx = run.tx_status()
    assert tx["naks_received"] > 0 and tx["repaired"] > 0 and tx["naks_off_path"] == 0
    assert all(run.rx_status(i)["unrecoverable"] == 0 for i in range(2))
    subprocess.run([*netns.prefix(), "/usr/bin/python3", "-c", OFF_PATH_NAKS, GROUP6, str(PORT), "fd99::9", "20",
                    "m0"], check=True, timeout=30)
    wait_until(lambda: run.tx_status()["naks_off_path"] == 20, timeout=10)
    assert run.tx_status()["naks_received"] == tx["naks_received"]
    # A link-local source is on the link when it came in on the interface.
    subprocess.run([*netns.prefix(), "/usr/bin/python3", "-c", OFF_PATH_NAKS, GROUP6, str(PORT), "fe80::99", "20",
                    "m0"], check=True, timeout=30)
    wait_until(lambda: run.tx_status()["naks_received"] == tx["naks_received"] + 20, timeout=10)
    assert run.tx_status()["naks_off_path"] == 20


# ---- a directory, with names; and delivery to a command ----

def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def test_the_test_encoder_writes_what_the_readme_documents():
    """A named END as the README lays it out: version 2, flags NAME|LAST,
    the name after size and CRC, the CRC over header and body."""
    body = struct.pack(">QI", 3, crc32c(b"abc")) + b"a.bin"
    head = struct.pack(">HBBHHIIIQ", 0x4353, 2, 5, 0x0005, len(body), 17, 9, 1, 0)
    assert len(head) == 28 and crc32c(b"123456789") == 0xE3069283
    assert (head + struct.pack(">I", crc32c(head + body)) + body)[:8] == bytes.fromhex("4353020500050011")


def files_of(directory):
    return {p.name: sha256(p) for p in directory.iterdir()}


def test_a_directory_arrives_under_its_names_behind_loss(start_daemon, tmp_path, netns):
    """Three files, one of 5 MiB, each an object with its name: a receiver
    at 5% loss stores each under its name, sha256-identical. A hidden file
    and a subdirectory are not sent (not recursive)."""
    src = tmp_path / "updates"
    src.mkdir()
    random_file(src / "a.bin", 64 << 10)
    random_file(src / "image.bin", 5 << 20)
    (src / "release notes.txt").write_bytes(b"version 2\n" * 100)
    (src / ".partial").write_bytes(b"not yet")
    (src / "sub").mkdir()
    (src / "sub" / "deep.bin").write_bytes(b"not sent")
    run = Run(start_daemon, tmp_path, netns, ["netsim { loss = 0.05 seed = 21 }"], None, tx=dir_sender(src))
    run.receivers[0].wait_log(r'delivered: session 17 object 3 name "release notes.txt" listener=r0', 60)
    got = run.dirs[0]
    assert files_of(got) == {n: sha256(src / n) for n in ("a.bin", "image.bin", "release notes.txt")}
    r = run.rx_status(0)
    assert r["delivered_objects"] == 3 and r["names_refused"] == 0 and r["unrecoverable"] == 0
    assert r["netsim"][0]["lost"] > 0 and r["naks_sent"] > 0
    tx = run.tx_status()
    assert tx["files_sent"] == 3 and tx["files_waiting"] == 0 and tx["files_failed"] == 0
    assert tx["files_over_limit"] == 0 and tx["repaired"] > 0
    run.tx.wait_log(r'end: session 17 object 3 name "release notes.txt" stream=tx', 5)


def test_max_files_sends_the_first_by_name_and_a_reload_sends_what_is_new(start_daemon, tmp_path, netns):
    src = tmp_path / "updates"
    src.mkdir()
    for name in ("c", "a", "b"):
        (src / name).write_bytes(name.encode() * 1000)
    config = dir_sender(src, extra="max-files = 2")
    run = Run(start_daemon, tmp_path, netns, [""], None, tx=config)
    run.receivers[0].wait_log(r'delivered: session 17 object 2 name "b"', 30)
    run.tx.wait_log(r"1 file over max-files \(2\): not sent", 5)
    assert sorted(os.listdir(run.dirs[0])) == ["a", "b"]
    assert run.tx_status()["files_over_limit"] == 1
    # A file that appears later needs a reload: the stream goes on with
    # the same sequence numbers, the next object number, only what is new.
    (src / "a").unlink()
    (src / "0").write_bytes(b"zero")
    run.tx.reload(config + web(run.webs[0]))
    run.receivers[0].wait_log(r'delivered: session 17 object 3 name "0"', 30)
    assert (run.dirs[0] / "0").read_bytes() == b"zero"
    assert sorted(os.listdir(run.dirs[0])) == ["0", "a", "b"]
    assert run.tx_status()["files_sent"] == 3


FORGE = r"""
import socket, struct, sys, time
group, port, session = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])


def crc32c(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def datagram(version, kind, flags, seq, obj, offset, body):
    head = struct.pack(">HBBHHIIIQ", 0x4353, version, kind, flags, len(body), session, seq, obj, offset)
    return head + struct.pack(">I", crc32c(head + body)) + body


s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
names = [b"../evil", b"ok\x01name", b"a" * 300, b"..", b".object-99-9.part", b"good.txt"]
seq = 0x7FFFFFF0
for obj, name in enumerate(names, 1):
    data = b"object %d " % obj + name
    s.sendto(datagram(1, 1, 0, seq, obj, 0, data), (group, port))
    end = struct.pack(">QI", len(data), crc32c(data)) + name
    s.sendto(datagram(2, 5, 0x0004 | (0x0001 if obj == len(names) else 0), seq + 1, obj, 0, end), (group, port))
    seq += 2
    time.sleep(0.05)
"""


SEND_HEX = r"""
import socket, sys, time
group, port = sys.argv[1], int(sys.argv[2])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton("127.0.0.1"))
for i, d in enumerate(sys.argv[3:]):
    s.sendto(bytes.fromhex(d), (group, port))
    if i % 100 == 99:     # a breath, so that the daemon's socket buffer keeps up
        time.sleep(0.001)
"""


def heartbeat(session, trailing, leading):
    body = struct.pack(">II", trailing, leading)
    head = struct.pack(">HBBHHIIIQ", 0x4353, 1, 4, 0, len(body), session, leading, 0, 0)
    return head + struct.pack(">I", crc32c(head + body)) + body


def send_to_group(netns, *datagrams):
    subprocess.run([*netns.prefix(), "/usr/bin/python3", "-c", SEND_HEX, GROUP, str(PORT),
                    *(d.hex() for d in datagrams)], check=True, timeout=30)


def test_a_session_forgotten_between_heartbeats_goes_on_where_it_was(start_daemon, tmp_path, netns):
    """A sender that heartbeats every 2.5 s to a receiver with timeout = 1
    is forgotten and heard again, over and over: each time it goes on
    where it was, so its object is delivered once, not once per return,
    and the listener's counters (duplicates, from the receiver's netsim)
    never go back."""
    src = random_file(tmp_path / "image.bin", 200 << 10)
    run = Run(start_daemon, tmp_path, netns, ["netsim { duplicate = 0.2  seed = 3 }"], src,
              rx_extra="timeout = 1", tx_extra="heartbeat = 2500")
    run.wait_delivered()
    first = run.rx_status(0)
    assert first["duplicates"] > 0
    wait_until(lambda: run.rx_status(0)["sessions_expired"] >= 3, timeout=20)
    r = run.rx_status(0)
    assert r["delivered_objects"] == 1 and r["duplicates"] >= first["duplicates"], r
    assert run.receivers[0].log().count("delivered: session 17") == 1


def test_a_slot_used_again_starts_clean(start_daemon, tmp_path, netns):
    """Object 1 of a sender is refused as too large; the sender dies and
    its session is forgotten; a new sender of the same session sends a
    small object 1, which is delivered, not taken for the refused one."""
    big = random_file(tmp_path / "big.bin", 3 << 20)
    small = random_file(tmp_path / "small.bin", 100 << 10)
    run = Run(start_daemon, tmp_path, netns, [""], big, rx_extra="max-object-size = 1048576  timeout = 1")
    run.receivers[0].wait_log(r"refused: larger than max-object-size: session 17 object 1 listener=r0", 30)
    run.tx.stop()
    wait_until(lambda: run.rx_status(0)["sessions_expired"] == 1, timeout=10)
    start_daemon(sender(small), workdir=tmp_path / "tx2", wrapper=netns.prefix())
    run.wait_delivered()
    assert sha256(run.dirs[0] / "object-17-1") == sha256(small)


def test_an_object_past_max_object_size_is_given_up_and_its_file_removed(start_daemon, tmp_path, netns):
    src = random_file(tmp_path / "image.bin", 3 << 20)
    run = Run(start_daemon, tmp_path, netns, [""], src, rx_extra="max-object-size = 1048576")
    run.receivers[0].wait_log(r"refused: larger than max-object-size: session 17 object 1 listener=r0", 30)
    wait_until(lambda: run.rx_status(0)["objects_too_large"] == 1, timeout=10)
    assert os.listdir(run.dirs[0]) == []
    wait_until(lambda: run.tx_status()["sequenced"] > (3 << 20) // 1400, timeout=30)
    time.sleep(0.5)
    r = run.rx_status(0)
    assert r["delivered_objects"] == 0 and r["unrecoverable"] == 0 and os.listdir(run.dirs[0]) == []


def test_forged_heartbeats_hold_the_session_slots_only_until_the_timeout(start_daemon, tmp_path, netns):
    """Two forged HEARTBEATs, each with a whole window missing, take both
    of `sessions = 2` and draw NAKs; a third session is refused. After
    `timeout` seconds of silence both are forgotten: the NAKs stop and the
    slot takes a new session."""
    d = tmp_path / "in"
    d.mkdir()
    port = free_port()
    start_daemon(receiver("in", d, extra="sessions = 2  timeout = 2  nak-retry = 100") + web(port),
                 wrapper=netns.prefix())
    send_to_group(netns, heartbeat(1, 0, 1000), heartbeat(2, 0, 1000))
    wait_until(lambda: len(status(netns, port, "in").get("session", [])) == 2, timeout=10)
    send_to_group(netns, heartbeat(3, 0, 1000))
    wait_until(lambda: status(netns, port, "in")["sessions_refused"] == 1, timeout=10)
    assert status(netns, port, "in")["naks_sent"] > 0
    wait_until(lambda: status(netns, port, "in")["sessions_expired"] == 2, timeout=10)
    quiet = status(netns, port, "in")
    assert quiet.get("session", []) == [] and quiet["incomplete"] == 0
    time.sleep(1)
    assert status(netns, port, "in")["naks_sent"] == quiet["naks_sent"]
    send_to_group(netns, heartbeat(3, 0, 1000))
    wait_until(lambda: [r["name"] for r in status(netns, port, "in").get("session", [])] == ["3"], timeout=10)


def nak(first, last, session=17):
    body = struct.pack(">II", first, last)
    head = struct.pack(">HBBHHIIIQ", 0x4353, 1, 2, 0, len(body), session, 0, 0xBAD, 0)
    return head + struct.pack(">I", crc32c(head + body)) + body


def test_a_storm_of_naks_for_what_left_the_window_gets_few_gones(start_daemon, tmp_path, netns):
    """2000 NAKs, each for half the sequence space (one of a pair reaches
    back past the window's trailing edge, wherever the random start put
    it), sent as fast as a script can: the sender answers at most one GONE
    per 10 ms and counts the rest as gone_held."""
    src = random_file(tmp_path / "image.bin", 256 << 10)
    run = Run(start_daemon, tmp_path, netns, [""], src)
    run.wait_delivered()
    before = run.tx_status()
    started = time.monotonic()
    for _ in range(4):
        send_to_group(netns, *([nak(0, 0x7FFFFFFE), nak(0x80000000, 0xFFFFFFFE)] * 250))
    took = time.monotonic() - started + 0.5
    time.sleep(0.5)
    tx = run.tx_status()
    gones = tx["gone"] - before["gone"]
    # Some of a burst may be dropped on the socket buffer: most arrive.
    assert tx["naks_received"] - before["naks_received"] > 1000
    assert 1 <= gones <= took / 0.010 + 2, (gones, took)
    assert tx.get("gone_held", 0) >= 400, tx


GROUP_DATAGRAMS = r"""
import socket, sys, time
group, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
rx.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
rx.bind((group, port))
rx.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP, socket.inet_aton(group) + socket.inet_aton("127.0.0.1"))
print("ready", flush=True)
end = time.monotonic() + seconds
rx.settimeout(0.05)
while time.monotonic() < end:
    try:
        print(rx.recv(65536).hex(), flush=True)
    except socket.timeout:
        pass
"""


def capture(netns, seconds):
    """What comes to the group for `seconds`: a Popen whose stdout lines
    are the datagrams in hex, once its first line, "ready", is read."""
    proc = subprocess.Popen([*netns.prefix(), "/usr/bin/python3", "-c", GROUP_DATAGRAMS, GROUP, str(PORT),
                             str(seconds)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    return proc


def captured(proc, kind):
    out, _ = proc.communicate(timeout=30)
    return [d for d in map(bytes.fromhex, out.split()) if len(d) >= 32 and d[3] == kind]


def test_a_flood_of_naks_for_one_gone_range_does_not_crowd_out_another(start_daemon, tmp_path, netns):
    """5000 NAKs for one sequence before the window, every 500th for
    another: the GONEs, at most one per 10 ms, still carry the other's
    (answering only the NAK that finds the 10 ms passed, the other's
    would go out about once in a hundred runs)."""
    src = random_file(tmp_path / "image.bin", 256 << 10)
    run = Run(start_daemon, tmp_path, netns, [""], src)
    run.wait_delivered()
    trailing = struct.unpack(">I", captured(capture(netns, 1), 4)[0][32:36])[0]
    flood, other = (trailing - 1) & 0xFFFFFFFF, (trailing - 1000) & 0xFFFFFFFF
    watch = capture(netns, 2)
    send_to_group(netns, *(nak(other, other) if i % 500 == 250 else nak(flood, flood) for i in range(5000)))
    ranges = [struct.unpack(">II", d[i:i + 8]) for d in captured(watch, 6) for i in range(32, len(d), 8)]
    assert any(first == last == other for first, last in ranges), ranges[:10]
    assert len(ranges) < 5000 // 10


def test_names_that_would_leave_the_directory_are_refused(start_daemon, tmp_path, netns):
    """A sender of the test's own forges names: "../evil", a control byte,
    300 bytes, "..", one of the receiver's temporary names. Each object is
    stored as object-SESSION-N instead, counted and logged; nothing is
    written outside the directory; a good name next to them is taken."""
    d = tmp_path / "in" / "files"
    d.mkdir(parents=True)
    port = free_port()
    rx = start_daemon(receiver("in", d) + web(port), wrapper=netns.prefix())
    subprocess.run([*netns.prefix(), "/usr/bin/python3", "-c", FORGE, GROUP, str(PORT), "99"], check=True,
                   timeout=30)
    rx.wait_log(r'delivered: session 99 object 6 name "good.txt"', 10)
    assert sorted(os.listdir(d)) == ["good.txt"] + ["object-99-%d" % n for n in range(1, 6)]
    assert (d / "object-99-1").read_bytes() == b"object 1 ../evil"
    assert (d / "good.txt").read_bytes() == b"object 6 good.txt"
    assert not (tmp_path / "in" / "evil").exists() and sorted(os.listdir(tmp_path / "in")) == ["files"]
    r = status(netns, port, "in")
    assert r["names_refused"] == 5 and r["delivered_objects"] == 6 and r["bad"] == 0
    log = rx.log()
    assert 'name refused (a slash), stored as object-99-1: session 99 object 1 name "../evil"' in log
    assert r'name refused (a control byte), stored as object-99-2: session 99 object 2 name "ok\x01name"' in log
    assert "name refused (too long), stored as object-99-3" in log
    assert 'name refused (a dot name), stored as object-99-4: session 99 object 4 name ".."' in log
    assert "name refused (a leading dot), stored as object-99-5" in log


def test_a_file_name_a_receiver_would_refuse_is_sent_without_it(start_daemon, tmp_path, netns):
    src = tmp_path / "updates"
    src.mkdir()
    (src / "bad\x01name").write_bytes(b"control")
    (src / "fine").write_bytes(b"fine")
    run = Run(start_daemon, tmp_path, netns, [""], None, tx=dir_sender(src))
    run.receivers[0].wait_log(r'delivered: session 17 object 2 name "fine"', 30)
    assert sorted(os.listdir(run.dirs[0])) == ["fine", "object-17-1"]
    assert (run.dirs[0] / "object-17-1").read_bytes() == b"control"
    assert run.tx_status()["names_unsafe"] == 1 and run.rx_status(0)["names_refused"] == 0
    run.tx.wait_log(r'sent without a name \(a control byte\): session 17 object 1 name "bad\\x01name"', 5)


DELIVER = """#!/bin/sh
# The object on stdin, its name, size and session in the environment.
out="$1"
case "$SRM_NAME" in
fail*) cat >/dev/null; exit 3 ;;
slow*) while [ ! -e "$out/go" ]; do sleep 0.05; done ;;
esac
cat >"$out/.$SRM_NAME" || exit 1
mv "$out/.$SRM_NAME" "$out/$SRM_NAME"
echo "$SRM_SIZE $SRM_SESSION $SRM_OBJECT" >"$out/$SRM_NAME.env"
"""


def deliver_script(tmp_path):
    script = tmp_path / "deliver"
    script.write_text(DELIVER)
    script.chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    spool = tmp_path / "spool"
    spool.mkdir()
    return script, out, spool


def test_objects_are_piped_to_a_command_and_a_failure_is_counted(start_daemon, tmp_path, netns):
    """Each verified object goes to a fresh run of the program, in order,
    on stdin; a run that exits 3 is logged with its status and counted."""
    script, out, spool = deliver_script(tmp_path)
    src = tmp_path / "updates"
    src.mkdir()
    random_file(src / "one.bin", 200 << 10)
    random_file(src / "two.bin", 1 << 20)
    (src / "fail.bin").write_bytes(b"x" * 10000)
    port = free_port()
    rx = start_daemon(command_receiver("cmd", [script, out], "netsim { loss = 0.02 seed = 5 }",
                                       'spool = "%s"' % spool) + web(port),
                      workdir=tmp_path / "rx", wrapper=netns.prefix())
    start_daemon(dir_sender(src) + web(free_port()), workdir=tmp_path / "tx", wrapper=netns.prefix())
    rx.wait_log(r'delivered to the command: session 17 object 3 name "two.bin" listener=cmd', 60)
    assert files_of(out) == {"one.bin": sha256(src / "one.bin"), "two.bin": sha256(src / "two.bin"),
                             "one.bin.env": files_of(out)["one.bin.env"], "two.bin.env": files_of(out)["two.bin.env"]}
    assert (out / "one.bin.env").read_text() == "%d 17 2\n" % (200 << 10)
    assert (out / "two.bin.env").read_text() == "%d 17 3\n" % (1 << 20)
    rx.wait_log(r'the command exited with status 3: session 17 object 1 name "fail.bin" listener=cmd', 5)
    r = status(netns, port, "cmd")
    assert r["command_delivered"] == 2 and r["command_failed"] == 1 and r["command_dropped"] == 0
    assert r["command_waiting"] == 0 and r["delivered_objects"] == 3
    metrics = subprocess.run([*netns.prefix(), "curl", "-s", "--max-time", "5", "http://127.0.0.1:%d/metrics" % port],
                             capture_output=True, text=True, timeout=10).stdout
    assert 'chassisd_srm_command_delivered_total{listener="cmd",protocol="srm"} 2' in metrics
    assert 'chassisd_srm_command_failed_total{listener="cmd",protocol="srm"} 1' in metrics
    assert "# TYPE chassisd_srm_command_waiting gauge" in metrics
    # Spooled to unnamed files: nothing is left behind.
    assert os.listdir(spool) == []


def test_a_full_command_queue_drops_and_counts(start_daemon, tmp_path, netns):
    """One run at a time, one object waiting: the program holds the first
    until told to go, so the third finds the queue full."""
    script, out, spool = deliver_script(tmp_path)
    src = tmp_path / "updates"
    src.mkdir()
    for name in ("slow-1", "x-2", "y-3", "z-4"):
        (src / name).write_bytes(name.encode() * 100)
    port = free_port()
    rx = start_daemon(command_receiver("cmd", [script, out], extra='command-queue = 1  spool = "%s"' % spool) +
                      web(port), workdir=tmp_path / "rx", wrapper=netns.prefix())
    start_daemon(dir_sender(src) + web(free_port()), workdir=tmp_path / "tx", wrapper=netns.prefix())
    rx.wait_log(r'dropped: the command.s queue is full \(command-queue\): session 17 object 4 name "z-4"', 30)
    (out / "go").write_bytes(b"")
    rx.wait_log(r'delivered to the command: session 17 object 2 name "x-2"', 10)
    r = status(netns, port, "cmd")
    assert r["command_dropped"] == 2 and r["command_delivered"] == 2 and r["command_waiting"] == 0
    assert sorted(n for n in os.listdir(out) if not n.endswith(".env")) == ["go", "slow-1", "x-2"]


def test_a_reload_keeps_a_running_delivery(start_daemon, tmp_path, netns):
    """A changed listener is a new one (here following another session);
    the program the old one started goes on and delivers."""
    script, out, spool = deliver_script(tmp_path)
    src = tmp_path / "updates"
    src.mkdir()
    (src / "slow.bin").write_bytes(b"s" * 5000)
    port = free_port()

    def config(session):
        return (command_receiver("cmd", [script, out], extra='spool = "%s"  session = %d' % (spool, session)) +
                web(port))

    rx = start_daemon(config(17), workdir=tmp_path / "rx", wrapper=netns.prefix())
    start_daemon(dir_sender(src) + web(free_port()), workdir=tmp_path / "tx", wrapper=netns.prefix())
    rx.wait_log(r'verified, to the command: session 17 object 1 name "slow.bin"', 30)
    rx.reload(config(18))
    rx.wait_log(r"the listener stopped; 1 object still to deliver to the command go on", 5)
    (out / "go").write_bytes(b"")
    rx.wait_log(r'delivered to the command: session 17 object 1 name "slow.bin"', 10)
    assert (out / "slow.bin").read_bytes() == b"s" * 5000


def test_a_stop_gives_a_running_delivery_shutdown_grace(start_daemon, tmp_path, netns):
    """The daemon waits for the program within shutdown-grace (1 s here,
    where command-timeout is 600 s), then kills it and stops."""
    script, out, spool = deliver_script(tmp_path)
    src = tmp_path / "updates"
    src.mkdir()
    (src / "slow.bin").write_bytes(b"s" * 5000)
    rx = start_daemon("shutdown-grace = 1\n" +
                      command_receiver("cmd", [script, out], extra='spool = "%s"  command-timeout = 600' % spool),
                      workdir=tmp_path / "rx", wrapper=netns.prefix())
    start_daemon(dir_sender(src) + web(free_port()), workdir=tmp_path / "tx", wrapper=netns.prefix())
    rx.wait_log(r'verified, to the command: session 17 object 1 name "slow.bin"', 30)
    assert rx.stop(timeout=30) == 0
    log = rx.log()
    assert 'not delivered to the command (shutdown grace over: killed): session 17 object 1 name "slow.bin"' in log
    assert not (out / "slow.bin").exists()


def check_config(tmp_path, text):
    conf = tmp_path / "srm.conf"
    conf.write_text(text)
    from conftest import BINARY
    r = subprocess.run([BINARY, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and r.stdout == ""
    return conf, r.stderr.splitlines()


def test_config_errors_name_their_file_and_line(tmp_path):
    text = ("listener \"both\" {\n"
            "  protocol = \"srm\"  transport = \"multicast\"  address = \"239.255.2.2:7400\"  interface = \"127.0.0.1\"\n"
            "  srm { directory = \"/var/lib/in\"\n"
            "        command = {\"/bin/cat\"} }\n"
            "}\n"
            "listener \"neither\" {\n"
            "  protocol = \"srm\"  transport = \"multicast\"  address = \"239.255.2.3:7400\"  interface = \"127.0.0.1\"\n"
            "  srm { session = 4 }\n"
            "}\n"
            "listener \"relative\" {\n"
            "  protocol = \"srm\"  transport = \"multicast\"  address = \"239.255.2.4:7400\"  interface = \"127.0.0.1\"\n"
            "  srm {\n"
            "    command = {\"bin/deliver\"}\n"
            "    spool = \"spool\"\n"
            "  }\n"
            "}\n"
            "listener \"relative-dir\" {\n"
            "  protocol = \"srm\"  transport = \"multicast\"  address = \"239.255.2.5:7400\"  interface = \"127.0.0.1\"\n"
            "  srm { directory = \"in\" }\n"
            "}\n"
            "stream \"tx\" {\n"
            "  protocol = \"srm\"  destination = {\"239.255.2.6:7400\"}  interface = \"127.0.0.1\"  rate = 1000000\n"
            "  srm { session = 5\n"
            "        directory = \"updates\" }\n"
            "}\n"
            "stream \"nothing\" {\n"
            "  protocol = \"srm\"  destination = {\"239.255.2.7:7400\"}  interface = \"127.0.0.1\"  rate = 1000000\n"
            "  srm { session = 6 }\n"
            "}\n")
    conf, lines = check_config(tmp_path, text)
    assert lines == [
        '%s:4: listener "both": an srm listener delivers to directory or to command, not both' % conf,
        '%s:8: listener "neither": an srm listener needs directory = "/absolute/path", command = '
        '{"/absolute/program", ...} or live = true' % conf,
        '%s:13: listener "relative": "bin/deliver" is not an absolute path (nothing is looked up in PATH)' % conf,
        '%s:14: listener "relative": spool must be an absolute path, not "spool"' % conf,
        '%s:19: listener "relative-dir": an srm listener needs directory = an absolute path' % conf,
        '%s:24: stream "tx": directory must be an absolute path, not "updates"' % conf,
        '%s:28: stream "nothing": an srm stream needs source { } or srm { directory = "/absolute/path" }' % conf,
    ]
