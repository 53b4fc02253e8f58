#include "sources/icy.h"

#include <string.h>

#include <event2/buffer.h>

void icy_demux_init(struct icy_demux *d, size_t metaint)
{
	d->metaint = metaint;
	d->audio_left = metaint;
	d->in_block = false;
	d->block_len = 0;
	d->block_have = 0;
}

static size_t smaller(size_t a, size_t b)
{
	return a < b ? a : b;
}

/* Collects block bytes; the block is reported only once complete, so a
 * title never arrives cut at a read boundary. */
static size_t take_block(struct icy_demux *d, const char *p, size_t len, icy_metadata_fn *metadata, void *arg)
{
	size_t n = smaller(d->block_len - d->block_have, len);

	memcpy(d->block + d->block_have, p, n);
	d->block_have += n;
	if (d->block_have == d->block_len) {
		d->in_block = false;
		d->audio_left = d->metaint;
		metadata(arg, d->block, d->block_len);
	}
	return n;
}

static void take_length_byte(struct icy_demux *d, unsigned char l)
{
	d->block_len = (size_t)l * 16;
	d->block_have = 0;
	if (d->block_len == 0)
		d->audio_left = d->metaint;
	else
		d->in_block = true;
}

int icy_demux_feed(struct icy_demux *d, const void *data, size_t len, struct evbuffer *audio_out,
		   icy_metadata_fn *metadata, void *arg)
{
	const char *p = data;

	if (d->metaint == 0)
		return len ? evbuffer_add(audio_out, p, len) : 0;
	while (len > 0) {
		size_t used;

		if (d->in_block) {
			used = take_block(d, p, len, metadata, arg);
		} else if (d->audio_left > 0) {
			used = smaller(d->audio_left, len);
			if (evbuffer_add(audio_out, p, used) < 0)
				return -1;
			d->audio_left -= used;
		} else {
			take_length_byte(d, (unsigned char)*p);
			used = 1;
		}
		p += used;
		len -= used;
	}
	return 0;
}

/* The first of a or b in text[at, len), or len. */
static size_t find_either(const char *text, size_t len, size_t at, char a, char b)
{
	while (at < len && text[at] != a && text[at] != b)
		at++;
	return at;
}

static bool is_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

struct field_value {
	size_t start, len;
	size_t next;			/* where the following field begins */
};

/* The value that begins at text[at], just past the '='. Quoted values end
 * at "';" because servers put quotes into titles unescaped; a last field
 * without its ';' ends at its last quote. */
static struct field_value value_at(const char *text, size_t len, size_t at)
{
	struct field_value v = {.start = at};
	const char *end;

	if (at < len && text[at] == '\'') {
		const char *body = text + at + 1;
		size_t body_len = len - at - 1;

		v.start = at + 1;
		end = memmem(body, body_len, "';", 2);
		if (end) {
			v.len = (size_t)(end - body);
			v.next = (size_t)(end - text) + 2;
			return v;
		}
		end = memrchr(body, '\'', body_len);
		v.len = end ? (size_t)(end - body) : body_len;
		v.next = len;
		return v;
	}
	end = memchr(text + at, ';', len - at);
	v.len = end ? (size_t)(end - text) - at : len - at;
	v.next = end ? (size_t)(end - text) + 1 : len;
	return v;
}

bool icy_parse_field(const char *block, size_t len, const char *key, const char **value, size_t *value_len)
{
	const char *padding = memchr(block, '\0', len);
	size_t text_len = padding ? (size_t)(padding - block) : len;
	size_t key_len = strlen(key), at = 0;

	while (at < text_len) {
		size_t eq;
		struct field_value v;

		while (at < text_len && is_blank(block[at]))
			at++;
		eq = find_either(block, text_len, at, '=', ';');
		if (eq == text_len)
			return false;
		if (block[eq] == ';') {		/* a field without a value */
			at = eq + 1;
			continue;
		}
		v = value_at(block, text_len, eq + 1);
		if (eq - at == key_len && memcmp(block + at, key, key_len) == 0) {
			*value = block + v.start;
			*value_len = v.len;
			return true;
		}
		at = v.next;
	}
	return false;
}
