#include <criterion/criterion.h>
#include <stdio.h>

#include "conf/marks.h"

/* Marks key on the section's address only: any distinct objects do. */
static int section_a, section_b;
#define A ((const struct cfg_t *)&section_a)
#define B ((const struct cfg_t *)&section_b)

static struct conf_marks marks;

static void fini(void)
{
	conf_marks_free(&marks);
}

TestSuite(marks, .fini = fini);

Test(marks, an_option_has_the_line_it_was_first_written_on)
{
	conf_marks_add(&marks, A, "port", 7);
	conf_marks_add(&marks, A, "port", 9);	/* libconfuse validates again on a later pass */
	cr_assert_eq(conf_marks_line_or(&marks, A, "port", 1), 7);
	cr_assert(conf_marks_written(&marks, A, "port"));
}

Test(marks, sections_do_not_share_their_options)
{
	conf_marks_add(&marks, A, "port", 7);
	cr_assert_not(conf_marks_written(&marks, B, "port"));
	cr_assert_eq(conf_marks_line_or(&marks, B, "port", 42), 42);
	cr_assert_eq(conf_marks_line_or(&marks, A, NULL, 42), 42, "no option: the fallback");
}

Test(marks, a_section_starts_at_its_earliest_mark)
{
	cr_assert_eq(conf_marks_section_line(&marks, A), 0);
	conf_marks_add(&marks, A, "}", 20);
	conf_marks_add(&marks, A, "protocol", 12);
	conf_marks_add(&marks, A, "address", 11);
	conf_marks_add(&marks, B, "address", 3);
	cr_assert_eq(conf_marks_section_line(&marks, A), 11);
}

Test(marks, many_marks_grow_the_table)
{
	static char names[200][8];

	for (int i = 0; i < 200; i++) {
		snprintf(names[i], sizeof(names[i]), "o%d", i);
		conf_marks_add(&marks, A, names[i], i + 1);
	}
	for (int i = 0; i < 200; i++)
		cr_assert_eq(conf_marks_line_or(&marks, A, names[i], 0), i + 1);
}

Test(marks, clearing_forgets_every_mark)
{
	conf_marks_add(&marks, A, "port", 7);
	conf_marks_clear(&marks);
	cr_assert_not(conf_marks_written(&marks, A, "port"));
	conf_marks_add(&marks, A, "port", 8);
	cr_assert_eq(conf_marks_line_or(&marks, A, "port", 0), 8);
}
