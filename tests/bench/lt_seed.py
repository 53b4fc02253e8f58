"""The reference seeder for tests/bench/torrent: Debian's python3-libtorrent
with the settings chassisd's torrent stream uses (discovery and uTP off),
seeding one .torrent in seed mode until killed.

usage: /usr/bin/python3 lt_seed.py TORRENT SAVE_DIR PORT [IP]   (IP: 127.0.0.1)"""

import signal
import sys
import time

import libtorrent as lt


def main():
    torrent, save, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ip = sys.argv[4] if len(sys.argv) > 4 else "127.0.0.1"
    ses = lt.session({"listen_interfaces": "%s:%d" % (ip, port), "enable_dht": False, "enable_lsd": False,
                      "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
                      "enable_incoming_utp": False, "connections_limit": 200})
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save
    params.flags |= lt.torrent_flags.seed_mode
    ses.add_torrent(params)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    while True:
        time.sleep(1)


if __name__ == "__main__":
    main()
