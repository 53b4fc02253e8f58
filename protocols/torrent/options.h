/* The options of "torrent { }", shared with the stand-in built without
 * libtorrent (missing.c): a config written for it then parses, and is told
 * that the protocol is not built in. */
#ifndef CHASSISD_TORRENT_OPTIONS_H
#define CHASSISD_TORRENT_OPTIONS_H

#define TORRENT_DEFAULT_STATE "/var/lib/chassisd/torrent"
#define TORRENT_DEFAULT_MAX_PEERS 200
#define TORRENT_DEFAULT_MAX_TORRENTS 1000
#define TORRENT_DEFAULT_RESUME_INTERVAL 300
#define TORRENT_MAX_RESUME_INTERVAL 604800

/* listen has its default applied by torrent_configure(), not by libconfuse:
 * libconfuse parses a list's default when the section opens and calls the
 * option's validator then, so the line recorded for the option would be
 * the section's, not the one the user wrote it on. */
#define TORRENT_OPTIONS                                                         \
	CFG_STR_LIST("listen", NULL, CFGF_NODEFAULT),                           \
	CFG_STR("directory", NULL, CFGF_NODEFAULT),                             \
	CFG_STR_LIST("torrents", NULL, CFGF_NODEFAULT),                         \
	CFG_STR("state", TORRENT_DEFAULT_STATE, CFGF_NONE),                     \
	CFG_STR("tracker", "", CFGF_NONE),                                      \
	CFG_STR("web-seed", "", CFGF_NONE),                                     \
	CFG_BOOL("v1-only", cfg_true, CFGF_NONE),                               \
	CFG_BOOL("watch", cfg_true, CFGF_NONE),                                 \
	CFG_BOOL("dht", cfg_false, CFGF_NONE),                                  \
	CFG_BOOL("lsd", cfg_false, CFGF_NONE),                                  \
	CFG_BOOL("upnp", cfg_false, CFGF_NONE),                                 \
	CFG_BOOL("natpmp", cfg_false, CFGF_NONE),                               \
	CFG_BOOL("utp", cfg_false, CFGF_NONE),                                  \
	CFG_INT("upload-rate", 0, CFGF_NONE),                                   \
	CFG_INT("max-peers", TORRENT_DEFAULT_MAX_PEERS, CFGF_NONE),             \
	CFG_INT("max-torrents", TORRENT_DEFAULT_MAX_TORRENTS, CFGF_NONE),       \
	CFG_INT("resume-interval", TORRENT_DEFAULT_RESUME_INTERVAL, CFGF_NONE)

#endif
