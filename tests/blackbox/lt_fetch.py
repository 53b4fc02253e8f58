"""A python3-libtorrent downloader for the torrent tests (Debian's, so run it
with /usr/bin/python3): fetches a .torrent file or a magnet link from one
seeder on loopback, discovery off, and exits 0 once complete (1 on timeout).

usage: lt_fetch.py TORRENT_OR_MAGNET SAVE_DIR SEEDER_PORT [TIMEOUT]"""

import sys
import time

import libtorrent as lt


def main():
    what, save, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 60
    ses = lt.session({"listen_interfaces": "127.0.0.1:0", "enable_dht": False, "enable_lsd": False,
                      "enable_upnp": False, "enable_natpmp": False, "enable_outgoing_utp": False,
                      "enable_incoming_utp": False})
    params = lt.parse_magnet_uri(what) if what.startswith("magnet:") else lt.add_torrent_params()
    if not what.startswith("magnet:"):
        params.ti = lt.torrent_info(what)
    params.save_path = save
    handle = ses.add_torrent(params)
    handle.connect_peer(("127.0.0.1", port))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = handle.status()
        if st.has_metadata and st.is_seeding:
            print(handle.torrent_file().name())
            return 0
        if not st.has_metadata or st.num_peers == 0:
            handle.connect_peer(("127.0.0.1", port))
        time.sleep(0.2)
    print("timed out: state %s, %d peers, %.0f%%" % (st.state, st.num_peers, st.progress * 100), file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
