/* The server's side of a TLS handshake, fed a client's first flight (the
 * corpus: ClientHellos of openssl s_client and curl, TLS 1.2 and 1.3, with
 * SNI and ALPN) through daemon/tls.c as a connection runs it. A socketpair
 * stands for the client's socket rather than memory BIOs: the sessions
 * run on a socket BIO, and this is that code path. The context has SNI,
 * ALPN and optional client certificates on, so their callbacks run too. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "conf/conf.h"
#include "conf/tls.h"
#include "daemon/tls.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Reachable for the whole run (LeakSanitizer), freed never. */
static struct conf *conf;
static const struct tls_context *context;

/* A self-signed P-256 certificate and its key, as PEM files in dir. */
static void write_identity(const char *dir, const char *name, char *cert_path, char *key_path, size_t len)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *cert = X509_new();
	FILE *f;

	X509_set_version(cert, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(cert), 1);
	X509_gmtime_adj(X509_getm_notBefore(cert), 0);
	X509_gmtime_adj(X509_getm_notAfter(cert), 86400L * 365);
	X509_set_pubkey(cert, key);
	X509_NAME_add_entry_by_txt(X509_get_subject_name(cert), "CN", MBSTRING_ASC, (const unsigned char *)name, -1,
				   -1, 0);
	X509_set_issuer_name(cert, X509_get_subject_name(cert));
	X509_sign(cert, key, EVP_sha256());
	snprintf(cert_path, len, "%s/%s.pem", dir, name);
	snprintf(key_path, len, "%s/%s.key", dir, name);
	if ((f = fopen(cert_path, "w")) == NULL || !PEM_write_X509(f, cert) || fclose(f) != 0 ||
	    (f = fopen(key_path, "w")) == NULL || !PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL) ||
	    fclose(f) != 0)
		abort();
	X509_free(cert);
	EVP_PKEY_free(key);
}

static void fill_identity(struct conf_tls_identity *id, const char *dir, const char *name, bool by_name)
{
	char cert[512], key[512];

	write_identity(dir, name, cert, key, sizeof(cert));
	id->server_name = by_name ? strdup(name) : NULL;
	id->certificate = strdup(cert);
	id->key = strdup(key);
	id->where = strdup("fuzz: ");
	id->key_where = strdup("fuzz: ");
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/tmp/fuzz-tls-XXXXXX";
	static char *alpn[] = { "http/1.1", "x-echo", NULL };
	struct conf_tls *tls = calloc(1, sizeof(*tls));
	struct conf_errors errors = { 0 };
	char ca[600];

	conf = calloc(1, sizeof(*conf));
	if (conf == NULL || tls == NULL || mkdtemp(dir) == NULL)
		abort();
	conf->listeners = calloc(1, sizeof(*conf->listeners));
	conf->n_listeners = 1;
	conf->listeners[0].unit.name = "fuzz";
	conf->listeners[0].tls = tls;
	tls->identities = calloc(2, sizeof(*tls->identities));
	tls->n_identities = 2;
	fill_identity(&tls->identities[0], dir, "a.test", false);
	fill_identity(&tls->identities[1], dir, "b.test", true);
	snprintf(ca, sizeof(ca), "%s", tls->identities[0].certificate);
	tls->ciphers = CONF_TLS_DEFAULT_CIPHERS;
	tls->alpn = alpn;
	tls->session_tickets = true;
	tls->client_certificate = CONF_TLS_CLIENT_CERT_OPTIONAL;
	tls->ca = strdup(ca);
	tls->ca_where = strdup("fuzz: ");
	tls->where = strdup("fuzz: ");
	tls->handshake_timeout = 10;
	if (!tls_load(conf, &errors)) {
		for (size_t i = 0; i < errors.count; i++)
			fprintf(stderr, "%s\n", errors.lines[i]);
		abort();
	}
	context = tls->context;		/* kept for the whole run */
	/* Loaded: the files are no longer needed. */
	for (size_t i = 0; i < tls->n_identities; i++) {
		unlink(tls->identities[i].certificate);
		unlink(tls->identities[i].key);
	}
	rmdir(dir);
	(void)argc;
	(void)argv;
	return 0;
}

/* Whatever the server wrote back (its flight, an alert) is read and dropped. */
static void drain(int fd)
{
	char sink[16384];

	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct tls_session *session;
	char why[256], plain[4096];
	int pair[2];

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, pair) < 0)
		return 0;
	session = tls_session_new(context, pair[0], NULL);
	if (session != NULL && (size == 0 || write(pair[1], data, size) == (ssize_t)size)) {
		shutdown(pair[1], SHUT_WR);
		/* Bounded: each step either reads input or ends. */
		for (int step = 0; step < 16; step++) {
			enum tls_failure failure;
			enum tls_step result = tls_handshake(session, why, sizeof(why), &failure);

			drain(pair[1]);
			if (result == TLS_DONE) {
				while (tls_read(session, plain, sizeof(plain)) > 0)
					;
				tls_close_notify(session);
				break;
			}
			if (result != TLS_WANT_WRITE)
				break;
		}
	}
	tls_session_free(session);
	close(pair[0]);
	close(pair[1]);
	return 0;
}
