#include "daemon/tls_tickets.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#define TICKET_KEY_ROTATE_SECONDS 3600
/* The current key and two retired ones: a ticket opens for 2-3 hours,
 * past OpenSSL's 2-hour TLS 1.3 ticket lifetime. */
#define TICKET_KEYS 3
#define TICKET_NAME_LEN 16
#define TICKET_SECRET_LEN 32

struct ticket_key {
	unsigned char name[TICKET_NAME_LEN];
	unsigned char aes[TICKET_SECRET_LEN];
	unsigned char hmac[TICKET_SECRET_LEN];
	time_t made;
	bool valid;
};

/* keys[0] seals; all open. The loop is single-threaded. */
static struct ticket_key keys[TICKET_KEYS];

static time_t ticket_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static bool ticket_key_make(struct ticket_key *key, time_t now)
{
	if (RAND_bytes(key->name, sizeof(key->name)) != 1 || RAND_bytes(key->aes, sizeof(key->aes)) != 1 ||
	    RAND_bytes(key->hmac, sizeof(key->hmac)) != 1) {
		key->valid = false;
		return false;
	}
	key->made = now;
	key->valid = true;
	return true;
}

/* The key that seals now, rotated when due; NULL if the RNG failed. */
static const struct ticket_key *ticket_key_current(void)
{
	time_t now = ticket_now();

	if (keys[0].valid && now - keys[0].made < TICKET_KEY_ROTATE_SECONDS)
		return &keys[0];
	OPENSSL_cleanse(&keys[TICKET_KEYS - 1], sizeof(keys[0]));
	memmove(&keys[1], &keys[0], (TICKET_KEYS - 1) * sizeof(keys[0]));
	return ticket_key_make(&keys[0], now) ? &keys[0] : NULL;
}

static const struct ticket_key *ticket_key_named(const unsigned char *name)
{
	time_t now = ticket_now();

	for (size_t i = 0; i < TICKET_KEYS; i++)
		if (keys[i].valid && now - keys[i].made < TICKET_KEYS * TICKET_KEY_ROTATE_SECONDS &&
		    CRYPTO_memcmp(keys[i].name, name, TICKET_NAME_LEN) == 0)
			return &keys[i];
	return NULL;
}

static bool ticket_mac_init(EVP_MAC_CTX *hctx, const struct ticket_key *key)
{
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)key->hmac, sizeof(key->hmac)),
		OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0),
		OSSL_PARAM_construct_end(),
	};

	return EVP_MAC_CTX_set_params(hctx, params) == 1;
}

/* OpenSSL's ticket key callback: 1 sealed or opened, 2 opened and a new
 * ticket follows, 0 unknown key (a full handshake), -1 failure. A new
 * ticket follows a retired key's, and every TLS 1.3 resumption: those
 * tickets are for one use (RFC 8446 C.4), and with 1 OpenSSL sends none,
 * so a client that reconnects with its last session (wrk, browsers) made
 * a full handshake every other time. */
static int tls_on_ticket_key(SSL *ssl, unsigned char *name, unsigned char *iv, EVP_CIPHER_CTX *cctx,
			     EVP_MAC_CTX *hctx, int seal)
{
	const EVP_CIPHER *cipher = EVP_aes_256_cbc();
	const struct ticket_key *key;

	if (seal) {
		key = ticket_key_current();
		if (key == NULL || RAND_bytes(iv, EVP_CIPHER_get_iv_length(cipher)) != 1)
			return -1;
		memcpy(name, key->name, TICKET_NAME_LEN);
		if (EVP_EncryptInit_ex(cctx, cipher, NULL, key->aes, iv) != 1 || !ticket_mac_init(hctx, key))
			return -1;
		return 1;
	}
	key = ticket_key_named(name);
	if (key == NULL)
		return 0;
	if (EVP_DecryptInit_ex(cctx, cipher, NULL, key->aes, iv) != 1 || !ticket_mac_init(hctx, key))
		return -1;
	if (SSL_version(ssl) == TLS1_3_VERSION)
		return 2;
	return key == &keys[0] && ticket_now() - key->made < TICKET_KEY_ROTATE_SECONDS ? 1 : 2;
}

void tls_tickets_attach(SSL_CTX *ssl_ctx)
{
	SSL_CTX_set_tlsext_ticket_key_evp_cb(ssl_ctx, tls_on_ticket_key);
}
