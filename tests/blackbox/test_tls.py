"""TLS on TCP listeners (issue 24), spoken to by curl, openssl s_client and
Python's ssl module, against a CA each test makes with openssl."""
import hashlib
import json
import os
import shutil
import re
import socket
import ssl
import subprocess
import time

import pytest

from conftest import BINARY, connect, free_port, is_closed_by_peer, wait_until

pytestmark = pytest.mark.skipif(subprocess.run(["which", "openssl"], capture_output=True).returncode != 0,
                                reason="needs openssl")


def openssl(*args, cwd):
    r = subprocess.run(["openssl", *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return r


class Pki:
    """A CA and certificates it signs, as PEM files in a folder."""

    def __init__(self, folder):
        self.dir = str(folder)
        os.makedirs(self.dir, exist_ok=True)
        self.ca = self.path("ca.pem")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", "ca.key", "-out", "ca.pem", "-days", "30", "-subj", "/CN=chassisd test CA", cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def issue(self, name, days=30, client=False, crl=None):
        """name.pem (certificate) and name.key for DNS name `name`."""
        with open(self.path(name + ".ext"), "w") as f:
            f.write("subjectAltName=DNS:%s\n" % name if not client else "extendedKeyUsage=clientAuth\n")
            if crl is not None:
                f.write("crlDistributionPoints=URI:%s\n" % crl)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", name + ".key",
                "-out", name + ".csr", "-subj", "/CN=" + name, cwd=self.dir)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-days", str(days), "-extfile", name + ".ext", "-out", name + ".pem", cwd=self.dir)
        return self.path(name + ".pem"), self.path(name + ".key")


@pytest.fixture
def pki(tmp_path):
    return Pki(tmp_path / "pki")


def tls_section(pki, name="a.test", extra=""):
    cert, key = pki.issue(name) if not os.path.exists(pki.path(name + ".pem")) else (
        pki.path(name + ".pem"), pki.path(name + ".key"))
    return 'tls { certificate = "%s"  key = "%s"  %s }' % (cert, key, extra)


def echo_tls(port, tls, extra=""):
    return ('log-level = "debug"\n'
            'listener "e" { protocol = "echo"  address = "127.0.0.1:%d"  %s\n  %s\n}\n' % (port, extra, tls))


def web_tls(port, root, tls, routes=""):
    """routes: more routes, ahead of the static one at "/"."""
    return ('log-level = "debug"\n'
            'listener "web" {\n  protocol = "http"  address = "127.0.0.1:%d"\n'
            '  http { %s route "/" { handler = "static"  root = "%s" } }\n  %s\n}\n' % (port, routes, root, tls))


def s_client(port, *args, data=b"", timeout=10, linger=0.0):
    """linger: seconds s_client stays connected before its input ends (a
    TLS 1.3 ticket comes after the handshake)."""
    p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port, *args], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(linger)
    out, err = p.communicate(data, timeout=timeout)
    return subprocess.CompletedProcess(p.args, p.returncode, out, err)


def client_context(pki, name=None):
    ctx = ssl.create_default_context(cafile=pki.ca)
    ctx.check_hostname = name is not None
    return ctx


def tls_connect(port, pki, name="a.test"):
    ctx = client_context(pki, name)
    raw = connect(port, timeout=10)
    return ctx.wrap_socket(raw, server_hostname=name)


def peer_common_name(sock):
    subject = dict(x[0] for x in sock.getpeercert()["subject"])
    return subject["commonName"]


@pytest.mark.parametrize("version", ["1.2", "1.3"])
def test_curl_gets_a_static_file_byte_exact_over_tls(start_daemon, pki, tmp_path, version):
    port = free_port()
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(3 * 1024 * 1024 + 17)
    (root / "big.bin").write_bytes(body)
    (root / "small.txt").write_bytes(b"hello over tls\n")
    start_daemon(web_tls(port, root, tls_section(pki)))
    url = "https://a.test:%d/" % port
    common = ["curl", "-sS", "--http1.1", "--cacert", pki.ca, "--resolve", "a.test:%d:127.0.0.1" % port,
              "--tlsv" + version, "--tls-max", version, "-w", "%{ssl_verify_result} %{http_version}"]
    r = subprocess.run([*common, "-o", str(tmp_path / "got"), url + "big.bin"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"0 1.1"
    assert hashlib.sha256((tmp_path / "got").read_bytes()).hexdigest() == hashlib.sha256(body).hexdigest()
    r = subprocess.run([*common, "-v", url + "small.txt", url + "small.txt"], capture_output=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"hello over tls\n")
    assert b"TLSv%s" % version.encode() in r.stderr
    assert b"Re-using existing connection" in r.stderr          # keep-alive through TLS


def test_sni_chooses_the_certificate_and_a_wrong_name_fails(start_daemon, pki):
    port = free_port()
    b_cert, b_key = pki.issue("b.test")
    start_daemon(echo_tls(port, tls_section(pki, extra='sni "b.test" { certificate = "%s" key = "%s" }' %
                                            (b_cert, b_key))))
    for name in ("a.test", "b.test"):
        r = s_client(port, "-servername", name, "-verify_hostname", name, "-CAfile", pki.ca,
                     "-verify_return_error", data=b"")
        assert r.returncode == 0, r.stderr
        assert b"subject=CN = %s" % name.encode() in r.stdout
        assert b"Verify return code: 0 (ok)" in r.stdout
    # An unknown name gets the default certificate, which the client refuses.
    r = subprocess.run(["curl", "-sS", "--cacert", pki.ca, "--resolve", "wrong.test:%d:127.0.0.1" % port,
                        "https://wrong.test:%d/" % port], capture_output=True, timeout=30)
    assert r.returncode == 60, r.stderr     # peer certificate cannot be authenticated
    assert b"wrong.test" in r.stderr


def test_old_protocols_are_refused(start_daemon, pki):
    port = free_port()
    d = start_daemon(echo_tls(port, tls_section(pki)))
    r = s_client(port, "-tls1_1", "-CAfile", pki.ca)
    assert r.returncode != 0
    assert b"alert protocol version" in r.stderr, r.stderr
    assert b"Cipher is (NONE)" in r.stdout
    d.wait_log(r"TLS handshake failed: .*(unsupported protocol|no protocols available)")


def test_protocols_tls13_only_refuses_tls12(start_daemon, pki):
    port = free_port()
    start_daemon(echo_tls(port, tls_section(pki, extra='protocols = "TLSv1.3"')))
    assert s_client(port, "-tls1_2", "-CAfile", pki.ca).returncode != 0
    r = s_client(port, "-tls1_3", "-CAfile", pki.ca)
    assert r.returncode == 0 and b"TLSv1.3" in r.stdout


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_sessions_resume(start_daemon, pki, tmp_path, version):
    port = free_port()
    start_daemon(echo_tls(port, tls_section(pki)))
    sess = str(tmp_path / "session.pem")
    # The client saves the session (with TLS 1.3, the ticket that comes
    # right after the handshake).
    first = s_client(port, version, "-CAfile", pki.ca, "-sess_out", sess, data=b"", linger=0.5)
    assert first.returncode == 0, first.stderr
    assert b"New, TLSv1" in first.stdout
    again = s_client(port, version, "-CAfile", pki.ca, "-sess_in", sess, data=b"")
    assert again.returncode == 0, again.stderr
    assert b"Reused, TLSv1" in again.stdout


def test_a_resumed_tls13_session_gets_a_new_ticket_and_the_chain_goes_on(start_daemon, pki, tmp_path):
    """A client that reconnects with the session of its last connection
    (wrk, curl, browsers) resumes every time: a TLS 1.3 ticket is for one
    use (RFC 8446 C.4), so a resumed connection must carry a new one.
    Without it every other reconnection was a full handshake."""
    port = free_port()
    start_daemon(echo_tls(port, tls_section(pki)))
    sessions = [str(tmp_path / ("s%d.pem" % i)) for i in range(4)]
    first = s_client(port, "-tls1_3", "-CAfile", pki.ca, "-sess_out", sessions[0], data=b"", linger=0.5)
    assert b"New, TLSv1.3" in first.stdout, first.stderr
    for before, after in zip(sessions, sessions[1:]):
        r = s_client(port, "-tls1_3", "-CAfile", pki.ca, "-sess_in", before, "-sess_out", after, data=b"",
                     linger=0.5)
        assert b"Reused, TLSv1.3" in r.stdout and b"Post-Handshake New Session Ticket" in r.stdout, r.stdout
        assert os.path.getsize(after) > 0


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_tickets_resume_across_a_reload(start_daemon, pki, tmp_path, version):
    """A reload builds new TLS contexts; the ticket keys are the process's,
    so a session from before it still resumes."""
    port = free_port()
    config = echo_tls(port, tls_section(pki))
    d = start_daemon(config)
    sess = str(tmp_path / "session.pem")
    first = s_client(port, version, "-CAfile", pki.ca, "-sess_out", sess, data=b"", linger=0.5)
    assert b"New, TLSv1" in first.stdout, first.stderr
    assert "reload applied" in d.reload(config + "# reloaded\n")
    again = s_client(port, version, "-CAfile", pki.ca, "-sess_in", sess, data=b"")
    assert again.returncode == 0, again.stderr
    assert b"Reused, TLSv1" in again.stdout


def test_a_session_does_not_resume_past_a_new_client_certificate_rule(start_daemon, pki, tmp_path):
    """Once a reload requires client certificates, a session from before
    it must not resume: resuming would skip the certificate."""
    port = free_port()
    d = start_daemon(echo_tls(port, tls_section(pki)))
    sess = str(tmp_path / "session.pem")
    first = s_client(port, "-tls1_2", "-CAfile", pki.ca, "-sess_out", sess, data=b"")
    assert b"New, TLSv1" in first.stdout, first.stderr
    d.reload(echo_tls(port, tls_section(pki, extra='client-certificate = "required"  ca = "%s"' % pki.ca)))
    again = s_client(port, "-tls1_2", "-CAfile", pki.ca, "-sess_in", sess, data=b"")
    assert b"Reused, TLSv1" not in again.stdout
    assert again.returncode != 0
    d.wait_log(r"TLS handshake failed: .*peer did not return a certificate")


def test_session_tickets_off_still_resumes_tls12_by_id_but_sends_no_ticket(start_daemon, pki):
    port = free_port()
    start_daemon(echo_tls(port, tls_section(pki, extra="session-tickets = false")))
    r = s_client(port, "-tls1_2", "-CAfile", pki.ca, data=b"")
    assert r.returncode == 0
    assert b"TLS session ticket:" not in r.stdout


def test_mutual_tls_required(start_daemon, pki):
    port = free_port()
    client_cert, client_key = pki.issue("client", client=True)
    other = Pki(os.path.join(pki.dir, "other"))
    stranger_cert, stranger_key = other.issue("stranger", client=True)
    d = start_daemon(echo_tls(port, tls_section(pki, extra='client-certificate = "required"  ca = "%s"' % pki.ca)))
    ctx = client_context(pki, "a.test")
    ctx.load_cert_chain(client_cert, client_key)
    with ctx.wrap_socket(connect(port), server_hostname="a.test") as s:
        s.sendall(b"with a certificate")
        assert s.recv(100) == b"with a certificate"
    for chain in (None, (stranger_cert, stranger_key)):
        ctx = client_context(pki, "a.test")
        if chain:
            ctx.load_cert_chain(*chain)
        # TLS 1.3: the client's handshake ends before the server has
        # checked its certificate; the refusal is the alert that follows.
        with pytest.raises((ssl.SSLError, ConnectionError)) as refused:
            with ctx.wrap_socket(connect(port), server_hostname="a.test") as s:
                s.recv(100)     # no write first: it could meet a closed socket, and a reset drops the alert
        assert "ALERT" in str(refused.value).upper(), refused.value
    d.wait_log(r"TLS handshake failed: .*peer did not return a certificate")
    d.wait_log(r"TLS handshake failed: .*certificate verify failed")


def test_echo_over_tls_is_byte_exact_and_closes_with_close_notify(start_daemon, pki):
    port = free_port()
    start_daemon(echo_tls(port, tls_section(pki)))
    payload = os.urandom(2 * 1024 * 1024)
    s = tls_connect(port, pki)
    got = bytearray()
    # 64 KiB out, its echo back, in one thread: an SSL object written and
    # read from two threads at once is undefined in OpenSSL (it closed or
    # stalled this test now and then on a busy machine).
    step = 64 * 1024
    for at in range(0, len(payload), step):
        s.sendall(payload[at:at + step])
        while len(got) < min(at + step, len(payload)):
            chunk = s.recv(65536)
            assert chunk, "closed after %d bytes" % len(got)
            got += chunk
    assert bytes(got) == payload
    assert s.version() == "TLSv1.3"
    # Our close_notify, then theirs: unwrap() returns only when both went.
    raw = s.unwrap()
    raw.close()


def test_fortune_over_tls_with_s_client(start_daemon, pki):
    port = free_port()
    start_daemon('listener "f" { protocol = "fortune"  address = "127.0.0.1:%d"\n  %s\n}\n' %
                 (port, tls_section(pki)))
    r = s_client(port, "-CAfile", pki.ca, "-quiet", data=b"")
    assert r.returncode == 0, r.stderr
    assert len(r.stdout.strip()) > 0


def test_a_stalled_handshake_is_cut_at_the_deadline(start_daemon, pki):
    port = free_port()
    d = start_daemon(echo_tls(port, tls_section(pki, extra="handshake-timeout = 1")))
    with connect(port) as silent, connect(port) as half:
        half.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")   # a ClientHello's first bytes
        start = time.monotonic()
        assert is_closed_by_peer(silent, timeout=5)
        assert is_closed_by_peer(half, timeout=5)
        assert 0.8 < time.monotonic() - start < 3.5
    d.wait_log(r"TLS handshake not done within 1 s")
    # The listener serves on.
    with tls_connect(port, pki) as s:
        s.sendall(b"still here")
        assert s.recv(100) == b"still here"


def test_reload_with_a_new_certificate_keeps_live_connections(start_daemon, pki):
    port = free_port()
    d = start_daemon(echo_tls(port, tls_section(pki, "a.test")))
    clients = [tls_connect(port, pki, "a.test") for _ in range(20)]
    for c in clients:
        c.sendall(b"before")
        assert c.recv(100) == b"before"
    new_cert, new_key = pki.issue("a.test.new")
    # Same name, new certificate: a.test.new's file, served for a.test too.
    status = d.reload(echo_tls(port, 'tls { certificate = "%s"  key = "%s" }' % (new_cert, new_key)))
    assert "reload applied" in status
    for c in clients:
        c.sendall(b"after")
        assert c.recv(100) == b"after"
        assert peer_common_name(c) == "a.test"
    with tls_connect(port, pki, None) as fresh:
        assert peer_common_name(fresh) == "a.test.new"
    for c in clients:
        c.close()


def test_reload_with_a_new_certificate_while_20_curls_download(start_daemon, pki, tmp_path):
    """20 curl downloads over TLS, slowed so that a reload with a new
    certificate comes in the middle of every one: each ends byte-exact,
    and a connection after the reload is shown the new certificate."""
    port = free_port()
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(6 << 20)      # 6 s at 1 MB/s: the reload lands in the middle
    (root / "big.bin").write_bytes(body)
    d = start_daemon(web_tls(port, root, tls_section(pki, "a.test")))
    outs = [tmp_path / ("got%d" % i) for i in range(20)]
    curls = [subprocess.Popen(["curl", "-sS", "--max-time", "60", "--limit-rate", "1M", "--cacert", pki.ca,
                               "--resolve", "a.test:%d:127.0.0.1" % port, "-o", str(out),
                               "https://a.test:%d/big.bin" % port], stderr=subprocess.PIPE) for out in outs]
    wait_until(lambda: all(out.exists() and out.stat().st_size > 0 for out in outs), 20)
    new_cert, new_key = pki.issue("a.test.new")
    status = d.reload(web_tls(port, root, 'tls { certificate = "%s"  key = "%s" }' % (new_cert, new_key)))
    assert "reload applied" in status
    assert all(c.poll() is None for c in curls), "every download was still going at the reload"
    for c, out in zip(curls, outs):
        assert c.wait(90) == 0, c.stderr.read()
        assert out.read_bytes() == body
    with tls_connect(port, pki, None) as fresh:
        assert peer_common_name(fresh) == "a.test.new"


def test_a_mismatched_key_is_a_reload_error_and_the_old_certificate_serves(start_daemon, pki):
    port = free_port()
    d = start_daemon(echo_tls(port, tls_section(pki, "a.test")))
    b_cert, b_key = pki.issue("b.test")
    status = d.reload(echo_tls(port, 'tls {\n certificate = "%s"\n key = "%s"\n}' % (pki.path("a.test.pem"), b_key)))
    assert "reload failed" in status
    d.wait_log(r'chassisd\.conf:5: listener "e": tls: key %s does not match certificate %s' %
               (b_key, pki.path("a.test.pem")))
    with tls_connect(port, pki, "a.test") as s:
        assert peer_common_name(s) == "a.test"
        s.sendall(b"old one")
        assert s.recv(100) == b"old one"


def run_check(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30)


def test_config_check_loads_the_certificates(pki, tmp_path):
    port = free_port()
    conf = tmp_path / "c.conf"
    conf.write_text(echo_tls(port, tls_section(pki)))
    r = run_check("-t", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    conf.write_text(echo_tls(port, 'tls {\n certificate = "%s"\n key = "%s"\n}' %
                             (pki.path("nonexistent.pem"), pki.path("a.test.key"))))
    r = run_check("-t", "-c", str(conf))
    assert r.returncode == 1
    assert r.stderr == ('%s:4: listener "e": tls: cannot read certificate %s: No such file or directory\n' %
                        (conf, pki.path("nonexistent.pem")))
    # A certificate about to expire is a warning, not an error.
    short_cert, short_key = pki.issue("short.test", days=3)
    conf.write_text(echo_tls(port, 'tls { certificate = "%s" key = "%s" }' % (short_cert, short_key)))
    r = run_check("-t", "-c", str(conf))
    assert r.returncode == 0
    assert re.search(r"warning: certificate %s expires in [23] days" % re.escape(short_cert), r.stderr), r.stderr


def test_effective_config_with_tls_reads_back_as_itself(pki, tmp_path):
    conf = tmp_path / "c.conf"
    b_cert, b_key = pki.issue("b.test")
    conf.write_text(echo_tls(free_port(), tls_section(pki, extra='alpn = {"x-echo"} sni "b.test" { certificate = "%s" '
                                                                  'key = "%s" }' % (b_cert, b_key))))
    first = run_check("-T", "-c", str(conf))
    assert first.returncode == 0, first.stderr
    assert 'protocols="TLSv1.2 TLSv1.3"' in first.stdout and "handshake-timeout=10" in first.stdout
    again = tmp_path / "effective.conf"
    again.write_text(first.stdout)
    assert run_check("-t", "-c", str(again)).returncode == 0
    assert run_check("-T", "-c", str(again)).stdout == first.stdout


def test_alpn_picks_a_name_both_know(start_daemon, pki):
    port = free_port()
    start_daemon(echo_tls(port, tls_section(pki, extra='alpn = {"x-echo", "http/1.1"}')))
    r = s_client(port, "-CAfile", pki.ca, "-alpn", "foo,http/1.1", data=b"")
    assert b"ALPN protocol: http/1.1" in r.stdout
    r = s_client(port, "-CAfile", pki.ca, "-alpn", "foo", data=b"")
    assert b"No ALPN negotiated" in r.stdout


def test_handshakes_and_failures_are_counted_in_metrics(start_daemon, pki):
    port, web = free_port(), free_port()
    client_cert, client_key = pki.issue("client", client=True)
    config = echo_tls(port, tls_section(pki, extra='client-certificate = "optional"  ca = "%s"' % pki.ca)) + (
        'listener "web" { protocol = "http"  address = "127.0.0.1:%d"\n'
        '  http { route "/metrics" { handler = "metrics" } } }\n' % web)
    start_daemon(config)
    sess = os.path.join(pki.dir, "session.pem")
    assert s_client(port, "-tls1_2", "-CAfile", pki.ca, "-sess_out", sess).returncode == 0
    assert s_client(port, "-tls1_2", "-CAfile", pki.ca, "-sess_in", sess).returncode == 0
    assert s_client(port, "-tls1_3", "-CAfile", pki.ca).returncode == 0
    assert s_client(port, "-tls1_1", "-CAfile", pki.ca).returncode != 0
    assert s_client(port, "-tls1_2", "-cipher", "AES128-SHA", "-CAfile", pki.ca).returncode != 0
    with connect(port) as s:
        s.sendall(b"not tls at all\r\n\r\n")
        assert is_closed_by_peer(s)
    r = subprocess.run(["curl", "-sS", "http://127.0.0.1:%d/metrics" % web], capture_output=True, text=True,
                       timeout=30)
    metrics = r.stdout

    def value(key):
        m = re.search(r'^chassisd_listener_%s_total\{listener="e"[^}]*\} (\d+)$' % key, metrics, re.M)
        assert m, key + "\n" + metrics
        return int(m.group(1))

    assert value("tls_handshakes") == 3
    assert value("tls_resumed") == 1
    assert value("tls_version_1_2") == 2 and value("tls_version_1_3") == 1
    assert value("tls_failed_protocol_version") == 1
    assert value("tls_failed_no_shared_cipher") == 1
    assert value("tls_failed_other") == 1
    assert value("tls_failed_client_certificate") == 0
    assert 'chassisd_listener_tls_handshakes_total{listener="web"' not in metrics    # plain: none
    m = re.search(r'^chassisd_listener_tls_certificate_expiry_seconds\{listener="e"[^}]*\} (\d+)$', metrics, re.M)
    assert m and 29 * 86400 < int(m.group(1)) <= 30 * 86400, metrics      # the test's certificates: 30 days
    promtool = shutil.which("promtool")
    if promtool:
        check = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True, text=True,
                               timeout=30)
        assert check.returncode == 0 and check.stdout + check.stderr == "", check.stdout + check.stderr


SEVERE = ("MEDIUM", "HIGH", "CRITICAL")


@pytest.mark.skipif(shutil.which("testssl") is None, reason="needs testssl.sh")
def test_testssl_finds_nothing_above_low_with_the_defaults(start_daemon, pki, tmp_path):
    """testssl.sh's TLS checks (protocols, ciphers, forward secrecy,
    server defaults, preferences, vulnerabilities) against an http listener
    with nothing but a certificate and key. Not its HTTP header checks
    (-h): those judge the answers' headers, not TLS. The certificate is
    a year long, names a CRL and chains to a CA testssl is given, so that
    what is judged is the server."""
    port = free_port()
    www = tmp_path / "www"
    www.mkdir()
    (www / "index.html").write_text("hello\n")
    cert, key = pki.issue("a.test", days=365, crl="http://127.0.0.1/ca.crl")
    start_daemon(web_tls(port, www, 'tls { certificate = "%s"  key = "%s" }' % (cert, key)))
    report = tmp_path / "testssl.json"
    r = subprocess.run(["testssl", "--quiet", "--color", "0", "--warnings", "off", "-p", "-s", "-f", "-P", "-S",
                        "-U", "--add-ca", pki.ca, "--jsonfile", str(report), "--ip", "127.0.0.1",
                        "https://a.test:%d/" % port], capture_output=True, text=True, timeout=600)
    findings = {f["id"]: f for f in json.loads(report.read_text())}
    assert findings, r.stdout + r.stderr
    severe = ["%s %s: %s" % (f["severity"], f["id"], f["finding"]) for f in findings.values()
              if f["severity"] in SEVERE]
    assert severe == []
    # It spoke to us: what it saw is what the defaults offer.
    assert findings["TLS1_3"]["finding"].startswith("offered")
    assert findings["TLS1_2"]["finding"] == "offered"
    for old in ("SSLv2", "SSLv3", "TLS1", "TLS1_1"):
        assert findings[old]["finding"] == "not offered", old
    assert findings["cert_chain_of_trust"]["finding"].startswith("passed")


# ---- the relay's upstream side ----

class Nginx:
    """nginx serving root over TLS with a certificate for `name`, logging
    each request's TLS session reuse ("r" or ".")."""

    def __init__(self, folder, port, root, cert, key):
        self.dir = str(folder)
        self.log = os.path.join(self.dir, "access.log")
        os.makedirs(self.dir, exist_ok=True)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""daemon off; master_process off; worker_processes 1;
pid {d}/nginx.pid; error_log {d}/error.log warn;
events {{ worker_connections 256; }}
http {{
    client_body_temp_path {d}; proxy_temp_path {d}; fastcgi_temp_path {d};
    uwsgi_temp_path {d}; scgi_temp_path {d};
    log_format tls "$ssl_protocol $ssl_session_reused $request";
    access_log {log} tls;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {cert}; ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root {root};
    }}
}}
""".format(d=self.dir, log=self.log, port=port, cert=cert, key=key, root=root))
        self.proc = subprocess.Popen(["nginx", "-c", conf, "-p", self.dir], stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE)
        deadline = time.time() + 10
        while not _listening(port):
            assert self.proc.poll() is None and time.time() < deadline, self.proc.stderr.read()
            time.sleep(0.05)

    def requests(self):
        with open(self.log) as f:
            return [line.split() for line in f]

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


def _listening(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


@pytest.fixture
def backend(pki, tmp_path):
    if shutil.which("nginx") is None and not os.path.exists("/usr/sbin/nginx"):
        pytest.skip("needs nginx")
    root = tmp_path / "backend-www"
    root.mkdir()
    (root / "big.bin").write_bytes(os.urandom(3 << 20))
    cert, key = pki.issue("backend.test")
    port = free_port()
    server = Nginx(tmp_path / "nginx", port, root, cert, key)
    server.port, server.root = port, root
    yield server
    server.stop()


def relay_tls(port, upstream_port, tls, extra=""):
    return ('log-level = "debug"\n'
            'listener "r" { protocol = "relay"  address = "127.0.0.1:%d"  %s\n'
            '  relay { upstream = {"127.0.0.1:%d"}  %s }\n}\n' % (port, extra, upstream_port, tls))


def curl(*args):
    return subprocess.run(["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=30)


def test_the_relay_speaks_tls_to_an_nginx_upstream_and_resumes(start_daemon, pki, backend):
    port = free_port()
    start_daemon(relay_tls(port, backend.port, 'tls { ca = "%s"  server-name = "backend.test" }' % pki.ca))
    for _ in range(3):
        r = curl("http://127.0.0.1:%d/big.bin" % port)
        assert r.returncode == 0, r.stderr
        assert hashlib.sha256(r.stdout).digest() == hashlib.sha256((backend.root / "big.bin").read_bytes()).digest()
    seen = backend.requests()
    assert [line[0] for line in seen] == ["TLSv1.3"] * 3
    # The first connection's session is offered by the next ones.
    assert [line[1] for line in seen] == [".", "r", "r"]


def test_an_upstream_with_the_wrong_name_is_refused_and_said_why(start_daemon, pki, backend):
    port = free_port()
    d = start_daemon(relay_tls(port, backend.port, 'tls { ca = "%s"  server-name = "other.test" }' % pki.ca))
    r = curl("http://127.0.0.1:%d/big.bin" % port)
    assert r.stdout == b"" and r.returncode != 0
    d.wait_log(r"<4>TLS handshake failed: .*certificate verify failed \(hostname mismatch\)")
    d.wait_log(r"upstream 127\.0\.0\.1:%d.*TLS handshake failed" % backend.port)
    assert backend.requests() == []


def test_an_upstream_from_another_ca_is_refused(start_daemon, pki, backend, tmp_path):
    other = Pki(tmp_path / "other")
    port = free_port()
    d = start_daemon(relay_tls(port, backend.port, 'tls { ca = "%s"  server-name = "backend.test" }' % other.ca))
    assert curl("http://127.0.0.1:%d/big.bin" % port).stdout == b""
    d.wait_log(r"TLS handshake failed: .*certificate verify failed \(unable to get local issuer certificate\)")


def test_verify_false_takes_any_certificate(start_daemon, pki, backend):
    port = free_port()
    start_daemon(relay_tls(port, backend.port, "tls { verify = false }"))
    r = curl("http://127.0.0.1:%d/big.bin" % port)
    assert r.returncode == 0 and len(r.stdout) == 3 << 20, r.stderr


def test_tls_at_both_ends_of_the_relay(start_daemon, pki, backend):
    """TLS from curl to chassisd, and from chassisd to nginx."""
    port = free_port()
    start_daemon(relay_tls(port, backend.port, 'tls { ca = "%s"  server-name = "backend.test" }' % pki.ca,
                           extra=tls_section(pki)))
    r = curl("--cacert", pki.ca, "--resolve", "a.test:%d:127.0.0.1" % port, "https://a.test:%d/big.bin" % port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == (backend.root / "big.bin").read_bytes()


def test_tls_termination_in_front_of_a_plain_upstream(start_daemon, pki, tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_bytes(b"plain upstream\n" * 1000)
    web, port = free_port(), free_port()
    start_daemon('listener "web" { protocol = "http"  address = "127.0.0.1:%d"\n'
                 '  http { route "/" { handler = "static"  root = "%s" } } }\n' % (web, site) +
                 'listener "front" { protocol = "relay"  address = "127.0.0.1:%d"  %s\n'
                 '  relay { upstream = {"127.0.0.1:%d"} } }\n' % (port, tls_section(pki), web))
    r = curl("--cacert", pki.ca, "--resolve", "a.test:%d:127.0.0.1" % port, "https://a.test:%d/page.html" % port)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"plain upstream\n" * 1000


def test_an_upstream_ca_that_does_not_load_is_a_config_error(pki, tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text(relay_tls(free_port(), free_port(), 'tls {\n  ca = "%s"\n}' % (tmp_path / "missing.pem")))
    r = subprocess.run([BINARY, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert r.stderr == '%s:4: listener "r": tls: cannot read ca %s: No such file or directory\n' % (
        conf, tmp_path / "missing.pem")


def https(pki, port, path, *args):
    """curl's stdout for https://a.test:port/path."""
    r = subprocess.run(["curl", "-sS", "--max-time", "30", "--cacert", pki.ca, "--resolve",
                        "a.test:%d:127.0.0.1" % port, *args, "https://a.test:%d%s" % (port, path)],
                       capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stdout


def test_a_file_truncated_during_a_tls_download_ends_the_connection_at_once(start_daemon, pki, tmp_path):
    """Over TLS libevent used to map the file: cut short under the map, the
    pages past its new end raised SIGBUS and the daemon died. The file is
    read with pread now, and the cut ends the connection as on plain TCP
    (test_http's test_a_file_truncated_during_a_download_...)."""
    port = free_port()
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(50 << 20)
    (root / "big.bin").write_bytes(body)
    (root / "a.txt").write_bytes(b"still serving\n")
    d = start_daemon(web_tls(port, root, tls_section(pki), 'route "/status" { handler = "status" }'))
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)     # a slow reader: little in flight
    raw.settimeout(10)
    raw.connect(("127.0.0.1", port))
    got = b""
    with client_context(pki, "a.test").wrap_socket(raw, server_hostname="a.test") as s:
        s.sendall(b"GET /big.bin HTTP/1.1\r\nHost: a.test\r\n\r\n")
        while b"\r\n\r\n" not in got:
            got += s.recv(4096)
        head, _, got = got.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nContent-Length: %d\r\n" % len(body) in head
        os.truncate(root / "big.bin", 1 << 20)
        try:
            while True:
                chunk = s.recv(1 << 16)
                if not chunk:
                    break
                got += chunk
        except (ConnectionError, ssl.SSLError):     # the reset (SSLEOFError is an SSLError)
            pass
    # Cut, never beyond what the file still has, and every byte the file's.
    assert len(got) <= 1 << 20 and got == body[:len(got)], len(got)
    assert wait_until(lambda: "a file ended before its length" in d.log() or d.proc.poll() is not None)
    assert d.proc.poll() is None, "the daemon died: %s" % d.proc.returncode
    d.wait_log(r"<6>a file ended before its length \(changed while being sent\): connection reset")
    status = json.loads(https(pki, port, "/status"))
    assert [l for l in status["listeners"] if l["name"] == "web"][0]["module"]["files_cut_short"] == 1
    assert https(pki, port, "/a.txt") == b"still serving\n"


def read_answers(data, heads):
    """Splits pipelined answers; heads: which of them answer a HEAD (no
    body). Bodies by Content-Length or chunked."""
    answers = []
    for is_head in heads:
        head, sep, data = data.partition(b"\r\n\r\n")
        assert sep, "an incomplete head: %r" % head[:200]
        lines = head.decode("latin-1").split("\r\n")
        headers = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:]}
        body = b""
        if is_head:
            pass
        elif headers.get("transfer-encoding") == "chunked":
            while True:
                size, _, data = data.partition(b"\r\n")
                n = int(size, 16)
                assert data[n:n + 2] == b"\r\n", "chunk framing"
                body, data = body + data[:n], data[n + 2:]
                if n == 0:
                    break
        else:
            n = int(headers.get("content-length", "0"))
            body, data = data[:n], data[n:]
        answers.append((int(lines[0].split()[1]), headers, body))
    assert data == b"", "bytes after the last answer: %r" % data[:200]
    return answers


def test_pipelined_tls_answers_from_files_are_byte_exact_and_in_order(start_daemon, pki, tmp_path):
    """Memory queued behind a file (the next answer's head, a chunk's CRLF)
    goes out behind the file's bytes, which are read as they are sent."""
    port = free_port()
    root, clips = tmp_path / "www", tmp_path / "clips"
    root.mkdir()
    clips.mkdir()
    large = os.urandom(6 * 1024 * 1024 + 4321)          # beyond buffer-size and prepared answers
    blob = os.urandom(1000)                             # small: prepared (a memory file) once asked often
    clip = os.urandom(2 * 1024 * 1024 + 99)             # a feed's file: chunked, from a descriptor
    (root / "large.bin").write_bytes(large)
    (root / "blob.bin").write_bytes(blob)
    (root / "a.txt").write_bytes(b"hello\n")
    (clips / "only.wav").write_bytes(clip)
    routes = ('route "/status" { handler = "status" }\n'
              'route "/clip" { handler = "audio-cookie"  audio-cookie { directory = "%s"  extensions = {"wav"} } }\n'
              % clips)
    start_daemon(web_tls(port, root, tls_section(pki), routes))
    asked = [("GET", "/a.txt", ""), ("GET", "/large.bin", ""), ("HEAD", "/large.bin", ""),
             ("GET", "/large.bin", "Range: bytes=100000-2500000\r\n"), ("GET", "/clip", ""),
             ("GET", "/nothing-here", "")] + [("GET", "/blob.bin", "")] * 12 + [
             ("GET", "/clip", ""), ("GET", "/large.bin", ""), ("GET", "/a.txt", "Connection: close\r\n")]
    requests = b"".join(b"%s %s HTTP/1.1\r\nHost: a.test\r\n%s\r\n" % (m.encode(), p.encode(), x.encode())
                        for m, p, x in asked)
    r = s_client(port, "-CAfile", pki.ca, "-quiet", data=requests, timeout=120)
    assert r.returncode == 0, r.stderr
    answers = read_answers(r.stdout, [m == "HEAD" for m, _, _ in asked])
    expected = [(200, b"hello\n"), (200, large), (200, b""), (206, large[100000:2500001]), (200, clip),
                (404, None)] + [(200, blob)] * 12 + [(200, clip), (200, large), (200, b"hello\n")]
    for (status, body), (got_status, headers, got_body), what in zip(expected, answers, asked):
        assert got_status == status, what
        assert body is None or got_body == body, what
    assert answers[2][1]["content-length"] == str(len(large))
    assert answers[-1][1]["connection"] == "close"
    status = json.loads(https(pki, port, "/status"))
    assert [l for l in status["listeners"] if l["name"] == "web"][0]["module"]["prepared_answers"] >= 1


def test_a_large_tls_download_by_a_slow_reader_is_byte_exact(start_daemon, pki, tmp_path):
    """A reader slower than the daemon: writes that OpenSSL must retry, the
    file read a chunk at a time in between."""
    port = free_port()
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(9 * 1024 * 1024 + 5)
    (root / "big.bin").write_bytes(body)
    start_daemon(web_tls(port, root, tls_section(pki)))
    got = https(pki, port, "/big.bin", "--limit-rate", "20M")
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(body).hexdigest()


# ---- a stream's https source (libcurl) ----

def test_an_https_source_is_checked_against_its_ca_and_streamed(start_daemon, pki, tmp_path):
    """chassisd's own https listener is the origin: a source that trusts
    its CA sends the file's bytes; one that trusts another CA sends
    nothing and says why."""
    from test_stream import Receiver, stream_unit
    root = tmp_path / "www"
    root.mkdir()
    data = os.urandom(1316 * 300 + 5)
    (root / "radio.ts").write_bytes(data)
    cert, key = pki.issue("localhost")
    other = Pki(tmp_path / "other")
    origin, port, bad = free_port(), free_port(socket.SOCK_DGRAM), free_port(socket.SOCK_DGRAM)
    rx, rx_bad = Receiver(port), Receiver(bad)
    url = 'url = "https://localhost:%d/radio.ts"  backoff = 30' % origin
    d = start_daemon(web_tls(origin, root, 'tls { certificate = "%s"  key = "%s" }' % (cert, key)) +
                     stream_unit("tv", ["127.0.0.1:%d" % port], url + '  tls { ca = "%s" }' % pki.ca,
                                 "  rate = 8000000\n") +
                     stream_unit("untrusted", ["127.0.0.1:%d" % bad], url + '  tls { ca = "%s" }' % other.ca))
    wait_until(lambda: sum(map(len, rx.datagrams)) >= len(data), 15)
    assert rx.stop() == data
    d.wait_log(r"certificate.*stream=untrusted")
    assert rx_bad.stop() == b""


@pytest.mark.parametrize("source, error", [
    ('file = "/etc/hostname"  tls { verify = false }', ':3: stream "s": source: "tls" applies to a url source only'),
    ('url = "https://localhost/"  tls { server-name = "x" }',
     ':3: stream "s": source: server-name does not apply to a url source: the url\'s host is checked'),
])
def test_tls_in_a_source_is_checked(tmp_path, source, error):
    conf = tmp_path / "c.conf"
    conf.write_text('stream "s" {\n  protocol = "udp"  destination = {"127.0.0.1:9"}\n  source { %s }\n}\n' % source)
    r = subprocess.run([BINARY, "-t", "-c", str(conf)], capture_output=True, text=True, timeout=10)
    assert r.returncode == 1
    assert r.stderr == str(conf) + error + "\n"


def kernel_tls_available():
    """Whether this kernel can take a TLS socket over (the tls ULP)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    try:
        with socket.create_connection(listener.getsockname()) as client:
            client.setsockopt(socket.IPPROTO_TCP, 31, b"tls")      # TCP_ULP
            return True
    except OSError:
        return False
    finally:
        listener.close()


def test_kernel_tls_where_there_is_none_falls_back_and_says_so(start_daemon, pki, tmp_path):
    port, web = free_port(), free_port()
    root = tmp_path / "www"
    root.mkdir()
    body = os.urandom(1 << 20)
    (root / "f.bin").write_bytes(body)
    d = start_daemon(web_tls(port, root, tls_section(pki, extra="kernel-tls = true"),
                             'route "/metrics" { handler = "metrics" }'))
    assert https(pki, port, "/f.bin") == body
    metrics = https(pki, port, "/metrics").decode()
    sent_by_kernel = int(re.search(r'^chassisd_listener_tls_kernel_send_total\{[^}]*listener="web"[^}]*\} (\d+)', metrics,
                                   re.M).group(1))
    if kernel_tls_available():
        assert sent_by_kernel in (0, 1, 2)
    else:
        assert sent_by_kernel == 0
        assert "kTLS" not in d.log()
    d.wait_log(r"TLS handshake done: TLSv1\.3")
