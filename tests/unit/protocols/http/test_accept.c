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

Test(accept_encoding, what_browsers_and_curl_send_takes_gzip)
{
	cr_assert_eq(coding_quality("gzip, deflate, br, zstd", "gzip"), 1000);
	cr_assert_eq(coding_quality("deflate, GZIP;q=0.5", "gzip"), 500);
	cr_assert_eq(coding_quality("br", "gzip"), 0);
	cr_assert_eq(coding_quality("", "gzip"), 0);
}

Test(accept_encoding, a_zero_weight_refuses_and_the_named_coding_beats_the_star)
{
	cr_assert_eq(coding_quality("gzip;q=0", "gzip"), 0);
	cr_assert_eq(coding_quality("gzip;q=0.000", "gzip"), 0);
	cr_assert_eq(coding_quality("gzip;q=0.001", "gzip"), 1);
	cr_assert_eq(coding_quality("*", "gzip"), 1000);
	cr_assert_eq(coding_quality("*;q=0.3, gzip;q=0", "gzip"), 0);
	cr_assert_eq(coding_quality("gzip;q=0, *", "gzip"), 0);
}

Test(accept_encoding, a_weight_at_the_very_end_of_the_value_is_read_within_it)
{
	/* The header's last bytes: strtod read on past them into whatever
	 * followed in the request's arena. */
	cr_assert_eq(coding_quality("gzip;q=0.5", "gzip"), 500);
	cr_assert_eq(coding_quality("gzip;q=", "gzip"), 0);
	cr_assert_eq(coding_quality("gzip;q=111111111111", "gzip"), 0);
	cr_assert_eq(coding_quality("gzip;q", "gzip"), 1000);
}
