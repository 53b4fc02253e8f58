/* A BitTorrent HTTP tracker's announce request (BEP 3, BEP 23), from the
 * query string as it came: bytes from the network, so every field is
 * checked and a failure says what was wrong, for the bencoded answer. */
#ifndef CHASSISD_HTTP_ANNOUNCE_H
#define CHASSISD_HTTP_ANNOUNCE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ANNOUNCE_HASH_LEN 20
/* numwant above this is not a client's wish but a malformed request. */
#define ANNOUNCE_NUMWANT_MAX 65535
#define ANNOUNCE_DEFAULT_NUMWANT 50

enum announce_event { ANNOUNCE_NONE, ANNOUNCE_STARTED, ANNOUNCE_COMPLETED, ANNOUNCE_STOPPED };

struct announce {
	unsigned char info_hash[ANNOUNCE_HASH_LEN];
	unsigned char peer_id[ANNOUNCE_HASH_LEN];
	unsigned port;
	unsigned numwant;
	uint64_t left;
	enum announce_event event;
};

/* 0, or -1 with the failure reason (a constant string) in *reason. */
int announce_parse(const char *query, size_t len, struct announce *out, const char **reason);

#endif
