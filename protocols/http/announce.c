/* The announce query: key=value pairs joined by '&', both percent-encoded.
 * info_hash and peer_id are 20 raw bytes each once decoded. */
#include "protocols/http/announce.h"

#include <string.h>

/* Long enough for any field this parser keeps; a longer one is refused. */
#define ANNOUNCE_VALUE_MAX 64

struct field {
	const char *key, *value;
	size_t key_len, value_len;
};

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Percent-decodes into out (at most cap bytes); -1 when malformed or too
 * long. '+' is a space, as in a form. */
static long decode(const char *in, size_t len, unsigned char *out, size_t cap)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '%') {
			int hi, lo;
			if (i + 2 >= len)
				return -1;
			hi = hex_digit(in[i + 1]);
			lo = hex_digit(in[i + 2]);
			if (hi < 0 || lo < 0)
				return -1;
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		} else if (c == '+') {
			c = ' ';
		}
		if (n == cap)
			return -1;
		out[n++] = c;
	}
	return (long)n;
}

static bool key_is(const struct field *f, const char *key)
{
	return f->key_len == strlen(key) && memcmp(f->key, key, f->key_len) == 0;
}

/* A decimal number within [0, max]; false otherwise. */
static bool number(const struct field *f, uint64_t max, uint64_t *out)
{
	unsigned char text[ANNOUNCE_VALUE_MAX];
	long len = decode(f->value, f->value_len, text, sizeof(text));
	uint64_t v = 0;

	if (len <= 0 || len > 20)
		return false;
	for (long i = 0; i < len; i++) {
		if (text[i] < '0' || text[i] > '9')
			return false;
		if (v > (UINT64_MAX - 9) / 10)
			return false;
		v = v * 10 + (uint64_t)(text[i] - '0');
	}
	if (v > max)
		return false;
	*out = v;
	return true;
}

static bool hash(const struct field *f, unsigned char out[ANNOUNCE_HASH_LEN])
{
	unsigned char raw[ANNOUNCE_HASH_LEN + 1];

	if (decode(f->value, f->value_len, raw, sizeof(raw)) != ANNOUNCE_HASH_LEN)
		return false;
	memcpy(out, raw, ANNOUNCE_HASH_LEN);
	return true;
}

static bool event(const struct field *f, enum announce_event *out)
{
	static const char *const names[] = { "", "started", "completed", "stopped" };
	unsigned char text[16];
	long len = decode(f->value, f->value_len, text, sizeof(text));

	for (size_t i = 0; len >= 0 && i < sizeof(names) / sizeof(names[0]); i++)
		if ((size_t)len == strlen(names[i]) && memcmp(text, names[i], (size_t)len) == 0) {
			*out = (enum announce_event)i;
			return true;
		}
	return false;
}

/* The next key=value of the query from *at; false at the end. */
static bool next_field(const char **at, const char *end, struct field *f)
{
	const char *amp, *eq;

	while (*at < end && **at == '&')
		(*at)++;
	if (*at >= end)
		return false;
	amp = memchr(*at, '&', (size_t)(end - *at));
	if (amp == NULL)
		amp = end;
	eq = memchr(*at, '=', (size_t)(amp - *at));
	f->key = *at;
	f->key_len = (size_t)((eq ? eq : amp) - *at);
	f->value = eq ? eq + 1 : amp;
	f->value_len = eq ? (size_t)(amp - eq - 1) : 0;
	*at = amp;
	return true;
}

/* Fields that must be there. A missing compact gets the compact answer
 * anyway (BEP 23: a tracker may); compact=0 is refused. */
enum seen { SEEN_HASH = 1, SEEN_PEER_ID = 2, SEEN_PORT = 4 };

static const char *take_field(const struct field *f, struct announce *out, unsigned *seen)
{
	uint64_t v;

	if (key_is(f, "info_hash")) {
		*seen |= SEEN_HASH;
		return hash(f, out->info_hash) ? NULL : "info_hash must be 20 bytes";
	}
	if (key_is(f, "peer_id")) {
		*seen |= SEEN_PEER_ID;
		return hash(f, out->peer_id) ? NULL : "peer_id must be 20 bytes";
	}
	if (key_is(f, "port")) {
		*seen |= SEEN_PORT;
		if (!number(f, 65535, &v) || v == 0)
			return "port must be from 1 to 65535";
		out->port = (unsigned)v;
		return NULL;
	}
	if (key_is(f, "numwant")) {
		if (!number(f, ANNOUNCE_NUMWANT_MAX, &v))
			return "numwant must be from 0 to 65535";
		out->numwant = (unsigned)v;
		return NULL;
	}
	if (key_is(f, "left"))
		return number(f, UINT64_MAX, &out->left) ? NULL : "left must be a number";
	if (key_is(f, "event"))
		return event(f, &out->event) ? NULL : "event must be started, completed or stopped";
	if (key_is(f, "compact"))
		return f->value_len == 1 && f->value[0] == '1' ? NULL : "only compact answers (compact=1) are given";
	return NULL;	/* uploaded, downloaded, key, ip ... are not needed */
}

int announce_parse(const char *query, size_t len, struct announce *out, const char **reason)
{
	const char *at = query, *end = query + len;
	unsigned seen = 0;
	struct field f;

	memset(out, 0, sizeof(*out));
	out->numwant = ANNOUNCE_DEFAULT_NUMWANT;
	out->left = UINT64_MAX;
	*reason = NULL;
	while (query != NULL && next_field(&at, end, &f)) {
		*reason = take_field(&f, out, &seen);
		if (*reason != NULL)
			return -1;
	}
	if (!(seen & SEEN_HASH))
		*reason = "missing info_hash";
	else if (!(seen & SEEN_PEER_ID))
		*reason = "missing peer_id";
	else if (!(seen & SEEN_PORT))
		*reason = "missing port";
	return *reason == NULL ? 0 : -1;
}
