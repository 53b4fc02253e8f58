#include "protocols/registry.h"

#include <string.h>

#include "daemon/protocol.h"

extern const struct protocol protocol_echo;
extern const struct protocol protocol_fortune;
extern const struct protocol protocol_audio_cookie;
extern const struct protocol protocol_video_cookie;
extern const struct protocol protocol_http;
extern const struct protocol protocol_relay;
extern const struct protocol protocol_exec;
extern const struct protocol protocol_udp;
extern const struct protocol protocol_rtp;
extern const struct protocol protocol_srm;
extern const struct protocol protocol_torrent;

static const struct protocol *const protocols[] = {
	&protocol_echo,
	&protocol_fortune,
	&protocol_audio_cookie,
	&protocol_video_cookie,
	&protocol_http,
	&protocol_relay,
	&protocol_exec,
	&protocol_udp,
	&protocol_rtp,
	&protocol_srm,
	&protocol_torrent,
	NULL,
};

#define N_PROTOCOLS (sizeof(protocols) / sizeof(protocols[0]))

const struct protocol *protocol_find(const char *name)
{
	for (size_t i = 0; protocols[i] != NULL; i++)
		if (strcmp(protocols[i]->config.name, name) == 0)
			return protocols[i];
	return NULL;
}

const struct protocol *const *protocol_all(void)
{
	return protocols;
}

const struct conf_module *const *protocol_config_table(void)
{
	static const struct conf_module *configs[N_PROTOCOLS];

	for (size_t i = 0; protocols[i] != NULL; i++)
		configs[i] = &protocols[i]->config;
	return configs;
}
