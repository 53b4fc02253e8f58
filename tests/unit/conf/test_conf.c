#include <criterion/criterion.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <syslog.h>
#include <unistd.h>

#include "conf/conf.h"
#include "daemon/protocol.h"
#include "protocols/registry.h"

#ifndef TEST_CONF_DIR
#error TEST_CONF_DIR must name tests/conf
#endif

static char *read_text(const char *path)
{
	FILE *f = fopen(path, "r");
	char *text;
	long size;

	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	rewind(f);
	text = calloc(1, (size_t)size + 1);
	cr_assert_eq(fread(text, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	return text;
}

/* The errors, one per line, with the file name written as FILE and its
 * folder (where included files are) as DIR. */
static char *errors_as_text(const struct conf_errors *errors, const char *path)
{
	size_t cap = 1;
	char *text, *out, dir[1024];

	snprintf(dir, sizeof(dir), "%.*s/", (int)(strrchr(path, '/') - path), path);

	for (size_t i = 0; i < errors->count; i++)
		cap += strlen(errors->lines[i]) + 1;
	text = calloc(1, cap);
	out = text;
	for (size_t i = 0; i < errors->count; i++) {
		const char *line = errors->lines[i];
		if (strncmp(line, path, strlen(path)) == 0) {
			out += sprintf(out, "FILE");
			line += strlen(path);
		}
		for (const char *hit; (hit = strstr(line, dir)) != NULL; line = hit + strlen(dir))
			out += sprintf(out, "%.*sDIR/", (int)(hit - line), line);
		out += sprintf(out, "%s\n", line);
	}
	return text;
}

static size_t for_each_conf(const char *dir, void (*check)(const char *path))
{
	char folder[512], path[1024];
	struct dirent *entry;
	size_t n = 0;
	DIR *d;

	snprintf(folder, sizeof(folder), "%s/%s", TEST_CONF_DIR, dir);
	d = opendir(folder);
	cr_assert_not_null(d, "cannot open %s", folder);
	while ((entry = readdir(d)) != NULL) {
		size_t len = strlen(entry->d_name);
		if (len < 6 || strcmp(entry->d_name + len - 5, ".conf") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", folder, entry->d_name);
		check(path);
		n++;
	}
	closedir(d);
	return n;
}

static void check_good(const char *path)
{
	struct conf_errors errors = { 0 };
	struct conf *conf = conf_load(path, protocol_config_table(), &errors);
	char *text = errors_as_text(&errors, path);

	cr_expect_not_null(conf, "%s should load, got:\n%s", path, text);
	free(text);
	conf_free(conf);
	conf_errors_clear(&errors);
}

static void check_bad(const char *path)
{
	struct conf_errors errors = { 0 };
	struct conf *conf = conf_load(path, protocol_config_table(), &errors);
	char expected_path[1024];
	char *expected, *got;

	snprintf(expected_path, sizeof(expected_path), "%.*s.err", (int)(strlen(path) - 5), path);
	expected = read_text(expected_path);
	got = errors_as_text(&errors, path);
	cr_expect_null(conf, "%s should not load", path);
	cr_expect_str_eq(got, expected, "%s:\n--- expected\n%s--- got\n%s", path, expected, got);
	free(expected);
	free(got);
	conf_free(conf);
	conf_errors_clear(&errors);
}

Test(conf, shipped_config_loads)
{
	check_good(TEST_CONF_DIR "/../../conf/chassisd.conf");
}

Test(conf, good_corpus_loads)
{
	cr_assert_geq(for_each_conf("good", check_good), 2);
}

Test(conf, bad_corpus_gives_exact_errors)
{
	cr_assert_geq(for_each_conf("bad", check_bad), 10);
}

Test(conf, control_socket_defaults)
{
	struct conf_errors errors = { 0 };
	struct conf *conf = conf_load(TEST_CONF_DIR "/good/minimal.conf", protocol_config_table(), &errors);

	cr_assert_not_null(conf);
	cr_assert_str_eq(conf->control_socket, CONF_DEFAULT_CONTROL_SOCKET);
	cr_assert_eq(conf->control_timeout, CONF_DEFAULT_CONTROL_TIMEOUT);
	cr_assert_eq(conf->control_max_clients, CONF_DEFAULT_CONTROL_MAX_CLIENTS);
	conf_free(conf);
}

Test(conf, nothing_to_serve_is_a_warning)
{
	struct conf_errors errors = { 0 };
	struct conf *conf = conf_load(TEST_CONF_DIR "/good/empty.conf", protocol_config_table(), &errors);

	cr_assert_not_null(conf);
	cr_assert_eq(conf->warnings.count, 1);
	cr_assert(strstr(conf->warnings.lines[0], "/good/empty.conf: warning: no listener and no stream: "
						    "chassisd would serve nothing") != NULL, "%s", conf->warnings.lines[0]);
	conf_free(conf);
}

/* The shipped unit hides /home, /root, /run/user (ProtectHome=) and /tmp,
 * /var/tmp (PrivateTmp=): every option naming a path there is warned
 * about, at its line, however deep in the file (globals, listeners, then
 * streams); look-alikes are not. */
Test(conf, paths_the_unit_hides_are_warnings_at_their_line)
{
	struct conf_errors errors = { 0 };
	struct conf *conf = conf_load(TEST_CONF_DIR "/good/hidden-paths.conf", protocol_config_table(), &errors);
	static const char *const expected[] = {
		":1: warning: control-socket \"/tmp/chassisd.control\" is hidden from chassisd under the shipped "
		"systemd unit (PrivateTmp=yes)",
		":9: warning: root \"/root\" is hidden from chassisd under the shipped systemd unit "
		"(ProtectHome=yes)",
		":10: warning: root \"/var/tmp\" is hidden from chassisd under the shipped systemd unit "
		"(PrivateTmp=yes)",
		":6: warning: file \"/home/me/fortunes\" is hidden from chassisd under the shipped systemd unit "
		"(ProtectHome=yes)",
		":12: warning: command \"/run/user/1000/list\" is hidden from chassisd under the shipped systemd "
		"unit (ProtectHome=yes)",
	};

	cr_assert_not_null(conf);
	cr_assert_eq(conf->warnings.count, sizeof(expected) / sizeof(expected[0]));
	for (size_t i = 0; i < conf->warnings.count; i++)
		cr_expect(strstr(conf->warnings.lines[i], expected[i]) != NULL, "got %s", conf->warnings.lines[i]);
	conf_free(conf);
}

Test(conf, missing_file_is_one_clear_error)
{
	struct conf_errors errors = { 0 };

	cr_assert_null(conf_load("/nonexistent/chassisd.conf", protocol_config_table(), &errors));
	cr_assert_eq(errors.count, 1);
	cr_assert_str_eq(errors.lines[0], "/nonexistent/chassisd.conf: cannot open: No such file or directory");
	conf_errors_clear(&errors);
}

Test(conf, values_and_defaults_reach_the_snapshot)
{
	struct conf_errors errors = { 0 };
	struct conf *conf = conf_load(TEST_CONF_DIR "/good/full.conf", protocol_config_table(), &errors);
	const struct conf_listener *tcp, *group;

	cr_assert_not_null(conf);
	cr_assert_eq(conf->log_level, LOG_DEBUG);
	cr_assert_eq(conf->max_connections, 500);
	cr_assert_eq(conf->shutdown_grace, 3);
	cr_assert_str_eq(conf->control_socket, "/run/chassisd-test/control");
	cr_assert_eq(conf->control_timeout, 5);
	cr_assert_eq(conf->control_max_clients, 2);
	cr_assert_eq(conf->warnings.count, 0);
	cr_assert_eq(conf->n_listeners, 4);
	tcp = &conf->listeners[0];
	cr_assert_str_eq(tcp->unit.name, "echo-tcp");
	cr_assert_str_eq(tcp->unit.module->name, "echo");
	cr_assert_eq(tcp->transport, TRANSPORT_TCP);
	cr_assert_eq(tcp->max_connections, 10);
	cr_assert_eq(tcp->per_source, 2);
	cr_assert_eq(tcp->idle_timeout, 0);
	cr_assert_eq(tcp->buffer_size, 65536);
	cr_assert_eq(tcp->notsent_lowat, 0);
	cr_assert_eq(tcp->n_allow, 2);
	cr_assert_eq(tcp->n_deny, 1);
	cr_assert_not(tcp->required);
	cr_assert_eq(conf->listeners[1].per_source, CONF_DEFAULT_PER_SOURCE);
	cr_assert_eq(conf->listeners[1].idle_timeout, CONF_DEFAULT_IDLE_TIMEOUT);
	cr_assert_eq(conf->listeners[1].notsent_lowat, CONF_DEFAULT_NOTSENT_LOWAT);
	cr_assert(conf->listeners[1].endpoint.any);
	group = &conf->listeners[2];
	cr_assert_eq(group->transport, TRANSPORT_MULTICAST);
	cr_assert_eq(group->ttl, 0);
	cr_assert_not(group->loop);
	cr_assert_str_eq(group->interface, "lo");
	cr_assert_gt(group->ifindex, 0);
	cr_assert_str_eq(conf->listeners[3].unit.name, "to-web");
	cr_assert_str_eq(conf->listeners[3].unit.module->name, "relay");
	cr_assert_not_null(conf->listeners[3].unit.settings);
	conf_free(conf);
}

/* The fuzz targets load their config through a memfd's /proc/self/fd link,
 * which no realpath() names: includes must not need one. */
Test(conf, a_config_through_a_proc_fd_link_loads)
{
	static const char text[] = "listener \"e\" {\n protocol = \"echo\"\n address = \"127.0.0.1:7000\"\n}\n";
	struct conf_errors errors = { 0 };
	int fd = memfd_create("chassisd.conf", MFD_CLOEXEC);
	char path[64];
	struct conf *conf;

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	conf = conf_load(path, protocol_config_table(), &errors);
	cr_assert_not_null(conf, "%s", errors.count ? errors.lines[0] : "");
	conf_free(conf);
	conf_errors_clear(&errors);
	close(fd);
}
