"""/status for people and for programs: JSON by default, an HTML page for a
browser (Accept: text/html or ?format=html), both without the counters a
unit's transport does not have. The page is checked as a browser shows it:
headless Chromium renders it to a PNG and dumps its DOM."""
import json
import os
import re
import shutil
import socket
import struct
import subprocess
from collections import Counter

import pytest

from conftest import connect, echo_listener, echo_once, free_port, wait_until

SCRIPT_NAME = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium")
FIREFOX_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


def curl(*args):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", "-D", "-", *args], capture_output=True, check=True)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, body


@pytest.fixture
def site(start_daemon, tmp_path):
    """A listener of each transport, a relay with an upstream row (the
    listener whose name is markup), a stream with a source."""
    p = {name: free_port() for name in ("web", "echo", "script", "relay", "in", "out")}
    (tmp_path / "feed.bin").write_bytes(bytes(1316 * 4))
    config = (
        'listener "web" {\n protocol = "http"\n address = "127.0.0.1:%d"\n http { access-log = false\n'
        '  route "/status" { handler = "status" }\n  route "/metrics" { handler = "metrics" }\n }\n}\n' % p["web"] +
        echo_listener("echo", p["echo"]) +
        echo_listener("echo-udp", p["echo"], transport="udp") +
        echo_listener(SCRIPT_NAME, p["script"]) +
        'listener "to-echo" {\n protocol = "relay"\n address = "127.0.0.1:%d"\n'
        ' relay { upstream = {"127.0.0.1:%d"} }\n}\n' % (p["relay"], p["script"]) +
        'listener "in" {\n protocol = "udp"\n transport = "udp"\n address = "127.0.0.1:%d"\n}\n' % p["in"] +
        'stream "tv" {\n protocol = "udp"\n destination = {"127.0.0.1:%d"}\n source { file = "%s" }\n'
        ' rate = 4000000\n}\n' % (p["out"], tmp_path / "feed.bin"))
    d = start_daemon(config)
    with connect(p["echo"]) as s:
        assert echo_once(s)
    with connect(p["relay"]) as s:
        assert echo_once(s)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        u.settimeout(5)
        u.sendto(b"hello\n", ("127.0.0.1", p["echo"]))
        assert u.recv(100) == b"hello\n"
    d.wait_log(r"sent to its end stream=tv")
    return d, p


def status_json(port):
    status, headers, body = curl("http://127.0.0.1:%d/status" % port)
    assert status == 200 and headers["content-type"] == "application/json"
    return {u["name"]: u for u in json.loads(body)["listeners"]}


def test_status_leaves_out_what_a_transport_does_not_have(site):
    d, p = site
    units = status_json(p["web"])
    assert wait_until(lambda: status_json(p["web"])["echo"]["connections"] == 0)
    units = status_json(p["web"])
    tcp, udp, stream = units["echo"], units["echo-udp"], units["tv"]
    assert tcp["counters"]["accepted"] == 1
    assert set(tcp["counters"]) == {"accepted", "denied", "refused_limit", "refused_per_source", "idle_closed",
                                    "accept_paused"}
    assert set(udp["counters"]) == {"datagrams", "replies", "dropped", "denied"}
    assert udp["counters"]["datagrams"] == 1 and udp["counters"]["replies"] == 1
    assert "connections" not in udp
    assert "connections" not in stream and "counters" not in stream
    assert stream["module"]["datagrams"] == 4 and stream["text"]["source_state"] == "ended"

    _, _, metrics = curl("http://127.0.0.1:%d/metrics" % p["web"])
    metrics = metrics.decode()
    assert 'chassisd_listener_accepted_total{listener="echo",protocol="echo"} 1' in metrics
    assert 'chassisd_listener_datagrams_total{listener="echo-udp",protocol="echo"} 1' in metrics
    assert 'chassisd_listener_accepted_total{listener="echo-udp"' not in metrics
    assert 'chassisd_listener_connections{listener="echo-udp"' not in metrics
    assert 'chassisd_listener_datagrams_total{listener="echo",' not in metrics
    assert 'listener="tv"' not in "".join(l for l in metrics.splitlines(True) if l.startswith("chassisd_listener_"))
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=metrics, capture_output=True, text=True)
        assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr


def test_a_browser_gets_an_html_page_and_a_program_json(site):
    d, p = site
    url = "http://127.0.0.1:%d/status" % p["web"]
    pages = [curl("-H", "Accept: text/html", url), curl("-H", "Accept: " + FIREFOX_ACCEPT, url),
             curl(url + "?format=html"), curl("-H", "Accept: application/json", url + "?format=html")]
    for status, headers, body in pages:
        assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
        assert headers["vary"] == "Accept" and headers["cache-control"] == "no-store"
        page = body.decode()
        assert page.startswith("<!DOCTYPE html>") and '<meta name="viewport"' in page
        for name in ("web", "echo", "echo-udp", "to-echo", "in", "tv", "127.0.0.1:%d" % p["script"]):
            assert ">%s<" % name in page, name
        # The name from the config is text, never markup.
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert "<script" not in page
        assert "generation 1" in page and re.search(r"up \d+d \d\dh \d\dm \d\ds", page)
    for args in ((), ("-H", "Accept: */*"), ("-H", "Accept: application/json")):
        status, headers, body = curl(*args, url)
        assert headers["content-type"] == "application/json" and json.loads(body)["server"] == "chassisd"
    status, headers, body = curl("-H", "Accept: text/html", url + "?format=json")
    assert headers["content-type"] == "application/json"
    status, headers, body = curl(url + "?format=xml")
    assert status == 400 and b"format is html or json" in body


def test_the_html_page_has_only_what_applies(site):
    d, p = site
    page = curl("http://127.0.0.1:%d/status?format=html" % p["web"])[2].decode()
    sections = dict(re.findall(r"<section[^>]*><h3>([^<]*)</h3>(.*?)</section>", page, re.S))
    assert "<dt>accepted</dt><dd>1</dd>" in sections["echo"] and "datagrams" not in sections["echo"]
    assert "<dt>datagrams</dt><dd>1</dd>" in sections["echo-udp"] and "accepted" not in sections["echo-udp"]
    assert "connections" not in sections["echo-udp"] and "accepted" not in sections["tv"]
    assert "<dt>source_state</dt><dd>ended</dd>" in sections["tv"]
    assert "<th>upstream</th>" in sections["to-echo"] and "<td>127.0.0.1:%d</td>" % p["script"] in sections["to-echo"]
    assert page.index("<h2>Listeners</h2>") < page.index("<h2>Streams</h2>") < page.index("<h3>tv</h3>")


# ---- as a browser renders it ----

def png_size_and_pixels(path):
    """The PNG's size from its IHDR, and its pixels as RGB triples (ffmpeg
    decodes): enough to tell a page from a blank one without PIL."""
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", "not a PNG"
    width, height = struct.unpack(">II", head[16:24])
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True, timeout=60).stdout
    assert len(raw) == width * height * 3
    return width, height, [raw[i:i + 3] for i in range(0, len(raw), 3)]


def chromium(tmp_path, *args):
    return subprocess.run([CHROMIUM, "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--user-data-dir=%s" % (tmp_path / "chromium"), *args],
                          capture_output=True, timeout=90)


def test_the_page_renders_in_headless_chromium(site, tmp_path):
    if CHROMIUM is None:
        pytest.skip("needs chromium (Debian package chromium)")
    probe = chromium(tmp_path, "--dump-dom", "data:text/html,<p>up</p>")
    if b"<p>up</p>" not in probe.stdout:
        pytest.skip("chromium cannot start here: %s" % probe.stderr.decode(errors="replace")[-500:])
    d, p = site
    url = "http://127.0.0.1:%d/status?format=html" % p["web"]
    shot = tmp_path / "status.png"
    r = chromium(tmp_path, "--screenshot=%s" % shot, "--window-size=1024,768", "--hide-scrollbars", url)
    assert shot.exists(), r.stderr.decode(errors="replace")
    width, height, pixels = png_size_and_pixels(shot)
    assert (width, height) == (1024, 768)
    colours = Counter(pixels)
    background, most = colours.most_common(1)[0]
    assert background == b"\xff\xff\xff", "the page's white background"
    inked = sum(colours.values()) - most
    assert len(colours) > 20 and inked > 0.01 * sum(colours.values()), "a blank page: %d colours" % len(colours)

    dom = chromium(tmp_path, "--dump-dom", url).stdout.decode()
    for name in ("web", "echo", "echo-udp", "to-echo", "in", "tv"):
        assert "<h3>%s</h3>" % name in dom, name
    assert "<h3>&lt;script&gt;alert(1)&lt;/script&gt;</h3>" in dom
    assert "<script" not in dom, "the markup in a name never became an element"
