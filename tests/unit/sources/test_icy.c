/* sources/icy.c: audio and metadata come apart the same however the
 * stream is cut, and titles come out as the bytes the server sent. */
#include <criterion/criterion.h>
#include <string.h>

#include <event2/buffer.h>

#include "sources/icy.h"

#define METAINT 16

/* What a feed produced: the audio, and every block as "<len>:<bytes>|". */
struct outcome {
	struct evbuffer *audio;
	struct evbuffer *blocks;
	unsigned n_blocks;
};

static void on_block(void *arg, const char *block, size_t len)
{
	struct outcome *o = arg;

	evbuffer_add_printf(o->blocks, "%zu:", len);
	evbuffer_add(o->blocks, block, len);
	evbuffer_add(o->blocks, "|", 1);
	o->n_blocks++;
}

static void outcome_init(struct outcome *o)
{
	o->audio = evbuffer_new();
	o->blocks = evbuffer_new();
	o->n_blocks = 0;
}

static void outcome_free(struct outcome *o)
{
	evbuffer_free(o->audio);
	evbuffer_free(o->blocks);
}

static void assert_same_buffer(struct evbuffer *a, struct evbuffer *b)
{
	size_t len = evbuffer_get_length(a);

	cr_assert_eq(len, evbuffer_get_length(b));
	cr_assert(memcmp(evbuffer_pullup(a, -1), evbuffer_pullup(b, -1), len) == 0);
}

/* Audio bytes that include values a length byte could have. */
static void add_audio(struct evbuffer *stream, struct evbuffer *audio, unsigned char seed)
{
	unsigned char chunk[METAINT];

	for (size_t i = 0; i < sizeof(chunk); i++)
		chunk[i] = (unsigned char)(seed * 37 + i * 11);
	evbuffer_add(stream, chunk, sizeof(chunk));
	evbuffer_add(audio, chunk, sizeof(chunk));
}

static void add_block(struct evbuffer *stream, const char *text, size_t text_len)
{
	unsigned char l = (unsigned char)((text_len + 15) / 16);
	char padded[ICY_META_MAX] = {0};

	memcpy(padded, text, text_len);
	evbuffer_add(stream, &l, 1);
	evbuffer_add(stream, padded, (size_t)l * 16);
}

#define TITLE_1 "StreamTitle='It's';StreamUrl='http://radio.example/';"
#define TITLE_2 "StreamTitle='caf\xe9 \xff; \"x\"';"

/* Blocks of every shape: empty (L = 0), exactly 16 bytes, padded, and
 * the longest there is. */
static struct evbuffer *sample_stream(struct evbuffer *audio)
{
	struct evbuffer *stream = evbuffer_new();
	char longest[ICY_META_MAX];

	memset(longest, 'z', sizeof(longest));
	add_audio(stream, audio, 1);
	add_block(stream, "", 0);
	add_audio(stream, audio, 2);
	add_block(stream, "StreamTitle='A';", 16);
	add_audio(stream, audio, 3);
	add_block(stream, TITLE_1, strlen(TITLE_1));
	add_audio(stream, audio, 4);
	add_block(stream, TITLE_2, strlen(TITLE_2));
	add_audio(stream, audio, 5);
	add_block(stream, longest, sizeof(longest));
	add_audio(stream, audio, 6);
	add_block(stream, "", 0);
	evbuffer_add(stream, "tail", 4);		/* part of the next interval */
	evbuffer_add(audio, "tail", 4);
	return stream;
}

static void feed_in_pieces(const unsigned char *data, size_t len, const size_t *cuts, size_t n_cuts,
			   struct outcome *o)
{
	struct icy_demux *d = malloc(sizeof(*d));
	size_t from = 0;

	icy_demux_init(d, METAINT);
	for (size_t i = 0; i <= n_cuts; i++) {
		size_t to = i < n_cuts ? cuts[i] : len;

		cr_assert_eq(icy_demux_feed(d, data + from, to - from, o->audio, on_block, o), 0);
		from = to;
	}
	free(d);
}

Test(icy, whole_stream_gives_the_audio_and_each_nonempty_block_once)
{
	struct evbuffer *audio = evbuffer_new(), *stream = sample_stream(audio);
	size_t len = evbuffer_get_length(stream);
	struct outcome o;

	outcome_init(&o);
	feed_in_pieces(evbuffer_pullup(stream, -1), len, NULL, 0, &o);
	assert_same_buffer(o.audio, audio);
	cr_assert_eq(o.n_blocks, 4, "L=0 blocks are not reported");
	cr_assert(evbuffer_search(o.blocks, "16:StreamTitle='A';|", 20, NULL).pos == 0);
	outcome_free(&o);
	evbuffer_free(stream);
	evbuffer_free(audio);
}

Test(icy, a_cut_at_every_byte_boundary_changes_nothing)
{
	struct evbuffer *audio = evbuffer_new(), *stream = sample_stream(audio);
	size_t len = evbuffer_get_length(stream);
	const unsigned char *data = evbuffer_pullup(stream, -1);
	struct outcome whole;

	outcome_init(&whole);
	feed_in_pieces(data, len, NULL, 0, &whole);
	for (size_t cut = 0; cut <= len; cut++) {
		struct outcome o;

		outcome_init(&o);
		feed_in_pieces(data, len, &cut, 1, &o);
		assert_same_buffer(o.audio, whole.audio);
		assert_same_buffer(o.blocks, whole.blocks);
		outcome_free(&o);
	}
	outcome_free(&whole);
	evbuffer_free(stream);
	evbuffer_free(audio);
}

Test(icy, one_byte_at_a_time_changes_nothing)
{
	struct evbuffer *audio = evbuffer_new(), *stream = sample_stream(audio);
	size_t len = evbuffer_get_length(stream);
	const unsigned char *data = evbuffer_pullup(stream, -1);
	size_t *cuts = calloc(len, sizeof(*cuts));
	struct outcome whole, bytewise;

	for (size_t i = 0; i < len; i++)
		cuts[i] = i;
	outcome_init(&whole);
	outcome_init(&bytewise);
	feed_in_pieces(data, len, NULL, 0, &whole);
	feed_in_pieces(data, len, cuts, len, &bytewise);
	assert_same_buffer(bytewise.audio, whole.audio);
	assert_same_buffer(bytewise.blocks, whole.blocks);
	outcome_free(&whole);
	outcome_free(&bytewise);
	free(cuts);
	evbuffer_free(stream);
	evbuffer_free(audio);
}

Test(icy, metaint_zero_passes_every_byte_through)
{
	struct icy_demux d;
	struct outcome o;
	static const char bytes[] = "\x01StreamTitle='no';\x00\xff";

	outcome_init(&o);
	icy_demux_init(&d, 0);
	cr_assert_eq(icy_demux_feed(&d, bytes, sizeof(bytes), o.audio, on_block, &o), 0);
	cr_assert_eq(evbuffer_get_length(o.audio), sizeof(bytes));
	cr_assert_eq(o.n_blocks, 0);
	outcome_free(&o);
}

/* The value of key in text, as a string, or "(absent)". */
static const char *field(const char *text, size_t len, const char *key)
{
	static char out[ICY_META_MAX + 1];
	const char *value;
	size_t value_len;

	if (!icy_parse_field(text, len, key, &value, &value_len))
		return "(absent)";
	cr_assert(value >= text && value + value_len <= text + len);
	memcpy(out, value, value_len);
	out[value_len] = '\0';
	return out;
}

#define FIELD(text, key) field(text, sizeof(text) - 1, key)

Test(icy_field, title_and_url_as_servers_send_them)
{
	cr_assert_str_eq(FIELD(TITLE_1, "StreamTitle"), "It's");
	cr_assert_str_eq(FIELD(TITLE_1, "StreamUrl"), "http://radio.example/");
	cr_assert_str_eq(FIELD("StreamUrl='u';StreamTitle='t';", "StreamTitle"), "t");
}

Test(icy_field, a_quote_inside_ends_only_at_quote_semicolon)
{
	cr_assert_str_eq(FIELD("StreamTitle='Rock 'n' Roll';", "StreamTitle"), "Rock 'n' Roll");
	cr_assert_str_eq(FIELD("StreamTitle='a;b; c';StreamUrl='x';", "StreamTitle"), "a;b; c");
	cr_assert_str_eq(FIELD("StreamTitle='a;b; c';StreamUrl='x';", "StreamUrl"), "x");
	cr_assert_str_eq(FIELD("StreamTitle='';", "StreamTitle"), "");
}

Test(icy_field, bytes_above_0x7f_come_out_undecoded)
{
	cr_assert_str_eq(FIELD(TITLE_2, "StreamTitle"), "caf\xe9 \xff; \"x\"");
	cr_assert_str_eq(FIELD("StreamTitle='\xc3\xa9\x80\xfe';", "StreamTitle"), "\xc3\xa9\x80\xfe");
}

Test(icy_field, nul_padding_ends_the_text)
{
	static const char block[32] = "StreamTitle='x'";
	static const char junk[48] = "StreamTitle='y';\0StreamUrl='hidden';";

	cr_assert_str_eq(field(block, sizeof(block), "StreamTitle"), "x", "a last field without ';'");
	cr_assert_str_eq(field(junk, sizeof(junk), "StreamTitle"), "y");
	cr_assert_str_eq(field(junk, sizeof(junk), "StreamUrl"), "(absent)");
}

Test(icy_field, keys_match_whole_and_odd_fields_are_skipped)
{
	cr_assert_str_eq(FIELD("XStreamTitle='no';StreamTitle='yes';", "StreamTitle"), "yes");
	cr_assert_str_eq(FIELD("novalue;\nStreamTitle='yes';", "StreamTitle"), "yes");
	cr_assert_str_eq(FIELD("n=1;StreamTitle=bare;", "StreamTitle"), "bare");
	cr_assert_str_eq(FIELD("StreamTitle='unterminated", "StreamTitle"), "unterminated");
	cr_assert_str_eq(FIELD("StreamUrl='x';", "StreamTitle"), "(absent)");
	cr_assert_str_eq(FIELD("", "StreamTitle"), "(absent)");
	cr_assert_str_eq(FIELD("StreamTitle", "StreamTitle"), "(absent)");
}
