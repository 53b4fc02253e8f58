#include "daemon/control_client.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>


static const char *const commands[] = { "reload", "status", "stop", "reopen" };

bool control_client_is_command(const char *word)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(word, commands[i]) == 0)
			return true;
	return false;
}

static void set_timeout(int fd, unsigned seconds)
{
	struct timeval tv = { seconds, 0 };

	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static int connect_to(const char *path, unsigned timeout)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	set_timeout(fd, timeout);
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	return fd;
}

/* "<N>text": warnings and worse to stderr, as the daemon's own log would
 * rank them. */
static void print_record(const char *line)
{
	char *end;
	long level = line[0] == '<' ? strtol(line + 1, &end, 10) : LOG_INFO;

	if (line[0] == '<' && *end == '>')
		line = end + 1;
	fprintf(level <= LOG_WARNING ? stderr : stdout, "%s\n", line);
}

/* Reads the answer up to its "ok" or "failed" line. */
static int read_answer(FILE *in, const char *path, const char *command)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	int status = -1;

	while (status < 0 && (len = getline(&line, &cap, in)) > 0) {
		if (line[len - 1] == '\n')
			line[--len] = '\0';
		if (strcmp(line, "ok") == 0)
			status = CONTROL_CLIENT_DONE;
		else if (strcmp(line, "failed") == 0)
			status = CONTROL_CLIENT_FAILED;
		else
			print_record(line);
	}
	free(line);
	fflush(stdout);
	if (status < 0)
		fprintf(stderr, "chassisd %s: no answer from the daemon at %s: %s\n", command, path,
			ferror(in) && errno == EAGAIN ? "timed out" : ferror(in) ? strerror(errno) : "it closed");
	return status < 0 ? CONTROL_CLIENT_UNREACHABLE : status;
}

/* The daemon holds a stop's connection while it runs: its end is the exit. */
static void wait_for_exit(FILE *in, int fd, unsigned seconds)
{
	set_timeout(fd, seconds);
	while (fgetc(in) != EOF)
		continue;
	if (ferror(in))
		fprintf(stderr, "chassisd stop: still stopping after %u s\n", seconds);
	else
		printf("stopped\n");
}

int control_client_run(const char *path, const char *command, unsigned timeout, unsigned stop_wait)
{
	int fd = connect_to(path, timeout);
	FILE *in;
	int status;

	if (fd < 0) {
		fprintf(stderr, "chassisd %s: cannot reach the daemon at %s: %s (is it running? is this its "
			"control-socket?)\n", command, path, strerror(errno));
		return CONTROL_CLIENT_UNREACHABLE;
	}
	if (dprintf(fd, "%s\n", command) < 0 || (in = fdopen(fd, "r")) == NULL) {
		fprintf(stderr, "chassisd %s: cannot ask the daemon at %s: %s\n", command, path, strerror(errno));
		close(fd);
		return CONTROL_CLIENT_UNREACHABLE;
	}
	status = read_answer(in, path, command);
	if (status == CONTROL_CLIENT_DONE && strcmp(command, "stop") == 0)
		wait_for_exit(in, fd, stop_wait);
	fclose(in);
	return status;
}
