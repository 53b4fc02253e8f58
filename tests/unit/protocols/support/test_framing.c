/* Kamaelia's framing: the worked bytes of kamaelia.md 7.2 and 8.1-8.3, round
 * trips of random data, and the dechunker against a plain transcription of
 * DataDeChunker.main fed the same stream cut every way. */
#include <criterion/criterion.h>
#include <errno.h>
#include <event2/buffer.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/support/framing.h"

#define SYNC CHUNK_SYNC_DEFAULT
#define SYNC_LEN (sizeof(SYNC) - 1)

/* ---- helpers -------------------------------------------------------- */

static bool buffer_equals(struct evbuffer *buf, const void *want, size_t want_len)
{
	size_t len = evbuffer_get_length(buf);

	if (len != want_len)
		return false;
	return len == 0 || memcmp(evbuffer_pullup(buf, -1), want, len) == 0;
}

#define assert_buffer(buf, lit) cr_assert(buffer_equals((buf), (lit), sizeof(lit) - 1), "got %zu bytes", evbuffer_get_length(buf))

struct message {
	unsigned char *bytes;
	size_t len;
};

struct inbox {
	struct message *items;
	size_t count;
};

static void inbox_add(struct inbox *inbox, const void *msg, size_t len)
{
	struct message *item;

	inbox->items = realloc(inbox->items, (inbox->count + 1) * sizeof(*inbox->items));
	cr_assert_not_null(inbox->items);
	item = &inbox->items[inbox->count++];
	item->bytes = malloc(len + 1);
	cr_assert_not_null(item->bytes);
	if (len > 0)
		memcpy(item->bytes, msg, len);
	item->len = len;
}

static void inbox_clear(struct inbox *inbox)
{
	for (size_t i = 0; i < inbox->count; i++)
		free(inbox->items[i].bytes);
	free(inbox->items);
	*inbox = (struct inbox){ 0 };
}

static void inbox_emit(void *arg, const void *msg, size_t len)
{
	inbox_add(arg, msg, len);
}

static void assert_same_messages(const struct inbox *got, const struct inbox *want, const char *what)
{
	cr_assert_eq(got->count, want->count, "%s: %zu messages, want %zu", what, got->count, want->count);
	for (size_t i = 0; i < got->count; i++) {
		cr_assert_eq(got->items[i].len, want->items[i].len, "%s: message %zu", what, i);
		cr_assert(memcmp(got->items[i].bytes, want->items[i].bytes, got->items[i].len) == 0, "%s: message %zu",
			  what, i);
	}
}

/* A fixed xorshift so every run checks the same cases. */
static uint64_t rng_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *state = x;
}

/* Random bytes heavy in what the escaping is about: 'X', '%', "58", "25". */
static void random_bytes(uint64_t *rng, unsigned char *out, size_t len)
{
	static const char tricky[] = "X%5825";

	for (size_t i = 0; i < len; i++) {
		uint64_t r = rng_next(rng);

		out[i] = (r & 3) == 0 ? (unsigned char)tricky[(r >> 2) % 6] : (unsigned char)(r >> 8);
	}
}

/* ---- SimpleFrame ---------------------------------------------------- */

Test(frame, encodes_kamaelia_examples)
{
	struct evbuffer *out = evbuffer_new();

	cr_assert_eq(frame_encode(out, 1, "1", 1), 0);
	assert_buffer(out, "1 1\n1");
	evbuffer_drain(out, evbuffer_get_length(out));
	cr_assert_eq(frame_encode(out, 50, "1111", 4), 0);
	assert_buffer(out, "50 4\n1111");
	evbuffer_drain(out, evbuffer_get_length(out));
	cr_assert_eq(frame_encode(out, -7, "", 0), 0);
	assert_buffer(out, "-7 0\n");
	evbuffer_free(out);
}

static int decode_text(const char *text, long long *tag, const char **data, size_t *len)
{
	const void *body = NULL;
	int rc = frame_decode(text, strlen(text), tag, &body, len);

	*data = body;
	return rc;
}

Test(frame, decode_discards_bytes_past_the_length)
{
	long long tag = 0;
	const char *data;
	size_t len = 0;

	cr_assert_eq(decode_text("1 2\n1111", &tag, &data, &len), FRAME_OK);
	cr_assert_eq(tag, 1);
	cr_assert_eq(len, 2);
	cr_assert(memcmp(data, "11", 2) == 0);
}

Test(frame, decode_reads_headers_as_python_int_does)
{
	long long tag = 0;
	const char *data;
	size_t len = 0;

	cr_assert_eq(decode_text("\t+007 \r 03 \r\nabcd", &tag, &data, &len), FRAME_OK);
	cr_assert_eq(tag, 7);
	cr_assert_eq(len, 3);
	cr_assert(memcmp(data, "abc", 3) == 0);
	cr_assert_eq(decode_text("-5 -0\n", &tag, &data, &len), FRAME_OK);
	cr_assert_eq(tag, -5);
	cr_assert_eq(len, 0);
	cr_assert_eq(decode_text("-9223372036854775808 1\nz", &tag, &data, &len), FRAME_OK);
	cr_assert_eq(tag, LLONG_MIN);
	cr_assert_eq(decode_text("9223372036854775807 0\n", &tag, &data, &len), FRAME_OK);
	cr_assert_eq(tag, LLONG_MAX);
}

Test(frame, decode_refuses_each_kind_of_bad_frame)
{
	static const struct {
		const char *text;
		int result;
	} cases[] = {
		{ "", FRAME_NO_LF },
		{ "1 1", FRAME_NO_LF },
		{ "1 1 x", FRAME_NO_LF },
		{ "\n", FRAME_NOT_TWO_FIELDS },
		{ "1\n1", FRAME_NOT_TWO_FIELDS },
		{ "1 1 1\n1", FRAME_NOT_TWO_FIELDS },
		{ "a 1\nx", FRAME_NOT_INTEGER },
		{ "1 0x1\nx", FRAME_NOT_INTEGER },
		{ "1 +\nx", FRAME_NOT_INTEGER },
		{ "1 1_0\nx", FRAME_NOT_INTEGER },
		{ "--1 1\nx", FRAME_NOT_INTEGER },
		{ "9223372036854775808 1\nx", FRAME_OVERFLOW },
		{ "-9223372036854775809 1\nx", FRAME_OVERFLOW },
		{ "1 99999999999999999999999\nx", FRAME_OVERFLOW },
		{ "1 -1\nxx", FRAME_NEGATIVE_LENGTH },
		{ "1 -99999999999999999999999\nx", FRAME_NEGATIVE_LENGTH },
		{ "1 5\nabcd", FRAME_SHORT },
		{ "1 1\n", FRAME_SHORT },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		long long tag;
		const char *data;
		size_t len;

		cr_assert_eq(decode_text(cases[i].text, &tag, &data, &len), cases[i].result, "\"%s\" gave %s",
			     cases[i].text, frame_result_str(decode_text(cases[i].text, &tag, &data, &len)));
	}
}

Test(frame, decode_rejects_a_nul_in_the_header)
{
	long long tag;
	const void *data;
	size_t len;

	cr_assert_eq(frame_decode("1\0 1\nx", 6, &tag, &data, &len), FRAME_NOT_INTEGER);
}

Test(frame, random_data_round_trips)
{
	uint64_t rng = 0x9e3779b97f4a7c15u;
	struct evbuffer *out = evbuffer_new();
	unsigned char data[4096];

	for (int i = 0; i < 3000; i++) {
		size_t len = rng_next(&rng) % sizeof(data);
		long long tag = (long long)rng_next(&rng);
		long long got_tag;
		const void *got;
		size_t got_len;
		size_t framed_len;
		unsigned char *framed;

		random_bytes(&rng, data, len);
		evbuffer_drain(out, evbuffer_get_length(out));
		cr_assert_eq(frame_encode(out, tag, data, len), 0);
		framed_len = evbuffer_get_length(out);
		framed = evbuffer_pullup(out, -1);
		cr_assert_eq(frame_decode(framed, framed_len, &got_tag, &got, &got_len), FRAME_OK, "case %d", i);
		cr_assert_eq(got_tag, tag);
		cr_assert_eq(got_len, len);
		cr_assert(len == 0 || memcmp(got, data, len) == 0, "case %d", i);
	}
	evbuffer_free(out);
}

/* ---- DataChunker ---------------------------------------------------- */

Test(chunk, srm_frame_is_the_exact_bytes_of_7_2)
{
	static const unsigned char want[] = {
		0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58,
		0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58, 0x58,
		0x31, 0x20, 0x38, 0x0a, 0x68, 0x65, 0x6c, 0x6c, 0x6f, 0x20, 0x25, 0x35, 0x38, 0x25, 0x32, 0x35,
	};
	struct evbuffer *frame = evbuffer_new(), *wire = evbuffer_new();
	size_t len;

	cr_assert_eq(frame_encode(frame, 1, "hello X%", 8), 0);
	len = evbuffer_get_length(frame);
	cr_assert_eq(chunk_encode(wire, evbuffer_pullup(frame, -1), len, NULL), 0);
	cr_assert(buffer_equals(wire, want, sizeof(want)));
	evbuffer_free(frame);
	evbuffer_free(wire);
}

static void assert_escape_pair(const char *plain, const char *escaped)
{
	struct evbuffer *out = evbuffer_new();
	size_t bad = 0;

	cr_assert_eq(chunk_escape(out, plain, strlen(plain), NULL), 0);
	cr_assert(buffer_equals(out, escaped, strlen(escaped)), "escape(\"%s\")", plain);
	evbuffer_drain(out, evbuffer_get_length(out));
	cr_assert_eq(chunk_unescape(out, escaped, strlen(escaped), NULL, &bad), 0);
	cr_assert(buffer_equals(out, plain, strlen(plain)), "unescape(\"%s\")", escaped);
	cr_assert_eq(bad, 0);
	evbuffer_free(out);
}

Test(chunk, escape_round_trips_of_8_2)
{
	assert_escape_pair("%58", "%2558");
	assert_escape_pair("%25X", "%2525%58");
	assert_escape_pair("XX%", "%58%58%25");
	assert_escape_pair("", "");
}

Test(chunk, unknown_escapes_pass_through_and_are_counted)
{
	static const char in[] = "a%zz%41%5%2%58%25%";
	static const char want[] = "a%zz%41%5%2X%%";
	struct evbuffer *out = evbuffer_new();
	size_t bad = 0;

	cr_assert_eq(chunk_unescape(out, in, strlen(in), NULL, &bad), 0);
	cr_assert(buffer_equals(out, want, strlen(want)));
	cr_assert_eq(bad, 5);
	evbuffer_free(out);
}

Test(chunk, uppercase_hex_is_no_escape)
{
	struct evbuffer *out = evbuffer_new();
	size_t bad = 0;

	/* hex() in Python is lowercase and re.sub matches it exactly. */
	cr_assert_eq(chunk_unescape(out, "%2F", 3, "X/", &bad), 0);
	assert_buffer(out, "%2F");
	cr_assert_eq(bad, 1);
	evbuffer_free(out);
}

Test(chunk, custom_sync_escapes_each_of_its_bytes)
{
	struct evbuffer *out = evbuffer_new();

	cr_assert_eq(chunk_encode(out, "a#b|%", 5, "#|#|"), 0);
	assert_buffer(out, "#|#|a%23b%7c%25");
	evbuffer_free(out);
}

Test(chunk, syncs_kamaelia_cannot_escape_are_refused)
{
	struct evbuffer *out = evbuffer_new();

	cr_assert(chunk_sync_valid(NULL));
	cr_assert(chunk_sync_valid("XYZ"));
	cr_assert(chunk_sync_valid("ABCDEF"));
	cr_assert_not(chunk_sync_valid(""));
	cr_assert_not(chunk_sync_valid("X%X"));
	cr_assert_not(chunk_sync_valid("Xa"));
	cr_assert_not(chunk_sync_valid("X5"));
	cr_assert_not(chunk_sync_valid("X\t"));
	cr_assert_not(chunk_sync_valid("XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX"));
	cr_assert_eq(chunk_encode(out, "x", 1, "5"), -1);
	cr_assert_eq(evbuffer_get_length(out), 0);
	evbuffer_free(out);
}

/* ---- DataDeChunker -------------------------------------------------- */

/* DataDeChunker.main written out plainly: one buffer.find(sync, len(sync))
 * per received message (or until none is found, for drain). */
struct model {
	unsigned char *buffer;
	size_t len;
	bool found_first;
	bool drain;
	struct inbox out;
};

static bool model_find(const struct model *model, size_t *at)
{
	for (size_t i = SYNC_LEN; i + SYNC_LEN <= model->len; i++)
		if (memcmp(model->buffer + i, SYNC, SYNC_LEN) == 0) {
			*at = i;
			return true;
		}
	return false;
}

static void model_decode(struct model *model, size_t len)
{
	struct evbuffer *plain;

	if (len < SYNC_LEN || memcmp(model->buffer, SYNC, SYNC_LEN) != 0)
		return;
	plain = evbuffer_new();
	cr_assert_eq(chunk_unescape(plain, model->buffer + SYNC_LEN, len - SYNC_LEN, NULL, NULL), 0);
	inbox_add(&model->out, evbuffer_pullup(plain, -1), evbuffer_get_length(plain));
	evbuffer_free(plain);
}

static void model_feed(struct model *model, const unsigned char *data, size_t len)
{
	size_t at;

	model->buffer = realloc(model->buffer, model->len + len + 1);
	cr_assert_not_null(model->buffer);
	if (len > 0)
		memcpy(model->buffer + model->len, data, len);
	model->len += len;
	do {
		if (!model_find(model, &at))
			return;
		if (model->found_first) {
			model_decode(model, at);
			memmove(model->buffer, model->buffer + at, model->len - at);
			model->len -= at;
		}
		model->found_first = true;
	} while (model->drain);
}

static void model_flush(struct model *model)
{
	model_decode(model, model->len);
	model->len = 0;
}

static void model_free(struct model *model)
{
	free(model->buffer);
	inbox_clear(&model->out);
}

/* The encoded stream of msgs, each a C string. */
static struct evbuffer *encode_stream(const char *const *msgs, size_t count)
{
	struct evbuffer *stream = evbuffer_new();

	for (size_t i = 0; i < count; i++)
		cr_assert_eq(chunk_encode(stream, msgs[i], strlen(msgs[i]), NULL), 0);
	return stream;
}

static const char *const sample[] = { "hello X%", "", "%58 and %2558", "XXXXXXXXXXXXXXXXXXXXXXXXX", "1 2\n11", "tail" };
#define SAMPLE_COUNT (sizeof(sample) / sizeof(sample[0]))

static struct inbox sample_inbox(void)
{
	struct inbox inbox = { 0 };

	for (size_t i = 0; i < SAMPLE_COUNT; i++)
		inbox_add(&inbox, sample[i], strlen(sample[i]));
	return inbox;
}

/* Feeds stream cut at the given offsets to both the dechunker and the
 * model, flushes, and checks they agree. Returns what the dechunker gave. */
static struct inbox feed_both(const unsigned char *stream, size_t len, const size_t *cuts, size_t cut_count, bool drain)
{
	struct dechunker_options opts = { .drain = drain };
	struct inbox got = { 0 };
	struct model model = { .drain = drain };
	struct dechunker *dechunker = dechunker_new(&opts, inbox_emit, &got);
	size_t from = 0;

	cr_assert_not_null(dechunker);
	for (size_t i = 0; i <= cut_count; i++) {
		size_t to = i < cut_count ? cuts[i] : len;

		cr_assert_eq(dechunker_feed(dechunker, stream + from, to - from), 0);
		model_feed(&model, stream + from, to - from);
		from = to;
	}
	dechunker_flush(dechunker);
	model_flush(&model);
	cr_assert_eq(dechunker_buffered(dechunker), 0);
	assert_same_messages(&got, &model.out, "dechunker against the model");
	dechunker_free(dechunker);
	model_free(&model);
	return got;
}

Test(dechunker, one_byte_datagrams_give_every_message)
{
	struct evbuffer *stream = encode_stream(sample, SAMPLE_COUNT);
	size_t len = evbuffer_get_length(stream);
	size_t *cuts = malloc(len * sizeof(*cuts));
	struct inbox want = sample_inbox();

	for (size_t i = 0; i < len; i++)
		cuts[i] = i + 1;
	for (int drain = 0; drain < 2; drain++) {
		struct inbox got = feed_both(evbuffer_pullup(stream, -1), len, cuts, len - 1, drain);

		/* One byte at a time each sync is seen on its own, so even
		 * Kamaelia's one-step-per-message loop keeps up; the flush
		 * gives the last message. */
		assert_same_messages(&got, &want, drain ? "drain" : "kamaelia");
		inbox_clear(&got);
	}
	inbox_clear(&want);
	free(cuts);
	evbuffer_free(stream);
}

Test(dechunker, every_two_and_three_way_split_agrees_with_kamaelia)
{
	struct evbuffer *stream = encode_stream(sample, SAMPLE_COUNT);
	size_t len = evbuffer_get_length(stream);
	const unsigned char *bytes = evbuffer_pullup(stream, -1);
	struct inbox want = sample_inbox();

	for (size_t a = 0; a <= len; a++) {
		for (size_t b = a; b <= len; b += 3) {
			size_t cuts[2] = { a, b };
			struct inbox got = feed_both(bytes, len, cuts, 2, true);

			/* Draining, the cut never matters. */
			assert_same_messages(&got, &want, "drain");
			inbox_clear(&got);
			got = feed_both(bytes, len, cuts, 2, false);
			inbox_clear(&got);
		}
	}
	inbox_clear(&want);
	evbuffer_free(stream);
}

Test(dechunker, whole_chunk_datagrams_lag_two_frames_as_in_7_3)
{
	static const char *const msgs[] = { "one", "two", "three", "four" };
	struct inbox got = { 0 };
	struct dechunker *dechunker = dechunker_new(NULL, inbox_emit, &got);
	struct evbuffer *chunk = evbuffer_new();
	size_t emitted_after[4];

	for (size_t i = 0; i < 4; i++) {
		cr_assert_eq(chunk_encode(chunk, msgs[i], strlen(msgs[i]), NULL), 0);
		cr_assert_eq(dechunker_feed(dechunker, evbuffer_pullup(chunk, -1), evbuffer_get_length(chunk)), 0);
		evbuffer_drain(chunk, evbuffer_get_length(chunk));
		emitted_after[i] = got.count;
	}
	/* Frame n comes out only once the sync of frame n + 2 is in. */
	cr_assert_eq(emitted_after[0], 0);
	cr_assert_eq(emitted_after[1], 0);
	cr_assert_eq(emitted_after[2], 1);
	cr_assert_eq(emitted_after[3], 2);
	cr_assert_eq(got.items[0].len, 3);
	cr_assert(memcmp(got.items[1].bytes, "two", 3) == 0);
	/* The flush sends the rest as one message, joined by the sync. */
	dechunker_flush(dechunker);
	cr_assert_eq(got.count, 3);
	cr_assert_eq(got.items[2].len, strlen("three" SYNC "four"));
	cr_assert(memcmp(got.items[2].bytes, "three" SYNC "four", got.items[2].len) == 0);
	inbox_clear(&got);
	evbuffer_free(chunk);
	dechunker_free(dechunker);
}

Test(dechunker, data_before_the_first_sync_is_dropped_as_incomplete)
{
	static const char *const msgs[] = { "a", "b", "c" };
	struct dechunker_options opts = { .drain = true };
	struct inbox got = { 0 };
	struct dechunker *dechunker = dechunker_new(&opts, inbox_emit, &got);
	struct evbuffer *stream = encode_stream(msgs, 3);
	static const char junk[] = "joined mid-stream, well past one sync's length";

	cr_assert_eq(dechunker_feed(dechunker, junk, strlen(junk)), 0);
	cr_assert_eq(dechunker_feed(dechunker, evbuffer_pullup(stream, -1), evbuffer_get_length(stream)), 0);
	dechunker_flush(dechunker);
	cr_assert_eq(got.count, 3);
	cr_assert_eq(dechunker_stats(dechunker)->incomplete, 1);
	cr_assert_eq(dechunker_stats(dechunker)->messages, 3);
	inbox_clear(&got);
	evbuffer_free(stream);
	dechunker_free(dechunker);
}

Test(dechunker, buffer_past_the_bound_is_discarded_and_counted)
{
	static const char *const msgs[] = { "x", "y", "z" };
	struct dechunker_options opts = { .max_buffered = 100, .drain = true };
	struct inbox got = { 0 };
	struct dechunker *dechunker = dechunker_new(&opts, inbox_emit, &got);
	struct evbuffer *stream = encode_stream(msgs, 3);
	char big[150];

	memset(big, 'y', sizeof(big));
	cr_assert_eq(dechunker_feed(dechunker, SYNC, SYNC_LEN), 0);
	cr_assert_eq(dechunker_feed(dechunker, big, sizeof(big)), 0);
	cr_assert_eq(dechunker_buffered(dechunker), 0);
	cr_assert_eq(dechunker_stats(dechunker)->overflows, 1);
	cr_assert_eq(dechunker_stats(dechunker)->bytes_discarded, SYNC_LEN + sizeof(big));
	/* It picks up again at the next sync. */
	cr_assert_eq(dechunker_feed(dechunker, evbuffer_pullup(stream, -1), evbuffer_get_length(stream)), 0);
	dechunker_flush(dechunker);
	cr_assert_eq(got.count, 3);
	cr_assert(memcmp(got.items[2].bytes, "z", 1) == 0);
	inbox_clear(&got);
	evbuffer_free(stream);
	dechunker_free(dechunker);
}

Test(dechunker, default_bound_is_one_mebibyte)
{
	struct inbox got = { 0 };
	struct dechunker *dechunker = dechunker_new(NULL, inbox_emit, &got);
	char *big = calloc(1, DECHUNKER_DEFAULT_MAX_BUFFERED);

	cr_assert_eq(dechunker_feed(dechunker, big, DECHUNKER_DEFAULT_MAX_BUFFERED), 0);
	cr_assert_eq(dechunker_stats(dechunker)->overflows, 0);
	cr_assert_eq(dechunker_feed(dechunker, "y", 1), 0);
	cr_assert_eq(dechunker_stats(dechunker)->overflows, 1);
	free(big);
	dechunker_free(dechunker);
}

Test(dechunker, bad_escapes_pass_through_and_are_counted)
{
	static const char wire[] = SYNC "100%zz %5" SYNC;
	struct inbox got = { 0 };
	struct dechunker_options opts = { .drain = true };
	struct dechunker *dechunker = dechunker_new(&opts, inbox_emit, &got);

	cr_assert_eq(dechunker_feed(dechunker, wire, strlen(wire)), 0);
	cr_assert_eq(got.count, 1);
	cr_assert_eq(got.items[0].len, strlen("100%zz %5"));
	cr_assert(memcmp(got.items[0].bytes, "100%zz %5", got.items[0].len) == 0);
	cr_assert_eq(dechunker_stats(dechunker)->bad_escapes, 2);
	inbox_clear(&got);
	dechunker_free(dechunker);
}

Test(dechunker, a_bad_sync_is_refused)
{
	struct dechunker_options opts = { .sync = "abc" };

	errno = 0;
	cr_assert_null(dechunker_new(&opts, inbox_emit, NULL));
	cr_assert_eq(errno, EINVAL);
}

Test(dechunker, custom_sync_round_trips)
{
	static const char *const msgs[] = { "#|", "|#|#|", "" };
	struct dechunker_options opts = { .sync = "#|#|", .drain = true };
	struct inbox got = { 0 };
	struct dechunker *dechunker = dechunker_new(&opts, inbox_emit, &got);
	struct evbuffer *stream = evbuffer_new();

	for (size_t i = 0; i < 3; i++)
		cr_assert_eq(chunk_encode(stream, msgs[i], strlen(msgs[i]), opts.sync), 0);
	cr_assert_eq(dechunker_feed(dechunker, evbuffer_pullup(stream, -1), evbuffer_get_length(stream)), 0);
	dechunker_flush(dechunker);
	cr_assert_eq(got.count, 3);
	for (size_t i = 0; i < 3; i++) {
		cr_assert_eq(got.items[i].len, strlen(msgs[i]));
		cr_assert(memcmp(got.items[i].bytes, msgs[i], got.items[i].len) == 0);
	}
	inbox_clear(&got);
	evbuffer_free(stream);
	dechunker_free(dechunker);
}

static int compare_sizes(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return (x > y) - (x < y);
}

/* SimpleFrame inside DataChunker, as SRM sends it, random payloads cut
 * into random datagrams: the drain dechunker gives every frame back and
 * the Kamaelia one agrees with the model. */
Test(dechunker, random_frames_in_random_datagrams_round_trip)
{
	uint64_t rng = 0x2545f4914f6cdd1du;
	struct evbuffer *frame = evbuffer_new(), *stream = evbuffer_new();
	unsigned char payload[600];
	struct inbox want = { 0 };

	for (int round = 0; round < 100; round++) {
		size_t count = 1 + rng_next(&rng) % 30, len, cuts[64], cut_count = 0;
		const unsigned char *bytes;
		struct inbox got;

		for (size_t i = 0; i < count; i++) {
			size_t n = rng_next(&rng) % sizeof(payload);

			random_bytes(&rng, payload, n);
			cr_assert_eq(frame_encode(frame, (long long)i + 1, payload, n), 0);
			inbox_add(&want, evbuffer_pullup(frame, -1), evbuffer_get_length(frame));
			cr_assert_eq(chunk_encode(stream, evbuffer_pullup(frame, -1), evbuffer_get_length(frame), NULL), 0);
			evbuffer_drain(frame, evbuffer_get_length(frame));
		}
		len = evbuffer_get_length(stream);
		bytes = evbuffer_pullup(stream, -1);
		while (cut_count < 64 && rng_next(&rng) % 8 != 0)
			cuts[cut_count++] = rng_next(&rng) % (len + 1);
		qsort(cuts, cut_count, sizeof(cuts[0]), compare_sizes);
		got = feed_both(bytes, len, cuts, cut_count, true);
		assert_same_messages(&got, &want, "random frames, drain");
		for (size_t i = 0; i < got.count; i++) {
			long long tag;
			const void *data;
			size_t data_len;

			cr_assert_eq(frame_decode(got.items[i].bytes, got.items[i].len, &tag, &data, &data_len), FRAME_OK);
			cr_assert_eq(tag, (long long)i + 1);
		}
		inbox_clear(&got);
		got = feed_both(bytes, len, cuts, cut_count, false);
		inbox_clear(&got);
		inbox_clear(&want);
		evbuffer_drain(stream, len);
	}
	evbuffer_free(frame);
	evbuffer_free(stream);
}

Test(chunk, random_data_round_trips_through_escape)
{
	uint64_t rng = 0xd1b54a32d192ed03u;
	struct evbuffer *escaped = evbuffer_new(), *plain = evbuffer_new();
	unsigned char data[2048];

	for (int i = 0; i < 3000; i++) {
		size_t len = rng_next(&rng) % sizeof(data), bad = 0;

		random_bytes(&rng, data, len);
		cr_assert_eq(chunk_escape(escaped, data, len, NULL), 0);
		cr_assert_lt(evbuffer_search(escaped, "X", 1, NULL).pos, 0, "an X left in case %d", i);
		cr_assert_eq(chunk_unescape(plain, evbuffer_pullup(escaped, -1), evbuffer_get_length(escaped), NULL, &bad),
			     0);
		cr_assert(buffer_equals(plain, data, len), "case %d", i);
		cr_assert_eq(bad, 0);
		evbuffer_drain(escaped, evbuffer_get_length(escaped));
		evbuffer_drain(plain, evbuffer_get_length(plain));
	}
	evbuffer_free(escaped);
	evbuffer_free(plain);
}

/* ---- MaxSizePacketiser ---------------------------------------------- */

struct packets {
	size_t count;
	size_t lens[16];
	size_t total;
};

static void packets_add(void *arg, const void *packet, size_t len)
{
	struct packets *packets = arg;

	cr_assert_lt(packets->count, 16);
	packets->lens[packets->count++] = len;
	packets->total += len;
}

Test(packetise, exact_multiple_remainder_and_empty)
{
	static char msg[2500];
	struct packets packets = { 0 };

	cr_assert_eq(packetise_message(msg, 2000, 1000, packets_add, &packets), 2);
	cr_assert_eq(packets.count, 2);
	cr_assert_eq(packets.lens[1], 1000);

	packets = (struct packets){ 0 };
	cr_assert_eq(packetise_message(msg, 2500, 1000, packets_add, &packets), 3);
	cr_assert_eq(packets.lens[0], 1000);
	cr_assert_eq(packets.lens[1], 1000);
	cr_assert_eq(packets.lens[2], 500);

	packets = (struct packets){ 0 };
	cr_assert_eq(packetise_message("", 0, 1000, packets_add, &packets), 1);
	cr_assert_eq(packets.count, 1);
	cr_assert_eq(packets.lens[0], 0);

	packets = (struct packets){ 0 };
	cr_assert_eq(packetise_message(msg, 1, 1, packets_add, &packets), 1);
	cr_assert_eq(packetise_message(msg, 10, 0, packets_add, &packets), 0);
	cr_assert_eq(packets.count, 1);
}

Test(packetise, next_cuts_a_stream_into_full_packets_until_flushed)
{
	struct evbuffer *in = evbuffer_new();
	unsigned char out[1000], data[2500];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)i;
	cr_assert_eq(packetise_next(in, 1000, true, out), 0);
	evbuffer_add(in, data, sizeof(data));
	cr_assert_eq(packetise_next(in, 1000, false, out), 1000);
	cr_assert_eq(out[999], (unsigned char)999);
	cr_assert_eq(packetise_next(in, 1000, false, out), 1000);
	cr_assert_eq(packetise_next(in, 1000, false, out), 0);
	cr_assert_eq(evbuffer_get_length(in), 500);
	cr_assert_eq(packetise_next(in, 0, true, out), 0);
	cr_assert_eq(packetise_next(in, 1000, true, out), 500);
	cr_assert_eq(out[0], (unsigned char)2000);
	cr_assert_eq(packetise_next(in, 1000, true, out), 0);
	evbuffer_add(in, data, 2000);
	cr_assert_eq(packetise_next(in, 1000, true, out), 1000);
	cr_assert_eq(packetise_next(in, 1000, true, out), 1000);
	cr_assert_eq(packetise_next(in, 1000, true, out), 0);
	evbuffer_free(in);
}
