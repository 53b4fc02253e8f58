/* conf/file.c: what a config names is read only when regular and small
 * enough, and never blocks. */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf/file.h"

static char dir[] = "/tmp/chassisd-test-file-XXXXXX";

static void setup(void)
{
	cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(file, .init = setup, .fini = teardown);

static void path_in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

Test(file, reads_a_small_regular_file_whole)
{
	char path[256], err[128];
	size_t len = 0;
	char *text;
	FILE *f;

	path_in_dir(path, sizeof(path), "small");
	f = fopen(path, "w");
	fputs("text/plain txt\n", f);
	fclose(f);
	text = file_read_bounded(path, 100, &len, err, sizeof(err));
	cr_assert_not_null(text, "%s", err);
	cr_assert_eq(len, 15);
	cr_assert_str_eq(text, "text/plain txt\n");
	free(text);
}

Test(file, refuses_a_fifo_without_waiting_for_a_writer)
{
	char path[256], err[128];
	size_t len;

	path_in_dir(path, sizeof(path), "fifo");
	cr_assert_eq(mkfifo(path, 0600), 0);
	cr_assert_null(file_read_bounded(path, 100, &len, err, sizeof(err)));
	cr_assert_str_eq(err, "not a regular file");
}

Test(file, refuses_a_device)
{
	char err[128];
	size_t len;

	cr_assert_null(file_read_bounded("/dev/zero", 100, &len, err, sizeof(err)));
	cr_assert_str_eq(err, "not a regular file");
}

Test(file, refuses_a_file_over_the_limit_before_reading_it)
{
	char path[256], err[128];
	size_t len;
	int fd;

	path_in_dir(path, sizeof(path), "big");
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	cr_assert_eq(ftruncate(fd, (off_t)2 << 30), 0);	/* sparse: no disk used */
	close(fd);
	cr_assert_null(file_read_bounded(path, 1 << 20, &len, err, sizeof(err)));
	cr_assert_str_eq(err, "larger than 1048576 bytes");
}

Test(file, a_missing_file_says_so)
{
	char err[128];
	size_t len;

	cr_assert_null(file_read_bounded("/nonexistent/x", 100, &len, err, sizeof(err)));
	cr_assert_str_eq(err, "cannot open: No such file or directory");
}

Test(file, open_regular_hands_back_a_blocking_fd)
{
	char path[256], err[128];
	struct stat st;
	int fd;

	path_in_dir(path, sizeof(path), "plain");
	close(open(path, O_WRONLY | O_CREAT, 0600));
	fd = file_open_regular(path, &st, err, sizeof(err));
	cr_assert_geq(fd, 0, "%s", err);
	cr_assert_eq(fcntl(fd, F_GETFL) & O_NONBLOCK, 0);
	close(fd);
}
