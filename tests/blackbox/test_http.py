"""The http protocol against real clients: curl, raw sockets, headless
Chromium, and a Prometheus text parser (promtool when Debian has it)."""
import calendar
import gzip
import json
import os
import random
import re
import shutil
import socket
import subprocess
import urllib.parse
import time

import pytest

from conftest import BINARY, connect, free_port, wait_until
from test_journal import LISTENER_BOUND, journald, wait_for, with_id  # noqa: F401 (a fixture)

FORTUNES = "/usr/share/games/fortunes/fortunes"


def web_config(port, root, http_extra="", routes_before=""):
    return ('listener "web" {\n'
            '  protocol = "http"\n'
            '  address = "127.0.0.1:%d"\n'
            '  http {\n'
            '    %s\n'
            '    route "/fortune" { handler = "fortune"  fortune { file = "%s" } }\n'
            '    route "/status"  { handler = "status" }\n'
            '    route "/metrics" { handler = "metrics" }\n'
            '    route "/echo"    { handler = "echo" }\n'
            '    route "/old"     { handler = "redirect"  location = "/new/"  status = 308 }\n'
            '    %s\n'
            '    route "/"        { handler = "static"  root = "%s"  autoindex = true }\n'
            '  }\n'
            '}\n' % (port, http_extra, FORTUNES, routes_before, root))


def make_root(tmp_path):
    root = tmp_path / "www"
    (root / "sub").mkdir(parents=True)
    (root / "noindex").mkdir()
    (root / "index.html").write_text("<h1>home</h1>\n")
    (root / "a.txt").write_text("hello, world\n")
    (root / "style.css").write_text("body{}\n")
    (root / "blob.bin").write_bytes(bytes(range(256)) * 4)
    (root / "sub" / "index.html").write_text("sub index\n")
    (root / "noindex" / "<b>&amp;.txt").write_text("escaped\n")
    (root / "noindex" / "plain.txt").write_text("x\n")
    (root / "app.js").write_text("console.log('plain');\n" * 50)
    (root / "app.js.gz").write_bytes(gzip.compress(b"console.log('gzipped');\n" * 50))
    (tmp_path / "secret.txt").write_text("TOP SECRET\n")
    os.symlink(str(tmp_path / "secret.txt"), str(root / "escape"))
    os.symlink("a.txt", str(root / "inside"))
    return root


@pytest.fixture
def web(start_daemon, tmp_path):
    """-> (daemon, port, root) with every route configured."""
    root = make_root(tmp_path)
    port = free_port()
    d = start_daemon(web_config(port, root, "head-timeout = 2"))
    return d, port, root


def curl(*args, check=True):
    r = subprocess.run(["curl", "-sS", "--max-time", "10", *args], capture_output=True, check=check)
    return r


def head_and_body(port, path, *args):
    r = curl("-D", "-", "http://127.0.0.1:%d%s" % (port, path), *args)
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    while head.startswith(b"HTTP/1.1 100"):
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return status, headers, body


def raw_exchange(port, data, timeout=5.0):
    """Sends data, reads until the server closes (or timeout)."""
    with connect(port, timeout=timeout) as s:
        s.sendall(data)
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    return out, True
                out += chunk
        except socket.timeout:
            return out, False


def parse_responses(data):
    """Splits a byte stream of Content-Length framed responses."""
    responses = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        assert sep, "an incomplete head: %r" % data[:200]
        lines = head.decode("latin-1").split("\r\n")
        headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        length = int(headers.get("content-length", "0"))
        responses.append((int(lines[0].split()[1]), headers, rest[:length]))
        data = rest[length:]
    return responses


def serving(port):
    status, _, body = head_and_body(port, "/a.txt")
    return status == 200 and body == b"hello, world\n"


# ---- HTTP/1.0 and 1.1 ----

def test_http10_and_http11_answers_with_date_server_and_type(web):
    d, port, root = web
    for version in ("--http1.0", "--http1.1"):
        status, headers, body = head_and_body(port, "/a.txt", version)
        assert status == 200 and body == b"hello, world\n"
        assert headers["content-type"] == "text/plain"
        assert headers["content-length"] == "13"
        assert headers["server"] == "chassisd"
        assert re.fullmatch(r"\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT", headers["date"])
    _, headers, _ = head_and_body(port, "/style.css")
    assert headers["content-type"] == "text/css"
    _, headers, _ = head_and_body(port, "/blob.bin")
    assert headers["content-type"] == "application/octet-stream"
    # HTTP/1.0 without keep-alive closes after the answer.
    out, closed = raw_exchange(port, b"GET /a.txt HTTP/1.0\r\n\r\n")
    assert closed and out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"hello, world\n")


def test_head_has_the_same_length_and_no_body(web):
    d, port, root = web
    out, closed = raw_exchange(port, b"HEAD /blob.bin HTTP/1.1\r\nHost: x\r\n\r\n"
                                     b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    first_head, _, rest = out.partition(b"\r\n\r\n")
    assert b"Content-Length: 1024\r\n" in first_head
    assert rest.startswith(b"HTTP/1.1 200 OK"), "HEAD sent a body"
    assert rest.endswith(b"hello, world\n") and closed


def test_ranges_first_middle_suffix_and_unsatisfiable(web):
    d, port, root = web
    blob = (root / "blob.bin").read_bytes()
    for spec, start, end in (("0-99", 0, 99), ("300-599", 300, 599), ("-100", 924, 1023), ("1000-", 1000, 1023)):
        status, headers, body = head_and_body(port, "/blob.bin", "-r", spec)
        assert status == 206, spec
        assert body == blob[start:end + 1], spec
        assert headers["content-range"] == "bytes %d-%d/1024" % (start, end)
        assert headers["content-length"] == str(end - start + 1)
    status, headers, _ = head_and_body(port, "/blob.bin", "-r", "5000-")
    assert status == 416 and headers["content-range"] == "bytes */1024"
    # Several ranges are answered with the whole file (allowed by RFC 9110).
    status, _, body = head_and_body(port, "/blob.bin", "-r", "0-1,5-6")
    assert status == 200 and body == blob


def test_conditional_get_answers_304(web):
    d, port, root = web
    status, headers, _ = head_and_body(port, "/a.txt")
    etag, modified = headers["etag"], headers["last-modified"]
    status, headers, body = head_and_body(port, "/a.txt", "-H", "If-None-Match: %s" % etag)
    assert status == 304 and body == b"" and headers["etag"] == etag
    status, _, _ = head_and_body(port, "/a.txt", "-H", 'If-None-Match: "other"')
    assert status == 200
    status, _, _ = head_and_body(port, "/a.txt", "-H", "If-Modified-Since: %s" % modified)
    assert status == 304
    status, _, _ = head_and_body(port, "/a.txt", "-H", "If-Modified-Since: Mon, 01 Jan 2001 00:00:00 GMT")
    assert status == 200
    # A changed file is a new ETag.
    (root / "a.txt").write_text("changed, longer\n")
    status, headers, body = head_and_body(port, "/a.txt", "-H", "If-None-Match: %s" % etag)
    assert status == 200 and body == b"changed, longer\n" and headers["etag"] != etag


def test_keep_alive_connection_is_reused(web):
    d, port, root = web
    r = curl("-v", "http://127.0.0.1:%d/a.txt" % port, "http://127.0.0.1:%d/style.css" % port)
    assert r.stdout == b"hello, world\nbody{}\n"
    assert b"Re-using existing connection" in r.stderr


def test_chunked_upload_to_echo_with_100_continue(web):
    d, port, root = web
    payload = os.urandom(200000)
    path = os.path.join(d.workdir, "upload.bin")
    with open(path, "wb") as f:
        f.write(payload)
    r = curl("-v", "-H", "Transfer-Encoding: chunked", "-H", "Expect: 100-continue", "-H",
             "Content-Type: application/x-test", "--data-binary", "@" + path, "http://127.0.0.1:%d/echo" % port)
    assert r.stdout == payload
    assert b"HTTP/1.1 100 Continue" in r.stderr
    assert b"content-type: application/x-test" in r.stderr.lower()


def test_pipelined_requests_are_answered_in_order(web):
    d, port, root = web
    paths = ["/a.txt", "/style.css", "/sub/", "/blob.bin", "/nothing-here", "/a.txt"]
    data = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in paths)
    data += b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out, closed = raw_exchange(port, data)
    assert closed
    responses = parse_responses(out)
    assert [r[0] for r in responses] == [200, 200, 200, 200, 404, 200, 200]
    assert responses[0][2] == b"hello, world\n"
    assert responses[1][2] == b"body{}\n"
    assert responses[2][2] == b"sub index\n"
    assert responses[3][2] == (root / "blob.bin").read_bytes()
    assert responses[6][1]["connection"] == "close"


def test_large_files_arrive_byte_exact_across_chunk_ends(web):
    """A file longer than a loop turn goes out in chunks that start behind
    the head (and behind an earlier answer when pipelined): every byte in
    its place, whole, in a range across chunk ends, and in a second answer
    queued behind the first."""
    d, port, root = web
    data = os.urandom(3 * 1024 * 1024 + 12345)       # beyond prepared answers
    (root / "large.bin").write_bytes(data)
    status, headers, body = head_and_body(port, "/large.bin")
    assert status == 200 and headers["content-length"] == str(len(data))
    assert body == data
    status, _, body = head_and_body(port, "/large.bin", "-r", "100000-900000")
    assert status == 206 and body == data[100000:900001]
    pipelined = b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n"
    pipelined += b"GET /large.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out, closed = raw_exchange(port, pipelined)
    responses = parse_responses(out)
    assert closed and [r[0] for r in responses] == [200, 200]
    assert responses[0][2] == b"hello, world\n" and responses[1][2] == data


def server_send_queue(port):
    """Send-Q of the daemon's end of the one connection to port, once it
    has stopped changing."""
    last, steady_since = None, time.monotonic()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        out = subprocess.run(["ss", "-tnH", "state", "established", "( sport = :%d )" % port],
                             capture_output=True, text=True, check=True).stdout.split()
        queued = int(out[1])
        if queued != last:
            last, steady_since = queued, time.monotonic()
        elif time.monotonic() - steady_since > 0.5:
            break
        time.sleep(0.05)
    return last


def queued_for_a_client_that_stops_reading(port, data):
    """The daemon's Send-Q while a client leaves a download unread; then
    the client reads it and it must arrive whole."""
    with connect(port, timeout=10) as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        queued = server_send_queue(port)
        out = b""
        while chunk := s.recv(1 << 20):
            out += chunk
    assert out.endswith(b"\r\n\r\n" + data)
    return queued


def test_a_client_that_stops_reading_holds_little_unsent_data_in_the_kernel(start_daemon, tmp_path):
    """notsent-lowat (default 16 KiB): a download to a client that does not
    read leaves the rest of the file in the file, not megabytes in the
    socket's send queue; 0 gives the kernel's own limit back, and a reload
    changes it for new connections."""
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(12 * 1024 * 1024)
    (root / "big.bin").write_bytes(data)
    ports = free_port(), free_port()
    listener = ('listener "%s" {\n protocol = "http"\n address = "127.0.0.1:%d"\n %s\n'
                ' http { route "/" { handler = "static"  root = "%s" } }\n}\n')
    config = listener % ("default", ports[0], "", root) + listener % ("kernel", ports[1], "%s", root)
    d = start_daemon(config % "notsent-lowat = 0")
    with open("/proc/sys/net/ipv4/tcp_notsent_lowat") as f:
        kernel_unlimited = int(f.read()) >= 1 << 31
    queued = [queued_for_a_client_that_stops_reading(port, data) for port in ports]
    assert queued[0] < 256 * 1024, queued
    if kernel_unlimited:
        assert queued[1] > 4 * queued[0], queued
    d.reload(config % "notsent-lowat = 16384")
    assert queued_for_a_client_that_stops_reading(ports[1], data) < 256 * 1024


# ---- malformed input ----

MALFORMED = [
    ("folded header", b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n", 400),
    ("HTTP/0.9 line", b"GET /a.txt\r\n", 505),
    ("garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 501),
    ("oversize request line", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\n\r\n", 414),
    ("oversize headers", b"GET / HTTP/1.1\r\nX-A: " + b"a" * 9000 + b"\r\n\r\n", 431),
    ("too many headers", b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
    ("NUL in path", b"GET /a\x00.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("encoded NUL in path", b"GET /a%00.txt HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("2 GB Content-Length", b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\n\r\n", 413),
    ("2 GB body on an unknown path", b"POST /nowhere/x HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\n\r\n", 413),
    ("2 GB body for DELETE", b"DELETE /a.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\n\r\n", 413),
    ("2 GB body on a route that takes none", b"GET /status HTTP/1.1\r\nHost: x\r\nContent-Length: 2147483648\r\n\r\n", 413),
    ("2 GiB chunk size line", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n", 413),
    ("2 GiB chunk on an unknown path", b"PUT /nowhere HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n80000000\r\n", 413),
    ("POST without length", b"POST /echo HTTP/1.1\r\nHost: x\r\n\r\n", 411),
    ("unknown transfer coding", b"POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", 501),
    ("method not allowed", b"DELETE /a.txt HTTP/1.1\r\nHost: x\r\n\r\n", 405),
    ("HTTP/2.0 line", b"GET / HTTP/2.0\r\nHost: x\r\n\r\n", 505),
    ("bad Content-Length", b"POST /echo HTTP/1.1\r\nContent-Length: 12abc\r\n\r\n", 400),
    ("Expect other than 100-continue", b"POST /echo HTTP/1.1\r\nContent-Length: 2\r\nExpect: magic\r\n\r\n", 417),
]


@pytest.mark.parametrize("name,request_bytes,expected", MALFORMED, ids=[m[0] for m in MALFORMED])
def test_malformed_request_gets_its_status_and_a_close(web, name, request_bytes, expected):
    d, port, root = web
    out, closed = raw_exchange(port, request_bytes)
    assert out.split(b"\r\n", 1)[0].startswith(b"HTTP/1.1 %d " % expected), out[:200]
    # The page says why in words, not in the parser's internals.
    assert b"callback failed" not in out, out
    if expected != 405:
        assert closed, "the connection stays open after %s" % name
        assert b"Connection: close\r\n" in out
    assert d.proc.poll() is None and serving(port)


def test_folded_header_page_names_the_fold(web):
    d, port, root = web
    out, closed = raw_exchange(port, MALFORMED[0][1])
    assert b"<p>A folded header line (obsolete line folding).</p>" in out, out


def test_bare_lf_request_is_accepted_like_nginx(web):
    d, port, root = web
    out, closed = raw_exchange(port, b"GET /a.txt HTTP/1.1\nHost: x\nConnection: close\n\n")
    assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"hello, world\n") and closed


def test_bad_requests_are_counted(web):
    d, port, root = web
    for _, request_bytes, _ in MALFORMED[:4]:
        raw_exchange(port, request_bytes)
    status = json.loads(curl("http://127.0.0.1:%d/status" % port).stdout)
    web_stats = [l for l in status["listeners"] if l["name"] == "web"][0]
    assert web_stats["module"]["bad_requests"] == 4


def mutated_requests(seed, count):
    """Requests built from valid and broken pieces, a quarter of them then
    mangled byte-wise; one to three per connection, so pipelines too."""
    rnd = random.Random(seed)
    paths = [b"/a.txt", b"/blob.bin", b"/sub", b"/noindex/", b"/echo", b"/fortune", b"/status", b"/metrics",
             b"/old/x", b"/escape", b"/%2e%2e/secret.txt", b"/a%00", b"/%zz", b"*", b"http://h/a.txt"]
    lines = [b"Host: x", b"Connection: close", b"Range: bytes=0-10", b"Range: bytes=-5", b"Range: bytes=9999-",
             b"Range: x", b"If-None-Match: *", b"If-Modified-Since: junk", b"Accept-Encoding: gzip",
             b"Expect: 100-continue", b"Expect: x", b"Transfer-Encoding: chunked", b"Transfer-Encoding: gzip",
             b"Content-Length: 5", b"Content-Length: -1", b"Content-Length: 1, 2", b" folded", b"NoColon"]
    bodies = [b"", b"hello", b"5\r\nhello\r\n0\r\n\r\n", b"ffffffffffffffffff\r\n", b"3\r\nab", b"\0" * 20]

    def one():
        method = rnd.choice([b"GET", b"HEAD", b"POST", b"PUT", b"DELETE", b"BREW", b"get"][:3 + 4 * (rnd.random() < .2)])
        version = b"HTTP/1.1" if rnd.random() < .9 else rnd.choice([b"HTTP/1.0", b"HTTP/2.0", b"HTTP/1.", b""])
        eol = b"\r\n" if rnd.random() < .9 else rnd.choice([b"\n", b"\r"])
        head = [method + b" " + rnd.choice(paths) + b" " + version]
        head += [rnd.choice(lines) for _ in range(rnd.randrange(4))]
        data = bytearray(eol.join(head) + eol + eol + rnd.choice(bodies))
        for _ in range(rnd.randrange(4) if rnd.random() < .25 else 0):
            at = rnd.randrange(len(data))
            data[at:at + rnd.randrange(2)] = rnd.choice([b"\r\n", b"\0", b"%", b"..", b" ", b":", b"\xff"])
        return bytes(data)
    return [b"".join(one() for _ in range(rnd.randrange(1, 4))) for _ in range(count)]


def test_mutated_requests_never_crash_and_every_connection_ends(web):
    """Whatever arrives, each connection ends soon after the client's end
    of input, no answer leaks the file outside the root, and the daemon
    keeps serving with the refusals counted."""
    d, port, root = web
    for data in mutated_requests(seed=5, count=800):
        with connect(port, timeout=5) as s:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            out = b""
            try:
                while chunk := s.recv(65536):
                    out += chunk
            except ConnectionResetError:
                pass
            except socket.timeout:
                pytest.fail("no end 5 s after the client's end of input: %r" % data)
            assert b"TOP SECRET" not in out, data
    assert d.proc.poll() is None and serving(port)
    status = json.loads(curl("http://127.0.0.1:%d/status" % port).stdout)
    web_stats = [l for l in status["listeners"] if l["name"] == "web"][0]
    assert web_stats["counters"]["accepted"] >= 800
    assert web_stats["module"]["requests"] > 100 and web_stats["module"]["bad_requests"] > 100


TRAVERSALS = [
    "/../secret.txt", "/%2e%2e/secret.txt", "/%2E%2E/secret.txt", "/.%2e/secret.txt", "/%2e./secret.txt",
    "/sub/../../secret.txt", "/sub/%2e%2e/%2e%2e/secret.txt", "/..%2fsecret.txt", "/%2e%2e%2fsecret.txt",
    "/..%5csecret.txt", "/..\\secret.txt", "/sub/..%2f..%2fsecret.txt", "/%252e%252e/secret.txt",
    "/escape", "/./../secret.txt", "//../secret.txt", "/sub/./../../secret.txt",
]


@pytest.mark.parametrize("path", TRAVERSALS)
def test_path_traversal_is_refused(web, path):
    d, port, root = web
    out, _ = raw_exchange(port, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % path.encode())
    status = int(out.split(b" ", 2)[1])
    assert status in (400, 403, 404), out[:200]
    assert b"TOP SECRET" not in out


def test_symlinks_inside_the_root_work_and_follow_symlinks_opens_the_way_out(start_daemon, tmp_path):
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root))
    assert head_and_body(port, "/inside")[2] == b"hello, world\n"
    assert head_and_body(port, "/escape")[0] == 404
    port2 = free_port()
    config = web_config(port2, root).replace("autoindex = true", "follow-symlinks = true")
    start_daemon(config)
    assert head_and_body(port2, "/escape")[2] == b"TOP SECRET\n"


# ---- static files ----

def test_directories_redirect_index_and_autoindex(web):
    d, port, root = web
    status, headers, _ = head_and_body(port, "/sub?x=1")
    assert status == 301 and headers["location"] == "/sub/?x=1"
    assert head_and_body(port, "/sub/")[2] == b"sub index\n"
    status, headers, body = head_and_body(port, "/noindex/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"&lt;b&gt;&amp;amp;.txt" in body, "the file name is HTML-escaped"
    assert b'href="%3Cb%3E%26amp%3B.txt"' in body
    assert b"<b>" not in body
    assert b'href="plain.txt"' in body


def test_a_route_directory_without_its_slash_redirects_and_its_links_resolve(start_daemon, tmp_path):
    """GET /files for route "/files" (or "/files/") used to list with links
    relative to "/", so that "a.txt" pointed at /a.txt."""
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root, routes_before=(
        'route "/files" { handler = "static"  root = "%s/noindex"  autoindex = true }\n'
        '    route "/slash/" { handler = "static"  root = "%s/noindex"  autoindex = true }' % (root, root))))
    for prefix in ("/files", "/slash"):
        status, headers, _ = head_and_body(port, prefix + "?sort=name")
        assert status == 301 and headers["location"] == prefix + "/?sort=name"
        # curl follows it and resolves the listing's links as a browser would.
        r = curl("-L", "-w", "%{url_effective}", "-o", "/dev/null", "http://127.0.0.1:%d%s" % (port, prefix))
        assert r.stdout.decode() == "http://127.0.0.1:%d%s/" % (port, prefix)
        status, _, body = head_and_body(port, prefix + "/")
        assert status == 200 and b'<a href="../">../</a>' in body, "nginx lists ../ at the top too"
        assert b'href="plain.txt"' in body
        link = urllib.parse.urljoin("http://127.0.0.1:%d%s/" % (port, prefix), "plain.txt")
        assert curl(link).stdout == b"x\n"


def test_autoindex_of_an_empty_directory(web):
    """Under the sanitizer build this was a UBSan report (qsort of NULL)."""
    d, port, root = web
    (root / "empty").mkdir()
    status, headers, body = head_and_body(port, "/empty/")
    assert status == 200 and headers["content-type"] == "text/html; charset=utf-8"
    assert b"<h1>Index of /empty/" in body and b"../</a>" in body and body.count(b"<tr>") == 2


def test_directory_without_index_is_403_when_autoindex_is_off(start_daemon, tmp_path):
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root).replace("autoindex = true", "autoindex = false"))
    assert head_and_body(port, "/noindex/")[0] == 403


def test_precompressed_sibling_for_gzip_clients(web):
    d, port, root = web
    status, headers, body = head_and_body(port, "/app.js", "-H", "Accept-Encoding: gzip")
    assert headers["content-encoding"] == "gzip"
    assert headers["content-type"] == "text/javascript"
    assert gzip.decompress(body) == b"console.log('gzipped');\n" * 50
    status, headers, body = head_and_body(port, "/app.js")
    assert "content-encoding" not in headers and body == b"console.log('plain');\n" * 50
    status, headers, body = head_and_body(port, "/app.js", "-H", "Accept-Encoding: gzip;q=0")
    assert "content-encoding" not in headers


def test_no_route_is_an_escaped_404(start_daemon, tmp_path):
    port = free_port()
    start_daemon('listener "w" {\n protocol = "http"\n address = "127.0.0.1:%d"\n'
                 ' http { route "/only" { handler = "status" } }\n}\n' % port)
    out, _ = raw_exchange(port, b"GET /x<script>alert(1)</script> HTTP/1.1\r\nConnection: close\r\n\r\n")
    if out.startswith(b"HTTP/1.1 404"):
        assert b"<script>" not in out and b"&lt;script&gt;" in out
    else:
        assert out.startswith(b"HTTP/1.1 400")
    status, _, body = head_and_body(port, "/onlyx")
    assert status == 404 and b"/onlyx" in body
    assert head_and_body(port, "/only")[0] == 200


def test_redirect_route(web):
    d, port, root = web
    status, headers, _ = head_and_body(port, "/old/page")
    assert status == 308 and headers["location"] == "/new/"


# ---- routes to modules ----

def test_fortune_route_is_chunked_text_from_the_database(web):
    d, port, root = web
    with open(FORTUNES, "rb") as f:
        entries = {e.strip() for e in f.read().split(b"\n%\n")}
    status, headers, body = head_and_body(port, "/fortune")
    assert status == 200 and headers["transfer-encoding"] == "chunked"
    assert headers["content-type"] == "text/plain; charset=utf-8"
    assert body.strip() in entries
    # HTTP/1.0 has no chunks: the body ends with the connection.
    out, closed = raw_exchange(port, b"GET /fortune HTTP/1.0\r\n\r\n")
    head, _, body = out.partition(b"\r\n\r\n")
    assert closed and b"Transfer-Encoding" not in head and body.strip() in entries
    out, closed = raw_exchange(port, b"HEAD /fortune HTTP/1.1\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"\r\n\r\n") and closed


def test_audio_cookie_route_serves_a_clip(start_daemon, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(clips / "a.wav"), "synth", "0.3", "sine", "440"],
                   check=True)
    port = free_port()
    start_daemon('listener "w" {\n protocol = "http"\n address = "127.0.0.1:%d"\n http {\n'
                 '  route "/clip" { handler = "audio-cookie"  audio-cookie { directory = "%s" } }\n }\n}\n'
                 % (port, clips))
    status, headers, body = head_and_body(port, "/clip")
    assert status == 200 and headers["content-type"] == "audio/wav"
    assert body == (clips / "a.wav").read_bytes()


# ---- limits ----

def test_slowloris_is_cut_at_the_head_deadline_while_others_are_served(web):
    d, port, root = web
    slow = connect(port, timeout=10)
    request = b"GET /a.txt HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 20
    started = time.monotonic()
    answered = 0
    cut = None
    for byte in request:
        try:
            slow.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        if serving(port):
            answered += 1
        slow.settimeout(0.5)
        try:
            data = slow.recv(4096)
            cut = time.monotonic() - started
            assert data.startswith(b"HTTP/1.1 408 ") or data == b""
            break
        except socket.timeout:
            pass
        time.sleep(0.5)
    slow.close()
    assert cut is not None, "the slow client was never cut"
    assert 1.8 <= cut <= 3.5, "cut after %.1f s with head-timeout = 2" % cut
    assert answered >= 2


def test_a_trickled_body_is_cut_at_the_body_deadline_and_a_steady_upload_is_not(start_daemon, tmp_path):
    """A POST that sends a byte every 0.4 s keeps resetting the idle
    timeout; body-timeout = 2 (one more second per 1000 bytes) cuts it with
    408 after about 2 s. curl uploading 100 kB at 25 kB/s takes 4 s, longer
    than body-timeout, and is answered in full: it keeps to the rate."""
    root = make_root(tmp_path)
    port = free_port()
    d = start_daemon(web_config(port, root, "body-timeout = 2  body-min-rate = 1000"))
    slow = connect(port, timeout=10)
    slow.sendall(b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n")
    started, data = time.monotonic(), b""
    slow.settimeout(0.4)
    while time.monotonic() - started < 8 and not data:
        try:
            slow.sendall(b"x")
            data = slow.recv(4096)
        except socket.timeout:
            pass
        except (BrokenPipeError, ConnectionResetError):
            break
    cut = time.monotonic() - started
    slow.close()
    assert data.startswith(b"HTTP/1.1 408 "), data[:80]
    assert 1.8 <= cut <= 4, "cut after %.1f s with body-timeout = 2" % cut
    payload = os.urandom(100000)
    path = os.path.join(d.workdir, "upload.bin")
    with open(path, "wb") as f:
        f.write(payload)
    r = curl("--limit-rate", "25k", "--data-binary", "@" + path, "http://127.0.0.1:%d/echo" % port)
    assert r.stdout == payload
    assert module_counter(port, "body_timeouts") == 1


def test_body_and_request_limits(start_daemon, tmp_path):
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root, "max-body = 1000  max-requests = 3  keepalive-timeout = 1"))
    out, closed = raw_exchange(port, b"POST /echo HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"3e8\r\n" + b"x" * 1000 + b"\r\n1\r\ny\r\n0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ") and closed
    out, closed = raw_exchange(port, b"POST /echo HTTP/1.1\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n"
                                     + b"z" * 1000)
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"z" * 1000)
    # The third request on a connection is its last.
    out, closed = raw_exchange(port, b"GET /a.txt HTTP/1.1\r\n\r\n" * 4)
    responses = parse_responses(out)
    assert len(responses) == 3 and closed
    assert responses[2][1]["connection"] == "close"
    # Idle between requests: closed after keepalive-timeout.
    with connect(port) as s:
        s.sendall(b"GET /a.txt HTTP/1.1\r\n\r\n")
        s.settimeout(5)
        got = s.recv(4096)
        assert got.startswith(b"HTTP/1.1 200")
        started = time.monotonic()
        assert s.recv(4096) == b""
        assert time.monotonic() - started < 3


# ---- status, metrics, access log ----

def parse_prometheus(text):
    """A strict reader of the text format: every sample belongs to a family
    declared by # TYPE just before its group, names and labels are valid."""
    families, samples, current = {}, [], None
    name_re = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
    for line in text.splitlines():
        if line.startswith("# HELP "):
            continue
        m = re.fullmatch(r"# TYPE (%s) (counter|gauge|untyped|summary|histogram)" % name_re, line)
        if m:
            assert m.group(1) not in families, "family %s declared twice" % m.group(1)
            families[m.group(1)] = m.group(2)
            current = m.group(1)
            continue
        m = re.fullmatch(r'(%s)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? ([0-9.eE+-]+|NaN|[+-]Inf)'
                         % name_re, line)
        assert m, "not a sample line: %r" % line
        assert m.group(1) == current, "sample %s outside its family group" % m.group(1)
        samples.append((m.group(1), m.group(2) or "", float(m.group(3))))
    return families, samples


def test_status_json_and_metrics(web):
    d, port, root = web
    head_and_body(port, "/a.txt")
    status = json.loads(curl("http://127.0.0.1:%d/status" % port).stdout)
    assert status["server"] == "chassisd" and status["reload_generation"] == 1
    web_stats = [l for l in status["listeners"] if l["name"] == "web"][0]
    assert web_stats["protocol"] == "http" and web_stats["connections"] >= 1
    assert web_stats["counters"]["accepted"] >= 2 and web_stats["module"]["responses_2xx"] >= 1

    text = curl("http://127.0.0.1:%d/metrics" % port).stdout.decode()
    families, samples = parse_prometheus(text)
    assert families["chassisd_listener_accepted_total"] == "counter"
    values = {(n, l): v for n, l, v in samples}
    assert values[("chassisd_reload_generation", "")] == 1
    assert values[("chassisd_listener_accepted_total", '{listener="web",protocol="http"}')] >= 3
    assert values[("chassisd_http_requests_total", '{listener="web",protocol="http"}')] >= 2
    if shutil.which("promtool"):
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True, text=True)
        assert r.returncode == 0, r.stdout + r.stderr

    d.reload()
    status = json.loads(curl("http://127.0.0.1:%d/status" % port).stdout)
    assert status["reload_generation"] == 2


def test_access_log_in_combined_format(web):
    d, port, root = web
    curl("-A", 'agent "quoted"', "-e", "http://ref.example/", "http://127.0.0.1:%d/a.txt?q=1" % port)
    line = d.wait_log(r'GET /a\.txt\?q=1')
    m = re.search(r'^<6>127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\] '
                  r'"GET /a\.txt\?q=1 HTTP/1\.1" 200 13 "http://ref\.example/" "agent \\x22quoted\\x22"$',
                  d.log(), re.M)
    assert m, d.log()
    assert "listener=" not in m.group(0)


def test_access_log_shows_what_an_unparsed_request_line_had(web):
    """A request line that never parsed is logged as "-", one without a
    version without a made-up HTTP/0.0, as nginx and Apache log them."""
    d, port, root = web
    assert raw_exchange(port, b"\x01\x02 junk\r\n\r\n")[0].startswith(b"HTTP/1.1 501 ")
    assert raw_exchange(port, b"GET /nover\r\n\r\n")[0].startswith(b"HTTP/1.1 505 ")
    d.wait_log(r'"GET /nover" 505 ')
    assert re.search(r'\] "-" 501 \d+ "-" "-"$', d.log(), re.M), d.log()
    assert "HTTP/0.0" not in d.log()


def test_access_log_fields_under_journald(start_daemon, journald, tmp_path):
    wrapper, records = journald
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root), wrapper=wrapper)
    wait_for(records, lambda r: with_id(LISTENER_BOUND)(r) and r.get("LISTENER") == "web", "web bound")
    curl("http://127.0.0.1:%d/blob.bin" % port)
    found = wait_for(records, lambda r: r.get("HTTP_PATH") == "/blob.bin", "an access record")[0]
    assert (found["HTTP_METHOD"], found["HTTP_STATUS"], found["BYTES_OUT"]) == ("GET", "200", "1024")
    assert found["LISTENER"] == "web" and found["REMOTE_ADDR"] == "127.0.0.1"
    assert 0 < int(found["DURATION_USEC"]) < 10000000
    assert found["MESSAGE"].startswith('127.0.0.1 - - [') and found["PRIORITY"] == "6"


def test_access_log_off(start_daemon, tmp_path):
    root = make_root(tmp_path)
    port = free_port()
    d = start_daemon(web_config(port, root, "access-log = false"))
    head_and_body(port, "/a.txt")
    time.sleep(0.2)
    assert "GET /a.txt" not in d.log()


def test_live_keep_alive_connection_survives_a_reload(web):
    d, port, root = web
    with connect(port) as s:
        s.sendall(b"GET /a.txt HTTP/1.1\r\n\r\n")
        assert s.recv(4096).endswith(b"hello, world\n")
        d.reload(config_with_a_new_route(d))
        s.sendall(b"GET /a.txt HTTP/1.1\r\nConnection: close\r\n\r\n")
        s.settimeout(5)
        assert s.recv(4096).endswith(b"hello, world\n")
    # New connections get the new routes.
    assert head_and_body(port, "/fortune")[0] == 200
    assert head_and_body(port, "/gone")[0] == 200


def config_with_a_new_route(d):
    with open(d.config) as f:
        return f.read().replace('route "/old"', 'route "/gone" { handler = "status" }\n    route "/old"')


# ---- headless Chromium ----

def chromium_binary():
    for name in ("chromium", "chromium-browser"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def chromium(*args, timeout=60):
    binary = chromium_binary()
    home = os.environ.get("TMPDIR", "/tmp")
    return subprocess.run([binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--no-first-run", "--user-data-dir=%s/chassisd-chromium-%d" % (home, os.getpid()),
                           *args], capture_output=True, timeout=timeout)


def distinct_pixels(png):
    """How many distinct gray levels the screenshot has (ffmpeg decodes)."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", png, "-f", "rawvideo", "-pix_fmt", "gray", "-"],
                         capture_output=True, check=True).stdout
    return len(set(raw)), len(raw)


@pytest.mark.skipif(chromium_binary() is None, reason="chromium is not installed")
def test_chromium_renders_autoindex_and_status(web, tmp_path):
    d, port, root = web
    for path, expected in (("/noindex/", [b"plain.txt", b"&lt;b&gt;&amp;amp;.txt"]),
                           ("/status", [b"<h3>web</h3>", b"generation 1"]),
                           ("/status?format=json", [b'"reload_generation": 1', b'"name": "web"'])):
        url = "http://127.0.0.1:%d%s" % (port, path)
        dom = chromium("--dump-dom", url).stdout
        for entry in expected:
            assert entry in dom, (path, dom[:2000])
        shot = str(tmp_path / "shot.png")
        chromium("--screenshot=%s" % shot, "--window-size=800,600", url)
        levels, pixels = distinct_pixels(shot)
        assert pixels == 800 * 600 and levels > 2, "a blank screenshot of %s" % path


# ---- the open-file cache ----

@pytest.mark.parametrize("open_files", ["", "open-files = 0", "open-files = 1"])
def test_open_file_cache_sees_every_change_at_once(start_daemon, tmp_path, open_files):
    """Edits, renames over, a symlink swapped in, deletion: the next request
    sees each, with or without the cache (1 slot: every file evicts another)."""
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root).replace("autoindex = true", "autoindex = true  " + open_files))
    status, headers, body = head_and_body(port, "/a.txt")
    assert (status, body) == (200, b"hello, world\n")
    etag = headers["etag"]
    assert head_and_body(port, "/style.css")[2] == b"body{}\n"
    (root / "a.txt").write_text("HELLO, WORLD\n")   # same size, same second
    status, headers, body = head_and_body(port, "/a.txt", "-H", "If-None-Match: %s" % etag)
    assert (status, body) == (200, b"HELLO, WORLD\n") and headers["etag"] != etag
    (tmp_path / "new.txt").write_text("deployed\n")
    os.rename(str(tmp_path / "new.txt"), str(root / "a.txt"))
    assert head_and_body(port, "/a.txt")[2] == b"deployed\n"
    os.remove(str(root / "a.txt"))
    os.symlink(str(tmp_path / "secret.txt"), str(root / "a.txt"))
    status, _, body = head_and_body(port, "/a.txt")
    assert status == 404 and b"SECRET" not in body
    os.remove(str(root / "a.txt"))
    assert head_and_body(port, "/a.txt")[0] == 404
    (root / "a.txt").write_text("back\n")
    assert head_and_body(port, "/a.txt")[2] == b"back\n"


def test_a_download_in_flight_keeps_its_file_when_it_is_replaced(start_daemon, tmp_path):
    """The cache drops a replaced file at once, but an answer still being
    sent holds its own reference: it ends with the old bytes, whole."""
    root = make_root(tmp_path)
    old = bytes(range(256)) * 16384          # 4 MiB
    (root / "big.bin").write_bytes(old)
    port = free_port()
    start_daemon(web_config(port, root))
    with connect(port) as slow:
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        slow.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        received = slow.recv(65536)
        (tmp_path / "next.bin").write_bytes(b"new\n")
        os.rename(str(tmp_path / "next.bin"), str(root / "big.bin"))
        assert head_and_body(port, "/big.bin")[2] == b"new\n"
        while True:
            chunk = slow.recv(1 << 20)
            if not chunk:
                break
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    assert b"Content-Length: %d" % len(old) in head
    assert body == old


def test_without_openat2_the_fallback_still_keeps_requests_in_the_root(start_daemon, tmp_path):
    """On a kernel without openat2 (or a seccomp filter that hides it) the
    files are opened with openat and checked through /proc/self/fd: symlinks
    out of the root stay refused, symlinks inside work."""
    shim = os.path.join(os.path.dirname(os.path.dirname(BINARY)), "tests", "blackbox", "no_openat2.so")
    assert os.path.exists(shim), "build the tree first: %s" % shim
    root = make_root(tmp_path)
    os.symlink(str(tmp_path), str(root / "up"))          # a directory link out
    port = free_port()
    d = start_daemon(web_config(port, root), env={
        "LD_PRELOAD": shim,
        # The shim comes before the sanitizer runtime in the sanitized build.
        "ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:verify_asan_link_order=0"})
    assert head_and_body(port, "/a.txt")[2] == b"hello, world\n"
    assert head_and_body(port, "/inside")[2] == b"hello, world\n"
    assert head_and_body(port, "/sub/")[2] == b"sub index\n"
    for path in ("/escape", "/up/secret.txt"):
        status, _, body = head_and_body(port, path)
        assert status == 404 and b"SECRET" not in body, path
    assert head_and_body(port, "/../secret.txt", "--path-as-is")[0] == 400
    assert "no_openat2: openat2 refused with ENOSYS" in d.log()


# ---- prepared answers: head and a small body in one sendfile ----

def read_response(sock):
    """One Content-Length framed response from a keep-alive socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before a head: %r" % data
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
    length = int(headers["content-length"]) if not lines[0].startswith("HTTP/1.1 304") else 0
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed inside a body"
        body += chunk
    assert len(body) == length, "more bytes than the length: %r" % body[length:]
    return int(lines[0].split()[1]), headers, body


def burst(port, path, count, extra=b"", version=b"1.1"):
    """count requests one after another on one connection."""
    answers = []
    with connect(port) as s:
        for _ in range(count):
            s.sendall(b"GET %s HTTP/%s\r\nHost: x\r\n%s\r\n" % (path.encode(), version, extra))
            answers.append(read_response(s))
    return answers


def web_status(port):
    """The "web" listener's entry on the status page."""
    status = json.loads(curl("http://127.0.0.1:%d/status" % port).stdout)
    return [l for l in status["listeners"] if l["name"] == "web"][0]


def module_counter(port, name):
    return web_status(port)["module"][name]


def rss_anon_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        return next(int(line.split()[1]) for line in f if line.startswith("RssAnon:"))


def test_downloads_of_a_huge_file_cost_a_bounded_amount_of_memory(start_daemon, tmp_path):
    """The whole file used to be queued at once, ~1 KiB of heap per 256 KiB:
    20 clients that never read a 4 GiB file took RssAnon from 544 kB to
    333 MB. Now a download holds a window of the file, not all of it."""
    root = tmp_path / "www"
    root.mkdir()
    with open(root / "huge.bin", "wb") as f:
        f.truncate(4 << 30)         # sparse
    (root / "a.txt").write_text("hello, world\n")
    port = free_port()
    d = start_daemon('listener "web" {\n protocol = "http"\n address = "127.0.0.1:%d"\n'
                     ' http { access-log = false  route "/" { handler = "static"  root = "%s" } }\n}\n'
                     % (port, root), env={"ASAN_OPTIONS": "detect_leaks=1:abort_on_error=0:quarantine_size_mb=0"})
    before = rss_anon_kib(d.pid)
    clients = []
    for _ in range(20):
        c = connect(port, timeout=10)
        c.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        c.sendall(b"GET /huge.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        clients.append(c)
    time.sleep(1.5)
    grown = rss_anon_kib(d.pid) - before
    assert grown < 8 * 1024, "RssAnon grew by %d KiB for 20 stalled downloads" % grown
    for c in clients:
        assert c.recv(4096).startswith(b"HTTP/1.1 200 ")
        c.close()
    assert serving(port)
    assert wait_until(lambda: rss_anon_kib(d.pid) - before < 8 * 1024, 5), "the heap came back"


def test_a_file_truncated_during_a_download_ends_the_connection_at_once(start_daemon, tmp_path):
    """It used to stall until the idle timeout (15 s), the client waiting
    for bytes that no longer exist."""
    root = make_root(tmp_path)
    (root / "big.bin").write_bytes(os.urandom(50 << 20))
    port = free_port()
    d = start_daemon(web_config(port, root))
    with connect(port, timeout=10) as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(65536).startswith(b"HTTP/1.1 200 ")
        os.truncate(root / "big.bin", 1 << 20)
        started = time.monotonic()
        try:
            while s.recv(1 << 20):
                pass
        except ConnectionResetError:
            pass
        assert time.monotonic() - started < 5
    d.wait_log(r"<6>a file ended before its length \(changed while being sent\): connection reset")
    assert module_counter(port, "files_cut_short") == 1
    assert serving(port)


def test_prepared_answers_carry_the_current_file_and_head(start_daemon, tmp_path):
    """A small file asked for often goes out from a prepared copy: the bytes
    are the file's, through edits and renames, and every head is the one
    this request needs (Connection, HTTP/1.0, HEAD, gzip)."""
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root))
    answers = burst(port, "/blob.bin", 12)
    assert all(a[0] == 200 and a[2] == bytes(range(256)) * 4 for a in answers)
    assert all(a[1]["content-type"] == "application/octet-stream" and a[1]["content-length"] == "1024"
               and "connection" not in a[1] and a[1]["etag"] == answers[0][1]["etag"] for a in answers)
    assert module_counter(port, "prepared_answers") >= 6

    # A stat is trusted for 1 ms: a change shows from 1 ms after it.
    (root / "blob.bin").write_bytes(bytes(range(255, -1, -1)) * 4)   # same size, same second
    time.sleep(0.002)
    assert all(a[2] == bytes(range(255, -1, -1)) * 4 for a in burst(port, "/blob.bin", 6))
    (tmp_path / "next.bin").write_bytes(b"deployed\n")
    os.rename(str(tmp_path / "next.bin"), str(root / "blob.bin"))
    time.sleep(0.002)
    assert all(a[2] == b"deployed\n" and a[1]["content-length"] == "9" for a in burst(port, "/blob.bin", 6))

    with connect(port) as s:      # the keep-alive answer is prepared; this one needs its own head
        s.sendall(b"GET /blob.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(s)
        assert (status, headers["connection"], body) == (200, "close", b"deployed\n")
        assert s.recv(100) == b""
    for status, headers, body in burst(port, "/blob.bin", 5, b"Connection: keep-alive\r\n", b"1.0"):
        assert (status, headers["connection"], body) == (200, "keep-alive", b"deployed\n")
    with connect(port) as s:
        s.sendall(b"HEAD /blob.bin HTTP/1.1\r\nHost: x\r\n\r\nGET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, rest = s.recv(65536).partition(b"\r\n\r\n")
        assert b"Content-Length: 9\r\n" in head and not rest.startswith(b"deployed")
    packed = burst(port, "/app.js", 6, b"Accept-Encoding: gzip\r\n")
    assert all(a[1]["content-encoding"] == "gzip" and
               gzip.decompress(a[2]) == b"console.log('gzipped');\n" * 50 for a in packed)


def test_prepared_answers_keep_the_date_current(start_daemon, tmp_path):
    """A prepared head holds a Date: over seconds, every answer's Date is
    the time it was sent, never the time it was prepared."""
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root))
    dates = set()
    with connect(port) as s:
        end = time.time() + 2.5
        while time.time() < end:
            before = int(time.time())
            s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, body = read_response(s)
            after = time.time()
            sent = calendar.timegm(time.strptime(headers["date"], "%a, %d %b %Y %H:%M:%S GMT"))
            assert before <= sent <= after and body == b"hello, world\n", headers["date"]
            dates.add(sent)
            time.sleep(0.05)   # under max-requests (100) per connection
    assert len(dates) >= 2
    assert module_counter(port, "prepared_answers") > 0


def test_prepared_max_zero_sends_head_and_file_apart_with_the_same_bytes(start_daemon, tmp_path):
    root = make_root(tmp_path)
    port = free_port()
    start_daemon(web_config(port, root).replace("autoindex = true", "autoindex = true  prepared-max = 0"))
    answers = burst(port, "/blob.bin", 8)
    assert all(a[2] == bytes(range(256)) * 4 and a[1]["content-length"] == "1024" for a in answers)
    assert module_counter(port, "prepared_answers") == 0


# ---- accepting and closing ----

def listener_counters(port):
    web = web_status(port)
    return web["connections"], web["counters"]["accepted"]


def test_a_connection_is_accepted_once_its_request_is_in(web):
    """TCP_DEFER_ACCEPT: a client that has said nothing is not yet a
    connection of ours; its first bytes bring it in."""
    d, port, root = web
    _, accepted = listener_counters(port)
    with connect(port) as silent:
        time.sleep(0.3)
        connections, now = listener_counters(port)
        assert (connections, now) == (1, accepted + 1)      # the status request alone
        silent.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(silent)[2] == b"hello, world\n"
        assert listener_counters(port) == (2, accepted + 3)


def test_a_protocol_that_speaks_first_gets_its_connections_at_once_after_a_reload(web, tmp_path):
    """The same socket kept through a reload from http to fortune must stop
    waiting for the client's bytes: fortune speaks first."""
    d, port, root = web
    d.reload('listener "web" {\n  protocol = "fortune"\n  address = "127.0.0.1:%d"\n'
             '  fortune { file = "%s" }\n}\n' % (port, FORTUNES))
    with connect(port, timeout=2) as s:
        assert len(s.recv(4096)) > 0


def test_a_close_answer_ends_the_connection_without_waiting_for_the_client(web):
    """Nothing unread and every byte sent: the daemon closes at once (nginx's
    test) instead of lingering until the client's FIN."""
    d, port, root = web
    with connect(port) as s:
        s.sendall(b"GET /a.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        status, headers, body = read_response(s)
        assert (status, headers["connection"], body) == (200, "close", b"hello, world\n")
        assert s.recv(100) == b""
        assert listener_counters(port)[0] == 1              # ours is gone while we hold it


def test_a_close_answer_with_unread_bytes_behind_it_lingers_and_arrives_whole(web):
    """Bytes the client sent after a Connection: close request would turn a
    plain close into a reset that can destroy the answer: the daemon shuts
    its side, reads the rest away, and the client gets all and a clean end."""
    d, port, root = web
    with connect(port) as s:
        s.sendall(b"GET /blob.bin HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" + b"x" * 200000)
        time.sleep(0.3)
        status, headers, body = read_response(s)
        assert (status, body) == (200, bytes(range(256)) * 4)
        assert s.recv(100) == b""                           # a FIN, not ECONNRESET
