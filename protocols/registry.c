#include "protocols/registry.h"

#include <string.h>

#include "protocols/protocol.h"

extern const struct protocol protocol_echo;
extern const struct protocol protocol_fortune;
extern const struct protocol protocol_audio_cookie;
extern const struct protocol protocol_video_cookie;
extern const struct protocol protocol_http;

static const struct protocol *const protocols[] = {
	&protocol_echo,
	&protocol_fortune,
	&protocol_audio_cookie,
	&protocol_video_cookie,
	&protocol_http,
	NULL,
};

const struct protocol *protocol_find(const char *name)
{
	for (size_t i = 0; protocols[i] != NULL; i++)
		if (strcmp(protocols[i]->name, name) == 0)
			return protocols[i];
	return NULL;
}

const struct protocol *const *protocol_all(void)
{
	return protocols;
}
