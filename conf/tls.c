/* The tls { } section: its options and their checks. Files are read by
 * the daemon when it builds the context (daemon/tls.c). */
#include "conf/tls.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <confuse.h>

#include "conf/scope.h"

static cfg_opt_t sni_options[] = {
	CFG_STR("certificate", NULL, CFGF_NODEFAULT),
	CFG_STR("key", NULL, CFGF_NODEFAULT),
	CFG_END()
};

cfg_opt_t conf_tls_client_options[] = {
	CFG_BOOL("verify", cfg_true, CFGF_NONE),
	CFG_STR("ca", NULL, CFGF_NODEFAULT),
	CFG_STR("server-name", NULL, CFGF_NODEFAULT),
	CFG_STR("certificate", NULL, CFGF_NODEFAULT),
	CFG_STR("key", NULL, CFGF_NODEFAULT),
	CFG_STR("protocols", "TLSv1.2 TLSv1.3", CFGF_NONE),
	CFG_STR("ciphers", CONF_TLS_DEFAULT_CIPHERS, CFGF_NONE),
	CFG_END()
};

cfg_opt_t conf_tls_server_options[] = {
	CFG_STR("certificate", NULL, CFGF_NODEFAULT),
	CFG_STR("key", NULL, CFGF_NODEFAULT),
	CFG_STR("protocols", "TLSv1.2 TLSv1.3", CFGF_NONE),
	CFG_STR("ciphers", CONF_TLS_DEFAULT_CIPHERS, CFGF_NONE),
	CFG_STR_LIST("alpn", NULL, CFGF_NODEFAULT),
	CFG_BOOL("session-tickets", cfg_true, CFGF_NONE),
	CFG_BOOL("kernel-tls", cfg_false, CFGF_NONE),
	CFG_STR("client-certificate", "off", CFGF_NONE),
	CFG_STR("ca", NULL, CFGF_NODEFAULT),
	CFG_INT("handshake-timeout", CONF_TLS_DEFAULT_HANDSHAKE_TIMEOUT, CFGF_NONE),
	CFG_SEC("sni", sni_options, CFGF_MULTI | CFGF_TITLE | CFGF_NO_TITLE_DUPES),
	CFG_END()
};

static char *dup_or_null(const char *s)
{
	return s ? strdup(s) : NULL;
}

static bool parse_identity(struct conf_scope *scope, cfg_t *sec, const char *server_name,
			   struct conf_tls_identity *id)
{
	const char *certificate = cfg_getstr(sec, "certificate"), *key = cfg_getstr(sec, "key");

	if (certificate == NULL || key == NULL) {
		conf_scope_error(scope, certificate ? "key" : "certificate", "needs both \"certificate\" and \"key\"");
		return false;
	}
	id->server_name = dup_or_null(server_name);
	id->certificate = strdup(certificate);
	id->key = strdup(key);
	id->where = conf_scope_where(scope, "certificate");
	id->key_where = conf_scope_where(scope, "key");
	return id->certificate != NULL && id->key != NULL && id->where != NULL && id->key_where != NULL;
}

/* TLS 1.2 and 1.3 only: what came before is broken or deprecated (RFC 8996). */
static void parse_protocols(struct conf_scope *scope, cfg_t *sec, bool *min_tls13, bool *max_tls12)
{
	char *text = strdup(cfg_getstr(sec, "protocols")), *save = NULL;
	bool v12 = false, v13 = false;

	for (char *word = text ? strtok_r(text, " ,", &save) : NULL; word; word = strtok_r(NULL, " ,", &save)) {
		if (strcmp(word, "TLSv1.2") == 0)
			v12 = true;
		else if (strcmp(word, "TLSv1.3") == 0)
			v13 = true;
		else
			conf_scope_error(scope, "protocols", "unknown or unsafe protocol \"%s\" (TLSv1.2, TLSv1.3)",
					 word);
	}
	free(text);
	if (!v12 && !v13)
		conf_scope_error(scope, "protocols", "protocols names none of TLSv1.2, TLSv1.3");
	*min_tls13 = v13 && !v12;
	*max_tls12 = v12 && !v13;
}

static void parse_client_certificate(struct conf_scope *scope, cfg_t *sec, struct conf_tls *tls)
{
	const char *mode = cfg_getstr(sec, "client-certificate");

	if (strcmp(mode, "off") == 0)
		tls->client_certificate = CONF_TLS_CLIENT_CERT_OFF;
	else if (strcmp(mode, "optional") == 0)
		tls->client_certificate = CONF_TLS_CLIENT_CERT_OPTIONAL;
	else if (strcmp(mode, "required") == 0)
		tls->client_certificate = CONF_TLS_CLIENT_CERT_REQUIRED;
	else
		conf_scope_error(scope, "client-certificate",
				 "client-certificate must be \"off\", \"optional\" or \"required\", not \"%s\"", mode);
	if (tls->client_certificate != CONF_TLS_CLIENT_CERT_OFF && cfg_getstr(sec, "ca") == NULL)
		conf_scope_error(scope, "client-certificate", "client-certificate \"%s\" needs \"ca\"", mode);
	tls->ca = dup_or_null(cfg_getstr(sec, "ca"));
	tls->ca_where = conf_scope_where(scope, "ca");
}

static void parse_alpn(struct conf_scope *scope, cfg_t *sec, struct conf_tls *tls)
{
	unsigned n = cfg_size(sec, "alpn");

	if (n == 0)
		return;
	tls->alpn = calloc(n + 1, sizeof(*tls->alpn));
	for (unsigned i = 0; tls->alpn != NULL && i < n; i++) {
		const char *name = cfg_getnstr(sec, "alpn", i);
		size_t len = strlen(name);

		if (len == 0 || len > 255)
			conf_scope_error(scope, "alpn", "an ALPN name has 1 to 255 bytes: \"%s\"", name);
		tls->alpn[i] = strdup(name);
	}
}

static void parse_identities(struct conf_scope *scope, cfg_t *sec, struct conf_tls *tls)
{
	unsigned n_sni = cfg_size(sec, "sni");

	tls->identities = calloc(n_sni + 1, sizeof(*tls->identities));
	if (tls->identities == NULL || !parse_identity(scope, sec, NULL, &tls->identities[0]))
		return;
	tls->n_identities = 1;
	for (unsigned i = 0; i < n_sni; i++) {
		cfg_t *sni = cfg_getnsec(sec, "sni", i);
		struct conf_scope *inner = conf_scope_enter(scope, sni, "sni");

		if (inner == NULL)
			return;
		if (parse_identity(inner, sni, cfg_title(sni), &tls->identities[tls->n_identities]))
			tls->n_identities++;
		conf_scope_leave(inner);
	}
}

/* The tls { } of `parent`, entered as *scope, and a zeroed struct of
 * `size` for it; NULL when not written or out of memory. */
static void *tls_section_enter(struct conf_scope *outer, cfg_t *parent, size_t size, cfg_t **sec,
			       struct conf_scope **scope)
{
	void *tls;

	*sec = cfg_getsec(parent, "tls");
	if (!conf_scope_written(outer, "tls") || *sec == NULL)
		return NULL;
	*scope = conf_scope_enter(outer, *sec, "tls");
	tls = calloc(1, size);
	if (*scope != NULL && tls != NULL)
		return tls;
	free(tls);
	if (*scope != NULL)
		conf_scope_leave(*scope);
	return NULL;
}

struct conf_tls *conf_tls_parse(struct conf_scope *outer, cfg_t *unit_section)
{
	struct conf_scope *scope;
	long timeout = 0;
	cfg_t *sec;
	struct conf_tls *tls = tls_section_enter(outer, unit_section, sizeof(*tls), &sec, &scope);

	if (tls == NULL)
		return NULL;
	parse_identities(scope, sec, tls);
	parse_protocols(scope, sec, &tls->min_tls13, &tls->max_tls12);
	tls->ciphers = strdup(cfg_getstr(sec, "ciphers"));
	parse_alpn(scope, sec, tls);
	tls->session_tickets = cfg_getbool(sec, "session-tickets");
	tls->kernel_tls = cfg_getbool(sec, "kernel-tls");
	parse_client_certificate(scope, sec, tls);
	if (conf_scope_int(scope, sec, "handshake-timeout", 1, 3600, &timeout))
		tls->handshake_timeout = (unsigned)timeout;
	tls->where = conf_scope_where(scope, NULL);
	if (!conf_scope_leave(scope)) {
		conf_tls_free(tls);
		return NULL;
	}
	return tls;
}

void conf_tls_free(struct conf_tls *tls)
{
	if (tls == NULL)
		return;
	if (tls->context != NULL && tls->context_free != NULL)
		tls->context_free(tls->context);
	for (size_t i = 0; i < tls->n_identities; i++) {
		free(tls->identities[i].server_name);
		free(tls->identities[i].certificate);
		free(tls->identities[i].key);
		free(tls->identities[i].where);
		free(tls->identities[i].key_where);
	}
	free(tls->identities);
	for (size_t i = 0; tls->alpn != NULL && tls->alpn[i] != NULL; i++)
		free(tls->alpn[i]);
	free(tls->alpn);
	free(tls->ciphers);
	free(tls->ca);
	free(tls->ca_where);
	free(tls->where);
	free(tls);
}

/* ---- the outbound side ---- */

/* Found at its line now, rather than as OpenSSL's "system lib" later. */
static void check_readable(struct conf_scope *scope, cfg_t *sec, const char *option)
{
	const char *path = cfg_getstr(sec, option);

	if (path != NULL && access(path, R_OK) != 0)
		conf_scope_error(scope, option, "cannot read %s %s: %s", option, path, strerror(errno));
}

static bool parse_client_identity(struct conf_scope *scope, cfg_t *sec, struct conf_tls_client *tls)
{
	const char *certificate = cfg_getstr(sec, "certificate"), *key = cfg_getstr(sec, "key");

	if ((certificate == NULL) != (key == NULL)) {
		conf_scope_error(scope, certificate ? "key" : "certificate",
				 "a client certificate needs both \"certificate\" and \"key\"");
		return false;
	}
	check_readable(scope, sec, "certificate");
	check_readable(scope, sec, "key");
	tls->certificate = dup_or_null(certificate);
	tls->key = dup_or_null(key);
	return true;
}

struct conf_tls_client *conf_tls_client_parse(struct conf_scope *outer, cfg_t *section)
{
	struct conf_scope *scope;
	const char *name;
	cfg_t *sec;
	struct conf_tls_client *tls = tls_section_enter(outer, section, sizeof(*tls), &sec, &scope);

	if (tls == NULL)
		return NULL;
	tls->verify = cfg_getbool(sec, "verify");
	check_readable(scope, sec, "ca");
	tls->ca = dup_or_null(cfg_getstr(sec, "ca"));
	name = cfg_getstr(sec, "server-name");
	if (name != NULL && (name[0] == '\0' || strlen(name) > 253))
		conf_scope_error(scope, "server-name", "server-name must be a host name of 1 to 253 bytes");
	tls->server_name = dup_or_null(name);
	parse_client_identity(scope, sec, tls);
	parse_protocols(scope, sec, &tls->min_tls13, &tls->max_tls12);
	tls->ciphers = strdup(cfg_getstr(sec, "ciphers"));
	tls->where = conf_scope_where(scope, NULL);
	tls->ca_where = conf_scope_where(scope, "ca");
	tls->certificate_where = conf_scope_where(scope, "certificate");
	if (!conf_scope_leave(scope)) {
		conf_tls_client_free(tls);
		return NULL;
	}
	return tls;
}

void conf_tls_client_free(struct conf_tls_client *tls)
{
	if (tls == NULL)
		return;
	free(tls->ca);
	free(tls->server_name);
	free(tls->certificate);
	free(tls->key);
	free(tls->ciphers);
	free(tls->where);
	free(tls->ca_where);
	free(tls->certificate_where);
	free(tls);
}

struct conf_tls_client *conf_tls_client_copy(const struct conf_tls_client *tls)
{
	struct conf_tls_client *copy = calloc(1, sizeof(*copy));
	bool ok;

	if (copy == NULL)
		return NULL;
	copy->verify = tls->verify;
	copy->min_tls13 = tls->min_tls13;
	copy->max_tls12 = tls->max_tls12;
	ok = (tls->ca == NULL || (copy->ca = strdup(tls->ca)) != NULL) &&
	     (tls->server_name == NULL || (copy->server_name = strdup(tls->server_name)) != NULL) &&
	     (tls->certificate == NULL || (copy->certificate = strdup(tls->certificate)) != NULL) &&
	     (tls->key == NULL || (copy->key = strdup(tls->key)) != NULL) &&
	     (tls->ciphers == NULL || (copy->ciphers = strdup(tls->ciphers)) != NULL);
	if (!ok) {
		conf_tls_client_free(copy);
		return NULL;
	}
	return copy;
}
