/* torrent, when the build found no libtorrent-rasterbar: the name stays
 * known, so that a config naming it is told why it cannot run rather than
 * that no such protocol exists. */
#include <confuse.h>
#include <stddef.h>

#include "conf/conf.h"
#include "daemon/protocol.h"
#include "protocols/torrent/options.h"

static cfg_opt_t torrent_options[] = {
	TORRENT_OPTIONS,
	CFG_END()
};

static void *torrent_configure(cfg_t *sec, struct conf_scope *scope)
{
	(void)sec;
	conf_scope_error(scope, "protocol",
			 "protocol torrent is not built in (libtorrent-rasterbar missing at build time)");
	return NULL;
}

const struct protocol protocol_torrent = {
	.config = {
		.name = "torrent",
		.options = torrent_options,
		.transports = UNIT_STREAM_BIT | UNIT_STREAM_SELF_BIT,
		.configure = torrent_configure,
	},
};
