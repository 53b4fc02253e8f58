/* Content negotiation: the Accept values real clients send (browsers,
 * curl, Prometheus, scripts) and malformed ones, read within their bytes
 * only (each case is copied into an exact-size heap buffer, so reading one
 * byte past the value is caught by ASan in the sanitize build). */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "protocols/http/accept.h"

/* What `parse` makes of `value` copied into an exact-size buffer. */
static unsigned exactly(unsigned (*parse)(const char *, size_t, const char *), const char *value, const char *name)
{
	size_t len = strlen(value);
	char *exact = malloc(len ? len : 1);
	unsigned q;

	cr_assert_not_null(exact);
	memcpy(exact, value, len);
	q = parse(exact, len, name);
	free(exact);
	return q;
}

static unsigned quality(const char *accept, const char *type)
{
	return exactly(http_accept_quality, accept, type);
}

Test(accept, a_browser_prefers_html_to_json)
{
	const char *firefox = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";
	const char *chromium = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
			       "image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7";

	cr_assert_eq(quality(firefox, "text/html"), 1000);
	cr_assert_eq(quality(firefox, "application/json"), 800);
	cr_assert_eq(quality(chromium, "text/html"), 1000);
	cr_assert_eq(quality(chromium, "application/json"), 800);
}

Test(accept, curl_and_scripts_take_anything_equally)
{
	cr_assert_eq(quality("*/*", "text/html"), 1000);
	cr_assert_eq(quality("*/*", "application/json"), 1000);
	cr_assert_eq(quality("application/json", "text/html"), 0);
	cr_assert_eq(quality("application/json", "application/json"), 1000);
}

Test(accept, the_most_specific_range_decides)
{
	cr_assert_eq(quality("text/*;q=0.3, text/html;q=0.7, */*;q=0.1", "text/html"), 700);
	cr_assert_eq(quality("text/*;q=0.3, text/html;q=0.7, */*;q=0.1", "text/plain"), 300);
	cr_assert_eq(quality("text/*;q=0.3, text/html;q=0.7, */*;q=0.1", "application/json"), 100);
	cr_assert_eq(quality("text/html;q=0, */*", "text/html"), 0, "q=0 refuses it even under */*");
}

Test(accept, spelling_spaces_and_parameters)
{
	cr_assert_eq(quality("TEXT/HTML", "text/html"), 1000);
	cr_assert_eq(quality("  text/html ; level=1 ; q=0.5 , x/y", "text/html"), 500);
	cr_assert_eq(quality("text/html;Q=0.25", "text/html"), 250);
	cr_assert_eq(quality("text/html;q=1.000", "text/html"), 1000);
	cr_assert_eq(quality("text/html;q=0.1234", "text/html"), 0, "a qvalue has at most three decimals");
}

Test(accept, malformed_elements_are_ignored)
{
	cr_assert_eq(quality("text/html;q=2", "text/html"), 0);
	cr_assert_eq(quality("text/html;q=1.5", "text/html"), 0);
	cr_assert_eq(quality("text/html;q=abc, */*;q=0.2", "text/html"), 200);
	cr_assert_eq(quality("text/html;q=", "text/html"), 0);
	cr_assert_eq(quality("", "text/html"), 0);
	cr_assert_eq(quality(",,, ;;", "text/html"), 0);
	cr_assert_eq(quality("text/", "text/html"), 0);
	cr_assert_eq(quality("text", "text/html"), 0);
	cr_assert_eq(quality("*", "text/html"), 0);
	cr_assert_eq(quality("text/html", "nonsense"), 0);
}

static unsigned coding_quality(const char *accept_encoding, const char *coding)
{
	return exactly(http_accept_coding_quality, accept_encoding, coding);
}

/* What gzip gets from Accept-Encoding values, each read within its bytes
 * (strtod once read on past a weight at the very end of the value). */
static const struct {
	const char *value;
	unsigned quality;
} gzip_cases[] = {
	/* what browsers and curl send */
	{ "gzip, deflate, br, zstd", 1000 },
	{ "deflate, GZIP;q=0.5", 500 },
	{ "br", 0 },
	{ "", 0 },
	/* a zero weight refuses; the named coding beats "*" */
	{ "gzip;q=0", 0 },
	{ "gzip;q=0.000", 0 },
	{ "gzip;q=0.001", 1 },
	{ "*", 1000 },
	{ "*;q=0.3, gzip;q=0", 0 },
	{ "gzip;q=0, *", 0 },
	/* weights cut short or out of range at the value's end */
	{ "gzip;q=0.5", 500 },
	{ "gzip;q=", 0 },
	{ "gzip;q=111111111111", 0 },
	{ "gzip;q", 1000 },
};

Test(accept_encoding, gzip_gets_the_weight_of_its_element_or_of_the_star)
{
	for (size_t i = 0; i < sizeof(gzip_cases) / sizeof(gzip_cases[0]); i++)
		cr_assert_eq(coding_quality(gzip_cases[i].value, "gzip"), gzip_cases[i].quality, "\"%s\"",
			     gzip_cases[i].value);
}
