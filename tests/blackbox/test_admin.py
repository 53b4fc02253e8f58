"""What an administrator used to nginx and xinetd expects of the config:
includes, units kept off, the effective config (-T)."""
import os
import re
import shutil
import socket
import subprocess

import pytest

from conftest import BINARY, ROOT, connect, echo_listener, echo_once, even_port, free_port, wait_until


def run(*args):
    return subprocess.run([BINARY, *args], capture_output=True, text=True, timeout=30)


def refused(port):
    try:
        with connect(port, timeout=2):
            return False
    except ConnectionRefusedError:
        return True


def test_includes_a_sorted_glob_relative_to_the_including_file(start_daemon, tmp_path):
    first, second = free_port(), free_port()
    conf_d = tmp_path / "conf.d"
    conf_d.mkdir()
    (tmp_path / "empty.d").mkdir()
    (conf_d / "20-second.conf").write_text(echo_listener("second", second))
    (conf_d / "10-first.conf").write_text(echo_listener("first", first))
    (conf_d / "notes.txt").write_text("not a config\n")
    d = start_daemon('include = "conf.d/*.conf"\ninclude = "empty.d/*.conf"\n', workdir=str(tmp_path))
    for port in (first, second):
        with connect(port) as s:
            assert echo_once(s)
    # Sorted: the second file's listener is the one that overlaps the first's.
    (conf_d / "30-clash.conf").write_text(echo_listener("clash", first))
    assert "reload failed" in d.reload()
    d.wait_log(r'<3>%s:2: listener "clash": address 127\.0\.0\.1:%d \(tcp\) overlaps listener "first" '
               r"\(%s:2\)" % (re.escape(str(conf_d / "30-clash.conf")), first,
                              re.escape(str(conf_d / "10-first.conf"))))


def test_include_errors_name_the_included_file_and_its_line(tmp_path):
    (tmp_path / "bad.inc").write_text('\n\nlistener "a" {\n protocol = "echo"\n address = "127.0.0.1:1"\n'
                                      ' per-source = 0\n}\n')
    conf = tmp_path / "c.conf"
    conf.write_text('include = "bad.inc"\ninclude = "missing.inc"\ninclude = "nothing/*.inc"\n')
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1
    assert r.stderr.splitlines() == [
        "%s:2: include %s/missing.inc: No such file or directory" % (conf, tmp_path),
        "%s:6: listener \"a\": per-source must be from 1 to 1000000, not 0" % (tmp_path / "bad.inc"),
    ]


def test_includes_nested_deeper_than_8_or_in_a_cycle_are_errors(tmp_path):
    for i in range(10):
        (tmp_path / ("d%d.conf" % i)).write_text('include = "d%d.conf"\n' % (i + 1))
    (tmp_path / "d10.conf").write_text("")
    r = run("-t", "-c", str(tmp_path / "d2.conf"))
    assert r.returncode == 0, r.stderr       # d2, then d3 .. d10: 8 levels
    r = run("-t", "-c", str(tmp_path / "d1.conf"))
    assert r.returncode == 1
    assert r.stderr == "%s:1: include %s: includes nested deeper than 8\n" % (
        tmp_path / "d9.conf", tmp_path / "d10.conf")
    (tmp_path / "d10.conf").write_text('include = "d5.conf"\n')
    r = run("-t", "-c", str(tmp_path / "d5.conf"))
    assert r.returncode == 1
    assert r.stderr == "%s:1: include %s: a cycle (it is being read already)\n" % (
        tmp_path / "d10.conf", tmp_path / "d5.conf")


def test_enabled_false_keeps_a_listener_off_and_a_reload_flips_it(start_daemon):
    on, off = free_port(), free_port()
    d = start_daemon(echo_listener("on", on) + echo_listener("later", off, "enabled = false"))
    assert refused(off)
    with connect(on) as s:
        assert echo_once(s)
    assert "reload applied" in d.reload(echo_listener("on", on) + echo_listener("later", off))
    with connect(off) as s:
        assert echo_once(s)
    assert "reload applied" in d.reload(echo_listener("on", on, "enabled = false") + echo_listener("later", off))
    assert refused(on)
    with connect(off) as s:
        assert echo_once(s)
    assert d.stop() == 0


def test_a_unit_kept_off_is_still_checked(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text('listener "off" {\n enabled = false\n protocol = "echo"\n address = "127.0.0.1:0:0"\n}\n')
    r = run("-t", "-c", str(conf))
    assert r.returncode == 1 and ':4: listener "off": bad address' in r.stderr


# tls.conf names certificates that -t loads and no machine has:
# test_tls.py round-trips a TLS config with certificates it makes.
CORPUS = [os.path.join(ROOT, "tests", "conf", "good", f) for f in sorted(os.listdir(
    os.path.join(ROOT, "tests", "conf", "good"))) if f.endswith(".conf") and f != "tls.conf"] + [
    os.path.join(ROOT, "conf", "chassisd.conf")]


@pytest.mark.parametrize("config", CORPUS, ids=os.path.basename)
def test_effective_config_reads_back_as_itself(config, tmp_path):
    first = run("-T", "-c", config)
    assert first.returncode == 0, first.stderr
    again = tmp_path / "effective.conf"
    again.write_text(first.stdout)
    check = run("-t", "-c", str(again))
    assert check.returncode == 0 and check.stdout == "%s: ok\n" % again, check.stderr
    assert run("-T", "-c", str(again)).stdout == first.stdout


def test_effective_config_has_includes_defaults_and_units_kept_off(tmp_path):
    port = free_port()
    (tmp_path / "more.conf").write_text(echo_listener("included", port, "allow = {}"))
    conf = tmp_path / "c.conf"
    conf.write_text('include = "more.conf"\n' + echo_listener("off", port, "enabled = false", transport="udp"))
    r = run("-T", "-c", str(conf))
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "include =" not in out
    included = out[out.index('listener "included" {'):out.index('listener "off" {')]
    assert 'address="127.0.0.1:%d"' % port in included
    assert "max-connections=1024" in included and "idle-timeout=300" in included   # defaults
    assert "allow = {}" in included          # written empty: nobody may connect
    assert "deny" not in included            # not written: not an empty list
    off = out[out.index('listener "off" {'):]
    assert "enabled=false" in off and 'transport="udp"' in off
    assert "max-connections" not in off      # tcp only: -t would refuse it


def test_effective_config_of_a_bad_file_is_its_errors(tmp_path):
    conf = tmp_path / "c.conf"
    conf.write_text('listener "a" {\n protocol = "echo"\n}\n')
    r = run("-T", "-c", str(conf))
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr == '%s:2: listener "a": missing "address"\n' % conf


def every_unit_config(tmp_path, ports):
    """One of every kind of unit, on loopback, each with traffic to count."""
    clips = tmp_path / "clips"
    clips.mkdir()
    (clips / "a.wav").write_bytes(b"RIFF" + bytes(100))
    (clips / "b.ts").write_bytes(bytes(188))
    feed = tmp_path / "feed.bin"
    feed.write_bytes(bytes(range(188)) * 70)
    srm_dir = tmp_path / "srm-in"
    srm_dir.mkdir()
    p = ports
    return (
        echo_listener("echo", p["echo"]) +
        'listener "cat" {\n protocol = "exec"\n address = "127.0.0.1:%d"\n exec { command = {"/bin/cat"} }\n}\n'
        % p["exec"] +
        echo_listener("echo-udp", p["echo"], transport="udp") +
        'listener "group" {\n protocol = "echo"\n transport = "multicast"\n address = "239.255.23.11:%d"\n'
        ' interface = "lo"\n ttl = 0\n}\n' % p["group"] +
        'listener "qotd" {\n protocol = "fortune"\n address = "127.0.0.1:%d"\n'
        ' fortune { command = {"/bin/echo", "a fortune"} }\n}\n' % p["fortune"] +
        'listener "qotd-udp" {\n protocol = "fortune"\n transport = "udp"\n address = "127.0.0.1:%d"\n'
        ' fortune { command = {"/bin/echo", "a fortune"} }\n}\n' % p["fortune"] +
        'listener "sounds" {\n protocol = "audio-cookie"\n address = "127.0.0.1:%d"\n'
        ' audio-cookie { directory = "%s" }\n}\n' % (p["audio"], clips) +
        'listener "films" {\n protocol = "video-cookie"\n address = "127.0.0.1:%d"\n'
        ' video-cookie { directory = "%s" }\n}\n' % (p["video"], clips) +
        'listener "web" {\n protocol = "http"\n address = "127.0.0.1:%d"\n http {\n'
        '  route "/metrics" { handler = "metrics" }\n  route "/status" { handler = "status" }\n'
        '  route "/live" { handler = "stream"  listener = "in" }\n'
        '  route "/" { handler = "static"  root = "%s"  autoindex = true }\n }\n}\n' % (p["web"], tmp_path) +
        'listener "to-echo" {\n protocol = "relay"\n address = "127.0.0.1:%d"\n'
        ' relay { upstream = {"127.0.0.1:%d", "127.0.0.1:%d"} }\n}\n' % (p["relay"], p["dead"], p["echo"]) +
        'listener "in" {\n protocol = "udp"\n transport = "udp"\n address = "127.0.0.1:%d"\n'
        ' netsim { loss = 0.5  seed = 7 }\n}\n' % p["in"] +
        'stream "out" {\n protocol = "udp"\n destination = {"127.0.0.1:%d"}\n source { listener = "in" }\n'
        ' netsim { duplicate = 0.5  seed = 7 }\n}\n' % p["out"] +
        'stream "tv" {\n protocol = "rtp"\n destination = {"127.0.0.1:%d"}\n source { file = "%s"  loop = true }\n'
        ' rate = 1000000\n rtp { pace = "rate" }\n}\n' % (p["rtp"], feed) +
        'listener "tv-in" {\n protocol = "rtp"\n transport = "udp"\n address = "127.0.0.1:%d"\n}\n' % p["rtp"] +
        'stream "files" {\n protocol = "srm"\n destination = {"239.255.23.12:%d"}\n interface = "127.0.0.1"\n'
        ' ttl = 0\n source { file = "%s"  loop = true }\n rate = 1000000\n srm { session = 5 }\n}\n'
        % (p["srm"], feed) +
        'listener "files-in" {\n protocol = "srm"\n transport = "multicast"\n address = "239.255.23.12:%d"\n'
        ' interface = "127.0.0.1"\n srm { directory = "%s" }\n}\n' % (p["srm"], srm_dir))


def test_metrics_follow_prometheus_conventions_for_every_kind_of_unit(start_daemon, tmp_path):
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("needs promtool (Debian package prometheus)")
    ports = {name: free_port() for name in ("echo", "group", "fortune", "audio", "video", "web", "relay", "dead",
                                            "in", "out", "exec", "srm")}
    ports["rtp"] = even_port()
    d = start_daemon(every_unit_config(tmp_path, ports), workdir=str(tmp_path))
    live = connect(ports["web"])        # a client of the stream route, for its row
    live.sendall(b"GET /live HTTP/1.1\r\nHost: x\r\n\r\n")
    for name in ("echo", "fortune", "relay", "exec"):
        with connect(ports[name]) as s:
            s.sendall(b"hi\n")
            s.shutdown(socket.SHUT_WR)
            s.recv(1)
    # A cookie sends its clip and closes without reading: bytes sent to it
    # could turn its close into a reset, so these only read.
    for name in ("audio", "video"):
        with connect(ports[name]) as s:
            s.recv(1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
        for name in ("echo", "fortune", "in", "in"):
            u.sendto(b"x" * 188, ("127.0.0.1", ports[name]))

    def metrics_text():
        return subprocess.run(["curl", "-sS", "--max-time", "10", "http://127.0.0.1:%d/metrics" % ports["web"]],
                              capture_output=True, text=True, check=True).stdout
    # The rtp listener's report reaches the stream within an RTCP interval.
    wait_until(lambda: 'receiver="' in metrics_text(), timeout=15)
    metrics = metrics_text()
    live.close()
    r = subprocess.run([promtool, "check", "metrics"], input=metrics, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0 and r.stdout + r.stderr == "", r.stdout + r.stderr + metrics
    types = dict(re.findall(r"^# TYPE (\S+) (\S+)$", metrics, re.M))
    helps = dict(re.findall(r"^# HELP (\S+) (.+)$", metrics, re.M))
    assert set(types) == set(helps)
    for family, kind in types.items():
        assert kind in ("counter", "gauge"), (family, kind)
        assert family.endswith("_total") == (kind == "counter"), family
        assert "module's" not in helps[family], "HELP says what %s counts" % family
    protocols = set(re.findall(r'protocol="([^"]+)"', metrics))
    assert protocols == {"echo", "fortune", "audio-cookie", "video-cookie", "http", "relay", "udp", "rtp", "srm", "exec"}
    # The renamed families an old dashboard used, and the gauges.
    for family, kind in (("chassisd_http_requests_total", "counter"), ("chassisd_relay_relayed_total", "counter"),
                         ("chassisd_relay_upstream_connections", "gauge"),
                         ("chassisd_relay_upstream_backoff_seconds", "gauge"),
                         ("chassisd_fortune_children", "gauge"), ("chassisd_udp_sent_bytes_total", "counter"),
                         ("chassisd_udp_netsim_lost_total", "counter"), ("chassisd_rtp_rtp_octets_total", "counter"),
                         ("chassisd_listener_connections", "gauge"), ("chassisd_uptime_seconds", "gauge"),
                         ("chassisd_rtp_sender_jitter_seconds", "gauge"), ("chassisd_rtp_receiver_rtt_seconds", "gauge"),
                         ("chassisd_rtp_sender_played_total", "counter"), ("chassisd_http_route_clients", "gauge")):
        assert types.get(family) == kind, family
    assert d.stop() == 0
