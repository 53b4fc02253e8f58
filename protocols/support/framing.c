#include "protocols/support/framing.h"

#include <errno.h>
#include <event2/buffer.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- SimpleFrame ---------------------------------------------------- */

int frame_encode(struct evbuffer *out, long long tag, const void *data, size_t len)
{
	if (evbuffer_add_printf(out, "%lld %zu\n", tag, len) < 0)
		return -1;
	if (len > 0 && evbuffer_add(out, data, len) != 0)
		return -1;
	return 0;
}

struct word {
	const unsigned char *text;
	size_t len;
};

/* Python 2's str.split() splits bytes on these six. */
static bool is_split_space(unsigned char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

/* Fills up to max words and returns how many there are, stopping at
 * max + 1: the caller only needs to know "exactly two". */
static size_t split_words(const unsigned char *s, size_t len, struct word *words, size_t max)
{
	size_t count = 0, i = 0;

	while (i < len && count <= max) {
		size_t start;

		while (i < len && is_split_space(s[i]))
			i++;
		if (i == len)
			break;
		start = i;
		while (i < len && !is_split_space(s[i]))
			i++;
		if (count < max)
			words[count] = (struct word){ s + start, i - start };
		count++;
	}
	return count;
}

struct integer {
	bool negative;
	bool overflow;			/* the magnitude passed ULLONG_MAX */
	unsigned long long magnitude;
};

/* Python's int() on a word: an optional sign, then one or more digits.
 * Any length of digits is an integer; overflow is noted, not refused, so
 * the caller can tell "not a number" from "too big". */
static bool parse_integer(const struct word *word, struct integer *value)
{
	size_t i = 0;

	*value = (struct integer){ 0 };
	if (word->len > 0 && (word->text[0] == '+' || word->text[0] == '-')) {
		value->negative = word->text[0] == '-';
		i = 1;
	}
	if (i == word->len)
		return false;
	for (; i < word->len; i++) {
		unsigned digit = (unsigned)word->text[i] - '0';

		if (digit > 9)
			return false;
		if (value->magnitude > (ULLONG_MAX - digit) / 10)
			value->overflow = true;
		else
			value->magnitude = value->magnitude * 10 + digit;
	}
	return true;
}

static bool integer_to_tag(const struct integer *value, long long *tag)
{
	unsigned long long most_negative = (unsigned long long)LLONG_MAX + 1;

	if (value->overflow)
		return false;
	if (!value->negative) {
		if (value->magnitude > (unsigned long long)LLONG_MAX)
			return false;
		*tag = (long long)value->magnitude;
	} else if (value->magnitude == most_negative) {
		*tag = LLONG_MIN;
	} else if (value->magnitude < most_negative) {
		*tag = -(long long)value->magnitude;
	} else {
		return false;
	}
	return true;
}

int frame_decode(const void *buf, size_t len, long long *tag, const void **data, size_t *data_len)
{
	const unsigned char *frame = buf, *lf;
	struct word words[2];
	struct integer tag_value, length_value;
	size_t header_len, body_len;

	lf = len > 0 ? memchr(frame, '\n', len) : NULL;
	if (lf == NULL)
		return FRAME_NO_LF;
	header_len = (size_t)(lf - frame);
	if (split_words(frame, header_len, words, 2) != 2)
		return FRAME_NOT_TWO_FIELDS;
	if (!parse_integer(&words[0], &tag_value) || !parse_integer(&words[1], &length_value))
		return FRAME_NOT_INTEGER;
	/* "-0" is 0 to Python, so only a nonzero negative length is one. */
	if (length_value.negative && (length_value.magnitude != 0 || length_value.overflow))
		return FRAME_NEGATIVE_LENGTH;
	if (!integer_to_tag(&tag_value, tag) || length_value.overflow || length_value.magnitude > SIZE_MAX)
		return FRAME_OVERFLOW;
	body_len = len - header_len - 1;
	if (length_value.magnitude > body_len)
		return FRAME_SHORT;
	*data = lf + 1;
	*data_len = (size_t)length_value.magnitude;
	return FRAME_OK;
}

const char *frame_result_str(int result)
{
	switch (result) {
	case FRAME_OK:
		return "ok";
	case FRAME_NO_LF:
		return "no newline after the header";
	case FRAME_NOT_TWO_FIELDS:
		return "the header is not two fields";
	case FRAME_NOT_INTEGER:
		return "a header field is not an integer";
	case FRAME_OVERFLOW:
		return "a header field is out of range";
	case FRAME_NEGATIVE_LENGTH:
		return "negative length";
	case FRAME_SHORT:
		return "short frame";
	default:
		return "unknown result";
	}
}

/* ---- DataChunker ---------------------------------------------------- */

/* Which bytes escape() rewrites: '%' and every byte of the sync. Both are
 * written as '%' and two lowercase hex digits ('%' is "%25"), which is why
 * one table serves escape and unescape alike. */
struct escape_table {
	bool escaped[256];
};

static bool is_lower_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

static int lower_hex_value(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static const char *sync_or_default(const char *sync)
{
	return sync != NULL ? sync : CHUNK_SYNC_DEFAULT;
}

bool chunk_sync_valid(const char *sync)
{
	size_t len;

	sync = sync_or_default(sync);
	len = strnlen(sync, CHUNK_SYNC_MAX + 1);
	if (len == 0 || len > CHUNK_SYNC_MAX)
		return false;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)sync[i];

		/* Below 0x10 hex() is one digit, and '%' or a hex digit in the
		 * sync makes Kamaelia's passes rewrite their own output. */
		if (c < 0x10 || c == '%' || is_lower_hex(c))
			return false;
	}
	return true;
}

static bool escape_table_build(struct escape_table *table, const char *sync)
{
	if (!chunk_sync_valid(sync))
		return false;
	memset(table, 0, sizeof(*table));
	table->escaped['%'] = true;
	for (const char *c = sync_or_default(sync); *c != '\0'; c++)
		table->escaped[(unsigned char)*c] = true;
	return true;
}

/* For a valid sync this single pass equals Kamaelia's re.sub for '%' and
 * then for each sync byte: no pass can create what another one matches. */
static size_t escape_into(unsigned char *out, const unsigned char *in, size_t len, const struct escape_table *table)
{
	static const char hex[] = "0123456789abcdef";
	unsigned char *next = out;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = in[i];

		if (table->escaped[c]) {
			*next++ = '%';
			*next++ = (unsigned char)hex[c >> 4];
			*next++ = (unsigned char)hex[c & 0xf];
		} else {
			*next++ = c;
		}
	}
	return (size_t)(next - out);
}

/* The escaped byte "%hh" stands for, or -1. */
static int escape_at(const unsigned char *in, size_t left, const struct escape_table *table)
{
	int high, low;

	if (left < 3 || in[0] != '%')
		return -1;
	high = lower_hex_value(in[1]);
	low = lower_hex_value(in[2]);
	if (high < 0 || low < 0 || !table->escaped[high * 16 + low])
		return -1;
	return high * 16 + low;
}

/* Kamaelia's unescape in one pass; out may be in, since it never gets
 * ahead of it. A '%' that starts no escape stays, as re.sub leaves it. */
static size_t unescape_into(unsigned char *out, const unsigned char *in, size_t len, const struct escape_table *table,
			    size_t *bad_escapes)
{
	size_t i = 0, written = 0;

	while (i < len) {
		int byte = escape_at(in + i, len - i, table);

		if (byte >= 0) {
			out[written++] = (unsigned char)byte;
			i += 3;
			continue;
		}
		if (in[i] == '%')
			(*bad_escapes)++;
		out[written++] = in[i++];
	}
	return written;
}

/* Appends prefix + escape(msg) with one reservation. */
static int append_escaped(struct evbuffer *out, const char *prefix, size_t prefix_len, const void *msg, size_t len,
			  const struct escape_table *table)
{
	struct evbuffer_iovec vec;
	size_t room;
	unsigned char *at;

	if (len > (SIZE_MAX - prefix_len) / 3)
		return -1;
	room = prefix_len + 3 * len;
	if (room == 0)
		return 0;
	if (evbuffer_reserve_space(out, (ev_ssize_t)room, &vec, 1) < 1)
		return -1;
	at = vec.iov_base;
	memcpy(at, prefix, prefix_len);
	vec.iov_len = prefix_len + escape_into(at + prefix_len, msg, len, table);
	return evbuffer_commit_space(out, &vec, 1);
}

int chunk_escape(struct evbuffer *out, const void *msg, size_t len, const char *sync)
{
	struct escape_table table;

	if (!escape_table_build(&table, sync))
		return -1;
	return append_escaped(out, "", 0, msg, len, &table);
}

int chunk_encode(struct evbuffer *out, const void *msg, size_t len, const char *sync)
{
	struct escape_table table;

	if (!escape_table_build(&table, sync))
		return -1;
	sync = sync_or_default(sync);
	return append_escaped(out, sync, strlen(sync), msg, len, &table);
}

int chunk_unescape(struct evbuffer *out, const void *data, size_t len, const char *sync, size_t *bad_escapes)
{
	struct escape_table table;
	struct evbuffer_iovec vec;
	size_t ignored = 0;

	if (!escape_table_build(&table, sync))
		return -1;
	if (len == 0)
		return 0;
	if (evbuffer_reserve_space(out, (ev_ssize_t)len, &vec, 1) < 1)
		return -1;
	vec.iov_len = unescape_into(vec.iov_base, data, len, &table, bad_escapes != NULL ? bad_escapes : &ignored);
	return evbuffer_commit_space(out, &vec, 1);
}

/* ---- DataDeChunker -------------------------------------------------- */

struct dechunker {
	struct evbuffer *buffer;
	char sync[CHUNK_SYNC_MAX + 1];
	size_t sync_len;
	struct escape_table table;
	size_t max_buffered;
	bool drain;
	bool found_first_sync;	/* Kamaelia's foundFirstChunk */
	/* Where the next search for the sync starts. Kamaelia searches from
	 * offset sync_len every time; starting later where the earlier
	 * searches already failed finds the same first match without going
	 * over the whole buffer again on every small datagram. */
	size_t search_from;
	dechunker_emit_fn *emit;
	void *arg;
	struct dechunker_stats stats;
};

struct dechunker *dechunker_new(const struct dechunker_options *opts, dechunker_emit_fn *emit, void *arg)
{
	static const struct dechunker_options defaults = { 0 };
	struct dechunker *dechunker;

	if (opts == NULL)
		opts = &defaults;
	if (!chunk_sync_valid(opts->sync)) {
		errno = EINVAL;
		return NULL;
	}
	dechunker = calloc(1, sizeof(*dechunker));
	if (dechunker == NULL)
		return NULL;
	dechunker->buffer = evbuffer_new();
	if (dechunker->buffer == NULL) {
		free(dechunker);
		errno = ENOMEM;
		return NULL;
	}
	strcpy(dechunker->sync, sync_or_default(opts->sync));
	dechunker->sync_len = strlen(dechunker->sync);
	escape_table_build(&dechunker->table, dechunker->sync);
	dechunker->max_buffered = opts->max_buffered != 0 ? opts->max_buffered : DECHUNKER_DEFAULT_MAX_BUFFERED;
	dechunker->drain = opts->drain;
	dechunker->search_from = dechunker->sync_len;
	dechunker->emit = emit;
	dechunker->arg = arg;
	return dechunker;
}

void dechunker_free(struct dechunker *dechunker)
{
	if (dechunker == NULL)
		return;
	evbuffer_free(dechunker->buffer);
	free(dechunker);
}

size_t dechunker_buffered(const struct dechunker *dechunker)
{
	return evbuffer_get_length(dechunker->buffer);
}

const struct dechunker_stats *dechunker_stats(const struct dechunker *dechunker)
{
	return &dechunker->stats;
}

static void empty_buffer(struct dechunker *dechunker)
{
	evbuffer_drain(dechunker->buffer, evbuffer_get_length(dechunker->buffer));
	dechunker->search_from = dechunker->sync_len;
}

static void discard_buffer(struct dechunker *dechunker)
{
	dechunker->stats.overflows++;
	dechunker->stats.bytes_discarded += evbuffer_get_length(dechunker->buffer);
	empty_buffer(dechunker);
}

static bool buffer_starts_with_sync(struct dechunker *dechunker, size_t len)
{
	char head[CHUNK_SYNC_MAX];

	if (len < dechunker->sync_len)
		return false;
	if (evbuffer_copyout(dechunker->buffer, head, dechunker->sync_len) != (ev_ssize_t)dechunker->sync_len)
		return false;
	return memcmp(head, dechunker->sync, dechunker->sync_len) == 0;
}

/* Kamaelia's decodeChunk on the first len bytes, which the caller removes
 * afterwards: that is what lets the unescape work in place. */
static void emit_chunk(struct dechunker *dechunker, size_t len)
{
	unsigned char *chunk, *body;
	size_t body_len, bad = 0;

	if (!buffer_starts_with_sync(dechunker, len)) {
		if (len > 0)
			dechunker->stats.incomplete++;
		return;
	}
	chunk = evbuffer_pullup(dechunker->buffer, (ev_ssize_t)len);
	if (chunk == NULL) {
		dechunker->stats.incomplete++;
		return;
	}
	body = chunk + dechunker->sync_len;
	body_len = unescape_into(body, body, len - dechunker->sync_len, &dechunker->table, &bad);
	dechunker->stats.bad_escapes += bad;
	dechunker->stats.messages++;
	dechunker->emit(dechunker->arg, body, body_len);
}

/* buffer.find(sync, len(sync)), resumed where the last search gave up. */
static bool find_sync(struct dechunker *dechunker, size_t *at)
{
	size_t len = evbuffer_get_length(dechunker->buffer);
	struct evbuffer_ptr start, found;

	if (dechunker->search_from + dechunker->sync_len > len)
		return false;
	if (evbuffer_ptr_set(dechunker->buffer, &start, dechunker->search_from, EVBUFFER_PTR_SET) != 0)
		return false;
	found = evbuffer_search(dechunker->buffer, dechunker->sync, dechunker->sync_len, &start);
	if (found.pos < 0) {
		/* A match may still start in the last sync_len - 1 bytes. */
		dechunker->search_from = len - dechunker->sync_len + 1;
		return false;
	}
	*at = (size_t)found.pos;
	dechunker->search_from = *at;
	return true;
}

/* One turn of Kamaelia's loop body: false when no sync was found. */
static bool dechunk_once(struct dechunker *dechunker)
{
	size_t at;

	if (!find_sync(dechunker, &at))
		return false;
	if (!dechunker->found_first_sync) {
		/* Kamaelia keeps everything the first time round. */
		dechunker->found_first_sync = true;
		return true;
	}
	emit_chunk(dechunker, at);
	evbuffer_drain(dechunker->buffer, at);
	dechunker->search_from = dechunker->sync_len;
	return true;
}

int dechunker_feed(struct dechunker *dechunker, const void *data, size_t len)
{
	if (len > 0 && evbuffer_add(dechunker->buffer, data, len) != 0) {
		discard_buffer(dechunker);
		return -1;
	}
	/* Kamaelia takes one step per received message; drain keeps going
	 * while steps find a sync. Each step either sets found_first_sync
	 * (once) or removes at least sync_len bytes, so this ends. */
	while (dechunk_once(dechunker) && dechunker->drain)
		;
	if (evbuffer_get_length(dechunker->buffer) > dechunker->max_buffered)
		discard_buffer(dechunker);
	return 0;
}

void dechunker_flush(struct dechunker *dechunker)
{
	size_t len = evbuffer_get_length(dechunker->buffer);

	emit_chunk(dechunker, len);
	empty_buffer(dechunker);
}

/* ---- MaxSizePacketiser ---------------------------------------------- */

size_t packetise_message(const void *msg, size_t len, size_t packet_size, packet_emit_fn *emit, void *arg)
{
	const unsigned char *next = msg;
	size_t packets = 0;

	if (packet_size == 0)
		return 0;
	for (; len > packet_size; len -= packet_size, next += packet_size, packets++)
		emit(arg, next, packet_size);
	emit(arg, next, len);
	return packets + 1;
}

size_t packetise_next(struct evbuffer *in, size_t packet_size, bool flush, void *out)
{
	size_t have = evbuffer_get_length(in), take;

	if (packet_size == 0 || have == 0 || (have < packet_size && !flush))
		return 0;
	take = have < packet_size ? have : packet_size;
	if (evbuffer_copyout(in, out, take) != (ev_ssize_t)take)
		return 0;
	evbuffer_drain(in, take);
	return take;
}
