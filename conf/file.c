#include "conf/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int file_open_regular(const char *path, struct stat *st, char *err, size_t errlen)
{
	/* O_NONBLOCK: opening a FIFO for reading would wait for a writer. */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);

	if (fd < 0) {
		snprintf(err, errlen, "cannot open: %s", strerror(errno));
		return -1;
	}
	if (fstat(fd, st) < 0 || !S_ISREG(st->st_mode)) {
		snprintf(err, errlen, "not a regular file");
		close(fd);
		return -1;
	}
	/* Regular files never block; sendfile and read want the flag off. */
	fcntl(fd, F_SETFL, 0);
	return fd;
}

char *file_read_bounded(const char *path, size_t max, size_t *len, char *err, size_t errlen)
{
	struct stat st;
	int fd = file_open_regular(path, &st, err, errlen);
	size_t have = 0, want;
	ssize_t got = 0;
	char *text;

	if (fd < 0)
		return NULL;
	if ((unsigned long long)st.st_size > max) {
		snprintf(err, errlen, "larger than %zu bytes", max);
		close(fd);
		return NULL;
	}
	want = (size_t)st.st_size;
	text = malloc(want + 1);
	/* A file that grows meanwhile is read up to the size it had. */
	while (text != NULL && have < want && (got = read(fd, text + have, want - have)) > 0)
		have += (size_t)got;
	if (text == NULL || got < 0) {
		snprintf(err, errlen, "%s", text == NULL ? "out of memory" : strerror(errno));
		free(text);
		close(fd);
		return NULL;
	}
	close(fd);
	text[have] = '\0';
	*len = have;
	return text;
}
