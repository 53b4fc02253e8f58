/* The Accept header's media ranges and Accept-Encoding's codings, read
 * within the header's bytes only: the value is not NUL-terminated and
 * comes from the client. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "protocols/http/accept.h"

#define QUALITY_MAX 1000

/* How closely a range names a type: 3 exact, 2 "type/ *", 1 "* / *", 0 not. */
static int range_match(const char *range, size_t len, const char *type)
{
	const char *slash = strchr(type, '/');
	size_t major = (size_t)(slash - type);

	if (len == strlen(type) && strncasecmp(range, type, len) == 0)
		return 3;
	if (len == major + 2 && strncasecmp(range, type, major + 1) == 0 && range[major + 1] == '*')
		return 2;
	if (len == 3 && memcmp(range, "*/*", 3) == 0)
		return 1;
	return 0;
}

/* A qvalue ("0", "0.5", "1.000"): false when it is not one. */
static bool parse_quality(const char *p, const char *end, unsigned *quality)
{
	unsigned value, scale = 100;

	if (p == end || (*p != '0' && *p != '1'))
		return false;
	value = (unsigned)(*p++ - '0') * QUALITY_MAX;
	if (p < end && *p == '.')
		for (p++; p < end && *p >= '0' && *p <= '9' && scale > 0; p++, scale /= 10)
			value += (unsigned)(*p - '0') * scale;
	if (p != end || value > QUALITY_MAX)
		return false;
	*quality = value;
	return true;
}

/* The first c in [p, end), or end. */
static const char *find(const char *p, const char *end, char c)
{
	while (p < end && *p != c)
		p++;
	return p;
}

static const char *skip_space(const char *p, const char *end)
{
	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	return p;
}

static const char *trim_end(const char *start, const char *p)
{
	while (p > start && (p[-1] == ' ' || p[-1] == '\t'))
		p--;
	return p;
}

/* One element "range;param=x;q=0.5": its quality, or false if malformed. */
static bool element_quality(const char *p, const char *end, unsigned *quality)
{
	*quality = QUALITY_MAX;
	while ((p = find(p, end, ';')) < end) {
		const char *param = skip_space(p + 1, end);
		const char *stop = find(param, end, ';');

		if (stop - param >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=' &&
		    !parse_quality(param + 2, trim_end(param, stop), quality))
			return false;
		p = stop;
	}
	return true;
}

/* How closely a content coding names one: 2 exact, 1 "*", 0 not. */
static int coding_match(const char *coding, size_t len, const char *name)
{
	if (len == strlen(name) && strncasecmp(coding, name, len) == 0)
		return 2;
	return len == 1 && coding[0] == '*';
}

/* The quality of the most specific element that `match` finds naming `name`. */
static unsigned best_quality(const char *value, size_t len, const char *name,
			     int (*match)(const char *element, size_t len, const char *name))
{
	const char *p = value, *end = value + len;
	int best = 0;
	unsigned quality = 0;

	while (p < end) {
		const char *stop = find(p, end, ','), *range_end;
		unsigned q;
		int found;

		p = skip_space(p, stop);
		range_end = trim_end(p, find(p, stop, ';'));
		found = match(p, (size_t)(range_end - p), name);
		if (found > best && element_quality(range_end, stop, &q)) {
			best = found;
			quality = q;
		}
		p = stop < end ? stop + 1 : end;
	}
	return quality;
}

unsigned http_accept_quality(const char *accept, size_t len, const char *type)
{
	return strchr(type, '/') != NULL ? best_quality(accept, len, type, range_match) : 0;
}

unsigned http_accept_coding_quality(const char *accept_encoding, size_t len, const char *coding)
{
	return best_quality(accept_encoding, len, coding, coding_match);
}
