"""meson setup and install as a packager or an administrator runs them."""
import json
import os
import shutil
import subprocess

import pytest

from conftest import ROOT

# The build directory of the binary under test: build/daemon/chassisd.
BUILD = os.path.dirname(os.path.dirname(os.environ.get(
    "CHASSISD", os.path.join(ROOT, "build", "daemon", "chassisd"))))

pytestmark = pytest.mark.skipif(shutil.which("meson") is None, reason="needs meson")


def configure(tmp_path, *options):
    """A configured (not compiled) build directory: cheap on a shared machine."""
    build = tmp_path / "build"
    r = subprocess.run(["meson", "setup", str(build), ROOT, *options], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return build


def default_config(build):
    with open(build / "build_config.h") as f:
        return [line.split('"')[1] for line in f if "CHASSISD_DEFAULT_CONFIG" in line][0]


def test_default_config_path_follows_prefix_and_sysconfdir(tmp_path):
    assert default_config(configure(tmp_path, "--prefix=/usr/local")) == "/usr/local/etc/chassisd/chassisd.conf"
    shutil.rmtree(tmp_path / "build")
    assert default_config(configure(tmp_path, "--prefix=/usr")) == "/etc/chassisd/chassisd.conf"
    shutil.rmtree(tmp_path / "build")
    assert default_config(configure(tmp_path, "--sysconfdir=/opt/etc")) == "/opt/etc/chassisd/chassisd.conf"


def test_tests_false_builds_the_daemon_alone(tmp_path):
    build = configure(tmp_path, "-Dtests=false")
    r = subprocess.run(["meson", "introspect", "--targets", str(build)], capture_output=True, text=True,
                       timeout=60)
    names = {t["name"] for t in json.loads(r.stdout)}
    assert "chassisd" in names
    assert not any(n.startswith("test_") or n in ("echo_load", "fetch_load", "bare_echo", "no_openat2")
                   for n in names), names


def install(destdir):
    r = subprocess.run(["meson", "install", "-C", BUILD, "--no-rebuild", "--destdir", str(destdir)],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_install_never_overwrites_an_edited_config(tmp_path):
    dest = tmp_path / "root"
    install(dest)
    confs = list(dest.rglob("chassisd/chassisd.conf"))
    assert len(confs) == 1
    conf = confs[0]
    assert (conf.parent / "conf.d").is_dir()
    shipped = conf.read_text()
    assert 'include = "conf.d/*.conf"' in shipped
    conf.write_text(shipped + "# edited by the administrator\n")
    install(dest)
    assert conf.read_text().endswith("# edited by the administrator\n")
    assert (conf.parent / "chassisd.conf.dist").read_text() == shipped
