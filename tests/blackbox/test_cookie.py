"""audio-cookie and video-cookie with real clips from sox, espeak-ng and
ffmpeg, checked by sox and ffprobe."""
import json
import os
import socket
import subprocess
import time

from conftest import assert_no_zombies, connect, free_port, read_all


def cookie_listener(protocol, name, port, section):
    return ('listener "%s" {\n  protocol = "%s"\n  address = "127.0.0.1:%d"\n  %s { %s }\n}\n'
            % (name, protocol, port, protocol, section))


def fetch(port, path):
    with connect(port, timeout=30) as s:
        s.shutdown(socket.SHUT_WR)
        data = read_all(s)
    with open(path, "wb") as f:
        f.write(data)
    return data


def ffprobe_streams(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries", "stream=codec_type:format=format_name",
                          "-of", "json", str(path)], capture_output=True, text=True, check=True).stdout
    info = json.loads(out)
    return info["format"]["format_name"], [s["codec_type"] for s in info["streams"]]


def make_wavs(directory):
    directory.mkdir()
    for name, tone in (("a.wav", "440"), ("b.wav", "660")):
        subprocess.run(["sox", "-n", "-r", "8000", "-c", "1", str(directory / name), "synth", "0.5", "sine", tone],
                       check=True)
    (directory / "notes.txt").write_text("not a clip")
    return {(directory / n).read_bytes() for n in ("a.wav", "b.wav")}


def test_audio_directory_sends_one_whole_wav(start_daemon, tmp_path):
    port = free_port()
    clips = make_wavs(tmp_path / "clips")
    d = start_daemon(cookie_listener("audio-cookie", "sounds", port,
                                     'directory = "%s"  extensions = {"wav"}' % (tmp_path / "clips")))
    seen = set()
    for i in range(10):
        data = fetch(port, tmp_path / ("got%d.wav" % i))
        assert data in clips, "byte-identical to one file of the directory"
        seen.add(data)
        info = subprocess.run(["sox", "--i", "-t", str(tmp_path / ("got%d.wav" % i))],
                              capture_output=True, text=True, check=True)
        assert info.stdout.strip() == "wav"
    assert len(seen) == 2, "both clips are drawn"
    assert "clips=10 failed=0" in d.status_dump()


def test_audio_command_espeak_gives_a_valid_wav(start_daemon, tmp_path):
    port = free_port()
    start_daemon(cookie_listener("audio-cookie", "speech", port,
                                 'command = {"/usr/bin/espeak-ng", "--stdout", "a fortune for you"}'))
    fetch(port, tmp_path / "speech.wav")
    fmt, streams = ffprobe_streams(tmp_path / "speech.wav")
    assert fmt == "wav" and streams == ["audio"]


def test_video_directory_and_command_give_mpeg_ts_with_video(start_daemon, tmp_path):
    clips = tmp_path / "films"
    clips.mkdir()
    subprocess.run(["ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc=duration=1:size=160x120",
                    "-f", "mpegts", str(clips / "test.ts")], check=True)
    dir_port, cmd_port = free_port(), free_port()
    d = start_daemon(
        cookie_listener("video-cookie", "films", dir_port, 'directory = "%s"' % clips) +
        cookie_listener("video-cookie", "live", cmd_port,
                        'command = {"/usr/bin/ffmpeg", "-loglevel", "error", "-f", "lavfi", "-i", "testsrc",'
                        ' "-t", "2", "-f", "mpegts", "-"}  timeout = 30'))
    data = fetch(dir_port, tmp_path / "from-dir.ts")
    assert data == (clips / "test.ts").read_bytes()
    assert ffprobe_streams(tmp_path / "from-dir.ts") == ("mpegts", ["video"])
    fetch(cmd_port, tmp_path / "from-cmd.ts")
    assert ffprobe_streams(tmp_path / "from-cmd.ts") == ("mpegts", ["video"])
    assert_no_zombies(d.pid)


def test_bitrate_paces_100_kb_at_400_kbit_in_2_seconds(start_daemon, tmp_path):
    clips = tmp_path / "clips"
    clips.mkdir()
    payload = os.urandom(100000)
    (clips / "noise.ts").write_bytes(payload)
    port = free_port()
    start_daemon(cookie_listener("video-cookie", "paced", port, 'directory = "%s"  bitrate = 400000' % clips))
    t0 = time.monotonic()
    data = fetch(port, tmp_path / "paced.ts")
    elapsed = time.monotonic() - t0
    assert data == payload
    assert 1.8 <= elapsed <= 2.2, elapsed


def test_a_vanished_clip_is_logged_with_the_peer(start_daemon, tmp_path):
    clips = tmp_path / "clips"
    make_wavs(clips)
    port = free_port()
    d = start_daemon(cookie_listener("audio-cookie", "sounds", port, 'directory = "%s"' % clips))
    for name in ("a.wav", "b.wav"):
        (clips / name).unlink()
    assert fetch(port, tmp_path / "none") == b""
    d.wait_log(r"<4>clip .*: No such file or directory listener=sounds .*peer=127\.0\.0\.1:")
    assert "failed=1" in d.status_dump()


def test_clients_that_do_not_read_hold_back_the_program_not_its_output(start_daemon):
    """20 clients that never read a 16 MB program output: the program
    waits in its pipe, so the daemon holds about buffer-size each, not the
    16 MB each that output-limit allows. A client that reads late still
    gets every byte."""
    port = free_port()
    size = 16000000
    d = start_daemon(cookie_listener("video-cookie", "clips", port,
                                     'command = {"/usr/bin/head", "-c", "%d", "/dev/zero"}  timeout = 60  max-children = 24' % size))
    before = d.rss_kib()
    idle = []
    for _ in range(20):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", port))
        idle.append(s)
    late = connect(port, timeout=30)
    time.sleep(3)
    grown_mib = (d.rss_kib() - before) / 1024
    got = len(read_all(late))
    late.close()
    for s in idle:
        s.close()
    # Held back: 21 x (256 KiB buffer-size + a pipe read); unheld it was
    # 16 MB each, over 300 MiB.
    assert grown_mib < 64, grown_mib
    assert got == size
